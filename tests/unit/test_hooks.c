/*
 * Unit tests for include/drdns/hooks.h: running hook programs from the event
 * loop.  Every test writes its hook scripts into its own mkdtemp directory,
 * uses its own uv_loop_t, runs it until nothing is left, closes it (which
 * proves the run left no handle behind) and removes the directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"

#include "drdns/error.h"
#include "drdns/fsutil.h"
#include "drdns/hooks.h"
#include "drdns/log.h"

/* ---- helpers ----------------------------------------------------------- */

struct outcome {
	uv_loop_t *loop;
	int calls;
	int handles_at_cb; /* live handles on the loop when the callback ran */
	struct drdns_hook_result res;
};

static int setup_dir(void **state)
{
	char *t = strdup("/tmp/drdns-test-hooks-XXXXXX");
	if (!t || !mkdtemp(t)) {
		free(t);
		return -1;
	}
	*state = t;
	return 0;
}

static int teardown_dir(void **state)
{
	char *t = *state;
	int rc = drdns_rm_rf(t);
	free(t);
	return rc == 0 ? 0 : -1;
}

static char *join(const char *dir, const char *name)
{
	char *p = NULL;
	assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
	return p;
}

/* Write dir/name as a /bin/sh script with the given body; returns its path. */
static char *write_script(const char *dir, const char *name, const char *body, unsigned mode)
{
	char *p = join(dir, name);
	char *text = NULL;
	assert_true(asprintf(&text, "#!/bin/sh\n%s\n", body) > 0);
	assert_int_equal(drdns_write_atomic(p, text, strlen(text), mode), 0);
	assert_int_equal(chmod(p, mode), 0);
	free(text);
	return p;
}

static char *read_all(const char *path)
{
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	assert_non_null(buf);
	size_t n;
	while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
		len += n;
		if (cap - len < 2) {
			cap *= 2;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
	}
	fclose(f);
	buf[len] = '\0';
	return buf;
}

static void count_handle(uv_handle_t *h, void *arg)
{
	(void)h;
	(*(int *)arg)++;
}

static void on_hook(const struct drdns_hook_result *res, void *arg)
{
	struct outcome *o = arg;
	o->calls++;
	o->res = *res;
	o->handles_at_cb = 0;
	uv_walk(o->loop, count_handle, &o->handles_at_cb);
}

/* Run path to completion on a fresh loop; the callback must come exactly once. */
static void run_ok(const char *name, const char *path, const char *const *env, double timeout,
                   struct outcome *o)
{
	uv_loop_t loop;
	assert_int_equal(uv_loop_init(&loop), 0);
	memset(o, 0, sizeof(*o));
	o->loop = &loop;
	assert_int_equal(drdns_hook_run(&loop, name, path, env, timeout, on_hook, o), 0);
	assert_int_equal(o->calls, 0); /* never synchronously */
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(o->calls, 1);
	assert_int_equal(o->handles_at_cb, 0);
	assert_int_equal(uv_loop_close(&loop), 0);
	o->loop = NULL;
}

/* Start path expecting the error want; the callback must never come. */
static void run_fails(const char *path, const char *const *env, double timeout, int want)
{
	uv_loop_t loop;
	struct outcome o = {0};
	assert_int_equal(uv_loop_init(&loop), 0);
	o.loop = &loop;
	assert_int_equal(drdns_hook_run(&loop, "on_alert", path, env, timeout, on_hook, &o), want);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(o.calls, 0);
	assert_int_equal(uv_loop_close(&loop), 0);
}

/* stderr (the log) into a file while a hook runs. */
static int capture_begin(const char *path)
{
	fflush(stderr);
	int saved = fcntl(2, F_DUPFD_CLOEXEC, 3);
	assert_true(saved >= 0);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(dup2(fd, 2), 2);
	close(fd);
	return saved;
}

static void capture_end(int saved)
{
	fflush(stderr);
	assert_int_equal(dup2(saved, 2), 2);
	close(saved);
}

