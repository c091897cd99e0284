/*
 * The DR primary: UDP and TCP listeners (libuv) answering SOA, AXFR, IXFR and
 * NOTIFY for the installed DR zone set.  See include/drdns/server.h.
 *
 * Decisions worth knowing:
 *   - Not promoted (no set installed): every parseable request is answered
 *     REFUSED right away (after TSIG checking, so a signed request gets a signed
 *     REFUSED and a key mismatch shows up as NOTAUTH before any failover).
 *   - AXFR over UDP: FORMERR, as BIND does ("attempted AXFR over UDP"), after
 *     the transfer ACL (which answers REFUSED first).
 *   - IXFR over UDP: the current SOA only (RFC 1995 4); IXFR over TCP: the
 *     current SOA alone when the client's serial is not older, else the full
 *     zone AXFR-style (SOA, records, SOA).
 *   - AXFR messages carry the question only in the first message (as BIND).
 *   - TSIG errors: BADKEY/BADSIG (and BADTIME) answers are NOTAUTH with an
 *     unsigned TSIG record holding the error (RFC 8945 5.3.2; ldns cannot sign
 *     with a non-zero error, so BADTIME is unsigned too).
 *   - TCP sockets get SO_REUSEADDR (restart while old connections sit in
 *     TIME_WAIT).  UDP does not: on Linux SO_REUSEADDR would let a second
 *     process share the UDP port and silently take part of the queries.
 *   - Transfer cache: when a set is installed, each zone's AXFR body (SOA ...
 *     SOA, the same messages, packing and compression as the per-message path
 *     below, question "<origin> AXFR IN" in the first) is rendered once, one
 *     zone per libuv thread-pool job, so the loop never blocks.  The set is
 *     immutable while installed and every job holds a reference to it, so the
 *     worker reads it safely; the rendered zone is attached on the loop thread
 *     (after-work callback).  A transfer then copies each cached message,
 *     patches the id (and, in the first message, the question name as the
 *     client spelled it, which has the same length, and the type for IXFR), signs
 *     it when TSIG is in use, and writes it, one message per write completion as
 *     before.  The copy is byte-identical to what the per-message path builds:
 *     ldns compresses case-insensitively, so pointers land where they would
 *     with the client's spelling of the question.  Until a zone's render has
 *     landed (a transfer in the first moments after promotion), and for any
 *     message that does not line up with the cache, the per-message path runs;
 *     a transfer can switch to the cache midway.  Replacing the set cancels its
 *     queued jobs; drdns_server_close cancels queued jobs and waits for running
 *     ones before its callback.
 *   - Transfer TSIG: every message is signed on its wire form
 *     (drdns_tsig_sign_wire: the first with the request MAC, the rest timers-only
 *     with the previous MAC, as ldns_pkt_tsig_sign_next(..., 1) did), whichever
 *     path built it.
 */
#include "drdns/server.h"

#include "drdns/conf.h"
#include "drdns/error.h"
#include "drdns/log.h"
#include "drdns/serial.h"
#include "drdns/tsig.h"
#include "drdns/zone.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ldns/ldns.h>
#include <openssl/crypto.h>

#define XFR_MSG_TARGET 16000             /* uncompressed RR bytes per AXFR message */
#define TCP_IDLE_MS    10000             /* close TCP connections idle this long */
#define TCP_MAX_CONNS  256               /* concurrent TCP connections */
#define TCP_RBUF_MAX   (2 * (65535 + 2)) /* buffered pipelined input per connection */
#define TCP_BACKLOG    128
#define UDP_MAX_PLAIN  512
#define UDP_MAX_EDNS   1232 /* DNS flag day 2020 */

#define TSIG_BADSIG  16
#define TSIG_BADKEY  17
#define TSIG_BADTIME 18

/* ------------------------------------------------------------ zone sets */

enum sorted_state {
	SORT_UNKNOWN = 0,
	SORT_YES,
	SORT_NO
};

/* One message of a zone's transfer, as rendered into the cache. */
struct xmsg {
	size_t off; /* in zcache.wire */
	size_t len;
	size_t start; /* index in zone->rrs of the first record after the leading SOA (or
	               * of the first record, in the first message) */
	size_t end;   /* index after the message's last record from zone->rrs */
	size_t count; /* answer records (both SOAs included) */
	bool done;    /* ends with the closing SOA */
};

/* A zone's whole AXFR body, rendered once (id 0, question "<origin> AXFR IN"). */
struct zcache {
	uint8_t *wire; /* the messages back to back */
	struct xmsg *msgs;
	size_t n, bytes;
	size_t qname_len; /* the question name at offset 12 of message 0 */
};

static void zcache_free(struct zcache *zc)
{
	if (!zc)
		return;
	free(zc->wire);
	free(zc->msgs);
	free(zc);
}

/* A served zone set with a reference count: the server holds one reference to
 * the current set, every running transfer and every cache job one to the set it
 * uses. */
struct zref {
	struct drdns_zoneset *set;
	unsigned refs;
	unsigned char *sorted; /* per zone: enum sorted_state (rrs sorted by owner) */
	struct zcache **cache; /* per zone: the rendered transfer, NULL until it lands */
};

static struct zref *zref_new(struct drdns_zoneset *set)
{
	struct zref *zr = calloc(1, sizeof(*zr));
	if (!zr)
		return NULL;
	zr->sorted = calloc(set->n ? set->n : 1, 1);
	zr->cache = calloc(set->n ? set->n : 1, sizeof(*zr->cache));
	if (!zr->sorted || !zr->cache) {
		free(zr->sorted);
		free(zr->cache);
		free(zr);
		return NULL;
	}
	zr->set = set;
	zr->refs = 1;
	return zr;
}

static struct zref *zref_get(struct zref *zr)
{
	zr->refs++;
	return zr;
}

static void zref_put(struct zref *zr)
{
	if (!zr || --zr->refs > 0)
		return;
	for (size_t i = 0; i < zr->set->n; i++)
		zcache_free(zr->cache[i]);
	drdns_zoneset_free(zr->set);
	free(zr->cache);
	free(zr->sorted);
	free(zr);
}

/* ------------------------------------------------------------ structures */

/* Where a transfer stands in its zone. */
struct xcursor {
	size_t next; /* next index in zone->rrs */
	bool soa_sent, done;
};

struct xfr {
	struct zref *zr; /* keeps the set alive */
	const struct drdns_zone *zone;
	size_t zi;         /* index of zone in zr->set */
	ldns_rr *question; /* owned clone */
	uint16_t id;
	bool ixfr;
	struct xcursor cur;
	size_t rrs, msgs, bytes, cached; /* cached: messages copied from the cache */
	struct drdns_tsig_key *key;      /* owned copy (survives a conf reload), or NULL */
	uint8_t mac[DRDNS_TSIG_MAC_MAX]; /* request MAC, then the previous message's MAC */
	size_t mac_len;
	uint64_t start_ns;
};

/* A thread-pool job rendering one zone's transfer into the cache. */
struct zbuild {
	uv_work_t work;
	struct drdns_server *srv;
	struct zref *zr; /* reference held until the after-work callback */
	size_t zi;
	struct zcache *out; /* written by the worker only */
	atomic_bool abort;  /* set on the loop: stop rendering */
	int rc;
	uint64_t ns;
	struct zbuild *prev, *next;
};

struct conn {
	struct drdns_server *srv;
	uv_tcp_t tcp;
	uv_timer_t timer;
	struct conn *prev, *next;
	int open_handles;
	bool closing, reading, peer_eof, busy;
	uint8_t *rbuf;
	size_t rlen, rcap;
	struct xfr *xfr;
	struct sockaddr_storage peer;
	char peer_text[INET6_ADDRSTRLEN + 8];
};

struct drdns_server {
	uv_loop_t *loop;
	const struct drdns_conf *conf;
	uv_udp_t udp;
	uv_tcp_t tcp;
	struct zref *cur;      /* the promoted set, or NULL */
	struct zref *drill;    /* a drill's zone, served only while cur is NULL */
	struct zref *handback; /* campus copies after a step-down, while cur is NULL */
	struct drdns_server_stats st;
	struct conn *conns;
	unsigned n_conns;
	struct zbuild *builds; /* cache jobs whose after-work callback has not run */
	unsigned pending;      /* handles, connections and cache jobs not yet released */
	bool closing;
	void (*close_cb)(void *arg);
	void *close_arg;
	uint8_t udp_buf[65536];
};

struct write_req {
	uv_write_t req;
	struct conn *c;
	size_t len;
	uint8_t data[];
};

struct udp_send_req {
	uv_udp_send_t req;
	uint8_t *data;
};

/* What to do with a request. */
enum proc_result {
	PROC_DROP,
	PROC_REPLY,
	PROC_XFR,
	PROC_CLOSE
};

