/*
 * The watchdog runtime (see watchdog.h): a probe round every master.interval,
 * the detector's decision, and the actions, hooks and reports that follow.
 *
 * Lifetime: the watchdog is reference-counted.  Every round, hook or
 * operation in flight holds a reference, so drdns_watchdog_stop() can return
 * at once while they finish; the last one frees it.
 */
#include "drdns/watchdog.h"

#include "drdns/alerts.h"
#include "drdns/conf.h"
#include "drdns/detector.h"
#include "drdns/diag.h"
#include "drdns/dnssec.h"
#include "drdns/error.h"
#include "drdns/expiry.h"
#include "drdns/failover.h"
#include "drdns/hooks.h"
#include "drdns/log.h"
#include "drdns/probe.h"
#include "drdns/serial.h"
#include "drdns/server.h"
#include "drdns/state.h"
#include "drdns/zone.h"
#include "nameservers.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#define RETRY_AFTER    60.0 /* first retry after a failed automatic promotion */
#define ALERT_HOOK_MIN 60.0 /* on_alert runs at most this often per alert kind */
#define SCAN_TIMEOUT   60.0 /* seconds per AXFR of the RRSIG scan (a large zone) */
#define SCAN_FAILS     3    /* failed scans of a copy before alert rrsig-scan:<zone> */
#define RESIGN_GAP                                                                                 \
	300.0                /* at least this between automatic re-signings: a zone                \
	                      * still due right after one must not loop */
#define SCAN_PARALLEL  2     /* pool threads a scan may hold (signing needs the others) */
#define SCAN_SOON      5.0   /* after a role change or a re-signing: scan again soon */
#define RESIGN_RETRY   600.0 /* after a failed re-signing */
#define HANDBACK_RETRY 300.0 /* after a step-down whose hand-back stopped */
#define RESIGN_WAIT                                                                                \
	10.0 /* convergence wait of an automatic re-signing (the scans                             \
	      * follow the secondaries after that) */

/* One nameserver's copy of one zone, from the RRSIG scans. */
struct rrsig_copy {
	bool known;                   /* fetched at least once */
	struct drdns_rrsig_summary s; /* the last successful scan */
	double fetched_at;
	double tried_at;  /* last attempt */
	char detail[160]; /* the last attempt's outcome */
	unsigned fails;   /* consecutive failed attempts */
};

/* Per (nameserver, zone): what the secondary served lately. */
struct track {
	struct drdns_soa_result last_good; /* last answered result (owned strings) */
	double last_good_at;               /* 0: none */
	double behind_since;               /* 0: not behind the reference serial */
};

struct drdns_watchdog {
	struct drdns_ctx *ctx;
	int refs;
	bool stopped;
	uv_timer_t timer;
	drdns_watchdog_round_cb round_cb;
	void *round_arg;
	struct drdns_detector det;

	/* targets: rebuilt at start, reload and role change */
	struct drdns_zoneset *set; /* zone names (and glue) being watched (owned) */
	struct drdns_nameservers ns;
	struct drdns_soa_target *targets; /* ns.n * set->n, nameserver-major */
	size_t n_targets;
	bool built_promoted;                 /* the role the targets were built for */
	bool rebuild;                        /* rebuild at the next tick (reload) */
	char blind[256];                     /* why no round can run, or "" */
	double alert_hook_at[DRDNS_ALERT_N]; /* last on_alert run per kind */
	unsigned build_gen;                  /* bumped at each rebuild */
	struct track *track;                 /* n_targets */
	bool round_running;

	/* the last complete round, for status and metrics */
	struct drdns_soa_result *udp; /* n_targets (owned) */
	struct drdns_soa_result *tcp; /* set->n, the master over TCP (owned) */
	size_t n_udp, n_tcp;
	double last_round_at;
	unsigned long rounds, promotions, stepdowns, hook_vetoes;
	bool last_promoted;

	/* DNSSEC (expiry.h, alerts.h): the alert book, the RRSIG scans of every
	 * nameserver's copy, drdns's own signatures and re-signing */
	struct drdns_alertbook book;
	struct rrsig_copy *copies;     /* n_targets, like targets (owned) */
	bool *can_sign;                /* set->n: dnssec.keys holds keys for the zone */
	struct drdns_rrsig_scan *scan; /* in flight, or NULL */
	double next_scan, last_scan;
	bool scanned;                    /* a scan completed since the targets were built */
	struct drdns_rrsig_summary *own; /* set->n, drdns's served copies (promoted) */
	unsigned long own_gen;           /* the generation own describes, 0: none */
	struct drdns_expiry_out *expiry; /* set->n, the last evaluation */
	bool resigning;
	double resign_retry_at;
	char resign_error[512];
	/* a step-down whose hand-back stopped (a campus copy failed its checks) is
	 * not tried again before stepdown_retry_at; the reason is an alert */
	double stepdown_retry_at;
	char stepdown_error[512];
	unsigned long resigns;
};

struct round {
	struct drdns_watchdog *wd;
	struct drdns_soa_result *udp, *tcp;
	size_t n_udp, n_tcp;
	int pending;
	double started;
	unsigned build_gen;
};

static double now_unix(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (double)tv.tv_sec + tv.tv_usec / 1e6;
}

static double conf_scan_interval(const struct drdns_conf *conf)
{
	return conf->alerts.rrsig_scan_interval > 0 ? conf->alerts.rrsig_scan_interval : 3600.0;
}

static void targets_clear(struct drdns_watchdog *wd)
{
	for (size_t i = 0; wd->track && i < wd->n_targets; i++) {
		free(wd->track[i].last_good.label);
		free(wd->track[i].last_good.address);
		free(wd->track[i].last_good.zone);
	}
	free(wd->track);
	wd->track = NULL;
	free(wd->targets);
	wd->targets = NULL;
	free(wd->copies);
	wd->copies = NULL;
	free(wd->can_sign);
	wd->can_sign = NULL;
	free(wd->own);
	wd->own = NULL;
	wd->own_gen = 0;
	free(wd->expiry);
	wd->expiry = NULL;
	wd->scanned = false;
	wd->next_scan = 0; /* scan the new targets at once */
	drdns_soa_results_free(wd->udp, wd->n_udp);
	drdns_soa_results_free(wd->tcp, wd->n_tcp);
	wd->udp = wd->tcp = NULL;
	wd->n_udp = wd->n_tcp = 0;
	wd->n_targets = 0;
	drdns_nameservers_clear(&wd->ns);
	drdns_zoneset_free(wd->set);
	wd->set = NULL;
}

static void wd_unref(struct drdns_watchdog *wd)
{
	if (--wd->refs > 0)
		return;
	targets_clear(wd);
	drdns_detector_free(&wd->det);
	drdns_alertbook_free(&wd->book);
	free(wd);
}

static void on_timer_closed(uv_handle_t *h)
{
	wd_unref(h->data);
}

/* The zones to watch: the served set when promoted, else the DR set on disk. */
static int build_targets(struct drdns_watchdog *wd)
{
	struct drdns_ctx *ctx = wd->ctx;
	struct drdns_zoneset *set = NULL;
	struct drdns_diag diag = {0};
	const struct drdns_zoneset *served = ctx->server ? drdns_server_zones(ctx->server) : NULL;
	int ret = 0;
	if (served) {
		set = calloc(1, sizeof(*set));
		if (set)
			set->zones = calloc(served->n ? served->n : 1, sizeof(*set->zones));
		for (size_t i = 0; set && set->zones && i < served->n; i++)
			if ((set->zones[set->n] = drdns_zone_clone(served->zones[i])))
				set->n++;
		if (!set || !set->zones || set->n != served->n)
			ret = DRDNS_ENOMEM;
	} else {
		ret = drdns_zoneset_load_dir(ctx->conf->zones.directory, &set, &diag);
		if (ret < 0)
			drdns_log(DRDNS_LOG_ERR, "watchdog",
			          "cannot load the DR zone set dir=%s error=\"%s\": not probing",
			          ctx->conf->zones.directory, diag.n ? diag.msgs[0] : "invalid");
	}
	drdns_diag_clear(&diag);
	if (ret < 0) {
		drdns_zoneset_free(set);
		return ret;
	}
	targets_clear(wd);
	wd->build_gen++;
	wd->set = set;
	wd->built_promoted = ctx->state->promoted;
	ret = drdns_nameservers_build(ctx->conf, set, &wd->ns);
	if (ret == 0)
		ret = drdns_nameservers_targets(&wd->ns, set, &wd->targets, &wd->n_targets);
	if (ret == 0 &&
	    !(wd->track = calloc(wd->n_targets ? wd->n_targets : 1, sizeof(*wd->track))))
		ret = DRDNS_ENOMEM;
	if (ret == 0 &&
	    (!(wd->copies = calloc(wd->n_targets ? wd->n_targets : 1, sizeof(*wd->copies))) ||
	     !(wd->can_sign = calloc(set->n ? set->n : 1, sizeof(*wd->can_sign))) ||
	     !(wd->own = calloc(set->n ? set->n : 1, sizeof(*wd->own))) ||
	     !(wd->expiry = calloc(set->n ? set->n : 1, sizeof(*wd->expiry)))))
		ret = DRDNS_ENOMEM;
	for (size_t z = 0; ret == 0 && z < set->n; z++)
		wd->expiry[z].level = -1; /* nothing evaluated yet */
	/* Which zones drdns could sign: only those count for the expiry guard (a
	 * promotion helps a zone whose signatures run out only if drdns re-signs it). */
	for (size_t z = 0; ret == 0 && ctx->conf->dnssec.keys && z < set->n; z++) {
		struct drdns_keyset *ks = NULL;
		struct drdns_diag kd = {0};
		if (drdns_keyset_load(ctx->conf->dnssec.keys, set->zones[z]->name, &ks, &kd) == 0)
			wd->can_sign[z] = ks != NULL;
		drdns_keyset_free(ks);
		drdns_diag_clear(&kd);
	}
	if (ret < 0)
		targets_clear(wd);
	return ret;
}

/* ---- hooks ---- */

struct hook_run {
	struct drdns_watchdog *wd;
	char *name;
	void (*then)(struct drdns_watchdog *wd, const struct drdns_hook_result *r, void *arg);
	void *arg;
};

static void on_hook_done(const struct drdns_hook_result *r, void *arg)
{
	struct hook_run *h = arg;
	drdns_log(r->ok ? DRDNS_LOG_INFO : DRDNS_LOG_WARNING, "hook",
	          "finished name=%s result=\"%s\" seconds=%.2f", h->name, r->detail, r->seconds);
	if (h->then) /* always: it frees what it owns, and checks wd->stopped */
		h->then(h->wd, r, h->arg);
	wd_unref(h->wd);
	free(h->name);
	free(h);
}

