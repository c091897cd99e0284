/*
 * Asynchronous DNS request engine on libuv (see include/drdns/query.h).
 *
 * One request = one struct qreq with:
 *   - a uv_timer_t (always), driving attempts, pauses and deferred failures;
 *   - a connected uv_udp_t (UDP mode), bound to opts.source first when given;
 *     the same socket and query id serve every UDP attempt, so a late answer
 *     to an earlier attempt is still accepted;
 *   - one struct tcp_conn per TCP attempt (TCP mode, or after a truncated UDP
 *     answer), bound to opts.source, connected, 2-byte framed.
 * Handles are freed only from their close callbacks; the request itself is
 * freed when its last handle has closed, and only then stops counting in
 * drdns_query_in_flight().
 *
 * Nothing happens inside drdns_query_start() beyond validation and building
 * the wire form: the first send is made from the loop (timer 0), so the
 * callback can never run before drdns_query_start() has returned.
 *
 * Attempts.  Attempt k (k = 0..attempts-1) waits timeout * backoff^k.  A
 * network error for an attempt (ICMP port/host unreachable on UDP, a refused or
 * reset TCP connection, one closed before a whole answer) ends that attempt early: unless it was
 * the last one, the next attempt is sent after a short pause, min(rest of the attempt's timeout,
 * QUERY_ERROR_PAUSE) -- a refusing port is usually a daemon being restarted, and the pause keeps us
 * from hammering it while still being much faster than waiting out the timeout.  On the last
 * attempt the error is the result (negative errno, e.g. UV_ECONNREFUSED).  When the last attempt
 * times out the result is DRDNS_ETIMEOUT.
 *
 * Matching.  A datagram is accepted only when it comes from the destination
 * address and port (the UDP socket is also connect()ed, so the kernel filters
 * too), parses, has QR set, our id and opcode, and echoes our question (name
 * case-insensitively, type, class).  A response with an empty question section
 * is accepted only when its rcode is not NOERROR (FORMERR/NOTIMP/REFUSED
 * answers may legitimately omit it).  Anything else is ignored and we keep
 * waiting.
 *
 * Concurrency.  Every request holds a socket while it runs, so a NOTIFY or
 * poll storm (peers x zones) could run the process out of descriptors.  At
 * most a capped number of requests per thread run at once -- half the
 * RLIMIT_NOFILE soft limit, within [32, 4096] -- and the rest wait in FIFO
 * order (all of them count in drdns_query_in_flight()); a waiting
 * request's clock (rtt, timeouts) starts when it is admitted.  Running out of
 * descriptors or buffers anyway (EMFILE, ENFILE, ENOBUFS, ENOMEM from the
 * kernel) counts as a failed attempt, like a network error, not as final.
 *
 * A UDP send refused by a local firewall rule (EPERM) is treated like a
 * datagram dropped on the path: the attempt runs to its timeout, so a
 * "dropped" host looks the same whether the DROP is here or on the way.
 *
 * Truncation.  A matching UDP answer with TC set switches the request to TCP;
 * the TCP phase gets the attempts that are left (at least one).
 *
 * TSIG.  With opts.key the request is signed with drdns_tsig_sign() after the
 * id is set; the answer (including an unsigned error answer from a server that
 * does not know the key) must pass drdns_tsig_verify() against the request
 * MAC.  One that does not is ignored (it may be spoofed) and the request keeps
 * waiting; if no valid answer comes before the attempts run out, the result is
 * DRDNS_ETSIG rather than DRDNS_ETIMEOUT.  Truncated UDP answers are not verified:
 * they only trigger the TCP retry, whose answer is.
 */
#include "drdns/query.h"

#include "drdns/error.h"
#include "drdns/tsig.h"

#include <arpa/inet.h>
#include <openssl/rand.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>

#define QUERY_ERROR_PAUSE 0.2 /* seconds, see above */
#define QUERY_MAX_MSG     65535

static atomic_int g_in_flight;

enum qstate {
	ST_KICK,  /* timer fires: make the next attempt */
	ST_WAIT,  /* an attempt is out; timer fires: it timed out */
	ST_PAUSE, /* an attempt failed early; timer fires: next attempt */
};

struct qreq;

struct tcp_conn {
	uv_tcp_t h;
	uv_connect_t creq;
	uv_write_t wreq;
	struct qreq *q;
	uint8_t *acc;
	size_t len, cap;
	bool stale; /* closed or superseded: ignore its callbacks */
};

