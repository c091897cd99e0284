/*
 * Unit tests for the DNS request engine (query.c) and what is built on it:
 * SOA probes (probe.c), NOTIFY batches (notify.c) and convergence watches
 * (converge.c).
 *
 * Everything runs over real sockets on 127.0.0.x with ephemeral ports.  The
 * far end is a small responder written with ldns and raw UDP/TCP sockets
 * driven by the same libuv loop; its behaviour (silence, rcode, truncation,
 * stray answers, serial changes, TSIG) is set per test and it counts what it
 * receives.  Timing assertions are only generous bounds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "drdns/error.h"
#include "drdns/notify.h"
#include "drdns/probe.h"
#include "drdns/query.h"
#include "drdns/tsig.h"

#include <arpa/inet.h>
#include <ldns/ldns.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#define ZONE            "example.edu."
#define ZONE2           "2.0.192.in-addr.arpa."
#define TEST_KEY_NAME   "drdns-test."
#define TEST_KEY_SECRET "4Ruy+pi9G1b8Xu4PHw2xaV83lZqHnT74OU6pcjsSSLg="
#define OTHER_SECRET    "c2VjcmV0LXRoYXQtZG9lcy1ub3QtbWF0Y2gtdGhlLWtleQ=="

/* ============================================================ responder */

struct zcount {
	char name[256];
	int soa;    /* SOA queries seen for this zone */
	int notify; /* NOTIFYs seen for this zone */
};

struct rconn;

struct resp {
	uv_loop_t *loop;
	uv_udp_t udp;
	uv_tcp_t tcp;
	uv_udp_t stray; /* a second socket, for answers from the wrong address */
	struct rconn *conns;
	char addr[64];
	uint16_t port;

	/* behaviour */
	bool silent;               /* never answer */
	int ignore_first;          /* per zone and opcode: drop the first N requests */
	int rcode;                 /* rcode of answers */
	bool no_aa;                /* answers without AA */
	bool no_soa;               /* NOERROR answers without the SOA */
	bool truncate_udp;         /* UDP answers: TC set, empty */
	bool strays_first;         /* UDP: before the answer, send near-miss answers */
	bool strays_only;          /* UDP: send only near-miss answers */
	uint32_t serial;           /* SOA serial served */
	uint32_t new_serial;       /* ... and after switch_after SOA queries for a zone */
	int switch_after;          /* 0 = never */
	const char *sign_secret;   /* sign answers with TEST_KEY_NAME and this secret */
	const char *verify_secret; /* check TSIG on requests with this secret */
	int bad_sign_first;        /* sign the first N answers with OTHER_SECRET (forged) */

	/* observations */
	int udp_queries, tcp_queries, notifies;
	char last_src[64];
	bool last_rd;
	int last_opcode;
	bool last_notify_aa;
	bool last_notify_has_soa;
	uint32_t last_notify_serial;
	int tsig_seen, tsig_ok;
	uint16_t ids[64];
	int n_ids;
	struct zcount zc[8];
	int n_zc;
};

struct rconn {
	uv_tcp_t h;
	struct resp *r;
	struct rconn *next;
	uint8_t buf[70000];
	size_t len;
};

struct rwrite {
	uv_write_t w;
	size_t len;
	uint8_t data[];
};

static struct zcount *zc_get(struct resp *r, const ldns_rdf *name)
{
	char *s = ldns_rdf2str(name);
	assert_non_null(s);
	for (char *p = s; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	for (int i = 0; i < r->n_zc; i++)
		if (strcmp(r->zc[i].name, s) == 0) {
			free(s);
			return &r->zc[i];
		}
	assert_true(r->n_zc < 8);
	struct zcount *z = &r->zc[r->n_zc++];
	snprintf(z->name, sizeof(z->name), "%s", s);
	free(s);
	return z;
}

static struct zcount *zc_find(struct resp *r, const char *name)
{
	for (int i = 0; i < r->n_zc; i++)
		if (strcmp(r->zc[i].name, name) == 0)
			return &r->zc[i];
	return NULL;
}

static ldns_rr *make_soa(const ldns_rdf *owner, uint32_t serial)
{
	char *o = ldns_rdf2str(owner);
	char text[512];
	snprintf(text, sizeof(text), "%s 300 IN SOA ns1.%s hostmaster.%s %u 3600 600 604800 60", o,
	         o, o, (unsigned)serial);
	free(o);
	ldns_rr *rr = NULL;
	assert_int_equal(ldns_rr_new_frm_str(&rr, text, 0, NULL, NULL), LDNS_STATUS_OK);
	return rr;
}

/* The wire answer to q, or NULL.  id/qname/serial overrides make near misses. */
static uint8_t *build_answer(struct resp *r, ldns_pkt *q, bool udp, uint32_t serial, int id_delta,
                             const char *other_qname, size_t *olen)
{
	const ldns_rr *qrr = ldns_rr_list_rr(ldns_pkt_question(q), 0);
	ldns_pkt *a = ldns_pkt_new();
	assert_non_null(a);
	ldns_pkt_set_id(a, (uint16_t)(ldns_pkt_id(q) + id_delta));
	ldns_pkt_set_qr(a, true);
	ldns_pkt_set_opcode(a, ldns_pkt_get_opcode(q));
	ldns_pkt_set_aa(a, !r->no_aa);
	ldns_pkt_set_rcode(a, (uint8_t)r->rcode);
	ldns_rr *qc = ldns_rr_clone(qrr);
	if (other_qname) {
		ldns_rdf *n = ldns_dname_new_frm_str(other_qname);
		ldns_rdf_deep_free(ldns_rr_owner(qc));
		ldns_rr_set_owner(qc, n);
	}
	ldns_pkt_push_rr(a, LDNS_SECTION_QUESTION, qc);
	bool is_soa_query = ldns_pkt_get_opcode(q) == LDNS_PACKET_QUERY &&
	                    ldns_rr_get_type(qrr) == LDNS_RR_TYPE_SOA;
	if (udp && r->truncate_udp) {
		ldns_pkt_set_tc(a, true);
	} else if (is_soa_query && r->rcode == LDNS_RCODE_NOERROR && !r->no_soa) {
		ldns_pkt_push_rr(a, LDNS_SECTION_ANSWER, make_soa(ldns_rr_owner(qrr), serial));
	}
	if (r->sign_secret) {
		const ldns_rdf *mac = ldns_pkt_tsig(q) ? ldns_rr_rdf(ldns_pkt_tsig(q), 3) : NULL;
		const char *secret = r->sign_secret;
		if (r->bad_sign_first > 0) {
			r->bad_sign_first--;
			secret = OTHER_SECRET;
		}
		assert_int_equal(
		    ldns_pkt_tsig_sign(a, TEST_KEY_NAME, secret, 300, "hmac-sha256.", mac),
		    LDNS_STATUS_OK);
	}
	uint8_t *wire = NULL;
	assert_int_equal(ldns_pkt2wire(&wire, a, olen), LDNS_STATUS_OK);
	ldns_pkt_free(a);
	return wire;
}

/* Handle one request.  *out gets the answer (or NULL); strays are sent from
 * here directly (UDP only). */
static uint8_t *handle_request(struct resp *r, const uint8_t *wire, size_t len, bool udp,
                               const struct sockaddr *from, size_t *olen)
{
	ldns_pkt *q = NULL;
	if (ldns_wire2pkt(&q, wire, len) != LDNS_STATUS_OK)
		return NULL;
	if (udp)
		r->udp_queries++;
	else
		r->tcp_queries++;
	if (r->n_ids < 64)
		r->ids[r->n_ids++] = ldns_pkt_id(q);
	r->last_rd = ldns_pkt_rd(q);
	r->last_opcode = ldns_pkt_get_opcode(q);
	if (ldns_pkt_tsig(q)) {
		r->tsig_seen++;
		if (r->verify_secret &&
		    ldns_pkt_tsig_verify(q, wire, len, TEST_KEY_NAME, r->verify_secret, NULL))
			r->tsig_ok++;
	}
	const ldns_rr *qrr = ldns_rr_list_rr(ldns_pkt_question(q), 0);
	struct zcount *z = zc_get(r, ldns_rr_owner(qrr));
	int seen;
	if (ldns_pkt_get_opcode(q) == LDNS_PACKET_NOTIFY) {
		r->notifies++;
		seen = ++z->notify;
		r->last_notify_aa = ldns_pkt_aa(q);
		const ldns_rr_list *an = ldns_pkt_answer(q);
		r->last_notify_has_soa =
		    an && ldns_rr_list_rr_count(an) == 1 &&
		    ldns_rr_get_type(ldns_rr_list_rr(an, 0)) == LDNS_RR_TYPE_SOA;
		if (r->last_notify_has_soa)
			r->last_notify_serial =
			    ldns_rdf2native_int32(ldns_rr_rdf(ldns_rr_list_rr(an, 0), 2));
	} else {
		seen = ++z->soa;
	}
	uint8_t *out = NULL;
	if (!r->silent && seen > r->ignore_first) {
		uint32_t serial =
		    r->switch_after && z->soa > r->switch_after ? r->new_serial : r->serial;
		if (udp && (r->strays_first || r->strays_only)) {
			size_t l;
			uint8_t *w;
			/* wrong id */
			w = build_answer(r, q, udp, 666, 1, NULL, &l);
			uv_buf_t b = uv_buf_init((char *)w, (unsigned)l);
			assert_true(uv_udp_try_send(&r->udp, &b, 1, from) > 0);
			free(w);
			/* wrong question */
			w = build_answer(r, q, udp, 667, 0, "evil.example.", &l);
			b = uv_buf_init((char *)w, (unsigned)l);
			assert_true(uv_udp_try_send(&r->udp, &b, 1, from) > 0);
			free(w);
			/* right answer from the wrong address (port) */
			w = build_answer(r, q, udp, 668, 0, NULL, &l);
			b = uv_buf_init((char *)w, (unsigned)l);
			assert_true(uv_udp_try_send(&r->stray, &b, 1, from) > 0);
			free(w);
			/* garbage */
			b = uv_buf_init("\x12\x34garbage", 9);
			assert_true(uv_udp_try_send(&r->udp, &b, 1, from) > 0);
		}
		if (!(udp && r->strays_only))
			out = build_answer(r, q, udp, serial, 0, NULL, olen);
	}
	ldns_pkt_free(q);
	return out;
}

static void addr_text(const struct sockaddr *sa, char *buf, size_t len)
{
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf,
		          (socklen_t)len);
	else
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf,
		          (socklen_t)len);
}