/* "zone=serial ..." of what is published, or of the master's last answers. */
static void serials_text(const struct drdns_watchdog *wd, char *buf, size_t len)
{
	const struct drdns_state *st = wd->ctx->state;
	size_t used = 0;
	buf[0] = 0;
	for (size_t z = 0; wd->set && z < wd->set->n; z++) {
		uint32_t serial = 0;
		bool have = st->promoted
		                ? drdns_state_published(st, wd->set->zones[z]->name, &serial)
		                : (wd->udp && wd->udp[z].answered);
		if (!st->promoted && have)
			serial = wd->udp[z].serial;
		if (have && used < len)
			used += (size_t)snprintf(buf + used, len - used, "%s%s=%u", used ? " " : "",
			                         wd->set->zones[z]->name, serial);
	}
}

/* Run hook `name` (path may be NULL: then `then` runs at once with ok).  repeat
 * >= 0: DRDNS_ALERT_REPEAT (alert book runs). */
static void run_hook_ex(struct drdns_watchdog *wd, const char *name, const char *path,
                        const char *reason, const char *alert, const char *alert_msg, int repeat,
                        void (*then)(struct drdns_watchdog *, const struct drdns_hook_result *,
                                     void *),
                        void *arg)
{
	const struct drdns_conf *conf = wd->ctx->conf;
	if (!path) {
		struct drdns_hook_result ok = {.ok = true, .detail = "no hook"};
		if (then)
			then(wd, &ok, arg);
		return;
	}
	char zones[2048] = "", serials[4096];
	size_t used = 0;
	for (size_t z = 0; wd->set && z < wd->set->n && used < sizeof(zones); z++)
		used += (size_t)snprintf(zones + used, sizeof(zones) - used, "%s%s",
		                         used ? " " : "", wd->set->zones[z]->name);
	serials_text(wd, serials, sizeof(serials));
	char *env[11] = {0}; /* at most 10 variables below, and the NULL */
	int n = 0;
	if (asprintf(&env[n], "DRDNS_STATE=%s", drdns_wd_state_name(wd->det.state)) >= 0)
		n++;
	if (asprintf(&env[n], "DRDNS_ZONES=%s", zones) >= 0)
		n++;
	if (asprintf(&env[n], "DRDNS_SERIALS=%s", serials) >= 0)
		n++;
	if (asprintf(&env[n], "DRDNS_CONTROLLER=%s", conf->controller.id) >= 0)
		n++;
	if (asprintf(&env[n], "DRDNS_MASTER=%s", conf->master.address) >= 0)
		n++;
	if (asprintf(&env[n], "DRDNS_ROLE=%s", wd->ctx->state->promoted ? "primary" : "standby") >=
	    0)
		n++;
	if (reason && asprintf(&env[n], "DRDNS_REASON=%s", reason) >= 0)
		n++;
	if (alert && asprintf(&env[n], "DRDNS_ALERT=%s", alert) >= 0)
		n++;
	if (alert_msg && asprintf(&env[n], "DRDNS_ALERT_MESSAGE=%s", alert_msg) >= 0)
		n++;
	if (repeat >= 0 && asprintf(&env[n], "DRDNS_ALERT_REPEAT=%d", repeat) >= 0)
		n++;
	env[n] = NULL;
	struct hook_run *h = calloc(1, sizeof(*h));
	int ret = DRDNS_ENOMEM;
	if (h && (h->name = strdup(name))) {
		h->wd = wd;
		h->then = then;
		h->arg = arg;
		wd->refs++;
		ret = drdns_hook_run(wd->ctx->loop, name, path, (const char *const *)env,
		                     conf->hooks.timeout, on_hook_done, h);
		if (ret < 0) {
			wd->refs--;
			free(h->name);
		}
	}
	for (int i = 0; i < n; i++)
		free(env[i]);
	if (ret < 0) {
		free(h);
		drdns_log(DRDNS_LOG_WARNING, "hook", "not run name=%s path=%s error=\"%s\"", name,
		          path, drdns_strerror(ret));
		struct drdns_hook_result fail = {.ok = false};
		snprintf(fail.detail, sizeof(fail.detail), "cannot run: %s", drdns_strerror(ret));
		if (then)
			then(wd, &fail, arg);
	}
}

static void
run_hook(struct drdns_watchdog *wd, const char *name, const char *path, const char *reason,
         const char *alert, const char *alert_msg,
         void (*then)(struct drdns_watchdog *, const struct drdns_hook_result *, void *), void *arg)
{
	run_hook_ex(wd, name, path, reason, alert, alert_msg, -1, then, arg);
}

/* ---- actions ---- */

struct promote_job {
	char reason[DRDNS_DETECTOR_MSG];
	struct drdns_soa_result *probes; /* the round's view, or NULL */
	size_t n_probes;
	double taken_at;
};

static void job_free(struct promote_job *job)
{
	drdns_soa_results_free(job->probes, job->n_probes);
	free(job);
}

struct promote_run {
	struct drdns_watchdog *wd;
	char reason[DRDNS_DETECTOR_MSG];
};

static void on_auto_promoted(json_t *reply, void *arg)
{
	struct promote_run *run = arg;
	struct drdns_watchdog *wd = run->wd;
	int code = (int)json_integer_value(json_object_get(reply, "exit"));
	const char *msg = json_string_value(json_object_get(reply, "message"));
	const char *err = json_string_value(json_object_get(reply, "error"));
	bool committed = wd->ctx->state->promoted;
	drdns_log(committed ? DRDNS_LOG_NOTICE : DRDNS_LOG_ERR, "watchdog",
	          "automatic promotion finished exit=%d committed=%s detail=\"%s\"", code,
	          committed ? "yes" : "no",
	          err   ? err
	          : msg ? msg
	                : "");
	if (!wd->stopped) {
		/* (post_promote and drdns_promotions_total: by the round that sees the new
		 * role, right after the commit, not after the convergence wait) */
		drdns_detector_promotion_done(&wd->det, now_unix(), committed);
	}
	json_decref(reply);
	free(run);
	wd_unref(wd);
}

static void start_promotion(struct drdns_watchdog *wd, struct promote_job *job)
{
	struct drdns_ctx *ctx = wd->ctx;
	json_t *who = json_pack("{s:s}", "watchdog", ctx->conf->controller.id);
	/* A round older than two intervals (a slow pre_promote hook) is stale: let
	 * promote probe afresh. */
	bool fresh = now_unix() - job->taken_at <= 2 * ctx->conf->master.interval;
	struct drdns_promote_opts opts = {
	    .reason = job->reason,
	    .wait = -1,
	    .who = who,
	    .probes = fresh ? job->probes : NULL,
	    .n_probes = fresh ? job->n_probes : 0,
	};
	struct promote_run *run = calloc(1, sizeof(*run));
	if (run) {
		run->wd = wd;
		snprintf(run->reason, sizeof(run->reason), "%s", job->reason);
	}
	wd->refs++;
	int ret =
	    who && run ? drdns_promote_start(ctx, &opts, on_auto_promoted, run) : DRDNS_ENOMEM;
	json_decref(who);
	if (ret < 0) {
		free(run);
		wd->refs--;
		drdns_log(DRDNS_LOG_ERR, "watchdog",
		          "automatic promotion could not start error=\"%s\"", drdns_strerror(ret));
		drdns_detector_promotion_done(&wd->det, now_unix(), false);
	}
	job_free(job);
}

static void after_pre_promote(struct drdns_watchdog *wd, const struct drdns_hook_result *r,
                              void *arg)
{
	struct promote_job *job = arg;
	if (wd->stopped) {
		job_free(job);
		return;
	}
	if (!r->ok) {
		wd->hook_vetoes++;
		drdns_log(DRDNS_LOG_WARNING, "watchdog",
		          "automatic promotion vetoed by pre_promote hook result=\"%s\"",
		          r->detail);
		drdns_detector_promotion_done(&wd->det, now_unix(), false);
		job_free(job);
		return;
	}
	/* The hook took time: promote only if everything that allowed it still holds. */
	const struct drdns_conf *conf = wd->ctx->conf;
	const char *why = wd->ctx->state->promoted ? "already promoted (by an operator)"
	                  : wd->ctx->busy          ? "an operator's promotion is running"
	                  : wd->det.fail_streak < conf->master.fail_after
	                      ? "the master answered again"
	                  : wd->det.paused             ? "the watchdog was paused"
	                  : !conf->policy.auto_promote ? "auto_promote was switched off"
	                                               : NULL;
	if (why) {
		drdns_log(DRDNS_LOG_NOTICE, "watchdog",
		          "automatic promotion abandoned after pre_promote reason=\"%s\"", why);
		if (wd->ctx->state->promoted)
			drdns_detector_promotion_done(&wd->det, now_unix(), true);
		else
			drdns_detector_promotion_abandoned(&wd->det);
		job_free(job);
		return;
	}
	start_promotion(wd, job);
}

/* The probe results promote would gather, from this round: a secondary that
 * missed this round but answered in an earlier round of the same outage keeps
 * that answer (one lost datagram does not drop it from the NS set). */
static struct drdns_soa_result *promote_view(struct drdns_watchdog *wd, const struct round *r)
{
	struct drdns_soa_result *view = drdns_soa_results_copy(r->udp, r->n_udp);
	if (!view)
		return NULL;
	size_t nz = wd->set->n;
	/* only answers taken during this outage: a nameserver that went dark with the
	 * master must be dropped, not remembered */
	double since = wd->det.down_since;
	for (size_t i = nz; i < r->n_udp; i++) { /* rows after the master's */
		struct track *t = &wd->track[i];
		if (view[i].answered || t->last_good_at <= 0 || t->last_good_at < since)
			continue;
		free(view[i].label);
		free(view[i].address);
		free(view[i].zone);
		struct drdns_soa_result *one = drdns_soa_results_copy(&t->last_good, 1);
		if (one) {
			view[i] = one[0];
			free(one);
		} else {
			view[i].label = view[i].address = view[i].zone = NULL;
			drdns_soa_results_free(view, r->n_udp);
			return NULL;
		}
	}
	return view;
}

static void act_promote(struct drdns_watchdog *wd, const struct round *r, const char *reason)
{
	struct promote_job *job = calloc(1, sizeof(*job));
	if (!job) {
		drdns_detector_promotion_done(&wd->det, now_unix(), false);
		return;
	}
	snprintf(job->reason, sizeof(job->reason), "%s", reason);
	job->probes = promote_view(wd, r);
	job->n_probes = job->probes ? r->n_udp : 0;
	job->taken_at = r->started;
	drdns_log(DRDNS_LOG_NOTICE, "watchdog", "automatic promotion reason=\"%s\"", reason);
	run_hook(wd, "pre_promote", wd->ctx->conf->hooks.pre_promote, reason, NULL, NULL,
	         after_pre_promote, job);
}

