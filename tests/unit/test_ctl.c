/*
 * Unit tests for the control socket (src/ctl/ctl.c) and the command table.
 *
 * The server runs in a libuv loop on the test's main thread; clients run in
 * threads, either drdns_ctl_call (what drdnsctl uses) or a raw socket that
 * speaks the protocol byte by byte, to send what a well-behaved client never
 * would.  When every client thread is done it wakes the loop, which replies to
 * any request still held, closes the server and lets the loop end; every test
 * checks that uv_loop_close() then succeeds (no handle left behind).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "drdns/ctl.h"
#include "drdns/error.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

enum handler_mode {
	H_ECHO,   /* reply at once with the body echoed */
	H_DELAY,  /* reply 50 ms later from a timer */
	H_HOLD,   /* keep the request; reply only when the test ends */
	H_NOEXIT, /* reply without "exit" and "command" */
};

#define MAX_CLIENTS 8

struct h;
typedef void (*client_fn)(struct h *h, int idx);

struct h {
	char dir[64];
	char path[100];
	uv_loop_t loop;
	struct drdns_ctl_server *srv;
	uv_async_t async;
	uv_timer_t reply_timer;
	uv_timer_t finish_timer;
	enum handler_mode mode;
	bool close_server_before_reply; /* H_HOLD: close the server 50 ms after the
	                                 * request, then reply */
	bool closed;

	/* what the handler saw */
	int n_handled;
	struct drdns_ctl_peer peer;
	json_t *body; /* copy of the last body */
	struct drdns_ctl_request *held;

	/* clients */
	client_fn client;
	int n_clients;
	atomic_int n_done;
	uv_thread_t threads[MAX_CLIENTS];
	double call_timeout;
	int rc[MAX_CLIENTS];
	json_t *reply[MAX_CLIENTS];
	char err[MAX_CLIENTS][512];
	char raw[MAX_CLIENTS][1024]; /* raw clients: the reply line */
};

/* ---- raw client helpers (blocking) ---- */

/* Client threads do not use cmocka's assertions (they are not thread-safe):
 * they leave their results in struct h for the main thread to check. */
static int raw_connect(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* Read one line (without '\n') within ms; returns its length or -1. */
static int raw_read_line(int fd, char *buf, size_t len, int ms)
{
	size_t n = 0;
	while (n + 1 < len) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, ms) <= 0)
			break;
		ssize_t r = recv(fd, buf + n, 1, 0);
		if (r <= 0)
			break;
		if (buf[n] == '\n') {
			buf[n] = '\0';
			return (int)n;
		}
		n++;
	}
	buf[n] = '\0';
	return -1;
}

static void raw_send(int fd, const char *s, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, s, len, MSG_NOSIGNAL);
		if (n <= 0)
			return; /* the server may have closed: the test looks at the reply */
		s += n;
		len -= (size_t)n;
	}
}

/* Speak the hello, send body (raw text, may be bad), read the reply line. */
static void raw_exchange(struct h *h, int idx, const char *hello, const char *body)
{
	int fd = raw_connect(h->path);
	char line[256];
	if (fd < 0)
		return;
	if (raw_read_line(fd, line, sizeof(line), 5000) < 0 || strcmp(line, DRDNS_CTL_HELLO) != 0) {
		close(fd);
		return;
	}
	raw_send(fd, hello, strlen(hello));
	if (body)
		raw_send(fd, body, strlen(body));
	if (raw_read_line(fd, h->raw[idx], sizeof(h->raw[idx]), 5000) < 0) {
		h->raw[idx][0] = '\0';
		close(fd);
		return;
	}
	/* after the reply the server closes (EOF, or a reset if our request was
	 * not read to its end) */
	char c;
	struct pollfd p = {.fd = fd, .events = POLLIN};
	if (poll(&p, 1, 5000) != 1 || recv(fd, &c, 1, 0) > 0)
		snprintf(h->raw[idx], sizeof(h->raw[idx]), "server did not close after the reply");
	close(fd);
}

static json_t *parse_raw(const char *line)
{
	json_error_t e;
	json_t *j = json_loads(line, 0, &e);
	if (!j)
		fail_msg("reply is not JSON: '%s'", line);
	return j;
}

/* ---- server side ---- */

