/* daemon.h — the daemon: the scheduler, the workers and the local API
 * (daemon.c says how they share the journal and cache.db). */
#ifndef IA_DAEMON_H
#define IA_DAEMON_H

struct config;

/* Runs until SIGTERM or SIGINT; token is the API token (NULL: none; the caller
 * checked it against [serve]); password the [remote] account's (NULL: none),
 * which the local API's authorize_user accepts with [remote] username. Reports failures on stderr. Returns the exit
 * code: 0 clean shutdown, 1 cannot start (storage, listen address), 2 config. */
int daemon_run(const struct config *cfg, const char *token, const char *password);

#endif