struct stepdown_job {
	struct drdns_watchdog *wd;
	char reason[DRDNS_DETECTOR_MSG];
};

static void on_stepped_down(json_t *reply, void *arg)
{
	struct stepdown_job *job = arg;
	struct drdns_watchdog *wd = job->wd;
	bool done = !wd->ctx->state->promoted;
	drdns_log(done ? DRDNS_LOG_NOTICE : DRDNS_LOG_ERR, "watchdog", "step-down finished exit=%d",
	          (int)json_integer_value(json_object_get(reply, "exit")));
	if (!wd->stopped) {
		drdns_detector_stepdown_done(&wd->det, now_unix(), done);
		if (done) {
			wd->stepdowns++;
			wd->stepdown_error[0] = 0;
			wd->stepdown_retry_at = 0;
		} else {
			const char *err = json_string_value(json_object_get(reply, "error"));
			wd->stepdown_retry_at = now_unix() + HANDBACK_RETRY;
			snprintf(wd->stepdown_error, sizeof(wd->stepdown_error),
			         "automatic step-down stopped: %s; drdns stays promoted and tries "
			         "again in %.0f s (or: drdnsctl demote)",
			         err ? err : "?", HANDBACK_RETRY);
			drdns_log(DRDNS_LOG_ERR, "watchdog", "%s", wd->stepdown_error);
		}
	}
	json_decref(reply);
	free(job);
	wd_unref(wd);
}

static void act_stepdown(struct drdns_watchdog *wd, const struct round *r, const char *reason)
{
	if (now_unix() < wd->stepdown_retry_at) { /* the last hand-back stopped: wait */
		drdns_detector_stepdown_done(&wd->det, now_unix(), false);
		return;
	}
	size_t nz = wd->set->n;
	struct drdns_zone_serial *serials = calloc(nz ? nz : 1, sizeof(*serials));
	struct stepdown_job *job = calloc(1, sizeof(*job));
	json_t *who = json_pack("{s:s}", "watchdog", wd->ctx->conf->controller.id);
	size_t n = 0;
	for (size_t z = 0; serials && z < nz; z++)
		if (r->udp[z].answered) {
			serials[n].zone = wd->set->zones[z]->name;
			serials[n++].serial = r->udp[z].serial;
		}
	int ret = DRDNS_ENOMEM;
	if (serials && job && who) {
		job->wd = wd;
		snprintf(job->reason, sizeof(job->reason), "%s", reason);
		drdns_log(DRDNS_LOG_NOTICE, "watchdog", "stepping down reason=\"%s\"", reason);
		wd->refs++;
		struct drdns_stepdown_opts so = {
		    .action = "stepdown",
		    .reason = reason,
		    .who = who,
		    .master_serials = serials,
		    .n_serials = n,
		    /* the hand-back window: until every secondary follows, or this */
		    .wait = wd->ctx->conf->policy.default_wait,
		};
		ret = drdns_stepdown_start(wd->ctx, &so, on_stepped_down, job);
		if (ret < 0)
			wd->refs--;
		else
			job = NULL; /* owned by the callback now (it may already have run) */
	}
	if (ret < 0) {
		drdns_log(DRDNS_LOG_ERR, "watchdog", "step-down failed error=\"%s\"",
		          drdns_strerror(ret));
		drdns_detector_stepdown_done(&wd->det, now_unix(), false);
	}
	free(job);
	free(serials);
	json_decref(who);
}

static void raise_alerts(struct drdns_watchdog *wd, unsigned raised)
{
	for (int k = 0; k < DRDNS_ALERT_N; k++) {
		if (!(raised & (1u << k)))
			continue;
		const char *kind = drdns_alert_kind_name((enum drdns_alert_kind)k);
		drdns_log(DRDNS_LOG_WARNING, "alert", "raised kind=%s state=%s message=\"%s\"",
		          kind, drdns_wd_state_name(wd->det.state), wd->det.alert_msg[k]);
		/* An alert that flaps (raised, cleared, raised...) runs on_alert at most
		 * once per ALERT_HOOK_MIN seconds, so hooks cannot pile up. */
		double now = now_unix();
		if (wd->alert_hook_at[k] > 0 && now - wd->alert_hook_at[k] < ALERT_HOOK_MIN) {
			drdns_log(DRDNS_LOG_INFO, "alert", "on_alert not run again so soon kind=%s",
			          kind);
			continue;
		}
		wd->alert_hook_at[k] = now;
		run_hook(wd, "on_alert", wd->ctx->conf->hooks.on_alert, NULL, kind,
		         wd->det.alert_msg[k], NULL, NULL);
	}
}

/* The watchdog cannot probe (or can again: why == NULL).  Raised once. */
static void blind(struct drdns_watchdog *wd, const char *why)
{
	if (!why) {
		if (wd->blind[0])
			drdns_log(DRDNS_LOG_NOTICE, "watchdog", "probing again");
		wd->blind[0] = 0;
		return;
	}
	if (wd->blind[0])
		return;
	snprintf(wd->blind, sizeof(wd->blind), "the watchdog cannot probe: %s", why);
	drdns_log(DRDNS_LOG_ERR, "alert", "raised kind=watchdog_blind message=\"%s\"", wd->blind);
	run_hook(wd, "on_alert", wd->ctx->conf->hooks.on_alert, NULL, "watchdog_blind", wd->blind,
	         NULL, NULL);
}

/* ---- DNSSEC: RRSIG scans, time to dark, the alert book, re-signing ---- */

/* The length of a zone name without its final dot, for alert ids and messages
 * ("%.*s"), as expiry.c writes them: "example.edu." -> 11; the root stays ".". */
static int bare_len(const char *zone)
{
	size_t n = strlen(zone);
	return (int)(n > 1 && zone[n - 1] == '.' ? n - 1 : n);
}

/* Keep the book in state.json: a restart must neither raise every alert again
 * nor forget who acknowledged one. */
static int persist_book(struct drdns_watchdog *wd)
{
	struct drdns_ctx *ctx = wd->ctx;
	int ret = drdns_state_set_alerts(ctx->state, wd->book.alerts, wd->book.n);
	if (ret == 0)
		ret = drdns_state_save(ctx->conf->controller.state_dir, ctx->state);
	if (ret < 0)
		drdns_log(DRDNS_LOG_WARNING, "alert", "cannot save the alerts dir=%s error=\"%s\"",
		          ctx->conf->controller.state_dir, drdns_strerror(ret));
	return ret;
}

/* drdns's own signatures, per served generation (summarizing a big zone is
 * not free: once per generation, not per round). */
static void own_refresh(struct drdns_watchdog *wd, double now)
{
	struct drdns_ctx *ctx = wd->ctx;
	const struct drdns_zoneset *served = ctx->server ? drdns_server_zones(ctx->server) : NULL;
	if (!ctx->state->promoted || !served || !wd->own) {
		if (wd->own)
			memset(wd->own, 0, wd->set->n * sizeof(*wd->own));
		wd->own_gen = 0;
		return;
	}
	if (wd->own_gen == ctx->state->generation)
		return;
	for (size_t z = 0; z < wd->set->n; z++) {
		const struct drdns_zone *mine = drdns_zoneset_find(served, wd->set->zones[z]->name);
		memset(&wd->own[z], 0, sizeof(wd->own[z]));
		if (mine)
			drdns_zone_rrsig_summarize(mine, (int64_t)now, &wd->own[z]);
	}
	wd->own_gen = ctx->state->generation;
}

/* Every zone's time to dark, alert level and re-sign time, from the last scans
 * and drdns's own copy, at `now`. */
static void dnssec_evaluate(struct drdns_watchdog *wd, double now)
{
	if (!wd->set || !wd->expiry || !wd->copies)
		return;
	own_refresh(wd, now);
	const struct drdns_conf *conf = wd->ctx->conf;
	bool promoted = wd->ctx->state->promoted;
	size_t nz = wd->set->n, nns = wd->ns.n;
	struct drdns_expiry_zone *zones = calloc(nz, sizeof(*zones));
	struct drdns_expiry_copy *copies = calloc(nz * nns + 1, sizeof(*copies));
	if (!zones || !copies) {
		free(zones);
		free(copies);
		return;
	}
	for (size_t z = 0; z < nz; z++) {
		struct drdns_expiry_zone *ez = &zones[z];
		ez->zone = wd->set->zones[z]->name;
		ez->soa_deadline =
		    promoted ? 0 : drdns_detector_zone_expire_deadline(&wd->det, ez->zone);
		ez->own = promoted && wd->own_gen != 0;
		ez->own_signatures = wd->own[z].signatures;
		ez->own_earliest = wd->own[z].earliest;
		ez->copies = &copies[z * nns];
		for (size_t i = 0; i < nns; i++) {
			/* promoted, the campus copy is not served to anyone; and a
			 * nameserver silent in the last round serves nothing now (its
			 * copy counts again once it answers, until the next scan) */
			if (promoted && wd->ns.list[i].is_master)
				continue;
			if (wd->udp && i * nz + z < wd->n_udp &&
			    drdns_soa_result_silent(&wd->udp[i * nz + z]))
				continue;
			const struct rrsig_copy *c = &wd->copies[i * nz + z];
			copies[z * nns + ez->n_copies++] = (struct drdns_expiry_copy){
			    .server = wd->ns.list[i].name,
			    .known = c->known,
			    .signatures = c->s.signatures,
			    .earliest = c->s.earliest,
			    .earliest_what = c->s.earliest_what,
			};
		}
	}
	struct drdns_expiry_conf ec = {
	    .thresholds = conf->alerts.rrsig_thresholds,
	    .n_thresholds = conf->alerts.n_rrsig_thresholds,
	    .refresh = conf->dnssec.refresh,
	};
	drdns_expiry_evaluate(&ec, zones, nz, now, wd->expiry);
	/* the outputs borrow server labels from wd->ns and "drdns": both outlive
	 * the arrays freed here */
	free(zones);
	free(copies);
}

/* A scan in flight: which target each result belongs to. */
struct scan_run {
	struct drdns_watchdog *wd;
	size_t *index; /* per scan target: its index in wd->targets */
	unsigned build_gen;
};