static char rbuf[65536];

static void r_alloc(uv_handle_t *h, size_t s, uv_buf_t *b)
{
	(void)h;
	(void)s;
	*b = uv_buf_init(rbuf, sizeof(rbuf));
}

static void r_udp_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
                       unsigned flags)
{
	(void)flags;
	struct resp *r = h->data;
	if (nread <= 0 || !addr)
		return;
	addr_text(addr, r->last_src, sizeof(r->last_src));
	size_t olen = 0;
	uint8_t *out =
	    handle_request(r, (const uint8_t *)buf->base, (size_t)nread, true, addr, &olen);
	if (out) {
		uv_buf_t b = uv_buf_init((char *)out, (unsigned)olen);
		assert_true(uv_udp_try_send(&r->udp, &b, 1, addr) > 0);
		free(out);
	}
}

static void r_conn_closed(uv_handle_t *h)
{
	struct rconn *c = h->data;
	struct rconn **pp = &c->r->conns;
	while (*pp && *pp != c)
		pp = &(*pp)->next;
	if (*pp)
		*pp = c->next;
	free(c);
}

static void r_write_done(uv_write_t *w, int status)
{
	(void)status;
	free(w->data);
}

static void r_tcp_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct rconn *c = s->data;
	if (nread < 0) {
		if (!uv_is_closing((uv_handle_t *)s))
			uv_close((uv_handle_t *)s, r_conn_closed);
		return;
	}
	if (c->len + (size_t)nread > sizeof(c->buf))
		return;
	memcpy(c->buf + c->len, buf->base, (size_t)nread);
	c->len += (size_t)nread;
	while (c->len >= 2) {
		size_t mlen = ((size_t)c->buf[0] << 8) | c->buf[1];
		if (c->len < mlen + 2)
			return;
		size_t olen = 0;
		uint8_t *out = handle_request(c->r, c->buf + 2, mlen, false, NULL, &olen);
		if (out) {
			struct rwrite *w = malloc(sizeof(*w) + olen + 2);
			assert_non_null(w);
			w->w.data = w;
			w->data[0] = (uint8_t)(olen >> 8);
			w->data[1] = (uint8_t)olen;
			memcpy(w->data + 2, out, olen);
			free(out);
			uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)(olen + 2));
			assert_int_equal(uv_write(&w->w, s, &b, 1, r_write_done), 0);
		}
		memmove(c->buf, c->buf + mlen + 2, c->len - mlen - 2);
		c->len -= mlen + 2;
	}
}

static void r_on_connection(uv_stream_t *server, int status)
{
	struct resp *r = server->data;
	assert_int_equal(status, 0);
	struct rconn *c = calloc(1, sizeof(*c));
	assert_non_null(c);
	c->r = r;
	uv_tcp_init(r->loop, &c->h);
	c->h.data = c;
	c->next = r->conns;
	r->conns = c;
	assert_int_equal(uv_accept(server, (uv_stream_t *)&c->h), 0);
	struct sockaddr_storage ss;
	int sl = sizeof(ss);
	uv_tcp_getpeername(&c->h, (struct sockaddr *)&ss, &sl);
	addr_text((struct sockaddr *)&ss, c->r->last_src, sizeof(c->r->last_src));
	uv_read_start((uv_stream_t *)&c->h, r_alloc, r_tcp_read);
}