/* A request being handled. */
struct reqctx {
	struct drdns_server *srv;
	struct conn *conn; /* TCP connection, or NULL for UDP */
	const uint8_t *wire;
	size_t len;
	const struct sockaddr *peer;
	const char *peer_text;
	ldns_pkt *q;
	const struct drdns_tsig_key *key; /* verified request key, or NULL */
	const ldns_rdf *mac;              /* request MAC (in q), or NULL */
	size_t udp_max;
};

static void srv_release(struct drdns_server *srv);

/* What answers queries: the promoted set, else the hand-back copies, else a
 * drill's zone, else nothing. */
static struct zref *serving(const struct drdns_server *srv)
{
	return srv->cur ? srv->cur : srv->handback ? srv->handback : srv->drill;
}
static void conn_close(struct conn *c);
static void conn_process(struct conn *c);
static void xfr_send_next(struct conn *c);

/* ------------------------------------------------------------ helpers */

static void sockaddr_text(const struct sockaddr *sa, char *out, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		uv_ip4_name(in, host, sizeof(host));
		port = ntohs(in->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		uv_ip6_name(in6, host, sizeof(host));
		port = ntohs(in6->sin6_port);
	}
	snprintf(out, len, "%s#%d", host, port);
}

/* An address as (family, bytes), with IPv4-mapped IPv6 folded to IPv4. */
struct addr {
	int family;
	uint8_t b[16];
};

static bool addr_from_sockaddr(const struct sockaddr *sa, struct addr *a)
{
	memset(a, 0, sizeof(*a));
	if (sa->sa_family == AF_INET) {
		a->family = AF_INET;
		memcpy(a->b, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		return true;
	}
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *in6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(in6)) {
			a->family = AF_INET;
			memcpy(a->b, &in6->s6_addr[12], 4);
		} else {
			a->family = AF_INET6;
			memcpy(a->b, in6, 16);
		}
		return true;
	}
	return false;
}

static bool addr_from_text(const char *text, struct addr *a)
{
	memset(a, 0, sizeof(*a));
	if (!text)
		return false;
	if (inet_pton(AF_INET, text, a->b) == 1) {
		a->family = AF_INET;
		return true;
	}
	struct in6_addr in6;
	if (inet_pton(AF_INET6, text, &in6) == 1) {
		if (IN6_IS_ADDR_V4MAPPED(&in6)) {
			a->family = AF_INET;
			memcpy(a->b, &in6.s6_addr[12], 4);
		} else {
			a->family = AF_INET6;
			memcpy(a->b, &in6, 16);
		}
		return true;
	}
	return false;
}

static bool addr_eq(const struct addr *x, const struct addr *y)
{
	return x->family == y->family && !memcmp(x->b, y->b, x->family == AF_INET ? 4 : 16);
}

/* Unsigned transfers: from a keyless secondary's address or allow_transfer. */
static bool unsigned_transfer_allowed(const struct drdns_conf *conf, const struct sockaddr *peer)
{
	struct addr p, a;
	if (!conf || !addr_from_sockaddr(peer, &p))
		return false;
	for (size_t i = 0; i < conf->n_secondaries; i++) {
		const struct drdns_secondary *s = &conf->secondaries[i];
		if (!s->key && !s->tsig_key_file && addr_from_text(s->address, &a) &&
		    addr_eq(&p, &a))
			return true;
	}
	for (size_t i = 0; i < conf->controller.n_allow_transfer; i++)
		if (addr_from_text(conf->controller.allow_transfer[i], &a) && addr_eq(&p, &a))
			return true;
	return false;
}

static bool dname_eq_text(const ldns_rdf *rdf, const char *text)
{
	ldns_rdf *other = NULL;
	if (!rdf || !text || ldns_str2rdf_dname(&other, text) != LDNS_STATUS_OK || !other)
		return false;
	bool eq = ldns_dname_compare(rdf, other) == 0;
	ldns_rdf_deep_free(other);
	return eq;
}

static const struct drdns_tsig_key *find_key(const struct drdns_conf *conf, const ldns_rr *tsig)
{
	if (!conf)
		return NULL;
	for (size_t i = 0; i < conf->n_secondaries; i++) {
		const struct drdns_tsig_key *k = conf->secondaries[i].key;
		if (k && dname_eq_text(ldns_rr_owner(tsig), k->name) &&
		    dname_eq_text(ldns_rr_rdf(tsig, 0), k->algorithm))
			return k;
	}
	return NULL;
}

static struct drdns_tsig_key *key_copy(const struct drdns_tsig_key *k)
{
	struct drdns_tsig_key *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->name = strdup(k->name);
	c->algorithm = strdup(k->algorithm);
	c->secret = strdup(k->secret);
	if (!c->name || !c->algorithm || !c->secret) {
		drdns_tsig_key_free(c);
		return NULL;
	}
	return c;
}

static bool tsig_time_ok(const ldns_rr *tsig)
{
	const ldns_rdf *t = ldns_rr_rdf(tsig, 1), *f = ldns_rr_rdf(tsig, 2);
	if (!t || !f || ldns_rdf_size(t) != 6 || ldns_rdf_size(f) != 2)
		return false;
	const uint8_t *d = ldns_rdf_data(t);
	uint64_t at = ((uint64_t)d[0] << 40) | ((uint64_t)d[1] << 32) | ((uint64_t)d[2] << 24) |
	              ((uint64_t)d[3] << 16) | ((uint64_t)d[4] << 8) | (uint64_t)d[5];
	uint64_t now = (uint64_t)time(NULL);
	uint64_t skew = now > at ? now - at : at - now;
	return skew <= ldns_rdf2native_int16(f);
}

static const char *tsig_error_name(uint16_t e)
{
	switch (e) {
	case TSIG_BADSIG: return "BADSIG";
	case TSIG_BADKEY: return "BADKEY";
	case TSIG_BADTIME: return "BADTIME";
	default: return "ERROR";
	}
}

/* An unsigned TSIG record carrying an error (RFC 8945 5.3.2). */
static ldns_rr *tsig_error_rr(const ldns_rr *qtsig, uint16_t orig_id, uint16_t error)
{
	ldns_rr *rr = ldns_rr_new();
	if (!rr)
		return NULL;
	ldns_rr_set_owner(rr, ldns_rdf_clone(ldns_rr_owner(qtsig)));
	ldns_rr_set_class(rr, LDNS_RR_CLASS_ANY);
	ldns_rr_set_type(rr, LDNS_RR_TYPE_TSIG);
	ldns_rr_set_ttl(rr, 0);
	uint8_t now48[6];
	uint64_t now = (uint64_t)time(NULL);
	for (int i = 5; i >= 0; i--, now >>= 8)
		now48[i] = (uint8_t)(now & 0xff);
	ldns_rr_push_rdf(rr, ldns_rdf_clone(ldns_rr_rdf(qtsig, 0)));
	if (error == TSIG_BADTIME)
		ldns_rr_push_rdf(rr, ldns_rdf_clone(ldns_rr_rdf(qtsig, 1)));
	else
		ldns_rr_push_rdf(rr, ldns_rdf_new_frm_data(LDNS_RDF_TYPE_TSIGTIME, 6, now48));
	ldns_rr_push_rdf(rr, ldns_rdf_clone(ldns_rr_rdf(qtsig, 2)));
	ldns_rr_push_rdf(rr, ldns_native2rdf_int16_data(0, NULL));
	ldns_rr_push_rdf(rr, ldns_native2rdf_int16(LDNS_RDF_TYPE_INT16, orig_id));
	ldns_rr_push_rdf(rr, ldns_native2rdf_int16(LDNS_RDF_TYPE_INT16, error));
	if (error == TSIG_BADTIME)
		ldns_rr_push_rdf(rr, ldns_native2rdf_int16_data(6, now48));
	else
		ldns_rr_push_rdf(rr, ldns_native2rdf_int16_data(0, NULL));
	for (size_t i = 0; i < 7; i++) {
		if (!ldns_rr_rdf(rr, i)) {
			ldns_rr_free(rr);
			return NULL;
		}
	}
	return rr;
}

/* ------------------------------------------------------------ responses */

static ldns_pkt *resp_new(const ldns_pkt *q, ldns_pkt_rcode rcode)
{
	ldns_pkt *r = ldns_pkt_new();
	if (!r)
		return NULL;
	ldns_pkt_set_id(r, ldns_pkt_id(q));
	ldns_pkt_set_qr(r, true);
	ldns_pkt_set_opcode(r, ldns_pkt_get_opcode(q));
	ldns_pkt_set_rd(r, ldns_pkt_rd(q));
	ldns_pkt_set_cd(r, ldns_pkt_cd(q));
	ldns_pkt_set_rcode(r, (uint8_t)rcode);
	if (ldns_pkt_qdcount(q) == 1) {
		ldns_rr *qr = ldns_rr_clone(ldns_rr_list_rr(ldns_pkt_question(q), 0));
		if (!qr || !ldns_pkt_push_rr(r, LDNS_SECTION_QUESTION, qr)) {
			ldns_rr_free(qr);
			ldns_pkt_free(r);
			return NULL;
		}
	}
	if (ldns_pkt_edns(q))
		ldns_pkt_set_edns_udp_size(r, UDP_MAX_EDNS);
	return r;
}

