/*
 * SOA probes (see include/drdns/probe.h): one SOA query (RD clear) per target,
 * all in parallel through the query engine, one callback when all are done.
 *
 * A target "answered" when the response is NOERROR with AA set and carries, in
 * its answer section, an SOA record (class IN) whose owner is the zone.  The
 * detail is then "ok".  Otherwise it says why:
 *   "timeout"              no answer after every attempt
 *   "REFUSED", "SERVFAIL", "NOTAUTH", "NXDOMAIN", ...   the rcode's name
 *   "not authoritative"    NOERROR without AA (a cache, or zone not loaded)
 *   "no SOA in answer"     NOERROR + AA but no SOA for the zone
 *   "tsig: ..."            (not used by probes, which are unsigned)
 *   "network: <strerror>"  e.g. "network: connection refused"
 *   "error: <strerror>"    the query could not be started (bad address, ...)
 * rtt is the engine's: seconds from the first send.
 */
#include "drdns/probe.h"

#include "drdns/error.h"
#include "drdns/query.h"

#include <ldns/ldns.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct probe_batch;

struct probe_item {
	struct probe_batch *b;
	size_t i;
	ldns_rdf *zone; /* the zone as a dname, for comparing SOA owners */
};

struct probe_batch {
	drdns_probe_cb cb;
	void *arg;
	struct drdns_soa_result *results;
	struct probe_item *items;
	size_t n;
	size_t pending;
	uv_timer_t defer; /* only when nothing was started */
};

static void batch_free(struct probe_batch *b)
{
	if (b->items)
		for (size_t i = 0; i < b->n; i++)
			ldns_rdf_deep_free(b->items[i].zone);
	free(b->items);
	free(b);
}

/* Hand the results over to the caller's callback.  The batch itself is freed
 * by the caller of deliver() (or by the defer timer's close callback). */
static void deliver(struct probe_batch *b)
{
	struct drdns_soa_result *results = b->results;
	b->results = NULL;
	b->cb(results, b->n, b->arg);
}

static void defer_close_cb(uv_handle_t *h)
{
	batch_free(h->data);
}

static void defer_cb(uv_timer_t *t)
{
	struct probe_batch *b = t->data;
	uv_close((uv_handle_t *)t, defer_close_cb);
	deliver(b);
}

/* Fill r from a finished query.  Shared logic for every SOA check. */
static void classify(struct drdns_soa_result *r, const ldns_rdf *zone, int status,
                     const ldns_pkt *a)
{
	r->answered = false;
	if (status == DRDNS_ETIMEOUT) {
		snprintf(r->detail, sizeof(r->detail), "timeout");
		return;
	}
	if (status == DRDNS_ETSIG) {
		snprintf(r->detail, sizeof(r->detail), "tsig: answer did not verify");
		return;
	}
	if (status != 0 || !a) {
		snprintf(r->detail, sizeof(r->detail), "network: %s", drdns_strerror(status));
		return;
	}
	ldns_pkt_rcode rc = ldns_pkt_get_rcode(a);
	if (rc != LDNS_RCODE_NOERROR) {
		const ldns_lookup_table *lt = ldns_lookup_by_id(ldns_rcodes, (int)rc);
		if (lt && lt->name)
			snprintf(r->detail, sizeof(r->detail), "%s", lt->name);
		else
			snprintf(r->detail, sizeof(r->detail), "RCODE%d", (int)rc);
		return;
	}
	if (!ldns_pkt_aa(a)) {
		snprintf(r->detail, sizeof(r->detail), "not authoritative");
		return;
	}
	const ldns_rr_list *ans = ldns_pkt_answer(a);
	size_t n = ans ? ldns_rr_list_rr_count(ans) : 0;
	for (size_t i = 0; i < n; i++) {
		const ldns_rr *rr = ldns_rr_list_rr(ans, i);
		if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_SOA ||
		    ldns_rr_get_class(rr) != LDNS_RR_CLASS_IN || ldns_rr_rd_count(rr) < 7 ||
		    ldns_dname_compare(ldns_rr_owner(rr), zone) != 0)
			continue;
		const ldns_rdf *serial = ldns_rr_rdf(rr, 2);
		const ldns_rdf *refresh = ldns_rr_rdf(rr, 3);
		const ldns_rdf *expire = ldns_rr_rdf(rr, 5);
		if (!serial || !expire || !refresh || ldns_rdf_size(serial) != 4 ||
		    ldns_rdf_size(expire) != 4 || ldns_rdf_size(refresh) != 4)
			continue;
		r->serial = ldns_rdf2native_int32(serial);
		r->refresh = ldns_rdf2native_int32(refresh);
		r->expire = ldns_rdf2native_int32(expire);
		r->answered = true;
		snprintf(r->detail, sizeof(r->detail), "ok");
		return;
	}
	snprintf(r->detail, sizeof(r->detail), "no SOA in answer");
}

