/*
 * Unit tests for include/drdns/metrics.h: the /metrics HTTP endpoint.
 * Talks to the server with a plain blocking-socket HTTP/1.0 client (one request
 * per connection, reply read until the server closes).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "drdns/error.h"
#include "drdns/metrics.h"

#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* ---- a tiny HTTP/1.0 client -------------------------------------------- */

struct reply {
	int status;    /* 0: no status line (connection closed without a reply) */
	char *raw;     /* the whole reply, NUL-terminated */
	char *headers; /* into raw: after the status line, up to the blank line */
	char *body;    /* into raw */
	size_t body_len;
};

static void reply_free(struct reply *r)
{
	free(r->raw);
	memset(r, 0, sizeof(*r));
}

static int connect_to(const char *addr, uint16_t port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, addr, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons(port);
		len = sizeof(*in4);
	} else {
		assert_int_equal(inet_pton(AF_INET6, addr, &in6->sin6_addr), 1);
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		len = sizeof(*in6);
	}
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	struct timeval tv = {.tv_sec = 30};
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)), 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&ss, len), 0);
	return fd;
}

static void send_all(int fd, const char *data)
{
	size_t n = strlen(data);
	while (n > 0) {
		ssize_t w = send(fd, data, n, MSG_NOSIGNAL);
		assert_true(w > 0);
		data += w;
		n -= (size_t)w;
	}
}

/* Read until EOF (or reset) and parse status line, headers and body. */
static void read_reply(int fd, struct reply *r)
{
	memset(r, 0, sizeof(*r));
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	assert_non_null(buf);
	for (;;) {
		if (cap - len < 1024) {
			cap *= 2;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
		ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
		if (n < 0 && errno == EINTR)
			continue;
		assert_false(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)); /* timeout */
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	r->raw = buf;
	int status = 0;
	if (sscanf(buf, "HTTP/1.%*1[01] %3d ", &status) != 1)
		return;
	r->status = status;
	char *eol = strstr(buf, "\r\n");
	char *end = strstr(buf, "\r\n\r\n");
	assert_non_null(eol);
	assert_non_null(end);
	end[2] = '\0'; /* headers end with their last CRLF */
	r->headers = eol + 2;
	r->body = end + 4;
	r->body_len = len - (size_t)(r->body - buf);
}

static void http(const char *addr, uint16_t port, const char *request, struct reply *r)
{
	int fd = connect_to(addr, port);
	send_all(fd, request);
	read_reply(fd, r);
	close(fd);
}

static void get(const char *addr, uint16_t port, const char *path, struct reply *r)
{
	char req[256];
	snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: test\r\n\r\n", path);
	http(addr, port, req, r);
}

/* Value of header name (case-insensitive), copied into out; false if absent. */
static bool header(const struct reply *r, const char *name, char *out, size_t outsz)
{
	size_t nl = strlen(name);
	for (const char *p = r->headers; p && *p;) {
		const char *eol = strstr(p, "\r\n");
		if (!eol)
			break;
		if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1;
			while (*v == ' ' || *v == '\t')
				v++;
			snprintf(out, outsz, "%.*s", (int)(eol - v), v);
			return true;
		}
		p = eol + 2;
	}
	return false;
}

static void assert_header(const struct reply *r, const char *name, const char *want)
{
	char v[256];
	assert_true(header(r, name, v, sizeof(v)));
	assert_string_equal(v, want);
}

static void assert_body(const struct reply *r, const char *want)
{
	assert_int_equal(r->body_len, strlen(want));
	assert_memory_equal(r->body, want, r->body_len);
}

static struct drdns_metrics *start_ok(const char *addr)
{
	struct drdns_metrics *m = NULL;
	assert_int_equal(drdns_metrics_start(addr, 0, &m), 0);
	assert_non_null(m);
	assert_int_not_equal(drdns_metrics_port(m), 0);
	return m;
}

/* ---- tests ------------------------------------------------------------- */

static const char TEXT1[] = "# HELP drdns_up Whether drdns is up.\n"
                            "# TYPE drdns_up gauge\n"
                            "drdns_up 1\n";