static void clear_section(ldns_pkt *r, ldns_pkt_section s)
{
	ldns_rr_list *l = s == LDNS_SECTION_ANSWER      ? ldns_pkt_answer(r)
	                  : s == LDNS_SECTION_AUTHORITY ? ldns_pkt_authority(r)
	                                                : ldns_pkt_additional(r);
	for (size_t i = 0; i < ldns_rr_list_rr_count(l); i++)
		ldns_rr_free(ldns_rr_list_rr(l, i));
	ldns_rr_list_set_rr_count(l, 0);
	ldns_pkt_set_section_count(r, s, 0);
}

/* Sign (when the request was signed), serialize, truncate when too big for
 * UDP (or, for a pathological RRset, for one TCP message).  Frees r. */
static int finish(struct reqctx *rq, ldns_pkt *r, uint8_t **out, size_t *out_len)
{
	if (!r)
		return DRDNS_ENOMEM;
	size_t max = rq->conn ? 65535 : rq->udp_max;
	for (int attempt = 0; attempt < 2; attempt++) {
		if (rq->key && drdns_tsig_sign(r, rq->key, rq->mac) < 0) {
			ldns_pkt_free(r);
			return DRDNS_ETSIG;
		}
		uint8_t *wire = NULL;
		size_t len = 0;
		if (ldns_pkt2wire(&wire, r, &len) != LDNS_STATUS_OK || !wire) {
			ldns_pkt_free(r);
			return DRDNS_ENOMEM;
		}
		if (len <= max || attempt == 1) {
			ldns_pkt_free(r);
			*out = wire;
			*out_len = len;
			return 0;
		}
		/* too big: empty answer with TC set */
		free(wire);
		clear_section(r, LDNS_SECTION_ANSWER);
		clear_section(r, LDNS_SECTION_AUTHORITY);
		clear_section(r, LDNS_SECTION_ADDITIONAL);
		ldns_pkt_set_tc(r, true);
	}
	ldns_pkt_free(r);
	return DRDNS_EPROTO;
}

static int reply_rcode(struct reqctx *rq, ldns_pkt_rcode rcode, uint8_t **out, size_t *len)
{
	if (rcode == LDNS_RCODE_REFUSED)
		rq->srv->st.refused++;
	return finish(rq, resp_new(rq->q, rcode), out, len);
}

/* NOTAUTH with an unsigned TSIG error record. */
static int reply_tsig_error(struct reqctx *rq, uint16_t error, uint8_t **out, size_t *out_len)
{
	ldns_pkt *r = resp_new(rq->q, LDNS_RCODE_NOTAUTH);
	if (!r)
		return DRDNS_ENOMEM;
	const ldns_rr *qt = ldns_pkt_tsig(rq->q);
	ldns_rr *t = tsig_error_rr(qt, ldns_rdf2native_int16(ldns_rr_rdf(qt, 4)), error);
	if (!t) {
		ldns_pkt_free(r);
		return DRDNS_ENOMEM;
	}
	ldns_pkt_set_tsig(r, t);
	rq->key = NULL; /* never signed */
	return finish(rq, r, out, out_len);
}

/* ------------------------------------------------------------ lookups */

/* The served zone containing name (longest match), or -1. */
static ssize_t zone_for_name(const struct drdns_zoneset *set, const ldns_rdf *name, bool exact)
{
	ssize_t best = -1;
	size_t best_labels = 0;
	for (size_t i = 0; i < set->n; i++) {
		const ldns_rdf *o = set->zones[i]->origin;
		bool match = ldns_dname_compare(name, o) == 0 ||
		             (!exact && ldns_dname_is_subdomain(name, o));
		if (match && (best < 0 || ldns_dname_label_count(o) > best_labels)) {
			best = (ssize_t)i;
			best_labels = ldns_dname_label_count(o);
		}
	}
	return best;
}

static bool zone_sorted(struct zref *zr, size_t zi)
{
	if (zr->sorted[zi] == SORT_UNKNOWN) {
		const ldns_rr_list *l = zr->set->zones[zi]->rrs;
		size_t n = ldns_rr_list_rr_count(l);
		zr->sorted[zi] = SORT_YES;
		for (size_t i = 1; i < n; i++) {
			if (ldns_dname_compare(ldns_rr_owner(ldns_rr_list_rr(l, i - 1)),
			                       ldns_rr_owner(ldns_rr_list_rr(l, i))) > 0) {
				zr->sorted[zi] = SORT_NO;
				break;
			}
		}
	}
	return zr->sorted[zi] == SORT_YES;
}

/* Push a clone of every record at name matching type (ANY: all) onto r's answer;
 * sets *exists when the name owns records or has descendants. */