static void sa_parse(const char *addr, struct sockaddr_storage *ss, socklen_t *len)
{
	memset(ss, 0, sizeof(*ss));
	if (strchr(addr, ':')) {
		assert_int_equal(uv_ip6_addr(addr, 0, (struct sockaddr_in6 *)ss), 0);
		*len = sizeof(struct sockaddr_in6);
	} else {
		assert_int_equal(uv_ip4_addr(addr, 0, (struct sockaddr_in *)ss), 0);
		*len = sizeof(struct sockaddr_in);
	}
}

static uint16_t sa_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	return ntohs(((const struct sockaddr_in *)ss)->sin_port);
}

/* Start a responder on addr with UDP and TCP on the same ephemeral port. */
static void resp_start(uv_loop_t *loop, struct resp *r, const char *addr)
{
	memset(r, 0, sizeof(*r));
	r->loop = loop;
	r->serial = 2026112301;
	snprintf(r->addr, sizeof(r->addr), "%s", addr);
	for (int tries = 0; tries < 20; tries++) {
		struct sockaddr_storage sa;
		socklen_t sl;
		sa_parse(addr, &sa, &sl);
		int u = socket(sa.ss_family, SOCK_DGRAM, 0);
		assert_true(u >= 0);
		assert_int_equal(bind(u, (struct sockaddr *)&sa, sl), 0);
		getsockname(u, (struct sockaddr *)&sa, &sl);
		int t = socket(sa.ss_family, SOCK_STREAM, 0);
		assert_true(t >= 0);
		int one = 1;
		setsockopt(t, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(t, (struct sockaddr *)&sa, sl) != 0 || listen(t, 16) != 0) {
			close(u);
			close(t);
			continue;
		}
		r->port = sa_port(&sa);
		assert_int_equal(uv_udp_init(loop, &r->udp), 0);
		assert_int_equal(uv_udp_open(&r->udp, u), 0);
		r->udp.data = r;
		assert_int_equal(uv_udp_recv_start(&r->udp, r_alloc, r_udp_recv), 0);
		assert_int_equal(uv_tcp_init(loop, &r->tcp), 0);
		assert_int_equal(uv_tcp_open(&r->tcp, t), 0);
		r->tcp.data = r;
		assert_int_equal(uv_listen((uv_stream_t *)&r->tcp, 16, r_on_connection), 0);
		assert_int_equal(uv_udp_init(loop, &r->stray), 0);
		sa_parse(addr, &sa, &sl);
		assert_int_equal(uv_udp_bind(&r->stray, (struct sockaddr *)&sa, 0), 0);
		return;
	}
	fail_msg("no free port pair on %s", addr);
}

static void resp_stop(struct resp *r)
{
	uv_close((uv_handle_t *)&r->udp, NULL);
	uv_close((uv_handle_t *)&r->tcp, NULL);
	uv_close((uv_handle_t *)&r->stray, NULL);
	for (struct rconn *c = r->conns; c; c = c->next)
		if (!uv_is_closing((uv_handle_t *)&c->h))
			uv_close((uv_handle_t *)&c->h, r_conn_closed);
}

/* A UDP/TCP port on 127.0.0.1 with nothing listening (ICMP unreachable / RST). */
static uint16_t closed_port(void)
{
	struct sockaddr_in sa;
	uv_ip4_addr("127.0.0.1", 0, &sa);
	int u = socket(AF_INET, SOCK_DGRAM, 0);
	assert_int_equal(bind(u, (struct sockaddr *)&sa, sizeof(sa)), 0);
	socklen_t sl = sizeof(sa);
	getsockname(u, (struct sockaddr *)&sa, &sl);
	close(u);
	return ntohs(sa.sin_port);
}

/* ============================================================== harness */

static void loop_finish(uv_loop_t *loop)
{
	uv_run(loop, UV_RUN_DEFAULT);
	assert_int_equal(drdns_query_in_flight(), 0);
	assert_int_equal(uv_loop_close(loop), 0);
}

static void run_until(uv_loop_t *loop, const bool *flag)
{
	uint64_t start = uv_hrtime();
	while (!*flag) {
		uv_run(loop, UV_RUN_ONCE);
		if (uv_hrtime() - start > 20ull * 1000000000ull)
			fail_msg("test did not finish in 20 s");
	}
}

struct outcome {
	bool done;
	int calls;
	int status;
	double rtt;
	int attempts;
	bool has_answer;
	int rcode;
	bool tc;
	uint32_t serial;
};

static void query_cb(int status, const ldns_pkt *answer, double rtt, int attempts, void *arg)
{
	struct outcome *o = arg;
	o->calls++;
	o->done = true;
	o->status = status;
	o->rtt = rtt;
	o->attempts = attempts;
	o->has_answer = answer != NULL;
	if (answer) {
		o->rcode = ldns_pkt_get_rcode(answer);
		o->tc = ldns_pkt_tc(answer);
		const ldns_rr_list *an = ldns_pkt_answer(answer);
		if (an && ldns_rr_list_rr_count(an) > 0 &&
		    ldns_rr_get_type(ldns_rr_list_rr(an, 0)) == LDNS_RR_TYPE_SOA)
			o->serial = ldns_rdf2native_int32(ldns_rr_rdf(ldns_rr_list_rr(an, 0), 2));
	}
}

static struct drdns_query_opts opts_for(const struct resp *r, double timeout, int attempts)
{
	struct drdns_query_opts o = {
	    .source = NULL,
	    .address = r->addr,
	    .port = r->port,
	    .timeout = timeout,
	    .attempts = attempts,
	    .backoff = 2.0,
	    .tcp = false,
	    .key = NULL,
	};
	return o;
}

static void start_soa(uv_loop_t *loop, const struct drdns_query_opts *o, struct outcome *out)
{
	ldns_pkt *p = drdns_query_new_pkt(ZONE, LDNS_RR_TYPE_SOA, LDNS_PACKET_QUERY);
	assert_non_null(p);
	assert_int_equal(drdns_query_start(loop, p, o, query_cb, out), 0);
	assert_false(out->done); /* never called from inside start */
}

/* ================================================================ query */

static void test_udp_answer(void **state)
{
	(void)state;
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct resp r;
	resp_start(&loop, &r, "127.0.0.1");

	struct outcome o[4] = {0};
	struct drdns_query_opts opts = opts_for(&r, 2.0, 3);
	for (int i = 0; i < 4; i++)
		start_soa(&loop, &opts, &o[i]);
	assert_int_equal(drdns_query_in_flight(), 4);
	for (int i = 0; i < 4; i++)
		run_until(&loop, &o[i].done);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(o[i].calls, 1);
		assert_int_equal(o[i].status, 0);
		assert_true(o[i].has_answer);
		assert_int_equal(o[i].rcode, LDNS_RCODE_NOERROR);
		assert_int_equal(o[i].serial, 2026112301);
		assert_int_equal(o[i].attempts, 1);
		assert_true(o[i].rtt >= 0 && o[i].rtt < 2.0);
	}
	assert_int_equal(r.udp_queries, 4);
	assert_int_equal(r.tcp_queries, 0);
	assert_false(r.last_rd);
	assert_string_equal(r.last_src, "127.0.0.1");
	/* ids are random: four equal ids would be a 2^-48 event */
	assert_int_equal(r.n_ids, 4);
	assert_false(r.ids[0] == r.ids[1] && r.ids[1] == r.ids[2] && r.ids[2] == r.ids[3]);

	resp_stop(&r);
	loop_finish(&loop);
}