struct qreq {
	uv_loop_t *loop;
	drdns_query_cb cb;
	void *arg;

	ldns_pkt *query;
	uint8_t *wire;
	size_t wire_len;
	uint8_t *tcp_wire; /* 2-byte length + wire, built on the first TCP attempt */
	ldns_rdf *mac;     /* request MAC (TSIG), owned */
	const struct drdns_tsig_key *key;
	uint16_t id;

	struct sockaddr_storage dst;
	struct sockaddr_storage src;
	bool has_src;

	double first_timeout;
	double backoff;
	double cur_timeout;
	int max_attempts;
	int sent;
	bool tcp_mode;
	bool tsig_failed; /* a matching answer failed TSIG: report it if nothing better comes */

	uint64_t t_first;    /* hrtime of the first send, 0 before */
	uint64_t t_deadline; /* hrtime at which the current attempt times out */

	enum qstate state;

	uv_timer_t timer;
	uv_udp_t *udp; /* open UDP socket, or NULL */
	struct tcp_conn *conn;

	int handles; /* handles not yet closed */
	bool done;
	bool admitted;          /* counted in lim.active */
	struct qreq *next_wait; /* FIFO of requests not yet admitted */
};

/* Per thread (a loop runs on one thread): running requests and the queue. */
static _Thread_local struct {
	int cap;
	int active;
	struct qreq *head, *tail;
} lim;

/* ---------------------------------------------------------------- helpers */

static uint16_t random_id(void)
{
	uint16_t v;
	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) == (ssize_t)sizeof(v))
		return v;
	if (RAND_bytes((unsigned char *)&v, sizeof(v)) == 1)
		return v;
	/* Both sources failing is not expected; never send a constant id. */
	uint64_t t = uv_hrtime();
	return (uint16_t)(t ^ (t >> 16) ^ (t >> 32) ^ (uintptr_t)&v);
}

static int parse_addr(const char *text, uint16_t port, struct sockaddr_storage *out)
{
	memset(out, 0, sizeof(*out));
	if (uv_ip4_addr(text, port, (struct sockaddr_in *)out) == 0)
		return 0;
	memset(out, 0, sizeof(*out));
	if (strchr(text, ':') && uv_ip6_addr(text, port, (struct sockaddr_in6 *)out) == 0)
		return 0;
	return DRDNS_EINVAL;
}

static bool same_addr(const struct sockaddr *a, const struct sockaddr_storage *b)
{
	if (a->sa_family != b->ss_family)
		return false;
	if (a->sa_family == AF_INET) {
		const struct sockaddr_in *x = (const struct sockaddr_in *)a;
		const struct sockaddr_in *y = (const struct sockaddr_in *)b;
		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->sa_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
		const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)b;
		return x->sin6_port == y->sin6_port &&
		       memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
	}
	return false;
}

static uint64_t secs_to_ms(double s)
{
	if (s <= 0)
		return 0;
	double ms = s * 1000.0 + 0.5;
	if (ms < 1)
		return 1;
	if (ms > 1e12)
		return (uint64_t)1e12;
	return (uint64_t)ms;
}

/* Scratch receive buffer: libuv calls alloc_cb right before the read and the
 * read callback right after, on the loop's thread, so one per thread is enough
 * and thousands of requests do not each hold 64 KiB. */
static _Thread_local char rx_buf[QUERY_MAX_MSG + 1];

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)h;
	(void)suggested;
	*buf = uv_buf_init(rx_buf, sizeof(rx_buf));
}

/* ------------------------------------------------------------ life cycle */

static void qreq_free(struct qreq *q)
{
	ldns_pkt_free(q->query);
	ldns_rdf_deep_free(q->mac);
	free(q->wire);
	free(q->tcp_wire);
	free(q);
}

static void handle_closed(struct qreq *q)
{
	if (--q->handles == 0) {
		qreq_free(q);
		atomic_fetch_sub(&g_in_flight, 1);
	}
}

static void timer_close_cb(uv_handle_t *h)
{
	handle_closed(h->data);
}

static void udp_close_cb(uv_handle_t *h)
{
	struct qreq *q = h->data;
	free(h);
	handle_closed(q);
}