static void on_reply_timer(uv_timer_t *t)
{
	struct h *h = t->data;
	struct drdns_ctl_request *req = h->held;
	h->held = NULL;
	drdns_ctl_reply(req, json_pack("{s:i, s:s}", "exit", 0, "late", "yes"));
}

static void on_finish_timer(uv_timer_t *t);

static void handler(struct drdns_ctl_request *req, const json_t *body,
                    const struct drdns_ctl_peer *peer, void *arg)
{
	struct h *h = arg;
	h->n_handled++;
	h->peer = *peer;
	json_decref(h->body);
	h->body = json_deep_copy(body);
	assert_string_equal(drdns_ctl_request_command(req),
	                    json_string_value(json_object_get(body, "command")));
	switch (h->mode) {
	case H_ECHO:
		drdns_ctl_reply(req, json_pack("{s:i, s:s, s:O}", "exit", 0, "command",
		                               drdns_ctl_request_command(req), "echo", body));
		break;
	case H_DELAY:
		h->held = req;
		uv_timer_start(&h->reply_timer, on_reply_timer, 50, 0);
		break;
	case H_HOLD:
		assert_null(h->held);
		h->held = req;
		if (h->close_server_before_reply)
			uv_timer_start(&h->finish_timer, on_finish_timer, 50, 0);
		break;
	case H_NOEXIT: drdns_ctl_reply(req, json_pack("{s:s}", "note", "no exit here")); break;
	}
}

static void close_all(struct h *h)
{
	if (h->closed)
		return;
	h->closed = true;
	if (h->srv)
		drdns_ctl_server_close(h->srv);
	h->srv = NULL;
	uv_close((uv_handle_t *)&h->async, NULL);
	uv_close((uv_handle_t *)&h->reply_timer, NULL);
	uv_close((uv_handle_t *)&h->finish_timer, NULL);
}

static void on_finish_timer(uv_timer_t *t)
{
	struct h *h = t->data;
	if (h->held) {
		struct drdns_ctl_request *req = h->held;
		h->held = NULL;
		if (h->close_server_before_reply) {
			drdns_ctl_server_close(h->srv);
			h->srv = NULL;
		}
		/* the client is gone (or the server closed): must be dropped safely */
		drdns_ctl_reply(req, json_pack("{s:i, s:s}", "exit", 0, "command", "status"));
	}
	if (atomic_load(&h->n_done) >= h->n_clients)
		close_all(h);
	/* else on_async closes when the last client is done */
}

static void on_async(uv_async_t *a)
{
	struct h *h = a->data;
	if (atomic_load(&h->n_done) < h->n_clients)
		return;
	if (h->held) /* give the loop time to notice the client has gone */
		uv_timer_start(&h->finish_timer, on_finish_timer, 200, 0);
	else
		close_all(h);
}

static void client_thread(void *arg)
{
	struct {
		struct h *h;
		int idx;
	} *a = arg;
	a->h->client(a->h, a->idx);
	atomic_fetch_add(&a->h->n_done, 1);
	uv_async_send(&a->h->async);
	free(a);
}

static void start_server(struct h *h)
{
	assert_int_equal(drdns_ctl_server_new(&h->loop, h->path, handler, h, &h->srv), 0);
	assert_non_null(h->srv);
}

/* Run n client threads against the server until all are done. */
static void run_clients(struct h *h, client_fn fn, int n)
{
	h->client = fn;
	h->n_clients = n;
	atomic_store(&h->n_done, 0);
	uv_async_init(&h->loop, &h->async, on_async);
	h->async.data = h;
	uv_timer_init(&h->loop, &h->reply_timer);
	h->reply_timer.data = h;
	uv_timer_init(&h->loop, &h->finish_timer);
	h->finish_timer.data = h;
	for (int i = 0; i < n; i++) {
		struct {
			struct h *h;
			int idx;
		} *a = malloc(sizeof(*a));
		a->h = h;
		a->idx = i;
		assert_int_equal(uv_thread_create(&h->threads[i], client_thread, a), 0);
	}
	if (n == 0)
		uv_async_send(&h->async);
	uv_run(&h->loop, UV_RUN_DEFAULT);
	for (int i = 0; i < n; i++)
		uv_thread_join(&h->threads[i]);
}