static void test_timeout_counts_attempts(void **state)
{
	(void)state;
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct resp r;
	resp_start(&loop, &r, "127.0.0.1");
	r.silent = true;

	struct outcome o = {0};
	struct drdns_query_opts opts = opts_for(&r, 0.1, 3); /* 0.1 + 0.2 + 0.4 s */
	start_soa(&loop, &opts, &o);
	run_until(&loop, &o.done);
	assert_int_equal(o.calls, 1);
	assert_int_equal(o.status, DRDNS_ETIMEOUT);
	assert_false(o.has_answer);
	assert_int_equal(o.attempts, 3);
	assert_int_equal(r.udp_queries, 3);
	assert_true(o.rtt > 0.5 && o.rtt < 5.0);
	/* the same query is resent: same id each time */
	assert_int_equal(r.ids[0], r.ids[1]);
	assert_int_equal(r.ids[1], r.ids[2]);

	resp_stop(&r);
	loop_finish(&loop);
}

static void test_late_answer_to_first_attempt(void **state)
{
	/* The responder ignores the first query but answers the second: the
	 * answer arrives on the same socket with the same id and is taken. */
	(void)state;
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct resp r;
	resp_start(&loop, &r, "127.0.0.1");
	r.ignore_first = 1;

	struct outcome o = {0};
	struct drdns_query_opts opts = opts_for(&r, 0.1, 3);
	start_soa(&loop, &opts, &o);
	run_until(&loop, &o.done);
	assert_int_equal(o.status, 0);
	assert_int_equal(o.attempts, 2);
	assert_int_equal(r.udp_queries, 2);

	resp_stop(&r);
	loop_finish(&loop);
}

static void test_strays_ignored(void **state)
{
	(void)state;
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct resp r;
	resp_start(&loop, &r, "127.0.0.1");
	r.strays_first = true;

	struct outcome o = {0};
	struct drdns_query_opts opts = opts_for(&r, 2.0, 2);
	start_soa(&loop, &opts, &o);
	run_until(&loop, &o.done);
	assert_int_equal(o.status, 0);
	assert_int_equal(o.serial, 2026112301); /* not 666, 667 or 668 */
	assert_int_equal(o.attempts, 1);

	/* only near misses: nothing is accepted */
	r.strays_first = false;
	r.strays_only = true;
	struct outcome o2 = {0};
	opts = opts_for(&r, 0.1, 2);
	start_soa(&loop, &opts, &o2);
	run_until(&loop, &o2.done);
	assert_int_equal(o2.status, DRDNS_ETIMEOUT);
	assert_int_equal(o2.attempts, 2);

	resp_stop(&r);
	loop_finish(&loop);
}

static void test_truncated_retries_over_tcp(void **state)
{
	(void)state;
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct resp r;
	resp_start(&loop, &r, "127.0.0.1");
	r.truncate_udp = true;

	struct outcome o = {0};
	struct drdns_query_opts opts = opts_for(&r, 2.0, 1);
	start_soa(&loop, &opts, &o);
	run_until(&loop, &o.done);
	assert_int_equal(o.status, 0);
	assert_false(o.tc);
	assert_int_equal(o.serial, 2026112301);
	assert_int_equal(r.udp_queries, 1);
	assert_int_equal(r.tcp_queries, 1);
	assert_int_equal(o.attempts, 2);

	resp_stop(&r);
	loop_finish(&loop);
}

static void test_source_binding(void **state)
{
	(void)state;
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct resp r;
	resp_start(&loop, &r, "127.0.0.1");

	struct outcome o = {0};
	struct drdns_query_opts opts = opts_for(&r, 2.0, 1);
	opts.source = "127.0.0.2";
	start_soa(&loop, &opts, &o);
	run_until(&loop, &o.done);
	assert_int_equal(o.status, 0);
	assert_string_equal(r.last_src, "127.0.0.2");

	struct outcome o2 = {0};
	opts.source = "127.0.0.3";
	opts.tcp = true;
	start_soa(&loop, &opts, &o2);
	run_until(&loop, &o2.done);
	assert_int_equal(o2.status, 0);
	assert_int_equal(r.tcp_queries, 1);
	assert_string_equal(r.last_src, "127.0.0.3");
	assert_int_equal(o2.serial, 2026112301);

	resp_stop(&r);
	loop_finish(&loop);
}

static void test_ipv6(void **state)
{
	(void)state;
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct resp r;
	resp_start(&loop, &r, "::1");
	r.strays_first = true;

	struct outcome o = {0};
	struct drdns_query_opts opts = opts_for(&r, 2.0, 1);
	opts.source = "::1";
	start_soa(&loop, &opts, &o);
	run_until(&loop, &o.done);
	assert_int_equal(o.status, 0);
	assert_int_equal(o.serial, 2026112301);
	assert_string_equal(r.last_src, "::1");

	struct outcome o2 = {0};
	opts.tcp = true;
	start_soa(&loop, &opts, &o2);
	run_until(&loop, &o2.done);
	assert_int_equal(o2.status, 0);
	assert_int_equal(r.tcp_queries, 1);

	resp_stop(&r);
	loop_finish(&loop);
}

static void test_refused_port_fails_fast(void **state)
{
	(void)state;
	uv_loop_t loop;
	uv_loop_init(&loop);

	struct drdns_query_opts opts = {
	    .address = "127.0.0.1",
	    .port = closed_port(),
	    .timeout = 2.0,
	    .attempts = 3,
	    .backoff = 2.0,
	};
	struct outcome o = {0};
	start_soa(&loop, &opts, &o);
	run_until(&loop, &o.done);
	assert_int_equal(o.status, UV_ECONNREFUSED);
	assert_int_equal(o.attempts, 3);
	assert_true(o.rtt < 5.0); /* not 2 + 4 + 8 s */

	struct outcome o2 = {0};
	opts.tcp = true;
	start_soa(&loop, &opts, &o2);
	run_until(&loop, &o2.done);
	assert_int_equal(o2.status, UV_ECONNREFUSED);
	assert_int_equal(o2.attempts, 3);
	assert_true(o2.rtt < 5.0);

	loop_finish(&loop);
}

