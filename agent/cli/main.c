/* main.c — iptv-agent's entry point: global options, configuration, logging,
 * and dispatch to the commands (cmd.h). The only place that sets process-wide
 * state (log level, libcurl's global init, signal dispositions). */
#include "agent/cli/cmd.h"
#include "agent/cli/cmd_journal.h"
#include "agent/config/config.h"
#include "agent/base/err.h"
#include "agent/base/log.h"

#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "usage: iptv-agent [-c|--config PATH] [--log-level L] [--log-format F] --once [--force]\n"
    "       iptv-agent [-c|--config PATH] [--log-level L] [--log-format F] COMMAND [ARGS]\n"
    "       (-c, --log-level and --log-format may also follow the command, up to a \"--\")\n"
    "\n"
    "An offline-first replication agent for IPTVPortal's JSONSQL API: pulls portal\n"
    "tables through a checksummed journal into a SQLite cache (cache.db).\n"
    "\n"
    "  --once [--force]         apply the journal, pull every table that is due (--force: all),\n"
    "                           apply, print a summary, exit (0 ok, 1 a table failed, 2 usage)\n"
    "Commands:\n"
    "  run                      the daemon (the default): scheduled pulls + local HTTP API\n"
    "  sync [--full] [TABLE...] pull now (--full: snapshot even incremental tables)\n"
    "  status [--json]          per table: rows, mark, last success, age, stale, errors\n"
    "  query [--json|--csv] SQL read-only SQL on cache.db\n"
    "  get TABLE COLUMN=VALUE   look a row up; on_demand tables fetch a miss from the portal\n"
    "  outbox [--json]          writes queued while the portal was unreachable, and their state\n"
    "  outbox retry|drop ID     send a sent op again (read back first) / drop an open op (reverts it)\n"
    "  replay [--rebuild]       apply pending journal records; --rebuild: cache.db from the journal\n"
    "  replay --skip SEQ        pass by a journal record replay refuses for good (see replay --help)\n"
    "  remote JSON              send one JSONSQL statement to the portal, print rows as JSON lines\n"
    "  introspect TABLE         learn a portal table's columns, types, row count; print a [[table]] block\n"
    "  journal ls|verify|cat|compact\n"
    "                           inspect, check, decode and trim the journal\n"
    "  export --snapshot FILE | --delta --base BASE OUT\n"
    "                           a snapshot of cache.db / the changes since snapshot BASE\n"
    "  import FILE              verify and load a snapshot or apply a delta\n"
    "  COMMAND --help           help for one command\n"
    "\n"
    "Options:\n"
    "  -c, --config PATH        agent.toml to use (default: $IPTV_AGENT_CONFIG, ./agent.toml,\n"
    "                           /etc/iptv-agent/agent.toml, else built-in defaults + environment)\n"
    "  --log-level L            debug|info|warn|error|off (default info); logs go to stderr\n"
    "  --log-format F           text|json (default text)\n"
    "  --version                print the version\n"
    "  -h, --help               this help\n"
    "\n"
    "Environment: IPTVPORTAL_DOMAIN, IPTVPORTAL_USERNAME and the password variable named by\n"
    "[remote] password_env (default IPTVPORTAL_PASSWORD) fill what agent.toml leaves out.\n"
    "Exit status: 0 ok, 1 failure, 2 usage or configuration error.\n";

struct command {
    const char *name;
    int (*run)(const struct config *cfg, int argc, char **argv);
};

static const struct command commands[] = {
    {"once", cmd_once},         /* reached through --once */
    {"run", cmd_run},
    {"sync", cmd_sync},
    {"status", cmd_status},
    {"query", cmd_query},
    {"get", cmd_get},
    {"replay", cmd_replay},
    {"remote", cmd_remote},
    {"introspect", cmd_introspect},
    {"journal", cmd_journal},
    {"export", cmd_export},
    {"import", cmd_import},
    {"outbox", cmd_outbox},
};

