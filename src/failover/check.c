/*
 * drdnsctl check (see failover.h): read-only.
 *
 * drdns_check_start copies what it needs from the configuration and queues
 * one job in libuv's thread pool; the job loads and validates the DR set,
 * runs the advisory checks, then fetches each zone from the master by AXFR
 * (one after the other: the job holds one pool thread, never more, so the
 * server's own pool work keeps running) and compares.  The reply is built
 * back on the loop.  The op owns copies of everything, so a reload
 * (ctx->conf replaced) cannot pull anything from under the job.
 *
 * Shutdown.  libuv joins its pool threads at exit, so a job stuck in a
 * transfer would hold a stopping drdnsd past its grace period.  A timer on
 * the loop (unref'd) watches ctx->server: when it was there at the start and
 * is gone (drdnsd's SIGTERM closes it), the job is cancelled: the transfer
 * stops within DRDNS_AXFR_CANCEL_MS and the zones left are reported as not
 * fetched.  One check at a time: a second one gets DRDNS_EBUSY.
 */
#include "drdns/axfr.h"
#include "drdns/checks.h"
#include "drdns/compare.h"
#include "drdns/conf.h"
#include "drdns/diag.h"
#include "drdns/error.h"
#include "drdns/failover.h"
#include "drdns/log.h"
#include "drdns/rewrite.h"
#include "drdns/tsig.h"
#include "drdns/zone.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ZONE_TIMEOUT 10.0 /* seconds per AXFR */
/* All transfers together: the reply comes before drdnsctl's default 60 s. */
#define FETCH_BUDGET 45.0

/* One zone's campus copy and the comparison with the DR zone. */
struct campus {
	bool fetched;
	uint32_t serial;
	size_t records; /* the campus zone's records, SOA included */
	char detail[320];
	struct drdns_compare_result cmp;
};

struct check_op {
	uv_work_t work;
	uv_timer_t watch; /* shutdown watch; the op is freed when it has closed */
	struct drdns_ctx *ctx;
	atomic_bool cancel; /* drdnsd is stopping: the job winds down */
	drdns_op_done_cb done;
	void *arg;
	/* inputs, copied at start (owned) */
	char *directory, *ns_name, *master, *source;
	struct drdns_tsig_key *key; /* master.tsig_key's key, or NULL (owned copy) */
	uint16_t port;
	uint32_t dr_ttl;
	char **known; /* configured secondaries' NS names, n_known entries */
	size_t n_known;
	/* results, written by the job, read on the loop after it */
	int load_ret;
	struct drdns_diag errors, warnings;
	struct drdns_zoneset *set;
	struct campus *campus; /* set->n entries, or NULL (out of memory) */
	size_t n_fetched;
};

static bool running; /* a check is in flight (loop thread only) */

static double now_mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void check_free(struct check_op *op)
{
	free(op->directory);
	free(op->ns_name);
	free(op->master);
	free(op->source);
	drdns_tsig_key_free(op->key);
	for (size_t i = 0; i < op->n_known; i++)
		free(op->known[i]);
	free(op->known);
	drdns_diag_clear(&op->errors);
	drdns_diag_clear(&op->warnings);
	for (size_t i = 0; op->campus && i < op->set->n; i++)
		drdns_compare_result_clear(&op->campus[i].cmp);
	free(op->campus);
	drdns_zoneset_free(op->set);
	free(op);
}

static void on_watch_closed(uv_handle_t *h)
{
	check_free(h->data);
}

/* Free op once its timer has closed. */
static void check_release(struct check_op *op)
{
	uv_close((uv_handle_t *)&op->watch, on_watch_closed);
}

static void on_watch(uv_timer_t *t)
{
	struct check_op *op = t->data;
	if (op->ctx->server)
		return;
	atomic_store(&op->cancel, true);
	uv_timer_stop(t);
}

/* ---- the job (thread pool): no loop, no ctx, no logging ---- */