static void test_tcp_connect_timeout(void **state)
{
	/* A listener whose accept queue is full drops SYNs: a black hole. */
	(void)state;
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct sockaddr_in sa;
	uv_ip4_addr("127.0.0.1", 0, &sa);
	int l = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(l, 0), 0);
	socklen_t sl = sizeof(sa);
	getsockname(l, (struct sockaddr *)&sa, &sl);
	int filler = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(filler, (struct sockaddr *)&sa, sizeof(sa)), 0);

	struct drdns_query_opts opts = {
	    .address = "127.0.0.1",
	    .port = ntohs(sa.sin_port),
	    .timeout = 0.2,
	    .attempts = 2,
	    .backoff = 2.0,
	    .tcp = true,
	};
	struct outcome o = {0};
	start_soa(&loop, &opts, &o);
	run_until(&loop, &o.done);
	assert_int_equal(o.status, DRDNS_ETIMEOUT);
	assert_int_equal(o.attempts, 2);
	assert_true(o.rtt > 0.4 && o.rtt < 5.0);
	loop_finish(&loop);
	close(filler);
	close(l);
}

static void test_tsig(void **state)
{
	(void)state;
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct resp r;
	resp_start(&loop, &r, "127.0.0.1");
	struct drdns_tsig_key key = {
	    .name = TEST_KEY_NAME,
	    .algorithm = "hmac-sha256.",
	    .secret = TEST_KEY_SECRET,
	};

	/* signed request, signed answer: verified */
	r.verify_secret = TEST_KEY_SECRET;
	r.sign_secret = TEST_KEY_SECRET;
	struct outcome o = {0};
	struct drdns_query_opts opts = opts_for(&r, 2.0, 1);
	opts.key = &key;
	start_soa(&loop, &opts, &o);
	run_until(&loop, &o.done);
	assert_int_equal(o.status, 0);
	assert_int_equal(o.serial, 2026112301);
	assert_int_equal(r.tsig_seen, 1);
	assert_int_equal(r.tsig_ok, 1);

	/* also over TCP (after truncation) */
	r.truncate_udp = true;
	struct outcome o1 = {0};
	start_soa(&loop, &opts, &o1);
	run_until(&loop, &o1.done);
	assert_int_equal(o1.status, 0);
	assert_int_equal(r.tcp_queries, 1);
	assert_int_equal(r.tsig_ok, 3);
	r.truncate_udp = false;

	/* answer signed with another secret */
	r.sign_secret = OTHER_SECRET;
	struct outcome o2 = {0};
	start_soa(&loop, &opts, &o2);
	run_until(&loop, &o2.done);
	assert_int_equal(o2.status, DRDNS_ETSIG);
	assert_false(o2.has_answer);

	/* a forged answer (bad MAC, right id) is ignored: the retry's valid answer wins */
	r.sign_secret = TEST_KEY_SECRET;
	r.bad_sign_first = 1;
	struct outcome o4 = {0};
	struct drdns_query_opts opts2 = opts_for(&r, 0.3, 2);
	opts2.key = &key;
	start_soa(&loop, &opts2, &o4);
	run_until(&loop, &o4.done);
	assert_int_equal(o4.status, 0);
	assert_int_equal(o4.serial, 2026112301);
	assert_int_equal(r.bad_sign_first, 0);

	/* unsigned answer to a signed request */
	r.sign_secret = NULL;
	struct outcome o3 = {0};
	start_soa(&loop, &opts, &o3);
	run_until(&loop, &o3.done);
	assert_int_equal(o3.status, DRDNS_ETSIG);

	resp_stop(&r);
	loop_finish(&loop);
}

/* A burst of requests larger than the descriptor limit: the engine queues
 * what it cannot run and every request still gets its answer.  Runs in its own
 * thread, whose query cap is computed afresh under a lowered RLIMIT_NOFILE. */
#define BURST 300

struct burst {
	int in_flight_at_start;
	int ok, first_try, udp_queries, loop_close, in_flight_after;
};

/* No cmocka assertions in here (they must not longjmp across threads): the
 * main thread checks what this one records. */
static void *burst_thread(void *arg)
{
	struct burst *b = arg;
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct resp r;
	resp_start(&loop, &r, "127.0.0.1");
	static struct outcome o[BURST];
	memset(o, 0, sizeof(o));
	struct drdns_query_opts opts = opts_for(&r, 5.0, 2);
	for (int i = 0; i < BURST; i++) {
		ldns_pkt *p = drdns_query_new_pkt(ZONE, LDNS_RR_TYPE_SOA, LDNS_PACKET_QUERY);
		if (drdns_query_start(&loop, p, &opts, query_cb, &o[i]) != 0)
			o[i].done = true;
	}
	b->in_flight_at_start = drdns_query_in_flight();
	for (int i = 0; i < BURST; i++)
		run_until(&loop, &o[i].done);
	for (int i = 0; i < BURST; i++) {
		b->ok += o[i].status == 0 && o[i].calls == 1;
		b->first_try += o[i].attempts == 1;
	}
	b->udp_queries = r.udp_queries;
	resp_stop(&r);
	uv_run(&loop, UV_RUN_DEFAULT);
	b->in_flight_after = drdns_query_in_flight();
	b->loop_close = uv_loop_close(&loop);
	return NULL;
}

static void test_burst_beyond_fd_limit(void **state)
{
	(void)state;
	struct rlimit old, low;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = 128;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	struct burst b = {0};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, burst_thread, &b), 0);
	pthread_join(t, NULL);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
	assert_int_equal(b.in_flight_at_start, BURST);
	assert_int_equal(b.ok, BURST);
	assert_int_equal(b.first_try, BURST);
	assert_int_equal(b.udp_queries, BURST);
	assert_int_equal(b.in_flight_after, 0);
	assert_int_equal(b.loop_close, 0);
}

static void never_cb(int status, const ldns_pkt *answer, double rtt, int attempts, void *arg)
{
	(void)status;
	(void)answer;
	(void)rtt;
	(void)attempts;
	(void)arg;
	fail_msg("callback after a failed start");
}

static void test_start_errors(void **state)
{
	(void)state;
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct drdns_query_opts opts = {
	    .address = "not-an-address", .port = 53, .timeout = 1, .attempts = 1};
	ldns_pkt *p = drdns_query_new_pkt(ZONE, LDNS_RR_TYPE_SOA, LDNS_PACKET_QUERY);
	assert_int_equal(drdns_query_start(&loop, p, &opts, never_cb, NULL), DRDNS_EINVAL);
	opts.address = "127.0.0.1";
	opts.attempts = 0;
	p = drdns_query_new_pkt(ZONE, LDNS_RR_TYPE_SOA, LDNS_PACKET_QUERY);
	assert_int_equal(drdns_query_start(&loop, p, &opts, never_cb, NULL), DRDNS_EINVAL);
	opts.attempts = 1;
	opts.source = "::1"; /* family differs from the destination */
	p = drdns_query_new_pkt(ZONE, LDNS_RR_TYPE_SOA, LDNS_PACKET_QUERY);
	assert_int_equal(drdns_query_start(&loop, p, &opts, never_cb, NULL), DRDNS_EINVAL);
	assert_null(drdns_query_new_pkt("bad..name", LDNS_RR_TYPE_SOA, LDNS_PACKET_QUERY));
	assert_int_equal(drdns_query_in_flight(), 0);
	loop_finish(&loop);
}