static size_t answer_from_zone(struct zref *zr, size_t zi, const ldns_rdf *name, ldns_rr_type type,
                               ldns_pkt *r, bool *exists)
{
	const struct drdns_zone *z = zr->set->zones[zi];
	const ldns_rr_list *l = z->rrs;
	size_t n = ldns_rr_list_rr_count(l), added = 0;
	bool apex = ldns_dname_compare(name, z->origin) == 0;
	*exists = apex;
	if (apex && (type == LDNS_RR_TYPE_SOA || type == LDNS_RR_TYPE_ANY)) {
		ldns_rr *c = ldns_rr_clone(z->soa);
		if (c && ldns_pkt_push_rr(r, LDNS_SECTION_ANSWER, c))
			added++;
		else
			ldns_rr_free(c);
	}
	size_t lo = 0, hi = n;
	bool sorted = zone_sorted(zr, zi);
	if (sorted) {
		while (lo < hi) { /* first owner >= name */
			size_t mid = lo + (hi - lo) / 2;
			if (ldns_dname_compare(ldns_rr_owner(ldns_rr_list_rr(l, mid)), name) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		hi = n;
	}
	const ldns_rr *cname = NULL;
	for (size_t i = lo; i < hi; i++) {
		const ldns_rr *rr = ldns_rr_list_rr(l, i);
		if (ldns_dname_compare(ldns_rr_owner(rr), name) != 0) {
			if (sorted)
				break;
			continue;
		}
		*exists = true;
		ldns_rr_type t = ldns_rr_get_type(rr);
		if (t == type || type == LDNS_RR_TYPE_ANY) {
			ldns_rr *c = ldns_rr_clone(rr);
			if (c && ldns_pkt_push_rr(r, LDNS_SECTION_ANSWER, c))
				added++;
			else
				ldns_rr_free(c);
		} else if (t == LDNS_RR_TYPE_CNAME) {
			cname = rr;
		}
	}
	/* A name that owns nothing still exists (NODATA, not NXDOMAIN) when it has
	 * descendants: an empty non-terminal.  Only then is the (allocating)
	 * subdomain test needed; in canonical order the first descendant sits at lo. */
	size_t from = sorted ? lo : 0, to = sorted && lo < n ? lo + 1 : n;
	for (size_t i = from; !*exists && i < to; i++)
		if (ldns_dname_is_subdomain(ldns_rr_owner(ldns_rr_list_rr(l, i)), name))
			*exists = true;
	if (!added && cname) {
		ldns_rr *c = ldns_rr_clone(cname);
		if (c && ldns_pkt_push_rr(r, LDNS_SECTION_ANSWER, c))
			added++;
		else
			ldns_rr_free(c);
	}
	return added;
}

/* SOA for a negative answer: TTL is min(SOA TTL, MINIMUM) (RFC 2308 3). */
static void push_negative_soa(ldns_pkt *r, const struct drdns_zone *z)
{
	ldns_rr *soa = ldns_rr_clone(z->soa);
	if (!soa)
		return;
	const ldns_rdf *min = ldns_rr_rdf(soa, 6);
	if (min && ldns_rdf_size(min) == 4 && ldns_rdf2native_int32(min) < ldns_rr_ttl(soa))
		ldns_rr_set_ttl(soa, ldns_rdf2native_int32(min));
	if (!ldns_pkt_push_rr(r, LDNS_SECTION_AUTHORITY, soa))
		ldns_rr_free(soa);
}

static int answer_query(struct reqctx *rq, const ldns_rr *question, uint8_t **out, size_t *len)
{
	struct zref *zr = serving(rq->srv);
	const ldns_rdf *name = ldns_rr_owner(question);
	ssize_t zi = zone_for_name(zr->set, name, false);
	if (zi < 0)
		return reply_rcode(rq, LDNS_RCODE_REFUSED, out, len);
	const struct drdns_zone *z = zr->set->zones[zi];
	ldns_pkt *r = resp_new(rq->q, LDNS_RCODE_NOERROR);
	if (!r)
		return DRDNS_ENOMEM;
	ldns_pkt_set_aa(r, true);
	bool exists = false;
	if (!answer_from_zone(zr, (size_t)zi, name, ldns_rr_get_type(question), r, &exists)) {
		if (!exists)
			ldns_pkt_set_rcode(r, LDNS_RCODE_NXDOMAIN);
		push_negative_soa(r, z);
	}
	return finish(rq, r, out, len);
}

/* ------------------------------------------------------------ transfers */

static void xfr_free(struct xfr *x)
{
	if (!x)
		return;
	zref_put(x->zr);
	ldns_rr_free(x->question);
	drdns_tsig_key_free(x->key);
	OPENSSL_cleanse(x->mac, sizeof(x->mac));
	free(x);
}

static const char *xfr_type(const struct xfr *x)
{
	return x->ixfr ? "IXFR" : "AXFR";
}

/* End the connection's transfer (logs it, drops its set reference). */
static void xfr_end(struct conn *c, const char *status)
{
	struct xfr *x = c->xfr;
	if (!x)
		return;
	c->xfr = NULL;
	struct drdns_server *srv = c->srv;
	if (srv->st.active_transfers)
		srv->st.active_transfers--;
	double secs = (double)(uv_hrtime() - x->start_ns) / 1e9;
	drdns_log(strcmp(status, "ok") ? DRDNS_LOG_WARNING : DRDNS_LOG_NOTICE, "xfr",
	          "xfr end type=%s zone=%s serial=%u peer=%s status=%s rrs=%zu messages=%zu "
	          "cached=%zu bytes=%zu seconds=%.3f tsig=%s",
	          xfr_type(x), x->zone->name, drdns_zone_serial(x->zone), c->peer_text, status,
	          x->rrs, x->msgs, x->cached, x->bytes, secs, x->key ? "yes" : "no");
	xfr_free(x);
}

static int xfr_start(struct reqctx *rq, struct zref *zr, size_t zi, bool ixfr)
{
	struct conn *c = rq->conn;
	const struct drdns_zone *z = zr->set->zones[zi];
	struct xfr *x = calloc(1, sizeof(*x));
	if (!x)
		return DRDNS_ENOMEM;
	x->question = ldns_rr_clone(ldns_rr_list_rr(ldns_pkt_question(rq->q), 0));
	x->id = ldns_pkt_id(rq->q);
	x->ixfr = ixfr;
	x->zone = z;
	x->zi = zi;
	x->start_ns = uv_hrtime();
	if (!x->question) {
		xfr_free(x);
		return DRDNS_ENOMEM;
	}
	if (rq->key) {
		/* the request MAC (INT16_DATA: length, then the MAC), already verified */
		size_t sz = rq->mac ? ldns_rdf_size(rq->mac) : 0;
		const uint8_t *d = sz ? ldns_rdf_data(rq->mac) : NULL;
		if (sz < 2 || (size_t)((d[0] << 8) | d[1]) != sz - 2 || sz - 2 > sizeof(x->mac)) {
			xfr_free(x);
			return DRDNS_ETSIG;
		}
		x->mac_len = sz - 2;
		memcpy(x->mac, d + 2, x->mac_len);
		if (!(x->key = key_copy(rq->key))) {
			xfr_free(x);
			return DRDNS_ENOMEM;
		}
	}
	x->zr = zref_get(zr);
	c->xfr = x;
	rq->srv->st.axfr++;
	rq->srv->st.active_transfers++;
	drdns_log(DRDNS_LOG_NOTICE, "xfr",
	          "xfr start type=%s zone=%s serial=%u peer=%s rrs=%zu tsig=%s%s%s", xfr_type(x),
	          z->name, drdns_zone_serial(z), c->peer_text, drdns_zone_rr_count(z) + 1,
	          x->key ? "yes" : "no", x->key ? " key=" : "", x->key ? x->key->name : "");
	return 0;
}

/* Build the (unsigned) message of z's transfer at *cur: SOA first, records up to
 * XFR_MSG_TARGET uncompressed bytes, the closing SOA when it fits; the first
 * message carries question.  Advances *cur and sets *count (answer records) on
 * success.  Runs on the loop thread (per-message path) and in the thread pool
 * (cache): it only reads z. */
static int xfr_build(const struct drdns_zone *z, const ldns_rr *question, uint16_t id,
                     struct xcursor *cur, uint8_t **out, size_t *out_len, size_t *count)
{
	ldns_pkt *p = ldns_pkt_new();
	if (!p)
		return DRDNS_ENOMEM;
	struct xcursor c = *cur;
	int ret = 0;
	ldns_pkt_set_id(p, id);
	ldns_pkt_set_qr(p, true);
	ldns_pkt_set_aa(p, true);
	ldns_pkt_set_opcode(p, LDNS_PACKET_QUERY);
	ldns_pkt_set_rcode(p, LDNS_RCODE_NOERROR);
	if (!c.soa_sent) {
		ldns_rr *q = ldns_rr_clone(question);
		if (!q || !ldns_pkt_push_rr(p, LDNS_SECTION_QUESTION, q)) {
			ldns_rr_free(q);
			ldns_pkt_free(p);
			return DRDNS_ENOMEM;
		}
	}
	/* The zone's records are borrowed, not cloned: they are unhooked from the
	 * packet before it is freed. */
	ldns_rr_list *an = ldns_pkt_answer(p);
	const ldns_rr_list *rrs = z->rrs;
	size_t n = ldns_rr_list_rr_count(rrs), size = 0;
	size_t soa_size = ldns_rr_uncompressed_size(z->soa);
	bool ok = true;
	if (!c.soa_sent) {
		ok = ldns_rr_list_push_rr(an, z->soa);
		size += soa_size;
		c.soa_sent = true;
	}
	while (ok && c.next < n) {
		ldns_rr *rr = ldns_rr_list_rr(rrs, c.next);
		size_t sz = ldns_rr_uncompressed_size(rr);
		if (ldns_rr_list_rr_count(an) > 0 && size + sz > XFR_MSG_TARGET)
			break;
		ok = ldns_rr_list_push_rr(an, rr);
		size += sz;
		c.next++;
	}
	if (ok && c.next == n &&
	    (ldns_rr_list_rr_count(an) == 0 || size + soa_size <= XFR_MSG_TARGET)) {
		ok = ldns_rr_list_push_rr(an, z->soa);
		c.done = true;
	}
	size_t nan = ldns_rr_list_rr_count(an);
	ldns_pkt_set_ancount(p, (uint16_t)nan);
	uint8_t *wire = NULL;
	size_t len = 0;
	if (!ok || nan > 65535)
		ret = ok ? DRDNS_EPROTO : DRDNS_ENOMEM;
	else if (ldns_pkt2wire(&wire, p, &len) != LDNS_STATUS_OK || !wire)
		ret = DRDNS_ENOMEM;
	if (ret == 0 && len > 65535) {
		free(wire);
		ret = DRDNS_EPROTO;
	}
	ldns_rr_list_set_rr_count(an, 0); /* unhook the borrowed records */
	ldns_pkt_free(p);
	if (ret < 0)
		return ret;
	*cur = c;
	*count = nan;
	*out = wire;
	*out_len = len;
	return 0;
}

/* Render z's whole transfer (id 0, question "<origin> AXFR IN") into a cache
 * entry.  Runs in the thread pool; stops early (returning 1) when *abort is set. */
static int zcache_render(const struct drdns_zone *z, const atomic_bool *abort, struct zcache **out)
{
	*out = NULL;
	struct zcache *zc = calloc(1, sizeof(*zc));
	ldns_rr *q = ldns_rr_new();
	ldns_rdf *qname = ldns_rdf_clone(z->origin);
	if (!zc || !q || !qname) {
		free(zc);
		ldns_rr_free(q);
		ldns_rdf_deep_free(qname);
		return DRDNS_ENOMEM;
	}
	ldns_rr_set_owner(q, qname);
	ldns_rr_set_question(q, true);
	ldns_rr_set_type(q, LDNS_RR_TYPE_AXFR);
	ldns_rr_set_class(q, LDNS_RR_CLASS_IN);
	zc->qname_len = ldns_rdf_size(qname);
	struct xcursor cur = {0};
	size_t cap = 0, msgs_cap = 0;
	int ret = 0;
	while (!cur.done) {
		if (atomic_load_explicit(abort, memory_order_relaxed)) {
			ret = 1;
			break;
		}
		uint8_t *wire = NULL;
		size_t len = 0, count = 0, start = cur.next;
		ret = xfr_build(z, q, 0, &cur, &wire, &len, &count);
		if (ret < 0)
			break;
		if (zc->n == msgs_cap) {
			size_t nc = msgs_cap ? msgs_cap * 2 : 64;
			struct xmsg *g = realloc(zc->msgs, nc * sizeof(*g));
			if (!g) {
				free(wire);
				ret = DRDNS_ENOMEM;
				break;
			}
			zc->msgs = g;
			msgs_cap = nc;
		}
		if (zc->bytes + len > cap) {
			size_t nc = cap ? cap : 65536;
			while (nc < zc->bytes + len)
				nc *= 2;
			uint8_t *g = realloc(zc->wire, nc);
			if (!g) {
				free(wire);
				ret = DRDNS_ENOMEM;
				break;
			}
			zc->wire = g;
			cap = nc;
		}
		memcpy(zc->wire + zc->bytes, wire, len);
		free(wire);
		zc->msgs[zc->n++] = (struct xmsg){.off = zc->bytes,
		                                  .len = len,
		                                  .start = start,
		                                  .end = cur.next,
		                                  .count = count,
		                                  .done = cur.done};
		zc->bytes += len;
	}
	ldns_rr_free(q);
	if (ret != 0) {
		zcache_free(zc);
		return ret;
	}
	/* give back what the doubling left unused */
	uint8_t *fit = realloc(zc->wire, zc->bytes ? zc->bytes : 1);
	if (fit)
		zc->wire = fit;
	*out = zc;
	return 0;
}

static void zbuild_work(uv_work_t *req)
{
	struct zbuild *b = req->data;
	uint64_t t0 = uv_hrtime();
	b->rc = zcache_render(b->zr->set->zones[b->zi], &b->abort, &b->out);
	b->ns = uv_hrtime() - t0;
}

static void zbuild_done(uv_work_t *req, int status)
{
	struct zbuild *b = req->data;
	struct drdns_server *srv = b->srv;
	if (b->prev)
		b->prev->next = b->next;
	else
		srv->builds = b->next;
	if (b->next)
		b->next->prev = b->prev;
	const struct drdns_zone *z = b->zr->set->zones[b->zi];
	if (status == 0 && b->rc == 0 && b->out && !b->zr->cache[b->zi]) {
		b->zr->cache[b->zi] = b->out;
		b->out = NULL;
		if (b->zr == serving(srv))
			drdns_log(
			    DRDNS_LOG_INFO, "xfr",
			    "xfr cache ready zone=%s serial=%u messages=%zu bytes=%zu seconds=%.3f",
			    z->name, drdns_zone_serial(z), b->zr->cache[b->zi]->n,
			    b->zr->cache[b->zi]->bytes, (double)b->ns / 1e9);
	} else if (status == 0 && b->rc < 0) {
		drdns_log(DRDNS_LOG_WARNING, "xfr",
		          "xfr cache failed zone=%s: %s (transfers build each message instead)",
		          z->name, drdns_strerror(b->rc));
	}
	zcache_free(b->out);
	zref_put(b->zr);
	free(b);
	srv_release(srv);
}

/* Render every zone of zr in the thread pool, one job per zone.  Failures only
 * cost speed: transfers fall back to building each message. */
static void cache_start(struct drdns_server *srv, struct zref *zr)
{
	for (size_t i = 0; i < zr->set->n; i++) {
		struct zbuild *b = calloc(1, sizeof(*b));
		if (!b) {
			drdns_log(DRDNS_LOG_WARNING, "xfr", "xfr cache: out of memory");
			return;
		}
		b->srv = srv;
		b->zr = zref_get(zr);
		b->zi = i;
		b->work.data = b;
		atomic_init(&b->abort, false);
		int rc = uv_queue_work(srv->loop, &b->work, zbuild_work, zbuild_done);
		if (rc < 0) {
			drdns_log(DRDNS_LOG_WARNING, "xfr", "xfr cache: cannot queue work: %s",
			          uv_strerror(rc));
			zref_put(b->zr);
			free(b);
			return;
		}
		b->next = srv->builds;
		if (srv->builds)
			srv->builds->prev = b;
		srv->builds = b;
		srv->pending++;
	}
}

/* Stop the cache jobs of zr (NULL: all): queued ones are cancelled, running ones
 * told to stop; their after-work callbacks still run (later, on the loop). */
static void cache_stop(struct drdns_server *srv, const struct zref *zr)
{
	for (struct zbuild *b = srv->builds; b; b = b->next) {
		if (zr && b->zr != zr)
			continue;
		atomic_store_explicit(&b->abort, true, memory_order_relaxed);
		(void)uv_cancel((uv_req_t *)&b->work);
	}
}

static int transfer(struct reqctx *rq, const ldns_rr *question, bool ixfr, uint8_t **out,
                    size_t *len, enum proc_result *res)
{
	struct drdns_server *srv = rq->srv;
	struct zref *zr = serving(srv);
	const char *type = ixfr ? "IXFR" : "AXFR";
	ssize_t zi = zone_for_name(zr->set, ldns_rr_owner(question), true);
	if (zi < 0) {
		srv->st.axfr_refused++;
		char *name = ldns_rdf2str(ldns_rr_owner(question));
		drdns_log(DRDNS_LOG_NOTICE, "xfr",
		          "xfr refused type=%s zone=%s peer=%s reason=not-served", type,
		          name ? name : "?", rq->peer_text);
		free(name);
		return reply_rcode(rq, LDNS_RCODE_REFUSED, out, len);
	}
	const struct drdns_zone *z = zr->set->zones[zi];
	if (!rq->key && !unsigned_transfer_allowed(srv->conf, rq->peer)) {
		srv->st.axfr_refused++;
		drdns_log(DRDNS_LOG_NOTICE, "xfr",
		          "xfr refused type=%s zone=%s peer=%s reason=not-allowed tsig=no", type,
		          z->name, rq->peer_text);
		return reply_rcode(rq, LDNS_RCODE_REFUSED, out, len);
	}
	bool soa_only = false;
	if (ixfr) {
		/* the client's serial is in the authority section (RFC 1995 3) */
		const ldns_rr_list *auth = ldns_pkt_authority(rq->q);
		const ldns_rr *csoa = NULL;
		for (size_t i = 0; i < ldns_rr_list_rr_count(auth) && !csoa; i++) {
			const ldns_rr *rr = ldns_rr_list_rr(auth, i);
			if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_SOA && ldns_rr_rdf(rr, 2) &&
			    ldns_rdf_size(ldns_rr_rdf(rr, 2)) == 4)
				csoa = rr;
		}
		if (!csoa)
			return reply_rcode(rq, LDNS_RCODE_FORMERR, out, len);
		uint32_t cserial = ldns_rdf2native_int32(ldns_rr_rdf(csoa, 2));
		if (!rq->conn || !drdns_serial_gt(drdns_zone_serial(z), cserial))
			soa_only = true; /* UDP ("use TCP"), or the client is up to date */
	} else if (!rq->conn) {
		return reply_rcode(rq, LDNS_RCODE_FORMERR, out, len); /* as BIND */
	}
	if (soa_only) {
		ldns_pkt *r = resp_new(rq->q, LDNS_RCODE_NOERROR);
		if (!r)
			return DRDNS_ENOMEM;
		ldns_pkt_set_aa(r, true);
		ldns_rr *soa = ldns_rr_clone(z->soa);
		if (!soa || !ldns_pkt_push_rr(r, LDNS_SECTION_ANSWER, soa)) {
			ldns_rr_free(soa);
			ldns_pkt_free(r);
			return DRDNS_ENOMEM;
		}
		drdns_log(DRDNS_LOG_INFO, "xfr", "ixfr soa-only zone=%s serial=%u peer=%s via=%s",
		          z->name, drdns_zone_serial(z), rq->peer_text, rq->conn ? "tcp" : "udp");
		return finish(rq, r, out, len);
	}
	int ret = xfr_start(rq, zr, (size_t)zi, ixfr);
	if (ret == 0)
		*res = PROC_XFR;
	return ret;
}

/* ------------------------------------------------------------ requests */

/* Skip a possibly compressed name in wire; the position after it, or 0. */
static size_t skip_name(const uint8_t *w, size_t len, size_t pos)
{
	while (pos < len) {
		uint8_t l = w[pos];
		if ((l & 0xc0) == 0xc0)
			return pos + 2 <= len ? pos + 2 : 0;
		if (l & 0xc0)
			return 0;
		pos += 1 + (size_t)l;
		if (l == 0)
			return pos <= len ? pos : 0;
	}
	return 0;
}

/* A TSIG record must be the last record of the message (RFC 8945 5.1).  Besides
 * being malformed, a message with two of them makes ldns_wire2pkt() lose the
 * first (a leak a single datagram could trigger), so such messages are dropped
 * before parsing.  Messages that are malformed otherwise are left to ldns. */
static bool tsig_placement_ok(const uint8_t *w, size_t len)
{
	size_t pos = LDNS_HEADER_SIZE;
	size_t qd = LDNS_QDCOUNT(w);
	size_t total = (size_t)LDNS_ANCOUNT(w) + LDNS_NSCOUNT(w) + LDNS_ARCOUNT(w);
	for (size_t i = 0; i < qd; i++) {
		pos = skip_name(w, len, pos);
		if (!pos || pos + 4 > len)
			return true;
		pos += 4;
	}
	for (size_t i = 0; i < total; i++) {
		pos = skip_name(w, len, pos);
		if (!pos || pos + 10 > len)
			return true;
		uint16_t type = (uint16_t)((w[pos] << 8) | w[pos + 1]);
		size_t rdlen = ((size_t)w[pos + 8] << 8) | w[pos + 9];
		if (type == LDNS_RR_TYPE_TSIG && i + 1 != total)
			return false;
		pos += 10 + rdlen;
	}
	return true;
}

static enum proc_result process(struct drdns_server *srv, struct conn *conn, const uint8_t *wire,
                                size_t len, const struct sockaddr *peer, const char *peer_text,
                                uint8_t **out, size_t *out_len)
{
	srv->st.queries++;
	if (len < LDNS_HEADER_SIZE || LDNS_QR_WIRE(wire))
		return conn ? PROC_CLOSE : PROC_DROP; /* garbage, or a response: never answer */
	ldns_pkt *q = NULL;
	if (!tsig_placement_ok(wire, len) || ldns_wire2pkt(&q, wire, len) != LDNS_STATUS_OK || !q) {
		drdns_log(DRDNS_LOG_DEBUG, "server", "dropped unparseable message peer=%s len=%zu",
		          peer_text, len);
		return conn ? PROC_CLOSE : PROC_DROP;
	}
	struct reqctx rq = {
	    .srv = srv,
	    .conn = conn,
	    .wire = wire,
	    .len = len,
	    .peer = peer,
	    .peer_text = peer_text,
	    .q = q,
	    .udp_max = UDP_MAX_PLAIN,
	};
	if (ldns_pkt_edns(q)) {
		size_t adv = ldns_pkt_edns_udp_size(q);
		rq.udp_max = adv < UDP_MAX_PLAIN  ? UDP_MAX_PLAIN
		             : adv > UDP_MAX_EDNS ? UDP_MAX_EDNS
		                                  : adv;
	}
	enum proc_result res = PROC_REPLY;
	int ret;

	/* TSIG first: a signed request gets a signed answer, whatever it is */
	const ldns_rr *tsig = ldns_pkt_tsig(q);
	if (tsig) {
		if (ldns_rr_rd_count(tsig) < 7) {
			ret = reply_rcode(&rq, LDNS_RCODE_FORMERR, out, out_len);
			goto done;
		}
		const struct drdns_tsig_key *key = find_key(srv->conf, tsig);
		uint16_t err = 0;
		if (!key) {
			err = TSIG_BADKEY;
		} else if (!tsig_time_ok(tsig)) {
			/* MAC first, then time (RFC 8945 5.2) */
			bool mac_ok =
			    ldns_pkt_tsig_verify(q, wire, len, key->name, key->secret, NULL);
			err = mac_ok ? TSIG_BADTIME : TSIG_BADSIG;
		} else if (drdns_tsig_verify(q, wire, len, key, NULL) < 0) {
			err = TSIG_BADSIG;
		}
		if (err) {
			srv->st.tsig_failed++;
			char *kname = ldns_rdf2str(ldns_rr_owner(tsig));
			drdns_log(DRDNS_LOG_WARNING, "server",
			          "tsig failure peer=%s key=%s error=%s", peer_text,
			          kname ? kname : "?", tsig_error_name(err));
			free(kname);
			ret = reply_tsig_error(&rq, err, out, out_len);
			goto done;
		}
		rq.key = key;
		rq.mac = ldns_rr_rdf(tsig, 3);
	}

	if (!serving(srv)) { /* not promoted: REFUSED, at once, for everything */
		if (ldns_pkt_get_opcode(q) == LDNS_PACKET_NOTIFY)
			srv->st.notify_received++;
		ret = reply_rcode(&rq, LDNS_RCODE_REFUSED, out, out_len);
		goto done;
	}
	ldns_pkt_opcode op = ldns_pkt_get_opcode(q);
	if (op != LDNS_PACKET_QUERY && op != LDNS_PACKET_NOTIFY) {
		ret = reply_rcode(&rq, LDNS_RCODE_NOTIMPL, out, out_len);
		goto done;
	}
	if (ldns_pkt_qdcount(q) != 1) {
		ret = reply_rcode(&rq, LDNS_RCODE_FORMERR, out, out_len);
		goto done;
	}
	if (ldns_pkt_edns(q) && ldns_pkt_edns_version(q) > 0) {
		ldns_pkt *r = resp_new(q, LDNS_RCODE_NOERROR); /* BADVERS (RFC 6891 6.1.3) */
		if (r)
			ldns_pkt_set_edns_extended_rcode(r, 1);
		ret = finish(&rq, r, out, out_len);
		goto done;
	}
	const ldns_rr *question = ldns_rr_list_rr(ldns_pkt_question(q), 0);
	if (ldns_rr_get_class(question) != LDNS_RR_CLASS_IN) {
		ret = reply_rcode(&rq, LDNS_RCODE_REFUSED, out, out_len);
		goto done;
	}
	if (op == LDNS_PACKET_NOTIFY) {
		srv->st.notify_received++;
		char *name = ldns_rdf2str(ldns_rr_owner(question));
		drdns_log(DRDNS_LOG_INFO, "server", "notify received zone=%s peer=%s tsig=%s",
		          name ? name : "?", peer_text, rq.key ? "yes" : "no");
		free(name);
		ldns_pkt *r = resp_new(q, LDNS_RCODE_NOERROR);
		if (r)
			ldns_pkt_set_aa(r, true);
		ret = finish(&rq, r, out, out_len);
		goto done;
	}
	ldns_rr_type qtype = ldns_rr_get_type(question);
	if (qtype == LDNS_RR_TYPE_AXFR || qtype == LDNS_RR_TYPE_IXFR)
		ret = transfer(&rq, question, qtype == LDNS_RR_TYPE_IXFR, out, out_len, &res);
	else
		ret = answer_query(&rq, question, out, out_len);

done:
	ldns_pkt_free(q);
	if (ret < 0) {
		drdns_log(DRDNS_LOG_ERR, "server", "cannot answer peer=%s: %s", peer_text,
		          drdns_strerror(ret));
		return conn ? PROC_CLOSE : PROC_DROP;
	}
	return res;
}

/* ------------------------------------------------------------ UDP */

static void on_udp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)suggested;
	struct drdns_server *srv = h->data;
	buf->base = (char *)srv->udp_buf;
	buf->len = sizeof(srv->udp_buf);
}