static const char TEXT2[] = "# TYPE drdns_promoted gauge\n"
                            "drdns_promoted{zone=\"example.edu.\"} 0\n"
                            "drdns_probe_rtt_seconds{target=\"192.0.2.1\"} 0.0125\n";

static void test_serve_ipv4(void **state)
{
	(void)state;
	struct drdns_metrics *m = start_ok("127.0.0.1");
	uint16_t port = drdns_metrics_port(m);
	struct reply r;

	/* before any publish: 503 with a short text */
	get("127.0.0.1", port, "/metrics", &r);
	assert_int_equal(r.status, 503);
	assert_true(r.body_len > 0);
	reply_free(&r);

	assert_int_equal(drdns_metrics_publish(m, TEXT1), 0);
	get("127.0.0.1", port, "/metrics", &r);
	assert_int_equal(r.status, 200);
	assert_header(&r, "Content-Type", CONTENT_TYPE);
	assert_body(&r, TEXT1);
	reply_free(&r);

	/* a query string does not change the resource */
	get("127.0.0.1", port, "/metrics?name[]=drdns_up", &r);
	assert_int_equal(r.status, 200);
	assert_body(&r, TEXT1);
	reply_free(&r);

	/* publish again: the new text replaces the old one */
	char buf[sizeof(TEXT2)];
	memcpy(buf, TEXT2, sizeof(buf));
	assert_int_equal(drdns_metrics_publish(m, buf), 0);
	memset(buf, 'x', sizeof(buf) - 1); /* publish copied it */
	get("127.0.0.1", port, "/metrics", &r);
	assert_int_equal(r.status, 200);
	assert_header(&r, "Content-Type", CONTENT_TYPE);
	assert_body(&r, TEXT2);
	reply_free(&r);

	/* an empty text is served as an empty 200 */
	assert_int_equal(drdns_metrics_publish(m, ""), 0);
	get("127.0.0.1", port, "/metrics", &r);
	assert_int_equal(r.status, 200);
	assert_body(&r, "");
	reply_free(&r);
	assert_int_equal(drdns_metrics_publish(m, TEXT2), 0);

	/* HEAD: headers of GET, no body */
	http("127.0.0.1", port, "HEAD /metrics HTTP/1.0\r\n\r\n", &r);
	assert_int_equal(r.status, 200);
	assert_header(&r, "Content-Type", CONTENT_TYPE);
	char cl[32];
	snprintf(cl, sizeof(cl), "%zu", strlen(TEXT2));
	assert_header(&r, "Content-Length", cl);
	assert_int_equal(r.body_len, 0);
	reply_free(&r);

	drdns_metrics_stop(m);
}

static void test_not_found_and_method(void **state)
{
	(void)state;
	struct drdns_metrics *m = start_ok("127.0.0.1");
	uint16_t port = drdns_metrics_port(m);
	assert_int_equal(drdns_metrics_publish(m, TEXT1), 0);
	struct reply r;

	const char *paths[] = {"/other", "/", "/metrics/", "/metricsx", "/METRICS"};
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		get("127.0.0.1", port, paths[i], &r);
		assert_int_equal(r.status, 404);
		reply_free(&r);
	}

	http("127.0.0.1", port, "POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n", &r);
	assert_int_equal(r.status, 405);
	assert_header(&r, "Allow", "GET, HEAD");
	reply_free(&r);

	http("127.0.0.1", port, "DELETE /metrics HTTP/1.0\r\n\r\n", &r);
	assert_int_equal(r.status, 405);
	reply_free(&r);

	/* a POST with a body is refused before the body is read */
	http("127.0.0.1", port, "PUT /metrics HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello", &r);
	assert_int_equal(r.status, 405);
	reply_free(&r);

	/* still serving afterwards */
	get("127.0.0.1", port, "/metrics", &r);
	assert_int_equal(r.status, 200);
	assert_body(&r, TEXT1);
	reply_free(&r);

	drdns_metrics_stop(m);
}

