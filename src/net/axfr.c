/*
 * Blocking AXFR client with one deadline (see axfr.h).  Plain sockets and
 * poll(): it runs in libuv's thread pool, never on the loop.
 */
#include "drdns/axfr.h"

#include "drdns/error.h"
#include "drdns/query.h"
#include "drdns/tsig.h"

#include <errno.h>
#include <stdarg.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* One transfer in progress. */
struct xfr {
	const struct drdns_axfr_opts *opts;
	double deadline; /* CLOCK_MONOTONIC seconds */
	int fd;
	uint16_t id;
	ldns_rdf *zone;    /* owned */
	ldns_rr_list *rrs; /* owned until handed out */
	bool done;         /* the closing SOA arrived */
	ldns_rdf *mac;     /* TSIG: the MAC of the request, then of the last signed
	                    * message (owned), or NULL when unsigned */
	size_t n_msgs;     /* response messages read */
	char *err;
	size_t errlen;
};

static double now_mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fail(struct xfr *x, int ret, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(struct xfr *x, int ret, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(x->err, x->errlen, fmt, ap);
	va_end(ap);
	return ret;
}

static int timed_out(struct xfr *x)
{
	return fail(x, DRDNS_ETIMEOUT, "timed out after %g s", x->opts->timeout);
}

/* getrandom, not OpenSSL: its per-thread DRBG would outlive a pool thread's
 * work (and show as leaked at exit). */
static uint16_t random_id(void)
{
	uint16_t v;
	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) == (ssize_t)sizeof(v))
		return v;
	struct timespec ts; /* not expected; never a constant id */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint16_t)(ts.tv_nsec ^ (ts.tv_nsec >> 16) ^ ts.tv_sec ^ (uintptr_t)&v);
}

/* Wait until fd is ready for events, the deadline passes or the transfer is
 * cancelled (looked at every DRDNS_AXFR_CANCEL_MS). */
static int wait_fd(struct xfr *x, short events)
{
	for (;;) {
		if (x->opts->cancel && atomic_load(x->opts->cancel))
			return fail(x, -ECANCELED, "cancelled");
		double left = x->deadline - now_mono();
		if (left <= 0)
			return timed_out(x);
		int ms = left * 1000.0 < DRDNS_AXFR_CANCEL_MS ? (int)(left * 1000.0) + 1
		                                              : DRDNS_AXFR_CANCEL_MS;
		struct pollfd p = {.fd = x->fd, .events = events};
		int n = poll(&p, 1, ms);
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return fail(x, -errno, "poll: %s", strerror(errno));
	}
}

static int resolve(struct xfr *x, const char *addr, uint16_t port, struct addrinfo **out)
{
	char serv[8];
	snprintf(serv, sizeof(serv), "%u", port);
	struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
	                         .ai_socktype = SOCK_STREAM};
	int rc = getaddrinfo(addr, serv, &hints, out);
	if (rc != 0)
		return fail(x, DRDNS_EINVAL, "bad address %s: %s", addr, gai_strerror(rc));
	return 0;
}