static void on_udp_sent(uv_udp_send_t *req, int status)
{
	struct udp_send_req *s = (struct udp_send_req *)req;
	if (status < 0 && status != UV_ECANCELED)
		drdns_log(DRDNS_LOG_DEBUG, "server", "udp send failed: %s", uv_strerror(status));
	free(s->data);
	free(s);
}

static void on_udp_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf,
                        const struct sockaddr *addr, unsigned flags)
{
	struct drdns_server *srv = h->data;
	if (nread < 0)
		drdns_log(DRDNS_LOG_DEBUG, "server", "udp receive error: %s",
		          uv_strerror((int)nread));
	if (nread <= 0 || !addr || (flags & UV_UDP_PARTIAL) || srv->closing)
		return;
	char peer[INET6_ADDRSTRLEN + 8];
	sockaddr_text(addr, peer, sizeof(peer));
	uint8_t *out = NULL;
	size_t out_len = 0;
	if (process(srv, NULL, (const uint8_t *)buf->base, (size_t)nread, addr, peer, &out,
	            &out_len) != PROC_REPLY)
		return;
	uv_buf_t b = uv_buf_init((char *)out, (unsigned)out_len);
	if (uv_udp_try_send(&srv->udp, &b, 1, addr) == (int)out_len) {
		free(out);
		return;
	}
	struct udp_send_req *s = malloc(sizeof(*s));
	if (!s) {
		free(out);
		return;
	}
	s->data = out;
	int rc = uv_udp_send(&s->req, &srv->udp, &b, 1, addr, on_udp_sent);
	if (rc < 0) {
		drdns_log(DRDNS_LOG_DEBUG, "server", "udp send to %s failed: %s", peer,
		          uv_strerror(rc));
		free(out);
		free(s);
	}
}