static void test_serve_ipv6(void **state)
{
	(void)state;
	/* skip when this host has no ::1 (e.g. a container with IPv6 disabled) */
	int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		skip();
	struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	int e = errno;
	close(fd);
	if (rc != 0) {
		assert_int_equal(e, EADDRNOTAVAIL);
		skip();
	}

	struct drdns_metrics *m = start_ok("::1");
	uint16_t port = drdns_metrics_port(m);
	struct reply r;
	get("::1", port, "/metrics", &r);
	assert_int_equal(r.status, 503);
	reply_free(&r);
	assert_int_equal(drdns_metrics_publish(m, TEXT2), 0);
	get("::1", port, "/metrics", &r);
	assert_int_equal(r.status, 200);
	assert_header(&r, "Content-Type", CONTENT_TYPE);
	assert_body(&r, TEXT2);
	reply_free(&r);
	drdns_metrics_stop(m);
}

static void test_invalid_address(void **state)
{
	(void)state;
	const char *bad[] = {"",           "localhost", "127.1",         "1.2.3.4.5",
	                     "127.0.0.1 ", "::1%",      "::1%nosuchif0", "[::1]",
	                     "::1::2",     "fe80::1%0", "0x7f.0.0.1"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct drdns_metrics *m = (struct drdns_metrics *)&m; /* not NULL */
		assert_int_equal(drdns_metrics_start(bad[i], 0, &m), DRDNS_EINVAL);
		assert_null(m);
	}
	struct drdns_metrics *m = NULL;
	assert_int_equal(drdns_metrics_start(NULL, 0, &m), DRDNS_EINVAL);
	assert_int_equal(drdns_metrics_start("127.0.0.1", 0, NULL), DRDNS_EINVAL);
}

static void test_port_taken(void **state)
{
	(void)state;
	/* a plain listening socket holds a port */
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 1), 0);
	socklen_t len = sizeof(sa);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	uint16_t port = ntohs(sa.sin_port);

	struct drdns_metrics *m = (struct drdns_metrics *)&m;
	assert_int_equal(drdns_metrics_start("127.0.0.1", port, &m), DRDNS_ENET);
	assert_null(m);
	close(fd);

	/* and a second endpoint on the port of a first one */
	struct drdns_metrics *m1 = start_ok("127.0.0.1");
	m = (struct drdns_metrics *)&m;
	assert_int_equal(drdns_metrics_start("127.0.0.1", drdns_metrics_port(m1), &m), DRDNS_ENET);
	assert_null(m);
	drdns_metrics_stop(m1);
}

static void test_fixed_port(void **state)
{
	(void)state;
	/* find a free port, release it, then ask for exactly that port */
	struct drdns_metrics *m = start_ok("127.0.0.1");
	uint16_t port = drdns_metrics_port(m);
	drdns_metrics_stop(m);
	m = NULL;
	int rc = drdns_metrics_start("127.0.0.1", port, &m);
	if (rc == DRDNS_ENET)
		skip(); /* someone else took it meanwhile */
	assert_int_equal(rc, 0);
	assert_int_equal(drdns_metrics_port(m), port);
	assert_int_equal(drdns_metrics_publish(m, TEXT1), 0);
	struct reply r;
	get("127.0.0.1", port, "/metrics", &r);
	assert_int_equal(r.status, 200);
	assert_body(&r, TEXT1);
	reply_free(&r);
	drdns_metrics_stop(m);
}

static void test_null_safe(void **state)
{
	(void)state;
	drdns_metrics_stop(NULL);
	assert_int_equal(drdns_metrics_port(NULL), 0);
	assert_int_equal(drdns_metrics_publish(NULL, "x"), DRDNS_EINVAL);
	struct drdns_metrics *m = start_ok("127.0.0.1");
	assert_int_equal(drdns_metrics_publish(m, NULL), DRDNS_EINVAL);
	/* stop without any publish or request */
	drdns_metrics_stop(m);
}

/* A publisher thread swapping texts while scrapes run: every reply is one
 * whole published text. */
struct churn {
	struct drdns_metrics *m;
	atomic_bool stop;
};

static void *publisher(void *arg)
{
	struct churn *c = arg;
	for (unsigned i = 0; !atomic_load(&c->stop); i++) {
		if (drdns_metrics_publish(c->m, (i & 1) ? TEXT1 : TEXT2) != 0)
			return (void *)1;
		sched_yield();
	}
	return NULL;
}