static void conn_close_cb(uv_handle_t *h)
{
	struct tcp_conn *c = h->data;
	struct qreq *q = c->q;
	free(c->acc);
	free(c);
	handle_closed(q);
}

static void close_udp(struct qreq *q)
{
	uv_udp_t *u = q->udp;
	if (!u)
		return;
	q->udp = NULL;
	uv_udp_recv_stop(u);
	uv_close((uv_handle_t *)u, udp_close_cb);
}

static void close_conn(struct qreq *q)
{
	struct tcp_conn *c = q->conn;
	if (!c)
		return;
	q->conn = NULL;
	c->stale = true;
	uv_close((uv_handle_t *)&c->h, conn_close_cb);
}

static double elapsed(const struct qreq *q)
{
	if (!q->t_first)
		return 0.0;
	return (double)(uv_hrtime() - q->t_first) / 1e9;
}

static void release(struct qreq *q);

/* The one place the callback is called. */
static void finish(struct qreq *q, int status, const ldns_pkt *answer)
{
	if (q->done)
		return;
	q->done = true;
	release(q);
	double rtt = elapsed(q);
	uv_timer_stop(&q->timer);
	close_udp(q);
	close_conn(q);
	uv_close((uv_handle_t *)&q->timer, timer_close_cb);
	q->cb(status, status == 0 ? answer : NULL, rtt, q->sent, q->arg);
}

static void send_attempt(struct qreq *q);
static void timer_cb(uv_timer_t *t);

static int query_cap(void)
{
	if (lim.cap == 0) {
		struct rlimit rl;
		rlim_t c = 4096;
		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
			c = rl.rlim_cur / 2;
		lim.cap = c < 32 ? 32 : c > 4096 ? 4096 : (int)c;
	}
	return lim.cap;
}

static void admit(struct qreq *q)
{
	q->admitted = true;
	lim.active++;
	q->state = ST_KICK;
	uv_timer_start(&q->timer, timer_cb, 0, 0);
}

static void admit_or_wait(struct qreq *q)
{
	if (lim.active < query_cap() && !lim.head) {
		admit(q);
		return;
	}
	q->next_wait = NULL;
	if (lim.tail)
		lim.tail->next_wait = q;
	else
		lim.head = q;
	lim.tail = q;
}

static void release(struct qreq *q)
{
	if (!q->admitted)
		return;
	q->admitted = false;
	lim.active--;
	while (lim.head && lim.active < query_cap()) {
		struct qreq *n = lim.head;
		lim.head = n->next_wait;
		if (!lim.head)
			lim.tail = NULL;
		admit(n);
	}
}

/* The current attempt ended without an answer: err is DRDNS_ETIMEOUT or a
 * network error (negative errno). */
static void attempt_over(struct qreq *q, int err)
{
	if (q->sent >= q->max_attempts) {
		finish(q, q->tsig_failed ? DRDNS_ETSIG : err, NULL);
		return;
	}
	if (err == DRDNS_ETIMEOUT) {
		send_attempt(q);
		return;
	}
	uint64_t now = uv_hrtime();
	double rest = q->t_deadline > now ? (double)(q->t_deadline - now) / 1e9 : 0.0;
	double pause = rest < QUERY_ERROR_PAUSE ? rest : QUERY_ERROR_PAUSE;
	q->state = ST_PAUSE;
	uv_timer_stop(&q->timer);
	uv_timer_start(&q->timer, timer_cb, secs_to_ms(pause), 0);
}

static void timer_cb(uv_timer_t *t)
{
	struct qreq *q = t->data;
	if (q->done)
		return;
	switch (q->state) {
	case ST_WAIT: attempt_over(q, DRDNS_ETIMEOUT); break;
	case ST_KICK:
	case ST_PAUSE: send_attempt(q); break;
	}
}

/* Errors that say "this attempt failed at the far end or on the path";
 * anything else is a local problem that more attempts will not fix. */
static bool remote_error(int err)
{
	switch (err) {
	case UV_ECONNREFUSED:
	case UV_ECONNRESET:
	case UV_ECONNABORTED:
	case UV_EHOSTUNREACH:
	case UV_ENETUNREACH:
	case UV_ENETDOWN:
	case UV_ETIMEDOUT:
	case UV_EPIPE:
	case UV_EOF:
	case UV_EPROTO:
	case UV_EAGAIN:
	case UV_ENOBUFS:
	case UV_EMFILE:
	case UV_ENFILE:
	case UV_ENOMEM: return true;
	default: return false;
	}
}

