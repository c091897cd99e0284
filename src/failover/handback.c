/*
 * The hand-back relay's fetch and checks (handback.h).
 *
 * One op holds a copy of what it needs from the configuration and one item
 * per zone.  Up to DRDNS_HANDBACK_PARALLEL items are in the thread pool at a
 * time; each fetches its zone and, on the pool thread too, checks the copy
 * and turns it into a struct drdns_zone (pure ldns work, no loop, no ctx, no
 * logging).  When the last item is back the report is built on the loop and
 * the callback runs; the op is freed once its shutdown-watch timer has closed.
 */
#include "handback.h"

#include "drdns/axfr.h"
#include "drdns/conf.h"
#include "drdns/error.h"
#include "drdns/failover.h"
#include "drdns/log.h"
#include "drdns/serial.h"
#include "drdns/tsig.h"
#include "drdns/zone.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

struct hb_op;

struct hb_item {
	uv_work_t work;
	struct hb_op *op;
	char *zone; /* owned */
	uint32_t dr_serial;
	/* written by the job */
	bool ok;
	bool fetched;
	uint32_t serial;
	size_t records;          /* SOA included */
	struct drdns_zone *copy; /* owned until handed out */
	char detail[400];
};

struct hb_op {
	uv_timer_t watch; /* shutdown watch; the op is freed when it has closed */
	struct drdns_ctx *ctx;
	drdns_handback_cb cb;
	void *arg;
	char *master, *source; /* owned */
	uint16_t port;
	double timeout;
	struct drdns_tsig_key key; /* strings owned; used when has_key */
	bool has_key;
	atomic_bool cancel;
	struct hb_item *items;
	size_t n, next, done;
};

static void op_free(struct hb_op *op)
{
	free(op->master);
	free(op->source);
	free(op->key.name);
	free(op->key.algorithm);
	free(op->key.secret);
	for (size_t i = 0; op->items && i < op->n; i++) {
		free(op->items[i].zone);
		drdns_zone_free(op->items[i].copy);
	}
	free(op->items);
	free(op);
}

static void on_watch_closed(uv_handle_t *h)
{
	op_free(h->data);
}

static void on_watch(uv_timer_t *t)
{
	struct hb_op *op = t->data;
	if (op->ctx->server)
		return;
	atomic_store(&op->cancel, true);
	uv_timer_stop(t);
}

/* ---- the job (thread pool) ---- */

static void rr_label(const ldns_rr *rr, char *out, size_t len)
{
	char *owner = ldns_rdf2str(ldns_rr_owner(rr));
	char *type = ldns_rr_type2str(ldns_rr_get_type(rr));
	snprintf(out, len, "%s %s", owner ? owner : "?", type ? type : "?");
	free(owner);
	free(type);
}

/* Check the copy (rrs: SOA first, as drdns_axfr_fetch returns it) and build
 * the zone from it; rrs is consumed either way. */
