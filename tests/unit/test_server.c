/*
 * Unit tests for src/server/server.c: the DR primary.
 *
 * The server runs on its own libuv loop in a second thread; the tests are
 * plain blocking DNS clients (UDP and TCP sockets, ldns for packets) on
 * 127.0.0.x.  Everything that touches the server object runs on the loop
 * thread through a uv_async command channel.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <ldns/ldns.h>
#include <uv.h>

#include "drdns/conf.h"
#include "drdns/diag.h"
#include "drdns/error.h"
#include "drdns/log.h"
#include "drdns/server.h"
#include "drdns/tsig.h"
#include "drdns/zone.h"

#define BIG_HOSTS      20000
#define EXAMPLE_SERIAL 2024010101u
#define BIG_SERIAL     7u
#define STALL_SERIAL   9u
#define POOL_THREADS   4 /* UV_THREADPOOL_SIZE, set in main() */

/* ------------------------------------------------------------ harness */

enum cmd {
	CMD_NONE,
	CMD_SET_ZONES,
	CMD_STATS,
	CMD_REFUSALS,
	CMD_SET_CONF,
	CMD_CLOSE
};

struct harness {
	uv_loop_t loop;
	uv_async_t async;
	uv_thread_t thread;
	uv_sem_t done;
	struct drdns_server *srv;
	bool closed;

	enum cmd cmd;
	void *arg;
	struct drdns_server_stats stats;
	uint64_t refusals_since, refusals_mark; /* CMD_REFUSALS: in, out */
	struct drdns_xfr_refusal refusals[DRDNS_XFR_REFUSALS_MAX];
	size_t n_refusals;

	struct drdns_conf conf;   /* allow_transfer = 127.0.0.1 */
	struct drdns_conf strict; /* no allow_transfer */
	struct drdns_secondary secs[2];
	char *allow[1];
	struct drdns_tsig_key *key;     /* the keyed secondary's key (tsig-good.key) */
	struct drdns_tsig_key wrong;    /* same name, other secret */
	struct drdns_tsig_key stranger; /* a key the server does not know */
	uint16_t port;

	struct drdns_zone *big_ref;   /* reference copy of big.test. for comparisons */
	struct drdns_zone *stall_ref; /* stall.test. */
	size_t stall_records;
};

static struct harness H;

static void on_server_closed(void *arg)
{
	struct harness *h = arg;
	uv_close((uv_handle_t *)&h->async, NULL);
	h->closed = true;
	uv_sem_post(&h->done);
}

static void on_async(uv_async_t *a)
{
	struct harness *h = a->data;
	switch (h->cmd) {
	case CMD_SET_ZONES: drdns_server_set_zones(h->srv, h->arg); break;
	case CMD_STATS: drdns_server_stats(h->srv, &h->stats); break;
	case CMD_REFUSALS:
		h->n_refusals = drdns_server_refusals(h->srv, h->refusals_since, h->refusals,
		                                      DRDNS_XFR_REFUSALS_MAX);
		h->refusals_mark = drdns_server_refusals_mark(h->srv);
		break;
	case CMD_SET_CONF: drdns_server_set_conf(h->srv, h->arg); break;
	case CMD_CLOSE:
		h->cmd = CMD_NONE;
		drdns_server_close(h->srv, on_server_closed, h);
		return; /* posted from on_server_closed */
	case CMD_NONE: break;
	}
	h->cmd = CMD_NONE;
	uv_sem_post(&h->done);
}

static void run_cmd(enum cmd cmd, void *arg)
{
	H.cmd = cmd;
	H.arg = arg;
	assert_int_equal(uv_async_send(&H.async), 0);
	uv_sem_wait(&H.done);
}

static struct drdns_server_stats stats(void)
{
	run_cmd(CMD_STATS, NULL);
	return H.stats;
}

static void loop_thread(void *arg)
{
	struct harness *h = arg;
	uv_run(&h->loop, UV_RUN_DEFAULT);
}

