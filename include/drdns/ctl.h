/*
 * Control channel between drdnsctl and drdnsd: a UNIX stream socket, mode 0660,
 * created under a strict umask.
 *
 * Protocol (versioned like nsd-control):
 *   daemon -> client   "drdns-control 1\n"            (hello)
 *   client -> daemon   "drdns-control 1\n"            (the client's version)
 *   client -> daemon   one JSON object on one line:  {"command":"promote", ...}
 *   daemon -> client   one JSON object on one line:  {"exit":0, ...}, then close
 * A version mismatch is an error on both sides with a message naming both versions.
 * Requests larger than DRDNS_CTL_MAX_REQUEST are refused.
 *
 * Every reply carries "exit" (the drdnsctl exit code, see enum drdns_exit),
 * "command", and either the command's result fields or "error" (text).
 *
 * Refused transfers (stable): every per-secondary row of promote, resign,
 * demote (and the step-down), drill (per secondary and per step) and status
 * carries "transfer_refused": null, or, when drdnsd refused a transfer that
 * explains why the secondary did not converge (status: is behind):
 *   {"source": "127.0.0.111",            the refused request's address
 *    "zone": "example.edu.",
 *    "signed": false, "key": null | "key-name.",
 *    "reason": "not-allowed" | "tsig-badkey" | "tsig-badsig" | "tsig-badtime",
 *    "count": n, "first": t, "last": t,  identical refusals merged; Unix times
 *    "possibly": bool,                   from an address no secondary is known
 *                                        by: every unconverged one gets it
 *    "text": "transfer of example.edu. from 127.0.0.111 refused (not an allowed
 *             address): add it to secondaries[ns1].transfer_sources or
 *             controller.allow_transfer, or give the secondary a TSIG key"}
 * (notify.h drdns_converge_refusal_json; status also lists the text in alerts.)
 */
#ifndef DRDNS_CTL_H
#define DRDNS_CTL_H

#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>
#include <uv.h>

#define DRDNS_CTL_VERSION     1
#define DRDNS_CTL_HELLO       "drdns-control 1"
#define DRDNS_CTL_MAX_REQUEST 65536

/* Stable exit codes (runbooks rely on them). */
enum drdns_exit {
	DRDNS_EXIT_OK = 0,      /* done, every secondary converged */
	DRDNS_EXIT_ERROR = 1,   /* error, nothing changed */
	DRDNS_EXIT_USAGE = 2,   /* usage error */
	DRDNS_EXIT_PARTIAL = 3, /* done, some secondaries did not converge in --wait */
	DRDNS_EXIT_REFUSED = 4, /* refused by a safety check */
};

/* The command table shared by drdnsctl and drdnsd. */
enum drdns_ctl_cmd {
	DRDNS_CMD_STATUS,
	DRDNS_CMD_PROMOTE,
	DRDNS_CMD_DEMOTE,
	DRDNS_CMD_PAUSE,
	DRDNS_CMD_RESUME,
	DRDNS_CMD_RELOAD,
	DRDNS_CMD_CHECK,
	DRDNS_CMD_DRILL,
	DRDNS_CMD_RESIGN,
	DRDNS_CMD_ACK,
	DRDNS_CMD_UNKNOWN,
};
const char *drdns_ctl_cmd_name(enum drdns_ctl_cmd cmd);
enum drdns_ctl_cmd drdns_ctl_cmd_parse(const char *name);

/* One row of the command table (src/ctl/commands.c).  Adding a command means
 * adding an enum value above and a row there. */
struct drdns_ctl_cmd_info {
	enum drdns_ctl_cmd cmd;
	const char *name;    /* "promote" */
	const char *args;    /* argument synopsis for usage, "" if none */
	const char *summary; /* one line for --help */
	bool changes_state;  /* needs --reason, confirmation (--yes), is audited */
	bool takes_reason;   /* accepts --reason (pause, resume; required for changes_state) */
};
/* The row for cmd, or NULL for DRDNS_CMD_UNKNOWN. */
const struct drdns_ctl_cmd_info *drdns_ctl_cmd_info(enum drdns_ctl_cmd cmd);

/* ---- daemon side ---- */

struct drdns_ctl_server;
struct drdns_ctl_request;

/* Who sent a request: the peer credentials from the socket (authoritative) and
 * what the client reported (SUDO_USER, SSH_CLIENT; informational). */
struct drdns_ctl_peer {
	uid_t uid;
	gid_t gid;
	pid_t pid;
};

/* Called for each complete, version-checked request.  body is borrowed for the
 * duration of the request (until drdns_ctl_reply).  The handler must eventually
 * call drdns_ctl_reply exactly once, now or later from the loop. */
typedef void (*drdns_ctl_handler)(struct drdns_ctl_request *req, const json_t *body,
                                  const struct drdns_ctl_peer *peer, void *arg);

/* Listen on path (an existing stale socket file is replaced; a live one is an
 * error: another drdnsd runs, -EADDRINUSE; a file that is not a socket is never
 * removed, -EEXIST).  The parent directory is created 0750 if missing.  Only
 * known commands (drdns_ctl_cmd_parse) reach the handler; the rest get an
 * exit-2 reply.  SIGPIPE is set to SIG_IGN if it was at its default.  On
 * failure nothing is left to free once the loop has run (handles close
 * asynchronously). */
int drdns_ctl_server_new(uv_loop_t *loop, const char *path, drdns_ctl_handler handler, void *arg,
                         struct drdns_ctl_server **out);

/* Clients that have not sent their hello and request within ms milliseconds are
 * sent an error and disconnected (default 30000).  Mainly for tests. */
void drdns_ctl_server_set_idle_timeout(struct drdns_ctl_server *srv, unsigned ms);

/* The command of a request ("promote"), valid until drdns_ctl_reply. */
const char *drdns_ctl_request_command(const struct drdns_ctl_request *req);

/* Send the reply (reference stolen) and close the connection.  A reply without
 * "command" gets the request's; one without an integer "exit" gets exit 1 (and
 * an error is logged).  If the client has gone away, or the server was closed,
 * the reply is dropped: the request outlives its connection, so a late call is
 * always safe.  Frees req. */
void drdns_ctl_reply(struct drdns_ctl_request *req, json_t *reply);

/* Close the listener and every connection; pending requests are detached (their
 * handlers still call drdns_ctl_reply, which then drops the reply).  Removes the
 * socket file if it is still the one this server bound.  srv is freed once the
 * loop has run its close callbacks. */
void drdns_ctl_server_close(struct drdns_ctl_server *srv);

/* ---- client side (blocking; used by drdnsctl) ---- */

/* Connect to path, check the hello, send request, wait up to timeout seconds
 * (<= 0: forever) for the reply.  *reply is a new reference.  On failure returns
 * a negative error and writes a message to err. */
int drdns_ctl_call(const char *path, const json_t *request, double timeout, json_t **reply,
                   char *err, size_t errlen);

#endif