static void on_scanned(struct drdns_rrsig_result *results, size_t n, void *arg)
{
	struct scan_run *run = arg;
	struct drdns_watchdog *wd = run->wd;
	double now = now_unix();
	wd->scan = NULL;
	if (!wd->stopped && run->build_gen == wd->build_gen && wd->copies) {
		size_t fetched = 0, failed = 0;
		for (size_t k = 0; k < n; k++) {
			struct rrsig_copy *c = &wd->copies[run->index[k]];
			c->tried_at = now;
			snprintf(c->detail, sizeof(c->detail), "%s", results[k].detail);
			if (results[k].fetched) {
				c->known = true;
				c->s = results[k].summary;
				c->fetched_at = now;
				c->fails = 0;
				fetched++;
			} else {
				failed++;
				c->fails++;
				drdns_log(DRDNS_LOG_INFO, "watchdog",
				          "rrsig scan failed server=%s zone=%s detail=\"%s\"",
				          results[k].label, results[k].zone, results[k].detail);
			}
		}
		wd->scanned = true;
		wd->last_scan = now;
		drdns_log(DRDNS_LOG_INFO, "watchdog", "rrsig scan done copies=%zu failed=%zu",
		          fetched, failed);
	}
	drdns_rrsig_results_free(results, n);
	free(run->index);
	free(run);
	wd_unref(wd);
}

static void scan_maybe_start(struct drdns_watchdog *wd, double now)
{
	struct drdns_ctx *ctx = wd->ctx;
	if (wd->scan || wd->stopped || !wd->copies || now < wd->next_scan || !wd->udp)
		return;
	size_t nz = wd->set->n;
	struct drdns_rrsig_target *t = calloc(wd->n_targets + 1, sizeof(*t));
	size_t *index = calloc(wd->n_targets + 1, sizeof(*index));
	size_t n = 0;
	for (size_t i = 0; t && index && i < wd->n_targets && i < wd->n_udp; i++) {
		size_t ns = i / nz;
		/* a nameserver that gave no answer this round is dark: keep what it
		 * served last, do not spend a timeout on it */
		if (drdns_soa_result_silent(&wd->udp[i]))
			continue;
		if (ctx->state->promoted && wd->ns.list[ns].is_master)
			continue;
		t[n] = (struct drdns_rrsig_target){
		    .label = wd->ns.list[ns].name,
		    .address = wd->ns.list[ns].address,
		    .port = wd->ns.list[ns].port,
		    .zone = wd->set->zones[i % nz]->name,
		};
		index[n++] = i;
	}
	struct scan_run *run = calloc(1, sizeof(*run));
	int ret = t && index && run ? 0 : DRDNS_ENOMEM;
	if (ret == 0 && n > 0) {
		run->wd = wd;
		run->index = index;
		run->build_gen = wd->build_gen;
		wd->refs++;
		ret =
		    drdns_rrsig_scan_start(ctx->loop, ctx->conf->controller.address, t, n,
		                           SCAN_TIMEOUT, SCAN_PARALLEL, on_scanned, run, &wd->scan);
		if (ret < 0) {
			wd->refs--;
			wd->scan = NULL;
		} else {
			index = NULL;
			run = NULL;
		}
	}
	wd->next_scan = now + conf_scan_interval(ctx->conf);
	if (ret < 0)
		drdns_log(DRDNS_LOG_WARNING, "watchdog", "cannot start the RRSIG scan error=\"%s\"",
		          drdns_strerror(ret));
	else if (n == 0)
		wd->scanned = true; /* nothing answers: nothing to scan, the evaluation goes on */
	free(t);
	free(index);
	free(run);
}

/* Hold this round's conditions in the book and run what it says. */
static void book_sync(struct drdns_watchdog *wd, double now)
{
	const struct drdns_conf *conf = wd->ctx->conf;
	size_t nz = wd->set && wd->expiry ? wd->set->n : 0;
	struct drdns_alert_cond *conds = calloc(2 * nz + wd->book.n + 3, sizeof(*conds));
	char(*scan_id)[DRDNS_ALERT_ID_MAX + 1] = calloc(nz + 1, sizeof(*scan_id));
	char(*scan_msg)[512] = calloc(nz + 1, sizeof(*scan_msg));
	size_t n = 0;
	if (!conds || !scan_id || !scan_msg) {
		free(conds);
		free(scan_id);
		free(scan_msg);
		return;
	}
	for (size_t z = 0; z < nz; z++) {
		const char *zone = wd->set->zones[z]->name;
		if (wd->expiry[z].level >= 0)
			conds[n++] = (struct drdns_alert_cond){wd->expiry[z].alert_id,
			                                       wd->expiry[z].alert_msg};
		/* copies that cannot be read are not watched: say so, until fixed */
		size_t used = 0, bad = 0;
		bool unread = false; /* a copy tried since the rebuild but never read */
		for (size_t i = 0; i < wd->ns.n; i++) {
			const struct rrsig_copy *c = &wd->copies[i * nz + z];
			/* (only while it may still be a passing failure: a copy that
			 * keeps failing has its own alert, and must not hold this one
			 * forever) */
			unread = unread || (c->tried_at > 0 && !c->known && c->fails < SCAN_FAILS);
			if (c->fails < SCAN_FAILS)
				continue;
			if (bad++ < 3 && used < sizeof(scan_msg[z]))
				used += (size_t)snprintf(
				    scan_msg[z] + used, sizeof(scan_msg[z]) - used, "%s%s (%s)",
				    bad > 1 ? ", " : "", wd->ns.list[i].name, c->detail);
		}
		if (bad > 0) {
			snprintf(scan_id[z], sizeof(scan_id[z]), "rrsig-scan:%.*s", bare_len(zone),
			         zone);
			char detail[512];
			snprintf(detail, sizeof(detail),
			         "%.*s: the signatures of %zu cop%s are not watched: AXFR failed "
			         "%d times "
			         "or more from %s%s; allow transfers from %s",
			         bare_len(zone), zone, bad, bad == 1 ? "y" : "ies", SCAN_FAILS,
			         scan_msg[z], bad > 3 ? " and more" : "", conf->controller.address);
			snprintf(scan_msg[z], sizeof(scan_msg[z]), "%s", detail);
			conds[n++] = (struct drdns_alert_cond){scan_id[z], scan_msg[z]};
		}
		/* An RRSIG alert of a zone with a copy not read since the last rebuild
		 * (a restart, a reload, a role change) stands as it is: clearing it
		 * would drop its acknowledgement, and the next good scan would raise
		 * it again as new. */
		char prefix[DRDNS_ALERT_ID_MAX + 2];
		int plen = snprintf(prefix, sizeof(prefix), "rrsig:%.*s:", bare_len(zone), zone);
		for (size_t a = 0; unread && plen > 0 && a < wd->book.n; a++) {
			const struct drdns_alert *al = &wd->book.alerts[a];
			bool held = false;
			for (size_t k = 0; k < n && !held; k++)
				held = !strcmp(conds[k].id, al->id);
			if (!held && !strncmp(al->id, prefix, (size_t)plen))
				conds[n++] = (struct drdns_alert_cond){al->id, al->message};
		}
	}
	if (wd->resign_error[0] && wd->ctx->state->promoted)
		conds[n++] = (struct drdns_alert_cond){"resign-failed", wd->resign_error};
	if (wd->stepdown_error[0] && wd->ctx->state->promoted)
		conds[n++] = (struct drdns_alert_cond){"handback-failed", wd->stepdown_error};
	struct drdns_alert_action *act = NULL;
	size_t n_act = 0;
	int ret = drdns_alertbook_sync(&wd->book, conds, n, now, &act, &n_act);
	free(conds);
	free(scan_id);
	free(scan_msg);
	if (ret < 0)
		return;
	for (size_t i = 0; i < n_act; i++) {
		const struct drdns_alert_action *a = &act[i];
		switch (a->kind) {
		case DRDNS_ALERT_RUN:
			drdns_log(DRDNS_LOG_WARNING, "alert", "%s id=%s repeat=%u message=\"%s\"",
			          a->repeat ? "repeated" : "raised", a->id, a->repeat, a->message);
			run_hook_ex(wd, "on_alert", conf->hooks.on_alert, NULL, a->id, a->message,
			            (int)a->repeat, NULL, NULL);
			break;
		case DRDNS_ALERT_ESCALATE:
			drdns_log(
			    DRDNS_LOG_ERR, "alert",
			    "escalated id=%s repeats=%u message=\"%s\": nobody acknowledged it "
			    "(drdnsctl ack %s --reason ...)",
			    a->id, a->repeat, a->message, a->id);
			run_hook_ex(wd, "on_escalate", conf->hooks.on_escalate, NULL, a->id,
			            a->message, (int)a->repeat, NULL, NULL);
			break;
		case DRDNS_ALERT_CLEARED:
			drdns_log(DRDNS_LOG_NOTICE, "alert", "cleared id=%s acked=%s", a->id,
			          a->acked ? "yes" : "no");
			break;
		}
	}
	drdns_alert_actions_free(act, n_act);
	if (n_act > 0)
		persist_book(wd);
}

struct resign_run {
	struct drdns_watchdog *wd;
};

static void on_resigned(json_t *reply, void *arg)
{
	struct resign_run *run = arg;
	struct drdns_watchdog *wd = run->wd;
	int code = (int)json_integer_value(json_object_get(reply, "exit"));
	const char *err = json_string_value(json_object_get(reply, "error"));
	wd->resigning = false;
	if (!wd->stopped) {
		double now = now_unix();
		if (code == DRDNS_EXIT_OK || code == DRDNS_EXIT_PARTIAL) {
			wd->resigns++;
			wd->resign_error[0] = 0;
			wd->resign_retry_at = now + RESIGN_GAP;
			wd->next_scan = now + SCAN_SOON; /* see the secondaries take it */
			drdns_log(DRDNS_LOG_NOTICE, "watchdog", "re-signed exit=%d", code);
		} else {
			wd->resign_retry_at = now + RESIGN_RETRY;
			snprintf(wd->resign_error, sizeof(wd->resign_error),
			         "re-signing failed (exit %d): %s; drdns retries in %.0f s", code,
			         err ? err : "?", RESIGN_RETRY);
			drdns_log(DRDNS_LOG_ERR, "watchdog", "%s", wd->resign_error);
		}
	}
	json_decref(reply);
	free(run);
	wd_unref(wd);
}

/* Promoted: re-sign when drdns's earliest signature is within dnssec.refresh.
 * Also while paused: pausing stops failovers, not the signatures from ageing,
 * and a zone whose signatures expire goes dark for every validating resolver. */