/* big.test.: SOA, two NS with glue, BIG_HOSTS A records, canonical order */
static struct drdns_zone *make_big_zone(void)
{
	struct drdns_zone *z = calloc(1, sizeof(*z));
	assert_non_null(z);
	z->name = strdup("big.test.");
	assert_int_equal(ldns_str2rdf_dname(&z->origin, "big.test."), LDNS_STATUS_OK);
	char buf[256];
	snprintf(buf, sizeof(buf),
	         "big.test. 3600 IN SOA ns1.big.test. hostmaster.big.test. %u 3600 600 604800 300",
	         BIG_SERIAL);
	assert_int_equal(ldns_rr_new_frm_str(&z->soa, buf, 0, NULL, NULL), LDNS_STATUS_OK);
	z->rrs = ldns_rr_list_new();
	const char *fixed[] = {
	    "big.test. 3600 IN NS ns1.big.test.",
	    "big.test. 3600 IN NS ns2.big.test.",
	    "ns1.big.test. 3600 IN A 192.0.2.1",
	    "ns2.big.test. 3600 IN A 192.0.2.2",
	};
	for (size_t i = 0; i < sizeof(fixed) / sizeof(*fixed); i++) {
		ldns_rr *rr = NULL;
		assert_int_equal(ldns_rr_new_frm_str(&rr, fixed[i], 0, NULL, NULL), LDNS_STATUS_OK);
		ldns_rr_list_push_rr(z->rrs, rr);
	}
	/* built directly: ldns_rr_new_frm_str is slow (64 KB buffers per call) */
	for (int i = 0; i < BIG_HOSTS; i++) {
		snprintf(buf, sizeof(buf), "host%05d.big.test.", i);
		ldns_rr *rr = ldns_rr_new_frm_type(LDNS_RR_TYPE_A);
		assert_non_null(rr);
		ldns_rr_set_owner(rr, ldns_dname_new_frm_str(buf));
		ldns_rr_set_ttl(rr, 600);
		ldns_rr_set_class(rr, LDNS_RR_CLASS_IN);
		uint8_t a[4] = {10, (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i};
		ldns_rr_set_rdf(rr, ldns_rdf_new_frm_data(LDNS_RDF_TYPE_A, 4, a), 0);
		ldns_rr_list_push_rr(z->rrs, rr);
	}
	ldns_rr_list_sort(z->rrs);
	return z;
}

/* stall.test.: SOA, NS, glue and fat TXT records (about 2 KB each), more in
 * all than the kernel buffers on a TCP connection whose reader stops
 * (net.ipv4.tcp_wmem's maximum send buffer plus a small receive window), so a
 * transfer of it stays in progress until the client reads.  (big.test. is served
 * from the transfer cache so fast that it fits into socket buffers at once.) */
static size_t stall_records(void)
{
	long wmem_max = 4194304;
	FILE *f = fopen("/proc/sys/net/ipv4/tcp_wmem", "r");
	if (f) {
		long a, b, c;
		if (fscanf(f, "%ld %ld %ld", &a, &b, &c) == 3 && c > 0)
			wmem_max = c;
		fclose(f);
	}
	/* the send buffer grows up to tcp_wmem's maximum (payload and overhead), the
	 * client's receive window is a few KB: 1 MB over that stays unsent */
	size_t bytes = (size_t)wmem_max + 1024 * 1024;
	size_t n = bytes / 2000 + 1;
	return n > 40000 ? 40000 : n;
}

static struct drdns_zone *make_stall_zone(size_t n)
{
	struct drdns_zone *z = calloc(1, sizeof(*z));
	assert_non_null(z);
	z->name = strdup("stall.test.");
	assert_int_equal(ldns_str2rdf_dname(&z->origin, "stall.test."), LDNS_STATUS_OK);
	char buf[256];
	snprintf(
	    buf, sizeof(buf),
	    "stall.test. 3600 IN SOA ns1.stall.test. hostmaster.stall.test. %u 3600 600 604800 300",
	    STALL_SERIAL);
	assert_int_equal(ldns_rr_new_frm_str(&z->soa, buf, 0, NULL, NULL), LDNS_STATUS_OK);
	z->rrs = ldns_rr_list_new();
	const char *fixed[] = {"stall.test. 3600 IN NS ns1.stall.test.",
	                       "ns1.stall.test. 3600 IN A 192.0.2.9"};
	for (size_t i = 0; i < 2; i++) {
		ldns_rr *rr = NULL;
		assert_int_equal(ldns_rr_new_frm_str(&rr, fixed[i], 0, NULL, NULL), LDNS_STATUS_OK);
		ldns_rr_list_push_rr(z->rrs, rr);
	}
	uint8_t str[250];
	for (size_t i = 0; i < n; i++) {
		snprintf(buf, sizeof(buf), "t%05zu.stall.test.", i);
		ldns_rr *rr = ldns_rr_new();
		assert_non_null(rr);
		ldns_rr_set_type(rr, LDNS_RR_TYPE_TXT);
		ldns_rr_set_owner(rr, ldns_dname_new_frm_str(buf));
		ldns_rr_set_ttl(rr, 600);
		ldns_rr_set_class(rr, LDNS_RR_CLASS_IN);
		for (int k = 0; k < 8; k++) {
			str[0] = sizeof(str) - 1;
			memset(str + 1, 'a' + (int)((i + (size_t)k) % 26), sizeof(str) - 1);
			ldns_rr_push_rdf(
			    rr, ldns_rdf_new_frm_data(LDNS_RDF_TYPE_STR, sizeof(str), str));
		}
		ldns_rr_list_push_rr(z->rrs, rr);
	}
	return z;
}

/* The DR set: example.edu. from the fixture directory plus big.test. and
 * stall.test. */
static struct drdns_zoneset *make_set(void)
{
	char *dir = data_path("server-set");
	struct drdns_diag diag = {0};
	struct drdns_zoneset *set = NULL;
	int rc = drdns_zoneset_load_dir(dir, &set, &diag);
	if (rc != 0) {
		char *all = drdns_diag_join(&diag);
		fail_msg("loading %s: %s", dir, all);
	}
	free(dir);
	struct drdns_zone **grown = realloc(set->zones, (set->n + 1) * sizeof(*grown));
	assert_non_null(grown);
	set->zones = grown;
	memmove(set->zones + 1, set->zones, set->n * sizeof(*grown)); /* big.test. sorts first */
	set->zones[0] = make_big_zone();
	set->n++;
	grown = realloc(set->zones, (set->n + 1) * sizeof(*grown));
	assert_non_null(grown);
	set->zones = grown;
	set->zones[set->n++] = make_stall_zone(H.stall_records); /* sorts last */
	return set;
}

static int group_setup(void **state)
{
	(void)state;
	memset(&H, 0, sizeof(H));
	char *kpath = data_path("tsig-good.key");
	struct drdns_diag diag = {0};
	if (drdns_tsig_key_load(kpath, &H.key, &diag) != 0)
		return -1;
	free(kpath);
	H.wrong = (struct drdns_tsig_key){H.key->name, H.key->algorithm,
	                                  "c2VjcmV0LWtleS1mb3ItZHJkbnMtdW5pdC10ZXN0cw=="};
	H.stranger = (struct drdns_tsig_key){"stranger.", "hmac-sha256.", H.key->secret};

	H.secs[0] = (struct drdns_secondary){.name = "ns-keyed.example.edu.",
	                                     .address = "192.0.2.99",
	                                     .port = 53,
	                                     .tsig_key_file = "tsig-good.key",
	                                     .key = H.key};
	H.secs[1] = (struct drdns_secondary){
	    .name = "ns-plain.example.edu.", .address = "127.0.0.2", .port = 53};
	H.allow[0] = "::ffff:127.0.0.1"; /* mapped form on purpose: compared as 127.0.0.1 */
	H.conf.controller.address = "127.0.0.1";
	H.conf.controller.ns_name = "ns-dr.example.edu.";
	H.conf.controller.allow_transfer = H.allow;
	H.conf.controller.n_allow_transfer = 1;
	H.conf.secondaries = H.secs;
	H.conf.n_secondaries = 2;
	H.strict = H.conf;
	H.strict.controller.allow_transfer = NULL;
	H.strict.controller.n_allow_transfer = 0;

	if (uv_loop_init(&H.loop) != 0 || uv_sem_init(&H.done, 0) != 0)
		return -1;
	srand((unsigned)time(NULL) ^ (unsigned)getpid());
	int rc = -1;
	for (int attempt = 0; attempt < 50 && rc != 0; attempt++) {
		H.port = (uint16_t)(20000 + rand() % 40000);
		H.conf.controller.port = H.port;
		H.strict.controller.port = H.port;
		rc = drdns_server_new(&H.loop, &H.conf, &H.srv);
		if (rc != 0 && rc != UV_EADDRINUSE)
			return -1;
	}
	if (rc != 0)
		return -1;
	uv_async_init(&H.loop, &H.async, on_async);
	H.async.data = &H;
	H.big_ref = make_big_zone();
	H.stall_records = stall_records();
	H.stall_ref = make_stall_zone(H.stall_records);
	return uv_thread_create(&H.thread, loop_thread, &H);
}

static void shutdown_server(void)
{
	if (H.closed)
		return;
	run_cmd(CMD_CLOSE, NULL);
	uv_thread_join(&H.thread);
	assert_int_equal(uv_loop_close(&H.loop), 0);
}

static int group_teardown(void **state)
{
	(void)state;
	shutdown_server();
	uv_sem_destroy(&H.done);
	drdns_zone_free(H.big_ref);
	drdns_zone_free(H.stall_ref);
	drdns_tsig_key_free(H.key);
	return 0;
}

/* ------------------------------------------------------------ client */

static ldns_pkt *mkquery(const char *name, ldns_rr_type type, ldns_rr_class cls)
{
	ldns_pkt *q = NULL;
	assert_int_equal(ldns_pkt_query_new_frm_str(&q, name, type, cls, 0), LDNS_STATUS_OK);
	ldns_pkt_set_random_id(q);
	return q;
}

static void fill_addr(struct sockaddr_in *sa, const char *ip, uint16_t port)
{
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons(port);
	assert_int_equal(inet_pton(AF_INET, ip, &sa->sin_addr), 1);
}

static int client_socket(int type, const char *src)
{
	int fd = socket(AF_INET, type, 0);
	assert_true(fd >= 0);
	struct timeval tv = {5, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (src) {
		struct sockaddr_in sa;
		fill_addr(&sa, src, 0);
		assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	}
	return fd;
}

/* Send raw bytes over UDP; the parsed answer, or NULL after timeout_ms. */
static ldns_pkt *udp_raw(const uint8_t *wire, size_t len, const char *src, int timeout_ms,
                         uint8_t **rwire, size_t *rlen)
{
	int fd = client_socket(SOCK_DGRAM, src);
	struct sockaddr_in to;
	fill_addr(&to, "127.0.0.1", H.port);
	assert_int_equal(sendto(fd, wire, len, 0, (struct sockaddr *)&to, sizeof(to)),
	                 (ssize_t)len);
	struct pollfd p = {.fd = fd, .events = POLLIN};
	ldns_pkt *r = NULL;
	if (poll(&p, 1, timeout_ms) == 1) {
		uint8_t buf[65536];
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		assert_true(n > 0);
		assert_int_equal(ldns_wire2pkt(&r, buf, (size_t)n), LDNS_STATUS_OK);
		if (rwire) {
			*rwire = malloc((size_t)n);
			memcpy(*rwire, buf, (size_t)n);
			*rlen = (size_t)n;
		}
	}
	close(fd);
	return r;
}

/* Ask over UDP, checking the answer matches the query id. Frees q. */
static ldns_pkt *udp_ask(ldns_pkt *q, const char *src)
{
	uint8_t *wire;
	size_t len;
	assert_int_equal(ldns_pkt2wire(&wire, q, &len), LDNS_STATUS_OK);
	ldns_pkt *r = udp_raw(wire, len, src, 2000, NULL, NULL);
	free(wire);
	assert_non_null(r);
	assert_true(ldns_pkt_qr(r));
	assert_int_equal(ldns_pkt_id(r), ldns_pkt_id(q));
	ldns_pkt_free(q);
	return r;
}

/* small_rcvbuf: a small receive window, so a transfer cannot finish into
 * socket buffers while the test is not reading */
static int tcp_connect2(const char *src, bool small_rcvbuf)
{
	int fd = client_socket(SOCK_STREAM, src);
	if (small_rcvbuf) {
		int small = 4096;
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	}
	struct sockaddr_in to;
	fill_addr(&to, "127.0.0.1", H.port);
	assert_int_equal(connect(fd, (struct sockaddr *)&to, sizeof(to)), 0);
	return fd;
}

static int tcp_connect(const char *src)
{
	return tcp_connect2(src, false);
}

static void write_all(int fd, const uint8_t *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);
		assert_true(n > 0);
		p += n;
		len -= (size_t)n;
	}
}

static void tcp_send(int fd, const ldns_pkt *q)
{
	uint8_t *wire;
	size_t len;
	assert_int_equal(ldns_pkt2wire(&wire, q, &len), LDNS_STATUS_OK);
	uint8_t *framed = malloc(len + 2);
	framed[0] = (uint8_t)(len >> 8);
	framed[1] = (uint8_t)len;
	memcpy(framed + 2, wire, len);
	write_all(fd, framed, len + 2);
	free(framed);
	free(wire);
}

static bool read_all(int fd, uint8_t *p, size_t len)
{
	while (len) {
		ssize_t n = read(fd, p, len);
		if (n <= 0)
			return false;
		p += n;
		len -= (size_t)n;
	}
	return true;
}

/* One framed message (wire returned in *wire), or NULL on EOF/timeout. */
static ldns_pkt *tcp_read(int fd, uint8_t **wire, size_t *len)
{
	uint8_t hdr[2];
	if (!read_all(fd, hdr, 2))
		return NULL;
	size_t l = ((size_t)hdr[0] << 8) | hdr[1];
	uint8_t *buf = malloc(l ? l : 1);
	if (!read_all(fd, buf, l)) {
		free(buf);
		return NULL;
	}
	ldns_pkt *r = NULL;
	assert_int_equal(ldns_wire2pkt(&r, buf, l), LDNS_STATUS_OK);
	if (wire) {
		*wire = buf;
		*len = l;
	} else {
		free(buf);
	}
	return r;
}

static ldns_pkt *tcp_ask(ldns_pkt *q, const char *src)
{
	int fd = tcp_connect(src);
	tcp_send(fd, q);
	ldns_pkt *r = tcp_read(fd, NULL, NULL);
	assert_non_null(r);
	assert_int_equal(ldns_pkt_id(r), ldns_pkt_id(q));
	ldns_pkt_free(q);
	close(fd);
	return r;
}

static uint32_t soa_serial(const ldns_rr *rr)
{
	assert_int_equal(ldns_rr_get_type(rr), LDNS_RR_TYPE_SOA);
	return ldns_rdf2native_int32(ldns_rr_rdf(rr, 2));
}

/* A whole transfer read from fd. */
struct xfr_result {
	ldns_rr_list *rrs; /* every answer RR, in order */
	size_t msgs;
	size_t max_len;
	bool later_have_question;
	bool all_signed;
	bool end;        /* the closing SOA arrived */
	uint8_t **wires; /* every message as received */
	size_t *lens;
	/* reading state */
	int fd;
	uint16_t id;
	const struct drdns_tsig_key *key;
	ldns_rdf *mac;
};

static void xfr_result_free(struct xfr_result *x)
{
	ldns_rr_list_deep_free(x->rrs);
	for (size_t i = 0; i < x->msgs; i++)
		free(x->wires[i]);
	free(x->wires);
	free(x->lens);
	ldns_rdf_deep_free(x->mac);
}

/* Start reading a transfer.  With key, every message's TSIG is verified (first
 * against the request MAC, the rest against the previous MAC with timers only,
 * RFC 8945 5.3.1). */
static struct xfr_result xfr_reader(int fd, uint16_t id, const struct drdns_tsig_key *key,
                                    const ldns_rdf *req_mac)
{
	struct xfr_result x = {.rrs = ldns_rr_list_new(),
	                       .all_signed = true,
	                       .fd = fd,
	                       .id = id,
	                       .key = key,
	                       .mac = req_mac ? ldns_rdf_clone(req_mac) : NULL};
	return x;
}