/* ---------------------------------------------------------------- answers */

static bool question_matches(const struct qreq *q, const ldns_pkt *a)
{
	const ldns_rr_list *qq = ldns_pkt_question(q->query);
	const ldns_rr_list *aq = ldns_pkt_question(a);
	size_t n = aq ? ldns_rr_list_rr_count(aq) : 0;
	if (n == 0)
		return ldns_pkt_get_rcode(a) != LDNS_RCODE_NOERROR;
	if (n != 1)
		return false;
	const ldns_rr *x = ldns_rr_list_rr(qq, 0);
	const ldns_rr *y = ldns_rr_list_rr(aq, 0);
	return ldns_rr_get_type(x) == ldns_rr_get_type(y) &&
	       ldns_rr_get_class(x) == ldns_rr_get_class(y) &&
	       ldns_dname_compare(ldns_rr_owner(x), ldns_rr_owner(y)) == 0;
}

static void start_tcp(struct qreq *q);

/* A message arrived.  Returns true when it ended the request (or switched it
 * to TCP), false when it was ignored. */
static bool handle_answer(struct qreq *q, const uint8_t *data, size_t len, bool via_udp)
{
	ldns_pkt *a = NULL;
	if (ldns_wire2pkt(&a, data, len) != LDNS_STATUS_OK)
		return false;
	if (!ldns_pkt_qr(a) || ldns_pkt_id(a) != q->id ||
	    ldns_pkt_get_opcode(a) != ldns_pkt_get_opcode(q->query) || !question_matches(q, a)) {
		ldns_pkt_free(a);
		return false;
	}
	if (via_udp && ldns_pkt_tc(a)) {
		ldns_pkt_free(a);
		start_tcp(q);
		return true;
	}
	if (q->key && drdns_tsig_verify(a, data, len, q->key, q->mac) != 0) {
		/* Ignore it like any other non-matching packet: one spoofed datagram with
		 * a guessed id must not end a signed request.  Reported at the end. */
		q->tsig_failed = true;
		ldns_pkt_free(a);
		return false;
	}
	finish(q, 0, a);
	ldns_pkt_free(a);
	return true;
}

/* -------------------------------------------------------------------- UDP */

static void udp_recv_cb(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf,
                        const struct sockaddr *addr, unsigned flags)
{
	struct qreq *q = h->data;
	if (q->done || h != q->udp || q->tcp_mode)
		return;
	if (nread < 0) {
		/* ICMP unreachable and friends, reported on the connected socket. */
		if (q->state == ST_WAIT)
			attempt_over(q, (int)nread);
		return;
	}
	if (nread == 0 || !addr)
		return;
	if (!same_addr(addr, &q->dst) || (flags & UV_UDP_PARTIAL))
		return;
	handle_answer(q, (const uint8_t *)buf->base, (size_t)nread, true);
}

/* Open the request's UDP socket.  On failure it is closed again, so that a
 * later attempt starts afresh. */
static int open_udp(struct qreq *q)
{
	uv_udp_t *u = malloc(sizeof(*u));
	if (!u)
		return UV_ENOMEM;
	int rc = uv_udp_init(q->loop, u);
	if (rc < 0) {
		free(u);
		return rc;
	}
	u->data = q;
	q->udp = u;
	q->handles++;
	if (q->has_src)
		rc = uv_udp_bind(u, (const struct sockaddr *)&q->src, 0);
	if (rc == 0)
		rc = uv_udp_connect(u, (const struct sockaddr *)&q->dst);
	if (rc == 0)
		rc = uv_udp_recv_start(u, alloc_cb, udp_recv_cb);
	if (rc < 0)
		close_udp(q);
	return rc;
}

/* -------------------------------------------------------------------- TCP */