/* ------------------------------------------------------------ TCP */

static void conn_touch(struct conn *c);

static void on_conn_closed(uv_handle_t *h)
{
	struct conn *c = h->data;
	if (--c->open_handles > 0)
		return;
	struct drdns_server *srv = c->srv;
	if (c->prev)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	srv->n_conns--;
	free(c->rbuf);
	free(c);
	srv_release(srv);
}

static void conn_close(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	xfr_end(c, "aborted");
	uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
	uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

static void on_idle(uv_timer_t *t)
{
	struct conn *c = t->data;
	drdns_log(DRDNS_LOG_INFO, "server", "tcp idle timeout peer=%s", c->peer_text);
	conn_close(c);
}

static void conn_touch(struct conn *c)
{
	if (!c->closing)
		uv_timer_start(&c->timer, on_idle, TCP_IDLE_MS, 0);
}

static void on_written(uv_write_t *req, int status)
{
	struct write_req *w = (struct write_req *)req;
	struct conn *c = w->c;
	free(w);
	c->busy = false;
	if (c->closing)
		return;
	if (status < 0) {
		drdns_log(DRDNS_LOG_INFO, "server", "tcp write failed peer=%s: %s", c->peer_text,
		          uv_strerror(status));
		conn_close(c);
		return;
	}
	conn_touch(c);
	if (c->xfr) {
		if (!c->xfr->cur.done) {
			xfr_send_next(c);
			return;
		}
		xfr_end(c, "ok");
	}
	conn_process(c);
}

/* A write request with room for a message of up to room bytes at data + 2. */
static struct write_req *wreq_new(struct conn *c, size_t room)
{
	struct write_req *w = malloc(sizeof(*w) + 2 + room);
	if (w)
		w->c = c;
	return w;
}

/* Frame the len-byte message at w->data + 2 and write it (frees w on failure). */
static int conn_write(struct conn *c, struct write_req *w, size_t len)
{
	w->len = len + 2;
	w->data[0] = (uint8_t)(len >> 8);
	w->data[1] = (uint8_t)len;
	uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)w->len);
	int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written);
	if (rc < 0) {
		free(w);
		return rc;
	}
	c->busy = true;
	return 0;
}