/* Read the next message of the transfer; false once the closing SOA was read. */
static bool xfr_read_one(struct xfr_result *x)
{
	if (x->end)
		return false;
	uint8_t *wire;
	size_t len;
	ldns_pkt *m = tcp_read(x->fd, &wire, &len);
	if (!m)
		fail_msg("transfer ended early after %zu messages, %zu rrs", x->msgs,
		         ldns_rr_list_rr_count(x->rrs));
	assert_int_equal(ldns_pkt_id(m), x->id);
	assert_int_equal(ldns_pkt_get_rcode(m), LDNS_RCODE_NOERROR);
	assert_true(ldns_pkt_aa(m));
	if (x->msgs > 0 && ldns_pkt_qdcount(m) > 0)
		x->later_have_question = true;
	if (x->msgs == 0)
		assert_int_equal(ldns_pkt_qdcount(m), 1);
	if (len > x->max_len)
		x->max_len = len;
	if (x->key) {
		assert_non_null(ldns_pkt_tsig(m));
		if (!ldns_pkt_tsig_verify_next(m, wire, len, x->key->name, x->key->secret, x->mac,
		                               x->msgs > 0))
			fail_msg("TSIG of message %zu does not verify", x->msgs);
		ldns_rdf_deep_free(x->mac);
		x->mac = ldns_rdf_clone(ldns_rr_rdf(ldns_pkt_tsig(m), 3));
	} else if (!ldns_pkt_tsig(m)) {
		x->all_signed = false;
	}
	ldns_rr_list *an = ldns_pkt_answer(m);
	for (size_t i = 0; i < ldns_rr_list_rr_count(an); i++) {
		ldns_rr *rr = ldns_rr_list_rr(an, i);
		if (ldns_rr_list_rr_count(x->rrs) > 0 && ldns_rr_get_type(rr) == LDNS_RR_TYPE_SOA) {
			assert_int_equal(i, ldns_rr_list_rr_count(an) - 1);
			x->end = true;
		}
		ldns_rr_list_push_rr(x->rrs, ldns_rr_clone(rr));
	}
	x->wires = realloc(x->wires, (x->msgs + 1) * sizeof(*x->wires));
	x->lens = realloc(x->lens, (x->msgs + 1) * sizeof(*x->lens));
	assert_non_null(x->wires);
	assert_non_null(x->lens);
	x->wires[x->msgs] = wire;
	x->lens[x->msgs] = len;
	x->msgs++;
	ldns_pkt_free(m);
	return !x->end;
}

/* Read messages until the closing SOA. */
static struct xfr_result read_xfr(int fd, uint16_t id, const struct drdns_tsig_key *key,
                                  const ldns_rdf *req_mac)
{
	struct xfr_result x = xfr_reader(fd, id, key, req_mac);
	while (xfr_read_one(&x))
		;
	return x;
}

/* The transfer equals SOA, zone->rrs..., SOA. */
static void check_full_zone(const struct xfr_result *x, const struct drdns_zone *z)
{
	size_t n = ldns_rr_list_rr_count(z->rrs);
	assert_int_equal(ldns_rr_list_rr_count(x->rrs), n + 2);
	assert_int_equal(ldns_rr_compare(ldns_rr_list_rr(x->rrs, 0), z->soa), 0);
	assert_int_equal(ldns_rr_compare(ldns_rr_list_rr(x->rrs, n + 1), z->soa), 0);
	for (size_t i = 0; i < n; i++)
		if (ldns_rr_compare(ldns_rr_list_rr(x->rrs, i + 1), ldns_rr_list_rr(z->rrs, i)) !=
		    0)
			fail_msg("record %zu differs", i);
}

/* An IXFR query with the client's serial in the authority section. */
static ldns_pkt *mkixfr(const char *zone, uint32_t serial)
{
	ldns_pkt *q = mkquery(zone, LDNS_RR_TYPE_IXFR, LDNS_RR_CLASS_IN);
	char buf[256];
	snprintf(buf, sizeof(buf), "%s 0 IN SOA . . %u 0 0 0 0", zone, serial);
	ldns_rr *soa = NULL;
	assert_int_equal(ldns_rr_new_frm_str(&soa, buf, 0, NULL, NULL), LDNS_STATUS_OK);
	ldns_pkt_push_rr(q, LDNS_SECTION_AUTHORITY, soa);
	return q;
}

static void install_set(void)
{
	run_cmd(CMD_SET_ZONES, make_set());
}

/* ------------------------------------------------------------ thread pool */

/* The server renders its transfer cache in libuv's thread pool (shared by the
 * process).  Occupying every pool thread holds the rendering back, so transfers
 * take the per-message path; a drain makes sure every job queued so far has run. */
struct pool_block {
	uv_loop_t loop;
	uv_work_t w[POOL_THREADS];
	uv_sem_t started, release;
	uv_barrier_t barrier;
};

static void pool_block_work(uv_work_t *w)
{
	struct pool_block *b = w->data;
	uv_sem_post(&b->started);
	uv_sem_wait(&b->release);
}

/* Occupy every pool thread (returns once all of them are held). */
static void pool_block(struct pool_block *b)
{
	assert_int_equal(uv_loop_init(&b->loop), 0);
	assert_int_equal(uv_sem_init(&b->started, 0), 0);
	assert_int_equal(uv_sem_init(&b->release, 0), 0);
	for (int i = 0; i < POOL_THREADS; i++) {
		b->w[i].data = b;
		assert_int_equal(uv_queue_work(&b->loop, &b->w[i], pool_block_work, NULL), 0);
	}
	for (int i = 0; i < POOL_THREADS; i++)
		uv_sem_wait(&b->started);
}

static void pool_release(struct pool_block *b)
{
	for (int i = 0; i < POOL_THREADS; i++)
		uv_sem_post(&b->release);
	assert_int_equal(uv_run(&b->loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&b->loop), 0);
	uv_sem_destroy(&b->started);
	uv_sem_destroy(&b->release);
}

static void pool_barrier_work(uv_work_t *w)
{
	struct pool_block *b = w->data;
	uv_barrier_wait(&b->barrier);
}

/* Wait until every job queued before now has finished: the pool runs jobs in
 * order, so once POOL_THREADS new jobs run at the same time, the older ones are
 * done.  Then two round trips through the server's loop make sure it ran their
 * after-work callbacks (a finished job has signalled the loop before its thread
 * takes the next job). */
static void pool_drain(void)
{
	struct pool_block b;
	assert_int_equal(uv_loop_init(&b.loop), 0);
	assert_int_equal(uv_barrier_init(&b.barrier, POOL_THREADS), 0);
	for (int i = 0; i < POOL_THREADS; i++) {
		b.w[i].data = &b;
		assert_int_equal(uv_queue_work(&b.loop, &b.w[i], pool_barrier_work, NULL), 0);
	}
	assert_int_equal(uv_run(&b.loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&b.loop), 0);
	uv_barrier_destroy(&b.barrier);
	run_cmd(CMD_STATS, NULL);
	run_cmd(CMD_STATS, NULL);
}

/* ------------------------------------------------------------ log capture */

/* The server's log (stderr) is captured to tell which path served a transfer:
 * "xfr end ... messages=N cached=M". */
static int cap_fd = -1, cap_saved = -1;

static void capture_start(void)
{
	char path[] = "/tmp/drdns-test-log.XXXXXX";
	fflush(stderr);
	cap_fd = mkstemp(path);
	assert_true(cap_fd >= 0);
	unlink(path);
	cap_saved = dup(STDERR_FILENO);
	assert_true(cap_saved >= 0);
	assert_true(dup2(cap_fd, STDERR_FILENO) >= 0);
}

/* Stop capturing once no transfer is running (each logs its end); returns the
 * text (also copied to stderr). */
static char *capture_end(void)
{
	for (int i = 0; i < 500 && stats().active_transfers > 0; i++)
		usleep(10000);
	fflush(stderr);
	assert_true(dup2(cap_saved, STDERR_FILENO) >= 0);
	close(cap_saved);
	struct stat st;
	assert_int_equal(fstat(cap_fd, &st), 0);
	char *text = calloc(1, (size_t)st.st_size + 1);
	assert_non_null(text);
	assert_int_equal(pread(cap_fd, text, (size_t)st.st_size, 0), st.st_size);
	close(cap_fd);
	fputs(text, stderr);
	return text;
}

/* The "xfr end" lines of a captured log for zone, in order: messages and cached
 * counts; returns how many. */
static size_t xfr_ends(const char *log, const char *zone, size_t *msgs, size_t *cached, size_t max)
{
	size_t n = 0;
	char want[128];
	snprintf(want, sizeof(want), "zone=%s ", zone);
	for (const char *p = strstr(log, "xfr end "); p && n < max; p = strstr(p + 1, "xfr end ")) {
		const char *eol = strchr(p, '\n');
		const char *z = strstr(p, want);
		const char *m = strstr(p, " messages=");
		if (!z || !m || (eol && (z > eol || m > eol)))
			continue;
		assert_int_equal(sscanf(m, " messages=%zu cached=%zu", &msgs[n], &cached[n]), 2);
		n++;
	}
	return n;
}

/* ------------------------------------------------------------ tests */

static void test_bind_errors(void **state)
{
	(void)state;
	uv_loop_t l;
	assert_int_equal(uv_loop_init(&l), 0);
	struct drdns_server *s = (struct drdns_server *)0x1;
	/* the port is taken (TCP and UDP) */
	assert_int_equal(drdns_server_new(&l, &H.conf, &s), UV_EADDRINUSE);
	assert_null(s);
	struct drdns_conf bad = H.conf;
	bad.controller.address = "not-an-address";
	assert_int_equal(drdns_server_new(&l, &bad, &s), DRDNS_EINVAL);
	/* nothing was left on the loop */
	assert_int_equal(uv_run(&l, UV_RUN_NOWAIT), 0);
	assert_int_equal(uv_loop_close(&l), 0);
}

static void on_v6_closed(void *arg)
{
	*(bool *)arg = true;
}