static size_t count_of(const char *hay, const char *needle)
{
	size_t n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* True when the process is gone or a zombie (dead, not yet reaped by its new parent). */
static bool process_dead(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return true;
	char buf[512] = "";
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	const char *rp = strrchr(buf, ')');
	return !rp || rp[1] == '\0' || rp[2] == 'Z' || rp[2] == 'X';
}

static pid_t read_pid(const char *dir, const char *name)
{
	char *p = join(dir, name);
	char *text = read_all(p);
	pid_t pid = (pid_t)atoi(text);
	free(text);
	free(p);
	assert_true(pid > 1);
	return pid;
}

/* ---- results ----------------------------------------------------------- */

static void test_exit_zero(void **state)
{
	const char *dir = *state;
	char *path = write_script(dir, "hook.sh", "echo hello; exit 0", 0755);
	struct outcome o;
	run_ok("post_promote", path, NULL, 10, &o);
	assert_true(o.res.ok);
	assert_false(o.res.timed_out);
	assert_int_equal(o.res.exit_status, 0);
	assert_int_equal(o.res.term_signal, 0);
	assert_string_equal(o.res.detail, "exit 0");
	assert_true(o.res.seconds >= 0 && o.res.seconds < 10);
	free(path);
}

static void test_exit_three(void **state)
{
	const char *dir = *state;
	char *path = write_script(dir, "hook.sh", "echo failing >&2; exit 3", 0755);
	struct outcome o;
	run_ok("pre_promote", path, NULL, 10, &o);
	assert_false(o.res.ok);
	assert_false(o.res.timed_out);
	assert_int_equal(o.res.exit_status, 3);
	assert_int_equal(o.res.term_signal, 0);
	assert_string_equal(o.res.detail, "exit 3");
	free(path);
}

static void test_killed_by_signal(void **state)
{
	const char *dir = *state;
	char *path = write_script(dir, "hook.sh", "kill -9 $$", 0755);
	struct outcome o;
	run_ok("post_demote", path, NULL, 10, &o);
	assert_false(o.res.ok);
	assert_false(o.res.timed_out);
	assert_int_equal(o.res.term_signal, 9);
	assert_string_equal(o.res.detail, "killed by signal 9");
	free(path);
}

/* ---- environment and isolation ----------------------------------------- */

static bool has_line(const char *text, const char *line)
{
	size_t n = strlen(line);
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, line, n) == 0 && (p[n] == '\n' || p[n] == '\0'))
			return true;
	return false;
}

static bool has_prefix_line(const char *text, const char *prefix)
{
	size_t n = strlen(prefix);
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, prefix, n) == 0)
			return true;
	return false;
}

static void test_environment(void **state)
{
	const char *dir = *state;
	char *out = join(dir, "env.out");
	char *body = NULL;
	assert_true(asprintf(&body, "env > '%s'", out) > 0);
	char *path = write_script(dir, "hook.sh", body, 0755);
	assert_int_equal(setenv("HOME", "/home/drdns-test", 1), 0);
	assert_int_equal(setenv("DRDNS_TEST_PARENT_ONLY", "1", 1), 0);
	const char *env[] = {"DRDNS_ROLE=dr", "DRDNS_ZONE=example.com", "PATH=/evil",
	                     "DRDNS_EVENT=bogus", NULL};

	struct outcome o;
	run_ok("pre_promote", path, env, 10, &o);
	assert_true(o.res.ok);

	char *text = read_all(out);
	assert_true(has_line(text, "DRDNS_EVENT=pre_promote"));
	assert_true(has_line(text, "DRDNS_ROLE=dr"));
	assert_true(has_line(text, "DRDNS_ZONE=example.com"));
	assert_true(has_line(text, "PATH=/usr/sbin:/usr/bin:/sbin:/bin"));
	assert_true(has_line(text, "LANG=C"));
	assert_int_equal(count_of(text, "PATH="), 1);
	assert_int_equal(count_of(text, "DRDNS_EVENT="), 1);
	assert_false(has_prefix_line(text, "HOME="));
	assert_false(has_prefix_line(text, "DRDNS_TEST_PARENT_ONLY="));
	assert_false(has_prefix_line(text, "DRDNS_TEST_DATA="));

	unsetenv("DRDNS_TEST_PARENT_ONLY");
	free(text);
	free(path);
	free(body);
	free(out);
}