/* Send one message (takes ownership of wire). */
static int conn_send(struct conn *c, uint8_t *wire, size_t len)
{
	struct write_req *w = wreq_new(c, len);
	if (!w) {
		free(wire);
		return DRDNS_ENOMEM;
	}
	memcpy(w->data + 2, wire, len);
	free(wire);
	return conn_write(c, w, len);
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* The cached message that continues x exactly where it stands, or NULL. */
static const struct xmsg *xfr_cached(const struct xfr *x, const struct zcache **zcp)
{
	const struct zcache *zc = x->zr->cache[x->zi];
	if (!zc || x->cur.done || x->msgs >= zc->n)
		return NULL;
	const struct xmsg *m = &zc->msgs[x->msgs];
	if (m->start != x->cur.next || (x->msgs == 0) == x->cur.soa_sent)
		return NULL;
	if (x->msgs == 0 && ldns_rdf_size(ldns_rr_owner(x->question)) != zc->qname_len)
		return NULL;
	*zcp = zc;
	return m;
}

/* Send the transfer's next message: copied from the cache when it is there,
 * else built; signed when the transfer is. */
static void xfr_send_next(struct conn *c)
{
	struct xfr *x = c->xfr;
	const struct zcache *zc = NULL;
	const struct xmsg *m = xfr_cached(x, &zc);
	struct xcursor next = x->cur;
	uint8_t *built = NULL;
	const uint8_t *src = NULL;
	size_t len = 0, count = 0;
	int rc = 0;
	if (m) {
		src = zc->wire + m->off;
		len = m->len;
		count = m->count;
		next.next = m->end;
		next.soa_sent = true;
		next.done = m->done;
	} else {
		rc = xfr_build(x->zone, x->question, x->id, &next, &built, &len, &count);
		src = built;
	}
	size_t room = len + (x->key ? DRDNS_TSIG_RR_MAX : 0);
	struct write_req *w = rc == 0 ? wreq_new(c, room) : NULL;
	if (rc == 0 && !w)
		rc = DRDNS_ENOMEM;
	if (rc == 0) {
		uint8_t *msg = w->data + 2;
		memcpy(msg, src, len);
		if (m) {
			put16(msg, x->id);
			if (x->msgs == 0) { /* the question as the client asked it */
				const ldns_rdf *qn = ldns_rr_owner(x->question);
				memcpy(msg + LDNS_HEADER_SIZE, ldns_rdf_data(qn), zc->qname_len);
				put16(msg + LDNS_HEADER_SIZE + zc->qname_len,
				      (uint16_t)ldns_rr_get_type(x->question));
			}
		}
		if (x->key) {
			uint8_t mac[DRDNS_TSIG_MAC_MAX];
			size_t mac_len = 0;
			rc = drdns_tsig_sign_wire(msg, len, room, &len, x->key, x->mac, x->mac_len,
			                          x->msgs > 0, (uint64_t)time(NULL), mac, &mac_len);
			if (rc == 0) {
				memcpy(x->mac, mac, mac_len);
				x->mac_len = mac_len;
			}
		}
		if (rc < 0)
			free(w);
	}
	free(built);
	if (rc == 0)
		rc = conn_write(c, w, len);
	if (rc < 0) {
		drdns_log(DRDNS_LOG_ERR, "xfr", "xfr failed peer=%s: %s", c->peer_text,
		          drdns_strerror(rc));
		conn_close(c);
		return;
	}
	x->cur = next;
	x->rrs += count;
	x->msgs++;
	x->bytes += len;
	if (m)
		x->cached++;
}

static void on_tcp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)suggested;
	struct conn *c = h->data;
	if (c->rcap - c->rlen < 4096 && c->rcap < TCP_RBUF_MAX) {
		size_t cap = c->rcap ? c->rcap * 2 : 4096;
		if (cap > TCP_RBUF_MAX)
			cap = TCP_RBUF_MAX;
		uint8_t *g = realloc(c->rbuf, cap);
		if (g) {
			c->rbuf = g;
			c->rcap = cap;
		}
	}
	buf->base = (char *)c->rbuf + c->rlen;
	buf->len = c->rcap - c->rlen;
}

static void conn_pause_reading(struct conn *c)
{
	if (c->reading) {
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->reading = false;
	}
}

static void on_tcp_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	(void)buf;
	struct conn *c = s->data;
	if (c->closing)
		return;
	if (nread == UV_ENOBUFS) {
		conn_pause_reading(c); /* buffer full: resume once queries are handled */
		return;
	}
	if (nread == UV_EOF) {
		c->peer_eof = true;
		conn_pause_reading(c);
		conn_process(c);
		return;
	}
	if (nread < 0) {
		drdns_log(DRDNS_LOG_DEBUG, "server", "tcp read error peer=%s: %s", c->peer_text,
		          uv_strerror((int)nread));
		conn_close(c);
		return;
	}
	c->rlen += (size_t)nread;
	if (nread > 0)
		conn_touch(c);
	conn_process(c);
	if (!c->closing && c->rlen == c->rcap && c->rcap >= TCP_RBUF_MAX)
		conn_pause_reading(c);
}

/* Handle complete buffered requests while the connection is idle. */
static void conn_process(struct conn *c)
{
	while (!c->closing && !c->busy && !c->xfr && c->rlen >= 2) {
		size_t mlen = ((size_t)c->rbuf[0] << 8) | c->rbuf[1];
		if (c->rlen < 2 + mlen)
			break;
		uint8_t *out = NULL;
		size_t out_len = 0;
		enum proc_result r =
		    process(c->srv, c, c->rbuf + 2, mlen, (const struct sockaddr *)&c->peer,
		            c->peer_text, &out, &out_len);
		c->rlen -= 2 + mlen;
		memmove(c->rbuf, c->rbuf + 2 + mlen, c->rlen);
		if (r == PROC_CLOSE) {
			conn_close(c);
			return;
		}
		if (r == PROC_REPLY && conn_send(c, out, out_len) < 0) {
			conn_close(c);
			return;
		}
		if (r == PROC_XFR)
			xfr_send_next(c);
	}
	if (c->closing)
		return;
	if (c->peer_eof) {
		if (!c->busy && !c->xfr)
			conn_close(c); /* everything the peer sent has been answered */
		return;
	}
	if (!c->reading && c->rlen < TCP_RBUF_MAX) {
		if (uv_read_start((uv_stream_t *)&c->tcp, on_tcp_alloc, on_tcp_read) == 0)
			c->reading = true;
		else
			conn_close(c);
	}
}

static void on_reject_closed(uv_handle_t *h)
{
	struct drdns_server *srv = h->data;
	free(h);
	srv_release(srv);
}

