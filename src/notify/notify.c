/*
 * NOTIFY (RFC 1996) to every (secondary, zone) pair, see include/drdns/notify.h.
 *
 * Each NOTIFY: opcode NOTIFY, AA set, RD clear, question <zone> SOA IN, and in
 * the answer section an SOA record carrying the new serial.  RFC 1996 3.7 lets
 * the primary include the SOA as a hint; BIND and Knot read only its serial
 * (to skip a refresh when they are already up to date), NSD records it.  We
 * know only the serial here, so the record is a minimal one: owner = zone,
 * TTL 0, MNAME and RNAME ".", serial, and zero timers.  Secondaries never
 * store it; they query the primary's real SOA before transferring.
 *
 * Sent from `source` (secondaries accept NOTIFY only from a primary's
 * address), through the query engine with exponential backoff (x2), signed
 * with the peer's TSIG key when it has one.
 *
 * Any response ends the retries: a NOERROR response is an ack; a REFUSED or
 * NOTAUTH response is the secondary's definite answer, and resending the same
 * NOTIFY would not change it.  Measured on BIND 9.18 and NSD 4.6: REFUSED for
 * a NOTIFY from an address that is not a primary / allow-notify (or unsigned
 * where NSD wants a key); Knot 3.2 answers NOTAUTH when no ACL matches.
 * Results come peer-major: results[p * n_zones + z].  One log line per result.
 */
#include "drdns/notify.h"

#include "drdns/error.h"
#include "drdns/log.h"
#include "drdns/query.h"

#include <ldns/ldns.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct notify_batch;

struct notify_item {
	struct notify_batch *b;
	size_t idx;
	const char *address;
};

struct notify_batch {
	drdns_notify_cb cb;
	void *arg;
	struct drdns_notify_result *results;
	struct notify_item *items;
	size_t n;
	size_t pending;
	uv_timer_t defer;
};

static const char *rcode_name(int rcode, char *buf, size_t len)
{
	const ldns_lookup_table *lt = ldns_lookup_by_id(ldns_rcodes, rcode);
	if (lt && lt->name)
		return lt->name;
	snprintf(buf, len, "RCODE%d", rcode);
	return buf;
}

static void log_result(const struct drdns_notify_result *r, const char *address)
{
	char rb[16];
	drdns_log(
	    r->acked ? DRDNS_LOG_NOTICE : DRDNS_LOG_WARNING, "notify",
	    "zone=%s peer=%s addr=%s acked=%s attempts=%d seconds=%.3f rcode=%s detail=\"%s\"",
	    r->zone, r->peer, address ? address : "-", r->acked ? "yes" : "no", r->attempts,
	    r->seconds, r->rcode < 0 ? "-" : rcode_name(r->rcode, rb, sizeof(rb)), r->detail);
}

static void deliver(struct notify_batch *b)
{
	struct drdns_notify_result *results = b->results;
	b->results = NULL;
	b->cb(results, b->n, b->arg);
}

static void batch_free(struct notify_batch *b)
{
	free(b->results);
	free(b->items);
	free(b);
}

static void defer_close_cb(uv_handle_t *h)
{
	batch_free(h->data);
}

static void defer_cb(uv_timer_t *t)
{
	struct notify_batch *b = t->data;
	uv_close((uv_handle_t *)t, defer_close_cb);
	deliver(b);
}

static void query_cb(int status, const ldns_pkt *answer, double rtt, int attempts, void *arg)
{
	struct notify_item *it = arg;
	struct notify_batch *b = it->b;
	struct drdns_notify_result *r = &b->results[it->idx];
	r->attempts = attempts;
	r->seconds = rtt;
	if (status == 0 && answer) {
		r->rcode = (int)ldns_pkt_get_rcode(answer);
		char rb[16];
		switch (r->rcode) {
		case LDNS_RCODE_NOERROR:
			r->acked = true;
			snprintf(r->detail, sizeof(r->detail), "ok");
			break;
		case LDNS_RCODE_REFUSED:
			snprintf(r->detail, sizeof(r->detail),
			         "REFUSED: secondary does not list us as primary");
			break;
		case LDNS_RCODE_NOTAUTH:
			snprintf(r->detail, sizeof(r->detail),
			         "NOTAUTH: secondary does not accept us (ACL, zone or key)");
			break;
		default:
			snprintf(r->detail, sizeof(r->detail), "%s",
			         rcode_name(r->rcode, rb, sizeof(rb)));
			break;
		}
	} else if (status == DRDNS_ETIMEOUT) {
		snprintf(r->detail, sizeof(r->detail), "timeout");
	} else if (status == DRDNS_ETSIG) {
		snprintf(r->detail, sizeof(r->detail), "tsig: response did not verify");
	} else {
		snprintf(r->detail, sizeof(r->detail), "network: %s", drdns_strerror(status));
	}
	log_result(r, it->address);
	if (--b->pending == 0) {
		deliver(b);
		batch_free(b);
	}
}

