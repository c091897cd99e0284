/*
 * The DR primary: lifecycle, zone refs and request dispatch.  Queries are
 * answered in answer.c, transfers (and their cache) in xfr.c, the listeners
 * in udp.c and tcp.c.  See include/drdns/server.h.
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
#include "server_internal.h"
#include "zindex.h"

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

/* ------------------------------------------------------------ zone refs */

static struct zref *zref_new(struct drdns_zoneset *set)
{
	struct zref *zr = calloc(1, sizeof(*zr));
	if (!zr)
		return NULL;
	zr->ix = calloc(set->n ? set->n : 1, sizeof(*zr->ix));
	zr->cache = calloc(set->n ? set->n : 1, sizeof(*zr->cache));
	if (!zr->ix || !zr->cache) {
		free(zr->ix);
		free(zr->cache);
		free(zr);
		return NULL;
	}
	zr->set = set;
	zr->refs = 1;
	return zr;
}

struct zref *zref_get(struct zref *zr)
{
	zr->refs++;
	return zr;
}

void zref_put(struct zref *zr)
{
	if (!zr || --zr->refs > 0)
		return;
	for (size_t i = 0; i < zr->set->n; i++) {
		zcache_free(zr->cache[i]);
		zindex_free(zr->ix[i]);
	}
	drdns_zoneset_free(zr->set);
	free(zr->cache);
	free(zr->ix);
	free(zr);
}

/* What answers queries: the promoted set, else the hand-back copies, else a
 * drill's zone, else nothing. */
struct zref *serving(const struct drdns_server *srv)
{
	return srv->cur ? srv->cur : srv->handback ? srv->handback : srv->drill;
}

/* ------------------------------------------------------------ helpers */

void sockaddr_text(const struct sockaddr *sa, char *out, size_t len)
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

/* ------------------------------------------------------------ responses */

ldns_pkt *resp_new(const ldns_pkt *q, ldns_pkt_rcode rcode)
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
	if (ldns_pkt_edns(q)) {
		ldns_pkt_set_edns_udp_size(r, UDP_MAX_EDNS);
		ldns_pkt_set_edns_do(r, ldns_pkt_edns_do(q)); /* RFC 3225 3 */
	}
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

/* RFC 5001: the configured NSID, when an EDNS query asked for it. */
static const char *nsid_wanted(const struct reqctx *rq)
{
	const char *nsid = rq->srv->conf ? rq->srv->conf->controller.nsid : NULL;
	if (!nsid || !ldns_pkt_edns(rq->q))
		return NULL;
	ldns_edns_option_list *ql = ldns_pkt_edns_get_option_list(rq->q);
	for (size_t i = 0; ql && i < ldns_edns_option_list_get_count(ql); i++)
		if (ldns_edns_get_code(ldns_edns_option_list_get_option(ql, i)) == LDNS_EDNS_NSID)
			return nsid;
	return NULL;
}

size_t srv_nsid_size(const struct reqctx *rq)
{
	const char *nsid = nsid_wanted(rq);
	return nsid ? 4 + strlen(nsid) : 0; /* option code, length, data */
}

static void add_nsid(struct reqctx *rq, ldns_pkt *r)
{
	const char *nsid = nsid_wanted(rq);
	if (!nsid || !ldns_pkt_edns(r))
		return;
	ldns_edns_option_list *l = ldns_edns_option_list_new();
	ldns_edns_option *o = ldns_edns_new_from_data(LDNS_EDNS_NSID, strlen(nsid), nsid);
	if (!l || !o || !ldns_edns_option_list_push(l, o)) {
		ldns_edns_deep_free(o);
		ldns_edns_option_list_deep_free(l);
		return;
	}
	ldns_pkt_set_edns_option_list(r, l);
}

/* Sign (when the request was signed), serialize, truncate when too big for
 * UDP (or, for a pathological RRset, for one TCP message).  Frees r. */