/* An IPv6 literal: a server on ::1 (its own loop, driven from this thread). */
static void test_ipv6(void **state)
{
	(void)state;
	int probe = socket(AF_INET6, SOCK_DGRAM, 0);
	struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	if (probe < 0 || bind(probe, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (probe >= 0)
			close(probe);
		skip(); /* no IPv6 loopback here */
	}
	close(probe);
	uv_loop_t l;
	assert_int_equal(uv_loop_init(&l), 0);
	struct drdns_conf c = H.conf;
	c.controller.address = "::1";
	struct drdns_server *s = NULL;
	int rc = -1;
	for (int i = 0; i < 50 && rc != 0; i++) {
		c.controller.port = (uint16_t)(20000 + rand() % 40000);
		rc = drdns_server_new(&l, &c, &s);
	}
	assert_int_equal(rc, 0);
	drdns_server_set_zones(s, make_set());

	/* an IPv6 client: SOA over UDP */
	int fd = socket(AF_INET6, SOCK_DGRAM, 0);
	sa.sin6_port = htons(c.controller.port);
	ldns_pkt *q = mkquery("example.edu.", LDNS_RR_TYPE_SOA, LDNS_RR_CLASS_IN);
	uint8_t *wire;
	size_t len;
	assert_int_equal(ldns_pkt2wire(&wire, q, &len), LDNS_STATUS_OK);
	assert_int_equal(sendto(fd, wire, len, 0, (struct sockaddr *)&sa, sizeof(sa)),
	                 (ssize_t)len);
	free(wire);
	ldns_pkt *r = NULL;
	for (int i = 0; i < 200 && !r; i++) {
		uv_run(&l, UV_RUN_NOWAIT);
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 10) == 1) {
			uint8_t buf[4096];
			ssize_t n = recv(fd, buf, sizeof(buf), 0);
			assert_true(n > 0);
			assert_int_equal(ldns_wire2pkt(&r, buf, (size_t)n), LDNS_STATUS_OK);
		}
	}
	assert_non_null(r);
	assert_int_equal(ldns_pkt_id(r), ldns_pkt_id(q));
	assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NOERROR);
	assert_true(ldns_pkt_aa(r));
	ldns_pkt_free(r);
	ldns_pkt_free(q);
	close(fd);

	bool closed = false;
	drdns_server_close(s, on_v6_closed, &closed);
	while (!closed)
		uv_run(&l, UV_RUN_ONCE);
	assert_int_equal(uv_loop_close(&l), 0);
}

static void test_refused_unpromoted(void **state)
{
	(void)state;
	struct drdns_server_stats before = stats();
	uint64_t t0 = uv_hrtime();
	ldns_pkt *r = udp_ask(mkquery("example.edu.", LDNS_RR_TYPE_SOA, LDNS_RR_CLASS_IN), NULL);
	assert_true(uv_hrtime() - t0 < 500000000ull); /* prompt */
	assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_REFUSED);
	assert_int_equal(ldns_pkt_qdcount(r), 1);
	ldns_pkt_free(r);

	r = tcp_ask(mkquery("example.edu.", LDNS_RR_TYPE_SOA, LDNS_RR_CLASS_IN), NULL);
	assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_REFUSED);
	ldns_pkt_free(r);
	r = tcp_ask(mkquery("example.edu.", LDNS_RR_TYPE_AXFR, LDNS_RR_CLASS_IN), NULL);
	assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_REFUSED);
	ldns_pkt_free(r);
	ldns_pkt *n = mkquery("example.edu.", LDNS_RR_TYPE_SOA, LDNS_RR_CLASS_IN);
	ldns_pkt_set_opcode(n, LDNS_PACKET_NOTIFY);
	r = udp_ask(n, NULL);
	assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_REFUSED);
	ldns_pkt_free(r);

	struct drdns_server_stats after = stats();
	assert_int_equal(after.refused - before.refused, 4);
	assert_int_equal(after.queries - before.queries, 4);
	assert_null(drdns_server_zones(H.srv));
}

static void test_soa_after_install(void **state)
{
	(void)state;
	install_set();
	ldns_pkt *r = udp_ask(mkquery("example.edu.", LDNS_RR_TYPE_SOA, LDNS_RR_CLASS_IN), NULL);
	assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NOERROR);
	assert_true(ldns_pkt_aa(r));
	assert_int_equal(ldns_pkt_ancount(r), 1);
	assert_int_equal(soa_serial(ldns_rr_list_rr(ldns_pkt_answer(r), 0)), EXAMPLE_SERIAL);
	assert_false(ldns_pkt_edns(r));
	ldns_pkt_free(r);

	/* over TCP, in upper case, with EDNS */
	ldns_pkt *q = mkquery("BIG.Test.", LDNS_RR_TYPE_SOA, LDNS_RR_CLASS_IN);
	ldns_pkt_set_edns_udp_size(q, 4096);
	r = tcp_ask(q, NULL);
	assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NOERROR);
	assert_true(ldns_pkt_aa(r));
	assert_true(ldns_pkt_edns(r));
	assert_int_equal(ldns_pkt_ancount(r), 1);
	assert_int_equal(soa_serial(ldns_rr_list_rr(ldns_pkt_answer(r), 0)), BIG_SERIAL);
	ldns_pkt_free(r);
}

static void test_lookups(void **state)
{
	(void)state;
	ldns_pkt *r = udp_ask(mkquery("www.example.edu.", LDNS_RR_TYPE_A, LDNS_RR_CLASS_IN), NULL);
	assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NOERROR);
	assert_true(ldns_pkt_aa(r));
	assert_int_equal(ldns_pkt_ancount(r), 2);
	ldns_pkt_free(r);

	r = udp_ask(mkquery("example.edu.", LDNS_RR_TYPE_NS, LDNS_RR_CLASS_IN), NULL);
	assert_int_equal(ldns_pkt_ancount(r), 2);
	ldns_pkt_free(r);

	/* the CNAME is followed within the zone (RFC 1034 4.3.2 3a): CNAME, then
	 * www's two addresses */
	r = udp_ask(mkquery("alias.example.edu.", LDNS_RR_TYPE_A, LDNS_RR_CLASS_IN), NULL);
	assert_int_equal(ldns_pkt_ancount(r), 3);
	assert_int_equal(ldns_rr_get_type(ldns_rr_list_rr(ldns_pkt_answer(r), 0)),
	                 LDNS_RR_TYPE_CNAME);
	ldns_pkt_free(r);

	/* NXDOMAIN with the SOA (negative TTL = MINIMUM 120) */
	r = udp_ask(mkquery("nope.example.edu.", LDNS_RR_TYPE_A, LDNS_RR_CLASS_IN), NULL);
	assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NXDOMAIN);
	assert_true(ldns_pkt_aa(r));
	assert_int_equal(ldns_pkt_ancount(r), 0);
	assert_int_equal(ldns_pkt_nscount(r), 1);
	assert_int_equal(ldns_rr_ttl(ldns_rr_list_rr(ldns_pkt_authority(r), 0)), 120);
	ldns_pkt_free(r);

	/* NODATA: the name exists, the type does not */
	r = udp_ask(mkquery("www.example.edu.", LDNS_RR_TYPE_MX, LDNS_RR_CLASS_IN), NULL);
	assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NOERROR);
	assert_int_equal(ldns_pkt_ancount(r), 0);
	assert_int_equal(ldns_pkt_nscount(r), 1);
	ldns_pkt_free(r);

	/* an empty non-terminal is NODATA, not NXDOMAIN */
	r = udp_ask(mkquery("b.deep.example.edu.", LDNS_RR_TYPE_TXT, LDNS_RR_CLASS_IN), NULL);
	assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NOERROR);
	assert_int_equal(ldns_pkt_ancount(r), 0);
	ldns_pkt_free(r);
	r = udp_ask(mkquery("a.b.deep.example.edu.", LDNS_RR_TYPE_TXT, LDNS_RR_CLASS_IN), NULL);
	assert_int_equal(ldns_pkt_ancount(r), 1);
	ldns_pkt_free(r);

	/* a name in the big zone (binary search) */
	r = udp_ask(mkquery("host12345.big.test.", LDNS_RR_TYPE_A, LDNS_RR_CLASS_IN), NULL);
	assert_int_equal(ldns_pkt_ancount(r), 1);
	ldns_pkt_free(r);

	/* not served */
	r = udp_ask(mkquery("example.org.", LDNS_RR_TYPE_SOA, LDNS_RR_CLASS_IN), NULL);
	assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_REFUSED);
	ldns_pkt_free(r);
	r = udp_ask(mkquery("edu.", LDNS_RR_TYPE_SOA, LDNS_RR_CLASS_IN), NULL);
	assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_REFUSED);
	ldns_pkt_free(r);
	/* class CH */
	r = udp_ask(mkquery("example.edu.", LDNS_RR_TYPE_SOA, LDNS_RR_CLASS_CH), NULL);
	assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_REFUSED);
	ldns_pkt_free(r);
	/* other opcode */
	ldns_pkt *q = mkquery("example.edu.", LDNS_RR_TYPE_SOA, LDNS_RR_CLASS_IN);
	ldns_pkt_set_opcode(q, LDNS_PACKET_STATUS);
	r = udp_ask(q, NULL);
	assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NOTIMPL);
	ldns_pkt_free(r);
	/* no question */
	q = ldns_pkt_new();
	ldns_pkt_set_id(q, 777);
	r = udp_ask(q, NULL);
	assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_FORMERR);
	ldns_pkt_free(r);
	/* AXFR over UDP: FORMERR, as BIND */
	r = udp_ask(mkquery("example.edu.", LDNS_RR_TYPE_AXFR, LDNS_RR_CLASS_IN), NULL);
	assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_FORMERR);
	ldns_pkt_free(r);
	/* EDNS version 1: BADVERS */
	q = mkquery("example.edu.", LDNS_RR_TYPE_SOA, LDNS_RR_CLASS_IN);
	ldns_pkt_set_edns_udp_size(q, 1232);
	ldns_pkt_set_edns_version(q, 1);
	r = udp_ask(q, NULL);
	assert_true(ldns_pkt_edns(r));
	assert_int_equal(ldns_pkt_edns_extended_rcode(r), 1);
	ldns_pkt_free(r);
}

