/*
 * Promotion: DR zone set -> probes -> rewrite -> commit -> serve -> NOTIFY ->
 * convergence.  Runs on the event loop as a chain of callbacks; one at a time.
 */
#include "drdns/audit.h"
#include "drdns/conf.h"
#include "drdns/diag.h"
#include "drdns/dnssec.h"
#include "drdns/error.h"
#include "drdns/failover.h"
#include "drdns/fsutil.h"
#include "drdns/log.h"
#include "drdns/notify.h"
#include "drdns/probe.h"
#include "drdns/rewrite.h"
#include "drdns/serial.h"
#include "drdns/server.h"
#include "drdns/state.h"
#include "drdns/zone.h"
#include "continuity.h"
#include "nameservers.h"

#include <openssl/crypto.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct promote_op;

struct peer_run {
	struct promote_op *op;
	struct drdns_xfr_peer peer;
	struct drdns_zone_serial *zones; /* the zones this peer carries */
	size_t n_zones;
	struct drdns_notify_result *notify;     /* n_zones, owned */
	struct drdns_converge_result *converge; /* 1, owned */
};

struct promote_op {
	struct drdns_ctx *ctx;
	char *reason;
	json_t *who;
	bool dry_run, force, repeat;
	bool resign;         /* drdns_resign_start: a new signed generation while promoted */
	const char *command; /* "promote" or "resign": replies, audit, logs */
	bool committed;      /* state.json names a new generation */
	double wait;
	drdns_op_done_cb done;
	void *done_arg;

	struct drdns_zoneset *dr;    /* the DR set as loaded */
	struct drdns_nameservers ns; /* probe targets */
	struct drdns_soa_result *probes;
	size_t n_probes;
	json_t *zones_json;                /* per-zone plan */
	struct drdns_zone_serial *serials; /* serial published per zone (points into dr names) */
	size_t n_serials;
	struct peer_run *peers;
	size_t n_peers;
	int pending;
	uint64_t started_ns;
};

/* Replace every byte that is not part of valid UTF-8 with '?': jansson refuses
 * invalid UTF-8 (json_pack returns NULL), and a message may quote a file name or
 * have been cut in the middle of a character by vsnprintf. */
static void utf8_sanitize(char *s)
{
	unsigned char *p = (unsigned char *)s;
	while (*p) {
		size_t len = *p < 0x80             ? 1
		             : (*p & 0xE0) == 0xC0 ? 2
		             : (*p & 0xF0) == 0xE0 ? 3
		             : (*p & 0xF8) == 0xF0 ? 4
		                                   : 0;
		uint32_t cp = len == 1   ? *p
		              : len == 2 ? *p & 0x1Fu
		              : len == 3 ? *p & 0x0Fu
		                         : *p & 0x07u;
		size_t i = 1;
		for (; len && i < len && (p[i] & 0xC0) == 0x80; i++)
			cp = cp << 6 | (p[i] & 0x3Fu);
		bool ok = len && i == len &&
		          (len == 1 || (len == 2 && cp >= 0x80) ||
		           (len == 3 && cp >= 0x800 && (cp < 0xD800 || cp > 0xDFFF)) ||
		           (len == 4 && cp >= 0x10000 && cp <= 0x10FFFF));
		if (!ok) {
			*p++ = '?';
			continue;
		}
		p += len;
	}
}

json_t *drdns_error_reply(const char *command, int exit_code, const char *fmt, ...)
{
	char msg[8192];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	utf8_sanitize(msg);
	return json_pack("{s:i, s:s, s:s}", "exit", exit_code, "command", command, "error", msg);
}

static void op_free(struct promote_op *op)
{
	free(op->reason);
	json_decref(op->who);
	drdns_zoneset_free(op->dr);
	drdns_nameservers_clear(&op->ns);
	drdns_soa_results_free(op->probes, op->n_probes);
	json_decref(op->zones_json);
	free(op->serials);
	for (size_t i = 0; i < op->n_peers; i++) {
		free(op->peers[i].zones);
		free(op->peers[i].notify);
		drdns_converge_results_free(op->peers[i].converge, op->peers[i].converge ? 1 : 0);
	}
	free(op->peers);
	free(op);
}

static void audit(struct promote_op *op, const char *result, int exit_code, const char *detail)
{
	const struct drdns_conf *conf = op->ctx->conf;
	json_t *serials = json_object();
	for (size_t i = 0; i < op->n_serials; i++)
		json_object_set_new(serials, op->serials[i].zone,
		                    json_integer(op->serials[i].serial));
	json_t *rec = json_pack("{s:s, s:s, s:s, s:O, s:s, s:s?, s:b, s:b, s:o}", "controller",
	                        conf->controller.id, "action", op->command, "reason", op->reason,
	                        "who", op->who, "result", result, "detail", detail, "force",
	                        op->force, "repeat", op->repeat, "serials", serials);
	if (rec && exit_code >= 0) /* < 0: an intermediate record (the operation goes on) */
		json_object_set_new(rec, "exit", json_integer(exit_code));
	int ret = rec ? drdns_audit_append(conf->controller.audit_log, rec) : DRDNS_ENOMEM;
	if (ret < 0)
		drdns_log(DRDNS_LOG_ERR, "failover", "audit log write failed path=%s error=\"%s\"",
		          conf->controller.audit_log, drdns_strerror(ret));
	json_decref(rec);
}

/* Finish: reply, audit when something was attempted, release the lock. */
static void finish(struct promote_op *op, json_t *reply)
{
	struct drdns_ctx *ctx = op->ctx;
	if (!reply) /* building the reply failed: never let that read as exit 0 */
		reply =
		    json_pack("{s:i, s:s, s:s}", "exit",
		              op->committed ? DRDNS_EXIT_PARTIAL : DRDNS_EXIT_ERROR, "command",
		              op->command, "error",
		              op->committed ? "promoted, but the report could not be built (out "
		                              "of memory): check with drdnsctl status"
		                            : "out of memory");
	int exit_code = (int)json_integer_value(json_object_get(reply, "exit"));
	if (!op->dry_run) {
		const char *err = json_string_value(json_object_get(reply, "error"));
		const char *msg = json_string_value(json_object_get(reply, "message"));
		const char *result = exit_code == DRDNS_EXIT_OK        ? "done"
		                     : exit_code == DRDNS_EXIT_PARTIAL ? "done-not-converged"
		                     : exit_code == DRDNS_EXIT_REFUSED ? "refused"
		                                                       : "error";
		audit(op, result, exit_code, err ? err : msg);
	}
	drdns_log(exit_code == 0 ? DRDNS_LOG_NOTICE : DRDNS_LOG_WARNING, "failover",
	          "%s finished exit=%d dry_run=%s repeat=%s", op->command, exit_code,
	          op->dry_run ? "yes" : "no", op->repeat ? "yes" : "no");
	ctx->busy = false;
	drdns_op_done_cb done = op->done;
	void *arg = op->done_arg;
	op_free(op);
	done(reply, arg);
}