static void resign_maybe(struct drdns_watchdog *wd, double now)
{
	struct drdns_ctx *ctx = wd->ctx;
	if (!ctx->state->promoted || ctx->busy || wd->resigning || now < wd->resign_retry_at ||
	    !wd->expiry || wd->det.state != DRDNS_WD_PROMOTED)
		return;
	/* the master is back and ahead: the secondaries are failing back to it, a
	 * re-signing would pull them back (resign refuses that too) */
	if (wd->det.active & (1u << DRDNS_ALERT_MASTER_AHEAD))
		return;
	size_t due = wd->set->n;
	for (size_t z = 0; z < wd->set->n && due == wd->set->n; z++)
		if (wd->expiry[z].resign_due && wd->can_sign && wd->can_sign[z])
			due = z;
	if (due == wd->set->n)
		return;
	char reason[512], when[32];
	time_t t = (time_t)wd->own[due].earliest;
	struct tm tm;
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", gmtime_r(&t, &tm));
	snprintf(reason, sizeof(reason),
	         "watchdog: zone %s has signatures expiring at %s, within dnssec.refresh (%u s)",
	         wd->set->zones[due]->name, when, ctx->conf->dnssec.refresh);
	json_t *who = json_pack("{s:s}", "watchdog", ctx->conf->controller.id);
	struct resign_run *run = calloc(1, sizeof(*run));
	struct drdns_resign_opts opts = {
	    .reason = reason,
	    .wait = RESIGN_WAIT,
	    .who = who,
	};
	int ret = DRDNS_ENOMEM;
	if (run && who) {
		run->wd = wd;
		wd->refs++;
		wd->resigning = true;
		drdns_log(DRDNS_LOG_NOTICE, "watchdog", "re-signing reason=\"%s\"", reason);
		ret = drdns_resign_start(ctx, &opts, on_resigned, run);
		if (ret < 0) {
			wd->refs--;
			wd->resigning = false;
		} else {
			run = NULL;
		}
	}
	json_decref(who);
	free(run);
	if (ret < 0 && ret != DRDNS_EBUSY) {
		wd->resign_retry_at = now + RESIGN_RETRY;
		snprintf(wd->resign_error, sizeof(wd->resign_error),
		         "re-signing could not start: %s; drdns retries in %.0f s",
		         drdns_strerror(ret), RESIGN_RETRY);
		drdns_log(DRDNS_LOG_ERR, "watchdog", "%s", wd->resign_error);
	}
}

int drdns_watchdog_ack(struct drdns_watchdog *wd, const char *id, const char *who,
                       const char *reason, char *err, size_t errlen)
{
	int ret = drdns_alertbook_ack(&wd->book, id, who, reason, now_unix(), err, errlen);
	if (ret < 0)
		return ret;
	drdns_log(DRDNS_LOG_NOTICE, "alert", "acknowledged id=%s who=\"%s\" reason=\"%s\"", id, who,
	          reason);
	ret = persist_book(wd);
	if (ret < 0)
		snprintf(err, errlen,
		         "acknowledged, but %s/state.json could not be saved (%s): a restart "
		         "would forget it",
		         wd->ctx->conf->controller.state_dir, drdns_strerror(ret));
	return ret;
}

/* ---- rounds ---- */

static bool is_secondary_row(const struct drdns_watchdog *wd, size_t ns_index)
{
	return ns_index > 0 && wd->ns.list[ns_index].secondary != NULL;
}

static void persist_contact(struct drdns_watchdog *wd)
{
	struct drdns_ctx *ctx = wd->ctx;
	struct drdns_state *st = ctx->state;
	/* the zones being watched only: a zone removed from zones-dr/ is forgotten */
	for (size_t i = 0; i < st->n_contact; i++)
		free(st->contact[i].zone);
	free(st->contact);
	st->contact = NULL;
	st->n_contact = 0;
	for (size_t i = 0; i < wd->det.n_zones; i++) {
		const struct drdns_detector_zone *z = &wd->det.zones[i];
		if (z->current && z->last_ok > 0)
			drdns_state_note_contact(st, z->zone, z->last_ok, z->expire, z->refresh);
	}
	int ret = drdns_state_save(ctx->conf->controller.state_dir, ctx->state);
	if (ret < 0)
		drdns_log(DRDNS_LOG_WARNING, "watchdog", "cannot save state dir=%s error=\"%s\"",
		          ctx->conf->controller.state_dir, drdns_strerror(ret));
}

static void round_finished(struct round *r)
{
	struct drdns_watchdog *wd = r->wd;
	struct drdns_ctx *ctx = wd->ctx;
	size_t nz = wd->set ? wd->set->n : 0;
	wd->round_running = false;
	if (wd->stopped || r->build_gen != wd->build_gen || r->n_udp != wd->n_targets || nz == 0 ||
	    !r->udp) { /* rebuilt meanwhile, or a batch could not start */
		drdns_soa_results_free(r->udp, r->n_udp);
		drdns_soa_results_free(r->tcp, r->n_tcp);
		return;
	}

	struct drdns_round_zone *zones = calloc(nz, sizeof(*zones));
	if (!zones) {
		drdns_soa_results_free(r->udp, r->n_udp);
		drdns_soa_results_free(r->tcp, r->n_tcp);
		return;
	}
	dnssec_evaluate(wd, r->started);
	/* The isolation quorum: configured secondaries that are not on the campus
	 * (those are expected to go dark with the master). */
	size_t total = 0, answered = 0;
	for (size_t i = 1; i < wd->ns.n; i++) {
		if (!is_secondary_row(wd, i) || wd->ns.list[i].secondary->on_campus)
			continue;
		total++;
		bool any = false;
		for (size_t z = 0; z < nz; z++)
			any = any || !drdns_soa_result_silent(&r->udp[i * nz + z]);
		answered += any;
	}
	for (size_t z = 0; z < nz; z++) {
		const struct drdns_soa_result *u = &r->udp[z];
		const struct drdns_soa_result *t = z < r->n_tcp ? &r->tcp[z] : NULL;
		struct drdns_round_zone *rz = &zones[z];
		rz->zone = wd->set->zones[z]->name;
		bool u_silent = drdns_soa_result_silent(u);
		bool t_silent = !t || drdns_soa_result_silent(t);
		rz->master = u->answered && t && t->answered ? DRDNS_MASTER_OK
		             : u_silent && t_silent          ? DRDNS_MASTER_SILENT
		                                             : DRDNS_MASTER_DEGRADED;
		rz->master_serial = u->serial;
		rz->contact = u->answered || (t && t->answered);
		rz->expire = u->answered ? u->expire : t ? t->expire : 0;
		rz->refresh = u->answered ? u->refresh : t ? t->refresh : 0;
		rz->has_published =
		    drdns_state_published(ctx->state, rz->zone, &rz->published_serial);
		if (wd->expiry && wd->can_sign && wd->can_sign[z])
			rz->rrsig_dark = (double)wd->expiry[z].rrsig_dark;
		/* every answering secondary at (or past) the master's serial */
		rz->secondaries_at_master = u->answered;
		for (size_t i = 1; i < wd->ns.n && u->answered; i++) {
			const struct drdns_soa_result *s = &r->udp[i * nz + z];
			if (is_secondary_row(wd, i) && s->answered &&
			    drdns_serial_gt(u->serial, s->serial))
				rz->secondaries_at_master = false;
		}
		/* lag per secondary: behind the published serial when promoted, else the
		 * master's */
		uint32_t ref = rz->has_published ? rz->published_serial : u->serial;
		bool have_ref = ctx->state->promoted ? rz->has_published : u->answered;
		/* a drill moves the secondaries off the master's serial on purpose */
		const struct drdns_zoneset *drill =
		    ctx->server ? drdns_server_drill_zones(ctx->server) : NULL;
		if (drill && drdns_zoneset_find(drill, rz->zone))
			have_ref = false;
		for (size_t i = 1; i < wd->ns.n; i++) {
			struct track *tr = &wd->track[i * nz + z];
			const struct drdns_soa_result *s = &r->udp[i * nz + z];
			if (s->answered) {
				struct drdns_soa_result *one = drdns_soa_results_copy(s, 1);
				if (one) {
					free(tr->last_good.label);
					free(tr->last_good.address);
					free(tr->last_good.zone);
					tr->last_good = one[0];
					tr->last_good_at = r->started;
					free(one);
				}
			}
			bool behind = s->answered && have_ref && drdns_serial_gt(ref, s->serial);
			if (!behind && s->answered)
				tr->behind_since = 0;
			else if (behind && tr->behind_since <= 0)
				tr->behind_since = r->started;
		}
	}
	struct drdns_round in = {
	    .now = r->started,
	    .zones = zones,
	    .n_zones = nz,
	    .secondaries_total = total,
	    .secondaries_answered = answered,
	    .promoted = ctx->state->promoted,
	    .busy = ctx->busy,
	    .last_promotion_at = (double)ctx->state->last_promotion_at,
	};
	enum drdns_wd_state before = wd->det.state;
	struct drdns_decision dec;
	drdns_detector_round(&wd->det, &in, &dec);
	free(zones);

	/* Keep this round for status, metrics and hooks (serials_text reads it) before
	 * anything below runs; promote_view copies from r. */
	drdns_soa_results_free(wd->udp, wd->n_udp);
	drdns_soa_results_free(wd->tcp, wd->n_tcp);
	wd->udp = r->udp;
	wd->n_udp = r->n_udp;
	wd->tcp = r->tcp;
	wd->n_tcp = r->n_tcp;
	wd->rounds++;
	wd->last_round_at = r->started;

	if (dec.state_changed)
		drdns_log(
		    DRDNS_LOG_NOTICE, "watchdog",
		    "state from=%s to=%s master_silent_rounds=%d secondaries_answering=%zu/%zu",
		    drdns_wd_state_name(before), drdns_wd_state_name(wd->det.state),
		    wd->det.fail_streak, answered, total);
	/* The role changed since the last round (automatic or an operator's): the
	 * post hooks run now, soon after the commit, and not only if the whole
	 * operation (convergence wait included) survives. */
	bool role_changed = ctx->state->promoted != wd->last_promoted;
	if (role_changed && !wd->resigning) { /* a failure of the last term is history */
		wd->resign_error[0] = 0;
		wd->resign_retry_at = 0;
	}
	if (ctx->state->promoted && role_changed)
		wd->promotions++;
	wd->last_promoted = ctx->state->promoted;
	if (dec.contact_changed)
		persist_contact(wd);
	raise_alerts(wd, dec.raised);
	if (role_changed)
		run_hook(wd, ctx->state->promoted ? "post_promote" : "post_demote",
		         ctx->state->promoted ? ctx->conf->hooks.post_promote
		                              : ctx->conf->hooks.post_demote,
		         ctx->state->reason, NULL, NULL, NULL, NULL);
	if (dec.action == DRDNS_WD_PROMOTE)
		act_promote(wd, r, dec.reason);
	else if (dec.action == DRDNS_WD_STEPDOWN)
		act_stepdown(wd, r, dec.reason);
	/* Alerts only once every copy has been looked at since the start: until
	 * then, what state.json restored (acknowledgements) stands. */
	if (wd->scanned)
		book_sync(wd, r->started);
	resign_maybe(wd, r->started);
	scan_maybe_start(wd, r->started);

	if (wd->round_cb) {
		char summary[256];
		snprintf(summary, sizeof(summary), "%s%s, master %s, %zu/%zu secondaries answer",
		         drdns_wd_state_name(wd->det.state), wd->det.paused ? " (paused)" : "",
		         wd->det.fail_streak ? "silent" : "answers", answered, total);
		wd->round_cb(summary, wd->round_arg);
	}
}