static int setup(void **state)
{
	struct h *h = calloc(1, sizeof(*h));
	snprintf(h->dir, sizeof(h->dir), "/tmp/drdns-test-ctl-XXXXXX");
	if (!mkdtemp(h->dir))
		return -1;
	snprintf(h->path, sizeof(h->path), "%s/control.sock", h->dir);
	uv_loop_init(&h->loop);
	h->call_timeout = 10;
	*state = h;
	return 0;
}

static int teardown(void **state)
{
	struct h *h = *state;
	/* every handle must be closed by now */
	uv_run(&h->loop, UV_RUN_DEFAULT);
	int rc = uv_loop_close(&h->loop);
	for (int i = 0; i < MAX_CLIENTS; i++)
		json_decref(h->reply[i]);
	json_decref(h->body);
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", h->dir);
	if (system(cmd) != 0)
		rc = -1;
	free(h);
	return rc == 0 ? 0 : -1;
}

/* ---- clients ---- */

static void client_call_status(struct h *h, int idx)
{
	json_t *req = json_pack("{s:s, s:i}", "command", "status", "client", idx);
	h->rc[idx] = drdns_ctl_call(h->path, req, h->call_timeout, &h->reply[idx], h->err[idx],
	                            sizeof(h->err[idx]));
	json_decref(req);
}

static void client_call_promote(struct h *h, int idx)
{
	json_t *req = json_pack("{s:s, s:s, s:b, s:{s:s}}", "command", "promote", "reason",
	                        "campus unreachable", "dry_run", true, "client", "user", "alice");
	h->rc[idx] = drdns_ctl_call(h->path, req, h->call_timeout, &h->reply[idx], h->err[idx],
	                            sizeof(h->err[idx]));
	json_decref(req);
}

/* ---- tests ---- */

static void test_command_table(void **state)
{
	(void)state;
	assert_int_equal(drdns_ctl_cmd_parse("status"), DRDNS_CMD_STATUS);
	assert_int_equal(drdns_ctl_cmd_parse("promote"), DRDNS_CMD_PROMOTE);
	assert_int_equal(drdns_ctl_cmd_parse("Promote"), DRDNS_CMD_UNKNOWN);
	assert_int_equal(drdns_ctl_cmd_parse(""), DRDNS_CMD_UNKNOWN);
	assert_int_equal(drdns_ctl_cmd_parse(NULL), DRDNS_CMD_UNKNOWN);
	assert_string_equal(drdns_ctl_cmd_name(DRDNS_CMD_STATUS), "status");
	assert_string_equal(drdns_ctl_cmd_name(DRDNS_CMD_PROMOTE), "promote");
	assert_null(drdns_ctl_cmd_info(DRDNS_CMD_UNKNOWN));
	/* every command round-trips and has its help */
	for (int i = 0; i < DRDNS_CMD_UNKNOWN; i++) {
		const struct drdns_ctl_cmd_info *info = drdns_ctl_cmd_info((enum drdns_ctl_cmd)i);
		assert_non_null(info);
		assert_int_equal(info->cmd, i);
		assert_int_equal(drdns_ctl_cmd_parse(info->name), i);
		assert_non_null(info->summary);
		assert_non_null(info->args);
	}
	assert_false(drdns_ctl_cmd_info(DRDNS_CMD_STATUS)->changes_state);
	assert_true(drdns_ctl_cmd_info(DRDNS_CMD_PROMOTE)->changes_state);
}