static void fetch_zone(const struct check_op *op, const struct drdns_zone *z, struct campus *c,
                       double budget_end)
{
	double left = budget_end - now_mono();
	if (atomic_load(&op->cancel)) {
		snprintf(c->detail, sizeof(c->detail), "not fetched: drdnsd is stopping");
		return;
	}
	if (left <= 0) {
		snprintf(c->detail, sizeof(c->detail),
		         "not fetched: the transfers of earlier zones used up the check's %g s",
		         FETCH_BUDGET);
		return;
	}
	struct drdns_axfr_opts opts = {
	    .zone = z->name,
	    .address = op->master,
	    .port = op->port,
	    .source = op->source,
	    .key = op->key,
	    .timeout = left < ZONE_TIMEOUT ? left : ZONE_TIMEOUT,
	    .cancel = &op->cancel,
	};
	ldns_rr_list *rrs = NULL;
	char err[200] = "";
	if (drdns_axfr_fetch(&opts, &rrs, err, sizeof(err)) < 0) {
		snprintf(c->detail, sizeof(c->detail),
		         "AXFR from %s port %u (source %s) failed: %s", op->master, op->port,
		         op->source, err);
		return;
	}
	if (drdns_zone_compare(z, rrs, &c->cmp) < 0) {
		drdns_compare_result_clear(&c->cmp);
		snprintf(c->detail, sizeof(c->detail), "out of memory comparing the zones");
	} else {
		c->fetched = true;
		c->serial = drdns_soa_rr_serial(ldns_rr_list_rr(rrs, 0));
		c->records = ldns_rr_list_rr_count(rrs);
	}
	ldns_rr_list_deep_free(rrs);
}

static void check_work(uv_work_t *w)
{
	struct check_op *op = w->data;
	op->load_ret =
	    drdns_zoneset_load_checked(op->directory, op->ns_name, &op->set, &op->errors);
	if (op->load_ret < 0)
		return;
	struct drdns_check_input in = {
	    .dr_ttl = op->dr_ttl,
	    .ns_name = op->ns_name,
	    .known_ns = (const char *const *)op->known,
	    .n_known = op->n_known,
	};
	drdns_zoneset_check(op->set, &in, &op->warnings);
	op->campus = calloc(op->set->n ? op->set->n : 1, sizeof(*op->campus));
	double budget_end = now_mono() + FETCH_BUDGET;
	for (size_t i = 0; op->campus && i < op->set->n; i++) {
		fetch_zone(op, op->set->zones[i], &op->campus[i], budget_end);
		op->n_fetched += op->campus[i].fetched;
	}
}

/* ---- the reply (loop) ---- */

/* "file: warning: zone Z: ..." -> "file: zone Z: ..." (the list says it). */
static json_t *warning_json(const char *msg)
{
	const char *w = strstr(msg, ": warning: ");
	if (!w)
		return json_string(msg);
	return json_sprintf("%.*s: %s", (int)(w - msg), msg, w + strlen(": warning: "));
}

static json_t *messages_json(const struct drdns_diag *d, bool warnings)
{
	json_t *arr = json_array();
	for (size_t i = 0; arr && i < d->n; i++)
		json_array_append_new(arr, warnings ? warning_json(d->msgs[i])
		                                    : json_string(d->msgs[i]));
	return arr;
}

static json_t *campus_json(const struct campus *c)
{
	if (!c->fetched)
		return json_pack("{s:b, s:n, s:n, s:s, s:n, s:n}", "fetched", false, "serial",
		                 "records", "detail", c->detail, "left_out", "dr_only");
	return json_pack("{s:b, s:I, s:I, s:o, s:o}", "fetched", true, "serial",
	                 (json_int_t)c->serial, "records", (json_int_t)c->records, "left_out",
	                 drdns_compare_side_json(&c->cmp.left_out), "dr_only",
	                 drdns_compare_side_json(&c->cmp.dr_only));
}