/* stdin is /dev/null and the hook leads its own process group. */
static void test_stdin_and_group(void **state)
{
	const char *dir = *state;
	char *path = write_script(dir, "hook.sh",
	                          "[ \"$(readlink /proc/$$/fd/0)\" = /dev/null ] || exit 7\n"
	                          "cat >/dev/null || exit 8\n"
	                          "pg=$(cut -d' ' -f5 /proc/$$/stat)\n"
	                          "[ \"$pg\" = \"$$\" ] || exit 9\n"
	                          "exit 0",
	                          0755);
	struct outcome o;
	run_ok("on_alert", path, NULL, 10, &o);
	assert_string_equal(o.res.detail, "exit 0");
	assert_true(o.res.ok);
	free(path);
}

/* ---- timeout and stray processes --------------------------------------- */

static void test_timeout_kills_group(void **state)
{
	const char *dir = *state;
	char *pidfile = join(dir, "bg.pid");
	char *body = NULL;
	assert_true(asprintf(&body, "sleep 30 &\necho $! > '%s'\nsleep 30", pidfile) > 0);
	char *path = write_script(dir, "hook.sh", body, 0755);

	struct outcome o;
	run_ok("pre_promote", path, NULL, 0.3, &o);
	assert_false(o.res.ok);
	assert_true(o.res.timed_out);
	assert_int_equal(o.res.term_signal, 9);
	assert_string_equal(o.res.detail, "timed out after 0.3 s");

	/* The background sleep was in the group: it died with the hook. */
	pid_t bg = read_pid(dir, "bg.pid");
	bool dead = false;
	for (int i = 0; i < 500 && !(dead = process_dead(bg)); i++)
		usleep(10000);
	if (!dead)
		kill(bg, SIGKILL);
	assert_true(dead);

	free(path);
	free(body);
	free(pidfile);
}

/* The hook exits but leaves a background process holding its output pipe:
 * the run still ends (after a short grace period) with the hook's status. */
static void test_background_keeps_pipe(void **state)
{
	const char *dir = *state;
	char *pidfile = join(dir, "bg.pid");
	char *body = NULL;
	assert_true(asprintf(&body, "sleep 30 &\necho $! > '%s'\necho started\nexit 0", pidfile) >
	            0);
	char *path = write_script(dir, "hook.sh", body, 0755);

	struct outcome o;
	run_ok("post_promote", path, NULL, 20, &o);
	assert_true(o.res.ok);
	assert_false(o.res.timed_out);
	assert_string_equal(o.res.detail, "exit 0");

	kill(read_pid(dir, "bg.pid"), SIGKILL);
	free(path);
	free(body);
	free(pidfile);
}

/* ---- output ------------------------------------------------------------ */

static void test_lots_of_output(void **state)
{
	const char *dir = *state;
	char *path = write_script(dir, "hook.sh", "yes | head -c 2000000", 0755);
	char *log = join(dir, "log.txt");

	drdns_log_init("test_hooks", false, DRDNS_LOG_DEBUG);
	int saved = capture_begin(log);
	struct outcome o;
	run_ok("on_alert", path, NULL, 60, &o);
	capture_end(saved);
	drdns_log_init("test_hooks", false, DRDNS_LOG_NOTICE);

	assert_true(o.res.ok);
	char *text = read_all(log);
	assert_int_equal(count_of(text, "output name=on_alert line=\"y\""), DRDNS_HOOK_MAX_LINES);
	assert_non_null(strstr(text, "dropped_lines=999950"));
	assert_non_null(strstr(text, "done name=on_alert"));
	free(text);
	free(log);
	free(path);
}