static void round_step_done(struct round *r)
{
	if (--r->pending > 0)
		return;
	struct drdns_watchdog *wd = r->wd;
	round_finished(r);
	free(r);
	wd_unref(wd);
}

static void on_udp(struct drdns_soa_result *results, size_t n, void *arg)
{
	struct round *r = arg;
	r->udp = results;
	r->n_udp = n;
	round_step_done(r);
}

static void on_tcp(struct drdns_soa_result *results, size_t n, void *arg)
{
	struct round *r = arg;
	r->tcp = results;
	r->n_tcp = n;
	round_step_done(r);
}

static void on_tick(uv_timer_t *t)
{
	struct drdns_watchdog *wd = t->data;
	struct drdns_ctx *ctx = wd->ctx;
	if (wd->round_running || wd->stopped)
		return; /* the previous round is still out: skip this tick */
	/* The served set is swapped in at a promotion's commit, together with the role:
	 * rebuild then, even while the promotion still waits for convergence. */
	if (!wd->set || wd->rebuild || wd->built_promoted != ctx->state->promoted) {
		wd->rebuild = false;
		if (build_targets(wd) < 0) {
			if (!wd->set) { /* nothing to watch at all */
				blind(wd, "cannot load the zones to watch (see the log)");
				return;
			}
			/* zones-dr/ is broken (mid-edit?): keep watching the zones known so
			 * far; a reload retries */
			drdns_log(DRDNS_LOG_WARNING, "watchdog",
			          "keeping the previous zone list zones=%zu: fix zones-dr and "
			          "reload",
			          wd->set->n);
			wd->built_promoted = ctx->state->promoted;
		}
		blind(wd, NULL);
	}
	size_t nz = wd->set->n;
	if (nz == 0)
		return;
	struct round *r = calloc(1, sizeof(*r));
	if (!r)
		return;
	r->wd = wd;
	r->started = now_unix();
	r->build_gen = wd->build_gen;
	r->pending = 2;
	wd->refs++;
	wd->round_running = true;
	const struct drdns_conf *conf = ctx->conf;
	int a = drdns_probe_soa(ctx->loop, conf->controller.address, wd->targets, wd->n_targets,
	                        conf->master.timeout, 1, false, on_udp, r);
	int b = drdns_probe_soa(ctx->loop, conf->controller.address, wd->targets, nz,
	                        conf->master.timeout, 1, true, on_tcp, r);
	if (a < 0 || b < 0) {
		drdns_log(DRDNS_LOG_ERR, "watchdog", "cannot start probes error=\"%s\"",
		          drdns_strerror(a < 0 ? a : b));
		r->pending -= (a < 0) + (b < 0);
		if (r->pending == 0) {
			wd->round_running = false;
			free(r);
			wd_unref(wd);
		}
		/* else the started batch completes the round; the missing one reads as
		 * silent (empty), and round_finished discards a short round */
	}
}

/* ---- public ---- */

static void detector_conf(const struct drdns_conf *conf, struct drdns_detector_conf *out)
{
	*out = (struct drdns_detector_conf){
	    .fail_after = conf->master.fail_after,
	    .recover_after = conf->master.recover_after,
	    .auto_promote = conf->policy.auto_promote,
	    .auto_demote = conf->policy.auto_demote,
	    .promote_after = conf->policy.promote_after,
	    .expire_margin = conf->policy.expire_margin,
	    .block_after_failover = conf->policy.block_after_failover,
	    .retry_after = RETRY_AFTER,
	};
}

int drdns_watchdog_start(struct drdns_ctx *ctx, drdns_watchdog_round_cb round_cb, void *arg,
                         struct drdns_watchdog **out)
{
	struct drdns_watchdog *wd = calloc(1, sizeof(*wd));
	if (!wd)
		return DRDNS_ENOMEM;
	wd->ctx = ctx;
	wd->refs = 1;
	wd->round_cb = round_cb;
	wd->round_arg = arg;
	wd->last_promoted = ctx->state->promoted;
	struct drdns_detector_conf dc;
	detector_conf(ctx->conf, &dc);
	drdns_detector_init(&wd->det, &dc);
	drdns_detector_set_paused(&wd->det, ctx->state->paused);
	for (size_t i = 0; i < ctx->state->n_contact; i++)
		drdns_detector_restore_zone(
		    &wd->det, ctx->state->contact[i].zone, ctx->state->contact[i].last_ok,
		    ctx->state->contact[i].expire, ctx->state->contact[i].refresh);
	if (ctx->state->promoted)
		wd->det.state = DRDNS_WD_PROMOTED;
	struct drdns_alertbook_conf bc = {.repeat = ctx->conf->alerts.repeat,
	                                  .escalate_after = ctx->conf->alerts.escalate_after};
	drdns_alertbook_init(&wd->book, &bc);
	double started = now_unix();
	for (size_t i = 0; i < ctx->state->n_alerts; i++) {
		/* times from the future (the clock stepped back, an edit) would hold
		 * repeats and escalation back: none is later than now */
		struct drdns_alert a = ctx->state->alerts[i];
		a.raised_at = a.raised_at > started || a.raised_at < 0 ? started : a.raised_at;
		a.last_sent = a.last_sent > started || a.last_sent < 0 ? started : a.last_sent;
		drdns_alertbook_restore(&wd->book, &a);
	}
	build_targets(wd); /* a failure is retried at every tick */
	uv_timer_init(ctx->loop, &wd->timer);
	wd->timer.data = wd;
	uint64_t ms = (uint64_t)(ctx->conf->master.interval * 1000 + 0.5);
	uv_timer_start(&wd->timer, on_tick, 0, ms ? ms : 1);
	drdns_log(DRDNS_LOG_NOTICE, "watchdog",
	          "started interval=%g timeout=%g fail_after=%d auto_promote=%s paused=%s",
	          ctx->conf->master.interval, ctx->conf->master.timeout,
	          ctx->conf->master.fail_after, ctx->conf->policy.auto_promote ? "yes" : "no",
	          ctx->state->paused ? "yes" : "no");
	*out = wd;
	return 0;
}

void drdns_watchdog_stop(struct drdns_watchdog *wd)
{
	if (!wd || wd->stopped)
		return;
	wd->stopped = true;
	if (wd->rounds > 0) /* keep the latest master contact for the next start */
		persist_contact(wd);
	if (wd->scan) /* the callback still runs (and drops its reference) */
		drdns_rrsig_scan_cancel(wd->scan);
	wd->ctx->watchdog = NULL;
	uv_timer_stop(&wd->timer);
	uv_close((uv_handle_t *)&wd->timer, on_timer_closed); /* drops the first ref */
}

int drdns_watchdog_reconf(struct drdns_watchdog *wd)
{
	wd->build_gen++; /* a round in flight was built on the old configuration */
	struct drdns_detector_conf dc;
	detector_conf(wd->ctx->conf, &dc);
	drdns_detector_set_conf(&wd->det, &dc);
	struct drdns_alertbook_conf bc = {.repeat = wd->ctx->conf->alerts.repeat,
	                                  .escalate_after = wd->ctx->conf->alerts.escalate_after};
	drdns_alertbook_set_conf(&wd->book, &bc);
	uint64_t ms = (uint64_t)(wd->ctx->conf->master.interval * 1000 + 0.5);
	uv_timer_set_repeat(&wd->timer, ms ? ms : 1);
	wd->rebuild = true; /* at the next tick (never under a running round's feet) */
	return 0;
}

int drdns_watchdog_set_paused(struct drdns_watchdog *wd, bool paused, const char *reason,
                              const char *who, char *err, size_t errlen)
{
	struct drdns_state *st = wd->ctx->state;
	bool was = st->paused;
	int64_t was_at = st->paused_at;
	char *was_by = st->paused_by, *was_reason = st->paused_reason;
	st->paused = paused;
	st->paused_at = paused ? (int64_t)now_unix() : 0;
	st->paused_by = paused && who ? strdup(who) : NULL;
	st->paused_reason = paused && reason ? strdup(reason) : NULL;
	int ret = drdns_state_save(wd->ctx->conf->controller.state_dir, st);
	if (ret < 0) {
		free(st->paused_by);
		free(st->paused_reason);
		st->paused = was;
		st->paused_at = was_at;
		st->paused_by = was_by;
		st->paused_reason = was_reason;
		/* the rename may have happened before the failure: put the old one back */
		int back = drdns_state_save(wd->ctx->conf->controller.state_dir, st);
		snprintf(err, errlen, "cannot save %s/state.json: %s; %s",
		         wd->ctx->conf->controller.state_dir, drdns_strerror(ret),
		         back == 0 ? "nothing changed"
		                   : "and the previous state could not be written back: check "
		                     "state.json before restarting drdnsd");
		return ret;
	}
	free(was_by);
	free(was_reason);
	drdns_detector_set_paused(&wd->det, paused);
	drdns_log(DRDNS_LOG_NOTICE, "watchdog", "%s who=\"%s\" reason=\"%s\"",
	          paused ? "paused" : "resumed", who ? who : "", reason ? reason : "");
	return 0;
}

static json_t *time_or_null(double t)
{
	return t > 0 ? json_integer((json_int_t)t) : json_null();
}