static void test_local_bind_error_via_callback(void **state)
{
	/* A source address this host does not have: reported through the
	 * callback (from the loop), not by start. */
	(void)state;
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct drdns_query_opts opts = {.address = "127.0.0.1",
	                                .port = closed_port(),
	                                .source = "192.0.2.1",
	                                .timeout = 1,
	                                .attempts = 3};
	struct outcome o = {0};
	start_soa(&loop, &opts, &o);
	run_until(&loop, &o.done);
	assert_int_equal(o.status, UV_EADDRNOTAVAIL);
	loop_finish(&loop);
}

/* ================================================================ probe */

struct probe_out {
	bool done;
	int calls;
	struct drdns_soa_result *res;
	size_t n;
};

static void probe_cb(struct drdns_soa_result *results, size_t n, void *arg)
{
	struct probe_out *p = arg;
	p->calls++;
	p->done = true;
	p->res = results;
	p->n = n;
}

static void test_probe_batch(void **state)
{
	(void)state;
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct resp ok, refused, silent, notaa, nosoa, servfail;
	resp_start(&loop, &ok, "127.0.0.1");
	resp_start(&loop, &refused, "127.0.0.1");
	refused.rcode = LDNS_RCODE_REFUSED;
	resp_start(&loop, &silent, "127.0.0.1");
	silent.silent = true;
	resp_start(&loop, &notaa, "127.0.0.1");
	notaa.no_aa = true;
	resp_start(&loop, &nosoa, "127.0.0.1");
	nosoa.no_soa = true;
	resp_start(&loop, &servfail, "127.0.0.1");
	servfail.rcode = LDNS_RCODE_SERVFAIL;
	ok.serial = 42;

	struct drdns_soa_target t[] = {
	    {"ok", "127.0.0.1", ok.port, ZONE},
	    {"refused", "127.0.0.1", refused.port, ZONE},
	    {"silent", "127.0.0.1", silent.port, ZONE},
	    {"notaa", "127.0.0.1", notaa.port, ZONE},
	    {"nosoa", "127.0.0.1", nosoa.port, ZONE},
	    {"servfail", "127.0.0.1", servfail.port, ZONE},
	    {"closed", "127.0.0.1", closed_port(), ZONE},
	    {"ok2", "127.0.0.1", ok.port, ZONE2},
	    {"bad", "nowhere", 53, ZONE},
	};
	size_t n = sizeof(t) / sizeof(t[0]);
	struct probe_out p = {0};
	assert_int_equal(drdns_probe_soa(&loop, "127.0.0.2", t, n, 0.2, 2, false, probe_cb, &p), 0);
	assert_false(p.done);
	run_until(&loop, &p.done);
	assert_int_equal(p.calls, 1);
	assert_int_equal(p.n, n);
	struct drdns_soa_result *r = p.res;
	assert_string_equal(r[0].label, "ok");
	assert_string_equal(r[0].zone, ZONE);
	assert_int_equal(r[0].port, ok.port);
	assert_true(r[0].answered);
	assert_int_equal(r[0].serial, 42);
	assert_int_equal(r[0].expire, 604800);
	assert_string_equal(r[0].detail, "ok");
	assert_false(r[1].answered);
	assert_string_equal(r[1].detail, "REFUSED");
	assert_string_equal(r[2].detail, "timeout");
	assert_true(r[2].rtt > 0.3); /* two attempts of 0.2 s */
	assert_string_equal(r[3].detail, "not authoritative");
	assert_string_equal(r[4].detail, "no SOA in answer");
	assert_string_equal(r[5].detail, "SERVFAIL");
	assert_false(r[6].answered);
	assert_non_null(strstr(r[6].detail, "network: "));
	assert_true(r[7].answered);
	assert_string_equal(r[7].zone, ZONE2);
	assert_false(r[8].answered);
	assert_non_null(strstr(r[8].detail, "error: "));
	assert_int_equal(silent.udp_queries, 2);
	assert_string_equal(ok.last_src, "127.0.0.2");
	drdns_soa_results_free(p.res, p.n);

	/* n == 0: called from the loop */
	struct probe_out p0 = {0};
	assert_int_equal(drdns_probe_soa(&loop, NULL, NULL, 0, 1.0, 1, false, probe_cb, &p0), 0);
	assert_false(p0.done);
	run_until(&loop, &p0.done);
	assert_int_equal(p0.n, 0);
	drdns_soa_results_free(p0.res, p0.n);

	resp_stop(&ok);
	resp_stop(&refused);
	resp_stop(&silent);
	resp_stop(&notaa);
	resp_stop(&nosoa);
	resp_stop(&servfail);
	loop_finish(&loop);
}

/* =============================================================== notify */

struct notify_out {
	bool done;
	int calls;
	struct drdns_notify_result *res;
	size_t n;
};

static void notify_cb(struct drdns_notify_result *results, size_t n, void *arg)
{
	struct notify_out *o = arg;
	o->calls++;
	o->done = true;
	o->res = results;
	o->n = n;
}

static void test_notify_batch(void **state)
{
	(void)state;
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct resp a, b, c;
	resp_start(&loop, &a, "127.0.0.1");
	a.ignore_first = 2; /* per zone: acked on the third attempt */
	resp_start(&loop, &b, "127.0.0.1");
	b.rcode = LDNS_RCODE_REFUSED;
	resp_start(&loop, &c, "127.0.0.1");
	c.silent = true;

	struct drdns_xfr_peer peers[] = {
	    {"ns1.example.edu.", "127.0.0.1", a.port, NULL},
	    {"ns2.example.edu.", "127.0.0.1", b.port, NULL},
	    {"ns3.example.edu.", "127.0.0.1", c.port, NULL},
	};
	struct drdns_zone_serial zones[] = {{ZONE, 2026112400}, {ZONE2, 7}};
	struct notify_out o = {0};
	assert_int_equal(
	    drdns_notify_batch(&loop, "127.0.0.2", peers, 3, zones, 2, 0.05, 4, notify_cb, &o), 0);
	assert_false(o.done);
	run_until(&loop, &o.done);
	assert_int_equal(o.calls, 1);
	assert_int_equal(o.n, 6);
	struct drdns_notify_result *r = o.res;
	/* peer-major */
	for (size_t p = 0; p < 3; p++)
		for (size_t z = 0; z < 2; z++) {
			assert_ptr_equal(r[p * 2 + z].peer, peers[p].name);
			assert_ptr_equal(r[p * 2 + z].zone, zones[z].zone);
		}
	for (int z = 0; z < 2; z++) {
		assert_true(r[z].acked);
		assert_int_equal(r[z].rcode, LDNS_RCODE_NOERROR);
		assert_int_equal(r[z].attempts, 3);
		assert_string_equal(r[z].detail, "ok");
		assert_true(r[z].seconds > 0.1); /* 0.05 + 0.1 before the third send */

		assert_false(r[2 + z].acked);
		assert_int_equal(r[2 + z].rcode, LDNS_RCODE_REFUSED);
		assert_int_equal(r[2 + z].attempts, 1);
		assert_non_null(strstr(r[2 + z].detail, "REFUSED"));

		assert_false(r[4 + z].acked);
		assert_int_equal(r[4 + z].rcode, -1);
		assert_int_equal(r[4 + z].attempts, 4);
		assert_string_equal(r[4 + z].detail, "timeout");
	}
	assert_int_equal(a.notifies, 6);
	assert_int_equal(c.notifies, 8);
	assert_int_equal(b.last_opcode, LDNS_PACKET_NOTIFY);
	assert_true(b.last_notify_aa);
	assert_false(b.last_rd);
	assert_true(b.last_notify_has_soa);
	assert_string_equal(b.last_src, "127.0.0.2");
	struct zcount *zb = zc_find(&b, ZONE2);
	assert_non_null(zb);
	assert_int_equal(zb->notify, 1);
	free(o.res);

	/* nothing to do: called from the loop with no results */
	struct notify_out o0 = {0};
	assert_int_equal(
	    drdns_notify_batch(&loop, NULL, peers, 0, zones, 2, 1.0, 1, notify_cb, &o0), 0);
	assert_false(o0.done);
	run_until(&loop, &o0.done);
	assert_int_equal(o0.n, 0);
	free(o0.res);

	resp_stop(&a);
	resp_stop(&b);
	resp_stop(&c);
	loop_finish(&loop);
}