static json_t *zones_json(const struct check_op *op)
{
	json_t *arr = json_array();
	for (size_t i = 0; arr && i < op->set->n; i++) {
		const struct drdns_zone *z = op->set->zones[i];
		json_t *row = json_pack("{s:s, s:I, s:b, s:o}", "zone", z->name, "records",
		                        (json_int_t)drdns_zone_rr_count(z), "publishes_self",
		                        drdns_rewrite_publishes_self(z, op->ns_name), "campus",
		                        campus_json(&op->campus[i]));
		if (!row || json_array_append_new(arr, row) < 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

/* One line: the verdict, then what the transfers found. */
static json_t *summary(const struct check_op *op)
{
	size_t records = 0, rrsets = 0, n = op->set->n;
	for (size_t i = 0; i < n; i++) {
		records += op->campus[i].cmp.left_out.records;
		rrsets += op->campus[i].cmp.left_out.rrsets;
	}
	char valid[128];
	snprintf(valid, sizeof(valid), "DR set valid: %zu zone%s, %zu warning%s", n,
	         n == 1 ? "" : "s", op->warnings.n, op->warnings.n == 1 ? "" : "s");
	if (op->n_fetched == 0)
		return json_sprintf("%s; no campus zone could be fetched (see each zone's detail)",
		                    valid);
	return json_sprintf("%s; campus zones fetched: %zu of %zu; the DR set leaves out %zu "
	                    "record%s (%zu whole RRset%s)",
	                    valid, op->n_fetched, n, records, records == 1 ? "" : "s", rrsets,
	                    rrsets == 1 ? "" : "s");
}

static json_t *check_reply(const struct check_op *op)
{
	bool valid = op->load_ret == 0;
	if (valid && !op->campus)
		return drdns_error_reply("check", DRDNS_EXIT_ERROR, "out of memory");
	json_t *message =
	    valid ? summary(op)
	          : json_sprintf("the DR zone set in %s is invalid (%zu problem%s); fix it before "
	                         "a failover needs it",
	                         op->directory, op->errors.n, op->errors.n == 1 ? "" : "s");
	return json_pack("{s:i, s:s, s:{s:s, s:b, s:o}, s:o, s:o, s:o}", "exit",
	                 valid ? DRDNS_EXIT_OK : DRDNS_EXIT_ERROR, "command", "check", "dr_set",
	                 "directory", op->directory, "valid", valid, "errors",
	                 messages_json(&op->errors, false), "warnings",
	                 messages_json(&op->warnings, true), "zones",
	                 valid ? zones_json(op) : json_array(), "message", message);
}

static void check_after(uv_work_t *w, int status)
{
	struct check_op *op = w->data;
	json_t *reply = status < 0
	                    ? drdns_error_reply("check", DRDNS_EXIT_ERROR,
	                                        "the check was cancelled: %s", uv_strerror(status))
	                    : check_reply(op);
	if (status == 0)
		drdns_log(DRDNS_LOG_NOTICE, "failover", "check done valid=%s zones=%zu fetched=%zu",
		          op->load_ret == 0 ? "yes" : "no", op->set ? op->set->n : 0,
		          op->n_fetched);
	drdns_op_done_cb done = op->done;
	void *arg = op->arg;
	check_release(op);
	running = false;
	done(reply ? reply : drdns_error_reply("check", DRDNS_EXIT_ERROR, "out of memory"), arg);
}

/* Copy what the job needs from conf. */
static int copy_inputs(struct check_op *op, const struct drdns_conf *conf)
{
	op->directory = strdup(conf->zones.directory);
	op->ns_name = strdup(conf->controller.ns_name);
	op->master = strdup(conf->master.address);
	op->source = strdup(conf->controller.address);
	if (conf->master.key && !(op->key = drdns_tsig_key_copy(conf->master.key)))
		return DRDNS_ENOMEM;
	op->port = conf->master.port;
	op->dr_ttl = conf->zones.dr_ttl;
	op->known = calloc(conf->n_secondaries + 1, sizeof(*op->known));
	for (size_t i = 0; op->known && i < conf->n_secondaries; i++) {
		if (!(op->known[i] = strdup(conf->secondaries[i].name)))
			return DRDNS_ENOMEM;
		op->n_known++;
	}
	if (!op->directory || !op->ns_name || !op->master || !op->source || !op->known)
		return DRDNS_ENOMEM;
	return 0;
}

int drdns_check_start(struct drdns_ctx *ctx, drdns_op_done_cb done, void *arg)
{
	if (running)
		return DRDNS_EBUSY;
	struct check_op *op = calloc(1, sizeof(*op));
	if (!op)
		return DRDNS_ENOMEM;
	op->ctx = ctx;
	op->done = done;
	op->arg = arg;
	op->work.data = op;
	op->watch.data = op;
	atomic_init(&op->cancel, false);
	int ret = uv_timer_init(ctx->loop, &op->watch);
	if (ret < 0) {
		free(op);
		return ret;
	}
	uv_unref((uv_handle_t *)&op->watch);
	ret = copy_inputs(op, ctx->conf);
	if (ret == 0)
		ret = uv_queue_work(ctx->loop, &op->work, check_work, check_after);
	if (ret < 0) {
		check_release(op);
		return ret;
	}
	if (ctx->server) /* no server (tests): nothing to watch */
		uv_timer_start(&op->watch, on_watch, DRDNS_AXFR_CANCEL_MS, DRDNS_AXFR_CANCEL_MS);
	running = true;
	drdns_log(DRDNS_LOG_INFO, "failover", "check started dir=%s master=%s port=%u",
	          ctx->conf->zones.directory, ctx->conf->master.address, ctx->conf->master.port);
	return 0;
}
