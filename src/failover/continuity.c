/* DNSSEC key continuity: see continuity.h. */
#include "continuity.h"

#include "drdns/error.h"
#include "drdns/query.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct batch {
	struct drdns_dnskey_result *results;
	size_t n, pending;
	drdns_dnskey_cb cb;
	void *arg;
	uv_timer_t defer; /* only when nothing is in flight */
};

struct one {
	struct batch *b;
	size_t i;
};

static void deliver(struct batch *b)
{
	drdns_dnskey_cb cb = b->cb;
	void *arg = b->arg;
	struct drdns_dnskey_result *results = b->results;
	size_t n = b->n;
	free(b);
	cb(results, n, arg);
}

static void on_defer_closed(uv_handle_t *h)
{
	deliver(h->data);
}

static void defer_cb(uv_timer_t *t)
{
	uv_close((uv_handle_t *)t, on_defer_closed);
}

static void on_answer(int status, const ldns_pkt *answer, double rtt, int attempts, void *arg)
{
	struct one *o = arg;
	struct batch *b = o->b;
	struct drdns_dnskey_result *r = &b->results[o->i];
	(void)rtt;
	(void)attempts;
	free(o);
	if (status < 0) {
		snprintf(r->detail, sizeof(r->detail), "%s",
		         status == DRDNS_ETIMEOUT ? "timeout" : drdns_strerror(status));
	} else if (ldns_pkt_get_rcode(answer) != LDNS_RCODE_NOERROR) {
		const ldns_lookup_table *lt =
		    ldns_lookup_by_id(ldns_rcodes, (int)ldns_pkt_get_rcode(answer));
		snprintf(r->detail, sizeof(r->detail), "%s", lt ? lt->name : "error");
	} else if (!ldns_pkt_aa(answer)) {
		snprintf(r->detail, sizeof(r->detail), "not authoritative");
	} else {
		ldns_rdf *zone = ldns_dname_new_frm_str(r->zone);
		const ldns_rr_list *an = ldns_pkt_answer(answer);
		for (size_t k = 0; zone && k < ldns_rr_list_rr_count(an); k++) {
			const ldns_rr *rr = ldns_rr_list_rr(an, k);
			if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_DNSKEY &&
			    ldns_dname_compare(ldns_rr_owner(rr), zone) == 0)
				ldns_rr_list_push_rr(r->dnskeys, ldns_rr_clone(rr));
		}
		ldns_rdf_deep_free(zone);
		r->answered = true;
		snprintf(r->detail, sizeof(r->detail), "ok");
	}
	if (--b->pending == 0)
		deliver(b);
}

int drdns_dnskey_probe(uv_loop_t *loop, const char *source,
                       const struct drdns_dnskey_target *targets, size_t n, double timeout,
                       int attempts, drdns_dnskey_cb cb, void *arg)
{
	struct batch *b = calloc(1, sizeof(*b));
	if (!b)
		return DRDNS_ENOMEM;
	b->results = calloc(n ? n : 1, sizeof(*b->results));
	b->n = n;
	b->cb = cb;
	b->arg = arg;
	bool oom = !b->results;
	for (size_t i = 0; !oom && i < n; i++) {
		struct drdns_dnskey_result *r = &b->results[i];
		r->label = strdup(targets[i].label);
		r->address = strdup(targets[i].address);
		r->zone = strdup(targets[i].zone);
		r->dnskeys = ldns_rr_list_new();
		snprintf(r->detail, sizeof(r->detail), "not asked");
		oom = !r->label || !r->address || !r->zone || !r->dnskeys;
	}
	if (oom) {
		drdns_dnskey_results_free(b->results, n);
		free(b);
		return DRDNS_ENOMEM;
	}
	b->pending = 1; /* held while starting */
	for (size_t i = 0; i < n; i++) {
		struct one *o = calloc(1, sizeof(*o));
		ldns_pkt *q =
		    drdns_query_new_pkt(targets[i].zone, LDNS_RR_TYPE_DNSKEY, LDNS_PACKET_QUERY);
		struct drdns_query_opts opts = {
		    .source = source,
		    .address = targets[i].address,
		    .port = targets[i].port,
		    .timeout = timeout,
		    .attempts = attempts,
		    .backoff = 1.0,
		};
		if (!o || !q) {
			free(o);
			ldns_pkt_free(q);
			snprintf(b->results[i].detail, sizeof(b->results[i].detail),
			         "out of memory");
			continue;
		}
		o->b = b;
		o->i = i;
		b->pending++;
		int ret = drdns_query_start(loop, q, &opts, on_answer, o);
		if (ret < 0) {
			b->pending--;
			free(o);
			snprintf(b->results[i].detail, sizeof(b->results[i].detail), "error: %s",
			         drdns_strerror(ret));
		}
	}
	if (--b->pending == 0) { /* nothing in flight: answer from the loop */
		uv_timer_init(loop, &b->defer);
		b->defer.data = b;
		uv_timer_start(&b->defer, defer_cb, 0, 0);
	}
	return 0;
}