/* One zone's signatures and time to dark (status.zones[].dnssec). */
static json_t *zone_dnssec_json(const struct drdns_watchdog *wd, size_t z, double now)
{
	const struct drdns_expiry_out *e = &wd->expiry[z];
	json_t *o = json_pack("{s:b, s:b}", "signed", e->is_signed, "drdns_can_sign",
	                      wd->can_sign && wd->can_sign[z]);
	if (!o)
		return NULL;
	json_object_set_new(o, "rrsig_earliest", time_or_null((double)e->rrsig_dark));
	json_object_set_new(o, "rrsig_earliest_at",
	                    e->rrsig_at ? json_string(e->rrsig_at) : json_null());
	json_object_set_new(o, "time_to_dark", time_or_null(e->time_to_dark));
	json_object_set_new(o, "seconds_to_dark",
	                    e->time_to_dark > 0 ? json_integer((json_int_t)(e->time_to_dark - now))
	                                        : json_null());
	json_object_set_new(o, "dark_cause",
	                    e->dark_cause ? json_string(e->dark_cause) : json_null());
	json_object_set_new(o, "next_resign", time_or_null((double)e->next_resign));
	json_object_set_new(o, "alert", e->level >= 0 ? json_string(e->alert_id) : json_null());
	return o;
}

/* What the last scans found on one nameserver for one zone. */
static json_t *copy_json(const struct rrsig_copy *c)
{
	json_t *o = json_pack("{s:b}", "known", c->known);
	if (!o)
		return NULL;
	json_object_set_new(o, "signatures",
	                    c->known ? json_integer((json_int_t)c->s.signatures) : json_null());
	json_object_set_new(o, "earliest",
	                    c->known && c->s.signatures ? json_integer((json_int_t)c->s.earliest)
	                                                : json_null());
	json_object_set_new(o, "earliest_what",
	                    c->known && c->s.signatures ? json_string(c->s.earliest_what)
	                                                : json_null());
	json_object_set_new(o, "fetched_at", time_or_null(c->fetched_at));
	json_object_set_new(o, "tried_at", time_or_null(c->tried_at));
	json_object_set_new(o, "detail", c->tried_at > 0 ? json_string(c->detail) : json_null());
	return o;
}

/* An alert of the book, as status lists it (the detector's have id and
 * message only, and cannot be acknowledged). */
static json_t *book_alert_json(const struct drdns_alert *a, const struct drdns_conf *conf)
{
	json_t *o =
	    json_pack("{s:s, s:s, s:b, s:I, s:I, s:b, s:b}", "id", a->id, "message",
	              a->message ? a->message : "", "ackable", true, "raised_at",
	              (json_int_t)a->raised_at, "repeats", (json_int_t)(a->sent ? a->sent - 1 : 0),
	              "escalated", a->escalated, "acked", a->acked);
	if (!o)
		return NULL;
	if (a->acked)
		json_object_set_new(o, "ack",
		                    json_pack("{s:s?, s:s?, s:I}", "who", a->acked_by, "reason",
		                              a->ack_reason, "at", (json_int_t)a->acked_at));
	else
		json_object_set_new(
		    o, "next_repeat",
		    time_or_null(a->last_sent > 0 ? a->last_sent + conf->alerts.repeat : 0));
	return o;
}

/* status.watchdog.dnssec: scans and re-signing. */
static json_t *dnssec_json(const struct drdns_watchdog *wd, double now)
{
	double next_resign = 0, dark = 0;
	const char *dark_zone = NULL;
	for (size_t z = 0; wd->expiry && z < wd->set->n; z++) {
		const struct drdns_expiry_out *e = &wd->expiry[z];
		if (e->next_resign > 0 && (next_resign == 0 || e->next_resign < next_resign))
			next_resign = (double)e->next_resign;
		if (e->time_to_dark > 0 && (dark == 0 || e->time_to_dark < dark)) {
			dark = e->time_to_dark;
			dark_zone = wd->set->zones[z]->name;
		}
	}
	json_t *o = json_pack("{s:b, s:I, s:b}", "scanning", wd->scan != NULL, "resigns",
	                      (json_int_t)wd->resigns, "resigning", wd->resigning);
	if (!o)
		return NULL;
	json_object_set_new(o, "last_scan", time_or_null(wd->last_scan));
	json_object_set_new(o, "next_scan", time_or_null(wd->next_scan));
	json_object_set_new(o, "next_resign", time_or_null(next_resign));
	json_object_set_new(o, "resign_error",
	                    wd->resign_error[0] ? json_string(wd->resign_error) : json_null());
	json_object_set_new(o, "earliest_dark",
	                    dark > 0
	                        ? json_pack("{s:s, s:I, s:I}", "zone", dark_zone, "at",
	                                    (json_int_t)dark, "seconds", (json_int_t)(dark - now))
	                        : json_null());
	return o;
}

json_t *drdns_watchdog_status(const struct drdns_watchdog *wd)
{
	const struct drdns_detector *d = &wd->det;
	const struct drdns_state *st = wd->ctx->state;
	double now = now_unix();
	json_t *alerts = json_array();
	for (int k = 0; k < DRDNS_ALERT_N; k++)
		if (d->active & (1u << k))
			json_array_append_new(
			    alerts, json_pack("{s:s, s:s}", "id",
			                      drdns_alert_kind_name((enum drdns_alert_kind)k),
			                      "message", d->alert_msg[k]));
	json_t *zones = json_array();
	size_t nz = wd->set ? wd->set->n : 0;
	for (size_t z = 0; z < nz; z++) {
		const char *name = wd->set->zones[z]->name;
		double dl = drdns_detector_zone_expire_deadline(d, name);
		json_t *row = json_pack("{s:s}", "zone", name);
		json_object_set_new(row, "deadline",
		                    dl > 0 ? json_integer((json_int_t)dl) : json_null());
		/* promoted: the secondaries refresh from drdns, nothing is about to expire */
		json_object_set_new(row, "seconds_left",
		                    dl > 0 && !st->promoted ? json_integer((json_int_t)(dl - now))
		                                            : json_null());
		if (wd->udp && z < wd->n_udp) {
			json_object_set_new(row, "master_udp", json_string(wd->udp[z].detail));
			json_object_set_new(row, "master_serial",
			                    wd->udp[z].answered ? json_integer(wd->udp[z].serial)
			                                        : json_null());
			json_object_set_new(row, "master_rtt", json_real(wd->udp[z].rtt));
		}
		if (wd->tcp && z < wd->n_tcp)
			json_object_set_new(row, "master_tcp", json_string(wd->tcp[z].detail));
		if (wd->expiry)
			json_object_set_new(row, "dnssec", zone_dnssec_json(wd, z, now));
		if (wd->copies)
			json_object_set_new(row, "master_rrsig", copy_json(&wd->copies[z]));
		json_array_append_new(zones, row);
	}
	json_t *secs = json_array();
	for (size_t i = 1; wd->udp && i < wd->ns.n; i++) {
		json_t *zs = json_array();
		bool any = false;
		for (size_t z = 0; z < nz; z++) {
			const struct drdns_soa_result *s = &wd->udp[i * nz + z];
			const struct track *t = &wd->track[i * nz + z];
			any = any || !drdns_soa_result_silent(s);
			json_t *row = json_pack("{s:s, s:s}", "zone", s->zone, "detail", s->detail);
			json_object_set_new(row, "serial",
			                    s->answered ? json_integer(s->serial) : json_null());
			json_object_set_new(row, "behind_seconds",
			                    t->behind_since > 0
			                        ? json_real(wd->last_round_at - t->behind_since)
			                        : json_integer(0));
			if (wd->copies)
				json_object_set_new(row, "rrsig",
				                    copy_json(&wd->copies[i * nz + z]));
			json_array_append_new(zs, row);
		}
		json_array_append_new(
		    secs, json_pack("{s:s, s:s, s:b, s:b, s:o}", "name", wd->ns.list[i].name,
		                    "address", wd->ns.list[i].address, "configured",
		                    wd->ns.list[i].secondary != NULL, "answers", any, "zones", zs));
	}
	for (size_t i = 0; i < wd->book.n; i++)
		json_array_append_new(alerts, book_alert_json(&wd->book.alerts[i], wd->ctx->conf));
	json_t *o = json_pack("{s:s, s:b, s:i, s:i, s:I, s:I, s:o, s:o, s:o}", "state",
	                      drdns_wd_state_name(d->state), "paused", d->paused,
	                      "master_silent_rounds", d->fail_streak, "master_answering_rounds",
	                      d->ok_streak, "rounds", (json_int_t)wd->rounds, "last_promotion_at",
	                      (json_int_t)st->last_promotion_at, "alerts", alerts, "zones", zones,
	                      "secondaries", secs);
	if (!o)
		return NULL;
	json_object_set_new(o, "last_round",
	                    wd->last_round_at > 0 ? json_real(wd->last_round_at) : json_null());
	/* fresh: a round completed lately, so "state" can be trusted */
	const struct drdns_conf *conf = wd->ctx->conf;
	double stale_after = 2 * conf->master.interval + conf->master.timeout + 1;
	json_object_set_new(o, "fresh",
	                    json_boolean(wd->last_round_at > 0 && !wd->blind[0] &&
	                                 now - wd->last_round_at <= stale_after));
	if (wd->blind[0]) {
		json_object_set_new(o, "blind", json_string(wd->blind));
		json_array_append_new(
		    alerts, json_pack("{s:s, s:s}", "id", "watchdog_blind", "message", wd->blind));
	}
	/* the last automatic step-down's hand-back stopped (handback.h), or null */
	json_object_set_new(o, "stepdown_error",
	                    wd->stepdown_error[0] ? json_string(wd->stepdown_error) : json_null());
	json_object_set_new(o, "down_since",
	                    d->fail_streak > 0 ? json_integer((json_int_t)d->down_since)
	                                       : json_null());
	if (st->paused)
		json_object_set_new(o, "paused_by",
		                    json_pack("{s:s?, s:s?, s:I}", "who", st->paused_by, "reason",
		                              st->paused_reason, "at", (json_int_t)st->paused_at));
	const char *dz = NULL;
	double dl = drdns_detector_deadline(d, &dz);
	json_object_set_new(o, "earliest_deadline",
	                    dl > 0 ? json_pack("{s:s, s:I}", "zone", dz, "at", (json_int_t)dl)
	                           : json_null());
	json_object_set_new(o, "dnssec", dnssec_json(wd, now));
	return o;
}

/* ---- metrics ---- */

struct text {
	char *buf;
	size_t len, cap;
	bool oom;
};

__attribute__((format(printf, 2, 3))) static void put(struct text *t, const char *fmt, ...)
{
	if (t->oom)
		return;
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(t->buf ? t->buf + t->len : NULL, t->buf ? t->cap - t->len : 0,
		                  fmt, ap);
		va_end(ap);
		if (n < 0) {
			t->oom = true;
			return;
		}
		if (t->buf && t->len + (size_t)n < t->cap) {
			t->len += (size_t)n;
			return;
		}
		size_t cap = (t->cap ? t->cap * 2 : 4096) + (size_t)n;
		char *grown = realloc(t->buf, cap);
		if (!grown) {
			t->oom = true;
			return;
		}
		t->buf = grown;
		t->cap = cap;
	}
}

