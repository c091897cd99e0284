/*
 * Zone transfers (AXFR, IXFR) and their cache of rendered messages: see the
 * decisions in server.c.
 */
#include "server_internal.h"
#include "zindex.h"

#include "drdns/conf.h"
#include "drdns/error.h"
#include "drdns/log.h"
#include "drdns/serial.h"
#include "drdns/tsig.h"
#include "drdns/xfr_acl.h"
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

/* ------------------------------------------------------------ transfer ACL */

/* Unsigned transfers: the ACL is in acl.c (include/drdns/xfr_acl.h). */
bool unsigned_transfer_allowed(const struct drdns_conf *conf, const struct sockaddr *peer)
{
	return drdns_xfr_acl(conf, peer, false) != DRDNS_XFR_NOT_ALLOWED;
}

/* ------------------------------------------------------------ cache */

void zcache_free(struct zcache *zc)
{
	if (!zc)
		return;
	free(zc->wire);
	free(zc->msgs);
	free(zc);
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
void xfr_end(struct conn *c, const char *status)
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
		if (!(x->key = drdns_tsig_key_copy(rq->key))) {
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
	if (b->index)
		b->rc = zindex_build(b->zr->set->zones[b->zi], &b->ix);
	else
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
	if (b->index) {
		if (status == 0 && b->rc == 0 && b->ix && !b->zr->ix[b->zi]) {
			b->zr->ix[b->zi] = b->ix;
			b->ix = NULL;
			drdns_log(DRDNS_LOG_INFO, "server",
			          "index ready zone=%s names=%zu bytes=%zu seconds=%.3f", z->name,
			          b->zr->ix[b->zi]->n, b->zr->ix[b->zi]->bytes,
			          (double)b->ns / 1e9);
		} else if (status == 0 && b->rc < 0) {
			drdns_log(DRDNS_LOG_ERR, "server",
			          "index failed zone=%s: %s (queries get SERVFAIL)", z->name,
			          drdns_strerror(b->rc));
		}
	} else if (status == 0 && b->rc == 0 && b->out && !b->zr->cache[b->zi]) {
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
	zindex_free(b->ix);
	zref_put(b->zr);
	free(b);
	srv_release(srv);
}

static bool queue_job(struct drdns_server *srv, struct zref *zr, size_t i, bool index)
{
	struct zbuild *b = calloc(1, sizeof(*b));
	if (!b) {
		drdns_log(DRDNS_LOG_WARNING, "xfr", "xfr cache: out of memory");
		return false;
	}
	b->srv = srv;
	b->zr = zref_get(zr);
	b->zi = i;
	b->index = index;
	b->work.data = b;
	atomic_init(&b->abort, false);
	int rc = uv_queue_work(srv->loop, &b->work, zbuild_work, zbuild_done);
	if (rc < 0) {
		drdns_log(DRDNS_LOG_WARNING, "xfr", "xfr cache: cannot queue work: %s",
		          uv_strerror(rc));
		zref_put(b->zr);
		free(b);
		return false;
	}
	b->next = srv->builds;
	if (srv->builds)
		srv->builds->prev = b;
	srv->builds = b;
	srv->pending++;
	return true;
}

/* Render every zone of zr in the thread pool, one job per zone.  Failures only
 * cost speed: transfers fall back to building each message. */
void cache_start(struct drdns_server *srv, struct zref *zr)
{
	for (size_t i = 0; i < zr->set->n; i++)
		if (!queue_job(srv, zr, i, false))
			return;
}

void index_start(struct drdns_server *srv, struct zref *zr)
{
	for (size_t i = 0; i < zr->set->n; i++) {
		const struct drdns_zone *z = zr->set->zones[i];
		if (drdns_zone_rr_count(z) > ZINDEX_SYNC_MAX) {
			(void)queue_job(srv, zr, i, true);
			continue;
		}
		uint64_t t0 = uv_hrtime();
		int rc = zindex_build(z, &zr->ix[i]);
		if (rc < 0)
			drdns_log(DRDNS_LOG_ERR, "server",
			          "index failed zone=%s: %s (queries get SERVFAIL)", z->name,
			          drdns_strerror(rc));
		else
			drdns_log(DRDNS_LOG_DEBUG, "server",
			          "index ready zone=%s names=%zu bytes=%zu seconds=%.3f", z->name,
			          zr->ix[i]->n, zr->ix[i]->bytes, (double)(uv_hrtime() - t0) / 1e9);
	}
}

/* Stop the cache jobs of zr (NULL: all): queued ones are cancelled, running ones
 * told to stop; their after-work callbacks still run (later, on the loop). */
void cache_stop(struct drdns_server *srv, const struct zref *zr)
{
	for (struct zbuild *b = srv->builds; b; b = b->next) {
		if (zr && b->zr != zr)
			continue;
		atomic_store_explicit(&b->abort, true, memory_order_relaxed);
		(void)uv_cancel((uv_req_t *)&b->work);
	}
}

int transfer(struct reqctx *rq, const ldns_rr *question, bool ixfr, uint8_t **out, size_t *len,
             enum proc_result *res)
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
		drdns_xfr_refusals_note(&srv->refusals, time(NULL), z->name, rq->peer, NULL,
		                        "not-allowed");
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
		return srv_finish(rq, r, out, len);
	}
	int ret = xfr_start(rq, zr, (size_t)zi, ixfr);
	if (ret == 0)
		*res = PROC_XFR;
	return ret;
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
void xfr_send_next(struct conn *c)
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
			ldns_write_uint16(msg, x->id);
			if (x->msgs == 0) { /* the question as the client asked it */
				const ldns_rdf *qn = ldns_rr_owner(x->question);
				memcpy(msg + LDNS_HEADER_SIZE, ldns_rdf_data(qn), zc->qname_len);
				ldns_write_uint16(msg + LDNS_HEADER_SIZE + zc->qname_len,
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
