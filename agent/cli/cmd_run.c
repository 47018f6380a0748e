/* cmd_run.c — `iptv-agent run`: its arguments and the token check, then the
 * daemon (daemon.h). */
#include "agent/cli/cmd.h"
#include "agent/config/config.h"
#include "agent/daemon/daemon.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char run_usage[] =
    "usage: iptv-agent run\n"
    "\n"
    "The daemon (also what `iptv-agent` with no command does): pulls every table on\n"
    "its schedule (full: every ttl; incremental: every interval, sweeping for deletions\n"
    "every sweep), serves the local HTTP API on [serve] listen, keeps serving from\n"
    "the cache while the portal is unreachable and catches up when it returns.\n"
    "Serves GET /export/snapshot and /export/delta?base=ID for edge agents (files\n"
    "kept under <dir>/exports/). With [upstream] url it is an edge: no portal, no\n"
    "[[table]]; it takes the hub's snapshot, then its deltas every upstream interval,\n"
    "and keeps serving from the cache while the hub is away.\n"
    "Compacts the journal after every completed snapshot and every [storage]\n"
    "compact_interval (as `iptv-agent journal compact`: applied, older than retain,\n"
    "superseded by a later complete snapshot); GET /status shows journal size and\n"
    "the last compaction.\n"
    "SIGTERM or SIGINT: finish or abandon the page in flight, exit 0.\n"
    "With [serve] token_env set, that variable must hold the API token (exit 2 when\n"
    "it is unset or empty). Without a token, writes through the local API are\n"
    "refused unless [serve] tokenless_writes = \"loopback\" or a client logged in.\n"
    "[serve] auth = \"portal\" (the default): /api/jsonsql/ needs a session from\n"
    "authorize_user (the [remote] username and password, or the token as password)\n"
    "or the token; with neither an account nor a token `run` cannot start (exit 1):\n"
    "set token_env, or auth = \"none\" for the open loopback API.\n"
    "Exit: 0 clean shutdown, 1 cannot start (storage, listen address), 2 configuration.\n";

int cmd_run(const struct config *cfg, int argc, char **argv)
{
    if (cmd_wants_help(argc, argv)) { fputs(run_usage, stdout); return 0; }
    if (argc > 1) { fprintf(stderr, "iptv-agent run: unexpected argument %s\n%s", argv[1], run_usage); return 2; }
    const char *token = cfg->serve.token_env ? getenv(cfg->serve.token_env) : NULL;
    if (token && !*token) token = NULL;
    /* Asking for a token and not getting one would leave the API open without
     * a word: refuse to start instead. */
    if (cfg->serve.token_env && !token) {
        fprintf(stderr, "iptv-agent run: %s:%d: [serve] token_env names %s, but that environment variable is %s: "
                        "export it (the API token), or remove token_env to serve loopback clients without one; "
                        "refusing to start\n", cfg->path, cfg->serve.token_env_line, cfg->serve.token_env,
                getenv(cfg->serve.token_env) ? "empty" : "unset");
        return 2;
    }
    if (!token && !config_listen_is_loopback(cfg->serve.listen)) {
        fprintf(stderr, "iptv-agent run: listen %s is not loopback and no token is set (export %s): refusing to start\n",
                cfg->serve.listen, cfg->serve.token_env ? cfg->serve.token_env : "the variable named by token_env");
        return 2;
    }
    /* authorize_user on the local API accepts the [remote] account ([serve] auth = "portal"). */
    const char *password = getenv(cfg->remote.password_env ? cfg->remote.password_env : "IPTVPORTAL_PASSWORD");
    return daemon_run(cfg, token, password && *password ? password : NULL);
}