void drdns_dnskey_results_free(struct drdns_dnskey_result *results, size_t n)
{
	for (size_t i = 0; results && i < n; i++) {
		free(results[i].label);
		free(results[i].address);
		free(results[i].zone);
		ldns_rr_list_deep_free(results[i].dnskeys);
	}
	free(results);
}

/* ---- comparison ---- */

/* The RDATA of each DNSKEY as wire bytes, sorted: the set, ready to compare. */
struct keyset_wire {
	ldns_buffer **keys;
	size_t n;
};

static int buf_cmp(const void *a, const void *b)
{
	const ldns_buffer *x = *(ldns_buffer *const *)a, *y = *(ldns_buffer *const *)b;
	size_t lx = ldns_buffer_position(x), ly = ldns_buffer_position(y);
	int c = memcmp(ldns_buffer_begin(x), ldns_buffer_begin(y), lx < ly ? lx : ly);
	return c ? c : (lx > ly) - (lx < ly);
}

static bool wire_of(const ldns_rr_list *list, struct keyset_wire *out)
{
	size_t n = list ? ldns_rr_list_rr_count(list) : 0;
	out->keys = calloc(n ? n : 1, sizeof(*out->keys));
	out->n = 0;
	if (!out->keys)
		return false;
	for (size_t i = 0; i < n; i++) {
		ldns_buffer *b = ldns_buffer_new(512);
		if (!b ||
		    ldns_rr_rdata2buffer_wire(b, ldns_rr_list_rr(list, i)) != LDNS_STATUS_OK) {
			ldns_buffer_free(b);
			return false;
		}
		out->keys[out->n++] = b;
	}
	qsort(out->keys, out->n, sizeof(*out->keys), buf_cmp);
	/* duplicates count once */
	size_t w = 0;
	for (size_t i = 0; i < out->n; i++) {
		if (w > 0 && buf_cmp(&out->keys[w - 1], &out->keys[i]) == 0)
			ldns_buffer_free(out->keys[i]);
		else
			out->keys[w++] = out->keys[i];
	}
	out->n = w;
	return true;
}

static void wire_free(struct keyset_wire *k)
{
	for (size_t i = 0; k->keys && i < k->n; i++)
		ldns_buffer_free(k->keys[i]);
	free(k->keys);
}

static bool wire_eq(const struct keyset_wire *a, const struct keyset_wire *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (buf_cmp(&a->keys[i], &b->keys[i]) != 0)
			return false;
	return true;
}

static json_t *tags_of(const ldns_rr_list *list)
{
	json_t *arr = json_array();
	for (size_t i = 0; list && i < ldns_rr_list_rr_count(list); i++) {
		const ldns_rr *rr = ldns_rr_list_rr(list, i);
		json_array_append_new(arr, json_integer(ldns_calc_keytag(rr)));
	}
	return arr;
}

