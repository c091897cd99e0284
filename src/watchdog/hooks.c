/*
 * Hooks (see include/drdns/hooks.h): run an operator program at an event
 * without blocking the event loop.
 *
 * One run owns three libuv handles: the process, one pipe that carries both
 * the child's stdout and stderr (so lines keep their order), and a timer.  The
 * timer first enforces the timeout (SIGKILL to the whole process group, which
 * uv_spawn's UV_PROCESS_DETACHED makes the child the leader of); once the
 * process has exited it is reused as a grace period: programs the hook left
 * running in the background may keep the pipe open, so after HOOK_GRACE_MS the
 * pipe is closed without waiting for EOF.  The caller's callback runs from the
 * close callback of the last handle, so when it is called the run holds nothing
 * on the loop any more.
 *
 * Output is split into lines; each is logged as
 *   [hook] output name=<event> line="<text>"
 * with '"' and '\' escaped and control characters replaced by '?'.  A line
 * longer than DRDNS_HOOK_MAX_LINE bytes is cut (truncated=yes); after
 * DRDNS_HOOK_MAX_LINES lines the rest is read and dropped, and the number of
 * dropped lines is logged once at the end.
 */
#include "drdns/hooks.h"

#include "drdns/error.h"
#include "drdns/log.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#define HOOK_PATH        "PATH=/usr/sbin:/usr/bin:/sbin:/bin"
#define HOOK_LANG        "LANG=C"
#define HOOK_GRACE_MS    1000
#define HOOK_MAX_TIMEOUT 1e7 /* seconds; longer timeouts are clamped (about 115 days) */

struct hook_run {
	uv_process_t proc;
	uv_pipe_t out;
	uv_timer_t timer;
	int handles;  /* initialised handles not yet closed */
	bool started; /* the process was spawned: the callback is due */
	bool exited;
	bool out_closing;
	bool timer_closing;
	bool timed_out;
	int64_t exit_status;
	int term_signal;
	uint64_t start_ns;
	uint64_t end_ns;
	double timeout;
	char *name;
	char *path;
	drdns_hook_cb cb;
	void *arg;

	/* output */
	char line[DRDNS_HOOK_MAX_LINE];
	size_t line_len;
	bool line_cut;    /* the current line is longer than DRDNS_HOOK_MAX_LINE */
	bool line_any;    /* the current line has at least one byte */
	size_t n_lines;   /* lines logged */
	size_t n_dropped; /* lines beyond DRDNS_HOOK_MAX_LINES */
	char buf[65536];
};

static void run_free(struct hook_run *r)
{
	free(r->name);
	free(r->path);
	free(r);
}

/* ---- output ------------------------------------------------------------ */

static void emit_line(struct hook_run *r)
{
	if (!r->line_any)
		return;
	if (r->n_lines >= DRDNS_HOOK_MAX_LINES) {
		r->n_dropped++;
	} else {
		/* Each byte becomes at most two: fits well within the logger's buffer. */
		char text[2 * DRDNS_HOOK_MAX_LINE + 1];
		size_t len = r->line_len, o = 0;
		if (len > 0 && r->line[len - 1] == '\r' && !r->line_cut)
			len--;
		for (size_t i = 0; i < len; i++) {
			unsigned char c = (unsigned char)r->line[i];
			if (c == '"' || c == '\\') {
				text[o++] = '\\';
				text[o++] = (char)c;
			} else if (c < 0x20 || c == 0x7f) {
				text[o++] = c == '\t' ? ' ' : '?';
			} else {
				text[o++] = (char)c;
			}
		}
		text[o] = '\0';
		drdns_log(DRDNS_LOG_INFO, "hook", "output name=%s line=\"%s\"%s", r->name, text,
		          r->line_cut ? " truncated=yes" : "");
		r->n_lines++;
	}
	r->line_len = 0;
	r->line_cut = false;
	r->line_any = false;
}

static void take_output(struct hook_run *r, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n') {
			r->line_any = true;
			emit_line(r);
			continue;
		}
		r->line_any = true;
		if (r->n_lines >= DRDNS_HOOK_MAX_LINES)
			continue; /* only counted */
		if (r->line_len < sizeof(r->line))
			r->line[r->line_len++] = p[i];
		else
			r->line_cut = true;
	}
}

/* ---- completion -------------------------------------------------------- */