/* CHAOS TXT and NSID: REFUSED / absent by default, configurable. */
static void test_chaos_nsid(void **state)
{
	(void)state;
	ldns_pkt *r = udp_ask(mkquery("id.server.", LDNS_RR_TYPE_TXT, LDNS_RR_CLASS_CH), NULL);
	assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_REFUSED);
	ldns_pkt_free(r);
	H.conf.controller.identity = "dr-test";
	H.conf.controller.version = "drdns-test";
	H.conf.controller.nsid = "dr-nsid";
	r = udp_ask(mkquery("ID.Server.", LDNS_RR_TYPE_TXT, LDNS_RR_CLASS_CH), NULL);
	assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NOERROR);
	assert_false(ldns_pkt_aa(r));
	assert_int_equal(ldns_pkt_ancount(r), 1);
	char *txt = ldns_rdf2str(ldns_rr_rdf(ldns_rr_list_rr(ldns_pkt_answer(r), 0), 0));
	assert_string_equal(txt, "\"dr-test\"");
	free(txt);
	assert_int_equal(ldns_rr_get_class(ldns_rr_list_rr(ldns_pkt_answer(r), 0)),
	                 LDNS_RR_CLASS_CH);
	ldns_pkt_free(r);
	r = udp_ask(mkquery("version.bind.", LDNS_RR_TYPE_TXT, LDNS_RR_CLASS_CH), NULL);
	assert_int_equal(ldns_pkt_ancount(r), 1);
	ldns_pkt_free(r);
	/* other CHAOS names stay REFUSED */
	r = udp_ask(mkquery("authors.bind.", LDNS_RR_TYPE_TXT, LDNS_RR_CLASS_CH), NULL);
	assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_REFUSED);
	ldns_pkt_free(r);
	/* NSID only when asked */
	ldns_pkt *q = mkquery("example.edu.", LDNS_RR_TYPE_SOA, LDNS_RR_CLASS_IN);
	ldns_pkt_set_edns_udp_size(q, 1232);
	r = udp_ask(q, NULL);
	ldns_edns_option_list *l = ldns_pkt_edns_get_option_list(r);
	assert_true(!l || ldns_edns_option_list_get_count(l) == 0);
	ldns_pkt_free(r);
	q = mkquery("example.edu.", LDNS_RR_TYPE_SOA, LDNS_RR_CLASS_IN);
	ldns_pkt_set_edns_udp_size(q, 1232);
	ldns_edns_option_list *ql = ldns_edns_option_list_new();
	assert_true(ldns_edns_option_list_push(ql, ldns_edns_new_from_data(LDNS_EDNS_NSID, 0, "")));
	ldns_pkt_set_edns_option_list(q, ql);
	r = udp_ask(q, NULL);
	l = ldns_pkt_edns_get_option_list(r);
	assert_non_null(l);
	assert_int_equal(ldns_edns_option_list_get_count(l), 1);
	const ldns_edns_option *o = ldns_edns_option_list_get_option(l, 0);
	assert_int_equal(ldns_edns_get_code(o), LDNS_EDNS_NSID);
	assert_int_equal(ldns_edns_get_size(o), 7);
	assert_memory_equal(ldns_edns_get_data(o), "dr-nsid", 7);
	ldns_pkt_free(r);
	H.conf.controller.identity = NULL;
	H.conf.controller.version = NULL;
	H.conf.controller.nsid = NULL;
}

static void test_udp_truncation(void **state)
{
	(void)state;
	/* many.example.edu. has 12 TXT records, well over 512 bytes */
	ldns_pkt *r =
	    udp_ask(mkquery("many.example.edu.", LDNS_RR_TYPE_TXT, LDNS_RR_CLASS_IN), NULL);
	assert_true(ldns_pkt_tc(r));
	assert_int_equal(ldns_pkt_ancount(r), 0);
	ldns_pkt_free(r);
	/* with EDNS it fits */
	ldns_pkt *q = mkquery("many.example.edu.", LDNS_RR_TYPE_TXT, LDNS_RR_CLASS_IN);
	ldns_pkt_set_edns_udp_size(q, 4096);
	r = udp_ask(q, NULL);
	assert_false(ldns_pkt_tc(r));
	assert_int_equal(ldns_pkt_ancount(r), 12);
	ldns_pkt_free(r);
	/* over TCP it fits */
	r = tcp_ask(mkquery("many.example.edu.", LDNS_RR_TYPE_TXT, LDNS_RR_CLASS_IN), NULL);
	assert_false(ldns_pkt_tc(r));
	assert_int_equal(ldns_pkt_ancount(r), 12);
	ldns_pkt_free(r);
	/* ANY at the apex: one RRset, the SOA (RFC 8482 4.1, as NSD 4.6) */
	r = udp_ask(mkquery("example.edu.", LDNS_RR_TYPE_ANY, LDNS_RR_CLASS_IN), NULL);
	assert_false(ldns_pkt_tc(r));
	assert_int_equal(ldns_pkt_ancount(r), 1);
	assert_int_equal(ldns_rr_get_type(ldns_rr_list_rr(ldns_pkt_answer(r), 0)),
	                 LDNS_RR_TYPE_SOA);
	ldns_pkt_free(r);
}

static void test_axfr_big(void **state)
{
	(void)state;
	struct drdns_server_stats before = stats();
	int fd = tcp_connect(NULL);
	ldns_pkt *q = mkquery("big.test.", LDNS_RR_TYPE_AXFR, LDNS_RR_CLASS_IN);
	tcp_send(fd, q);
	struct xfr_result x = read_xfr(fd, ldns_pkt_id(q), NULL, NULL);
	check_full_zone(&x, H.big_ref);
	assert_true(x.msgs > 10);
	assert_true(x.max_len <= 16384 + 512);
	assert_false(x.later_have_question);
	xfr_result_free(&x);

	/* the same connection still answers (pipelining after a transfer) */
	ldns_pkt *q2 = mkquery("example.edu.", LDNS_RR_TYPE_SOA, LDNS_RR_CLASS_IN);
	tcp_send(fd, q2);
	ldns_pkt *r = tcp_read(fd, NULL, NULL);
	assert_non_null(r);
	assert_int_equal(ldns_pkt_id(r), ldns_pkt_id(q2));
	ldns_pkt_free(r);
	ldns_pkt_free(q2);
	ldns_pkt_free(q);
	close(fd);

	struct drdns_server_stats after = stats();
	assert_int_equal(after.axfr - before.axfr, 1);
	assert_int_equal(after.active_transfers, 0);
}

/* Two transfers at once (stall.test.: neither can finish before it is read). */
static void test_axfr_concurrent(void **state)
{
	(void)state;
	int fa = tcp_connect2(NULL, true), fb = tcp_connect2(NULL, true);
	ldns_pkt *qa = mkquery("stall.test.", LDNS_RR_TYPE_AXFR, LDNS_RR_CLASS_IN);
	ldns_pkt *qb = mkquery("stall.test.", LDNS_RR_TYPE_AXFR, LDNS_RR_CLASS_IN);
	tcp_send(fa, qa);
	tcp_send(fb, qb);
	/* both have started before either is read */
	for (int i = 0; i < 100 && stats().active_transfers < 2; i++)
		usleep(10000);
	assert_int_equal(stats().active_transfers, 2);
	struct xfr_result xb = read_xfr(fb, ldns_pkt_id(qb), NULL, NULL);
	struct xfr_result xa = read_xfr(fa, ldns_pkt_id(qa), NULL, NULL);
	check_full_zone(&xa, H.stall_ref);
	check_full_zone(&xb, H.stall_ref);
	xfr_result_free(&xa);
	xfr_result_free(&xb);
	ldns_pkt_free(qa);
	ldns_pkt_free(qb);
	close(fa);
	close(fb);
}

static void test_ixfr(void **state)
{
	(void)state;
	/* TCP, older serial: the whole zone, AXFR-style */
	int fd = tcp_connect(NULL);
	ldns_pkt *q = mkixfr("big.test.", 1);
	tcp_send(fd, q);
	struct xfr_result x = read_xfr(fd, ldns_pkt_id(q), NULL, NULL);
	check_full_zone(&x, H.big_ref);
	xfr_result_free(&x);
	ldns_pkt_free(q);

	/* TCP, same serial: the SOA alone (up to date) */
	q = mkixfr("big.test.", BIG_SERIAL);
	tcp_send(fd, q);
	ldns_pkt *r = tcp_read(fd, NULL, NULL);
	assert_non_null(r);
	assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NOERROR);
	assert_int_equal(ldns_pkt_ancount(r), 1);
	assert_int_equal(soa_serial(ldns_rr_list_rr(ldns_pkt_answer(r), 0)), BIG_SERIAL);
	ldns_pkt_free(r);
	ldns_pkt_free(q);
	close(fd);

	/* UDP: the current SOA only ("use TCP") */
	r = udp_ask(mkixfr("example.edu.", 1), NULL);
	assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NOERROR);
	assert_true(ldns_pkt_aa(r));
	assert_int_equal(ldns_pkt_ancount(r), 1);
	assert_int_equal(soa_serial(ldns_rr_list_rr(ldns_pkt_answer(r), 0)), EXAMPLE_SERIAL);
	ldns_pkt_free(r);

	/* no SOA in the authority section: FORMERR */
	r = tcp_ask(mkquery("example.edu.", LDNS_RR_TYPE_IXFR, LDNS_RR_CLASS_IN), NULL);
	assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_FORMERR);
	ldns_pkt_free(r);
}

static void test_notify(void **state)
{
	(void)state;
	struct drdns_server_stats before = stats();
	ldns_pkt *q = mkquery("example.edu.", LDNS_RR_TYPE_SOA, LDNS_RR_CLASS_IN);
	ldns_pkt_set_opcode(q, LDNS_PACKET_NOTIFY);
	ldns_pkt_set_aa(q, true);
	ldns_pkt *r = udp_ask(q, NULL);
	assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NOERROR);
	assert_int_equal(ldns_pkt_get_opcode(r), LDNS_PACKET_NOTIFY);
	assert_true(ldns_pkt_aa(r));
	assert_int_equal(ldns_pkt_qdcount(r), 1);
	assert_int_equal(ldns_rr_get_type(ldns_rr_list_rr(ldns_pkt_question(r), 0)),
	                 LDNS_RR_TYPE_SOA);
	ldns_pkt_free(r);
	assert_int_equal(stats().notify_received - before.notify_received, 1);
}

/* The refusals noted after mark since (read on the loop thread); the mark now. */
static size_t refusals_since(uint64_t since, uint64_t *mark)
{
	H.refusals_since = since;
	run_cmd(CMD_REFUSALS, NULL);
	if (mark)
		*mark = H.refusals_mark;
	return H.n_refusals;
}