int srv_finish(struct reqctx *rq, ldns_pkt *r, uint8_t **out, size_t *out_len)
{
	if (!r)
		return DRDNS_ENOMEM;
	add_nsid(rq, r);
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

int reply_rcode(struct reqctx *rq, ldns_pkt_rcode rcode, uint8_t **out, size_t *len)
{
	if (rcode == LDNS_RCODE_REFUSED)
		rq->srv->st.refused++;
	return srv_finish(rq, resp_new(rq->q, rcode), out, len);
}

/* NOTAUTH with an unsigned TSIG error record. */
static int reply_tsig_error(struct reqctx *rq, uint16_t error, uint8_t **out, size_t *out_len)
{
	ldns_pkt *r = resp_new(rq->q, LDNS_RCODE_NOTAUTH);
	if (!r)
		return DRDNS_ENOMEM;
	const ldns_rr *qt = ldns_pkt_tsig(rq->q);
	ldns_rr *t = drdns_tsig_error_rr(qt, ldns_rdf2native_int16(ldns_rr_rdf(qt, 4)), error,
	                                 (uint64_t)time(NULL));
	if (!t) {
		ldns_pkt_free(r);
		return DRDNS_ENOMEM;
	}
	ldns_pkt_set_tsig(r, t);
	rq->key = NULL; /* never signed */
	return srv_finish(rq, r, out, out_len);
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

/* A transfer request whose TSIG failed: a refusal the reports explain. */
static void note_tsig_refusal(struct drdns_server *srv, const ldns_pkt *q,
                              const struct sockaddr *peer, const char *key, uint16_t err)
{
	const ldns_rr *qr = ldns_rr_list_rr(ldns_pkt_question(q), 0);
	ldns_rr_type t = qr ? ldns_rr_get_type(qr) : 0;
	if (t != LDNS_RR_TYPE_AXFR && t != LDNS_RR_TYPE_IXFR)
		return;
	char *zone = ldns_rdf2str(ldns_rr_owner(qr));
	const char *reason = err == DRDNS_TSIG_BADKEY    ? "tsig-badkey"
	                     : err == DRDNS_TSIG_BADTIME ? "tsig-badtime"
	                                                 : "tsig-badsig";
	drdns_xfr_refusals_note(&srv->refusals, time(NULL), zone ? zone : "?", peer,
	                        key ? key : "?", reason);
	free(zone);
}

/* CHAOS TXT id.server / hostname.bind (controller.identity) and version.bind /
 * version.server (controller.version), as NSD answers them (TTL 0, no AA);
 * REFUSED when not configured, and for every other CHAOS query. */
static int answer_chaos(struct reqctx *rq, const ldns_rr *question, uint8_t **out, size_t *len)
{
	static const char *const id_names[] = {"id.server.", "hostname.bind.", NULL};
	static const char *const ver_names[] = {"version.bind.", "version.server.", NULL};
	const struct drdns_conf *conf = rq->srv->conf;
	const char *text = NULL;
	ldns_rr_type t = ldns_rr_get_type(question);
	if (conf && (t == LDNS_RR_TYPE_TXT || t == LDNS_RR_TYPE_ANY)) {
		for (int k = 0; k < 2 && !text; k++) {
			const char *const *names = k ? ver_names : id_names;
			const char *val = k ? conf->controller.version : conf->controller.identity;
			for (size_t i = 0; names[i] && !text; i++) {
				ldns_rdf *n = ldns_dname_new_frm_str(names[i]);
				if (n && ldns_dname_compare(n, ldns_rr_owner(question)) == 0)
					text = val;
				ldns_rdf_deep_free(n);
			}
		}
	}
	if (!text)
		return reply_rcode(rq, LDNS_RCODE_REFUSED, out, len);
	ldns_pkt *r = resp_new(rq->q, LDNS_RCODE_NOERROR);
	ldns_rr *rr = ldns_rr_new();
	ldns_rdf *txt = NULL;
	uint8_t buf[256];
	size_t n = strlen(text) > 255 ? 255 : strlen(text);
	buf[0] = (uint8_t)n;
	memcpy(buf + 1, text, n);
	txt = ldns_rdf_new_frm_data(LDNS_RDF_TYPE_STR, n + 1, buf);
	ldns_rdf *owner = ldns_rdf_clone(ldns_rr_owner(question));
	if (!r || !rr || !txt || !owner) {
		ldns_pkt_free(r);
		ldns_rr_free(rr);
		ldns_rdf_deep_free(txt);
		ldns_rdf_deep_free(owner);
		return DRDNS_ENOMEM;
	}
	ldns_rr_set_owner(rr, owner);
	ldns_rr_set_class(rr, LDNS_RR_CLASS_CH);
	ldns_rr_set_ttl(rr, 0);
	ldns_rr_set_type(rr, LDNS_RR_TYPE_TXT);
	ldns_rr_push_rdf(rr, txt);
	if (!ldns_pkt_push_rr(r, LDNS_SECTION_ANSWER, rr)) {
		ldns_rr_free(rr);
		ldns_pkt_free(r);
		return DRDNS_ENOMEM;
	}
	return srv_finish(rq, r, out, len);
}

enum proc_result srv_process(struct drdns_server *srv, struct conn *conn, const uint8_t *wire,
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
		const struct drdns_tsig_key *key = drdns_tsig_find_key(srv->conf, tsig);
		uint16_t err = 0;
		if (!key) {
			err = DRDNS_TSIG_BADKEY;
		} else if (!drdns_tsig_time_ok(tsig, (uint64_t)time(NULL))) {
			/* MAC first, then time (RFC 8945 5.2) */
			bool mac_ok =
			    ldns_pkt_tsig_verify(q, wire, len, key->name, key->secret, NULL);
			err = mac_ok ? DRDNS_TSIG_BADTIME : DRDNS_TSIG_BADSIG;
		} else if (drdns_tsig_verify(q, wire, len, key, NULL) < 0) {
			err = DRDNS_TSIG_BADSIG;
		}
		if (err) {
			srv->st.tsig_failed++;
			char *kname = ldns_rdf2str(ldns_rr_owner(tsig));
			drdns_log(DRDNS_LOG_WARNING, "server",
			          "tsig failure peer=%s key=%s error=%s", peer_text,
			          kname ? kname : "?", drdns_tsig_error_name(err));
			note_tsig_refusal(srv, q, peer, kname, err);
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
		if (r) {
			ldns_pkt_set_edns_extended_rcode(r, 1);
			ldns_pkt_set_edns_do(r, false); /* as NSD */
		}
		ret = srv_finish(&rq, r, out, out_len);
		goto done;
	}
	const ldns_rr *question = ldns_rr_list_rr(ldns_pkt_question(q), 0);
	if (ldns_rr_get_class(question) == LDNS_RR_CLASS_CH && op == LDNS_PACKET_QUERY) {
		ret = answer_chaos(&rq, question, out, out_len);
		goto done;
	}
	if (ldns_rr_get_class(question) != LDNS_RR_CLASS_IN) {
		ldns_pkt *r = resp_new(q, LDNS_RCODE_REFUSED);
		if (r && ldns_rr_get_class(question) != LDNS_RR_CLASS_CH) {
			/* as NSD: no question for a class it does not know */
			ldns_rr_list *ql = ldns_pkt_question(r);
			ldns_rr_free(ldns_rr_list_pop_rr(ql));
			ldns_pkt_set_qdcount(r, 0);
		}
		srv->st.refused++;
		ret = srv_finish(&rq, r, out, out_len);
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
		ret = srv_finish(&rq, r, out, out_len);
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

/* ------------------------------------------------------------ lifecycle */

void srv_release(struct drdns_server *srv)
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
		index_start(srv, zr);
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

uint64_t drdns_server_refusals_mark(const struct drdns_server *srv)
{
	return srv ? drdns_xfr_refusals_mark(&srv->refusals) : 0;
}

size_t drdns_server_refusals(const struct drdns_server *srv, uint64_t since,
                             struct drdns_xfr_refusal *out, size_t max)
{
	return srv ? drdns_xfr_refusals_since(&srv->refusals, since, out, max) : 0;
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
