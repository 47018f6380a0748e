/* cmd.h — the commands main() dispatches to.
 *
 * Each takes the loaded configuration and its own arguments (argv[0] is the
 * command name), prints results to stdout and messages to stderr, and returns
 * the process exit status documented in docs/interface.md. */
#ifndef IA_CMD_H
#define IA_CMD_H

struct config;

int cmd_remote(const struct config *cfg, int argc, char **argv);      /* remote JSON */
int cmd_introspect(const struct config *cfg, int argc, char **argv);  /* introspect TABLE */
int cmd_once(const struct config *cfg, int argc, char **argv);        /* --once [--force] */
int cmd_sync(const struct config *cfg, int argc, char **argv);        /* sync [--full] [TABLE...] */
int cmd_replay(const struct config *cfg, int argc, char **argv);      /* replay [--rebuild|--skip SEQ] */
int cmd_status(const struct config *cfg, int argc, char **argv);      /* status [--json] */
int cmd_query(const struct config *cfg, int argc, char **argv);       /* query [--json|--csv] SQL */
int cmd_get(const struct config *cfg, int argc, char **argv);         /* get TABLE COL=VALUE */
int cmd_run(const struct config *cfg, int argc, char **argv);         /* run: the daemon */
int cmd_export(const struct config *cfg, int argc, char **argv);      /* export --snapshot|--delta */
int cmd_import(const struct config *cfg, int argc, char **argv);      /* import FILE */
int cmd_outbox(const struct config *cfg, int argc, char **argv);      /* outbox [--json] | retry ID | drop ID */

/* 1 when argv holds -h/--help (after argv[0]). */
int cmd_wants_help(int argc, char **argv);

#endif