static void test_transfer_acl(void **state)
{
	(void)state;
	uint64_t mark;
	refusals_since(0, &mark);
	struct drdns_server_stats before = stats();
	/* unsigned from an address that is neither a keyless secondary nor allowed */
	ldns_pkt *r =
	    tcp_ask(mkquery("example.edu.", LDNS_RR_TYPE_AXFR, LDNS_RR_CLASS_IN), "127.0.0.3");
	assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_REFUSED);
	ldns_pkt_free(r);
	r = tcp_ask(mkixfr("example.edu.", 1), "127.0.0.3");
	assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_REFUSED);
	ldns_pkt_free(r);
	/* ... but SOA queries are answered for anyone */
	r = udp_ask(mkquery("example.edu.", LDNS_RR_TYPE_SOA, LDNS_RR_CLASS_IN), "127.0.0.3");
	assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NOERROR);
	ldns_pkt_free(r);
	struct drdns_server_stats mid = stats();
	assert_int_equal(mid.axfr_refused - before.axfr_refused, 2);
	/* both noted, merged into one entry (same zone, source and reason), no port */
	assert_int_equal(refusals_since(mark, &mark), 1);
	assert_string_equal(H.refusals[0].zone, "example.edu.");
	assert_string_equal(H.refusals[0].source, "127.0.0.3");
	assert_false(H.refusals[0].is_signed);
	assert_string_equal(H.refusals[0].reason, "not-allowed");
	assert_int_equal(H.refusals[0].count, 2);
	/* the SOA query was no refusal, and nothing since */
	assert_int_equal(refusals_since(mark, NULL), 0);

	/* transfer_sources: 127.0.0.3 inside the keyless secondary's prefix */
	char *sources[] = {"127.0.0.2/31"};
	H.secs[1].transfer_sources = sources;
	H.secs[1].n_transfer_sources = 1;
	run_cmd(CMD_SET_CONF, &H.conf);
	int sfd = tcp_connect("127.0.0.3");
	ldns_pkt *sq = mkquery("example.edu.", LDNS_RR_TYPE_AXFR, LDNS_RR_CLASS_IN);
	tcp_send(sfd, sq);
	struct xfr_result sx = read_xfr(sfd, ldns_pkt_id(sq), NULL, NULL);
	assert_int_equal(ldns_rr_list_rr_count(sx.rrs), 23 + 2);
	xfr_result_free(&sx);
	ldns_pkt_free(sq);
	close(sfd);
	/* ... but not 127.0.0.4, outside it */
	r = tcp_ask(mkquery("example.edu.", LDNS_RR_TYPE_AXFR, LDNS_RR_CLASS_IN), "127.0.0.4");
	assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_REFUSED);
	ldns_pkt_free(r);
	H.secs[1].transfer_sources = NULL;
	H.secs[1].n_transfer_sources = 0;
	run_cmd(CMD_SET_CONF, &H.conf);
	assert_int_equal(refusals_since(mark, &mark), 1);
	assert_string_equal(H.refusals[0].source, "127.0.0.4");
	mid = stats();

	/* unsigned from the keyless secondary's address (any port) */
	int fd = tcp_connect("127.0.0.2");
	ldns_pkt *q = mkquery("example.edu.", LDNS_RR_TYPE_AXFR, LDNS_RR_CLASS_IN);
	tcp_send(fd, q);
	struct xfr_result x = read_xfr(fd, ldns_pkt_id(q), NULL, NULL);
	assert_int_equal(ldns_rr_list_rr_count(x.rrs), 23 + 2); /* 23 records + SOA twice */
	assert_false(x.all_signed);
	xfr_result_free(&x);
	ldns_pkt_free(q);
	close(fd);

	/* a reloaded configuration without allow_transfer refuses 127.0.0.1 */
	run_cmd(CMD_SET_CONF, &H.strict);
	r = tcp_ask(mkquery("example.edu.", LDNS_RR_TYPE_AXFR, LDNS_RR_CLASS_IN), NULL);
	assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_REFUSED);
	ldns_pkt_free(r);
	run_cmd(CMD_SET_CONF, &H.conf);
}

static void test_tsig_transfer(void **state)
{
	(void)state;
	uint64_t mark;
	refusals_since(0, &mark);
	struct drdns_server_stats before = stats();
	/* signed with the keyed secondary's key, from an address nobody listed */
	int fd = tcp_connect("127.0.0.3");
	ldns_pkt *q = mkquery("big.test.", LDNS_RR_TYPE_AXFR, LDNS_RR_CLASS_IN);
	assert_int_equal(drdns_tsig_sign(q, H.key, NULL), 0);
	tcp_send(fd, q);
	struct xfr_result x = read_xfr(fd, ldns_pkt_id(q), H.key, ldns_rr_rdf(ldns_pkt_tsig(q), 3));
	check_full_zone(&x, H.big_ref);
	assert_true(x.msgs > 10);
	xfr_result_free(&x);
	ldns_pkt_free(q);
	close(fd);

	/* signed SOA over UDP: the answer is signed with the request MAC */
	q = mkquery("example.edu.", LDNS_RR_TYPE_SOA, LDNS_RR_CLASS_IN);
	assert_int_equal(drdns_tsig_sign(q, H.key, NULL), 0);
	ldns_rdf *mac = ldns_rdf_clone(ldns_rr_rdf(ldns_pkt_tsig(q), 3));
	uint8_t *wire, *rwire = NULL;
	size_t len, rlen = 0;
	assert_int_equal(ldns_pkt2wire(&wire, q, &len), LDNS_STATUS_OK);
	ldns_pkt *r = udp_raw(wire, len, "127.0.0.3", 2000, &rwire, &rlen);
	assert_non_null(r);
	assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NOERROR);
	assert_int_equal(drdns_tsig_verify(r, rwire, rlen, H.key, mac), 0);
	ldns_pkt_free(r);
	free(rwire);
	free(wire);
	ldns_rdf_deep_free(mac);
	ldns_pkt_free(q);

	/* wrong secret: NOTAUTH, TSIG error BADSIG, unsigned */
	q = mkquery("big.test.", LDNS_RR_TYPE_AXFR, LDNS_RR_CLASS_IN);
	assert_int_equal(drdns_tsig_sign(q, &H.wrong, NULL), 0);
	r = tcp_ask(q, "127.0.0.3");
	assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NOTAUTH);
	assert_non_null(ldns_pkt_tsig(r));
	assert_int_equal(ldns_rdf2native_int16(ldns_rr_rdf(ldns_pkt_tsig(r), 5)), 16);
	assert_int_equal(ldns_rdf_size(ldns_rr_rdf(ldns_pkt_tsig(r), 3)), 2); /* empty MAC */
	ldns_pkt_free(r);

	/* wrong key even from an allowed address: still NOTAUTH */
	q = mkquery("example.edu.", LDNS_RR_TYPE_SOA, LDNS_RR_CLASS_IN);
	assert_int_equal(drdns_tsig_sign(q, &H.wrong, NULL), 0);
	r = udp_ask(q, NULL);
	assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NOTAUTH);
	ldns_pkt_free(r);

	/* unknown key name: BADKEY */
	q = mkquery("big.test.", LDNS_RR_TYPE_AXFR, LDNS_RR_CLASS_IN);
	assert_int_equal(drdns_tsig_sign(q, &H.stranger, NULL), 0);
	r = tcp_ask(q, NULL);
	assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NOTAUTH);
	assert_int_equal(ldns_rdf2native_int16(ldns_rr_rdf(ldns_pkt_tsig(r), 5)), 17);
	ldns_pkt_free(r);

	struct drdns_server_stats after = stats();
	assert_int_equal(after.tsig_failed - before.tsig_failed, 3);
	assert_int_equal(after.axfr - before.axfr, 1);

	/* the two failed transfer requests are refusals, signed, with their key
	 * names; the failed SOA query is not */
	assert_int_equal(refusals_since(mark, NULL), 2);
	assert_string_equal(H.refusals[0].zone, "big.test.");
	assert_string_equal(H.refusals[0].source, "127.0.0.3");
	assert_true(H.refusals[0].is_signed);
	assert_string_equal(H.refusals[0].key, H.wrong.name);
	assert_string_equal(H.refusals[0].reason, "tsig-badsig");
	assert_true(H.refusals[1].is_signed);
	assert_string_equal(H.refusals[1].key, "stranger.");
	assert_string_equal(H.refusals[1].reason, "tsig-badkey");
	assert_string_equal(H.refusals[1].source, "127.0.0.1");
}

static void test_garbage(void **state)
{
	(void)state;
	struct drdns_server_stats before = stats();
	uint8_t junk[40];
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)(i * 37 + 11);
	junk[2] = 0x01; /* QR clear: looks like a query */
	junk[4] = 0x7f; /* qdcount huge: cannot parse */
	assert_null(udp_raw(junk, sizeof(junk), NULL, 300, NULL, NULL));
	assert_null(udp_raw(junk, 5, NULL, 300, NULL, NULL));
	/* a response (QR set) is never answered */
	ldns_pkt *resp = mkquery("example.edu.", LDNS_RR_TYPE_SOA, LDNS_RR_CLASS_IN);
	ldns_pkt_set_qr(resp, true);
	uint8_t *wire;
	size_t len;
	assert_int_equal(ldns_pkt2wire(&wire, resp, &len), LDNS_STATUS_OK);
	assert_null(udp_raw(wire, len, NULL, 300, NULL, NULL));
	free(wire);
	ldns_pkt_free(resp);

	/* TCP garbage: the connection is closed */
	int fd = tcp_connect(NULL);
	uint8_t framed[2 + sizeof(junk)] = {0, sizeof(junk)};
	memcpy(framed + 2, junk, sizeof(junk));
	write_all(fd, framed, sizeof(framed));
	uint8_t b;
	assert_int_equal(read(fd, &b, 1), 0);
	close(fd);

	/* still working */
	ldns_pkt *r = udp_ask(mkquery("example.edu.", LDNS_RR_TYPE_SOA, LDNS_RR_CLASS_IN), NULL);
	assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NOERROR);
	ldns_pkt_free(r);
	assert_int_equal(stats().queries - before.queries, 5);
}

/* TSIG records that are not last (with three of them, ldns_wire2pkt() loses
 * one: a leak per datagram): dropped, no answer. */