static void fail(struct promote_op *op, int exit_code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(struct promote_op *op, int exit_code, const char *fmt, ...)
{
	char msg[8192];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	drdns_log(DRDNS_LOG_WARNING, "failover", "%s failed exit=%d error=\"%s\"", op->command,
	          exit_code, msg);
	finish(op, drdns_error_reply(op->command, exit_code, "%s", msg));
}

static double since_start(const struct promote_op *op)
{
	return (double)(uv_hrtime() - op->started_ns) / 1e9;
}

static const struct drdns_soa_result *probe_of(const struct promote_op *op, size_t ns_index,
                                               size_t zone_index)
{
	return &op->probes[ns_index * op->dr->n + zone_index];
}

/* ---- step 5: NOTIFY and convergence ---- */

static json_t *secondaries_report(struct promote_op *op, bool *all_converged)
{
	json_t *arr = json_array();
	*all_converged = true;
	for (size_t i = 0; i < op->ns.n; i++) {
		const struct drdns_nameserver *ns = &op->ns.list[i];
		if (!ns->secondary)
			continue;
		struct peer_run *run = NULL;
		for (size_t p = 0; p < op->n_peers; p++)
			if (op->peers[p].peer.name == ns->name)
				run = &op->peers[p];
		if (!run) {
			const struct drdns_soa_result *r = probe_of(op, i, 0);
			char detail[160];
			snprintf(detail, sizeof(detail),
			         "did not answer at promotion (%s): not notified, not waited for",
			         r->detail);
			json_array_append_new(arr, json_pack("{s:s, s:s, s:b, s:b, s:s}", "name",
			                                     ns->name, "address", ns->address,
			                                     "skipped", true, "converged", false,
			                                     "detail", detail));
			continue;
		}
		json_t *notify = json_array();
		bool acked = run->notify != NULL; /* NULL: the NOTIFY batch could not start */
		int attempts = 0;
		for (size_t z = 0; z < run->n_zones && run->notify; z++) {
			acked = acked && run->notify[z].acked;
			if (run->notify[z].attempts > attempts) /* the worst zone */
				attempts = run->notify[z].attempts;
			json_array_append_new(
			    notify,
			    json_pack("{s:s, s:b, s:i, s:i, s:f, s:s}", "zone", run->notify[z].zone,
			              "acked", run->notify[z].acked, "rcode", run->notify[z].rcode,
			              "attempts", run->notify[z].attempts, "seconds",
			              run->notify[z].seconds, "detail", run->notify[z].detail));
		}
		const struct drdns_converge_result *c = run->converge;
		json_t *zones = json_array();
		for (size_t z = 0; c && z < c->n_zones; z++)
			json_array_append_new(
			    zones,
			    json_pack("{s:s, s:o}", "zone", run->zones[z].zone, "serial",
			              c->has_served[z] ? json_integer(c->served[z]) : json_null()));
		bool converged = c && c->converged;
		*all_converged = *all_converged && converged;
		json_array_append_new(
		    arr,
		    json_pack("{s:s, s:s, s:b, s:{s:b, s:i, s:o}, s:b, s:o, s:o, s:s, s:o}", "name",
		              ns->name, "address", ns->address, "skipped", false, "notify", "acked",
		              acked, "attempts", attempts, "zones", notify, "converged", converged,
		              "seconds", converged ? json_real(c->seconds) : json_null(), "zones",
		              zones, "detail", c ? c->detail : "no result", "transfer_refused",
		              drdns_converge_refusal_json(c)));
	}
	return arr;
}

static void peer_step_done(struct promote_op *op)
{
	if (--op->pending > 0)
		return;
	bool all;
	json_t *secs = secondaries_report(op, &all);
	/* With no live secondary nothing can have converged: that is not success. */
	bool none = op->n_peers == 0;
	int code = all && !none ? DRDNS_EXIT_OK : DRDNS_EXIT_PARTIAL;
	char msg[256];
	snprintf(msg, sizeof(msg), "%s; %s after %.1f s",
	         op->resign   ? "re-signed: a new generation with fresh signatures is served"
	         : op->repeat ? "already promoted: serials unchanged, NOTIFY sent again"
	                      : "promoted: drdns is the primary for the DR zone set",
	         none  ? "no secondary answered, so none was notified or converged"
	         : all ? "every live secondary converged"
	               : "some secondaries did not converge",
	         since_start(op));
	json_t *reply = json_pack("{s:i, s:s, s:b, s:b, s:s, s:O, s:o}", "exit", code, "command",
	                          op->command, "dry_run", false, "already_promoted", op->repeat,
	                          "message", msg, "zones", op->zones_json, "secondaries", secs);
	finish(op, reply);
}

static void on_notified(struct drdns_notify_result *results, size_t n, void *arg)
{
	struct peer_run *run = arg;
	(void)n;
	run->notify = results;
	peer_step_done(run->op);
}

static void on_converged(struct drdns_converge_result *results, size_t n, void *arg)
{
	struct peer_run *run = arg;
	(void)n;
	run->converge = results;
	peer_step_done(run->op);
}

/* NOTIFY every live secondary and watch it converge, both at once: the clock for
 * convergence starts now, not after the last NOTIFY retry. */
static void notify_and_watch(struct promote_op *op)
{
	const struct drdns_conf *conf = op->ctx->conf;
	op->peers = calloc(op->ns.n, sizeof(*op->peers));
	if (!op->peers) {
		if (op->committed)
			fail(op, DRDNS_EXIT_PARTIAL,
			     "%s and serving, but out of memory before NOTIFY: run promote "
			     "again to notify the secondaries",
			     op->resign ? "re-signed" : "promoted");
		else
			fail(op, DRDNS_EXIT_ERROR, "out of memory; nothing changed");
		return;
	}
	for (size_t i = 0; i < op->ns.n; i++) {
		const struct drdns_nameserver *ns = &op->ns.list[i];
		if (!ns->secondary)
			continue;
		struct peer_run *run = &op->peers[op->n_peers];
		run->zones = calloc(op->n_serials, sizeof(*run->zones));
		if (!run->zones)
			continue;
		for (size_t z = 0; z < op->n_serials; z++)
			if (probe_of(op, i, z)->answered)
				run->zones[run->n_zones++] = op->serials[z];
		if (run->n_zones == 0) { /* dead, or carries none of our zones */
			free(run->zones);
			run->zones = NULL;
			continue;
		}
		run->op = op;
		run->peer.name = ns->name;
		run->peer.address = ns->address;
		run->peer.port = ns->port;
		run->peer.key = ns->secondary->key;
		op->n_peers++;
	}
	op->pending = 1; /* held until every request is started */
	double wait = op->wait >= 0 ? op->wait : conf->policy.default_wait;
	for (size_t p = 0; p < op->n_peers; p++) {
		struct peer_run *run = &op->peers[p];
		op->pending += 2;
		if (drdns_notify_batch(op->ctx->loop, conf->controller.address, &run->peer, 1,
		                       run->zones, run->n_zones, conf->policy.notify_timeout,
		                       conf->policy.notify_attempts, on_notified, run) < 0)
			op->pending--;
		if (drdns_converge_watch(op->ctx->loop, conf->controller.address, &run->peer, 1,
		                         run->zones, run->n_zones, conf->policy.poll_interval, wait,
		                         on_converged, run) < 0)
			op->pending--;
	}
	peer_step_done(op);
}

/* ---- step 4: commit and swap ---- */

char *drdns_who_text(const json_t *who)
{
	char *text = NULL;
	const char *watchdog = json_string_value(json_object_get(who, "watchdog"));
	if (watchdog)
		return asprintf(&text, "watchdog controller=%s", watchdog) < 0 ? NULL : text;
	const char *user = json_string_value(json_object_get(who, "user"));
	const char *sudo = json_string_value(json_object_get(who, "sudo_user"));
	const char *ssh = json_string_value(json_object_get(who, "ssh_client"));
	json_int_t uid = json_integer_value(json_object_get(who, "uid"));
	if (asprintf(&text, "uid=%lld%s%s%s%s%s%s", (long long)uid, user ? " user=" : "",
	             user ? user : "", sudo ? " sudo_user=" : "", sudo ? sudo : "",
	             ssh ? " ssh_client=" : "", ssh ? ssh : "") < 0)
		return NULL;
	return text;
}

static void remove_generation(const char *state_dir, unsigned long gen)
{
	char *dir = NULL;
	if (asprintf(&dir, "%s/gen-%lu", state_dir, gen) < 0)
		return;
	drdns_rm_rf(dir);
	free(dir);
}

/* Crash-safety tests (tests/integration/watchdog.sh): DRDNS_TEST_FAULT=<point>
 * makes drdnsd kill itself with SIGKILL at that point of a promotion, exactly
 * as a power cut would leave it.  Points: after-generation, after-commit. */
static void test_fault(const char *point)
{
	const char *want = getenv("DRDNS_TEST_FAULT");
	if (want && !strcmp(want, point)) {
		drdns_log(DRDNS_LOG_ERR, "failover", "DRDNS_TEST_FAULT=%s: killing myself", point);
		raise(SIGKILL);
	}
}

/* Write the rewritten set as a new generation, commit state.json, swap it into
 * the server.  On failure nothing changed: not in memory, not on disk, not in
 * what is served (rewritten stays the caller's either way). */
static int commit(struct promote_op *op, const struct drdns_zoneset *rewritten, char *err,
                  size_t errlen)
{
	struct drdns_ctx *ctx = op->ctx;
	const char *state_dir = ctx->conf->controller.state_dir;
	struct drdns_zoneset *written = NULL;
	struct drdns_diag diag = {0};
	unsigned long gen = 0;
	/* seen, contact and the pause strings are shared with ctx->state (not owned
	 * here); reason, who and zones are owned */
	struct drdns_state next = *ctx->state;
	next.reason = next.who = NULL;
	next.zones = NULL;
	next.n_zones = 0;

	int ret = drdns_state_write_generation(state_dir, rewritten, &gen);
	if (ret < 0) {
		snprintf(err, errlen, "cannot write the DR zone set to %s: %s", state_dir,
		         drdns_strerror(ret));
		goto cleanup;
	}
	/* Read it back as a restart would: a set that would not load at start-up is
	 * never committed, and what is served is exactly what is on disk. */
	ret = drdns_state_load_generation(state_dir, gen, &written, &diag);
	if (ret == 0 && written->n != op->n_serials)
		ret = DRDNS_ESTATE;
	for (size_t i = 0; ret == 0 && i < written->n; i++) /* both sorted by name */
		if (strcmp(written->zones[i]->name, op->serials[i].zone) ||
		    drdns_zone_serial(written->zones[i]) != op->serials[i].serial)
			ret = DRDNS_ESTATE;
	if (ret < 0) {
		snprintf(err, errlen,
		         "the DR zone set written to %s/gen-%lu does not load back: %s", state_dir,
		         gen, diag.n ? diag.msgs[0] : drdns_strerror(ret));
		remove_generation(state_dir, gen);
		goto cleanup;
	}
	next.promoted = true;
	next.generation = gen;
	if (op->resign) { /* the same promotion goes on: its time, reason and who stay */
		next.reason = strdup(ctx->state->reason ? ctx->state->reason : "");
		next.who = strdup(ctx->state->who ? ctx->state->who : "");
	} else {
		next.changed_at = time(NULL);
		next.last_promotion_at = next.changed_at; /* the watchdog's anti-flap block */
		next.reason = strdup(op->reason);
		next.who = drdns_who_text(op->who);
	}
	next.zones = calloc(op->n_serials ? op->n_serials : 1, sizeof(*next.zones));
	ret = next.reason && next.who && next.zones ? 0 : DRDNS_ENOMEM;
	for (size_t i = 0; ret == 0 && i < op->n_serials; i++) {
		next.zones[i].serial = op->serials[i].serial;
		if (!(next.zones[i].zone = strdup(op->serials[i].zone)))
			ret = DRDNS_ENOMEM;
		next.n_zones++;
	}
	bool tried = ret == 0;
	test_fault("after-generation"); /* written, not committed */
	if (tried)
		ret = drdns_state_save(state_dir, &next);
	if (ret < 0) {
		/* The rename may have happened before the failure (fsync of the directory):
		 * put the previous state back before removing the generation it may name. */
		int back = tried ? drdns_state_save(state_dir, ctx->state) : 0;
		snprintf(err, errlen, "cannot commit %s/state.json: %s%s", state_dir,
		         drdns_strerror(ret),
		         back < 0 ? " (and the previous state.json could not be restored: check "
		                    "state_dir before restarting drdnsd)"
		                  : "");
		if (back == 0)
			remove_generation(state_dir, gen);
		goto cleanup;
	}
	/* Committed: adopt the new state in memory, then serve what was committed. */
	test_fault("after-commit"); /* committed, not yet served or notified */
	op->committed = true;
	free(ctx->state->reason);
	free(ctx->state->who);
	for (size_t i = 0; i < ctx->state->n_zones; i++)
		free(ctx->state->zones[i].zone);
	free(ctx->state->zones);
	ctx->state->promoted = true;
	ctx->state->generation = gen;
	ctx->state->changed_at = next.changed_at;
	ctx->state->last_promotion_at = next.last_promotion_at;
	ctx->state->reason = next.reason;
	ctx->state->who = next.who;
	ctx->state->zones = next.zones;
	ctx->state->n_zones = next.n_zones;
	next.reason = next.who = NULL;
	next.zones = NULL;
	next.n_zones = 0;
	size_t n_written = written->n;
	drdns_server_set_zones(ctx->server, written); /* hands it over */
	if (!drdns_server_zones(ctx->server))
		drdns_log(DRDNS_LOG_ERR, "failover",
		          "committed generation=%lu but the server did not take it: restart drdnsd "
		          "to serve it",
		          gen);
	written = NULL;
	drdns_state_gc(state_dir, gen);
	drdns_log(DRDNS_LOG_NOTICE, "failover", "%s generation=%lu zones=%zu reason=\"%s\"",
	          op->resign ? "re-signed" : "promoted", gen, n_written, op->reason);
cleanup:
	drdns_zoneset_free(written);
	drdns_diag_clear(&diag);
	free(next.reason);
	free(next.who);
	for (size_t i = 0; i < next.n_zones; i++)
		free(next.zones[i].zone);
	free(next.zones);
	return ret;
}

/* ---- step 4: commit, then NOTIFY ---- */

static void commit_and_notify(struct promote_op *op, struct drdns_zoneset *out)
{
	char err[512] = "";
	if (commit(op, out, err, sizeof(err)) < 0) {
		drdns_zoneset_free(out);
		fail(op, DRDNS_EXIT_ERROR, "%s; nothing changed", err);
		return;
	}
	drdns_zoneset_free(out); /* the server serves the set as read back from disk */
	/* On record at the commit point: the wait for convergence may be long, and
	 * drdnsd may be stopped or die before the final record. */
	audit(op, "committed", -1, NULL);
	notify_and_watch(op);
}

/* ---- step 3b: DNSSEC (dnssec.h), in libuv's thread pool ---- */

struct sign_job {
	uv_work_t req;
	struct promote_op *op;
	struct drdns_zoneset *set;  /* rewritten zones; signed in place (owned) */
	struct drdns_keyset **keys; /* per zone, NULL: unsigned (owned) */
	size_t n;                   /* zones in set (set is handed on at the end) */
	struct drdns_sign_params params;
	struct drdns_sign_stats *stats; /* per zone */
	int rc;
	char err[512];
};

static void sign_job_free(struct sign_job *job)
{
	for (size_t i = 0; job->keys && i < job->n; i++)
		drdns_keyset_free(job->keys[i]);
	free(job->keys);
	free(job->stats);
	drdns_zoneset_free(job->set);
	free(job);
}

static void sign_work(uv_work_t *req)
{
	struct sign_job *job = req->data;
	for (size_t i = 0; i < job->set->n && job->rc == 0; i++) {
		if (!job->keys[i])
			continue;
		struct drdns_zone *signed_zone = NULL;
		job->rc = drdns_zone_sign(job->set->zones[i], job->keys[i], &job->params,
		                          &signed_zone, &job->stats[i], job->err, sizeof(job->err));
		if (job->rc == 0) {
			drdns_zone_free(job->set->zones[i]);
			job->set->zones[i] = signed_zone;
		}
	}
	/* libuv's pool threads live until exit: give back this thread's OpenSSL
	 * state (error queue, random generator) now, not never. */
	OPENSSL_thread_stop();
}

static void sign_done(uv_work_t *req, int status)
{
	struct sign_job *job = req->data;
	struct promote_op *op = job->op;
	if (status < 0 || job->rc < 0) {
		fail(op, DRDNS_EXIT_ERROR, "signing failed: %s; nothing changed",
		     status < 0 ? uv_strerror(status) : job->err);
		sign_job_free(job);
		return;
	}
	if (!op->ctx->server) {
		fail(op, DRDNS_EXIT_ERROR, "drdnsd is shutting down; nothing changed");
		sign_job_free(job);
		return;
	}
	for (size_t i = 0; i < job->set->n; i++) {
		if (!job->keys[i])
			continue;
		json_t *d = json_object_get(json_array_get(op->zones_json, i), "dnssec");
		const struct drdns_sign_stats *st = &job->stats[i];
		json_object_set_new(d, "signatures", json_integer((json_int_t)st->signatures));
		json_object_set_new(d, "earliest_expiration",
		                    json_integer((json_int_t)st->earliest_expiration));
		json_object_set_new(d, "seconds", json_real(st->seconds));
		drdns_log(DRDNS_LOG_INFO, "failover",
		          "signed zone=%s signatures=%zu nsec=%zu seconds=%.3f",
		          job->set->zones[i]->name, st->signatures, st->nsec_records, st->seconds);
	}
	struct drdns_zoneset *set = job->set;
	job->set = NULL;
	sign_job_free(job);
	commit_and_notify(op, set);
}

/* The keys of every zone (dnssec.keys), with what the plan shows of them.
 * Returns 0 and *out (per zone, NULL entries for unsigned zones; *out itself
 * NULL when nothing is signed), or an error with err set. */
static int load_keys(struct promote_op *op, const struct drdns_zoneset *set,
                     struct drdns_keyset ***out, char *err, size_t errlen)
{
	const struct drdns_conf *conf = op->ctx->conf;
	*out = NULL;
	if (!conf->dnssec.keys)
		return 0;
	struct drdns_keyset **keys = calloc(set->n ? set->n : 1, sizeof(*keys));
	if (!keys) {
		snprintf(err, errlen, "out of memory");
		return DRDNS_ENOMEM;
	}
	size_t signed_zones = 0;
	struct drdns_diag diag = {0};
	int ret = 0;
	for (size_t i = 0; i < set->n; i++) {
		if (drdns_keyset_load(conf->dnssec.keys, set->zones[i]->name, &keys[i], &diag) < 0)
			ret = DRDNS_EDNSSEC; /* every zone's problems, not the first */
		json_t *d = json_object();
		json_object_set_new(d, "signed", json_boolean(keys[i] != NULL));
		if (keys[i]) {
			json_t *ks = json_array();
			for (size_t k = 0; k < keys[i]->n; k++)
				json_array_append_new(
				    ks, json_pack("{s:i, s:i, s:b}", "tag", keys[i]->keys[k].tag,
				                  "algorithm", keys[i]->keys[k].algorithm, "ksk",
				                  keys[i]->keys[k].ksk));
			json_object_set_new(d, "keys", ks);
			json_object_set_new(d, "denial",
			                    json_string(conf->dnssec.nsec3 ? "NSEC3" : "NSEC"));
			signed_zones++;
		}
		json_object_set_new(json_array_get(op->zones_json, i), "dnssec", d);
	}
	if (ret < 0) {
		char *text = drdns_diag_join(&diag);
		snprintf(err, errlen, "the DNSSEC keys in %s are unusable:\n%s", conf->dnssec.keys,
		         text ? text : "");
		free(text);
	}
	drdns_diag_clear(&diag);
	if (ret < 0 || signed_zones == 0) {
		for (size_t i = 0; i < set->n; i++)
			drdns_keyset_free(keys[i]);
		free(keys);
		return ret;
	}
	*out = keys;
	return 0;
}

/* Sign the zones that have keys (keys handed over), then commit. */
static void sign_then_commit(struct promote_op *op, struct drdns_zoneset *set,
                             struct drdns_keyset **keys)
{
	const struct drdns_conf *conf = op->ctx->conf;
	struct sign_job *job = calloc(1, sizeof(*job));
	if (job)
		job->stats = calloc(set->n ? set->n : 1, sizeof(*job->stats));
	if (!job || !job->stats) {
		free(job);
		for (size_t i = 0; i < set->n; i++)
			drdns_keyset_free(keys[i]);
		free(keys);
		drdns_zoneset_free(set);
		fail(op, DRDNS_EXIT_ERROR, "out of memory; nothing changed");
		return;
	}
	job->op = op;
	job->set = set;
	job->n = set->n;
	job->keys = keys;
	job->req.data = job;
	job->params = (struct drdns_sign_params){
	    .now = (uint64_t)time(NULL),
	    .validity = conf->dnssec.validity,
	    .inception_offset = conf->dnssec.inception_offset,
	    .jitter = conf->dnssec.jitter,
	    .nsec3 = conf->dnssec.nsec3,
	    .nsec3_iterations = conf->dnssec.nsec3_iterations,
	    .nsec3_salt = conf->dnssec.nsec3_salt_len ? conf->dnssec.nsec3_salt : NULL,
	    .nsec3_salt_len = conf->dnssec.nsec3_salt_len,
	    .nsec3_opt_out = conf->dnssec.nsec3_opt_out,
	    .threads = conf->dnssec.threads,
	};
	int rc = uv_queue_work(op->ctx->loop, &job->req, sign_work, sign_done);
	if (rc < 0) {
		sign_job_free(job);
		fail(op, DRDNS_EXIT_ERROR, "cannot start signing: %s; nothing changed",
		     uv_strerror(rc));
	}
}

static void free_keys(struct drdns_keyset **keys, size_t n)
{
	for (size_t i = 0; keys && i < n; i++)
		drdns_keyset_free(keys[i]);
	free(keys);
}

/* The plan is complete: a dry run reports it; otherwise sign what has keys,
 * then commit.  Takes out and keys over. */
static void after_plan(struct promote_op *op, struct drdns_zoneset *out, struct drdns_keyset **keys)
{
	if (op->dry_run) {
		free_keys(keys, out->n);
		drdns_zoneset_free(out);
		json_t *reply =
		    json_pack("{s:i, s:s, s:b, s:b, s:s, s:O}", "exit", DRDNS_EXIT_OK, "command",
		              op->command, "dry_run", true, "already_promoted", op->resign,
		              "message", "dry run: nothing changed", "zones", op->zones_json);
		finish(op, reply);
		return;
	}
	if (keys)
		sign_then_commit(op, out, keys); /* hands both over */
	else
		commit_and_notify(op, out);
}

/* ---- step 3c: DNSSEC key continuity (continuity.h) ---- */

struct continuity_run {
	struct promote_op *op;
	struct drdns_zoneset *out;
	struct drdns_keyset **keys;
};

static void on_dnskeys(struct drdns_dnskey_result *results, size_t n, void *arg)
{
	struct continuity_run *run = arg;
	struct promote_op *op = run->op;
	struct drdns_zoneset *out = run->out;
	struct drdns_keyset **keys = run->keys;
	free(run);
	char why[1024] = "";
	size_t used = 0, broken = 0;
	for (size_t z = 0; z < out->n; z++) {
		ldns_rr_list *ours = keys && keys[z] ? drdns_keyset_dnskeys(keys[z], 3600) : NULL;
		json_t *detail = NULL;
		enum drdns_continuity c =
		    drdns_continuity_check(out->zones[z]->name, ours, results, n, &detail);
		ldns_rr_list_deep_free(ours);
		json_t *zj = json_array_get(op->zones_json, z);
		json_t *d = json_object_get(zj, "dnssec");
		if (!d && zj && (d = json_pack("{s:b}", "signed", false)))
			json_object_set_new(zj, "dnssec", d);
		if (d && detail)
			json_object_update(d, detail);
		if (drdns_continuity_breaks(c)) {
			broken++;
			if (used < sizeof(why))
				used += (size_t)snprintf(
				    why + used, sizeof(why) - used, "\n  %s: %s",
				    out->zones[z]->name,
				    json_string_value(json_object_get(detail, "message")));
		}
		drdns_log(c == DRDNS_CONT_SAME || c == DRDNS_CONT_UNSIGNED ? DRDNS_LOG_INFO
		                                                           : DRDNS_LOG_WARNING,
		          "failover", "dnssec continuity zone=%s result=%s", out->zones[z]->name,
		          drdns_continuity_str(c));
		json_decref(detail);
	}
	drdns_dnskey_results_free(results, n);
	if (broken && !op->force) {
		free_keys(keys, out->n);
		drdns_zoneset_free(out);
		fail(
		    op, DRDNS_EXIT_REFUSED,
		    "refused: DNSSEC key continuity would break:%s\nNothing changed. Fix the keys, "
		    "or repeat with --force to promote anyway",
		    why);
		return;
	}
	after_plan(op, out, keys);
}

/* Ask every nameserver that answered the SOA probe for each zone's DNSKEY set,
 * then compare with what would be published (also without a dnssec group: a
 * zone signed on the campus must not be published unsigned).  Takes out and
 * keys over. */
static void check_continuity(struct promote_op *op, struct drdns_zoneset *out,
                             struct drdns_keyset **keys)
{
	const struct drdns_conf *conf = op->ctx->conf;
	struct drdns_dnskey_target *targets = calloc(op->ns.n * out->n + 1, sizeof(*targets));
	struct continuity_run *run = calloc(1, sizeof(*run));
	size_t n = 0;
	for (size_t i = 0; targets && i < op->ns.n; i++)
		for (size_t z = 0; z < out->n; z++)
			if (probe_of(op, i, z)->answered)
				targets[n++] = (struct drdns_dnskey_target){
				    .label = op->ns.list[i].name,
				    .address = op->ns.list[i].address,
				    .port = op->ns.list[i].port,
				    .zone = out->zones[z]->name,
				};
	int ret = DRDNS_ENOMEM;
	if (targets && run) {
		*run = (struct continuity_run){.op = op, .out = out, .keys = keys};
		ret = drdns_dnskey_probe(op->ctx->loop, conf->controller.address, targets, n,
		                         conf->policy.probe_timeout, conf->policy.probe_attempts,
		                         on_dnskeys, run);
	}
	free(targets);
	if (ret < 0) {
		free(run);
		free_keys(keys, out->n);
		drdns_zoneset_free(out);
		fail(op, DRDNS_EXIT_ERROR, "cannot ask for the DNSKEY sets: %s; nothing changed",
		     drdns_strerror(ret));
	}
}

/* ---- step 3: rewrite ---- */

static void rewrite_all(struct promote_op *op)
{
	struct drdns_ctx *ctx = op->ctx;
	const struct drdns_conf *conf = ctx->conf;
	struct drdns_zoneset *out = calloc(1, sizeof(*out));
	char err[512] = "";
	int exit_code = DRDNS_EXIT_ERROR;

	op->zones_json = json_array();
	op->serials = calloc(op->dr->n, sizeof(*op->serials));
	if (out)
		out->zones = calloc(op->dr->n, sizeof(*out->zones));
	if (!out || !out->zones || !op->serials || !op->zones_json) {
		snprintf(err, sizeof(err), "out of memory");
		goto failed;
	}
	for (size_t z = 0; z < op->dr->n; z++) {
		const struct drdns_zone *zone = op->dr->zones[z];
		struct drdns_ns_probe *probes = calloc(op->ns.n, sizeof(*probes));
		uint32_t *observed = calloc(op->ns.n + ctx->state->n_seen + 1, sizeof(*observed));
		size_t n_probes = 0, n_observed = 0;
		if (!probes || !observed) {
			free(probes);
			free(observed);
			snprintf(err, sizeof(err), "out of memory");
			goto failed;
		}
		for (size_t i = 0; i < op->ns.n; i++) {
			const struct drdns_soa_result *r = probe_of(op, i, z);
			if (r->answered)
				observed[n_observed++] = r->serial;
			if (op->ns.list[i].is_master)
				continue;
			probes[n_probes].name = op->ns.list[i].name;
			probes[n_probes].address = op->ns.list[i].address;
			probes[n_probes].answered = r->answered;
			probes[n_probes].detail = r->detail;
			n_probes++;
		}
		for (size_t i = 0; i < ctx->state->n_seen; i++)
			if (!strcmp(ctx->state->seen[i].zone, zone->name))
				observed[n_observed++] = ctx->state->seen[i].serial;
		struct drdns_rewrite_input input = {
		    .ns_name = conf->controller.ns_name,
		    .dr_ttl = conf->zones.dr_ttl,
		    .min_ns = conf->zones.min_ns,
		    .probes = probes,
		    .n_probes = n_probes,
		    .observed = observed,
		    .n_observed = n_observed,
		};
		struct drdns_rewrite_plan *plan = NULL;
		int ret = 0;
		if (n_observed == 0) {
			snprintf(err, sizeof(err),
			         "zone %s: no nameserver answered and no serial was ever observed, "
			         "so no "
			         "serial can be chosen that the secondaries would accept; check "
			         "that the "
			         "secondaries are reachable from this host",
			         zone->name);
			ret = DRDNS_EREFUSED;
		} else {
			ret = drdns_rewrite_zone(zone, &input, &out->zones[z], &plan, err,
			                         sizeof(err));
		}
		free(probes);
		free(observed);
		if (ret < 0) { /* no safe serial is a safety refusal; anything else an error */
			exit_code = ret == DRDNS_ESERIAL || ret == DRDNS_EREFUSED
			                ? DRDNS_EXIT_REFUSED
			                : DRDNS_EXIT_ERROR;
			goto failed;
		}
		out->n++;
		json_array_append_new(op->zones_json, drdns_rewrite_plan_json(plan));
		op->serials[z].zone = op->dr->zones[z]->name;
		op->serials[z].serial = plan->new_serial;
		op->n_serials++;
		size_t kept = 0;
		for (size_t i = 0; i < plan->n_ns; i++)
			kept += plan->ns[i].verdict != DRDNS_NS_DROP;
		drdns_log(DRDNS_LOG_INFO, "failover",
		          "plan zone=%s serial=%u->%u ns_kept=%zu ns_dropped=%zu ttls_clamped=%zu",
		          zone->name, plan->max_observed, plan->new_serial, kept, plan->n_ns - kept,
		          plan->ttls_clamped);
		drdns_rewrite_plan_free(plan);
	}
	struct drdns_keyset **keys = NULL;
	if (load_keys(op, out, &keys, err, sizeof(err)) < 0)
		goto failed;
	/* always: a signed campus zone must not be served unsigned either */
	check_continuity(op, out, keys); /* hands both over */
	return;
failed:
	drdns_zoneset_free(out);
	fail(op, exit_code, "%s; nothing changed", err);
}

/* ---- re-signing while promoted (drdns_resign_start) ---- */

/* The set being served, with the next serial and fresh signatures for every
 * zone that has keys; the zones without keys unchanged.  Then key continuity,
 * commit and NOTIFY as for a promotion. */
static void resign_all(struct promote_op *op)
{
	struct drdns_ctx *ctx = op->ctx;
	struct drdns_zoneset *out = calloc(1, sizeof(*out));
	struct drdns_keyset **keys = NULL;
	char err[512] = "";
	int exit_code = DRDNS_EXIT_ERROR;
	op->zones_json = json_array();
	op->serials = calloc(op->dr->n ? op->dr->n : 1, sizeof(*op->serials));
	if (out)
		out->zones = calloc(op->dr->n ? op->dr->n : 1, sizeof(*out->zones));
	if (!out || !out->zones || !op->serials || !op->zones_json) {
		snprintf(err, sizeof(err), "out of memory");
		goto failed;
	}
	for (size_t z = 0; z < op->dr->n; z++) {
		const char *name = op->dr->zones[z]->name;
		uint32_t published;
		if (!drdns_state_published(ctx->state, name, &published)) {
			snprintf(
			    err, sizeof(err),
			    "zone %s is served but %s/state.json has no serial for it: restart "
			    "drdnsd",
			    name, ctx->conf->controller.state_dir);
			goto failed;
		}
		if (!(out->zones[z] = drdns_zone_clone(op->dr->zones[z]))) {
			snprintf(err, sizeof(err), "out of memory");
			goto failed;
		}
		out->n++;
		op->serials[z].zone = name;
		op->serials[z].serial = published;
		op->n_serials++;
		json_array_append_new(op->zones_json,
		                      json_pack("{s:s, s:I, s:I}", "zone", name, "old_serial",
		                                (json_int_t)published, "new_serial",
		                                (json_int_t)published));
	}
	if (load_keys(op, out, &keys, err, sizeof(err)) < 0)
		goto failed;
	if (!keys) {
		snprintf(err, sizeof(err),
		         "nothing to re-sign: no zone of the served set has keys%s%s",
		         ctx->conf->dnssec.keys ? " in " : " (no dnssec.keys configured)",
		         ctx->conf->dnssec.keys ? ctx->conf->dnssec.keys : "");
		goto failed;
	}
	for (size_t z = 0; z < out->n; z++) {
		if (!keys[z])
			continue;
		/* above what is published, and above every serial any nameserver serves
		 * or was ever seen serving (the secondaries only take a greater one) */
		uint32_t *observed = calloc(op->ns.n + ctx->state->n_seen + 1, sizeof(*observed));
		size_t n_observed = 0;
		if (!observed) {
			snprintf(err, sizeof(err), "out of memory");
			free_keys(keys, out->n);
			goto failed;
		}
		observed[n_observed++] = op->serials[z].serial;
		/* The campus master is not a peer to outbid: when it is back with a
		 * newer serial, the secondaries are failing back to it, and a
		 * re-signing above it would pull them back to the DR copy. */
		const struct drdns_soa_result *m = probe_of(op, 0, z);
		if (m->answered && drdns_serial_gt(m->serial, op->serials[z].serial) &&
		    !op->force) {
			snprintf(
			    err, sizeof(err),
			    "zone %s: the master serves %u, newer than the %u published here: "
			    "fail back (drdnsctl demote) instead of re-signing, or repeat with "
			    "--force to publish above it anyway",
			    out->zones[z]->name, m->serial, op->serials[z].serial);
			exit_code = DRDNS_EXIT_REFUSED;
			free(observed);
			free_keys(keys, out->n);
			goto failed;
		}
		for (size_t i = op->force ? 0 : 1; i < op->ns.n; i++)
			if (probe_of(op, i, z)->answered)
				observed[n_observed++] = probe_of(op, i, z)->serial;
		for (size_t i = 0; i < ctx->state->n_seen; i++)
			if (!strcmp(ctx->state->seen[i].zone, out->zones[z]->name))
				observed[n_observed++] = ctx->state->seen[i].serial;
		uint32_t next = 0, floor = op->serials[z].serial + 1;
		const char *why = NULL;
		int ret = drdns_serial_next(observed, n_observed, floor, &next, &why);
		free(observed);
		ldns_rdf *rdf = ret == 0 ? ldns_native2rdf_int32(LDNS_RDF_TYPE_INT32, next) : NULL;
		if (!rdf) {
			snprintf(err, sizeof(err), "zone %s: no safe serial after %u: %s",
			         out->zones[z]->name, op->serials[z].serial,
			         ret < 0 && why ? why : "out of memory");
			exit_code = ret < 0 ? DRDNS_EXIT_REFUSED : DRDNS_EXIT_ERROR;
			free_keys(keys, out->n);
			goto failed;
		}
		ldns_rdf_deep_free(ldns_rr_set_rdf(out->zones[z]->soa, rdf, 2));
		op->serials[z].serial = next;
		json_object_set_new(json_array_get(op->zones_json, z), "new_serial",
		                    json_integer((json_int_t)next));
		drdns_log(DRDNS_LOG_INFO, "failover", "resign plan zone=%s serial=%u",
		          out->zones[z]->name, next);
	}
	check_continuity(op, out, keys); /* hands both over */
	return;
failed:
	drdns_zoneset_free(out);
	fail(op, exit_code, "%s; nothing changed", err);
}

/* ---- step 2: probes ---- */

static void on_probed(struct drdns_soa_result *results, size_t n, void *arg)
{
	struct promote_op *op = arg;
	struct drdns_ctx *ctx = op->ctx;
	op->probes = results;
	op->n_probes = n;

	/* Remember every serial seen, so a later promotion never goes below it. */
	for (size_t i = 0; i < n; i++)
		if (results[i].answered)
			drdns_state_note_seen(ctx->state, results[i].zone, results[i].serial);

	/* SIGTERM closed the server while the probes ran: there is nothing to swap
	 * into and nobody to serve a transfer, so do not commit (or NOTIFY). */
	if (!op->dry_run && !ctx->server) {
		fail(op, DRDNS_EXIT_ERROR, "drdnsd is shutting down; nothing changed");
		return;
	}

	if (op->resign) {
		resign_all(op);
		return;
	}
	if (op->repeat) {
		if (op->dry_run) {
			finish(op,
			       json_pack("{s:i, s:s, s:b, s:b, s:s, s:[]}", "exit", DRDNS_EXIT_OK,
			                 "command", "promote", "dry_run", true, "already_promoted",
			                 true, "message",
			                 "already promoted: a promote would publish nothing new, "
			                 "only NOTIFY the secondaries again",
			                 "zones"));
			return;
		}
		/* op->dr is the served set: serials[z] must be zone z (probe_of indexes) */
		op->serials = calloc(op->dr->n, sizeof(*op->serials));
		op->zones_json = json_array();
		if (!op->serials || !op->zones_json) {
			fail(op, DRDNS_EXIT_ERROR, "out of memory; nothing changed");
			return;
		}
		for (size_t z = 0; z < op->dr->n; z++) {
			uint32_t serial;
			if (!drdns_state_published(ctx->state, op->dr->zones[z]->name, &serial)) {
				fail(op, DRDNS_EXIT_ERROR,
				     "zone %s is served but %s/state.json has no serial for it; "
				     "nothing changed: restart drdnsd",
				     op->dr->zones[z]->name, ctx->conf->controller.state_dir);
				return;
			}
			op->serials[op->n_serials].zone = op->dr->zones[z]->name;
			op->serials[op->n_serials++].serial = serial;
			json_array_append_new(op->zones_json,
			                      json_pack("{s:s, s:I, s:s}", "zone",
			                                op->dr->zones[z]->name, "new_serial",
			                                (json_int_t)serial, "note",
			                                "published earlier; unchanged"));
		}
		notify_and_watch(op);
		return;
	}

	/* Failover, not switchover: refuse while the master still answers.  Any DNS
	 * response counts (REFUSED, SERVFAIL...): the master is alive, and may only be
	 * refusing this host (an ACL) while the secondaries still follow it. */
	size_t master_up = 0;
	char seen[1024] = "";
	for (size_t z = 0; z < op->dr->n; z++) {
		const struct drdns_soa_result *r = probe_of(op, 0, z);
		if (drdns_soa_result_silent(r))
			continue;
		master_up++;
		size_t len = strlen(seen);
		if (r->answered)
			snprintf(seen + len, sizeof(seen) - len, "%s%s serial %u", len ? ", " : "",
			         r->zone, r->serial);
		else
			snprintf(seen + len, sizeof(seen) - len, "%s%s %s", len ? ", " : "",
			         r->zone, r->detail);
	}
	if (master_up > 0 && !op->force) {
		fail(
		    op, DRDNS_EXIT_REFUSED,
		    "the master %s still answers (%s): promoting now would split the truth between "
		    "two primaries. If the campus is really cut off, check from another vantage "
		    "point; for a planned switchover repeat with --force",
		    ctx->conf->master.address, seen);
		return;
	}
	rewrite_all(op);
}

/* The watchdog's round answers exactly these targets, in this order. */
static bool probes_match(const struct drdns_promote_opts *opts,
                         const struct drdns_soa_target *targets, size_t n)
{
	if (!opts->probes || opts->n_probes != n || n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		const struct drdns_soa_result *r = &opts->probes[i];
		if (!r->label || !r->address || !r->zone || strcmp(r->label, targets[i].label) ||
		    strcmp(r->address, targets[i].address) || r->port != targets[i].port ||
		    strcmp(r->zone, targets[i].zone))
			return false;
	}
	return true;
}

/* Hands given probe results to on_probed from the loop, as a probe would. */
struct deferred_probes {
	uv_timer_t timer;
	struct promote_op *op;
	struct drdns_soa_result *results;
	size_t n;
};

static void on_deferred_closed(uv_handle_t *h)
{
	free(h->data);
}

static void on_deferred_probes(uv_timer_t *t)
{
	struct deferred_probes *df = t->data;
	on_probed(df->results, df->n, df->op); /* hands the results over */
	uv_close((uv_handle_t *)t, on_deferred_closed);
}

/* A copy of the set being served, else the committed generation from disk. */
static int served_set(struct drdns_ctx *ctx, struct drdns_zoneset **out, struct drdns_diag *diag)
{
	const struct drdns_zoneset *served = drdns_server_zones(ctx->server);
	if (!served)
		return drdns_state_load_generation(ctx->conf->controller.state_dir,
		                                   ctx->state->generation, out, diag);
	struct drdns_zoneset *set = calloc(1, sizeof(*set));
	if (set)
		set->zones = calloc(served->n ? served->n : 1, sizeof(*set->zones));
	for (size_t i = 0; set && set->zones && i < served->n; i++) {
		if (!(set->zones[i] = drdns_zone_clone(served->zones[i])))
			break;
		set->n++;
	}
	if (!set || !set->zones || set->n != served->n || set->n == 0) {
		drdns_zoneset_free(set);
		return served->n == 0 ? DRDNS_ESTATE : DRDNS_ENOMEM;
	}
	*out = set;
	return 0;
}

/* A new operation holding ctx->busy, or NULL with *ret set (DRDNS_EBUSY: an
 * attempt all the same, so on record unless a dry run). */
static struct promote_op *op_new(struct drdns_ctx *ctx, const char *command, const char *reason,
                                 const json_t *who, bool dry_run, bool force, double wait,
                                 drdns_op_done_cb done, void *arg, int *ret)
{
	struct promote_op *op = calloc(1, sizeof(*op));
	*ret = DRDNS_ENOMEM;
	if (!op)
		return NULL;
	op->ctx = ctx;
	op->command = command;
	op->reason = strdup(reason ? reason : "");
	op->who = who ? json_deep_copy(who) : json_object();
	op->dry_run = dry_run;
	op->force = force;
	op->wait = wait;
	op->repeat = ctx->state->promoted;
	op->done = done;
	op->done_arg = arg;
	op->started_ns = uv_hrtime();
	if (!op->reason || !op->who) {
		op_free(op);
		return NULL;
	}
	if (ctx->busy) {
		if (!op->dry_run)
			audit(op, "error", DRDNS_EXIT_ERROR,
			      "another promotion is in progress; nothing changed");
		op_free(op);
		*ret = DRDNS_EBUSY;
		return NULL;
	}
	ctx->busy = true;
	drdns_log(DRDNS_LOG_NOTICE, "failover",
	          "%s requested dry_run=%s force=%s repeat=%s reason=\"%s\"", command,
	          op->dry_run ? "yes" : "no", op->force ? "yes" : "no", op->repeat ? "yes" : "no",
	          op->reason);
	*ret = 0;
	return op;
}

int drdns_resign_start(struct drdns_ctx *ctx, const struct drdns_resign_opts *opts,
                       drdns_op_done_cb done, void *arg)
{
	if (!ctx->state->promoted)
		return DRDNS_ESTATE;
	int ret;
	struct promote_op *op = op_new(ctx, "resign", opts->reason, opts->who, opts->dry_run,
	                               opts->force, opts->wait, done, arg, &ret);
	if (!op)
		return ret;
	op->resign = true;
	struct drdns_diag diag = {0};
	ret = served_set(ctx, &op->dr, &diag);
	if (ret < 0) {
		char *text = drdns_diag_join(&diag);
		drdns_diag_clear(&diag);
		fail(op, DRDNS_EXIT_ERROR,
		     "the published set (generation %lu) cannot be read: %s; nothing changed%s%s",
		     ctx->state->generation, drdns_strerror(ret), text && *text ? ":\n" : "",
		     text ? text : "");
		free(text);
		return 0;
	}
	drdns_diag_clear(&diag);
	/* Fresh probes: the new serial must beat whatever every nameserver serves,
	 * and continuity compares with what they publish now. */
	struct drdns_soa_target *targets = NULL;
	size_t n_targets = 0;
	ret = drdns_nameservers_build(ctx->conf, op->dr, &op->ns);
	if (ret == 0)
		ret = drdns_nameservers_targets(&op->ns, op->dr, &targets, &n_targets);
	if (ret == 0)
		ret = drdns_probe_soa(ctx->loop, ctx->conf->controller.address, targets, n_targets,
		                      ctx->conf->policy.probe_timeout,
		                      ctx->conf->policy.probe_attempts, false, on_probed, op);
	free(targets);
	if (ret < 0)
		fail(op, DRDNS_EXIT_ERROR, "cannot start the SOA probes: %s; nothing changed",
		     drdns_strerror(ret));
	return 0;
}

int drdns_promote_start(struct drdns_ctx *ctx, const struct drdns_promote_opts *opts,
                        drdns_op_done_cb done, void *arg)
{
	int ret0;
	struct promote_op *op = op_new(ctx, "promote", opts->reason, opts->who, opts->dry_run,
	                               opts->force, opts->wait, done, arg, &ret0);
	if (!op)
		return ret0;

	/* Step 1: the whole DR set, or nothing.  Already promoted: the set being
	 * served (a repeat publishes nothing new, and zones-dr may be mid-edit). */
	struct drdns_diag diag = {0};
	if (op->repeat) {
		int ret = served_set(ctx, &op->dr, &diag);
		if (ret < 0) {
			char *text = drdns_diag_join(&diag);
			drdns_diag_clear(&diag);
			fail(op, DRDNS_EXIT_ERROR,
			     "already promoted, but the published set (generation %lu) cannot be "
			     "read: %s; nothing changed%s%s",
			     ctx->state->generation, drdns_strerror(ret),
			     text && *text ? ":\n" : "", text ? text : "");
			free(text);
			return 0;
		}
	} else if (drdns_zoneset_load_dir(ctx->conf->zones.directory, &op->dr, &diag) < 0) {
		char *text = drdns_diag_join(&diag);
		drdns_diag_clear(&diag);
		fail(op, DRDNS_EXIT_ERROR, "the DR zone set is invalid; nothing changed:\n%s",
		     text ? text : "");
		free(text);
		return 0;
	}
	drdns_diag_clear(&diag);

	/* Step 2: ask everyone, unless the watchdog just did. */
	struct drdns_soa_target *targets = NULL;
	size_t n_targets = 0;
	int ret = drdns_nameservers_build(ctx->conf, op->dr, &op->ns);
	if (ret == 0)
		ret = drdns_nameservers_targets(&op->ns, op->dr, &targets, &n_targets);
	if (ret == 0 && !op->repeat && probes_match(opts, targets, n_targets)) {
		struct deferred_probes *df = calloc(1, sizeof(*df));
		if (df && (df->results = drdns_soa_results_copy(opts->probes, opts->n_probes))) {
			df->n = opts->n_probes;
			df->op = op;
			uv_timer_init(ctx->loop, &df->timer);
			df->timer.data = df;
			uv_timer_start(&df->timer, on_deferred_probes, 0, 0);
			drdns_log(DRDNS_LOG_INFO, "failover",
			          "promote uses the watchdog's probe round targets=%zu", n_targets);
			free(targets);
			return 0;
		}
		free(df); /* out of memory: probe afresh */
	}
	if (ret == 0)
		ret = drdns_probe_soa(ctx->loop, ctx->conf->controller.address, targets, n_targets,
		                      ctx->conf->policy.probe_timeout,
		                      ctx->conf->policy.probe_attempts, false, on_probed, op);
	free(targets);
	if (ret < 0)
		fail(op, DRDNS_EXIT_ERROR, "cannot start the SOA probes: %s", drdns_strerror(ret));
	return 0;
}

/* Fire-and-forget NOTIFY after a restart; owns copies of what it sends. */
struct resume_notify {
	struct drdns_xfr_peer *peers;
	struct drdns_zone_serial *zones;
	size_t n_zones;
};

static void on_resume_notified(struct drdns_notify_result *results, size_t n, void *arg)
{
	struct resume_notify *rn = arg;
	size_t acked = 0;
	for (size_t i = 0; i < n; i++)
		acked += results[i].acked;
	drdns_log(DRDNS_LOG_NOTICE, "failover", "resume notify acked=%zu of=%zu", acked, n);
	free(results);
	for (size_t i = 0; i < rn->n_zones; i++)
		free((char *)rn->zones[i].zone);
	free(rn->zones);
	free(rn->peers);
	free(rn);
}

void drdns_promote_resume_notify(struct drdns_ctx *ctx)
{
	const struct drdns_conf *conf = ctx->conf;
	struct resume_notify *rn = calloc(1, sizeof(*rn));
	if (!rn)
		return;
	rn->peers = calloc(conf->n_secondaries, sizeof(*rn->peers));
	rn->zones = calloc(ctx->state->n_zones, sizeof(*rn->zones));
	for (size_t i = 0; rn->zones && i < ctx->state->n_zones; i++) {
		rn->zones[i].zone = strdup(ctx->state->zones[i].zone);
		rn->zones[i].serial = ctx->state->zones[i].serial;
		rn->n_zones += rn->zones[i].zone != NULL;
	}
	for (size_t i = 0; rn->peers && i < conf->n_secondaries; i++) {
		rn->peers[i].name = conf->secondaries[i].name;
		rn->peers[i].address = conf->secondaries[i].address;
		rn->peers[i].port = conf->secondaries[i].port;
		rn->peers[i].key = conf->secondaries[i].key;
	}
	if (!rn->peers || !rn->zones || rn->n_zones != ctx->state->n_zones ||
	    drdns_notify_batch(ctx->loop, conf->controller.address, rn->peers, conf->n_secondaries,
	                       rn->zones, rn->n_zones, conf->policy.notify_timeout,
	                       conf->policy.notify_attempts, on_resume_notified, rn) < 0) {
		drdns_log(DRDNS_LOG_ERR, "failover", "resume notify could not start");
		on_resume_notified(NULL, 0, rn);
	}
}