/* The NOTIFY for (zone, serial): see the comment at the top. */
static ldns_pkt *notify_pkt(const char *zone, uint32_t serial)
{
	ldns_pkt *p = drdns_query_new_pkt(zone, LDNS_RR_TYPE_SOA, LDNS_PACKET_NOTIFY);
	if (!p)
		return NULL;
	ldns_pkt_set_aa(p, true);
	ldns_rr *soa = ldns_rr_new_frm_type(LDNS_RR_TYPE_SOA);
	if (!soa)
		goto fail;
	const ldns_rr *q = ldns_rr_list_rr(ldns_pkt_question(p), 0);
	ldns_rdf *owner = ldns_rdf_clone(ldns_rr_owner(q));
	ldns_rdf *mname = ldns_dname_new_frm_str(".");
	ldns_rdf *rname = ldns_dname_new_frm_str(".");
	if (!owner || !mname || !rname) {
		ldns_rdf_deep_free(owner);
		ldns_rdf_deep_free(mname);
		ldns_rdf_deep_free(rname);
		ldns_rr_free(soa);
		goto fail;
	}
	ldns_rr_set_owner(soa, owner);
	ldns_rr_set_ttl(soa, 0);
	ldns_rr_set_class(soa, LDNS_RR_CLASS_IN);
	ldns_rr_set_rdf(soa, mname, 0);
	ldns_rr_set_rdf(soa, rname, 1);
	ldns_rr_set_rdf(soa, ldns_native2rdf_int32(LDNS_RDF_TYPE_INT32, serial), 2);
	for (size_t i = 3; i < 7; i++)
		ldns_rr_set_rdf(soa, ldns_native2rdf_int32(LDNS_RDF_TYPE_PERIOD, 0), i);
	for (size_t i = 2; i < 7; i++)
		if (!ldns_rr_rdf(soa, i)) {
			ldns_rr_free(soa);
			goto fail;
		}
	if (!ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, soa)) {
		ldns_rr_free(soa);
		goto fail;
	}
	return p;
fail:
	ldns_pkt_free(p);
	return NULL;
}

int drdns_notify_batch(uv_loop_t *loop, const char *source, const struct drdns_xfr_peer *peers,
                       size_t n_peers, const struct drdns_zone_serial *zones, size_t n_zones,
                       double first_timeout, int attempts, drdns_notify_cb cb, void *arg)
{
	if (!loop || !cb || (n_peers && !peers) || (n_zones && !zones) || !(first_timeout > 0) ||
	    attempts < 1)
		return DRDNS_EINVAL;
	size_t n = n_peers * n_zones;
	if (n_peers && n / n_peers != n_zones)
		return DRDNS_EINVAL;
	struct notify_batch *b = calloc(1, sizeof(*b));
	if (!b)
		return DRDNS_ENOMEM;
	b->cb = cb;
	b->arg = arg;
	b->n = n;
	b->results = calloc(n ? n : 1, sizeof(*b->results));
	b->items = calloc(n ? n : 1, sizeof(*b->items));
	if (!b->results || !b->items) {
		batch_free(b);
		return DRDNS_ENOMEM;
	}
	if (n == 0) {
		/* Hand over NULL, 0 (free(NULL) is fine for the caller). */
		free(b->results);
		b->results = NULL;
	}
	for (size_t p = 0; p < n_peers; p++) {
		for (size_t z = 0; z < n_zones; z++) {
			size_t i = p * n_zones + z;
			struct drdns_notify_result *r = &b->results[i];
			r->peer = peers[p].name;
			r->zone = zones[z].zone;
			r->rcode = -1;
			b->items[i].b = b;
			b->items[i].idx = i;
			b->items[i].address = peers[p].address;
		}
	}
	for (size_t p = 0; p < n_peers; p++) {
		for (size_t z = 0; z < n_zones; z++) {
			size_t i = p * n_zones + z;
			struct drdns_notify_result *r = &b->results[i];
			int rc = DRDNS_EINVAL;
			ldns_pkt *pkt =
			    zones[z].zone ? notify_pkt(zones[z].zone, zones[z].serial) : NULL;
			if (pkt && peers[p].address) {
				struct drdns_query_opts o = {
				    .source = source,
				    .address = peers[p].address,
				    .port = peers[p].port ? peers[p].port : 53,
				    .timeout = first_timeout,
				    .attempts = attempts,
				    .backoff = 2.0,
				    .tcp = false,
				    .key = peers[p].key,
				};
				rc = drdns_query_start(loop, pkt, &o, query_cb, &b->items[i]);
				pkt = NULL; /* taken over, also on error */
			}
			ldns_pkt_free(pkt);
			if (rc == 0) {
				b->pending++;
				continue;
			}
			snprintf(r->detail, sizeof(r->detail), "error: %s", drdns_strerror(rc));
			log_result(r, peers[p].address);
		}
	}
	if (b->pending == 0) {
		uv_timer_init(loop, &b->defer);
		b->defer.data = b;
		uv_timer_start(&b->defer, defer_cb, 0, 0);
	}
	return 0;
}