static void finish(struct hook_run *r)
{
	struct drdns_hook_result res = {0};
	res.timed_out = r->timed_out;
	res.term_signal = r->term_signal;
	res.exit_status = r->term_signal ? 0 : (int)r->exit_status;
	res.ok = !r->timed_out && r->term_signal == 0 && r->exit_status == 0;
	res.seconds = (double)(r->end_ns - r->start_ns) / 1e9;
	if (r->timed_out)
		snprintf(res.detail, sizeof(res.detail), "timed out after %g s", r->timeout);
	else if (r->term_signal)
		snprintf(res.detail, sizeof(res.detail), "killed by signal %d", r->term_signal);
	else
		snprintf(res.detail, sizeof(res.detail), "exit %d", res.exit_status);

	if (r->n_dropped)
		drdns_log(DRDNS_LOG_NOTICE, "hook", "output name=%s dropped_lines=%zu", r->name,
		          r->n_dropped);
	drdns_log(res.ok ? DRDNS_LOG_INFO : DRDNS_LOG_WARNING, "hook",
	          "done name=%s path=%s ok=%s result=\"%s\" seconds=%.3f", r->name, r->path,
	          res.ok ? "yes" : "no", res.detail, res.seconds);

	drdns_hook_cb cb = r->cb;
	void *arg = r->arg;
	run_free(r);
	cb(&res, arg);
}

static void hook_close_cb(uv_handle_t *h)
{
	struct hook_run *r = h->data;
	if (--r->handles > 0)
		return;
	if (r->started)
		finish(r);
	else
		run_free(r);
}

/* Close the timer once the process has exited and the pipe is done. */
static void maybe_done(struct hook_run *r)
{
	if (r->exited && r->out_closing && !r->timer_closing) {
		r->timer_closing = true;
		uv_close((uv_handle_t *)&r->timer, hook_close_cb);
	}
}

static void close_output(struct hook_run *r)
{
	if (r->out_closing)
		return;
	emit_line(r); /* a last line without a newline */
	r->out_closing = true;
	uv_close((uv_handle_t *)&r->out, hook_close_cb);
	maybe_done(r);
}

/* ---- callbacks --------------------------------------------------------- */

static void hook_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct hook_run *r = h->data;
	(void)suggested;
	*buf = uv_buf_init(r->buf, sizeof(r->buf));
}

static void hook_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct hook_run *r = s->data;
	if (nread > 0) {
		take_output(r, buf->base, (size_t)nread);
		return;
	}
	if (nread == 0)
		return;
	if (nread != UV_EOF)
		drdns_log(DRDNS_LOG_WARNING, "hook", "read name=%s error=\"%s\"", r->name,
		          uv_strerror((int)nread));
	close_output(r);
}

static void hook_timer_cb(uv_timer_t *t)
{
	struct hook_run *r = t->data;
	if (r->exited) {
		/* Grace period over: something the hook started still holds the pipe. */
		drdns_log(DRDNS_LOG_NOTICE, "hook",
		          "output name=%s still open after exit, closing it (background process?)",
		          r->name);
		close_output(r);
		return;
	}
	r->timed_out = true;
	drdns_log(DRDNS_LOG_WARNING, "hook", "timeout name=%s path=%s pid=%d timeout=%g, killing",
	          r->name, r->path, r->proc.pid, r->timeout);
	if (kill(-r->proc.pid, SIGKILL) < 0 && errno != ESRCH)
		drdns_log(DRDNS_LOG_WARNING, "hook", "kill name=%s pgid=%d error=\"%s\"", r->name,
		          r->proc.pid, strerror(errno));
}

static void hook_exit_cb(uv_process_t *p, int64_t exit_status, int term_signal)
{
	struct hook_run *r = p->data;
	r->end_ns = uv_hrtime();
	r->exited = true;
	r->exit_status = exit_status;
	r->term_signal = term_signal;
	uv_close((uv_handle_t *)&r->proc, hook_close_cb);
	uv_timer_stop(&r->timer);
	if (!r->out_closing)
		uv_timer_start(&r->timer, hook_timer_cb, HOOK_GRACE_MS, 0);
	maybe_done(r);
}

/* ---- API --------------------------------------------------------------- */

/* The child's environment: fixed entries first, then the caller's, minus any
 * that would override a fixed one.  The strings belong to the caller, except
 * *event, which the caller frees. */
static int build_env(const char *name, const char *const *env, char ***out, char **event)
{
	size_t n = 0;
	if (env)
		while (env[n])
			n++;
	for (size_t i = 0; i < n; i++) {
		const char *eq = strchr(env[i], '=');
		if (!eq || eq == env[i])
			return DRDNS_EINVAL;
	}
	char **e = calloc(n + 4, sizeof(*e));
	if (!e || asprintf(event, "DRDNS_EVENT=%s", name) < 0) {
		free(e);
		*event = NULL;
		return DRDNS_ENOMEM;
	}
	size_t k = 0;
	e[k++] = (char *)HOOK_PATH;
	e[k++] = (char *)HOOK_LANG;
	e[k++] = *event;
	for (size_t i = 0; i < n; i++) {
		if (strncmp(env[i], "PATH=", 5) == 0 || strncmp(env[i], "LANG=", 5) == 0 ||
		    strncmp(env[i], "DRDNS_EVENT=", 12) == 0)
			continue;
		e[k++] = (char *)env[i];
	}
	e[k] = NULL;
	*out = e;
	return 0;
}