static void on_connection(uv_stream_t *server, int status)
{
	struct drdns_server *srv = server->data;
	if (status < 0) {
		drdns_log(DRDNS_LOG_WARNING, "server", "tcp accept error: %s", uv_strerror(status));
		return;
	}
	if (srv->closing)
		return;
	if (srv->n_conns >= TCP_MAX_CONNS) {
		/* accept and close at once, or libuv would stop accepting */
		uv_tcp_t *t = malloc(sizeof(*t));
		if (!t || uv_tcp_init(srv->loop, t) < 0) {
			free(t);
			return;
		}
		t->data = srv;
		srv->pending++;
		(void)uv_accept(server, (uv_stream_t *)t);
		uv_close((uv_handle_t *)t, on_reject_closed);
		drdns_log(DRDNS_LOG_WARNING, "server",
		          "tcp connection limit (%d) reached: closed a new one", TCP_MAX_CONNS);
		return;
	}
	struct conn *c = calloc(1, sizeof(*c));
	if (!c)
		return;
	c->srv = srv;
	if (uv_tcp_init(srv->loop, &c->tcp) < 0) {
		free(c);
		return;
	}
	uv_timer_init(srv->loop, &c->timer); /* cannot fail */
	c->tcp.data = c;
	c->timer.data = c;
	c->open_handles = 2;
	c->next = srv->conns;
	if (srv->conns)
		srv->conns->prev = c;
	srv->conns = c;
	srv->n_conns++;
	srv->pending++;
	if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
		conn_close(c);
		return;
	}
	int len = sizeof(c->peer);
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&c->peer, &len) == 0)
		sockaddr_text((struct sockaddr *)&c->peer, c->peer_text, sizeof(c->peer_text));
	else
		snprintf(c->peer_text, sizeof(c->peer_text), "?");
	uv_tcp_nodelay(&c->tcp, 1);
	conn_touch(c);
	conn_process(c); /* starts reading */
}

/* ------------------------------------------------------------ lifecycle */

static void srv_release(struct drdns_server *srv)
{
	if (--srv->pending > 0 || !srv->closing)
		return;
	void (*cb)(void *) = srv->close_cb;
	void *arg = srv->close_arg;
	free(srv);
	if (cb)
		cb(arg);
}

static void on_listener_closed(uv_handle_t *h)
{
	srv_release(h->data);
}

static int parse_address(const char *text, uint16_t port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (!text)
		return DRDNS_EINVAL;
	if (strchr(text, ':'))
		return uv_ip6_addr(text, port, (struct sockaddr_in6 *)ss) == 0 ? 0 : DRDNS_EINVAL;
	return uv_ip4_addr(text, port, (struct sockaddr_in *)ss) == 0 ? 0 : DRDNS_EINVAL;
}

/* A bound socket (TCP: listening too); returns the fd or a negative errno. */
static int bound_socket(const struct sockaddr_storage *ss, int type)
{
	int fd = socket(ss->ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1;
	if (type == SOCK_STREAM && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		goto fail;
	socklen_t slen =
	    ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	if (bind(fd, (const struct sockaddr *)ss, slen) < 0)
		goto fail;
	if (type == SOCK_STREAM && listen(fd, TCP_BACKLOG) < 0)
		goto fail;
	return fd;
fail:;
	int err = -errno;
	close(fd);
	return err;
}

int drdns_server_new(uv_loop_t *loop, const struct drdns_conf *conf, struct drdns_server **out)
{
	*out = NULL;
	if (!loop || !conf)
		return DRDNS_EINVAL;
	struct sockaddr_storage ss;
	int ret = parse_address(conf->controller.address, conf->controller.port, &ss);
	if (ret < 0) {
		drdns_log(DRDNS_LOG_ERR, "server", "invalid listen address %s",
		          conf->controller.address ? conf->controller.address : "(none)");
		return ret;
	}
	/* bind both sockets before creating any handle, so errors need no cleanup */
	int tfd = bound_socket(&ss, SOCK_STREAM);
	if (tfd < 0) {
		drdns_log(DRDNS_LOG_ERR, "server", "cannot listen on tcp %s port %u: %s",
		          conf->controller.address, conf->controller.port, drdns_strerror(tfd));
		return tfd;
	}
	int ufd = bound_socket(&ss, SOCK_DGRAM);
	if (ufd < 0) {
		drdns_log(DRDNS_LOG_ERR, "server", "cannot listen on udp %s port %u: %s",
		          conf->controller.address, conf->controller.port, drdns_strerror(ufd));
		close(tfd);
		return ufd;
	}
	struct drdns_server *srv = calloc(1, sizeof(*srv));
	if (!srv) {
		close(tfd);
		close(ufd);
		return DRDNS_ENOMEM;
	}
	srv->loop = loop;
	srv->conf = conf;
	uv_tcp_init(loop, &srv->tcp);
	uv_udp_init(loop, &srv->udp);
	srv->tcp.data = srv;
	srv->udp.data = srv;
	srv->pending = 2;
	int rc = uv_tcp_open(&srv->tcp, tfd);
	if (rc < 0)
		close(tfd);
	else
		rc = uv_listen((uv_stream_t *)&srv->tcp, TCP_BACKLOG, on_connection);
	int rc2 = uv_udp_open(&srv->udp, ufd);
	if (rc2 < 0)
		close(ufd);
	else
		rc2 = uv_udp_recv_start(&srv->udp, on_udp_alloc, on_udp_recv);
	if (rc < 0 || rc2 < 0) {
		/* handles exist now: close them (memory is freed when the loop runs) */
		drdns_log(DRDNS_LOG_ERR, "server", "cannot start listeners: %s",
		          uv_strerror(rc < 0 ? rc : rc2));
		drdns_server_close(srv, NULL, NULL);
		return rc < 0 ? rc : rc2;
	}
	drdns_log(DRDNS_LOG_NOTICE, "server", "listening address=%s port=%u udp=yes tcp=yes",
	          conf->controller.address, conf->controller.port);
	*out = srv;
	return 0;
}

/* Swap *slot to serve set (owned; NULL: serve nothing from this slot).
 * Returns 0, or DRDNS_ENOMEM / DRDNS_ESTATE (closing) with the slot unchanged
 * and set freed. */
static int install(struct drdns_server *srv, struct zref **slot, struct drdns_zoneset *set,
                   const char *what)
{
	if (*slot && set == (*slot)->set)
		return 0;
	struct zref *zr = NULL;
	if (set && !srv->closing) {
		zr = zref_new(set);
		if (!zr) {
			drdns_log(DRDNS_LOG_ERR, "server", "out of memory installing the %s", what);
			drdns_zoneset_free(set);
			return DRDNS_ENOMEM;
		}
	} else if (set) {
		drdns_zoneset_free(set);
		return DRDNS_ESTATE;
	}
	struct zref *old = *slot;
	*slot = zr;
	if (old)
		cache_stop(srv, old); /* transfers from it carry on, building messages */
	zref_put(old);
	if (zr) {
		cache_start(srv, zr);
		size_t rrs = 0;
		for (size_t i = 0; i < set->n; i++)
			rrs += drdns_zone_rr_count(set->zones[i]);
		drdns_log(DRDNS_LOG_NOTICE, "server", "serving %s zones=%zu rrs=%zu", what, set->n,
		          rrs);
	} else if (old && !serving(srv)) {
		drdns_log(DRDNS_LOG_NOTICE, "server", "not serving: answering REFUSED");
	}
	return 0;
}

void drdns_server_set_zones(struct drdns_server *srv, struct drdns_zoneset *set)
{
	(void)install(srv, &srv->cur, set, "zone set");
}

int drdns_server_set_drill(struct drdns_server *srv, struct drdns_zoneset *set)
{
	return install(srv, &srv->drill, set, "drill zone");
}

int drdns_server_set_handback(struct drdns_server *srv, struct drdns_zoneset *set)
{
	return install(srv, &srv->handback, set, "hand-back copies");
}

const struct drdns_zoneset *drdns_server_handback_zones(const struct drdns_server *srv)
{
	return srv && srv->handback ? srv->handback->set : NULL;
}

const struct drdns_zoneset *drdns_server_drill_zones(const struct drdns_server *srv)
{
	return srv && srv->drill ? srv->drill->set : NULL;
}

const struct drdns_zoneset *drdns_server_zones(const struct drdns_server *srv)
{
	return srv && srv->cur ? srv->cur->set : NULL;
}

void drdns_server_set_conf(struct drdns_server *srv, const struct drdns_conf *conf)
{
	if (srv && conf)
		srv->conf = conf;
}

void drdns_server_stats(const struct drdns_server *srv, struct drdns_server_stats *out)
{
	*out = srv->st;
}

void drdns_server_close(struct drdns_server *srv, void (*cb)(void *arg), void *arg)
{
	if (!srv || srv->closing)
		return;
	srv->closing = true;
	srv->close_cb = cb;
	srv->close_arg = arg;
	uv_udp_recv_stop(&srv->udp);
	uv_close((uv_handle_t *)&srv->udp, on_listener_closed);
	uv_close((uv_handle_t *)&srv->tcp, on_listener_closed);
	for (struct conn *c = srv->conns; c; c = c->next)
		conn_close(c);
	cache_stop(srv, NULL); /* the callback waits for their after-work callbacks */
	struct zref *cur = srv->cur, *drill = srv->drill, *handback = srv->handback;
	srv->cur = NULL;
	srv->drill = NULL;
	srv->handback = NULL;
	zref_put(cur);
	zref_put(drill);
	zref_put(handback);
}