/* A label value with \, " and newline escaped (exposition format). */
static const char *esc(const char *s, char *buf, size_t len)
{
	size_t j = 0;
	for (; s && *s && j + 3 < len; s++) {
		if (*s == '\\' || *s == '"') {
			buf[j++] = '\\';
			buf[j++] = *s;
		} else if (*s == '\n') {
			buf[j++] = '\\';
			buf[j++] = 'n';
		} else {
			buf[j++] = *s;
		}
	}
	buf[j] = 0;
	return buf;
}

static void help(struct text *t, const char *name, const char *type, const char *text)
{
	put(t, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

char *drdns_watchdog_metrics(const struct drdns_watchdog *wd)
{
	const struct drdns_detector *d = &wd->det;
	struct text t = {0};
	char e1[512], e2[512];
	size_t nz = wd->set ? wd->set->n : 0;
	double now = now_unix();

	bool master_up = wd->udp && nz > 0;
	for (size_t z = 0; master_up && z < nz; z++)
		master_up = wd->udp[z].answered && wd->tcp && z < wd->n_tcp && wd->tcp[z].answered;
	help(&t, "drdns_master_up", "gauge",
	     "1 when the master answered every zone over UDP and TCP in the last round");
	put(&t, "drdns_master_up %d\n", master_up);
	help(&t, "drdns_master_silent_rounds", "gauge", "consecutive rounds without any answer");
	put(&t, "drdns_master_silent_rounds %d\n", d->fail_streak);
	help(&t, "drdns_state", "gauge", "1 for the watchdog's current state");
	for (int s = DRDNS_WD_NORMAL; s <= DRDNS_WD_DEMOTING; s++)
		put(&t, "drdns_state{state=\"%s\"} %d\n",
		    drdns_wd_state_name((enum drdns_wd_state)s),
		    d->state == (enum drdns_wd_state)s);
	help(&t, "drdns_paused", "gauge", "1 when automatic actions are paused");
	put(&t, "drdns_paused %d\n", d->paused);
	help(&t, "drdns_promoted", "gauge", "1 when this controller is the primary");
	put(&t, "drdns_promoted %d\n", wd->ctx->state->promoted);
	help(&t, "drdns_promotions_total", "counter", "promotions seen since drdnsd started");
	put(&t, "drdns_promotions_total %lu\n", wd->promotions);
	help(&t, "drdns_stepdowns_total", "counter", "automatic step-downs since drdnsd started");
	put(&t, "drdns_stepdowns_total %lu\n", wd->stepdowns);
	help(&t, "drdns_pre_promote_vetoes_total", "counter",
	     "automatic promotions vetoed by the pre_promote hook");
	put(&t, "drdns_pre_promote_vetoes_total %lu\n", wd->hook_vetoes);
	help(&t, "drdns_probe_rounds_total", "counter", "probe rounds completed");
	put(&t, "drdns_probe_rounds_total %lu\n", wd->rounds);
	help(&t, "drdns_last_round_timestamp_seconds", "gauge", "unix time of the last round");
	put(&t, "drdns_last_round_timestamp_seconds %.3f\n", wd->last_round_at);
	help(&t, "drdns_alert_active", "gauge", "1 while an alert's condition holds");
	for (int k = 0; k < DRDNS_ALERT_N; k++)
		put(&t, "drdns_alert_active{alert=\"%s\"} %d\n",
		    drdns_alert_kind_name((enum drdns_alert_kind)k), (d->active >> k) & 1);

	help(&t, "drdns_master_probe_rtt_seconds", "gauge",
	     "round-trip time of the master's SOA answer, last round");
	for (size_t z = 0; z < nz; z++) {
		esc(wd->set->zones[z]->name, e1, sizeof(e1));
		if (wd->udp && wd->udp[z].answered)
			put(&t,
			    "drdns_master_probe_rtt_seconds{zone=\"%s\",transport=\"udp\"} %.6f\n",
			    e1, wd->udp[z].rtt);
		if (wd->tcp && z < wd->n_tcp && wd->tcp[z].answered)
			put(&t,
			    "drdns_master_probe_rtt_seconds{zone=\"%s\",transport=\"tcp\"} %.6f\n",
			    e1, wd->tcp[z].rtt);
	}
	help(&t, "drdns_zone_expiry_seconds", "gauge",
	     "seconds until a secondary may drop the zone (last master contact - REFRESH + "
	     "EXPIRE)");
	for (size_t z = 0; z < nz; z++) {
		double dl = drdns_detector_zone_expire_deadline(d, wd->set->zones[z]->name);
		if (dl > 0)
			put(&t, "drdns_zone_expiry_seconds{zone=\"%s\"} %.0f\n",
			    esc(wd->set->zones[z]->name, e1, sizeof(e1)), dl - now);
	}
	help(&t, "drdns_zone_time_to_dark_seconds", "gauge",
	     "seconds until the zone goes dark: the earlier of the EXPIRE deadline and the "
	     "earliest RRSIG expiration served");
	for (size_t z = 0; wd->expiry && z < nz; z++)
		if (wd->expiry[z].time_to_dark > 0)
			put(&t, "drdns_zone_time_to_dark_seconds{zone=\"%s\",cause=\"%s\"} %.0f\n",
			    esc(wd->set->zones[z]->name, e1, sizeof(e1)), wd->expiry[z].dark_cause,
			    wd->expiry[z].time_to_dark - now);
	help(&t, "drdns_zone_rrsig_expiry_seconds", "gauge",
	     "seconds until the earliest RRSIG served for the zone expires (any nameserver, or "
	     "drdns when promoted)");
	for (size_t z = 0; wd->expiry && z < nz; z++)
		if (wd->expiry[z].rrsig_dark > 0)
			put(&t, "drdns_zone_rrsig_expiry_seconds{zone=\"%s\"} %.0f\n",
			    esc(wd->set->zones[z]->name, e1, sizeof(e1)),
			    (double)wd->expiry[z].rrsig_dark - now);
	help(&t, "drdns_zone_next_resign_seconds", "gauge",
	     "promoted: seconds until drdns re-signs the zone (dnssec.refresh)");
	for (size_t z = 0; wd->expiry && z < nz; z++)
		if (wd->expiry[z].next_resign > 0)
			put(&t, "drdns_zone_next_resign_seconds{zone=\"%s\"} %.0f\n",
			    esc(wd->set->zones[z]->name, e1, sizeof(e1)),
			    (double)wd->expiry[z].next_resign - now);
	help(&t, "drdns_resigns_total", "counter", "automatic re-signings since drdnsd started");
	put(&t, "drdns_resigns_total %lu\n", wd->resigns);
	help(&t, "drdns_alerts_unacknowledged", "gauge",
	     "alerts that repeat until drdnsctl ack (RRSIG expiry, failed re-signing)");
	size_t unacked = 0, escalated = 0;
	for (size_t i = 0; i < wd->book.n; i++) {
		unacked += !wd->book.alerts[i].acked;
		escalated += !wd->book.alerts[i].acked && wd->book.alerts[i].escalated;
	}
	put(&t, "drdns_alerts_unacknowledged %zu\n", unacked);
	help(&t, "drdns_alerts_escalated", "gauge", "unacknowledged alerts that were escalated");
	put(&t, "drdns_alerts_escalated %zu\n", escalated);
	help(&t, "drdns_secondary_rrsig_expiry_seconds", "gauge",
	     "seconds until the earliest RRSIG the nameserver served at the last scan expires");
	for (size_t i = 1; wd->copies && i < wd->ns.n; i++)
		for (size_t z = 0; z < nz; z++) {
			const struct rrsig_copy *c = &wd->copies[i * nz + z];
			if (!c->known || !c->s.signatures)
				continue;
			put(&t,
			    "drdns_secondary_rrsig_expiry_seconds{secondary=\"%s\",zone=\"%s\"} "
			    "%.0f\n",
			    esc(wd->ns.list[i].name, e1, sizeof(e1)),
			    esc(wd->set->zones[z]->name, e2, sizeof(e2)),
			    (double)c->s.earliest - now);
		}
	help(&t, "drdns_secondary_up", "gauge", "1 when the nameserver answered last round");
	for (size_t i = 1; wd->udp && i < wd->ns.n; i++) {
		bool any = false;
		for (size_t z = 0; z < nz; z++)
			any = any || !drdns_soa_result_silent(&wd->udp[i * nz + z]);
		put(&t, "drdns_secondary_up{secondary=\"%s\",address=\"%s\"} %d\n",
		    esc(wd->ns.list[i].name, e1, sizeof(e1)),
		    esc(wd->ns.list[i].address, e2, sizeof(e2)), any);
	}
	help(&t, "drdns_secondary_serial", "gauge", "SOA serial the nameserver serves");
	help(&t, "drdns_secondary_lag_serial", "gauge",
	     "how far the serial is behind the reference (master, or the DR serial when "
	     "promoted)");
	help(&t, "drdns_secondary_lag_seconds", "gauge", "how long it has been behind");
	for (size_t i = 1; wd->udp && i < wd->ns.n; i++)
		for (size_t z = 0; z < nz; z++) {
			const struct drdns_soa_result *s = &wd->udp[i * nz + z];
			if (!s->answered)
				continue;
			esc(wd->ns.list[i].name, e1, sizeof(e1));
			esc(s->zone, e2, sizeof(e2));
			uint32_t ref = 0;
			bool have = wd->ctx->state->promoted
			                ? drdns_state_published(wd->ctx->state,
			                                        wd->set->zones[z]->name, &ref)
			                : wd->udp[z].answered;
			if (!wd->ctx->state->promoted)
				ref = wd->udp[z].serial;
			put(&t, "drdns_secondary_serial{secondary=\"%s\",zone=\"%s\"} %u\n", e1, e2,
			    s->serial);
			if (have)
				put(&t,
				    "drdns_secondary_lag_serial{secondary=\"%s\",zone=\"%s\"} %u\n",
				    e1, e2, drdns_serial_gt(ref, s->serial) ? ref - s->serial : 0);
			const struct track *tr = &wd->track[i * nz + z];
			put(&t, "drdns_secondary_lag_seconds{secondary=\"%s\",zone=\"%s\"} %.1f\n",
			    e1, e2,
			    tr->behind_since > 0 ? wd->last_round_at - tr->behind_since : 0.0);
		}
	if (t.oom) {
		free(t.buf);
		return NULL;
	}
	return t.buf;
}