static void test_round_trip(void **state)
{
	struct h *h = *state;
	start_server(h);
	struct stat st;
	assert_int_equal(lstat(h->path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0660);

	run_clients(h, client_call_promote, 1);
	assert_int_equal(h->rc[0], 0);
	assert_int_equal(h->n_handled, 1);
	json_t *r = h->reply[0];
	assert_int_equal(json_integer_value(json_object_get(r, "exit")), 0);
	assert_string_equal(json_string_value(json_object_get(r, "command")), "promote");
	json_t *echo = json_object_get(r, "echo");
	assert_true(json_equal(echo, h->body));
	assert_string_equal(json_string_value(json_object_get(echo, "reason")),
	                    "campus unreachable");
	/* the peer is who connected: this process */
	assert_int_equal(h->peer.uid, getuid());
	assert_int_equal(h->peer.gid, getgid());
	assert_int_equal(h->peer.pid, getpid());
	/* closing the server removes its socket */
	assert_int_equal(lstat(h->path, &st), -1);
	assert_int_equal(errno, ENOENT);
}

static void test_concurrent_clients(void **state)
{
	struct h *h = *state;
	start_server(h);
	run_clients(h, client_call_status, MAX_CLIENTS);
	assert_int_equal(h->n_handled, MAX_CLIENTS);
	for (int i = 0; i < MAX_CLIENTS; i++) {
		assert_int_equal(h->rc[i], 0);
		json_t *echo = json_object_get(h->reply[i], "echo");
		assert_int_equal(json_integer_value(json_object_get(echo, "client")), i);
	}
}

static void test_async_reply(void **state)
{
	struct h *h = *state;
	h->mode = H_DELAY;
	start_server(h);
	run_clients(h, client_call_status, 1);
	assert_int_equal(h->rc[0], 0);
	assert_string_equal(json_string_value(json_object_get(h->reply[0], "late")), "yes");
	/* "command" filled in from the request */
	assert_string_equal(json_string_value(json_object_get(h->reply[0], "command")), "status");
}

static void test_reply_without_exit(void **state)
{
	struct h *h = *state;
	h->mode = H_NOEXIT;
	start_server(h);
	run_clients(h, client_call_status, 1);
	assert_int_equal(h->rc[0], 0);
	assert_int_equal(json_integer_value(json_object_get(h->reply[0], "exit")),
	                 DRDNS_EXIT_ERROR);
	assert_string_equal(json_string_value(json_object_get(h->reply[0], "command")), "status");
}

static void client_bad_version(struct h *h, int idx)
{
	raw_exchange(h, idx, "drdns-control 99\n", "{\"command\":\"status\"}\n");
}

static void test_hello_mismatch(void **state)
{
	struct h *h = *state;
	start_server(h);
	run_clients(h, client_bad_version, 1);
	assert_int_equal(h->n_handled, 0);
	json_t *r = parse_raw(h->raw[0]);
	assert_int_equal(json_integer_value(json_object_get(r, "exit")), DRDNS_EXIT_ERROR);
	assert_string_equal(json_string_value(json_object_get(r, "error")),
	                    "protocol version mismatch: daemon 1, client 99");
	json_decref(r);
}

static void client_garbage_hello(struct h *h, int idx)
{
	raw_exchange(h, idx, "GET / HTTP/1.0\r\n", NULL);
}

static void test_hello_garbage(void **state)
{
	struct h *h = *state;
	start_server(h);
	run_clients(h, client_garbage_hello, 1);
	assert_int_equal(h->n_handled, 0);
	json_t *r = parse_raw(h->raw[0]);
	assert_int_equal(json_integer_value(json_object_get(r, "exit")), DRDNS_EXIT_ERROR);
	assert_non_null(strstr(json_string_value(json_object_get(r, "error")), "protocol error"));
	json_decref(r);
}

static const char *const bad_requests[] = {
    "{\"command\": \"status\"\n",                            /* bad JSON */
    "[\"status\"]\n",                                        /* not an object */
    "{\"cmd\": \"status\"}\n",                               /* no command */
    "{\"command\": 7}\n",                                    /* command not a string */
    "{\"command\": \"frobnicate\"}\n",                       /* unknown command */
    "{\"command\": \"status\", \"command\": \"promote\"}\n", /* duplicate key */
};
static const char *const bad_request_errors[] = {
    "bad request: invalid JSON", "expected a JSON object",         "\"command\" is missing",
    "\"command\" is missing",    "unknown command \"frobnicate\"", "invalid JSON",
};
#define N_BAD (sizeof(bad_requests) / sizeof(bad_requests[0]))

static void client_bad_request(struct h *h, int idx)
{
	raw_exchange(h, idx, DRDNS_CTL_HELLO "\n", bad_requests[idx]);
}

static void test_bad_requests(void **state)
{
	struct h *h = *state;
	start_server(h);
	run_clients(h, client_bad_request, (int)N_BAD);
	assert_int_equal(h->n_handled, 0);
	for (size_t i = 0; i < N_BAD; i++) {
		json_t *r = parse_raw(h->raw[i]);
		assert_int_equal(json_integer_value(json_object_get(r, "exit")), DRDNS_EXIT_USAGE);
		assert_true(json_is_null(json_object_get(r, "command")));
		const char *e = json_string_value(json_object_get(r, "error"));
		if (!e || !strstr(e, bad_request_errors[i]))
			fail_msg("request %zu: error '%s', expected '%s'", i, e ? e : "(none)",
			         bad_request_errors[i]);
		json_decref(r);
	}
}

static void client_huge_request(struct h *h, int idx)
{
	size_t n = DRDNS_CTL_MAX_REQUEST + 4096;
	char *big = malloc(n + 1);
	memset(big, ' ', n);
	memcpy(big, "{\"command\":\"status\",\"x\":\"", 25);
	big[n] = '\0';
	raw_exchange(h, idx, DRDNS_CTL_HELLO "\n", big);
	free(big);
}

static void test_request_too_large(void **state)
{
	struct h *h = *state;
	start_server(h);
	run_clients(h, client_huge_request, 1);
	assert_int_equal(h->n_handled, 0);
	json_t *r = parse_raw(h->raw[0]);
	assert_int_equal(json_integer_value(json_object_get(r, "exit")), DRDNS_EXIT_USAGE);
	assert_non_null(strstr(json_string_value(json_object_get(r, "error")), "too large"));
	json_decref(r);

	/* and the client refuses to send one */
	size_t n = DRDNS_CTL_MAX_REQUEST + 10;
	char *big = malloc(n + 1);
	memset(big, 'x', n);
	big[n] = '\0';
	json_t *req = json_pack("{s:s, s:s}", "command", "status", "x", big);
	json_t *reply = NULL;
	char err[256];
	assert_int_equal(drdns_ctl_call(h->path, req, 1, &reply, err, sizeof(err)), DRDNS_EINVAL);
	assert_non_null(strstr(err, "too large"));
	json_decref(req);
	free(big);
}

static void client_idle(struct h *h, int idx)
{
	int fd = raw_connect(h->path);
	char line[256];
	if (fd < 0 || raw_read_line(fd, line, sizeof(line), 5000) < 0)
		return;
	/* send nothing: the server gives up after its idle timeout */
	raw_read_line(fd, h->raw[idx], sizeof(h->raw[idx]), 5000);
	close(fd);
}

static void test_idle_timeout(void **state)
{
	struct h *h = *state;
	start_server(h);
	drdns_ctl_server_set_idle_timeout(h->srv, 100);
	run_clients(h, client_idle, 1);
	json_t *r = parse_raw(h->raw[0]);
	assert_int_equal(json_integer_value(json_object_get(r, "exit")), DRDNS_EXIT_ERROR);
	assert_non_null(strstr(json_string_value(json_object_get(r, "error")), "timed out"));
	json_decref(r);
}

/* Sends a promote and leaves before the reply. */
static void client_leaves(struct h *h, int idx)
{
	(void)idx;
	int fd = raw_connect(h->path);
	char line[256];
	if (fd < 0 || raw_read_line(fd, line, sizeof(line), 5000) < 0)
		return;
	const char *req = DRDNS_CTL_HELLO "\n{\"command\":\"promote\",\"reason\":\"x\"}\n";
	raw_send(fd, req, strlen(req));
	/* wait until the handler holds the request, then go */
	for (int i = 0; i < 500 && !__atomic_load_n(&h->held, __ATOMIC_SEQ_CST); i++)
		usleep(10000);
	close(fd);
}

static void test_reply_after_client_left(void **state)
{
	struct h *h = *state;
	h->mode = H_HOLD;
	start_server(h);
	run_clients(h, client_leaves, 1);
	/* on_finish_timer replied to the held request after the client left; with
	 * ASan any use of the freed connection would have aborted */
	assert_int_equal(h->n_handled, 1);
	assert_null(h->held);
}

/* The server closes while a handler holds a request and its client waits. */
static void test_reply_after_server_closed(void **state)
{
	struct h *h = *state;
	h->mode = H_HOLD;
	h->close_server_before_reply = true;
	start_server(h);
	run_clients(h, client_call_status, 1);
	assert_int_equal(h->n_handled, 1);
	assert_null(h->held);
	assert_int_equal(h->rc[0], DRDNS_EPROTO);
	assert_null(h->reply[0]);
	assert_string_equal(h->err[0], "drdnsd closed the connection without a reply");
}

/* The client gives up first; the late reply is dropped. */
static void test_client_timeout(void **state)
{
	struct h *h = *state;
	h->mode = H_HOLD;
	h->call_timeout = 0.3;
	start_server(h);
	run_clients(h, client_call_status, 1);
	assert_int_equal(h->n_handled, 1);
	assert_null(h->held);
	assert_int_equal(h->rc[0], DRDNS_ETIMEOUT);
	assert_null(h->reply[0]);
	assert_non_null(strstr(h->err[0], "no reply from drdnsd within 0.3 s"));
}

/* Half-closes its side after the request (like socat), still gets the reply. */
static void client_half_close(struct h *h, int idx)
{
	int fd = raw_connect(h->path);
	char line[256];
	if (fd < 0 || raw_read_line(fd, line, sizeof(line), 5000) < 0)
		return;
	const char *req = DRDNS_CTL_HELLO "\n{\"command\":\"status\"}\n";
	raw_send(fd, req, strlen(req));
	shutdown(fd, SHUT_WR);
	raw_read_line(fd, h->raw[idx], sizeof(h->raw[idx]), 5000);
	close(fd);
}

static void test_half_close_gets_reply(void **state)
{
	struct h *h = *state;
	h->mode = H_DELAY;
	start_server(h);
	run_clients(h, client_half_close, 1);
	json_t *r = parse_raw(h->raw[0]);
	assert_int_equal(json_integer_value(json_object_get(r, "exit")), 0);
	assert_string_equal(json_string_value(json_object_get(r, "late")), "yes");
	json_decref(r);
}

static void test_stale_socket_replaced(void **state)
{
	struct h *h = *state;
	/* a socket file nobody listens on, as left by a crashed drdnsd */
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", h->path);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(fd);

	/* the client explains */
	json_t *req = json_pack("{s:s}", "command", "status");
	json_t *reply = NULL;
	char err[512];
	assert_int_equal(drdns_ctl_call(h->path, req, 1, &reply, err, sizeof(err)), -ECONNREFUSED);
	assert_non_null(strstr(err, "(is drdnsd running?)"));
	json_decref(req);

	start_server(h);
	run_clients(h, client_call_status, 1);
	assert_int_equal(h->rc[0], 0);
}

static void test_live_socket_refused(void **state)
{
	struct h *h = *state;
	start_server(h);
	struct drdns_ctl_server *second = NULL;
	assert_int_equal(drdns_ctl_server_new(&h->loop, h->path, handler, h, &second), -EADDRINUSE);
	assert_null(second);
	/* the first one still works */
	run_clients(h, client_call_status, 1);
	assert_int_equal(h->rc[0], 0);
}

static void test_not_a_socket_kept(void **state)
{
	struct h *h = *state;
	FILE *f = fopen(h->path, "w");
	fputs("precious\n", f);
	fclose(f);
	struct drdns_ctl_server *srv = NULL;
	assert_int_equal(drdns_ctl_server_new(&h->loop, h->path, handler, h, &srv), -EEXIST);
	assert_null(srv);
	struct stat st;
	assert_int_equal(stat(h->path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_size, 9);
}

static void test_parent_dir_created(void **state)
{
	struct h *h = *state;
	char sub[80];
	snprintf(sub, sizeof(sub), "%s/run", h->dir);
	snprintf(h->path, sizeof(h->path), "%s/control.sock", sub);
	mode_t old = umask(022);
	start_server(h);
	umask(old);
	struct stat st;
	assert_int_equal(stat(sub, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0750);
	assert_int_equal(lstat(h->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0660);
	run_clients(h, client_call_status, 1);
	assert_int_equal(h->rc[0], 0);
}

static void test_close_keeps_foreign_socket(void **state)
{
	struct h *h = *state;
	start_server(h);
	/* someone replaced the socket file meanwhile (another drdnsd after an
	 * operator removed ours): closing must not remove theirs */
	unlink(h->path);
	FILE *f = fopen(h->path, "w");
	fclose(f);
	run_clients(h, client_call_status, 0); /* no clients: just close */
	struct stat st;
	assert_int_equal(stat(h->path, &st), 0);
}

static void test_path_too_long(void **state)
{
	struct h *h = *state;
	char path[300];
	memset(path, 'a', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	struct drdns_ctl_server *srv = NULL;
	assert_int_equal(drdns_ctl_server_new(&h->loop, path, handler, h, &srv), -ENAMETOOLONG);
	json_t *req = json_pack("{s:s}", "command", "status");
	json_t *reply = NULL;
	char err[512];
	assert_int_equal(drdns_ctl_call(path, req, 1, &reply, err, sizeof(err)), -ENAMETOOLONG);
	json_decref(req);
}

static void test_client_no_daemon(void **state)
{
	struct h *h = *state;
	json_t *req = json_pack("{s:s}", "command", "status");
	json_t *reply = (json_t *)0x1;
	char err[512];
	assert_int_equal(drdns_ctl_call(h->path, req, 1, &reply, err, sizeof(err)), -ENOENT);
	assert_null(reply);
	char want[512];
	snprintf(want, sizeof(want),
	         "cannot connect to %s: No such file or directory (is drdnsd running?)", h->path);
	assert_string_equal(err, want);
	json_decref(req);
}

/* A fake daemon speaking another greeting, served from a thread. */
struct fake {
	int lfd;
	const char *greeting;
};

static void fake_daemon(void *arg)
{
	struct fake *f = arg;
	int fd = accept(f->lfd, NULL, NULL);
	if (fd < 0)
		return;
	send(fd, f->greeting, strlen(f->greeting), MSG_NOSIGNAL);
	/* read the client's hello and request (two lines), then hang up; with no
	 * greeting, wait until the client gives up */
	char buf[256];
	int lines = 0;
	struct pollfd p = {.fd = fd, .events = POLLIN};
	while ((!f->greeting[0] || lines < 2) && poll(&p, 1, 10000) == 1) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n; i++)
			lines += buf[i] == '\n';
	}
	close(fd);
}

static int fake_call(struct h *h, const char *greeting, char *err, size_t errlen)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", h->path);
	unlink(h->path);
	struct fake f = {.lfd = socket(AF_UNIX, SOCK_STREAM, 0), .greeting = greeting};
	assert_int_equal(bind(f.lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(f.lfd, 1), 0);
	uv_thread_t t;
	uv_thread_create(&t, fake_daemon, &f);
	json_t *req = json_pack("{s:s}", "command", "status");
	json_t *reply = NULL;
	int rc = drdns_ctl_call(h->path, req, 2, &reply, err, errlen);
	assert_null(reply);
	json_decref(req);
	uv_thread_join(&t);
	close(f.lfd);
	unlink(h->path);
	return rc;
}

static void test_client_version_mismatch(void **state)
{
	struct h *h = *state;
	char err[512];
	assert_int_equal(fake_call(h, "drdns-control 2\n", err, sizeof(err)), DRDNS_EPROTO);
	assert_non_null(strstr(err, "protocol version mismatch: daemon 2, client 1"));
	assert_int_equal(fake_call(h, "SSH-2.0-OpenSSH_9.2\r\n", err, sizeof(err)), DRDNS_EPROTO);
	assert_non_null(strstr(err, "not a drdnsd control socket"));
	/* greeting right, then the daemon hangs up without a reply */
	assert_int_equal(fake_call(h, DRDNS_CTL_HELLO "\n", err, sizeof(err)), DRDNS_EPROTO);
	assert_non_null(strstr(err, "without a reply"));
	/* a daemon that says nothing: the timeout covers the greeting too */
	assert_int_equal(fake_call(h, "", err, sizeof(err)), DRDNS_ETIMEOUT);
	assert_non_null(strstr(err, "no greeting"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_command_table),
	    cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_concurrent_clients, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_async_reply, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reply_without_exit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hello_mismatch, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hello_garbage, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_requests, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_request_too_large, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_idle_timeout, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reply_after_client_left, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reply_after_server_closed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_client_timeout, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_half_close_gets_reply, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stale_socket_replaced, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_live_socket_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_not_a_socket_kept, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_parent_dir_created, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_close_keeps_foreign_socket, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_path_too_long, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_client_no_daemon, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_client_version_mismatch, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