int drdns_hook_run(uv_loop_t *loop, const char *name, const char *path, const char *const *env,
                   double timeout, drdns_hook_cb cb, void *arg)
{
	if (!loop || !name || !*name || !path || !*path || !cb || !(timeout > 0))
		return DRDNS_EINVAL;
	if (timeout > HOOK_MAX_TIMEOUT)
		timeout = HOOK_MAX_TIMEOUT;

	char **envp = NULL, *event = NULL;
	int rc = build_env(name, env, &envp, &event);
	if (rc)
		return rc;

	struct hook_run *r = calloc(1, sizeof(*r));
	if (!r || !(r->name = strdup(name)) || !(r->path = strdup(path))) {
		if (r)
			run_free(r);
		free(envp);
		free(event);
		return DRDNS_ENOMEM;
	}
	r->cb = cb;
	r->arg = arg;
	r->timeout = timeout;

	uv_file fds[2];
	rc = uv_pipe(fds, 0, 0);
	if (rc) {
		drdns_log(DRDNS_LOG_WARNING, "hook", "pipe name=%s error=\"%s\"", name,
		          uv_strerror(rc));
		run_free(r);
		free(envp);
		free(event);
		return DRDNS_EIO;
	}

	/* From here on, initialised handles are released through hook_close_cb. */
	uv_timer_init(loop, &r->timer);
	r->timer.data = r;
	r->handles++;
	uv_pipe_init(loop, &r->out, 0);
	r->out.data = r;
	r->handles++;
	rc = uv_pipe_open(&r->out, fds[0]);
	if (rc) {
		drdns_log(DRDNS_LOG_WARNING, "hook", "pipe name=%s error=\"%s\"", name,
		          uv_strerror(rc));
		close(fds[0]);
		close(fds[1]);
		goto fail_handles;
	}

	uv_stdio_container_t stdio[3] = {
	    {.flags = UV_IGNORE},
	    {.flags = UV_INHERIT_FD, .data.fd = fds[1]},
	    {.flags = UV_INHERIT_FD, .data.fd = fds[1]},
	};
	char *args[] = {r->path, NULL};
	uv_process_options_t opt = {
	    .exit_cb = hook_exit_cb,
	    .file = r->path,
	    .args = args,
	    .env = envp,
	    .flags = UV_PROCESS_DETACHED,
	    .stdio_count = 3,
	    .stdio = stdio,
	};
	r->proc.data = r;
	r->start_ns = uv_hrtime();
	rc = uv_spawn(loop, &r->proc, &opt);
	close(fds[1]); /* the child has its copy of the write end (or there is no child) */
	free(envp);
	free(event);
	envp = NULL;
	event = NULL;
	if (rc) {
		drdns_log(DRDNS_LOG_WARNING, "hook", "start name=%s path=%s error=\"%s\"", name,
		          path, uv_strerror(rc));
		/* uv_spawn initialised the process handle even though it failed. */
		r->handles++;
		uv_close((uv_handle_t *)&r->proc, hook_close_cb);
		goto fail_handles;
	}
	r->handles++;
	r->started = true;
	drdns_log(DRDNS_LOG_DEBUG, "hook", "start name=%s path=%s pid=%d timeout=%g", name, path,
	          r->proc.pid, timeout);

	double ms = timeout * 1000.0;
	uint64_t timeout_ms = (uint64_t)ms; /* rounded up, so never 0 */
	if ((double)timeout_ms < ms)
		timeout_ms++;
	uv_timer_start(&r->timer, hook_timer_cb, timeout_ms, 0);
	rc = uv_read_start((uv_stream_t *)&r->out, hook_alloc_cb, hook_read_cb);
	if (rc) {
		drdns_log(DRDNS_LOG_WARNING, "hook", "read name=%s error=\"%s\"", name,
		          uv_strerror(rc));
		close_output(r);
	}
	return 0;

fail_handles:
	free(envp);
	free(event);
	uv_close((uv_handle_t *)&r->out, hook_close_cb);
	uv_close((uv_handle_t *)&r->timer, hook_close_cb);
	return DRDNS_EIO;
}