static void test_notify_tsig(void **state)
{
	(void)state;
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct resp a;
	resp_start(&loop, &a, "127.0.0.1");
	a.verify_secret = TEST_KEY_SECRET;
	a.sign_secret = TEST_KEY_SECRET;
	struct drdns_tsig_key key = {
	    .name = TEST_KEY_NAME, .algorithm = "hmac-sha256.", .secret = TEST_KEY_SECRET};
	struct drdns_xfr_peer peers[] = {{"ns2.example.edu.", "127.0.0.1", a.port, &key}};
	struct drdns_zone_serial zones[] = {{ZONE, 99}};
	struct notify_out o = {0};
	assert_int_equal(drdns_notify_batch(&loop, NULL, peers, 1, zones, 1, 1.0, 2, notify_cb, &o),
	                 0);
	run_until(&loop, &o.done);
	assert_true(o.res[0].acked);
	assert_int_equal(a.tsig_ok, 1);
	assert_int_equal(a.last_notify_serial, 99);
	free(o.res);
	resp_stop(&a);
	loop_finish(&loop);
}

/* ============================================================= converge */

struct conv_out {
	bool done;
	int calls;
	struct drdns_converge_result *res;
	size_t n;
};

static void conv_cb(struct drdns_converge_result *results, size_t n, void *arg)
{
	struct conv_out *o = arg;
	o->calls++;
	o->done = true;
	o->res = results;
	o->n = n;
}

static void test_converge_watch(void **state)
{
	(void)state;
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct resp a, b, c, d;
	resp_start(&loop, &a, "127.0.0.1"); /* switches to the new serial after 3 polls */
	a.serial = 100;
	a.new_serial = 101;
	a.switch_after = 3;
	resp_start(&loop, &b, "127.0.0.1"); /* stuck on the old serial */
	b.serial = 100;
	resp_start(&loop, &c, "127.0.0.1"); /* dead */
	c.silent = true;
	resp_start(&loop, &d, "127.0.0.1"); /* already newer, in RFC 1982 terms */
	d.serial = 150;

	struct drdns_xfr_peer peers[] = {
	    {"ns1.example.edu.", "127.0.0.1", a.port, NULL},
	    {"ns2.example.edu.", "127.0.0.1", b.port, NULL},
	    {"ns3.example.edu.", "127.0.0.1", c.port, NULL},
	    {"ns4.example.edu.", "127.0.0.1", d.port, NULL},
	};
	struct drdns_zone_serial zones[] = {{ZONE, 101}, {ZONE2, 101}};
	struct conv_out o = {0};
	assert_int_equal(
	    drdns_converge_watch(&loop, "127.0.0.2", peers, 4, zones, 2, 0.05, 1.5, conv_cb, &o),
	    0);
	assert_false(o.done);
	run_until(&loop, &o.done);
	assert_int_equal(o.calls, 1);
	assert_int_equal(o.n, 4);
	struct drdns_converge_result *r = o.res;

	assert_ptr_equal(r[0].peer, peers[0].name);
	assert_true(r[0].converged);
	assert_true(r[0].seconds > 0.05 && r[0].seconds < 1.5);
	assert_int_equal(r[0].n_zones, 2);
	assert_true(r[0].has_served[0] && r[0].has_served[1]);
	assert_int_equal(r[0].served[0], 101);
	assert_int_equal(r[0].served[1], 101);
	assert_string_equal(r[0].detail, "ok");
	struct zcount *za = zc_find(&a, ZONE);
	assert_non_null(za);
	assert_int_equal(za->soa, 4); /* polled until it converged, not after */

	assert_false(r[1].converged);
	assert_true(r[1].seconds >= 1.4);
	assert_int_equal(r[1].served[0], 100);
	assert_string_equal(r[1].detail, "timeout: example.edu. still at 100");
	assert_true(b.udp_queries >= 6);
	assert_string_equal(b.last_src, "127.0.0.2");

	assert_false(r[2].converged);
	assert_false(r[2].has_served[0]);
	assert_string_equal(r[2].detail, "unreachable (timeout)");

	assert_true(r[3].converged);
	assert_int_equal(r[3].served[0], 150);
	drdns_converge_results_free(o.res, o.n);

	resp_stop(&a);
	resp_stop(&b);
	resp_stop(&c);
	resp_stop(&d);
	loop_finish(&loop);
}

/* A fake refusal source: mark 7; explains ns2's example.edu. only. */
struct fake_refusals {
	int marks, explains;
	uint64_t since;
	char zones[4][64];
	size_t n_zones;
};

static uint64_t fake_mark(void *arg)
{
	struct fake_refusals *f = arg;
	f->marks++;
	return 7;
}

static bool fake_explain(void *arg, uint64_t since, const char *peer, const char *const *zones,
                         size_t n_zones, struct drdns_xfr_explained *out)
{
	struct fake_refusals *f = arg;
	f->explains++;
	f->since = since;
	f->n_zones = n_zones;
	for (size_t i = 0; i < n_zones && i < 4; i++)
		snprintf(f->zones[i], sizeof(f->zones[i]), "%s", zones[i]);
	if (strcmp(peer, "ns2.example.edu."))
		return false;
	memset(out, 0, sizeof(*out));
	snprintf(out->refusal.zone, sizeof(out->refusal.zone), "%s", ZONE);
	snprintf(out->refusal.source, sizeof(out->refusal.source), "127.0.0.111");
	snprintf(out->refusal.reason, sizeof(out->refusal.reason), "not-allowed");
	out->refusal.count = 3;
	out->possibly = true;
	snprintf(out->text, sizeof(out->text), "transfer of %s from 127.0.0.111 refused", ZONE);
	return true;
}