static void conn_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct tcp_conn *c = s->data;
	struct qreq *q = c->q;
	if (c->stale || q->done)
		return;
	if (nread < 0) {
		/* Closed before a whole answer: a failed attempt (EOF is reported
		 * as a reset connection, which has a readable strerror). */
		uv_read_stop(s);
		if (q->state == ST_WAIT)
			attempt_over(q, nread == UV_EOF ? UV_ECONNRESET : (int)nread);
		return;
	}
	if (nread == 0)
		return;
	if (c->len + (size_t)nread > c->cap) {
		size_t cap = c->cap ? c->cap : 1024;
		while (cap < c->len + (size_t)nread)
			cap *= 2;
		uint8_t *n = realloc(c->acc, cap);
		if (!n) {
			finish(q, DRDNS_ENOMEM, NULL);
			return;
		}
		c->acc = n;
		c->cap = cap;
	}
	memcpy(c->acc + c->len, buf->base, (size_t)nread);
	c->len += (size_t)nread;
	while (c->len >= 2) {
		size_t mlen = ((size_t)c->acc[0] << 8) | c->acc[1];
		if (c->len < 2 + mlen)
			return;
		if (handle_answer(q, c->acc + 2, mlen, false))
			return; /* finished: c may be closing, q done */
		memmove(c->acc, c->acc + 2 + mlen, c->len - 2 - mlen);
		c->len -= 2 + mlen;
	}
}

static void conn_write_cb(uv_write_t *w, int status)
{
	struct tcp_conn *c = w->data;
	struct qreq *q = c->q;
	if (c->stale || q->done || status == 0)
		return;
	if (q->state == ST_WAIT)
		attempt_over(q, status);
}

static void conn_connect_cb(uv_connect_t *req, int status)
{
	struct tcp_conn *c = req->data;
	struct qreq *q = c->q;
	if (c->stale || q->done)
		return;
	if (status < 0) {
		if (q->state == ST_WAIT)
			attempt_over(q, status);
		return;
	}
	uv_buf_t b = uv_buf_init((char *)q->tcp_wire, (unsigned)(q->wire_len + 2));
	c->wreq.data = c;
	int rc = uv_write(&c->wreq, (uv_stream_t *)&c->h, &b, 1, conn_write_cb);
	if (rc == 0)
		rc = uv_read_start((uv_stream_t *)&c->h, alloc_cb, conn_read_cb);
	if (rc < 0 && q->state == ST_WAIT)
		attempt_over(q, rc);
}

/* Open a new connection for the current attempt.  Returns 0, a remote error
 * (attempt failed) or a local error (request failed). */
static int open_conn(struct qreq *q)
{
	struct tcp_conn *c = calloc(1, sizeof(*c));
	if (!c)
		return DRDNS_ENOMEM;
	int rc = uv_tcp_init(q->loop, &c->h);
	if (rc < 0) {
		free(c);
		return rc;
	}
	c->q = q;
	c->h.data = c;
	c->creq.data = c;
	q->conn = c;
	q->handles++;
	if (q->has_src) {
		rc = uv_tcp_bind(&c->h, (const struct sockaddr *)&q->src, 0);
		if (rc < 0)
			return rc;
	}
	uv_tcp_nodelay(&c->h, 1);
	return uv_tcp_connect(&c->creq, &c->h, (const struct sockaddr *)&q->dst, conn_connect_cb);
}

/* Truncated UDP answer: continue over TCP with the attempts left (at least one). */
static void start_tcp(struct qreq *q)
{
	q->tcp_mode = true;
	close_udp(q);
	if (q->sent >= q->max_attempts)
		q->max_attempts = q->sent + 1;
	send_attempt(q);
}

/* --------------------------------------------------------------- attempts */

static void send_attempt(struct qreq *q)
{
	uint64_t now = uv_hrtime();
	q->cur_timeout = q->sent == 0 ? q->first_timeout : q->cur_timeout * q->backoff;
	if (q->t_first == 0)
		q->t_first = now ? now : 1;
	q->sent++;
	q->t_deadline = now + (uint64_t)(q->cur_timeout * 1e9);
	q->state = ST_WAIT;
	uv_timer_stop(&q->timer);
	uv_timer_start(&q->timer, timer_cb, secs_to_ms(q->cur_timeout), 0);

	int rc;
	if (q->tcp_mode) {
		close_conn(q);
		if (!q->tcp_wire) {
			q->tcp_wire = malloc(q->wire_len + 2);
			if (!q->tcp_wire) {
				finish(q, DRDNS_ENOMEM, NULL);
				return;
			}
			q->tcp_wire[0] = (uint8_t)(q->wire_len >> 8);
			q->tcp_wire[1] = (uint8_t)q->wire_len;
			memcpy(q->tcp_wire + 2, q->wire, q->wire_len);
		}
		rc = open_conn(q);
	} else {
		rc = q->udp ? 0 : open_udp(q);
		if (rc == 0) {
			uv_buf_t b = uv_buf_init((char *)q->wire, (unsigned)q->wire_len);
			rc = uv_udp_try_send(q->udp, &b, 1, NULL);
			/* Socket buffer full, or a local firewall DROP (EPERM): as good
			 * as a datagram lost on the way, so wait out the attempt. */
			if (rc == UV_EAGAIN || rc == UV_EPERM || rc == UV_EACCES || rc > 0)
				rc = 0;
		}
	}
	if (rc == 0)
		return;
	if (remote_error(rc)) {
		attempt_over(q, rc);
	} else {
		q->sent--; /* nothing went out */
		finish(q, rc, NULL);
	}
}