static void test_long_and_partial_lines(void **state)
{
	const char *dir = *state;
	char *path = write_script(dir, "hook.sh",
	                          "head -c 100000 /dev/zero | tr '\\000' x\n"
	                          "echo\n"
	                          "echo 'to stderr \"q\"' >&2\n"
	                          "printf 'last'",
	                          0755);
	char *log = join(dir, "log.txt");

	drdns_log_init("test_hooks", false, DRDNS_LOG_DEBUG);
	int saved = capture_begin(log);
	struct outcome o;
	run_ok("on_alert", path, NULL, 60, &o);
	capture_end(saved);
	drdns_log_init("test_hooks", false, DRDNS_LOG_NOTICE);
	assert_true(o.res.ok);

	char *text = read_all(log);
	char want[DRDNS_HOOK_MAX_LINE + 64];
	int n = snprintf(want, sizeof(want), "line=\"");
	memset(want + n, 'x', DRDNS_HOOK_MAX_LINE);
	strcpy(want + n + DRDNS_HOOK_MAX_LINE, "\" truncated=yes\n");
	assert_non_null(strstr(text, want));
	assert_non_null(strstr(text, "line=\"to stderr \\\"q\\\"\"\n"));
	assert_non_null(strstr(text, "line=\"last\"\n"));
	assert_null(strstr(text, "dropped_lines"));
	free(text);
	free(log);
	free(path);
}

/* ---- errors ------------------------------------------------------------ */

static void test_missing_path(void **state)
{
	const char *dir = *state;
	char *path = join(dir, "no-such-hook");
	run_fails(path, NULL, 10, DRDNS_EIO);
	free(path);
}

static void test_not_executable(void **state)
{
	const char *dir = *state;
	char *path = write_script(dir, "hook.sh", "exit 0", 0644);
	run_fails(path, NULL, 10, DRDNS_EIO);
	free(path);
}

static void test_invalid_arguments(void **state)
{
	const char *dir = *state;
	char *path = write_script(dir, "hook.sh", "exit 0", 0755);
	const char *bad_env[] = {"DRDNS_OK=1", "NOEQUALS", NULL};
	const char *bad_env2[] = {"=value", NULL};

	run_fails("", NULL, 10, DRDNS_EINVAL);
	run_fails(NULL, NULL, 10, DRDNS_EINVAL);
	run_fails(path, bad_env, 10, DRDNS_EINVAL);
	run_fails(path, bad_env2, 10, DRDNS_EINVAL);
	run_fails(path, NULL, 0, DRDNS_EINVAL);
	run_fails(path, NULL, -1, DRDNS_EINVAL);
	run_fails(path, NULL, NAN, DRDNS_EINVAL);

	uv_loop_t loop;
	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(drdns_hook_run(&loop, "", path, NULL, 10, on_hook, NULL), DRDNS_EINVAL);
	assert_int_equal(drdns_hook_run(&loop, "x", path, NULL, 10, NULL, NULL), DRDNS_EINVAL);
	assert_int_equal(drdns_hook_run(NULL, "x", path, NULL, 10, on_hook, NULL), DRDNS_EINVAL);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&loop), 0);
	free(path);
}

/* Several hooks on one loop at once, each with its own callback. */
static void test_concurrent(void **state)
{
	const char *dir = *state;
	char *a = write_script(dir, "a.sh", "sleep 0.2; exit 1", 0755);
	char *b = write_script(dir, "b.sh", "exit 0", 0755);
	uv_loop_t loop;
	assert_int_equal(uv_loop_init(&loop), 0);
	struct outcome oa = {.loop = &loop}, ob = {.loop = &loop};
	assert_int_equal(drdns_hook_run(&loop, "a", a, NULL, 10, on_hook, &oa), 0);
	assert_int_equal(drdns_hook_run(&loop, "b", b, NULL, 10, on_hook, &ob), 0);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(oa.calls, 1);
	assert_int_equal(ob.calls, 1);
	assert_string_equal(oa.res.detail, "exit 1");
	assert_string_equal(ob.res.detail, "exit 0");
	assert_int_equal(oa.handles_at_cb, 0); /* b finished first */
	assert_int_equal(uv_loop_close(&loop), 0);
	free(a);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_exit_zero, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_exit_three, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_killed_by_signal, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_environment, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_stdin_and_group, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_timeout_kills_group, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_background_keeps_pipe, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_lots_of_output, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_long_and_partial_lines, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_missing_path, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_not_executable, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_invalid_arguments, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_concurrent, setup_dir, teardown_dir),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