static void check_copy(struct hb_item *it, ldns_rr_list *rrs)
{
	size_t n = ldns_rr_list_rr_count(rrs);
	ldns_rdf *origin = NULL;
	const ldns_rr *soa = n ? ldns_rr_list_rr(rrs, 0) : NULL;
	char what[200];
	it->records = n;
	if (ldns_str2rdf_dname(&origin, it->zone) != LDNS_STATUS_OK || !origin) {
		snprintf(it->detail, sizeof(it->detail), "bad zone name");
		goto out;
	}
	if (!soa || ldns_rr_get_type(soa) != LDNS_RR_TYPE_SOA ||
	    ldns_dname_compare(ldns_rr_owner(soa), origin) != 0) {
		snprintf(it->detail, sizeof(it->detail),
		         "the copy is not the zone asked for (no SOA of %s first)", it->zone);
		goto out;
	}
	it->serial = drdns_soa_rr_serial(soa);
	bool apex_ns = false;
	for (size_t i = 0; i < n; i++) {
		const ldns_rr *rr = ldns_rr_list_rr(rrs, i);
		const ldns_rdf *owner = ldns_rr_owner(rr);
		if (ldns_dname_compare(owner, origin) != 0 &&
		    !ldns_dname_is_subdomain(owner, origin)) {
			rr_label(rr, what, sizeof(what));
			snprintf(it->detail, sizeof(it->detail),
			         "the copy is not the zone asked for: %s is outside %s", what,
			         it->zone);
			goto out;
		}
		if (ldns_rr_get_class(rr) != LDNS_RR_CLASS_IN) {
			rr_label(rr, what, sizeof(what));
			snprintf(it->detail, sizeof(it->detail), "%s is not of class IN", what);
			goto out;
		}
		if (i > 0 && ldns_rr_get_type(rr) == LDNS_RR_TYPE_SOA &&
		    ldns_dname_compare(owner, origin) == 0) {
			snprintf(it->detail, sizeof(it->detail), "a second SOA at the apex");
			goto out;
		}
		apex_ns = apex_ns || (ldns_rr_get_type(rr) == LDNS_RR_TYPE_NS &&
		                      ldns_dname_compare(owner, origin) == 0);
	}
	if (!apex_ns) {
		snprintf(it->detail, sizeof(it->detail), "the copy has no NS records at the apex");
		goto out;
	}
	if (!drdns_serial_gt(it->serial, it->dr_serial)) {
		snprintf(it->detail, sizeof(it->detail),
		         "the campus serial %u is not above the DR serial %u (RFC 1982): the "
		         "secondaries would not take it",
		         it->serial, it->dr_serial);
		goto out;
	}
	struct drdns_zone *z = calloc(1, sizeof(*z));
	ldns_rr_list *rest = ldns_rr_list_new();
	bool oom = !z || !rest || !(z->name = strdup(it->zone));
	for (size_t i = 1; !oom && i < n; i++)
		oom = !ldns_rr_list_push_rr(rest, ldns_rr_list_rr(rrs, i));
	if (oom) {
		if (rest)
			ldns_rr_list_free(rest); /* shallow: the records stay in rrs */
		if (z)
			free(z->name);
		free(z);
		snprintf(it->detail, sizeof(it->detail), "out of memory");
		goto out;
	}
	z->origin = origin;
	origin = NULL;
	z->soa = ldns_rr_list_rr(rrs, 0);
	z->rrs = rest;
	ldns_rr_list_set_rr_count(rrs, 0); /* the records moved to z */
	it->copy = z;
	it->ok = true;
	snprintf(it->detail, sizeof(it->detail), "serial %u above the DR serial %u, %zu records",
	         it->serial, it->dr_serial, n);
out:
	ldns_rdf_deep_free(origin);
	ldns_rr_list_deep_free(rrs);
}

static void item_work(uv_work_t *w)
{
	struct hb_item *it = w->data;
	struct hb_op *op = it->op;
	struct drdns_axfr_opts opts = {
	    .zone = it->zone,
	    .address = op->master,
	    .port = op->port,
	    .source = op->source,
	    .timeout = op->timeout,
	    .cancel = &op->cancel,
	    .key = op->has_key ? &op->key : NULL,
	};
	ldns_rr_list *rrs = NULL;
	char err[200] = "";
	if (atomic_load(&op->cancel)) {
		snprintf(it->detail, sizeof(it->detail), "not fetched: drdnsd is stopping");
		return;
	}
	if (drdns_axfr_fetch(&opts, &rrs, err, sizeof(err)) < 0) {
		snprintf(it->detail, sizeof(it->detail), "AXFR from %s port %u%s%s failed: %s",
		         op->master, op->port, op->has_key ? " with TSIG key " : " (unsigned)",
		         op->has_key ? op->key.name : "", err);
		return;
	}
	it->fetched = true;
	check_copy(it, rrs);
}

/* ---- back on the loop ---- */

static void start_next(struct hb_op *op);

static int cmp_zone(const void *a, const void *b)
{
	const struct drdns_zone *const *za = a, *const *zb = b;
	return strcmp((*za)->name, (*zb)->name);
}

static void finish(struct hb_op *op)
{
	uv_timer_stop(&op->watch);
	json_t *report = json_array();
	char *error = NULL;
	size_t elen = 0;
	FILE *ef = open_memstream(&error, &elen);
	bool all = ef != NULL;
	for (size_t i = 0; i < op->n; i++) {
		struct hb_item *it = &op->items[i];
		json_array_append_new(
		    report,
		    json_pack("{s:s, s:I, s:o, s:o, s:b, s:s}", "zone", it->zone, "dr_serial",
		              (json_int_t)it->dr_serial, "campus_serial",
		              it->fetched && it->records ? json_integer(it->serial) : json_null(),
		              "records",
		              it->fetched ? json_integer((json_int_t)it->records) : json_null(),
		              "ok", it->ok, "detail", it->detail));
		drdns_log(it->ok ? DRDNS_LOG_INFO : DRDNS_LOG_ERR, "failover",
		          "hand-back copy zone=%s ok=%s detail=\"%s\"", it->zone,
		          it->ok ? "yes" : "no", it->detail);
		if (!it->ok) {
			if (ef)
				fprintf(ef, "%s%s: %s", all ? "" : "\n", it->zone, it->detail);
			all = false;
		}
	}
	if (ef)
		fclose(ef);
	struct drdns_zoneset *set = NULL;
	if (all) {
		set = calloc(1, sizeof(*set));
		set->zones = set ? calloc(op->n, sizeof(*set->zones)) : NULL;
		if (!set || !set->zones) {
			free(set);
			set = NULL;
			all = false;
			free(error);
			error = strdup("out of memory");
		} else {
			for (size_t i = 0; i < op->n; i++) {
				set->zones[i] = op->items[i].copy;
				op->items[i].copy = NULL;
			}
			set->n = op->n;
			qsort(set->zones, set->n, sizeof(*set->zones), cmp_zone);
		}
	}
	op->cb(set, report, all ? NULL : error ? error : "out of memory", op->arg);
	free(error);
	uv_close((uv_handle_t *)&op->watch, on_watch_closed);
}