static void test_double_tsig(void **state)
{
	(void)state;
	ldns_pkt *q = mkquery("example.edu.", LDNS_RR_TYPE_SOA, LDNS_RR_CLASS_IN);
	uint8_t *w0, *w1;
	size_t l0, l1;
	assert_int_equal(ldns_pkt2wire(&w0, q, &l0), LDNS_STATUS_OK);
	assert_int_equal(drdns_tsig_sign(q, H.key, NULL), 0);
	assert_int_equal(ldns_pkt2wire(&w1, q, &l1), LDNS_STATUS_OK);
	assert_int_equal(memcmp(w0, w1, 10), 0); /* same header but ARCOUNT */
	size_t tl = l1 - l0;
	uint8_t *w2 = malloc(l1 + 2 * tl);
	memcpy(w2, w1, l1);
	memcpy(w2 + l1, w1 + l0, tl);
	memcpy(w2 + l1 + tl, w1 + l0, tl);
	w2[11] = 3; /* ARCOUNT: three TSIG records */
	assert_null(udp_raw(w2, l1 + 2 * tl, NULL, 300, NULL, NULL));
	w2[11] = 2; /* two */
	assert_null(udp_raw(w2, l1 + tl, NULL, 300, NULL, NULL));
	/* the correctly signed one is answered */
	ldns_pkt *r = udp_raw(w1, l1, NULL, 2000, NULL, NULL);
	assert_non_null(r);
	assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NOERROR);
	ldns_pkt_free(r);
	free(w0);
	free(w1);
	free(w2);
	ldns_pkt_free(q);
}

/* At most 256 TCP connections: the next one is closed at once. */
static void test_tcp_connection_limit(void **state)
{
	(void)state;
	enum {
		N = 256
	};
	int fds[N];
	for (int i = 0; i < N; i++) {
		fds[i] = tcp_connect(NULL);
		ldns_pkt *q = mkquery("example.edu.", LDNS_RR_TYPE_SOA, LDNS_RR_CLASS_IN);
		tcp_send(fds[i], q);
		ldns_pkt *r = tcp_read(fds[i], NULL, NULL);
		assert_non_null(r);
		ldns_pkt_free(r);
		ldns_pkt_free(q);
	}
	int extra = tcp_connect(NULL);
	uint8_t b;
	assert_true(read(extra, &b, 1) <= 0); /* closed (EOF or reset) */
	close(extra);
	/* one connection freed: a new one is served */
	close(fds[0]);
	usleep(50000);
	ldns_pkt *r = tcp_ask(mkquery("example.edu.", LDNS_RR_TYPE_SOA, LDNS_RR_CLASS_IN), NULL);
	assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NOERROR);
	ldns_pkt_free(r);
	for (int i = 1; i < N; i++)
		close(fds[i]);
	usleep(50000);
}

static void test_tcp_pipelining(void **state)
{
	(void)state;
	int fd = tcp_connect(NULL);
	/* three queries in one write */
	const char *names[3] = {"example.edu.", "www.example.edu.", "nope.example.edu."};
	ldns_pkt *qs[3];
	uint8_t buf[2048];
	size_t off = 0;
	for (int i = 0; i < 3; i++) {
		qs[i] = mkquery(names[i], i ? LDNS_RR_TYPE_A : LDNS_RR_TYPE_SOA, LDNS_RR_CLASS_IN);
		ldns_pkt_set_id(qs[i], (uint16_t)(1000 + i));
		uint8_t *w;
		size_t l;
		assert_int_equal(ldns_pkt2wire(&w, qs[i], &l), LDNS_STATUS_OK);
		buf[off] = (uint8_t)(l >> 8);
		buf[off + 1] = (uint8_t)l;
		memcpy(buf + off + 2, w, l);
		off += l + 2;
		free(w);
	}
	write_all(fd, buf, off);
	ldns_pkt_rcode want[3] = {LDNS_RCODE_NOERROR, LDNS_RCODE_NOERROR, LDNS_RCODE_NXDOMAIN};
	for (int i = 0; i < 3; i++) {
		ldns_pkt *r = tcp_read(fd, NULL, NULL);
		assert_non_null(r);
		assert_int_equal(ldns_pkt_id(r), 1000 + i);
		assert_int_equal(ldns_pkt_get_rcode(r), want[i]);
		ldns_pkt_free(r);
		ldns_pkt_free(qs[i]);
	}
	/* one query a byte at a time (partial reads) */
	ldns_pkt *q = mkquery("mail.example.edu.", LDNS_RR_TYPE_A, LDNS_RR_CLASS_IN);
	uint8_t *w;
	size_t l;
	assert_int_equal(ldns_pkt2wire(&w, q, &l), LDNS_STATUS_OK);
	uint8_t hdr[2] = {(uint8_t)(l >> 8), (uint8_t)l};
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	write_all(fd, hdr, 1);
	usleep(2000);
	write_all(fd, hdr + 1, 1);
	for (size_t i = 0; i < l; i++) {
		write_all(fd, w + i, 1);
		if (i % 8 == 0)
			usleep(1000);
	}
	free(w);
	ldns_pkt *r = tcp_read(fd, NULL, NULL);
	assert_non_null(r);
	assert_int_equal(ldns_pkt_id(r), ldns_pkt_id(q));
	assert_int_equal(ldns_pkt_ancount(r), 1);
	ldns_pkt_free(r);
	ldns_pkt_free(q);

	/* half-close after a query: answered, then closed */
	q = mkquery("example.edu.", LDNS_RR_TYPE_SOA, LDNS_RR_CLASS_IN);
	tcp_send(fd, q);
	shutdown(fd, SHUT_WR);
	r = tcp_read(fd, NULL, NULL);
	assert_non_null(r);
	ldns_pkt_free(r);
	ldns_pkt_free(q);
	uint8_t b;
	assert_int_equal(read(fd, &b, 1), 0);
	close(fd);
}

/* A transfer keeps its set when the set is replaced or withdrawn (stall.test.:
 * more than the socket buffers hold, so the transfer is still running). */
static void test_switch_during_transfer(void **state)
{
	(void)state;
	int fd = tcp_connect2(NULL, true);
	ldns_pkt *q = mkquery("stall.test.", LDNS_RR_TYPE_AXFR, LDNS_RR_CLASS_IN);
	tcp_send(fd, q);
	for (int i = 0; i < 100 && stats().active_transfers < 1; i++)
		usleep(10000);
	assert_int_equal(stats().active_transfers, 1);
	run_cmd(CMD_SET_ZONES, NULL); /* demoted */
	assert_null(drdns_server_zones(H.srv));
	ldns_pkt *r = udp_ask(mkquery("stall.test.", LDNS_RR_TYPE_SOA, LDNS_RR_CLASS_IN), NULL);
	assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_REFUSED);
	ldns_pkt_free(r);
	install_set(); /* and promoted again, with a new set */
	assert_non_null(drdns_server_zones(H.srv));
	struct xfr_result x = read_xfr(fd, ldns_pkt_id(q), NULL, NULL);
	check_full_zone(&x, H.stall_ref);
	xfr_result_free(&x);
	ldns_pkt_free(q);
	close(fd);
}

/* Closing the server with a stalled transfer and idle connections. */
static void test_close_with_transfer(void **state)
{
	(void)state;
	int fd = tcp_connect2(NULL, true);
	int idle = tcp_connect(NULL);
	ldns_pkt *q = mkquery("stall.test.", LDNS_RR_TYPE_AXFR, LDNS_RR_CLASS_IN);
	tcp_send(fd, q);
	ldns_pkt *m = tcp_read(fd, NULL, NULL);
	assert_non_null(m);
	ldns_pkt_free(m);
	ldns_pkt_free(q);
	assert_int_equal(stats().active_transfers, 1);
	shutdown_server(); /* asserts uv_loop_close() == 0 */
	close(fd);
	close(idle);
}

/* A raw transfer: query (AXFR or IXFR from serial 1) for qname with the given
 * id, read to the end. */
static struct xfr_result raw_xfr(const char *qname, bool ixfr, uint16_t id,
                                 const struct drdns_tsig_key *key, const char *src)
{
	int fd = tcp_connect(src);
	ldns_pkt *q = ixfr ? mkixfr(qname, 1) : mkquery(qname, LDNS_RR_TYPE_AXFR, LDNS_RR_CLASS_IN);
	ldns_pkt_set_id(q, id);
	if (key)
		assert_int_equal(drdns_tsig_sign(q, key, NULL), 0);
	tcp_send(fd, q);
	struct xfr_result x = read_xfr(fd, id, key, key ? ldns_rr_rdf(ldns_pkt_tsig(q), 3) : NULL);
	ldns_pkt_free(q);
	close(fd);
	return x;
}

/* Served from the cache, a transfer is byte for byte what the per-message path
 * sends: same messages, same packing, same compression, same question (as the
 * client spelled it), for AXFR and IXFR. */