/* The converge result carries the refusal that explains a peer that did not
 * converge (and only such a peer), asked for the zones it is missing, since the
 * mark taken at the start of the watch. */
static void test_converge_refusals(void **state)
{
	(void)state;
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct resp a, b;
	resp_start(&loop, &a, "127.0.0.1"); /* converged */
	a.serial = 101;
	resp_start(&loop, &b, "127.0.0.1"); /* stuck: its transfers are refused */
	b.serial = 100;
	struct drdns_xfr_peer peers[] = {
	    {"ns1.example.edu.", "127.0.0.1", a.port, NULL},
	    {"ns2.example.edu.", "127.0.0.1", b.port, NULL},
	};
	struct drdns_zone_serial zones[] = {{ZONE, 101}};
	struct fake_refusals f = {0};
	struct drdns_converge_refusals src = {
	    .mark = fake_mark, .explain = fake_explain, .arg = &f};
	drdns_converge_set_refusals(&src);
	struct conv_out o = {0};
	assert_int_equal(
	    drdns_converge_watch(&loop, NULL, peers, 2, zones, 1, 0.05, 0.5, conv_cb, &o), 0);
	run_until(&loop, &o.done);
	drdns_converge_set_refusals(NULL);
	assert_int_equal(f.marks, 1);
	assert_int_equal(f.explains, 1); /* ns2 only: ns1 converged */
	assert_int_equal(f.since, 7);
	assert_int_equal(f.n_zones, 1);
	assert_string_equal(f.zones[0], ZONE);
	struct drdns_converge_result *r = o.res;
	assert_true(r[0].converged);
	assert_false(r[0].refused);
	assert_false(r[1].converged);
	assert_true(r[1].refused);
	assert_string_equal(r[1].refusal.refusal.source, "127.0.0.111");
	assert_string_equal(r[1].detail, "timeout: example.edu. still at 100");
	json_t *j = drdns_converge_refusal_json(&r[1]);
	assert_string_equal(json_string_value(json_object_get(j, "source")), "127.0.0.111");
	assert_string_equal(json_string_value(json_object_get(j, "zone")), ZONE);
	assert_string_equal(json_string_value(json_object_get(j, "reason")), "not-allowed");
	assert_true(json_is_false(json_object_get(j, "signed")));
	assert_true(json_is_null(json_object_get(j, "key")));
	assert_true(json_is_true(json_object_get(j, "possibly")));
	assert_int_equal(json_integer_value(json_object_get(j, "count")), 3);
	assert_non_null(strstr(json_string_value(json_object_get(j, "text")), "127.0.0.111"));
	json_decref(j);
	j = drdns_converge_refusal_json(&r[0]);
	assert_true(json_is_null(j));
	json_decref(j);
	drdns_converge_results_free(o.res, o.n);

	/* unset: no mark, nothing explained */
	struct conv_out o2 = {0};
	assert_int_equal(
	    drdns_converge_watch(&loop, NULL, peers, 2, zones, 1, 0.05, 0.2, conv_cb, &o2), 0);
	run_until(&loop, &o2.done);
	assert_int_equal(f.marks, 1);
	assert_false(o2.res[1].refused);
	drdns_converge_results_free(o2.res, o2.n);

	resp_stop(&a);
	resp_stop(&b);
	loop_finish(&loop);
}

static void test_converge_early_end_and_wrap(void **state)
{
	/* All peers converge: the watch ends long before `wait`.  Serial
	 * arithmetic wraps: 5 is newer than 4294967290. */
	(void)state;
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct resp a, b;
	resp_start(&loop, &a, "127.0.0.1");
	a.serial = 5;
	resp_start(&loop, &b, "127.0.0.1");
	b.serial = 4294967290u;
	struct drdns_xfr_peer peers[] = {
	    {"ns1.example.edu.", "127.0.0.1", a.port, NULL},
	    {"ns2.example.edu.", "127.0.0.1", b.port, NULL},
	};
	struct drdns_zone_serial zones[] = {{ZONE, 4294967290u}};
	struct conv_out o = {0};
	uint64_t t0 = uv_hrtime();
	assert_int_equal(
	    drdns_converge_watch(&loop, NULL, peers, 2, zones, 1, 0.1, 30.0, conv_cb, &o), 0);
	run_until(&loop, &o.done);
	assert_true((uv_hrtime() - t0) / 1e9 < 10.0);
	assert_true(o.res[0].converged);
	assert_true(o.res[1].converged);
	assert_int_equal(o.res[0].served[0], 5);
	drdns_converge_results_free(o.res, o.n);

	/* a serial 2^31 away is not "newer" (undefined): not converged */
	a.serial = 4294967290u + 0x80000000u;
	struct drdns_xfr_peer one[] = {{"ns1.example.edu.", "127.0.0.1", a.port, NULL}};
	struct conv_out o2 = {0};
	assert_int_equal(
	    drdns_converge_watch(&loop, NULL, one, 1, zones, 1, 0.05, 0.3, conv_cb, &o2), 0);
	run_until(&loop, &o2.done);
	assert_false(o2.res[0].converged);
	drdns_converge_results_free(o2.res, o2.n);

	/* no peers: called from the loop with nothing */
	struct conv_out o3 = {0};
	assert_int_equal(drdns_converge_watch(&loop, NULL, NULL, 0, zones, 1, 0.1, 5, conv_cb, &o3),
	                 0);
	assert_false(o3.done);
	run_until(&loop, &o3.done);
	assert_int_equal(o3.n, 0);
	drdns_converge_results_free(o3.res, o3.n);

	resp_stop(&a);
	resp_stop(&b);
	loop_finish(&loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_udp_answer),
	    cmocka_unit_test(test_timeout_counts_attempts),
	    cmocka_unit_test(test_late_answer_to_first_attempt),
	    cmocka_unit_test(test_strays_ignored),
	    cmocka_unit_test(test_truncated_retries_over_tcp),
	    cmocka_unit_test(test_source_binding),
	    cmocka_unit_test(test_ipv6),
	    cmocka_unit_test(test_refused_port_fails_fast),
	    cmocka_unit_test(test_tcp_connect_timeout),
	    cmocka_unit_test(test_tsig),
	    cmocka_unit_test(test_burst_beyond_fd_limit),
	    cmocka_unit_test(test_start_errors),
	    cmocka_unit_test(test_local_bind_error_via_callback),
	    cmocka_unit_test(test_probe_batch),
	    cmocka_unit_test(test_notify_batch),
	    cmocka_unit_test(test_notify_tsig),
	    cmocka_unit_test(test_converge_watch),
	    cmocka_unit_test(test_converge_early_end_and_wrap),
	    cmocka_unit_test(test_converge_refusals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