const char *drdns_continuity_str(enum drdns_continuity c)
{
	switch (c) {
	case DRDNS_CONT_SAME: return "same";
	case DRDNS_CONT_NEWLY_SIGNED: return "newly-signed";
	case DRDNS_CONT_UNSIGNED: return "unsigned";
	case DRDNS_CONT_UNKNOWN: return "unknown";
	case DRDNS_CONT_MISMATCH: return "mismatch";
	case DRDNS_CONT_WOULD_UNSIGN: return "would-unsign";
	}
	return "?";
}

bool drdns_continuity_breaks(enum drdns_continuity c)
{
	return c == DRDNS_CONT_MISMATCH || c == DRDNS_CONT_WOULD_UNSIGN;
}

enum drdns_continuity drdns_continuity_check(const char *zone, const ldns_rr_list *ours,
                                             const struct drdns_dnskey_result *results, size_t n,
                                             json_t **detail)
{
	struct keyset_wire mine = {0};
	bool ok = wire_of(ours, &mine);
	size_t answered = 0, signed_by = 0, differ = 0;
	json_t *published = json_array();
	char who[256] = "";
	size_t used = 0;
	for (size_t i = 0; ok && i < n; i++) {
		const struct drdns_dnskey_result *r = &results[i];
		if (strcasecmp(r->zone, zone) != 0 || !r->answered)
			continue;
		answered++;
		size_t count = ldns_rr_list_rr_count(r->dnskeys);
		json_array_append_new(published, json_pack("{s:s, s:o}", "by", r->label, "tags",
		                                           tags_of(r->dnskeys)));
		if (count == 0)
			continue;
		signed_by++;
		struct keyset_wire theirs = {0};
		if (!wire_of(r->dnskeys, &theirs)) {
			ok = false;
		} else if (!wire_eq(&mine, &theirs)) {
			differ++;
			if (used < sizeof(who))
				used += (size_t)snprintf(who + used, sizeof(who) - used, "%s%s",
				                         used ? ", " : "", r->label);
		}
		wire_free(&theirs);
	}
	enum drdns_continuity c;
	char msg[512];
	bool have = ours && ldns_rr_list_rr_count(ours) > 0;
	if (!ok) {
		c = DRDNS_CONT_UNKNOWN;
		snprintf(msg, sizeof(msg), "out of memory comparing DNSKEY sets");
	} else if (answered == 0) {
		c = DRDNS_CONT_UNKNOWN;
		snprintf(msg, sizeof(msg),
		         "no nameserver answered for the DNSKEY set: key continuity not checked");
	} else if (signed_by == 0) {
		c = have ? DRDNS_CONT_NEWLY_SIGNED : DRDNS_CONT_UNSIGNED;
		snprintf(msg, sizeof(msg), "%s",
		         have ? "the nameservers publish no DNSKEY: the zone becomes signed (an "
		                "island of security until a DS is published)"
		              : "unsigned, as on the nameservers");
	} else if (!have) {
		c = DRDNS_CONT_WOULD_UNSIGN;
		snprintf(msg, sizeof(msg),
		         "the zone is signed on the nameservers but dnssec.keys has no key for it: "
		         "a promotion would serve it unsigned under the parent's DS and validating "
		         "resolvers would reject it");
	} else if (differ) {
		c = DRDNS_CONT_MISMATCH;
		snprintf(
		    msg, sizeof(msg),
		    "the DNSKEY set drdns would publish differs from the one %s publish%s now: "
		    "validating resolvers would reject the new signatures at the cutover; copy "
		    "the campus keys into dnssec.keys",
		    who, differ == 1 ? "es" : "");
	} else {
		c = DRDNS_CONT_SAME;
		snprintf(msg, sizeof(msg), "the nameservers publish the same DNSKEY set");
	}
	wire_free(&mine);
	if (detail)
		*detail = json_pack("{s:s, s:o, s:o, s:s}", "continuity", drdns_continuity_str(c),
		                    "ours", tags_of(ours), "published", published, "message", msg);
	else
		json_decref(published);
	return c;
}
