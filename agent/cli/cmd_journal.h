/* cmd_journal.h — `iptv-agent journal ls|verify|cat|compact`: inspect, check,
 * decode and trim the journal under storage.dir + "/journal".
 *
 * argv[0] is "journal". Prints results to stdout, messages to stderr. Exit:
 * 0 ok; 1 damage found or an operation failed; 2 usage. */
#ifndef IA_CMD_JOURNAL_H
#define IA_CMD_JOURNAL_H

struct config;

int cmd_journal(const struct config *cfg, int argc, char **argv);

#endif
