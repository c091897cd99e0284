/*
 * Step down: promoted -> standby.  Commit state.json first (the commit point),
 * then stop serving, then NOTIFY every secondary so it re-checks its primaries
 * (drdns now answers REFUSED; the campus primary serves the newer serial).
 * See drdns_stepdown_start() in failover.h.
 */
#include "drdns/audit.h"
#include "drdns/conf.h"
#include "drdns/error.h"
#include "drdns/failover.h"
#include "drdns/log.h"
#include "drdns/notify.h"
#include "drdns/server.h"
#include "drdns/state.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

struct stepdown_op {
	struct drdns_ctx *ctx;
	drdns_op_done_cb done;
	void *arg;
	json_t *record; /* the audit record, completed at the end */
	struct drdns_xfr_peer *peers;
	struct drdns_zone_serial *zones; /* zone strings owned */
	size_t n_zones;
};

static void op_free(struct stepdown_op *op)
{
	json_decref(op->record);
	free(op->peers);
	for (size_t i = 0; i < op->n_zones; i++)
		free((char *)op->zones[i].zone);
	free(op->zones);
	free(op);
}

static void audit(struct stepdown_op *op, const char *result, int exit_code)
{
	const char *path = op->ctx->conf->controller.audit_log;
	json_object_set_new(op->record, "result", json_string(result));
	if (exit_code >= 0)
		json_object_set_new(op->record, "exit", json_integer(exit_code));
	int ret = drdns_audit_append(path, op->record);
	if (ret < 0)
		drdns_log(DRDNS_LOG_ERR, "failover", "audit log write failed path=%s error=\"%s\"",
		          path, drdns_strerror(ret));
}

static void on_notified(struct drdns_notify_result *results, size_t n, void *arg)
{
	struct stepdown_op *op = arg;
	json_t *notify = json_array();
	size_t acked = 0;
	for (size_t i = 0; i < n; i++) {
		acked += results[i].acked;
		json_array_append_new(notify,
		                      json_pack("{s:s, s:s, s:b, s:s}", "secondary",
		                                results[i].peer, "zone", results[i].zone, "acked",
		                                results[i].acked, "detail", results[i].detail));
	}
	free(results);
	drdns_log(DRDNS_LOG_NOTICE, "failover", "stepdown notify acked=%zu of=%zu", acked, n);
	audit(op, "done", DRDNS_EXIT_OK);
	json_t *reply = json_pack(
	    "{s:i, s:s, s:s, s:o}", "exit", DRDNS_EXIT_OK, "command", "stepdown", "message",
	    "stepped down: drdns no longer serves the DR set; the secondaries were "
	    "notified to re-check their primaries",
	    "notify", notify);
	drdns_op_done_cb done = op->done;
	void *done_arg = op->arg;
	op->ctx->busy = false;
	op_free(op);
	done(reply, done_arg);
}

static int commit_standby(struct drdns_ctx *ctx, const char *reason, const char *who_text)
{
	struct drdns_state *st = ctx->state;
	/* A later promotion must go above what was published. */
	for (size_t i = 0; i < st->n_zones; i++)
		drdns_state_note_seen(st, st->zones[i].zone, st->zones[i].serial);
	struct drdns_state next = *st; /* shallow: only the fields set below differ */
	next.promoted = false;
	next.generation = 0;
	next.changed_at = time(NULL);
	next.reason = (char *)reason;
	next.who = (char *)who_text;
	next.zones = NULL;
	next.n_zones = 0;
	int ret = drdns_state_save(ctx->conf->controller.state_dir, &next);
	if (ret < 0)
		return ret;
	char *r = strdup(reason), *w = strdup(who_text);
	free(st->reason);
	free(st->who);
	for (size_t i = 0; i < st->n_zones; i++)
		free(st->zones[i].zone);
	free(st->zones);
	st->promoted = false;
	st->generation = 0;
	st->changed_at = next.changed_at;
	st->reason = r; /* NULL on out of memory: only the in-memory text is lost */
	st->who = w;
	st->zones = NULL;
	st->n_zones = 0;
	return 0;
}

int drdns_stepdown_start(struct drdns_ctx *ctx, const char *reason, const json_t *who,
                         const struct drdns_zone_serial *master_serials, size_t n,
                         drdns_op_done_cb done, void *arg)
{
	if (ctx->busy)
		return DRDNS_EBUSY;
	if (!ctx->state->promoted)
		return DRDNS_ESTATE;
	const struct drdns_conf *conf = ctx->conf;
	struct stepdown_op *op = calloc(1, sizeof(*op));
	if (!op)
		return DRDNS_ENOMEM;
	op->ctx = ctx;
	op->done = done;
	op->arg = arg;
	json_t *published = json_object();
	for (size_t i = 0; published && i < ctx->state->n_zones; i++)
		json_object_set_new(published, ctx->state->zones[i].zone,
		                    json_integer(ctx->state->zones[i].serial));
	json_t *master = json_object();
	for (size_t i = 0; master && i < n; i++)
		json_object_set_new(master, master_serials[i].zone,
		                    json_integer(master_serials[i].serial));
	op->record =
	    json_pack("{s:s, s:s, s:s, s:O, s:o, s:o}", "controller", conf->controller.id, "action",
	              "stepdown", "reason", reason, "who", who ? who : json_null(),
	              "published_serials", published, "master_serials", master);
	op->peers = calloc(conf->n_secondaries ? conf->n_secondaries : 1, sizeof(*op->peers));
	op->zones = calloc(n ? n : 1, sizeof(*op->zones));
	for (size_t i = 0; op->zones && i < n; i++) {
		if (!(op->zones[i].zone = strdup(master_serials[i].zone)))
			break;
		op->zones[i].serial = master_serials[i].serial;
		op->n_zones++;
	}
	if (!op->record || !op->peers || !op->zones || op->n_zones != n) {
		op_free(op);
		return DRDNS_ENOMEM;
	}
	for (size_t i = 0; i < conf->n_secondaries; i++) {
		op->peers[i].name = conf->secondaries[i].name;
		op->peers[i].address = conf->secondaries[i].address;
		op->peers[i].port = conf->secondaries[i].port;
		op->peers[i].key = conf->secondaries[i].key;
	}

	const char *who_str = json_string_value(json_object_get(who, "watchdog"));
	char who_text[256];
	snprintf(who_text, sizeof(who_text), "%s%s", who_str ? "watchdog controller=" : "operator",
	         who_str ? who_str : "");
	int ret = commit_standby(ctx, reason, who_text);
	if (ret < 0) {
		drdns_log(DRDNS_LOG_ERR, "failover",
		          "stepdown not committed: cannot save state dir=%s error=\"%s\"",
		          conf->controller.state_dir, drdns_strerror(ret));
		audit(op, "error", DRDNS_EXIT_ERROR);
		op_free(op);
		return ret;
	}
	/* Committed: stop serving (REFUSED), drop the generations. */
	if (ctx->server)
		drdns_server_set_zones(ctx->server, NULL);
	drdns_state_gc(conf->controller.state_dir, 0);
	drdns_log(DRDNS_LOG_NOTICE, "failover", "stepped down reason=\"%s\"", reason);
	audit(op, "committed", -1);
	ctx->busy = true;
	if (op->n_zones == 0 || conf->n_secondaries == 0 ||
	    drdns_notify_batch(ctx->loop, conf->controller.address, op->peers, conf->n_secondaries,
	                       op->zones, op->n_zones, conf->policy.notify_timeout,
	                       conf->policy.notify_attempts, on_notified, op) < 0)
		on_notified(NULL, 0, op); /* committed all the same; nothing to notify */
	return 0;
}