/* ------------------------------------------------------------------ API */

ldns_pkt *drdns_query_new_pkt(const char *zone, ldns_rr_type type, uint16_t opcode)
{
	if (!zone)
		return NULL;
	ldns_rdf *name = NULL;
	if (ldns_str2rdf_dname(&name, zone) != LDNS_STATUS_OK || !name)
		return NULL;
	ldns_pkt *p = ldns_pkt_query_new(name, type, LDNS_RR_CLASS_IN, 0);
	if (!p)
		return NULL;
	ldns_pkt_set_opcode(p, (ldns_pkt_opcode)opcode);
	ldns_pkt_set_rd(p, false);
	return p;
}

int drdns_query_in_flight(void)
{
	return atomic_load(&g_in_flight);
}

int drdns_query_start(uv_loop_t *loop, ldns_pkt *query, const struct drdns_query_opts *opts,
                      drdns_query_cb cb, void *arg)
{
	if (!loop || !query || !opts || !cb || !opts->address || opts->attempts < 1 ||
	    !(opts->timeout > 0) || ldns_pkt_qdcount(query) != 1) {
		ldns_pkt_free(query);
		return DRDNS_EINVAL;
	}
	struct qreq *q = calloc(1, sizeof(*q));
	if (!q) {
		ldns_pkt_free(query);
		return DRDNS_ENOMEM;
	}
	q->query = query;
	q->loop = loop;
	q->cb = cb;
	q->arg = arg;
	q->key = opts->key;
	q->first_timeout = opts->timeout;
	q->backoff = opts->backoff > 0 ? opts->backoff : 1.0;
	q->max_attempts = opts->attempts;
	q->tcp_mode = opts->tcp;

	int rc = parse_addr(opts->address, opts->port ? opts->port : 53, &q->dst);
	if (rc == 0 && opts->source && *opts->source) {
		rc = parse_addr(opts->source, 0, &q->src);
		if (rc == 0 && q->src.ss_family != q->dst.ss_family)
			rc = DRDNS_EINVAL;
		q->has_src = true;
	}
	if (rc < 0)
		goto fail;

	q->id = random_id();
	ldns_pkt_set_id(query, q->id);
	/* Our own TSIG goes in fresh; drop any left on the packet. */
	if (ldns_pkt_tsig(query)) {
		ldns_rr_free(ldns_pkt_tsig(query));
		ldns_pkt_set_tsig(query, NULL);
	}
	if (q->key) {
		if (drdns_tsig_sign(query, q->key, NULL) != 0 || !ldns_pkt_tsig(query) ||
		    ldns_rr_rd_count(ldns_pkt_tsig(query)) < 4) {
			rc = DRDNS_ETSIG;
			goto fail;
		}
		q->mac = ldns_rdf_clone(ldns_rr_rdf(ldns_pkt_tsig(query), 3));
		if (!q->mac) {
			rc = DRDNS_ENOMEM;
			goto fail;
		}
	}
	if (ldns_pkt2wire(&q->wire, query, &q->wire_len) != LDNS_STATUS_OK || !q->wire ||
	    q->wire_len > QUERY_MAX_MSG) {
		rc = DRDNS_EINVAL;
		goto fail;
	}

	rc = uv_timer_init(loop, &q->timer);
	if (rc < 0)
		goto fail;
	q->timer.data = q;
	q->handles = 1;
	atomic_fetch_add(&g_in_flight, 1);
	admit_or_wait(q);
	return 0;

fail:
	qreq_free(q);
	return rc;
}