static void test_concurrent_publish(void **state)
{
	(void)state;
	struct churn c = {.m = start_ok("127.0.0.1")};
	uint16_t port = drdns_metrics_port(c.m);
	assert_int_equal(drdns_metrics_publish(c.m, TEXT1), 0);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, publisher, &c), 0);
	for (int i = 0; i < 40; i++) {
		struct reply r;
		get("127.0.0.1", port, "/metrics", &r);
		assert_int_equal(r.status, 200);
		assert_true((r.body_len == strlen(TEXT1) && !memcmp(r.body, TEXT1, r.body_len)) ||
		            (r.body_len == strlen(TEXT2) && !memcmp(r.body, TEXT2, r.body_len)));
		reply_free(&r);
	}
	atomic_store(&c.stop, true);
	void *ret;
	assert_int_equal(pthread_join(t, &ret), 0);
	assert_null(ret);
	drdns_metrics_stop(c.m);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* 16 idle connections fill the server: a 17th waits (MHD stops accepting at
 * the limit) until the idle ones are dropped by the 10 s timeout; then it is
 * served.  Takes about 10 s. */
static void test_connection_limit_and_timeout(void **state)
{
	(void)state;
	struct drdns_metrics *m = start_ok("127.0.0.1");
	uint16_t port = drdns_metrics_port(m);
	assert_int_equal(drdns_metrics_publish(m, TEXT1), 0);

	enum {
		LIMIT = 16
	};
	double t0 = now();
	int idle[LIMIT];
	for (int i = 0; i < LIMIT; i++)
		idle[i] = connect_to("127.0.0.1", port);
	send_all(idle[0], "GET /metr"); /* half a request is no activity after that */

	int fd = connect_to("127.0.0.1", port);
	send_all(fd, "GET /metrics HTTP/1.0\r\n\r\n");
	struct timeval tv = {.tv_sec = 1};
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	char b;
	errno = 0;
	assert_int_equal(recv(fd, &b, 1, MSG_PEEK), -1); /* not served yet */
	assert_true(errno == EAGAIN || errno == EWOULDBLOCK);

	tv.tv_sec = 60;
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	struct reply r;
	read_reply(fd, &r);
	close(fd);
	assert_int_equal(r.status, 200);
	assert_body(&r, TEXT1);
	reply_free(&r);
	assert_true(now() - t0 > 9.0); /* only after the timeout */

	/* the idle connections were closed by the server */
	for (int i = 0; i < LIMIT; i++) {
		tv.tv_sec = 30;
		assert_int_equal(setsockopt(idle[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
		ssize_t n = recv(idle[i], &b, 1, 0);
		assert_true(n == 0 || (n < 0 && errno == ECONNRESET));
		close(idle[i]);
	}
	drdns_metrics_stop(m);
}

/* Stop while clients are connected, one in the middle of a request. */
static void test_stop_with_clients(void **state)
{
	(void)state;
	struct drdns_metrics *m = start_ok("127.0.0.1");
	uint16_t port = drdns_metrics_port(m);
	assert_int_equal(drdns_metrics_publish(m, TEXT1), 0);
	int fds[4];
	for (int i = 0; i < 4; i++)
		fds[i] = connect_to("127.0.0.1", port);
	send_all(fds[0], "GET /metr");
	struct reply r;
	get("127.0.0.1", port, "/metrics", &r);
	assert_int_equal(r.status, 200);
	reply_free(&r);
	drdns_metrics_stop(m);
	for (int i = 0; i < 4; i++)
		close(fds[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_serve_ipv4),
	    cmocka_unit_test(test_not_found_and_method),
	    cmocka_unit_test(test_serve_ipv6),
	    cmocka_unit_test(test_invalid_address),
	    cmocka_unit_test(test_port_taken),
	    cmocka_unit_test(test_fixed_port),
	    cmocka_unit_test(test_null_safe),
	    cmocka_unit_test(test_concurrent_publish),
	    cmocka_unit_test(test_stop_with_clients),
	    cmocka_unit_test(test_connection_limit_and_timeout),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