static void test_xfr_cache_identical(void **state)
{
	(void)state;
	struct {
		const char *qname;
		bool ixfr;
		uint16_t id;
		const struct drdns_zone *ref;
	} cases[] = {
	    {"big.test.", false, 0x1234, H.big_ref},
	    {"BiG.TEST.", false, 0x2345, H.big_ref}, /* other case: patched question */
	    {"Big.Test.", true, 0x3456, H.big_ref},  /* IXFR (AXFR-style): type patched */
	    {"example.edu.", false, 0x4567, NULL},   /* one message */
	};
	enum {
		N = sizeof(cases) / sizeof(*cases)
	};
	struct xfr_result slow[N], fast[N];

	struct pool_block b;
	pool_block(&b);
	install_set(); /* its cache cannot be rendered yet */
	capture_start();
	for (size_t i = 0; i < N; i++)
		slow[i] = raw_xfr(cases[i].qname, cases[i].ixfr, cases[i].id, NULL, NULL);
	char *log1 = capture_end();
	pool_release(&b);
	pool_drain(); /* now it is */
	capture_start();
	for (size_t i = 0; i < N; i++)
		fast[i] = raw_xfr(cases[i].qname, cases[i].ixfr, cases[i].id, NULL, NULL);
	char *log2 = capture_end();

	for (size_t i = 0; i < N; i++) {
		if (cases[i].ref)
			check_full_zone(&fast[i], cases[i].ref);
		assert_int_equal(fast[i].msgs, slow[i].msgs);
		for (size_t k = 0; k < slow[i].msgs; k++) {
			if (fast[i].lens[k] != slow[i].lens[k] ||
			    memcmp(fast[i].wires[k], slow[i].wires[k], slow[i].lens[k]))
				fail_msg("%s %s: message %zu differs", cases[i].qname,
				         cases[i].ixfr ? "IXFR" : "AXFR", k);
		}
		/* the question as asked */
		ldns_pkt *m0 = NULL;
		assert_int_equal(ldns_wire2pkt(&m0, fast[i].wires[0], fast[i].lens[0]),
		                 LDNS_STATUS_OK);
		const ldns_rr *qr = ldns_rr_list_rr(ldns_pkt_question(m0), 0);
		char *qn = ldns_rdf2str(ldns_rr_owner(qr));
		assert_string_equal(qn, cases[i].qname);
		free(qn);
		assert_int_equal(ldns_rr_get_type(qr),
		                 cases[i].ixfr ? LDNS_RR_TYPE_IXFR : LDNS_RR_TYPE_AXFR);
		ldns_pkt_free(m0);
	}
	/* and the two paths were really taken */
	size_t msgs[8], cached[8];
	size_t n = xfr_ends(log1, "big.test.", msgs, cached, 8);
	assert_int_equal(n, 3);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(cached[i], 0);
	n = xfr_ends(log2, "big.test.", msgs, cached, 8);
	assert_int_equal(n, 3);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(cached[i], msgs[i]);
	assert_int_equal(xfr_ends(log2, "example.edu.", msgs, cached, 8), 1);
	assert_int_equal(cached[0], 1);
	free(log1);
	free(log2);
	for (size_t i = 0; i < N; i++) {
		xfr_result_free(&slow[i]);
		xfr_result_free(&fast[i]);
	}
}

/* Transfers that start before the cache is rendered and go on after it landed:
 * complete and correct, unsigned and signed (every message verifies across the
 * switch from built to cached messages). */
static void test_xfr_racing_cache(void **state)
{
	(void)state;
	struct pool_block b;
	pool_block(&b);
	install_set();
	capture_start();
	int fa = tcp_connect2(NULL, true), fb = tcp_connect2("127.0.0.3", true);
	ldns_pkt *qa = mkquery("stall.test.", LDNS_RR_TYPE_AXFR, LDNS_RR_CLASS_IN);
	ldns_pkt *qb = mkquery("stall.test.", LDNS_RR_TYPE_AXFR, LDNS_RR_CLASS_IN);
	assert_int_equal(drdns_tsig_sign(qb, H.key, NULL), 0);
	tcp_send(fa, qa);
	tcp_send(fb, qb);
	struct xfr_result xa = xfr_reader(fa, ldns_pkt_id(qa), NULL, NULL);
	struct xfr_result xb =
	    xfr_reader(fb, ldns_pkt_id(qb), H.key, ldns_rr_rdf(ldns_pkt_tsig(qb), 3));
	assert_true(xfr_read_one(&xa));
	assert_true(xfr_read_one(&xb));
	assert_int_equal(stats().active_transfers, 2); /* both stalled mid-way */
	pool_release(&b);
	pool_drain(); /* the cache lands while they run */
	while (xfr_read_one(&xa))
		;
	while (xfr_read_one(&xb))
		;
	char *log = capture_end();
	check_full_zone(&xa, H.stall_ref);
	check_full_zone(&xb, H.stall_ref);
	assert_false(xa.later_have_question);
	size_t msgs[4], cached[4];
	assert_int_equal(xfr_ends(log, "stall.test.", msgs, cached, 4), 2);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(msgs[i], xa.msgs);
		assert_true(cached[i] > 0);       /* switched to the cache ... */
		assert_true(cached[i] < msgs[i]); /* ... midway */
	}
	free(log);
	xfr_result_free(&xa);
	xfr_result_free(&xb);
	ldns_pkt_free(qa);
	ldns_pkt_free(qb);
	close(fa);
	close(fb);
}

/* Signed transfers served from the cache: every message verifies (first with
 * the request MAC, then chained, timers only), for AXFR and IXFR, with the
 * question in another case too. */
static void test_xfr_cache_tsig(void **state)
{
	(void)state;
	pool_drain(); /* the set installed by the last test is rendered */
	capture_start();
	struct xfr_result x1 = raw_xfr("big.test.", false, 0x0101, H.key, "127.0.0.3");
	struct xfr_result x2 = raw_xfr("BIG.test.", true, 0x0202, H.key, "127.0.0.3");
	struct xfr_result x3 = raw_xfr("example.edu.", false, 0x0303, H.key, "127.0.0.3");
	char *log = capture_end();
	check_full_zone(&x1, H.big_ref);
	check_full_zone(&x2, H.big_ref);
	assert_int_equal(ldns_rr_list_rr_count(x3.rrs), 23 + 2);
	assert_true(x1.msgs > 10);
	size_t msgs[4], cached[4];
	assert_int_equal(xfr_ends(log, "big.test.", msgs, cached, 4), 2);
	assert_int_equal(cached[0], msgs[0]);
	assert_int_equal(cached[1], msgs[1]);
	assert_true(strstr(log, "tsig=yes") != NULL);
	free(log);
	xfr_result_free(&x1);
	xfr_result_free(&x2);
	xfr_result_free(&x3);
}

/* Replacing or withdrawing the set while its cache is queued or being rendered:
 * the jobs of the old sets are dropped safely (ASan/valgrind check the memory),
 * transfers from the old set finish on the per-message path, and the new set's
 * cache lands. */
static void test_replace_set_during_render(void **state)
{
	(void)state;
	/* queued jobs of sets replaced before they ran */
	struct pool_block b;
	pool_block(&b);
	install_set(); /* A */
	int fd = tcp_connect2(NULL, true);
	ldns_pkt *q = mkquery("stall.test.", LDNS_RR_TYPE_AXFR, LDNS_RR_CLASS_IN);
	tcp_send(fd, q);
	struct xfr_result xo = xfr_reader(fd, ldns_pkt_id(q), NULL, NULL);
	assert_true(xfr_read_one(&xo)); /* a transfer from A, stalled */
	install_set();                  /* B */
	run_cmd(CMD_SET_ZONES, NULL);   /* withdrawn */
	install_set();                  /* C */
	pool_release(&b);
	pool_drain();
	capture_start();
	while (xfr_read_one(&xo))
		;
	struct xfr_result xc = raw_xfr("big.test.", false, 0x4242, NULL, NULL);
	char *log = capture_end();
	check_full_zone(&xo, H.stall_ref);
	check_full_zone(&xc, H.big_ref);
	size_t msgs[4], cached[4];
	assert_int_equal(xfr_ends(log, "stall.test.", msgs, cached, 4), 1);
	assert_int_equal(cached[0], 0); /* A's jobs were cancelled: built messages */
	assert_int_equal(xfr_ends(log, "big.test.", msgs, cached, 4), 1);
	assert_int_equal(cached[0], msgs[0]); /* C's cache is there */
	free(log);
	xfr_result_free(&xo);
	xfr_result_free(&xc);
	ldns_pkt_free(q);
	close(fd);

	/* jobs running when their set goes: replace it in quick succession */
	for (int i = 0; i < 3; i++) {
		install_set();
		usleep((useconds_t)(i * 5000));
	}
	struct xfr_result xr = raw_xfr("stall.test.", false, 0x4343, NULL, NULL);
	check_full_zone(&xr, H.stall_ref);
	xfr_result_free(&xr);
	pool_drain();
	xr = raw_xfr("big.test.", false, 0x4444, NULL, NULL);
	check_full_zone(&xr, H.big_ref);
	xfr_result_free(&xr);
	assert_int_equal(stats().active_transfers, 0);
}

/* Closing a server whose cache jobs are queued (cancelled) or running (told to
 * stop): the close callback comes after their after-work callbacks, and the loop
 * closes with nothing left on it. */
static void test_close_during_render(void **state)
{
	(void)state;
	for (int running = 0; running < 2; running++) {
		uv_loop_t l;
		assert_int_equal(uv_loop_init(&l), 0);
		struct drdns_conf c = H.conf;
		struct drdns_server *s = NULL;
		int rc = -1;
		for (int i = 0; i < 50 && rc != 0; i++) {
			c.controller.port = (uint16_t)(20000 + rand() % 40000);
			rc = drdns_server_new(&l, &c, &s);
		}
		assert_int_equal(rc, 0);
		struct pool_block b;
		if (!running)
			pool_block(&b);
		drdns_server_set_zones(s, make_set());
		if (running)
			usleep(2000); /* jobs under way */
		bool closed = false;
		drdns_server_close(s, on_v6_closed, &closed);
		while (!closed)
			assert_true(uv_run(&l, UV_RUN_ONCE) != 0 || closed);
		assert_int_equal(uv_loop_close(&l), 0); /* no request left on it */
		if (!running)
			pool_release(&b);
	}
	pool_drain();
}

int main(void)
{
	setenv("UV_THREADPOOL_SIZE", "4", 1); /* POOL_THREADS, before the pool starts */
	drdns_log_init("test_server", false, LOG_NOTICE);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bind_errors),
	    cmocka_unit_test(test_ipv6),
	    cmocka_unit_test(test_refused_unpromoted),
	    cmocka_unit_test(test_soa_after_install),
	    cmocka_unit_test(test_lookups),
	    cmocka_unit_test(test_chaos_nsid),
	    cmocka_unit_test(test_udp_truncation),
	    cmocka_unit_test(test_axfr_big),
	    cmocka_unit_test(test_axfr_concurrent),
	    cmocka_unit_test(test_ixfr),
	    cmocka_unit_test(test_notify),
	    cmocka_unit_test(test_transfer_acl),
	    cmocka_unit_test(test_tsig_transfer),
	    cmocka_unit_test(test_garbage),
	    cmocka_unit_test(test_double_tsig),
	    cmocka_unit_test(test_tcp_connection_limit),
	    cmocka_unit_test(test_tcp_pipelining),
	    cmocka_unit_test(test_switch_during_transfer),
	    cmocka_unit_test(test_xfr_cache_identical),
	    cmocka_unit_test(test_xfr_racing_cache),
	    cmocka_unit_test(test_xfr_cache_tsig),
	    cmocka_unit_test(test_replace_set_during_render),
	    cmocka_unit_test(test_close_during_render),
	    cmocka_unit_test(test_close_with_transfer),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
