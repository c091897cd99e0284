/*
 * The control command table, shared by drdnsd (which dispatches on it) and
 * drdnsctl (which builds requests and its --help from it).  A new command is a
 * new enum drdns_ctl_cmd value and a new row here; --help lists the commands
 * in enum order.
 */
#include "drdns/ctl.h"

#include <stddef.h>
#include <string.h>

static const struct drdns_ctl_cmd_info commands[] = {
    {DRDNS_CMD_STATUS, "status", "",
     "role, state, master health, secondaries' serials and lag, time left, alerts", false, false},
    {DRDNS_CMD_PROMOTE, "promote", "--reason TEXT [--dry-run] [--yes] [--force] [--wait SECONDS]",
     "make this controller the primary for the DR zone set", true, true},
    {DRDNS_CMD_DEMOTE, "demote", "--reason TEXT [--dry-run] [--yes] [--wait SECONDS]",
     "fail back: stop serving the DR set once the master is ahead on every zone", true, true},
    {DRDNS_CMD_PAUSE, "pause", "--reason TEXT",
     "switch the watchdog's automatic actions off (kept across restarts)", false, true},
    {DRDNS_CMD_RESUME, "resume", "[--reason TEXT]", "switch the watchdog's automatic actions on",
     false, true},
    {DRDNS_CMD_RELOAD, "reload", "",
     "re-read the configuration and the DR zone set (as SIGHUP); keep the old ones on error", false,
     false},
    {DRDNS_CMD_CHECK, "check", "",
     "check the DR zone set (read-only): validity, advice, and what it leaves out of the campus "
     "zones (AXFR from the master)",
     false, false},
    {DRDNS_CMD_DRILL, "drill", "[--zone ZONE] [--preflight-only] [--wait SECONDS] [--reason TEXT]",
     "DR drill: a read-only pre-flight, then a live promote and return of the drill zone only",
     false, true},
    {DRDNS_CMD_RESIGN, "resign", "--reason TEXT [--dry-run] [--yes] [--force] [--wait SECONDS]",
     "while promoted: sign the served zones afresh under the next serial, and NOTIFY", true, true},
    {DRDNS_CMD_ACK, "ack", "ID --reason TEXT",
     "acknowledge an alert (status lists the ids): it stops repeating; who and why are recorded",
     false, true},
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

const struct drdns_ctl_cmd_info *drdns_ctl_cmd_info(enum drdns_ctl_cmd cmd)
{
	for (size_t i = 0; i < N_COMMANDS; i++)
		if (commands[i].cmd == cmd)
			return &commands[i];
	return NULL;
}

const char *drdns_ctl_cmd_name(enum drdns_ctl_cmd cmd)
{
	const struct drdns_ctl_cmd_info *info = drdns_ctl_cmd_info(cmd);
	return info ? info->name : "unknown";
}

enum drdns_ctl_cmd drdns_ctl_cmd_parse(const char *name)
{
	for (size_t i = 0; name && i < N_COMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return commands[i].cmd;
	return DRDNS_CMD_UNKNOWN;
}