/* A non-blocking TCP socket, bound to the source, connected to the master. */
static int connect_master(struct xfr *x)
{
	struct addrinfo *dst = NULL, *src = NULL;
	int ret = resolve(x, x->opts->address, x->opts->port, &dst);
	if (ret == 0 && x->opts->source)
		ret = resolve(x, x->opts->source, 0, &src);
	if (ret == 0 && src && src->ai_family != dst->ai_family)
		ret = fail(x, DRDNS_EINVAL, "source %s and master %s are not of one address family",
		           x->opts->source, x->opts->address);
	if (ret == 0) {
		x->fd = socket(dst->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (x->fd < 0)
			ret = fail(x, -errno, "socket: %s", strerror(errno));
	}
	if (ret == 0 && src && bind(x->fd, src->ai_addr, src->ai_addrlen) < 0)
		ret = fail(x, -errno, "bind to %s: %s", x->opts->source, strerror(errno));
	if (ret == 0 && connect(x->fd, dst->ai_addr, dst->ai_addrlen) < 0) {
		if (errno != EINPROGRESS)
			ret = fail(x, -errno, "connect: %s", strerror(errno));
		else if ((ret = wait_fd(x, POLLOUT)) == 0) {
			int soerr = 0;
			socklen_t len = sizeof(soerr);
			if (getsockopt(x->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
				soerr = errno;
			if (soerr)
				ret = fail(x, -soerr, "connect: %s", strerror(soerr));
		}
	}
	freeaddrinfo(dst);
	freeaddrinfo(src);
	return ret;
}

static int send_all(struct xfr *x, const uint8_t *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = send(x->fd, buf, len, MSG_NOSIGNAL);
		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return fail(x, -errno, "send: %s", strerror(errno));
		int ret = wait_fd(x, POLLOUT);
		if (ret < 0)
			return ret;
	}
	return 0;
}

static int recv_all(struct xfr *x, uint8_t *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = recv(x->fd, buf, len, 0);
		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n == 0)
			return fail(x, DRDNS_EPROTO,
			            "connection closed before the end of the zone");
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return fail(x, -errno, "recv: %s", strerror(errno));
		int ret = wait_fd(x, POLLIN);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* The AXFR request, two-byte framed. */
static int send_query(struct xfr *x)
{
	ldns_pkt *q = drdns_query_new_pkt(x->opts->zone, LDNS_RR_TYPE_AXFR, LDNS_PACKET_QUERY);
	if (!q)
		return fail(x, DRDNS_EINVAL, "bad zone name %s", x->opts->zone);
	x->id = random_id();
	ldns_pkt_set_id(q, x->id);
	if (x->opts->key) {
		if (drdns_tsig_sign(q, x->opts->key, NULL) < 0 ||
		    !(x->mac = ldns_rdf_clone(ldns_rr_rdf(ldns_pkt_tsig(q), 3)))) {
			ldns_pkt_free(q);
			return fail(x, DRDNS_ETSIG, "cannot sign the request with key %s",
			            x->opts->key->name);
		}
	}
	uint8_t *wire = NULL;
	size_t size = 0;
	ldns_status st = ldns_pkt2wire(&wire, q, &size);
	ldns_pkt_free(q);
	if (st != LDNS_STATUS_OK || size > 65535) {
		free(wire);
		return fail(x, DRDNS_ENOMEM, "cannot build the request");
	}
	uint8_t len[2] = {(uint8_t)(size >> 8), (uint8_t)size};
	int ret = send_all(x, len, 2);
	if (ret == 0)
		ret = send_all(x, wire, size);
	free(wire);
	return ret;
}

/* The TSIG error of a response, as text ("BADKEY"), or NULL. */
static const char *tsig_error_text(const ldns_pkt *pkt)
{
	const ldns_rr *t = ldns_pkt_tsig(pkt);
	const ldns_rdf *e = t && ldns_rr_rd_count(t) > 5 ? ldns_rr_rdf(t, 5) : NULL;
	if (!e || ldns_rdf_size(e) != 2)
		return NULL;
	switch (ldns_rdf2native_int16(e)) {
	case 16: return "BADSIG";
	case 17: return "BADKEY";
	case 18: return "BADTIME";
	case 22: return "BADTRUNC";
	default: return NULL;
	}
}

/* With a key: every response message must be signed by it, the first over the
 * request's MAC, each next one over the previous message's MAC (timers only,
 * RFC 8945 5.3.1).  A message with an error rcode is reported by its rcode. */
static int check_tsig(struct xfr *x, ldns_pkt *pkt, const uint8_t *wire, size_t size)
{
	if (!x->opts->key || ldns_pkt_get_rcode(pkt) != LDNS_RCODE_NOERROR)
		return 0;
	if (!ldns_pkt_tsig(pkt))
		return fail(x, DRDNS_ETSIG, "response message %zu is not TSIG-signed (key %s)",
		            x->n_msgs, x->opts->key->name);
	int ret = x->n_msgs == 1 ? drdns_tsig_verify(pkt, wire, size, x->opts->key, x->mac)
	                         : drdns_tsig_verify_next(pkt, wire, size, x->opts->key, x->mac);
	if (ret < 0)
		return fail(x, DRDNS_ETSIG,
		            "bad TSIG on response message %zu (key %s: wrong key, secret or time)",
		            x->n_msgs, x->opts->key->name);
	ldns_rdf *mac = ldns_rdf_clone(ldns_rr_rdf(ldns_pkt_tsig(pkt), 3));
	if (!mac)
		return fail(x, DRDNS_ENOMEM, "out of memory");
	ldns_rdf_deep_free(x->mac);
	x->mac = mac;
	return 0;
}

static int read_msg(struct xfr *x, ldns_pkt **pkt)
{
	uint8_t len[2];
	int ret = recv_all(x, len, 2);
	size_t size = (size_t)len[0] << 8 | len[1];
	uint8_t *buf = ret == 0 ? malloc(size ? size : 1) : NULL;
	if (ret == 0 && !buf)
		ret = fail(x, DRDNS_ENOMEM, "out of memory");
	if (ret == 0)
		ret = recv_all(x, buf, size);
	if (ret == 0 && ldns_wire2pkt(pkt, buf, size) != LDNS_STATUS_OK)
		ret = fail(x, DRDNS_EPROTO, "malformed answer");
	if (ret == 0) {
		x->n_msgs++;
		ret = check_tsig(x, *pkt, buf, size);
	}
	free(buf);
	return ret;
}

static bool is_zone_soa(const struct xfr *x, const ldns_rr *rr)
{
	return ldns_rr_get_type(rr) == LDNS_RR_TYPE_SOA &&
	       ldns_dname_compare(ldns_rr_owner(rr), x->zone) == 0;
}

/* Take the answer records of one message into x->rrs (pkt is modified). */
static int take_answers(struct xfr *x, ldns_pkt *pkt)
{
	if (ldns_pkt_id(pkt) != x->id || !ldns_pkt_qr(pkt))
		return fail(x, DRDNS_EPROTO, "answer does not match the request");
	if (ldns_pkt_get_rcode(pkt) != LDNS_RCODE_NOERROR) {
		char *rcode = ldns_pkt_rcode2str(ldns_pkt_get_rcode(pkt));
		const char *terr = tsig_error_text(pkt);
		int ret = fail(x, terr ? DRDNS_ETSIG : DRDNS_EPROTO, "%s%s%s%s",
		               rcode ? rcode : "error rcode", terr ? " (TSIG " : "",
		               terr ? terr : "", terr ? ")" : "");
		free(rcode);
		return ret;
	}
	ldns_rr_list *answer = ldns_pkt_answer(pkt);
	size_t n = ldns_rr_list_rr_count(answer);
	for (size_t i = 0; i < n && !x->done; i++) {
		ldns_rr *rr = ldns_rr_list_rr(answer, i);
		size_t have = ldns_rr_list_rr_count(x->rrs);
		if (have == 0 && !is_zone_soa(x, rr))
			return fail(x, DRDNS_EPROTO,
			            "the transfer does not start with the zone's SOA");
		if (have > 0 && is_zone_soa(x, rr)) {
			x->done = true;
			break;
		}
		if (have >= DRDNS_AXFR_MAX_RECORDS)
			return fail(x, DRDNS_EPROTO, "more than %d records",
			            DRDNS_AXFR_MAX_RECORDS);
		ldns_rr *copy = ldns_rr_clone(rr);
		if (!copy || !ldns_rr_list_push_rr(x->rrs, copy)) {
			ldns_rr_free(copy);
			return fail(x, DRDNS_ENOMEM, "out of memory");
		}
	}
	if (n == 0)
		return fail(x, DRDNS_EPROTO, "empty answer");
	return 0;
}

int drdns_axfr_fetch(const struct drdns_axfr_opts *opts, ldns_rr_list **out, char *err,
                     size_t errlen)
{
	struct xfr x = {.opts = opts, .fd = -1, .err = err, .errlen = errlen};
	if (!opts || !opts->zone || !opts->address || !(opts->timeout > 0))
		return fail(&x, DRDNS_EINVAL, "invalid request");
	x.deadline = now_mono() + opts->timeout;
	x.rrs = ldns_rr_list_new();
	if (!x.rrs || ldns_str2rdf_dname(&x.zone, opts->zone) != LDNS_STATUS_OK) {
		ldns_rr_list_free(x.rrs);
		return fail(&x, DRDNS_EINVAL, "bad zone name %s", opts->zone);
	}
	int ret = connect_master(&x);
	if (ret == 0)
		ret = send_query(&x);
	while (ret == 0 && !x.done) {
		ldns_pkt *pkt = NULL;
		ret = read_msg(&x, &pkt);
		if (ret == 0)
			ret = take_answers(&x, pkt);
		ldns_pkt_free(pkt);
	}
	if (x.fd >= 0)
		close(x.fd);
	ldns_rdf_deep_free(x.zone);
	ldns_rdf_deep_free(x.mac);
	if (ret < 0) {
		ldns_rr_list_deep_free(x.rrs);
		return ret;
	}
	*out = x.rrs;
	return 0;
}