static const char *default_config_path(void)
{
    const char *env = getenv("IPTV_AGENT_CONFIG");
    if (env && *env) return env;
    if (access("agent.toml", F_OK) == 0) return "agent.toml";
    if (access("/etc/iptv-agent/agent.toml", F_OK) == 0) return "/etc/iptv-agent/agent.toml";
    return NULL;
}

/* One global option at argv[i] (-c/--config, --log-level, --log-format with
 * their value): 1 taken (*i moved past its value), 0 not a global option,
 * -1 a bad value (printed; exit 2). */
static int global_option(int argc, char **argv, int *i, const char **config_path, enum log_level *level,
                         enum log_format *format)
{
    const char *a = argv[*i], *val = *i + 1 < argc ? argv[*i + 1] : NULL;
    if (!strcmp(a, "-c") || !strcmp(a, "--config")) {
        if (!val) { fprintf(stderr, "iptv-agent: %s needs a PATH\n", a); return -1; }
        *config_path = val;
    } else if (!strcmp(a, "--log-level")) {
        if (!val || log_parse_level(val, level) != 0) {
            fprintf(stderr, "iptv-agent: --log-level %s: expected debug, info, warn, error or off\n", val ? val : "");
            return -1;
        }
    } else if (!strcmp(a, "--log-format")) {
        if (!val || log_parse_format(val, format) != 0) {
            fprintf(stderr, "iptv-agent: --log-format %s: expected text or json\n", val ? val : "");
            return -1;
        }
    } else {
        return 0;
    }
    (*i)++;
    return 1;
}

int main(int argc, char **argv)
{
    const char *config_path = NULL;
    enum log_level level = LOG_INFO;
    enum log_format format = LOG_TEXT;
    int i = 1, once = 0;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--once")) { once = 1; break; }   /* the rest are its arguments */
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { fputs(usage, stdout); return 0; }
        if (!strcmp(a, "--version")) { printf("iptv-agent %s\n", IA_VERSION); return 0; }
        int g = global_option(argc, argv, &i, &config_path, &level, &format);
        if (g < 0) return 2;
        if (g > 0) continue;
        fprintf(stderr, "iptv-agent: unknown option %s (see --help)\n", a);
        return 2;
    }
    /* Global options may also follow the command (`status -c x`), up to a "--"
     * (dropped): after it everything is the command's. They are taken out of
     * the command's arguments. */
    int kept = i + 1;
    for (int k = i + 1; k < argc; k++) {
        if (!strcmp(argv[k], "--")) {
            while (++k < argc) argv[kept++] = argv[k];
            break;
        }
        int g = global_option(argc, argv, &k, &config_path, &level, &format);
        if (g < 0) return 2;
        if (g == 0) argv[kept++] = argv[k];
    }
    if (i < argc) {
        argc = kept;
        argv[argc] = NULL;
    }
    /* No command: the daemon (docs/interface.md). */
    static char run_name[] = "run";
    char *run_argv[] = {run_name, NULL};
    if (i >= argc) {
        argv = run_argv;
        argc = 1;
        i = 0;
    }
    const struct command *cmd = NULL;
    const char *name = once ? "once" : argv[i];
    for (size_t k = 0; k < sizeof commands / sizeof commands[0]; k++)
        if (!strcmp(name, commands[k].name) && (once || k > 0)) cmd = &commands[k];
    if (!cmd) {
        fprintf(stderr, "iptv-agent: unknown command \"%s\" (see --help)\n", argv[i]);
        return 2;
    }
    log_init(level, format);

    struct config cfg;
    char err[IA_ERRLEN];
    if (!config_path) config_path = default_config_path();
    int rc = config_path ? config_load(config_path, &cfg, err, sizeof err)
                         : config_parse("<defaults>", "", 0, &cfg, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "iptv-agent: %s\n", err);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    /* A file-size limit (RLIMIT_FSIZE) must fail the write with EFBIG, which the
     * journal reports and undoes, not kill the process mid-record. */
    signal(SIGXFSZ, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmd->run(&cfg, argc - i, argv + i);
    curl_global_cleanup();
    config_free(&cfg);
    return rc;
}