static void item_done(uv_work_t *w, int status)
{
	struct hb_item *it = w->data;
	struct hb_op *op = it->op;
	if (status == UV_ECANCELED)
		snprintf(it->detail, sizeof(it->detail), "not fetched: cancelled");
	op->done++;
	if (op->done == op->n)
		finish(op);
	else
		start_next(op);
}

static void start_next(struct hb_op *op)
{
	while (op->next < op->n && op->next - op->done < DRDNS_HANDBACK_PARALLEL) {
		struct hb_item *it = &op->items[op->next++];
		it->work.data = it;
		int rc = uv_queue_work(op->ctx->loop, &it->work, item_work, item_done);
		if (rc < 0) {
			snprintf(it->detail, sizeof(it->detail), "not fetched: %s",
			         uv_strerror(rc));
			op->done++;
		}
	}
	if (op->done == op->n)
		finish(op);
}

static char *dup_or_null(const char *s, bool *oom)
{
	char *d = s ? strdup(s) : NULL;
	if (s && !d)
		*oom = true;
	return d;
}

int drdns_handback_fetch(struct drdns_ctx *ctx, const struct drdns_handback_zone *zones, size_t n,
                         drdns_handback_cb cb, void *arg)
{
	if (n == 0)
		return DRDNS_EINVAL;
	const struct drdns_conf *conf = ctx->conf;
	struct hb_op *op = calloc(1, sizeof(*op));
	if (!op)
		return DRDNS_ENOMEM;
	bool oom = false;
	op->ctx = ctx;
	op->cb = cb;
	op->arg = arg;
	op->master = dup_or_null(conf->master.address, &oom);
	op->source = dup_or_null(conf->controller.address, &oom);
	op->port = conf->master.port;
	op->timeout = conf->master.axfr_timeout > 0 ? conf->master.axfr_timeout : 60.0;
	atomic_init(&op->cancel, false);
	if (conf->master.key) {
		op->has_key = true;
		op->key.name = dup_or_null(conf->master.key->name, &oom);
		op->key.algorithm = dup_or_null(conf->master.key->algorithm, &oom);
		op->key.secret = dup_or_null(conf->master.key->secret, &oom);
	}
	op->items = calloc(n, sizeof(*op->items));
	oom = oom || !op->items || !op->master;
	for (size_t i = 0; !oom && i < n; i++) {
		op->items[i].op = op;
		op->items[i].dr_serial = zones[i].dr_serial;
		op->items[i].zone = dup_or_null(zones[i].zone, &oom);
		op->n++;
	}
	if (oom) {
		op_free(op);
		return DRDNS_ENOMEM;
	}
	uv_timer_init(ctx->loop, &op->watch);
	op->watch.data = op;
	uv_unref((uv_handle_t *)&op->watch);
	if (ctx->server)
		uv_timer_start(&op->watch, on_watch, DRDNS_AXFR_CANCEL_MS, DRDNS_AXFR_CANCEL_MS);
	else
		atomic_store(&op->cancel, true);
	drdns_log(DRDNS_LOG_NOTICE, "failover",
	          "hand-back fetching zones=%zu master=%s port=%u tsig=%s", n, op->master, op->port,
	          op->has_key ? op->key.name : "none");
	/* the callback must not run before we return: start from the loop */
	op->next = 0;
	for (size_t i = 0; i < n && i < DRDNS_HANDBACK_PARALLEL; i++) {
		struct hb_item *it = &op->items[op->next++];
		it->work.data = it;
		int rc = uv_queue_work(ctx->loop, &it->work, item_work, item_done);
		if (rc < 0) {
			op->next--;
			break;
		}
	}
	if (op->next == 0) { /* nothing could be queued */
		uv_close((uv_handle_t *)&op->watch, on_watch_closed);
		return DRDNS_ENOMEM;
	}
	return 0;
}
