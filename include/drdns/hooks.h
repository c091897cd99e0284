/*
 * Hooks: operator programs run at events (pre_promote, post_promote,
 * post_demote, on_alert), without ever blocking the event loop.
 *
 * A hook runs as `path` with no arguments, stdin from /dev/null, in its own
 * process group, with an environment of PATH=/usr/sbin:/usr/bin:/sbin:/bin,
 * LANG=C, and the DRDNS_* variables given (DRDNS_EVENT is always set to the
 * hook's name).  Each line it writes on stdout or stderr is logged
 * (group "hook", at most DRDNS_HOOK_MAX_LINES lines of DRDNS_HOOK_MAX_LINE
 * bytes; the rest is read and dropped).  When it runs longer than timeout
 * seconds its whole process group is killed (SIGKILL) and it counts as failed.
 */
#ifndef DRDNS_HOOKS_H
#define DRDNS_HOOKS_H

#include <stdbool.h>
#include <uv.h>

#define DRDNS_HOOK_MAX_LINES 50
#define DRDNS_HOOK_MAX_LINE  512

struct drdns_hook_result {
	bool ok;          /* exited with status 0 */
	bool timed_out;   /* killed after timeout */
	int exit_status;  /* valid when it exited (not signalled) */
	int term_signal;  /* 0, or the signal that ended it */
	double seconds;   /* run time */
	char detail[128]; /* "exit 0", "exit 3", "timed out after 30 s", "killed by signal 9" */
};

/* Called once, from the loop, after the process ended and its output was read.
 * result is valid only during the call. */
typedef void (*drdns_hook_cb)(const struct drdns_hook_result *result, void *arg);

/* Run the hook.  name: "pre_promote", ... (DRDNS_EVENT and log lines).  env:
 * "NAME=value" strings, NULL-terminated (copied; may be NULL).  Returns 0 and
 * calls cb later, or an error (then cb is never called): DRDNS_EINVAL for an
 * empty path, DRDNS_EIO when the program cannot be started (the log says why). */
int drdns_hook_run(uv_loop_t *loop, const char *name, const char *path, const char *const *env,
                   double timeout, drdns_hook_cb cb, void *arg);

#endif