static void query_cb(int status, const ldns_pkt *answer, double rtt, int attempts, void *arg)
{
	(void)attempts;
	struct probe_item *it = arg;
	struct probe_batch *b = it->b;
	struct drdns_soa_result *r = &b->results[it->i];
	r->rtt = rtt;
	classify(r, it->zone, status, answer);
	if (--b->pending == 0) {
		deliver(b);
		batch_free(b);
	}
}

static char *xstrdup(const char *s)
{
	return strdup(s ? s : "");
}

void drdns_soa_results_free(struct drdns_soa_result *results, size_t n)
{
	if (!results)
		return;
	for (size_t i = 0; i < n; i++) {
		free(results[i].label);
		free(results[i].address);
		free(results[i].zone);
	}
	free(results);
}

int drdns_probe_soa(uv_loop_t *loop, const char *source, const struct drdns_soa_target *targets,
                    size_t n, double timeout, int attempts, bool tcp, drdns_probe_cb cb, void *arg)
{
	if (!loop || !cb || (n > 0 && !targets) || !(timeout > 0) || attempts < 1)
		return DRDNS_EINVAL;
	struct probe_batch *b = calloc(1, sizeof(*b));
	if (!b)
		return DRDNS_ENOMEM;
	b->cb = cb;
	b->arg = arg;
	b->n = n;
	/* Everything that can fail for lack of memory comes before any query starts. */
	b->results = calloc(n ? n : 1, sizeof(*b->results));
	b->items = calloc(n ? n : 1, sizeof(*b->items));
	if (!b->results || !b->items)
		goto nomem;
	for (size_t i = 0; i < n; i++) {
		struct drdns_soa_result *r = &b->results[i];
		const struct drdns_soa_target *t = &targets[i];
		r->label = xstrdup(t->label ? t->label : t->address);
		r->address = xstrdup(t->address);
		r->zone = xstrdup(t->zone);
		r->port = t->port ? t->port : 53;
		if (!r->label || !r->address || !r->zone)
			goto nomem;
		b->items[i].b = b;
		b->items[i].i = i;
		if (t->zone && ldns_str2rdf_dname(&b->items[i].zone, t->zone) != LDNS_STATUS_OK)
			b->items[i].zone = NULL;
	}

	for (size_t i = 0; i < n; i++) {
		struct drdns_soa_result *r = &b->results[i];
		if (!b->items[i].zone || !targets[i].address) {
			snprintf(r->detail, sizeof(r->detail), "error: %s",
			         drdns_strerror(DRDNS_EINVAL));
			continue;
		}
		ldns_pkt *p =
		    drdns_query_new_pkt(targets[i].zone, LDNS_RR_TYPE_SOA, LDNS_PACKET_QUERY);
		if (!p) {
			snprintf(r->detail, sizeof(r->detail), "error: %s",
			         drdns_strerror(DRDNS_ENOMEM));
			continue;
		}
		struct drdns_query_opts o = {
		    .source = source,
		    .address = targets[i].address,
		    .port = r->port,
		    .timeout = timeout,
		    .attempts = attempts,
		    .backoff = 1.0,
		    .tcp = tcp,
		    .key = NULL,
		};
		int rc = drdns_query_start(loop, p, &o, query_cb, &b->items[i]);
		if (rc < 0) {
			snprintf(r->detail, sizeof(r->detail), "error: %s", drdns_strerror(rc));
			continue;
		}
		b->pending++;
	}
	if (b->pending == 0) {
		/* Nothing in flight (n == 0, or every target was invalid): answer from
		 * the loop, never from inside this call. */
		uv_timer_init(loop, &b->defer);
		b->defer.data = b;
		uv_timer_start(&b->defer, defer_cb, 0, 0);
	}
	return 0;

nomem:
	drdns_soa_results_free(b->results, n);
	b->results = NULL;
	batch_free(b);
	return DRDNS_ENOMEM;
}

bool drdns_soa_result_silent(const struct drdns_soa_result *r)
{
	return !r->answered &&
	       (!strcmp(r->detail, "timeout") || !strncmp(r->detail, "network: ", 9) ||
	        !strncmp(r->detail, "error: ", 7));
}

struct drdns_soa_result *drdns_soa_results_copy(const struct drdns_soa_result *results, size_t n)
{
	struct drdns_soa_result *copy = calloc(n ? n : 1, sizeof(*copy));
	for (size_t i = 0; copy && i < n; i++) {
		copy[i] = results[i];
		copy[i].label = strdup(results[i].label ? results[i].label : "");
		copy[i].address = strdup(results[i].address ? results[i].address : "");
		copy[i].zone = strdup(results[i].zone ? results[i].zone : "");
		if (!copy[i].label || !copy[i].address || !copy[i].zone) {
			drdns_soa_results_free(copy, i + 1);
			return NULL;
		}
	}
	return copy;
}
