/*
 * Unit tests for src/failover/watchdog.c: the watchdog runtime (watchdog.h).
 * The detector it drives (detector.h) has its own tests (test_detector.c);
 * these check what the runtime does around it: real probe rounds on a libuv
 * loop, the actions it takes (promotion, step-down, hooks), what it persists,
 * its status JSON and metrics text, and that stopping it at any moment is safe.
 *
 * Harness (as in test_promote.c): every test builds a sandbox in its own
 * mkdtemp directory (drdns.conf, zones-dr/, state/) and runs on 127.0.0.x with
 * random ports, all on one loop:
 *   127.0.0.30  the DR controller's own server (ctx.server)
 *   127.0.0.31  "ns1", the configured secondary: a drdns_server serving the
 *               campus copy of example.edu. (serial CAMPUS_SERIAL); a test can
 *               "transfer" by installing another serial into it, or close it
 *   127.0.0.32  the campus master: nothing listens (dead: a closed loopback port
 *               refuses at once, which counts as silent), a drdns_server serving
 *               some serial (alive), or a UDP socket that never answers (a black
 *               hole: each round then lasts master.timeout)
 *   127.0.0.33  "ns2", a second secondary, only where a test adds one
 * The configuration is written with fast timing (master.interval 0.05 s,
 * fail_after 3, recover_after 2, promote_after 0, default_wait 2 s), loaded as
 * drdnsd loads it, then adjusted in the struct per test.  master.timeout is set
 * to 1 s there, longer than the interval (the file may not say so): dead peers
 * refuse at once, so the timeout only bounds how slow a live answer may be
 * (valgrind on a loaded machine), and a round that outlasts the interval just
 * makes the watchdog skip ticks.
 * The loop is driven with UV_RUN_ONCE until a condition holds (WAIT_FOR, with
 * a generous cap); nothing asserts wall-clock durations.  The round callback
 * counts rounds and records every state it reported.  Teardown stops the
 * watchdog, closes every server, runs the loop until it drains and requires
 * uv_loop_close() to succeed (no handle left behind); valgrind and ASan check
 * that nothing leaks.
 * DNSSEC (the RRSIG watch, the alert book, re-signing): ns1 lets the
 * watchdog's AXFR scans in (allow_transfer 127.0.0.30) and serves a copy
 * signed with the keys/ecdsa fixture as if some days ago, so its signatures
 * expire within a threshold; scans run every 0.2 s, alerts repeat every 0.3 s.
 * Hooks log their environment to files; "nothing more runs" checks let a few
 * scans and repeat periods pass.  Re-signing is tested promoted, with ns1
 * following drdns's served copy (as a secondary's transfer would), by moving
 * dnssec.refresh past the validity and back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include "drdns/conf.h"
#include "drdns/detector.h"
#include "drdns/diag.h"
#include "drdns/dnssec.h"
#include "drdns/error.h"
#include "drdns/expiry.h"
#include "drdns/failover.h"
#include "drdns/fsutil.h"
#include "drdns/log.h"
#include "drdns/serial.h"
#include "drdns/server.h"
#include "drdns/state.h"
#include "drdns/watchdog.h"
#include "drdns/zone.h"

#include "testutil.h"

#define CAMPUS_SERIAL 2024010105u
#define DR_FLOOR      2024010100u
#define REFRESH       3600
#define EXPIRE        1209600
#define CAP           60.0 /* seconds: the most any wait may take (valgrind is slow) */

static const char *ZONE_FMT =
    "$ORIGIN example.edu.\n"
    "$TTL 3600\n"
    "@ IN SOA ns0.example.net. hostmaster.example.edu. %u 3600 600 1209600 3600\n"
    "@ IN NS ns-dr\n"
    "@ IN NS ns1\n"
    "@ IN NS ns0.example.net.\n"
    "ns-dr IN A 192.0.2.53\n"
    "ns1 IN A 127.0.0.31\n"
    "www IN A 192.0.2.80\n";

struct sandbox {
	char *dir;
	uv_loop_t loop;
	struct drdns_conf *conf;
	struct drdns_conf *retired; /* replaced by a reload: kept alive, as drdnsd does */
	struct drdns_ctx ctx;
	struct drdns_conf peer_conf;   /* ns1's server */
	struct drdns_conf master_conf; /* the master's server, when it answers */
	struct drdns_server *ns1;
	struct drdns_server *master;
	struct drdns_conf ns2_conf; /* a second secondary, when a test adds one */
	struct drdns_server *ns2;
	uint16_t port_dr, port_ns1, port_master, port_ns2;
	uv_timer_t guard; /* wakes UV_RUN_ONCE up when nothing else would */
	/* simulated transfer: install the promoted serial into ns1 once notified */
	bool transfer;
	uv_timer_t transfer_timer;
	bool blackhole_on;
	uv_udp_t blackhole;
	/* what the round callback saw */
	unsigned rounds;
	uint64_t round_ns; /* uv_hrtime() of the last round */
	char summary[256];
	unsigned seen; /* bit (1u << state) for every state a round reported */
	/* snapshot of status and metrics, taken in the first NORMAL round with every
	 * peer answering (after at least 3 rounds) when snap is set */
	bool snap;
	json_t *snap_status;
	char *snap_metrics;
	/* stop the watchdog from the round callback of the first round that finds an
	 * operation running (ctx.busy): the one that just started it */
	bool stop_on_busy;
	bool stopped_in_round;
	bool promoted_at_stop;
	/* ns1's allow_transfer, when a test lets the RRSIG scans in */
	char *scan_from[1];
	/* called at the end of every round callback, when set */
	void (*each_round)(struct sandbox *s);
};

#define SEEN(state) (1u << (state))

/* ---- sandbox -------------------------------------------------------------- */

static char *path_in(const struct sandbox *s, const char *rel)
{
	char *p = NULL;
	assert_true(asprintf(&p, "%s/%s", s->dir, rel) > 0);
	return p;
}

static bool exists_in(const struct sandbox *s, const char *rel)
{
	char *p = path_in(s, rel);
	struct stat st;
	bool ok = stat(p, &st) == 0;
	free(p);
	return ok;
}

static void write_text(const char *path, const char *text)
{
	assert_int_equal(drdns_write_atomic(path, text, strlen(text), 0644), 0);
}

static void break_zones_dr(const struct sandbox *s)
{
	char *p = path_in(s, "zones-dr/example.edu.zone");
	write_text(p, "$ORIGIN example.edu.\n@ IN SOA half-edited\n");
	free(p);
}

static void fix_zones_dr(const struct sandbox *s)
{
	char text[1024];
	snprintf(text, sizeof(text), ZONE_FMT, DR_FLOOR);
	char *p = path_in(s, "zones-dr/example.edu.zone");
	write_text(p, text);
	free(p);
}

/* The text of s->dir/rel, or NULL when it does not exist (caller frees). */
static char *read_in(const struct sandbox *s, const char *rel)
{
	char *p = path_in(s, rel);
	char *text = NULL;
	if (drdns_read_file(p, &text, NULL) < 0)
		text = NULL;
	free(p);
	return text;
}

/* s->dir/rel exists and contains needle. */
static bool file_has(const struct sandbox *s, const char *rel, const char *needle)
{
	char *text = read_in(s, rel);
	bool has = text && strstr(text, needle);
	free(text);
	return has;
}

/* How many times needle occurs in s->dir/rel. */
static size_t file_count(const struct sandbox *s, const char *rel, const char *needle)
{
	char *text = read_in(s, rel);
	size_t n = 0;
	for (const char *p = text; p && (p = strstr(p, needle)); p += strlen(needle))
		n++;
	free(text);
	return n;
}

/* A /bin/sh hook script s->dir/name; returns its absolute path (caller frees,
 * or hands it to the configuration). */
static char *write_script(const struct sandbox *s, const char *name, const char *body)
{
	char *p = path_in(s, name);
	char *text = NULL;
	assert_true(asprintf(&text, "#!/bin/sh\n%s\n", body) > 0);
	assert_int_equal(drdns_write_atomic(p, text, strlen(text), 0755), 0);
	assert_int_equal(chmod(p, 0755), 0);
	free(text);
	return p;
}

static size_t gen_dirs(const struct sandbox *s)
{
	char *p = path_in(s, "state");
	DIR *d = opendir(p);
	free(p);
	if (!d)
		return 0;
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		n += strncmp(e->d_name, "gen-", 4) == 0;
	closedir(d);
	return n;
}

/* Lines of the audit log (each a JSON object), as an array (new reference). */
static json_t *audit_lines(const struct sandbox *s)
{
	json_t *arr = json_array();
	char *text = read_in(s, "state/audit.log");
	for (char *line = text ? strtok(text, "\n") : NULL; line; line = strtok(NULL, "\n")) {
		json_t *o = json_loads(line, 0, NULL);
		assert_non_null(o);
		json_array_append_new(arr, o);
	}
	free(text);
	return arr;
}

/* state.json as written on disk (new reference). */
static json_t *disk_state(const struct sandbox *s)
{
	char *p = path_in(s, "state/state.json");
	json_error_t e;
	json_t *o = json_load_file(p, 0, &e);
	if (!o)
		fail_msg("%s: %s", p, e.text);
	free(p);
	return o;
}

static struct drdns_zoneset *set_with_serial(const struct sandbox *s, uint32_t serial)
{
	char *dir = NULL;
	assert_true(asprintf(&dir, "%s/peer-%u", s->dir, serial) > 0);
	assert_int_equal(drdns_mkdir_p(dir, 0755), 0);
	char *file = NULL;
	assert_true(asprintf(&file, "%s/example.edu.zone", dir) > 0);
	char text[1024];
	snprintf(text, sizeof(text), ZONE_FMT, serial);
	write_text(file, text);
	struct drdns_diag diag = {0};
	struct drdns_zoneset *set = NULL;
	assert_int_equal(drdns_zoneset_load_dir(dir, &set, &diag), 0);
	drdns_diag_clear(&diag);
	drdns_rm_rf(dir);
	free(file);
	free(dir);
	return set;
}

static uint16_t random_port(void)
{
	return (uint16_t)(20000 + rand() % 40000);
}

static struct drdns_server *start_server(struct sandbox *s, struct drdns_conf *c, const char *addr,
                                         uint16_t *port)
{
	memset(c, 0, sizeof(*c));
	c->controller.address = (char *)addr;
	for (int tries = 0; tries < 50; tries++) {
		*port = random_port();
		c->controller.port = *port;
		struct drdns_server *srv = NULL;
		if (drdns_server_new(&s->loop, c, &srv) == 0)
			return srv;
	}
	fail_msg("no free port on %s", addr);
	return NULL;
}

static void write_conf(struct sandbox *s)
{
	char text[2048];
	snprintf(
	    text, sizeof(text),
	    "controller = { id = \"test\"; address = \"127.0.0.30\"; port = %u;\n"
	    "  ns_name = \"ns-dr.example.edu.\"; control_socket = \"run/control.sock\";\n"
	    "  state_dir = \"state\"; };\n"
	    "master = { address = \"127.0.0.32\"; port = %u; interval = 0.05; timeout = 0.04;\n"
	    "  fail_after = 3; recover_after = 2; };\n"
	    "secondaries = ( { name = \"ns1.example.edu.\"; address = \"127.0.0.31\"; port = "
	    "%u; } );\n"
	    "zones = { directory = \"zones-dr\"; dr_ttl = 600; min_ns = 1; };\n"
	    "policy = { auto_promote = true; promote_after = 0; block_after_failover = 3600;\n"
	    "  probe_timeout = 1.0; probe_attempts = 1; notify_timeout = 0.2;\n"
	    "  notify_attempts = 2; poll_interval = 0.05; default_wait = 2; };\n"
	    "hooks = { timeout = 5; };\n",
	    s->port_dr, s->port_master, s->port_ns1);
	char *p = path_in(s, "drdns.conf");
	write_text(p, text);
	free(p);
}

/* drdns.conf as drdnsd loads it, then the probe timeout widened (see the top). */
static struct drdns_conf *load_conf(struct sandbox *s)
{
	struct drdns_diag diag = {0};
	struct drdns_conf *conf = NULL;
	char *cp = path_in(s, "drdns.conf");
	int rc = drdns_conf_load(cp, &conf, &diag);
	for (size_t i = 0; rc && i < diag.n; i++)
		print_message("  %s\n", diag.msgs[i]);
	assert_int_equal(rc, 0);
	drdns_diag_clear(&diag);
	free(cp);
	conf->master.timeout = 1.0;
	return conf;
}

static void noop_timer(uv_timer_t *t)
{
	(void)t;
}

static int setup(void **state)
{
	struct sandbox *s = calloc(1, sizeof(*s));
	assert_non_null(s);
	s->dir = strdup("/tmp/drdns-test-watchdog-XXXXXX");
	assert_non_null(mkdtemp(s->dir));
	assert_int_equal(uv_loop_init(&s->loop), 0);
	uv_timer_init(&s->loop, &s->guard);

	char *zd = path_in(s, "zones-dr");
	assert_int_equal(drdns_mkdir_p(zd, 0755), 0);
	free(zd);
	fix_zones_dr(s);

	/* ns1 serves the campus copy */
	s->ns1 = start_server(s, &s->peer_conf, "127.0.0.31", &s->port_ns1);
	drdns_server_set_zones(s->ns1, set_with_serial(s, CAMPUS_SERIAL));

	/* free ports for the controller and the master (closed again: dead master) */
	struct drdns_server *probe_srv =
	    start_server(s, &s->master_conf, "127.0.0.30", &s->port_dr);
	drdns_server_close(probe_srv, NULL, NULL);
	probe_srv = start_server(s, &s->master_conf, "127.0.0.32", &s->port_master);
	drdns_server_close(probe_srv, NULL, NULL);
	uv_run(&s->loop, UV_RUN_NOWAIT);

	write_conf(s);
	s->conf = load_conf(s);
	char err[256] = "";
	assert_int_equal(
	    drdns_state_load(s->conf->controller.state_dir, &s->ctx.state, err, sizeof(err)), 0);
	s->ctx.loop = &s->loop;
	s->ctx.conf = s->conf;
	assert_int_equal(drdns_server_new(&s->loop, s->conf, &s->ctx.server), 0);
	*state = s;
	return 0;
}

/* Stop the watchdog, close every server and handle, run the loop until nothing
 * is left (operations and hooks in flight finish on their own). */
static void drain(struct sandbox *s)
{
	drdns_watchdog_stop(s->ctx.watchdog);
	assert_null(s->ctx.watchdog);
	if (s->transfer)
		uv_close((uv_handle_t *)&s->transfer_timer, NULL);
	s->transfer = false;
	if (s->blackhole_on)
		uv_close((uv_handle_t *)&s->blackhole, NULL);
	s->blackhole_on = false;
	drdns_server_close(s->ctx.server, NULL, NULL);
	drdns_server_close(s->ns1, NULL, NULL);
	drdns_server_close(s->master, NULL, NULL);
	drdns_server_close(s->ns2, NULL, NULL);
	s->ctx.server = s->ns1 = s->master = s->ns2 = NULL;
	uv_timer_stop(&s->guard);
	uv_run(&s->loop, UV_RUN_DEFAULT);
}

static int teardown(void **state)
{
	struct sandbox *s = *state;
	drain(s);
	if (!uv_is_closing((uv_handle_t *)&s->guard))
		uv_close((uv_handle_t *)&s->guard, NULL);
	uv_run(&s->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&s->loop), 0);
	json_decref(s->snap_status);
	free(s->snap_metrics);
	drdns_state_free(s->ctx.state);
	drdns_conf_free(s->conf);
	drdns_conf_free(s->retired);
	drdns_rm_rf(s->dir);
	free(s->dir);
	free(s);
	return 0;
}

/* ---- driving the loop ---------------------------------------------------- */

/* One loop iteration; never blocks for more than a few milliseconds.  The
 * guard repeats: a one-shot one could expire in the timer phase of this very
 * iteration (its due time counts from the loop's cached clock) and leave the
 * poll phase with no timeout at all. */
static void pump(struct sandbox *s)
{
	if (!uv_is_active((uv_handle_t *)&s->guard))
		uv_timer_start(&s->guard, noop_timer, 5, 5);
	uv_run(&s->loop, UV_RUN_ONCE);
}

static double elapsed(uint64_t since_ns)
{
	return (double)(uv_hrtime() - since_ns) / 1e9;
}

#define WAIT_FOR(s, cond)                                                                          \
	do {                                                                                       \
		uint64_t wait_start_ = uv_hrtime();                                                \
		while (!(cond)) {                                                                  \
			if (elapsed(wait_start_) > CAP)                                            \
				fail_msg("line %d: gave up waiting for %s (last round: %s)",       \
				         __LINE__, #cond, (s)->summary);                           \
			pump(s);                                                                   \
		}                                                                                  \
	} while (0)

static void wait_rounds(struct sandbox *s, unsigned n)
{
	unsigned target = s->rounds + n;
	WAIT_FOR(s, s->rounds >= target);
}

/* Run the loop for at least this long (for "nothing happens" checks that are
 * not about rounds: a hook that outlives its marker file). */
static void pump_for(struct sandbox *s, double seconds)
{
	uint64_t start = uv_hrtime();
	while (elapsed(start) < seconds)
		pump(s);
}

static void on_round(const char *summary, void *arg)
{
	struct sandbox *s = arg;
	assert_non_null(s->ctx.watchdog); /* never called after stop */
	s->rounds++;
	s->round_ns = uv_hrtime();
	snprintf(s->summary, sizeof(s->summary), "%s", summary);
	for (int st = DRDNS_WD_NORMAL; st <= DRDNS_WD_DEMOTING; st++) {
		const char *name = drdns_wd_state_name((enum drdns_wd_state)st);
		size_t len = strlen(name);
		if (!strncmp(summary, name, len) && (summary[len] == ',' || summary[len] == ' '))
			s->seen |= SEEN(st);
	}
	if (s->snap && !s->snap_status && s->rounds >= 3 &&
	    !strcmp(summary, "NORMAL, master answers, 1/1 secondaries answer")) {
		s->snap_status = drdns_watchdog_status(s->ctx.watchdog);
		s->snap_metrics = drdns_watchdog_metrics(s->ctx.watchdog);
	}
	if (s->stop_on_busy && s->ctx.busy) {
		s->stop_on_busy = false;
		s->stopped_in_round = true;
		s->promoted_at_stop = s->ctx.state->promoted;
		drdns_watchdog_stop(s->ctx.watchdog);
		assert_null(s->ctx.watchdog);
	}
	if (s->each_round && s->ctx.watchdog)
		s->each_round(s);
}

static void wd_start(struct sandbox *s)
{
	assert_int_equal(drdns_watchdog_start(&s->ctx, on_round, s, &s->ctx.watchdog), 0);
	assert_non_null(s->ctx.watchdog);
}

/* ---- the peers ------------------------------------------------------------ */

/* The master answers again, serving serial. */
static void master_start(struct sandbox *s, uint32_t serial)
{
	assert_null(s->master);
	memset(&s->master_conf, 0, sizeof(s->master_conf));
	s->master_conf.controller.address = "127.0.0.32";
	s->master_conf.controller.port = s->port_master;
	/* the step-down's hand-back fetches the campus copies from the controller */
	static char *handback_from[] = {"127.0.0.30"};
	s->master_conf.controller.allow_transfer = handback_from;
	s->master_conf.controller.n_allow_transfer = 1;
	for (int tries = 0; drdns_server_new(&s->loop, &s->master_conf, &s->master) != 0; tries++) {
		if (tries > 100)
			skip(); /* the port was taken meanwhile */
		pump(s);
	}
	drdns_server_set_zones(s->master, set_with_serial(s, serial));
}

static void master_stop(struct sandbox *s)
{
	drdns_server_close(s->master, NULL, NULL);
	s->master = NULL;
	uv_run(&s->loop, UV_RUN_NOWAIT);
}

/* The master's UDP port swallows every query (no answer, no ICMP); TCP refuses. */
static void blackhole_start(struct sandbox *s)
{
	struct sockaddr_in a;
	assert_int_equal(uv_ip4_addr("127.0.0.32", s->port_master, &a), 0);
	assert_int_equal(uv_udp_init(&s->loop, &s->blackhole), 0);
	s->blackhole_on = true;
	if (uv_udp_bind(&s->blackhole, (const struct sockaddr *)&a, 0) != 0)
		skip(); /* the port was taken meanwhile */
}

static void ns1_serve(struct sandbox *s, uint32_t serial)
{
	drdns_server_set_zones(s->ns1, set_with_serial(s, serial));
}

static void ns1_stop(struct sandbox *s)
{
	drdns_server_close(s->ns1, NULL, NULL);
	s->ns1 = NULL;
	uv_run(&s->loop, UV_RUN_NOWAIT);
}

/* A second configured secondary: "ns2" on 127.0.0.33, off campus, serving the
 * campus copy. */
static void add_ns2(struct sandbox *s)
{
	s->ns2 = start_server(s, &s->ns2_conf, "127.0.0.33", &s->port_ns2);
	drdns_server_set_zones(s->ns2, set_with_serial(s, CAMPUS_SERIAL));
	struct drdns_conf *c = s->conf;
	struct drdns_secondary *grown = realloc(c->secondaries, 2 * sizeof(*grown));
	assert_non_null(grown);
	c->secondaries = grown;
	memset(&grown[1], 0, sizeof(grown[1]));
	grown[1].name = strdup("ns2.example.edu.");
	grown[1].address = strdup("127.0.0.33");
	assert_true(grown[1].name && grown[1].address);
	grown[1].port = s->port_ns2;
	c->n_secondaries = 2;
}

/* "ns1 transfers": once it has been notified, install the promoted serial. */
static void transfer_cb(uv_timer_t *t)
{
	struct sandbox *s = t->data;
	struct drdns_server_stats st;
	uint32_t serial;
	if (!s->ns1)
		return;
	drdns_server_stats(s->ns1, &st);
	if (st.notify_received == 0 ||
	    !drdns_state_published(s->ctx.state, "example.edu.", &serial))
		return;
	uv_timer_stop(t);
	ns1_serve(s, serial);
}

static void simulate_transfer(struct sandbox *s)
{
	s->transfer = true;
	uv_timer_init(&s->loop, &s->transfer_timer);
	s->transfer_timer.data = s;
	uv_timer_start(&s->transfer_timer, transfer_cb, 10, 10);
}

/* ---- what the watchdog reports -------------------------------------------- */

static const char *jstr(const json_t *o, const char *key)
{
	const char *v = json_string_value(json_object_get(o, key));
	if (!v)
		fail_msg("\"%s\" is not a string", key);
	return v;
}

static json_int_t jint(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);
	if (!json_is_integer(v))
		fail_msg("\"%s\" is not an integer", key);
	return json_integer_value(v);
}

static json_t *status(const struct sandbox *s)
{
	assert_non_null(s->ctx.watchdog);
	json_t *st = drdns_watchdog_status(s->ctx.watchdog);
	assert_non_null(st);
	return st;
}

static bool state_is(const struct sandbox *s, const char *name)
{
	json_t *st = status(s);
	bool is = !strcmp(jstr(st, "state"), name);
	json_decref(st);
	return is;
}

/* The message of active alert id in a status object, or NULL. */
static const char *alert_msg(const json_t *st, const char *id)
{
	size_t i;
	json_t *a;
	json_array_foreach(json_object_get(st, "alerts"), i, a)
	{
		if (!strcmp(jstr(a, "id"), id))
			return jstr(a, "message");
	}
	return NULL;
}

static bool has_alert(const struct sandbox *s, const char *id)
{
	json_t *st = status(s);
	bool has = alert_msg(st, id) != NULL;
	json_decref(st);
	return has;
}

/* The watchdog reports that it cannot probe. */
static bool is_blind(const struct sandbox *s)
{
	json_t *st = status(s);
	bool blind = json_is_string(json_object_get(st, "blind"));
	if (blind) {
		assert_true(json_is_false(json_object_get(st, "fresh")));
		assert_non_null(alert_msg(st, "watchdog_blind"));
	}
	json_decref(st);
	return blind;
}

/* It probes, and completed a round lately. */
static bool is_fresh(const struct sandbox *s)
{
	json_t *st = status(s);
	bool fresh = json_is_true(json_object_get(st, "fresh"));
	if (fresh) {
		assert_null(json_object_get(st, "blind"));
		assert_null(alert_msg(st, "watchdog_blind"));
	}
	json_decref(st);
	return fresh;
}

static char *metrics(const struct sandbox *s)
{
	assert_non_null(s->ctx.watchdog);
	char *m = drdns_watchdog_metrics(s->ctx.watchdog);
	assert_non_null(m);
	return m;
}

static bool metrics_have(const struct sandbox *s, const char *needle)
{
	char *m = metrics(s);
	bool has = strstr(m, needle) != NULL;
	free(m);
	return has;
}

#define assert_has(text, needle)                                                                   \
	do {                                                                                       \
		if (!strstr((text), (needle)))                                                     \
			fail_msg("\"%s\" not found in:\n%s", (needle), (text));                    \
	} while (0)

#define assert_prefix(text, prefix)                                                                \
	do {                                                                                       \
		if (strncmp((text), (prefix), strlen(prefix)))                                     \
			fail_msg("\"%s\" does not start with \"%s\"", (text), (prefix));           \
	} while (0)

/* Prometheus text exposition: every sample's metric has HELP and TYPE lines
 * before it, every value is a number, and the text ends with a newline. */
static void check_exposition(const char *text)
{
	assert_true(*text && text[strlen(text) - 1] == '\n');
	for (const char *line = text; *line;) {
		const char *end = strchr(line, '\n');
		assert_non_null(end);
		if (*line != '#') {
			size_t n = strcspn(line, "{ ");
			char name[128], want[160];
			assert_true(n > 0 && n < sizeof(name));
			memcpy(name, line, n);
			name[n] = 0;
			snprintf(want, sizeof(want), "# TYPE %s ", name);
			const char *type = strstr(text, want);
			if (!type || type > line)
				fail_msg("no TYPE line before: %.*s", (int)(end - line), line);
			snprintf(want, sizeof(want), "# HELP %s ", name);
			const char *help = strstr(text, want);
			assert_true(help && help < line);
			const char *value = memchr(line, ' ', (size_t)(end - line));
			if (line[n] == '{') /* label values may hold spaces: after the '}' */
				value = strstr(line, "} ") ? strstr(line, "} ") + 1 : NULL;
			assert_non_null(value);
			char *stop = NULL;
			strtod(value + 1, &stop);
			if (stop != end)
				fail_msg("bad value: %.*s", (int)(end - line), line);
		}
		line = end + 1;
	}
}

static uint32_t served_serial(const struct drdns_server *srv)
{
	const struct drdns_zoneset *set = drdns_server_zones(srv);
	assert_non_null(set);
	assert_int_equal(set->n, 1);
	return drdns_zone_serial(set->zones[0]);
}

static double now_unix(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (double)tv.tv_sec + tv.tv_usec / 1e6;
}

/* The watchdog promoted (committed) and the promotion finished. */
static void wait_promoted(struct sandbox *s)
{
	WAIT_FOR(s, s->ctx.state->promoted && !s->ctx.busy && state_is(s, "PROMOTED"));
}

/* Nothing was promoted, anywhere: memory, server, disk. */
static void assert_not_promoted(const struct sandbox *s)
{
	assert_false(s->ctx.state->promoted);
	assert_false(s->ctx.busy);
	assert_null(drdns_server_zones(s->ctx.server));
	assert_int_equal(gen_dirs(s), 0);
	if (exists_in(s, "state/state.json")) {
		json_t *disk = disk_state(s);
		assert_true(json_is_false(json_object_get(disk, "promoted")));
		json_decref(disk);
	}
	json_t *audit = audit_lines(s);
	assert_int_equal(json_array_size(audit), 0);
	json_decref(audit);
}

/* ---- tests ------------------------------------------------------------------ */

/* The master answers: NORMAL, with its deadline and ns1's serial in status and
 * metrics; its timers are persisted and survive a restart of the watchdog. */
static void test_master_answers(void **state)
{
	struct sandbox *s = *state;
	master_start(s, CAMPUS_SERIAL);
	s->snap = true;
	double before = now_unix();
	wd_start(s);
	WAIT_FOR(s, s->snap_status);
	assert_true(s->seen & SEEN(DRDNS_WD_NORMAL));
	assert_false(s->seen & SEEN(DRDNS_WD_PROMOTING));

	json_t *st = s->snap_status;
	assert_string_equal(jstr(st, "state"), "NORMAL");
	assert_true(json_is_false(json_object_get(st, "paused")));
	assert_null(json_object_get(st, "paused_by"));
	assert_true(json_is_true(json_object_get(st, "fresh")));
	assert_null(json_object_get(st, "blind"));
	assert_int_equal(jint(st, "master_silent_rounds"), 0);
	assert_true(jint(st, "master_answering_rounds") >= 1);
	assert_true(jint(st, "rounds") >= 3);
	assert_int_equal(jint(st, "last_promotion_at"), 0);
	assert_int_equal(json_array_size(json_object_get(st, "alerts")), 0);
	assert_true(json_is_real(json_object_get(st, "last_round")));
	assert_true(json_real_value(json_object_get(st, "last_round")) >= before - 1);
	assert_true(json_is_null(json_object_get(st, "down_since")));

	json_t *zones = json_object_get(st, "zones");
	assert_int_equal(json_array_size(zones), 1);
	json_t *z = json_array_get(zones, 0);
	assert_string_equal(jstr(z, "zone"), "example.edu.");
	assert_in_range(jint(z, "seconds_left"), EXPIRE - REFRESH - 120, EXPIRE - REFRESH);
	json_int_t deadline = jint(z, "deadline");
	assert_in_range(deadline, (json_int_t)before + EXPIRE - REFRESH - 1,
	                (json_int_t)now_unix() + EXPIRE - REFRESH);
	assert_int_equal(jint(z, "master_serial"), CAMPUS_SERIAL);
	assert_string_equal(jstr(z, "master_udp"), "ok");
	assert_string_equal(jstr(z, "master_tcp"), "ok");
	json_t *earliest = json_object_get(st, "earliest_deadline");
	assert_string_equal(jstr(earliest, "zone"), "example.edu.");
	assert_int_equal(jint(earliest, "at"), deadline);

	json_t *secs = json_object_get(st, "secondaries");
	assert_int_equal(json_array_size(secs), 1);
	json_t *sec = json_array_get(secs, 0);
	assert_string_equal(jstr(sec, "name"), "ns1.example.edu.");
	assert_string_equal(jstr(sec, "address"), "127.0.0.31");
	assert_true(json_is_true(json_object_get(sec, "configured")));
	assert_true(json_is_true(json_object_get(sec, "answers")));
	json_t *sz = json_array_get(json_object_get(sec, "zones"), 0);
	assert_string_equal(jstr(sz, "zone"), "example.edu.");
	assert_int_equal(jint(sz, "serial"), CAMPUS_SERIAL);
	assert_int_equal(jint(sz, "behind_seconds"), 0);

	const char *m = s->snap_metrics;
	assert_non_null(m);
	check_exposition(m);
	assert_has(m, "# HELP drdns_master_up ");
	assert_has(m, "# TYPE drdns_master_up gauge\n");
	assert_has(m, "\ndrdns_master_up 1\n");
	assert_has(m, "\ndrdns_master_silent_rounds 0\n");
	assert_has(m, "\ndrdns_state{state=\"NORMAL\"} 1\n");
	assert_has(m, "\ndrdns_state{state=\"PROMOTED\"} 0\n");
	assert_has(m, "\ndrdns_paused 0\n");
	assert_has(m, "\ndrdns_promoted 0\n");
	assert_has(m, "\ndrdns_promotions_total 0\n");
	assert_has(m, "# TYPE drdns_promotions_total counter\n");
	assert_has(m, "\ndrdns_alert_active{alert=\"master_down\"} 0\n");
	assert_has(
	    m, "\ndrdns_secondary_up{secondary=\"ns1.example.edu.\",address=\"127.0.0.31\"} 1\n");
	assert_has(m,
	           "\ndrdns_secondary_serial{secondary=\"ns1.example.edu.\",zone=\"example.edu.\"} "
	           "2024010105\n");
	assert_has(m, "\ndrdns_secondary_lag_serial{secondary=\"ns1.example.edu.\",zone=\"example."
	              "edu.\"} 0\n");
	assert_has(m, "\ndrdns_master_probe_rtt_seconds{zone=\"example.edu.\",transport=\"udp\"} ");
	assert_has(m, "\ndrdns_master_probe_rtt_seconds{zone=\"example.edu.\",transport=\"tcp\"} ");
	assert_has(m, "\ndrdns_zone_expiry_seconds{zone=\"example.edu.\"} 120");

	/* the master's timers are on disk since the first OK round */
	json_t *disk = disk_state(s);
	json_t *contact = json_object_get(disk, "contact");
	assert_int_equal(json_array_size(contact), 1);
	json_t *c = json_array_get(contact, 0);
	assert_string_equal(jstr(c, "zone"), "example.edu.");
	assert_true(json_is_real(json_object_get(c, "last_ok")));
	double last_ok = json_real_value(json_object_get(c, "last_ok"));
	assert_true(last_ok >= before - 1 && last_ok <= now_unix());
	assert_int_equal(jint(c, "expire"), EXPIRE);
	assert_int_equal(jint(c, "refresh"), REFRESH);
	assert_true(json_is_false(json_object_get(disk, "promoted")));
	json_decref(disk);

	/* A restart during an outage: stopping saves the latest contact (over a
	 * second after the first one, saved above); a new watchdog on the state read
	 * back from disk knows that deadline before its first round, and keeps it
	 * while the master is silent. */
	unsigned ok_rounds = s->rounds;
	pump_for(s, 1.2);
	assert_true(s->rounds > ok_rounds);
	st = status(s);
	json_int_t latest = jint(json_array_get(json_object_get(st, "zones"), 0), "deadline");
	assert_true(latest >= (json_int_t)(last_ok - REFRESH + EXPIRE) + 1);
	json_decref(st);
	drdns_watchdog_stop(s->ctx.watchdog);
	master_stop(s);
	struct drdns_state *back = NULL;
	char err[256] = "";
	assert_int_equal(drdns_state_load(s->conf->controller.state_dir, &back, err, sizeof(err)),
	                 0);
	drdns_state_free(s->ctx.state);
	s->ctx.state = back;
	unsigned rounds = s->rounds;
	wd_start(s);
	st = status(s);
	assert_int_equal(jint(st, "rounds"), 0);
	assert_true(json_is_null(json_object_get(st, "last_round")));
	z = json_array_get(json_object_get(st, "zones"), 0);
	json_int_t restored = latest;
	assert_int_equal(jint(z, "deadline"), restored);
	assert_null(json_object_get(z, "master_udp")); /* no round yet */
	json_decref(st);
	WAIT_FOR(s, s->rounds >= rounds + 2);
	st = status(s);
	assert_string_equal(jstr(st, "state"), "SUSPECT");
	assert_true(jint(st, "master_silent_rounds") >= 1);
	assert_true(json_is_integer(json_object_get(st, "down_since")));
	z = json_array_get(json_object_get(st, "zones"), 0);
	assert_int_equal(jint(z, "deadline"), restored);
	assert_true(json_is_null(json_object_get(z, "master_serial")));
	json_decref(st);
	char *m2 = metrics(s);
	check_exposition(m2);
	assert_has(m2, "\ndrdns_master_up 0\n");
	assert_has(m2, "\ndrdns_state{state=\"SUSPECT\"} 1\n");
	free(m2);
}

/* The master is dead, ns1 answers: the watchdog promotes on its own, with the
 * round's probes, and records who did it. */
static void test_auto_promote(void **state)
{
	struct sandbox *s = *state;
	simulate_transfer(s);
	wd_start(s);
	wait_promoted(s);
	assert_true(s->seen & SEEN(DRDNS_WD_SUSPECT));
	assert_true(s->seen & SEEN(DRDNS_WD_PROMOTING));
	assert_false(s->seen & SEEN(DRDNS_WD_NORMAL));

	const uint32_t dr = CAMPUS_SERIAL + 1;
	uint32_t serial = 0;
	assert_int_equal(s->ctx.state->generation, 1);
	assert_true(drdns_state_published(s->ctx.state, "example.edu.", &serial));
	assert_int_equal(serial, dr);
	assert_int_equal(served_serial(s->ctx.server), dr);
	assert_prefix(s->ctx.state->reason, "watchdog: the master has not answered since ");
	assert_string_equal(s->ctx.state->who, "watchdog controller=test");
	assert_true(s->ctx.state->last_promotion_at > 0);

	json_t *disk = disk_state(s);
	assert_true(json_is_true(json_object_get(disk, "promoted")));
	assert_int_equal(jint(disk, "generation"), 1);
	assert_prefix(jstr(disk, "reason"), "watchdog:");
	assert_string_equal(jstr(disk, "who"), "watchdog controller=test");
	assert_true(jint(json_object_get(disk, "watchdog"), "last_promotion_at") > 0);
	json_decref(disk);

	json_t *audit = audit_lines(s);
	assert_int_equal(json_array_size(audit), 2);
	json_t *rec = json_array_get(audit, 0);
	assert_string_equal(jstr(rec, "action"), "promote");
	assert_string_equal(jstr(rec, "result"), "committed");
	assert_string_equal(jstr(json_object_get(rec, "who"), "watchdog"), "test");
	assert_prefix(jstr(rec, "reason"), "watchdog:");
	assert_int_equal(jint(json_object_get(rec, "serials"), "example.edu."), dr);
	rec = json_array_get(audit, 1);
	assert_string_equal(jstr(rec, "result"), "done");
	assert_int_equal(jint(rec, "exit"), 0);
	json_decref(audit);

	/* promoted: no deadline is counted down, ns1 follows the DR serial, and
	 * nothing is promoted twice */
	wait_rounds(s, 5);
	json_t *st = status(s);
	assert_string_equal(jstr(st, "state"), "PROMOTED");
	assert_true(jint(st, "last_promotion_at") > 0);
	json_t *z = json_array_get(json_object_get(st, "zones"), 0);
	assert_true(json_is_null(json_object_get(z, "seconds_left")));
	json_t *sz = json_array_get(
	    json_object_get(json_array_get(json_object_get(st, "secondaries"), 0), "zones"), 0);
	assert_int_equal(jint(sz, "serial"), dr);
	json_decref(st);
	assert_int_equal(s->ctx.state->generation, 1);
	assert_int_equal(gen_dirs(s), 1);
	audit = audit_lines(s);
	assert_int_equal(json_array_size(audit), 2);
	json_decref(audit);
	char *m = metrics(s);
	check_exposition(m);
	assert_has(m, "\ndrdns_promoted 1\n");
	assert_has(m, "\ndrdns_state{state=\"PROMOTED\"} 1\n");
	assert_has(m, "\ndrdns_master_up 0\n");
	assert_has(m, "\ndrdns_secondary_lag_serial{secondary=\"ns1.example.edu.\",zone=\"example."
	              "edu.\"} 0\n");
	free(m);
}

/* One automatic promotion counts once in drdns_promotions_total, also when
 * rounds run while it waits for convergence after its commit point. */
static void test_promotion_counted_once(void **state)
{
	struct sandbox *s = *state;
	s->conf->policy.default_wait = 1.0; /* ns1 never transfers: rounds run meanwhile */
	wd_start(s);
	WAIT_FOR(s, s->ctx.state->promoted && s->ctx.busy);
	unsigned rounds = s->rounds;
	WAIT_FOR(s, !s->ctx.busy);
	assert_true(s->rounds > rounds); /* rounds did run between commit and finish */
	wait_rounds(s, 2);
	char *m = metrics(s);
	assert_has(m, "\ndrdns_promotions_total 1\n");
	free(m);
}

/* auto_promote off: MASTER_DOWN and manual_needed, never a promotion. */
static void test_manual_needed(void **state)
{
	struct sandbox *s = *state;
	s->conf->policy.auto_promote = false;
	wd_start(s);
	WAIT_FOR(s, state_is(s, "MASTER_DOWN") && has_alert(s, "manual_needed"));
	assert_true(s->seen & SEEN(DRDNS_WD_SUSPECT));
	wait_rounds(s, 10);
	json_t *st = status(s);
	assert_string_equal(jstr(st, "state"), "MASTER_DOWN");
	assert_true(jint(st, "master_silent_rounds") >= 13);
	assert_true(json_is_integer(json_object_get(st, "down_since")));
	assert_non_null(alert_msg(st, "master_down"));
	assert_has(alert_msg(st, "master_down"), "1 of 1 secondaries answer");
	assert_has(alert_msg(st, "manual_needed"), "drdnsctl promote");
	assert_null(alert_msg(st, "isolated"));
	/* never seen answering: no deadline known */
	json_t *z = json_array_get(json_object_get(st, "zones"), 0);
	assert_true(json_is_null(json_object_get(z, "deadline")));
	assert_true(json_is_null(json_object_get(st, "earliest_deadline")));
	json_decref(st);
	assert_not_promoted(s);
	assert_string_equal(s->summary, "MASTER_DOWN, master silent, 1/1 secondaries answer");
	char *m = metrics(s);
	check_exposition(m);
	assert_has(m, "\ndrdns_master_up 0\n");
	assert_has(m, "\ndrdns_state{state=\"MASTER_DOWN\"} 1\n");
	assert_has(m, "\ndrdns_alert_active{alert=\"manual_needed\"} 1\n");
	assert_has(m, "\ndrdns_alert_active{alert=\"master_down\"} 1\n");
	assert_has(m, "\ndrdns_alert_active{alert=\"isolated\"} 0\n");
	free(m);
}

/* The master and ns1 are both silent: this host is the one cut off. */
static void test_isolated(void **state)
{
	struct sandbox *s = *state;
	ns1_stop(s);
	wd_start(s);
	WAIT_FOR(s, state_is(s, "ISOLATED"));
	wait_rounds(s, 15);
	json_t *st = status(s);
	assert_string_equal(jstr(st, "state"), "ISOLATED");
	assert_non_null(alert_msg(st, "isolated"));
	assert_null(alert_msg(st, "master_down"));
	json_t *sec = json_array_get(json_object_get(st, "secondaries"), 0);
	assert_true(json_is_false(json_object_get(sec, "answers")));
	assert_true(json_is_null(
	    json_object_get(json_array_get(json_object_get(sec, "zones"), 0), "serial")));
	json_decref(st);
	assert_not_promoted(s);
	assert_false(s->seen & SEEN(DRDNS_WD_MASTER_DOWN));
	assert_string_equal(s->summary, "ISOLATED, master silent, 0/1 secondaries answer");
	char *m = metrics(s);
	check_exposition(m);
	assert_has(
	    m, "\ndrdns_secondary_up{secondary=\"ns1.example.edu.\",address=\"127.0.0.31\"} 0\n");
	assert_has(m, "\ndrdns_alert_active{alert=\"isolated\"} 1\n");
	assert_true(strstr(m, "drdns_secondary_serial{") == NULL); /* nothing answered */
	free(m);
}

/* Pause: persisted with who and why; a paused watchdog detects but does not
 * act; a pause or resume that cannot be saved changes nothing; resume acts. */
static void test_pause(void **state)
{
	struct sandbox *s = *state;
	s->conf->policy.default_wait = 0.2;
	wd_start(s);
	struct drdns_watchdog *wd = s->ctx.watchdog;
	char err[512] = "";

	/* state.json cannot be replaced: nothing changes */
	char *sj = path_in(s, "state/state.json");
	assert_int_equal(drdns_mkdir_p(sj, 0755), 0);
	char *inside = path_in(s, "state/state.json/x");
	write_text(inside, "x");
	assert_true(drdns_watchdog_set_paused(wd, true, "drill", "uid=0", err, sizeof(err)) < 0);
	assert_has(err, "state.json");
	assert_false(s->ctx.state->paused);
	assert_null(s->ctx.state->paused_by);
	assert_null(s->ctx.state->paused_reason);
	assert_int_equal(s->ctx.state->paused_at, 0);
	json_t *st = status(s);
	assert_true(json_is_false(json_object_get(st, "paused")));
	json_decref(st);
	drdns_rm_rf(sj);

	err[0] = 0;
	assert_int_equal(drdns_watchdog_set_paused(wd, true, "drill", "uid=0", err, sizeof(err)),
	                 0);
	assert_true(s->ctx.state->paused);
	json_t *disk = disk_state(s);
	json_t *w = json_object_get(disk, "watchdog");
	assert_true(json_is_true(json_object_get(w, "paused")));
	assert_string_equal(jstr(w, "paused_by"), "uid=0");
	assert_string_equal(jstr(w, "paused_reason"), "drill");
	assert_true(jint(w, "paused_at") > 0);
	json_decref(disk);

	WAIT_FOR(s, state_is(s, "MASTER_DOWN") && has_alert(s, "paused_while_down"));
	wait_rounds(s, 10);
	st = status(s);
	assert_string_equal(jstr(st, "state"), "MASTER_DOWN");
	assert_true(json_is_true(json_object_get(st, "paused")));
	json_t *by = json_object_get(st, "paused_by");
	assert_string_equal(jstr(by, "who"), "uid=0");
	assert_string_equal(jstr(by, "reason"), "drill");
	assert_true(jint(by, "at") > 0);
	assert_has(alert_msg(st, "paused_while_down"), "paused");
	json_decref(st);
	assert_not_promoted(s);
	assert_string_equal(s->summary,
	                    "MASTER_DOWN (paused), master silent, 1/1 secondaries answer");
	assert_true(metrics_have(s, "\ndrdns_paused 1\n"));

	/* a resume that cannot be saved: still paused, who and why kept */
	assert_int_equal(unlink(sj), 0);
	assert_int_equal(drdns_mkdir_p(sj, 0755), 0);
	write_text(inside, "x");
	err[0] = 0;
	assert_true(drdns_watchdog_set_paused(wd, false, "done", "uid=1", err, sizeof(err)) < 0);
	assert_has(err, "state.json");
	assert_true(s->ctx.state->paused);
	assert_string_equal(s->ctx.state->paused_by, "uid=0");
	assert_string_equal(s->ctx.state->paused_reason, "drill");
	wait_rounds(s, 3);
	assert_false(s->ctx.state->promoted);
	assert_true(has_alert(s, "paused_while_down"));
	drdns_rm_rf(sj);
	free(inside);
	free(sj);

	/* resume: the next round promotes */
	assert_int_equal(drdns_watchdog_set_paused(wd, false, "done", "uid=1", err, sizeof(err)),
	                 0);
	assert_false(s->ctx.state->paused);
	assert_null(s->ctx.state->paused_by);
	disk = disk_state(s);
	w = json_object_get(disk, "watchdog");
	assert_true(json_is_false(json_object_get(w, "paused")));
	assert_true(json_is_null(json_object_get(w, "paused_by")));
	assert_true(json_is_null(json_object_get(w, "paused_reason")));
	json_decref(disk);
	st = status(s);
	assert_true(json_is_false(json_object_get(st, "paused")));
	assert_null(json_object_get(st, "paused_by"));
	json_decref(st);
	wait_promoted(s);
	assert_int_equal(served_serial(s->ctx.server), CAMPUS_SERIAL + 1);
	assert_true(metrics_have(s, "\ndrdns_paused 0\n"));
}

/* A pre_promote hook that exits non-zero vetoes the promotion (and the retry
 * waits a minute); on_alert runs for each raised alert. */
static void test_pre_promote_veto(void **state)
{
	struct sandbox *s = *state;
	char body[1024];
	s->conf->hooks.pre_promote = write_script(s, "veto.sh", "echo not now; exit 1");
	snprintf(body, sizeof(body), "echo \"$DRDNS_EVENT $DRDNS_ALERT\" >> %s/alerts.txt", s->dir);
	s->conf->hooks.on_alert = write_script(s, "alert.sh", body);
	wd_start(s);
	WAIT_FOR(s, metrics_have(s, "\ndrdns_pre_promote_vetoes_total 1\n"));
	WAIT_FOR(s, has_alert(s, "promote_failed"));
	wait_rounds(s, 10);
	json_t *st = status(s);
	assert_string_equal(jstr(st, "state"), "MASTER_DOWN");
	assert_has(alert_msg(st, "promote_failed"), "1 automatic promotion attempt(s) failed");
	json_decref(st);
	assert_true(metrics_have(s, "\ndrdns_pre_promote_vetoes_total 1\n"));
	assert_false(s->ctx.state->promoted);
	assert_null(drdns_server_zones(s->ctx.server));
	assert_int_equal(gen_dirs(s), 0);
	json_t *audit = audit_lines(s); /* a veto is not a promotion attempt */
	assert_int_equal(json_array_size(audit), 0);
	json_decref(audit);
	/* on_alert ran for master_down and promote_failed (hooks are asynchronous) */
	WAIT_FOR(s, file_has(s, "alerts.txt", "on_alert master_down\n") &&
	                file_has(s, "alerts.txt", "on_alert promote_failed\n"));
	/* edge-triggered: the master never answered, so master_down was raised once */
	wait_rounds(s, 3);
	assert_int_equal(file_count(s, "alerts.txt", "on_alert master_down\n"), 1);
}

/* A pre_promote hook that exits 0 lets the promotion go on; every hook gets
 * its event's environment. */
static void test_hooks_promote(void **state)
{
	struct sandbox *s = *state;
	char body[1024];
	snprintf(body, sizeof(body), "env > %s/pre.tmp && mv %s/pre.tmp %s/pre.env", s->dir, s->dir,
	         s->dir);
	s->conf->hooks.pre_promote = write_script(s, "pre.sh", body);
	snprintf(body, sizeof(body), "env > %s/post.tmp && mv %s/post.tmp %s/post.env", s->dir,
	         s->dir, s->dir);
	s->conf->hooks.post_promote = write_script(s, "post.sh", body);
	snprintf(body, sizeof(body), "echo \"$DRDNS_ALERT|$DRDNS_ALERT_MESSAGE\" >> %s/alerts.txt",
	         s->dir);
	s->conf->hooks.on_alert = write_script(s, "alert.sh", body);
	simulate_transfer(s);
	wd_start(s);
	wait_promoted(s);
	assert_int_equal(served_serial(s->ctx.server), CAMPUS_SERIAL + 1);
	assert_true(metrics_have(s, "\ndrdns_pre_promote_vetoes_total 0\n"));

	char *pre = read_in(s, "pre.env");
	assert_non_null(pre);
	assert_has(pre, "DRDNS_EVENT=pre_promote\n");
	assert_has(pre, "DRDNS_REASON=watchdog: the master has not answered since ");
	assert_has(pre, "DRDNS_STATE=PROMOTING\n");
	assert_has(pre, "DRDNS_ROLE=standby\n");
	assert_has(pre, "DRDNS_CONTROLLER=test\n");
	assert_has(pre, "DRDNS_MASTER=127.0.0.32\n");
	assert_has(pre, "DRDNS_ZONES=example.edu.\n");
	free(pre);

	WAIT_FOR(s, exists_in(s, "post.env"));
	char *post = read_in(s, "post.env");
	assert_non_null(post);
	assert_has(post, "DRDNS_EVENT=post_promote\n");
	assert_has(post, "DRDNS_ROLE=primary\n");
	assert_has(post, "DRDNS_SERIALS=example.edu.=2024010106\n");
	free(post);

	WAIT_FOR(s, file_has(s, "alerts.txt", "master_down|the master has not answered since"));
}

/* Promoted, the master returns ahead of the DR serial and ns1 follows it: the
 * watchdog steps down after recover_after rounds. */
static void test_stepdown(void **state)
{
	struct sandbox *s = *state;
	char body[1024];
	snprintf(body, sizeof(body), "env > %s/demote.tmp && mv %s/demote.tmp %s/demote.env",
	         s->dir, s->dir, s->dir);
	s->conf->hooks.post_demote = write_script(s, "demote.sh", body);
	simulate_transfer(s);
	wd_start(s);
	wait_promoted(s);
	s->seen = 0;
	const uint32_t dr = CAMPUS_SERIAL + 1, campus = CAMPUS_SERIAL + 10;
	struct drdns_server_stats before;
	drdns_server_stats(s->ns1, &before);

	master_start(s, campus);
	ns1_serve(s, campus);
	WAIT_FOR(s, !s->ctx.state->promoted && !s->ctx.busy && state_is(s, "NORMAL"));
	assert_null(drdns_server_zones(s->ctx.server));
	assert_int_equal(gen_dirs(s), 0);
	assert_false(s->seen & SEEN(DRDNS_WD_PROMOTING)); /* DEMOTING, not PROMOTING */
	assert_prefix(s->ctx.state->reason, "watchdog: the master is back and ahead");
	assert_string_equal(s->ctx.state->who, "watchdog controller=test");
	json_t *disk = disk_state(s);
	assert_true(json_is_false(json_object_get(disk, "promoted")));
	assert_int_equal(json_array_size(json_object_get(disk, "zones")), 0);
	/* what was published is remembered, so a later promotion goes above it */
	json_t *seen = json_array_get(json_object_get(disk, "seen"), 0);
	assert_string_equal(jstr(seen, "zone"), "example.edu.");
	assert_true(jint(seen, "serial") >= dr);
	json_decref(disk);

	json_t *audit = audit_lines(s);
	size_t n = json_array_size(audit);
	assert_int_equal(n, 4); /* promote committed, done; stepdown committed, done */
	json_t *rec = json_array_get(audit, 2);
	assert_string_equal(jstr(rec, "action"), "stepdown");
	assert_string_equal(jstr(rec, "result"), "committed");
	assert_string_equal(jstr(json_object_get(rec, "who"), "watchdog"), "test");
	assert_prefix(jstr(rec, "reason"), "watchdog:");
	assert_int_equal(jint(json_object_get(rec, "master_serials"), "example.edu."), campus);
	assert_int_equal(jint(json_object_get(rec, "published_serials"), "example.edu."), dr);
	rec = json_array_get(audit, 3);
	assert_string_equal(jstr(rec, "action"), "stepdown");
	assert_string_equal(jstr(rec, "result"), "done");
	json_decref(audit);

	/* ns1 was told to re-check its primaries */
	struct drdns_server_stats after;
	drdns_server_stats(s->ns1, &after);
	assert_true(after.notify_received > before.notify_received);

	WAIT_FOR(s, exists_in(s, "demote.env"));
	char *env = read_in(s, "demote.env");
	assert_has(env, "DRDNS_EVENT=post_demote\n");
	assert_has(env, "DRDNS_ROLE=standby\n");
	assert_has(env, "DRDNS_REASON=watchdog: the master is back");
	free(env);

	/* standby again, watching the DR set on disk: the master answers, all quiet */
	wait_rounds(s, 5);
	json_t *st = status(s);
	assert_string_equal(jstr(st, "state"), "NORMAL");
	assert_int_equal(json_array_size(json_object_get(st, "alerts")), 0);
	json_t *z = json_array_get(json_object_get(st, "zones"), 0);
	assert_int_equal(jint(z, "master_serial"), campus);
	assert_true(json_is_integer(json_object_get(z, "seconds_left")));
	json_decref(st);
	char *m = metrics(s);
	check_exposition(m);
	assert_has(m, "\ndrdns_stepdowns_total 1\n");
	assert_has(m, "\ndrdns_promoted 0\n");
	assert_has(m, "\ndrdns_master_up 1\n");
	free(m);
}

/* Promoted, the master returns behind the DR serial (master_returned), then
 * ahead while ns1 still serves the DR serial (master_ahead): no step-down
 * without auto_demote. */
static void test_no_stepdown_unless_ahead_and_followed(void **state)
{
	struct sandbox *s = *state;
	simulate_transfer(s);
	wd_start(s);
	wait_promoted(s);
	const uint32_t dr = CAMPUS_SERIAL + 1;

	master_start(s, CAMPUS_SERIAL);
	WAIT_FOR(s, has_alert(s, "master_returned"));
	wait_rounds(s, 8);
	json_t *st = status(s);
	assert_string_equal(jstr(st, "state"), "PROMOTED");
	const char *msg = alert_msg(st, "master_returned");
	assert_non_null(msg);
	assert_has(msg, "is at 2024010105 on the master, 2024010106 here");
	assert_null(alert_msg(st, "master_ahead"));
	json_decref(st);
	assert_true(s->ctx.state->promoted);
	assert_int_equal(served_serial(s->ctx.server), dr);

	/* ahead, but ns1 stays on the DR serial */
	drdns_server_set_zones(s->master, set_with_serial(s, CAMPUS_SERIAL + 10));
	WAIT_FOR(s, has_alert(s, "master_ahead"));
	wait_rounds(s, 8);
	st = status(s);
	assert_string_equal(jstr(st, "state"), "PROMOTED");
	assert_has(alert_msg(st, "master_ahead"), "the secondaries fail back to it; ");
	assert_null(alert_msg(st, "master_returned"));
	json_decref(st);
	assert_true(s->ctx.state->promoted);
	assert_int_equal(served_serial(s->ctx.server), dr);
	assert_false(s->seen & SEEN(DRDNS_WD_DEMOTING));
	json_t *audit = audit_lines(s);
	size_t i;
	json_t *rec;
	json_array_foreach(audit, i, rec)
	{
		assert_string_equal(jstr(rec, "action"), "promote");
	}
	json_decref(audit);
	assert_true(metrics_have(s, "\ndrdns_stepdowns_total 0\n"));
}

/* Stop while a round is in flight, at many points: the round acts on nothing,
 * the callback is not called again, and everything is freed. */
static void test_stop_during_round(void **state)
{
	struct sandbox *s = *state;
	/* a black hole master: each round lasts master.timeout */
	blackhole_start(s);
	s->conf->master.timeout = 0.6;
	wd_start(s);
	wait_rounds(s, 1);
	/* 0.25 s after a round ended the next has started (a tick every 0.05 s), and
	 * it cannot end before its master probe times out */
	unsigned rounds = s->rounds;
	uint64_t end = s->round_ns;
	WAIT_FOR(s, elapsed(end) > 0.25);
	assert_int_equal(s->rounds, rounds);
	drdns_watchdog_stop(s->ctx.watchdog);
	assert_null(s->ctx.watchdog);
	drdns_watchdog_stop(NULL);
	pump_for(s, 0.8); /* the round's probes time out meanwhile */
	assert_int_equal(s->rounds, rounds);
	uv_close((uv_handle_t *)&s->blackhole, NULL);
	s->blackhole_on = false;

	/* and right at the start, or a few loop iterations in, with the master dead
	 * or answering */
	for (int k = 0; k < 12; k++) {
		if (k == 6)
			master_start(s, CAMPUS_SERIAL);
		wd_start(s);
		for (int i = 0; i < k % 6; i++)
			pump(s);
		rounds = s->rounds;
		drdns_watchdog_stop(s->ctx.watchdog);
		for (int i = 0; i < 20; i++)
			pump(s);
		assert_int_equal(s->rounds, rounds);
	}
	assert_false(s->ctx.state->promoted);
}

/* Stop from the round that just started the automatic promotion (before its
 * commit): the promotion goes through on its own, the watchdog runs no
 * post_promote hook. */
static void test_stop_during_promotion(void **state)
{
	struct sandbox *s = *state;
	char body[512];
	snprintf(body, sizeof(body), "touch %s/post.ran", s->dir);
	s->conf->hooks.post_promote = write_script(s, "post.sh", body);
	s->conf->policy.default_wait = 0.5;
	s->stop_on_busy = true;
	wd_start(s);
	WAIT_FOR(s, s->stopped_in_round);
	assert_false(s->promoted_at_stop); /* not committed yet */
	assert_true(s->ctx.busy);
	WAIT_FOR(s, !s->ctx.busy);
	assert_true(s->ctx.state->promoted); /* it went through */
	json_t *audit = audit_lines(s);
	assert_int_equal(json_array_size(audit), 2);
	assert_string_equal(jstr(json_array_get(audit, 1), "result"), "done-not-converged");
	json_decref(audit);
	pump_for(s, 0.3);
	assert_false(exists_in(s, "post.ran"));
}

/* Stop while the promotion waits for convergence (after its commit). */
static void test_stop_during_convergence(void **state)
{
	struct sandbox *s = *state;
	char body[512];
	snprintf(body, sizeof(body), "touch %s/post.ran", s->dir);
	s->conf->hooks.post_promote = write_script(s, "post.sh", body);
	s->conf->policy.default_wait = 0.5;
	wd_start(s);
	WAIT_FOR(s, s->ctx.busy && s->ctx.state->promoted);
	drdns_watchdog_stop(s->ctx.watchdog);
	WAIT_FOR(s, !s->ctx.busy);
	pump_for(s, 0.3);
	assert_false(exists_in(s, "post.ran"));
	assert_int_equal(served_serial(s->ctx.server), CAMPUS_SERIAL + 1);
}

/* Stop while the pre_promote hook runs: when it ends (ok), nothing is promoted. */
static void test_stop_during_hook(void **state)
{
	struct sandbox *s = *state;
	char body[1024];
	snprintf(body, sizeof(body), "touch %s/started; sleep 0.5; touch %s/finished", s->dir,
	         s->dir);
	s->conf->hooks.pre_promote = write_script(s, "pre.sh", body);
	snprintf(body, sizeof(body), "sleep 0.5");
	s->conf->hooks.on_alert = write_script(s, "alert.sh", body);
	wd_start(s);
	WAIT_FOR(s, exists_in(s, "started"));
	drdns_watchdog_stop(s->ctx.watchdog);
	WAIT_FOR(s, exists_in(s, "finished"));
	pump_for(s, 0.5); /* the hook's exit is reaped, its callback runs */
	assert_not_promoted(s);
}

/* Stop from the round that just started the step-down (its hand-back still
 * fetching the campus copies): it finishes on its own; no post_demote hook. */
static void test_stop_during_stepdown(void **state)
{
	struct sandbox *s = *state;
	char body[512];
	snprintf(body, sizeof(body), "touch %s/demote.ran", s->dir);
	s->conf->hooks.post_demote = write_script(s, "demote.sh", body);
	simulate_transfer(s);
	wd_start(s);
	wait_promoted(s);
	master_start(s, CAMPUS_SERIAL + 10);
	ns1_serve(s, CAMPUS_SERIAL + 10);
	s->stop_on_busy = true;
	WAIT_FOR(s, s->stopped_in_round);
	assert_true(s->promoted_at_stop); /* fetching: not committed yet */
	WAIT_FOR(s, !s->ctx.busy);
	pump_for(s, 0.3);
	assert_false(exists_in(s, "demote.ran"));
	assert_false(s->ctx.state->promoted);
	assert_null(drdns_server_zones(s->ctx.server));
	json_t *audit = audit_lines(s);
	assert_string_equal(jstr(json_array_get(audit, 3), "action"), "stepdown");
	assert_string_equal(jstr(json_array_get(audit, 3), "result"), "done");
	json_decref(audit);
}

static bool has_stepdown_error(const struct sandbox *s)
{
	json_t *st = status(s);
	bool has = json_is_string(json_object_get(st, "stepdown_error"));
	json_decref(st);
	return has;
}

/* The step-down's hand-back stops (the master refuses the transfer of its
 * copy): drdns stays promoted and serving, the step-down is on record as an
 * error, the reason is in status and alert handback-failed, and the watchdog
 * does not try again at once (it waits HANDBACK_RETRY). */
static void test_stepdown_handback_refused(void **state)
{
	struct sandbox *s = *state;
	simulate_transfer(s);
	wd_start(s);
	wait_promoted(s);
	const uint32_t campus = CAMPUS_SERIAL + 10;
	master_start(s, campus);
	s->master_conf.controller.n_allow_transfer = 0; /* the master refuses AXFR */
	ns1_serve(s, campus);
	WAIT_FOR(s, has_stepdown_error(s));
	json_t *st = status(s);
	const char *err = jstr(st, "stepdown_error");
	assert_non_null(strstr(err, "example.edu.: AXFR from 127.0.0.32"));
	assert_non_null(strstr(err, "REFUSED"));
	json_decref(st);
	WAIT_FOR(s, !s->ctx.busy);
	assert_true(s->ctx.state->promoted);
	const struct drdns_zoneset *served = drdns_server_zones(s->ctx.server);
	assert_non_null(served);
	assert_int_equal(drdns_zone_serial(served->zones[0]), CAMPUS_SERIAL + 1);
	assert_null(drdns_server_handback_zones(s->ctx.server));
	WAIT_FOR(s, has_alert(s, "handback-failed"));
	pump_for(s, 0.5); /* several rounds: no second attempt */
	json_t *audit = audit_lines(s);
	size_t errors = 0, n = json_array_size(audit);
	for (size_t i = 0; i < n; i++) {
		json_t *rec = json_array_get(audit, i);
		if (!strcmp(jstr(rec, "action"), "stepdown")) {
			assert_string_equal(jstr(rec, "result"), "error");
			errors++;
		}
	}
	assert_int_equal(errors, 1);
	json_decref(audit);
}

/* reconf takes new thresholds and actions; streaks are kept. */
static void test_reconf_thresholds(void **state)
{
	struct sandbox *s = *state;
	s->conf->policy.auto_promote = false;
	s->conf->master.fail_after = 1000;
	wd_start(s);
	wait_rounds(s, 6);
	json_t *st = status(s);
	assert_string_equal(jstr(st, "state"), "SUSPECT");
	json_int_t silent = jint(st, "master_silent_rounds");
	assert_true(silent >= 6);
	json_decref(st);

	s->conf->master.fail_after = 3;
	assert_int_equal(drdns_watchdog_reconf(s->ctx.watchdog), 0);
	WAIT_FOR(s, state_is(s, "MASTER_DOWN") && has_alert(s, "manual_needed"));
	st = status(s);
	assert_true(jint(st, "master_silent_rounds") > silent); /* the streak went on */
	json_decref(st);
	assert_false(s->ctx.state->promoted);

	s->conf->policy.auto_promote = true;
	simulate_transfer(s);
	assert_int_equal(drdns_watchdog_reconf(s->ctx.watchdog), 0);
	wait_promoted(s);
	assert_int_equal(served_serial(s->ctx.server), CAMPUS_SERIAL + 1);

	/* reconf while promoted watches the served set */
	assert_int_equal(drdns_watchdog_reconf(s->ctx.watchdog), 0);
	wait_rounds(s, 3);
	st = status(s);
	assert_string_equal(jstr(st, "state"), "PROMOTED");
	assert_int_equal(json_array_size(json_object_get(st, "zones")), 1);
	json_decref(st);
}

/* A reload (a whole new configuration object, the old one retired) while a
 * round is in flight: the round completes, the next one uses the new targets
 * and thresholds. */
static void test_reload_during_round(void **state)
{
	struct sandbox *s = *state;
	blackhole_start(s);
	s->conf->master.timeout = 0.6;
	s->conf->policy.auto_promote = false;
	s->conf->master.fail_after = 1000;
	wd_start(s);
	wait_rounds(s, 2);
	unsigned rounds = s->rounds;
	uint64_t end = s->round_ns;
	WAIT_FOR(s, elapsed(end) > 0.25);
	assert_int_equal(s->rounds, rounds); /* a round is in flight */

	struct drdns_conf *next = load_conf(s);
	next->master.timeout = 0.6;
	next->master.fail_after = 2;
	next->policy.auto_promote = false;
	s->retired = s->conf;
	s->conf = next;
	s->ctx.conf = next;
	drdns_server_set_conf(s->ctx.server, next);
	assert_int_equal(drdns_watchdog_reconf(s->ctx.watchdog), 0);
	WAIT_FOR(s, state_is(s, "MASTER_DOWN") && has_alert(s, "manual_needed"));
	wait_rounds(s, 2);
	json_t *st = status(s);
	assert_string_equal(jstr(st, "state"), "MASTER_DOWN");
	json_t *z = json_array_get(json_object_get(st, "zones"), 0);
	assert_string_equal(jstr(z, "master_udp"), "timeout");
	json_decref(st);
	assert_not_promoted(s);
}

/* on_campus secondaries are left out of the isolation quorum: with ns1 (dark
 * with the master) counted, 1 of 2 answering reads as isolation; marked
 * on_campus (reconf), ns2 alone is the quorum and the watchdog promotes. */
static void test_on_campus_quorum(void **state)
{
	struct sandbox *s = *state;
	add_ns2(s);
	s->conf->policy.default_wait = 0.3;
	ns1_stop(s);
	wd_start(s);
	WAIT_FOR(s, state_is(s, "ISOLATED"));
	assert_string_equal(s->summary, "ISOLATED, master silent, 1/2 secondaries answer");
	wait_rounds(s, 5);
	assert_true(state_is(s, "ISOLATED"));
	assert_false(s->ctx.state->promoted);

	s->conf->secondaries[0].on_campus = true;
	assert_int_equal(drdns_watchdog_reconf(s->ctx.watchdog), 0);
	wait_promoted(s);
	assert_int_equal(served_serial(s->ctx.server), CAMPUS_SERIAL + 1);
	assert_prefix(s->ctx.state->reason, "watchdog:");
	assert_has(s->ctx.state->reason, "1 of 1 secondaries answer");
	json_t *st = status(s);
	assert_int_equal(json_array_size(json_object_get(st, "secondaries")), 2);
	json_decref(st);
}

/* After a step-down the watchdog watches zones-dr/ again; while that cannot be
 * loaded it keeps watching the zones it served (never blind for an edit in
 * progress), and picks up zones-dr/ at the next reload. */
static void test_broken_zones_after_stepdown(void **state)
{
	struct sandbox *s = *state;
	simulate_transfer(s);
	wd_start(s);
	wait_promoted(s);
	break_zones_dr(s);
	master_start(s, CAMPUS_SERIAL + 10);
	ns1_serve(s, CAMPUS_SERIAL + 10);
	WAIT_FOR(s, !s->ctx.state->promoted && !s->ctx.busy);
	unsigned rounds = s->rounds;
	WAIT_FOR(s, s->rounds >= rounds + 3 && is_fresh(s));
	assert_false(is_blind(s));
	json_t *st = status(s);
	assert_string_equal(jstr(st, "state"), "NORMAL");
	assert_int_equal(jint(json_array_get(json_object_get(st, "zones"), 0), "master_serial"),
	                 CAMPUS_SERIAL + 10);
	json_decref(st);
	fix_zones_dr(s);
	assert_int_equal(drdns_watchdog_reconf(s->ctx.watchdog), 0);
	rounds = s->rounds;
	WAIT_FOR(s, s->rounds >= rounds + 2 && is_fresh(s));
	assert_true(state_is(s, "NORMAL"));
}

/* A reload while zones-dr/ is half-edited keeps the previous zone list: the
 * watchdog goes on probing and stays fresh. */
static void test_reload_broken_zones(void **state)
{
	struct sandbox *s = *state;
	master_start(s, CAMPUS_SERIAL);
	wd_start(s);
	WAIT_FOR(s, s->rounds >= 3 && is_fresh(s));
	break_zones_dr(s);
	assert_int_equal(drdns_watchdog_reconf(s->ctx.watchdog), 0);
	unsigned rounds = s->rounds;
	WAIT_FOR(s, s->rounds >= rounds + 3 && is_fresh(s));
	assert_false(is_blind(s));
	assert_true(state_is(s, "NORMAL"));
	fix_zones_dr(s);
	assert_int_equal(drdns_watchdog_reconf(s->ctx.watchdog), 0);
	rounds = s->rounds;
	WAIT_FOR(s, s->rounds >= rounds + 2 && is_fresh(s));
	assert_true(state_is(s, "NORMAL"));
}

/* Started with zones-dr/ unreadable and nothing served, there is nothing to
 * watch: blind (status, alert, on_alert), no rounds; it recovers by itself once
 * the set is fixed. */
static void test_blind_at_start(void **state)
{
	struct sandbox *s = *state;
	char body[512];
	snprintf(body, sizeof(body), "echo \"$DRDNS_ALERT\" >> %s/alerts.txt", s->dir);
	s->conf->hooks.on_alert = write_script(s, "alert.sh", body);
	master_start(s, CAMPUS_SERIAL);
	break_zones_dr(s);
	wd_start(s);
	WAIT_FOR(s, is_blind(s));
	pump_for(s, 0.3);
	assert_int_equal(s->rounds, 0); /* nothing to probe */
	assert_true(is_blind(s));
	WAIT_FOR(s, file_has(s, "alerts.txt", "watchdog_blind\n"));
	fix_zones_dr(s);
	WAIT_FOR(s, s->rounds >= 2 && is_fresh(s));
	assert_false(is_blind(s));
	assert_true(state_is(s, "NORMAL"));
}

/* ---- DNSSEC: RRSIG scans, the alert book, re-signing ------------------------ */

#define DAY      86400
#define RRSIG_3D "rrsig:example.edu:3d"

/* ns1 lets the watchdog's RRSIG scans in (unsigned AXFR from the controller's
 * address, as an operator's allow_transfer would). */
static void ns1_allow_scans(struct sandbox *s)
{
	s->scan_from[0] = "127.0.0.30";
	s->peer_conf.controller.allow_transfer = s->scan_from;
	s->peer_conf.controller.n_allow_transfer = 1;
}

/* The campus copy at serial, signed with the ecdsa fixture keys as if at
 * signed_at (validity 30 days, no jitter: every signature expires at
 * signed_at + 30 days, returned in *expires). */
static struct drdns_zoneset *signed_set(struct sandbox *s, uint32_t serial, int64_t signed_at,
                                        int64_t *expires)
{
	struct drdns_zoneset *set = set_with_serial(s, serial);
	char *dir = data_path("keys/ecdsa");
	struct drdns_keyset *ks = NULL;
	struct drdns_diag diag = {0};
	assert_int_equal(drdns_keyset_load(dir, "example.edu.", &ks, &diag), 0);
	assert_non_null(ks);
	drdns_diag_clear(&diag);
	free(dir);
	struct drdns_sign_params p = {.now = (uint64_t)signed_at,
	                              .validity = 30 * DAY,
	                              .inception_offset = 3600,
	                              .jitter = 0,
	                              .threads = 1};
	struct drdns_zone *out = NULL;
	struct drdns_sign_stats stats;
	char err[256] = "";
	if (drdns_zone_sign(set->zones[0], ks, &p, &out, &stats, err, sizeof(err)) != 0)
		fail_msg("sign: %s", err);
	drdns_keyset_free(ks);
	drdns_zone_free(set->zones[0]);
	set->zones[0] = out;
	*expires = signed_at + 30 * DAY;
	assert_true(stats.signatures > 0);
	assert_int_equal(stats.earliest_expiration, (uint32_t)*expires);
	return set;
}

/* ns1 serves a signed copy whose signatures all expire in about two days:
 * inside the 3-day threshold, outside the 1-day one.  Returns the expiration. */
static int64_t ns1_serve_expiring(struct sandbox *s)
{
	int64_t expires = 0;
	drdns_server_set_zones(
	    s->ns1, signed_set(s, CAMPUS_SERIAL, (int64_t)time(NULL) - 28 * DAY, &expires));
	return expires;
}

/* ns1 serves a copy signed just now (signatures good for 30 days). */
static int64_t ns1_serve_fresh(struct sandbox *s)
{
	int64_t expires = 0;
	drdns_server_set_zones(s->ns1, signed_set(s, CAMPUS_SERIAL, (int64_t)time(NULL), &expires));
	return expires;
}

/* The RRSIG watch set up fast: scans every 0.2 s, repeats every 0.3 s,
 * escalation after one repeat, thresholds 7d, 3d, 1d; hooks that log what they
 * were given (alerts.txt: "ID REPEAT|MESSAGE", escalate.txt: "EVENT ID REPEAT");
 * the master answers (standby, NORMAL) and ns1 serves an expiring copy. */
static int64_t rrsig_setup(struct sandbox *s)
{
	char body[1024];
	snprintf(body, sizeof(body),
	         "echo \"$DRDNS_ALERT $DRDNS_ALERT_REPEAT|$DRDNS_ALERT_MESSAGE\" >> %s/alerts.txt",
	         s->dir);
	s->conf->hooks.on_alert = write_script(s, "alert.sh", body);
	snprintf(body, sizeof(body),
	         "echo \"$DRDNS_EVENT $DRDNS_ALERT $DRDNS_ALERT_REPEAT\" >> %s/escalate.txt",
	         s->dir);
	s->conf->hooks.on_escalate = write_script(s, "escalate.sh", body);
	s->conf->alerts.repeat = 0.3;
	s->conf->alerts.rrsig_scan_interval = 0.2;
	s->conf->alerts.escalate_after = 1;
	s->conf->alerts.rrsig_thresholds[0] = 7 * DAY;
	s->conf->alerts.rrsig_thresholds[1] = 3 * DAY;
	s->conf->alerts.rrsig_thresholds[2] = 1 * DAY;
	s->conf->alerts.n_rrsig_thresholds = 3;
	ns1_allow_scans(s);
	master_start(s, CAMPUS_SERIAL);
	/* the master lets the scans in too (its copy is unsigned) */
	s->master_conf.controller.allow_transfer = s->scan_from;
	s->master_conf.controller.n_allow_transfer = 1;
	return ns1_serve_expiring(s);
}

/* The alert-book entry id in a status object (borrowed), or NULL. */
static json_t *book_alert(const json_t *st, const char *id)
{
	size_t i;
	json_t *a;
	json_array_foreach(json_object_get(st, "alerts"), i, a)
	{
		if (!strcmp(jstr(a, "id"), id))
			return a;
	}
	return NULL;
}

/* The alert id is listed with acked == acked (false when it is not listed). */
static bool alert_acked(const struct sandbox *s, const char *id, bool acked)
{
	json_t *st = status(s);
	json_t *a = book_alert(st, id);
	bool is = a && json_is_true(json_object_get(a, "acked")) == acked;
	json_decref(st);
	return is;
}

static unsigned long ns1_axfrs(const struct sandbox *s)
{
	struct drdns_server_stats st;
	drdns_server_stats(s->ns1, &st);
	return st.axfr;
}

static bool scanning(const struct sandbox *s)
{
	json_t *st = status(s);
	bool is = json_is_true(json_object_get(json_object_get(st, "dnssec"), "scanning"));
	json_decref(st);
	return is;
}

/* n more scans of ns1 completed, and a round evaluated the last one. */
static void wait_scans(struct sandbox *s, unsigned n)
{
	unsigned long target = ns1_axfrs(s) + n;
	WAIT_FOR(s, ns1_axfrs(s) >= target && !scanning(s));
	wait_rounds(s, 2);
}

/* state.json as drdns_state_load reads it back (caller frees). */
static struct drdns_state *state_from_disk(const struct sandbox *s)
{
	struct drdns_state *st = NULL;
	char err[256] = "";
	if (drdns_state_load(s->conf->controller.state_dir, &st, err, sizeof(err)) != 0)
		fail_msg("state_load: %s", err);
	return st;
}

/* The alert saved in state.json with this id, or NULL. */
static const struct drdns_alert *saved_alert(const struct drdns_state *st, const char *id)
{
	for (size_t i = 0; i < st->n_alerts; i++)
		if (!strcmp(st->alerts[i].id, id))
			return &st->alerts[i];
	return NULL;
}

/* Standby, ns1 serves signatures that expire in two days: the scan finds them,
 * alert rrsig:example.edu:3d is raised (on_alert, repeats, one escalation),
 * time to dark is the RRSIG expiration, and it all shows in status and
 * metrics.  An ack of an unknown id changes nothing; the ack silences the
 * alert, shows in status and is saved in state.json. */
static void test_rrsig_alert_ack(void **state)
{
	struct sandbox *s = *state;
	int64_t expires = rrsig_setup(s);
	wd_start(s);
	struct drdns_watchdog *wd = s->ctx.watchdog;
	WAIT_FOR(s, has_alert(s, RRSIG_3D));
	double now = now_unix();

	json_t *st = status(s);
	assert_string_equal(jstr(st, "state"), "NORMAL");
	json_t *a = book_alert(st, RRSIG_3D);
	assert_non_null(a);
	assert_true(json_is_true(json_object_get(a, "ackable")));
	assert_true(json_is_false(json_object_get(a, "acked")));
	assert_null(json_object_get(a, "ack"));
	assert_true(json_is_integer(json_object_get(a, "next_repeat")));
	assert_true(jint(a, "raised_at") > 0);
	const char *msg = jstr(a, "message");
	assert_prefix(msg, "example.edu: RRSIGs expire in ");
	assert_has(msg, "ns1.example.edu.");
	assert_has(msg, "threshold 3d");
	assert_null(book_alert(st, "rrsig:example.edu:7d")); /* one id: the worst level */
	assert_null(book_alert(st, "rrsig:example.edu:1d"));
	/* ns1's copy, as scanned */
	json_t *sz = json_array_get(
	    json_object_get(json_array_get(json_object_get(st, "secondaries"), 0), "zones"), 0);
	json_t *rr = json_object_get(sz, "rrsig");
	assert_non_null(rr);
	assert_true(json_is_true(json_object_get(rr, "known")));
	assert_true(jint(rr, "signatures") > 0);
	assert_int_equal(jint(rr, "earliest"), expires);
	assert_true(json_is_string(json_object_get(rr, "earliest_what")));
	assert_string_equal(jstr(rr, "detail"), "ok");
	assert_true(jint(rr, "fetched_at") > 0);
	/* the zone: signed (by ns1), dark when its signatures expire */
	json_t *z = json_array_get(json_object_get(st, "zones"), 0);
	json_t *d = json_object_get(z, "dnssec");
	assert_non_null(d);
	assert_true(json_is_true(json_object_get(d, "signed")));
	assert_true(json_is_false(json_object_get(d, "drdns_can_sign")));
	assert_int_equal(jint(d, "rrsig_earliest"), expires);
	assert_string_equal(jstr(d, "rrsig_earliest_at"), "ns1.example.edu.");
	assert_int_equal(jint(d, "time_to_dark"), expires);
	assert_string_equal(jstr(d, "dark_cause"), "rrsig");
	assert_in_range(jint(d, "seconds_to_dark"), 2 * DAY - 600, 2 * DAY);
	assert_string_equal(jstr(d, "alert"), RRSIG_3D);
	assert_true(json_is_null(json_object_get(d, "next_resign"))); /* standby */
	json_t *dn = json_object_get(st, "dnssec");
	assert_non_null(dn);
	assert_int_equal(jint(dn, "resigns"), 0);
	assert_true(jint(dn, "last_scan") > 0);
	assert_true(json_is_null(json_object_get(dn, "next_resign")));
	json_t *dark = json_object_get(dn, "earliest_dark");
	assert_string_equal(jstr(dark, "zone"), "example.edu.");
	assert_int_equal(jint(dark, "at"), expires);
	json_decref(st);

	char *m = metrics(s);
	check_exposition(m);
	const char *want = "\ndrdns_zone_rrsig_expiry_seconds{zone=\"example.edu.\"} ";
	assert_has(m, want);
	assert_has(m, "\ndrdns_zone_time_to_dark_seconds{zone=\"example.edu.\",cause=\"rrsig\"} ");
	assert_has(m, "\ndrdns_secondary_rrsig_expiry_seconds{secondary=\"ns1.example.edu.\","
	              "zone=\"example.edu.\"} ");
	assert_has(m, "\ndrdns_alerts_unacknowledged 1\n");
	assert_has(m, "\ndrdns_resigns_total 0\n");
	/* the value is the time left: about two days */
	const char *v = strstr(m, want) + strlen(want);
	double left = strtod(v, NULL);
	assert_true(left > 2 * DAY - 600 && left <= 2 * DAY);
	free(m);

	/* saved in state.json since it was raised */
	struct drdns_state *disk = state_from_disk(s);
	const struct drdns_alert *sa = saved_alert(disk, RRSIG_3D);
	assert_non_null(sa);
	assert_false(sa->acked);
	assert_true(sa->sent >= 1);
	drdns_state_free(disk);

	/* on_alert: the raise (repeat 0), then repeats; one escalation after the
	 * first repeat, never again */
	WAIT_FOR(s, file_has(s, "alerts.txt", RRSIG_3D " 0|example.edu: RRSIGs expire in "));
	WAIT_FOR(s, file_has(s, "alerts.txt", RRSIG_3D " 1|"));
	WAIT_FOR(s, file_has(s, "escalate.txt", "on_escalate " RRSIG_3D " 1\n"));
	WAIT_FOR(s, file_has(s, "alerts.txt", RRSIG_3D " 3|"));
	assert_int_equal(file_count(s, "alerts.txt", RRSIG_3D " 0|"), 1);
	assert_int_equal(file_count(s, "alerts.txt", RRSIG_3D " 1|"), 1);
	assert_int_equal(file_count(s, "escalate.txt", "\n"), 1);
	st = status(s);
	a = book_alert(st, RRSIG_3D);
	assert_true(json_is_true(json_object_get(a, "escalated")));
	assert_true(jint(a, "repeats") >= 3);
	json_decref(st);
	assert_true(metrics_have(s, "\ndrdns_alerts_escalated 1\n"));

	/* an unknown id: an error naming the active one, nothing changed */
	char err[512] = "";
	assert_true(drdns_watchdog_ack(wd, "rrsig:example.edu:7d", "tester", "because", err,
	                               sizeof(err)) < 0);
	assert_has(err, RRSIG_3D);
	assert_true(alert_acked(s, RRSIG_3D, false));
	disk = state_from_disk(s);
	assert_false(saved_alert(disk, RRSIG_3D)->acked);
	assert_null(saved_alert(disk, "rrsig:example.edu:7d"));
	drdns_state_free(disk);

	/* the ack */
	err[0] = 0;
	assert_int_equal(drdns_watchdog_ack(wd, RRSIG_3D, "tester", "because", err, sizeof(err)),
	                 0);
	st = status(s);
	a = book_alert(st, RRSIG_3D);
	assert_non_null(a);
	assert_true(json_is_true(json_object_get(a, "acked")));
	json_t *ack = json_object_get(a, "ack");
	assert_string_equal(jstr(ack, "who"), "tester");
	assert_string_equal(jstr(ack, "reason"), "because");
	assert_true(jint(ack, "at") >= (json_int_t)now - 1);
	assert_null(json_object_get(a, "next_repeat"));
	json_decref(st);
	disk = state_from_disk(s);
	sa = saved_alert(disk, RRSIG_3D);
	assert_non_null(sa);
	assert_true(sa->acked);
	assert_string_equal(sa->acked_by, "tester");
	assert_string_equal(sa->ack_reason, "because");
	assert_true(sa->acked_at > 0);
	drdns_state_free(disk);
	m = metrics(s);
	assert_has(m, "\ndrdns_alerts_unacknowledged 0\n");
	assert_has(m, "\ndrdns_alerts_escalated 0\n");
	free(m);

	/* silent from now on (a hook started just before the ack may still write:
	 * let those finish first), while the condition holds and scans go on */
	pump_for(s, 0.5);
	size_t runs = file_count(s, "alerts.txt", RRSIG_3D " ");
	size_t escalations = file_count(s, "escalate.txt", "\n");
	wait_scans(s, 3);
	pump_for(s, 4 * s->conf->alerts.repeat);
	assert_int_equal(file_count(s, "alerts.txt", RRSIG_3D " "), runs);
	assert_int_equal(file_count(s, "escalate.txt", "\n"), escalations);
	assert_true(alert_acked(s, RRSIG_3D, true));
	assert_true(metrics_have(s, "\ndrdns_alerts_unacknowledged 0\n"));
}

/* A restart keeps the acknowledgement: the new watchdog (on the state read back
 * from disk) lists the alert as acknowledged from the start, and neither raises
 * it again nor repeats it. */
/* ns1's copy of example.edu as the last scan left it: "ok", "REFUSED", ... */
static bool ns1_scan_detail_is(const struct sandbox *s, const char *want)
{
	json_t *st = status(s);
	json_t *z = json_array_get(
	    json_object_get(json_array_get(json_object_get(st, "secondaries"), 0), "zones"), 0);
	const char *d = json_string_value(json_object_get(json_object_get(z, "rrsig"), "detail"));
	bool is = d && !strcmp(d, want);
	json_decref(st);
	return is;
}

/* After a restart, the first scans cannot read ns1's copy (a passing
 * failure): the acknowledged alert of its zone stands, acknowledged, and is
 * not raised again as new once the copy is read. */
static void test_rrsig_ack_survives_failed_scan(void **state)
{
	struct sandbox *s = *state;
	rrsig_setup(s);
	wd_start(s);
	WAIT_FOR(s, has_alert(s, RRSIG_3D));
	char err[512] = "";
	assert_int_equal(
	    drdns_watchdog_ack(s->ctx.watchdog, RRSIG_3D, "tester", "because", err, sizeof(err)),
	    0);
	pump_for(s, 0.5);
	size_t raises = file_count(s, "alerts.txt", RRSIG_3D " 0|");
	drdns_watchdog_stop(s->ctx.watchdog);

	s->peer_conf.controller.n_allow_transfer = 0; /* ns1 refuses the scans for now */
	unsigned rounds = s->rounds;
	wd_start(s);
	WAIT_FOR(s, ns1_scan_detail_is(s, "REFUSED"));
	WAIT_FOR(s, s->rounds > rounds + 2);
	assert_true(alert_acked(s, RRSIG_3D, true));
	struct drdns_state *disk = state_from_disk(s);
	assert_non_null(saved_alert(disk, RRSIG_3D));
	assert_true(saved_alert(disk, RRSIG_3D)->acked);
	drdns_state_free(disk);

	ns1_allow_scans(s);
	WAIT_FOR(s, ns1_scan_detail_is(s, "ok"));
	wait_rounds(s, 2);
	assert_true(alert_acked(s, RRSIG_3D, true));
	pump_for(s, 2 * s->conf->alerts.repeat);
	assert_int_equal(file_count(s, "alerts.txt", RRSIG_3D " 0|"), raises);
}

static void test_rrsig_ack_survives_restart(void **state)
{
	struct sandbox *s = *state;
	rrsig_setup(s);
	wd_start(s);
	WAIT_FOR(s, has_alert(s, RRSIG_3D) &&
	                file_has(s, "alerts.txt", RRSIG_3D " 0|example.edu: RRSIGs expire in "));
	char err[512] = "";
	assert_int_equal(
	    drdns_watchdog_ack(s->ctx.watchdog, RRSIG_3D, "tester", "because", err, sizeof(err)),
	    0);
	pump_for(s, 0.5); /* hooks started before the ack finish */
	size_t runs = file_count(s, "alerts.txt", RRSIG_3D " ");
	assert_true(runs >= 1);

	drdns_watchdog_stop(s->ctx.watchdog);
	assert_null(s->ctx.watchdog);
	/* in memory ... */
	const struct drdns_alert *mem = saved_alert(s->ctx.state, RRSIG_3D);
	assert_non_null(mem);
	assert_true(mem->acked);
	assert_string_equal(mem->acked_by, "tester");
	/* ... and on disk: start from that */
	struct drdns_state *back = state_from_disk(s);
	assert_non_null(saved_alert(back, RRSIG_3D));
	assert_true(saved_alert(back, RRSIG_3D)->acked);
	drdns_state_free(s->ctx.state);
	s->ctx.state = back;
	unsigned rounds = s->rounds;
	wd_start(s);

	/* before any round or scan: the restored alert, acknowledged */
	json_t *st = status(s);
	assert_int_equal(jint(st, "rounds"), 0);
	json_t *a = book_alert(st, RRSIG_3D);
	assert_non_null(a);
	assert_true(json_is_true(json_object_get(a, "acked")));
	assert_string_equal(jstr(json_object_get(a, "ack"), "who"), "tester");
	assert_string_equal(jstr(json_object_get(a, "ack"), "reason"), "because");
	json_decref(st);

	/* scans find the condition still holds: the alert stays, acknowledged, and
	 * no hook runs */
	WAIT_FOR(s, s->rounds > rounds);
	wait_scans(s, 3);
	pump_for(s, 4 * s->conf->alerts.repeat);
	assert_int_equal(file_count(s, "alerts.txt", RRSIG_3D " "), runs);
	assert_int_equal(file_count(s, "alerts.txt", RRSIG_3D " 0|"), 1);
	st = status(s);
	a = book_alert(st, RRSIG_3D);
	assert_non_null(a);
	assert_true(json_is_true(json_object_get(a, "acked")));
	assert_string_equal(jstr(json_object_get(a, "ack"), "who"), "tester");
	assert_string_equal(
	    jstr(json_object_get(json_array_get(json_object_get(st, "zones"), 0), "dnssec"),
	         "alert"),
	    RRSIG_3D);
	json_decref(st);
	struct drdns_state *disk = state_from_disk(s);
	assert_non_null(saved_alert(disk, RRSIG_3D));
	assert_true(saved_alert(disk, RRSIG_3D)->acked);
	assert_string_equal(saved_alert(disk, RRSIG_3D)->ack_reason, "because");
	drdns_state_free(disk);
	assert_true(metrics_have(s, "\ndrdns_alerts_unacknowledged 0\n"));
}

/* A restart of an unacknowledged alert neither raises it again (repeat 0) nor
 * starts its count over: the repeats go on from what state.json kept. */
static void test_rrsig_unacked_survives_restart(void **state)
{
	struct sandbox *s = *state;
	rrsig_setup(s);
	s->conf->alerts.escalate_after = 0; /* never */
	wd_start(s);
	WAIT_FOR(s, file_has(s, "alerts.txt", RRSIG_3D " 1|"));
	drdns_watchdog_stop(s->ctx.watchdog);
	pump_for(s, 0.5); /* hooks in flight finish */
	size_t runs = file_count(s, "alerts.txt", RRSIG_3D " ");
	assert_true(runs >= 2);
	struct drdns_state *back = state_from_disk(s);
	const struct drdns_alert *saved = saved_alert(back, RRSIG_3D);
	assert_non_null(saved);
	assert_false(saved->acked);
	unsigned sent = saved->sent;
	assert_true(sent >= 2);
	drdns_state_free(s->ctx.state);
	s->ctx.state = back;
	wd_start(s);
	char want[64];
	snprintf(want, sizeof(want), RRSIG_3D " %u|", sent);
	WAIT_FOR(s, file_has(s, "alerts.txt", want));
	assert_int_equal(file_count(s, "alerts.txt", RRSIG_3D " 0|"), 1);
	assert_false(exists_in(s, "escalate.txt"));
}

/* The condition ends: ns1 serves fresh signatures, and after the next scan the
 * (acknowledged) alert is cleared, from status and from state.json; when the
 * signatures run short again it is a new alert, raised again, to be
 * acknowledged again. */
/* A copy the scans cannot transfer is not watched: after a few failed scans
 * that is an alert of its own (rrsig-scan:<zone>), naming the nameserver, why,
 * and the address to allow. */
static void test_rrsig_scan_refused_alert(void **state)
{
	struct sandbox *s = *state;
	rrsig_setup(s);
	s->peer_conf.controller.n_allow_transfer = 0; /* ns1 refuses the scans */
	wd_start(s);
	WAIT_FOR(s, has_alert(s, "rrsig-scan:example.edu"));
	json_t *st = status(s);
	const char *m = jstr(book_alert(st, "rrsig-scan:example.edu"), "message");
	assert_has(m, "ns1.example.edu. (REFUSED)");
	assert_has(m, "allow transfers from 127.0.0.30");
	assert_null(book_alert(st, RRSIG_3D)); /* nothing known to alert on */
	json_decref(st);
	WAIT_FOR(s, file_has(s, "alerts.txt", "rrsig-scan:example.edu 0|"));
	/* allowed again: the copy is read, the scan alert ends, the RRSIG one comes */
	ns1_allow_scans(s);
	WAIT_FOR(s, has_alert(s, RRSIG_3D) && !has_alert(s, "rrsig-scan:example.edu"));
}

/* A nameserver that does not answer serves nothing: its last copy stops
 * counting until it answers again. */
static void test_rrsig_dark_copy_ignored(void **state)
{
	struct sandbox *s = *state;
	rrsig_setup(s);
	wd_start(s);
	WAIT_FOR(s, has_alert(s, RRSIG_3D));
	ns1_stop(s);
	WAIT_FOR(s, !has_alert(s, RRSIG_3D));
	json_t *st = status(s);
	json_t *d = json_object_get(json_array_get(json_object_get(st, "zones"), 0), "dnssec");
	assert_true(json_is_null(json_object_get(d, "alert")));
	json_decref(st);
}

static void test_rrsig_alert_cleared(void **state)
{
	struct sandbox *s = *state;
	rrsig_setup(s);
	wd_start(s);
	WAIT_FOR(s, has_alert(s, RRSIG_3D) && file_has(s, "alerts.txt", RRSIG_3D " 0|"));
	char err[512] = "";
	assert_int_equal(
	    drdns_watchdog_ack(s->ctx.watchdog, RRSIG_3D, "tester", "because", err, sizeof(err)),
	    0);

	int64_t fresh = ns1_serve_fresh(s);
	WAIT_FOR(s, !has_alert(s, RRSIG_3D));
	json_t *st = status(s);
	assert_int_equal(json_array_size(json_object_get(st, "alerts")), 0);
	json_t *d = json_object_get(json_array_get(json_object_get(st, "zones"), 0), "dnssec");
	assert_true(json_is_null(json_object_get(d, "alert")));
	assert_true(json_is_true(json_object_get(d, "signed")));
	assert_int_equal(jint(d, "rrsig_earliest"), fresh);
	/* 30 days of signatures: the SOA EXPIRE (14 days) comes first now */
	assert_string_equal(jstr(d, "dark_cause"), "expire");
	json_decref(st);
	struct drdns_state *disk = state_from_disk(s);
	assert_int_equal(disk->n_alerts, 0);
	drdns_state_free(disk);
	json_t *raw = disk_state(s);
	assert_int_equal(json_array_size(json_object_get(raw, "alerts")), 0);
	json_decref(raw);
	char *m = metrics(s);
	assert_has(m, "\ndrdns_alerts_unacknowledged 0\n");
	assert_has(m, "\ndrdns_zone_time_to_dark_seconds{zone=\"example.edu.\",cause=\"expire\"} ");
	free(m);
	wait_scans(s, 2);
	assert_false(has_alert(s, RRSIG_3D));

	/* short again: a new alert, not covered by the old ack */
	ns1_serve_expiring(s);
	WAIT_FOR(s, has_alert(s, RRSIG_3D));
	assert_true(alert_acked(s, RRSIG_3D, false));
	WAIT_FOR(s, file_count(s, "alerts.txt", RRSIG_3D " 0|") == 2);
	assert_true(metrics_have(s, "\ndrdns_alerts_unacknowledged 1\n"));
}

/* "ns1 follows drdns": it takes drdns's served copy (signed) once its serial is
 * newer than ns1's, as a secondary's transfer would. */
static void follow_dr_cb(uv_timer_t *t)
{
	struct sandbox *s = t->data;
	if (!s->ns1 || !s->ctx.server)
		return;
	const struct drdns_zoneset *d = drdns_server_zones(s->ctx.server);
	if (!d || d->n != 1 ||
	    !drdns_serial_gt(drdns_zone_serial(d->zones[0]), served_serial(s->ns1)))
		return;
	struct drdns_zoneset *copy = calloc(1, sizeof(*copy));
	assert_non_null(copy);
	copy->zones = calloc(1, sizeof(*copy->zones));
	assert_non_null(copy->zones);
	copy->zones[0] = drdns_zone_clone(d->zones[0]);
	assert_non_null(copy->zones[0]);
	copy->n = 1;
	drdns_server_set_zones(s->ns1, copy);
}

static void simulate_following_dr(struct sandbox *s)
{
	s->transfer = true;
	uv_timer_init(&s->loop, &s->transfer_timer);
	s->transfer_timer.data = s;
	uv_timer_start(&s->transfer_timer, follow_dr_cb, 10, 10);
}

/* The earliest RRSIG expiration of what drdns serves. */
static int64_t served_earliest(const struct sandbox *s)
{
	const struct drdns_zoneset *served = drdns_server_zones(s->ctx.server);
	assert_non_null(served);
	struct drdns_rrsig_summary sum;
	drdns_zone_rrsig_summarize(served->zones[0], (int64_t)time(NULL), &sum);
	assert_true(sum.signatures > 0);
	return sum.earliest;
}

static json_t *zone_dnssec(const json_t *st)
{
	return json_object_get(json_array_get(json_object_get(st, "zones"), 0), "dnssec");
}

static bool has_next_resign(const struct sandbox *s)
{
	json_t *st = status(s);
	bool has = json_is_integer(json_object_get(zone_dnssec(st), "next_resign"));
	json_decref(st);
	return has;
}

static json_int_t resigns(const struct sandbox *s)
{
	json_t *st = status(s);
	json_int_t n = jint(json_object_get(st, "dnssec"), "resigns");
	json_decref(st);
	return n;
}

/* Promoted with keys: the watchdog shows when it will re-sign, and re-signs by
 * itself once drdns's earliest signature is within dnssec.refresh: a new
 * generation, the next serial, ns1 follows; once the fresh signatures are
 * clear of dnssec.refresh it stops. */
static void test_resign_when_due(void **state)
{
	struct sandbox *s = *state;
	s->conf->dnssec.keys = data_path("keys/ecdsa");
	s->conf->dnssec.validity = 30 * DAY;
	s->conf->dnssec.jitter = 0;
	s->conf->dnssec.inception_offset = 3600;
	s->conf->dnssec.refresh = 600;
	s->conf->alerts.rrsig_scan_interval = 0.2;
	ns1_allow_scans(s);
	simulate_following_dr(s);
	wd_start(s);
	wait_promoted(s);
	WAIT_FOR(s, has_next_resign(s));
	const unsigned long gen = s->ctx.state->generation;
	assert_int_equal(gen, 1);
	uint32_t serial = 0;
	assert_true(drdns_state_published(s->ctx.state, "example.edu.", &serial));
	assert_int_equal(serial, CAMPUS_SERIAL + 1);
	int64_t before = served_earliest(s);
	char *why = strdup(s->ctx.state->reason);
	assert_non_null(why);

	json_t *st = status(s);
	assert_string_equal(jstr(st, "state"), "PROMOTED");
	json_t *d = zone_dnssec(st);
	assert_true(json_is_true(json_object_get(d, "signed")));
	assert_true(json_is_true(json_object_get(d, "drdns_can_sign")));
	assert_int_equal(jint(d, "next_resign"), before - 600);
	assert_int_equal(jint(json_object_get(st, "dnssec"), "next_resign"), before - 600);
	assert_true(json_is_null(json_object_get(d, "alert")));
	assert_int_equal(jint(json_object_get(st, "dnssec"), "resigns"), 0);
	json_decref(st);
	char *m = metrics(s);
	check_exposition(m);
	assert_has(m, "\ndrdns_zone_next_resign_seconds{zone=\"example.edu.\"} ");
	assert_has(m, "\ndrdns_zone_rrsig_expiry_seconds{zone=\"example.edu.\"} ");
	free(m);
	/* not due: nothing happens */
	wait_rounds(s, 5);
	assert_int_equal(s->ctx.state->generation, gen);

	/* refresh longer than the validity: the signatures served are due */
	s->conf->dnssec.refresh = 31 * DAY;
	WAIT_FOR(s, s->ctx.state->generation > gen);
	s->conf->dnssec.refresh = 600; /* the fresh ones are not */
	assert_int_equal(s->ctx.state->generation, gen + 1);
	assert_true(s->ctx.state->promoted);
	uint32_t now_serial = 0;
	assert_true(drdns_state_published(s->ctx.state, "example.edu.", &now_serial));
	assert_int_equal(now_serial, serial + 1);
	WAIT_FOR(s, !s->ctx.busy && resigns(s) >= 1);
	assert_int_equal(served_serial(s->ctx.server), serial + 1);
	assert_true(served_earliest(s) >= before);
	WAIT_FOR(s, served_serial(s->ns1) == serial + 1);
	/* the promotion's time, reason and who stay */
	assert_string_equal(s->ctx.state->reason, why);
	free(why);
	json_t *audit = audit_lines(s);
	size_t n = json_array_size(audit);
	assert_true(n >= 4);
	json_t *rec = json_array_get(audit, n - 1);
	assert_string_equal(jstr(rec, "action"), "resign");
	assert_string_equal(jstr(rec, "result"), "done");
	rec = json_array_get(audit, n - 2);
	assert_string_equal(jstr(rec, "action"), "resign");
	assert_string_equal(jstr(rec, "result"), "committed");
	assert_string_equal(jstr(json_object_get(rec, "who"), "watchdog"), "test");
	assert_prefix(jstr(rec, "reason"),
	              "watchdog: zone example.edu. has signatures expiring at ");
	json_decref(audit);

	/* it stops: no second re-signing over many more rounds and scans */
	wait_rounds(s, 10);
	wait_scans(s, 2);
	assert_int_equal(s->ctx.state->generation, gen + 1);
	assert_int_equal(resigns(s), 1);
	st = status(s);
	assert_string_equal(jstr(st, "state"), "PROMOTED");
	assert_true(json_is_null(json_object_get(json_object_get(st, "dnssec"), "resign_error")));
	d = zone_dnssec(st);
	assert_int_equal(jint(d, "next_resign"), served_earliest(s) - 600);
	json_decref(st);
	assert_true(metrics_have(s, "\ndrdns_resigns_total 1\n"));
	assert_int_equal(gen_dirs(s), 1); /* the old generation was collected */
}

/* Every round's time to dark is the earlier of the two deadlines it stands for:
 * with cause "rrsig" the earliest RRSIG expiration, with cause "expire" the
 * SOA EXPIRE deadline (the master answers every round here: about
 * now - REFRESH + EXPIRE).  Checked after every round (s->each_round); the
 * first violation is kept in dark_bad for the test to report. */
static char dark_bad[512];

static void check_dark(struct sandbox *s)
{
	if (dark_bad[0])
		return;
	json_t *st = drdns_watchdog_status(s->ctx.watchdog);
	json_t *d = zone_dnssec(st);
	json_t *ttd = json_object_get(d, "time_to_dark");
	json_t *re = json_object_get(d, "rrsig_earliest");
	const char *cause = json_string_value(json_object_get(d, "dark_cause"));
	double soa = now_unix() - REFRESH + EXPIRE;
	if (json_is_integer(ttd) && cause) {
		json_int_t at = json_integer_value(ttd);
		if (!strcmp(cause, "rrsig") &&
		    (!json_is_integer(re) || json_integer_value(re) != at))
			snprintf(dark_bad, sizeof(dark_bad),
			         "round %u: cause rrsig, time_to_dark %lld, rrsig_earliest %lld",
			         s->rounds, (long long)at,
			         (long long)(json_is_integer(re) ? json_integer_value(re) : 0));
		else if (!strcmp(cause, "expire") && (at < soa - 600 || at > soa + 1))
			snprintf(dark_bad, sizeof(dark_bad),
			         "round %u: cause expire, time_to_dark %lld (%.0f s from now), "
			         "but the EXPIRE deadline is %.0f (rrsig_earliest %lld)",
			         s->rounds, (long long)at, (double)at - now_unix(), soa,
			         (long long)(json_is_integer(re) ? json_integer_value(re) : 0));
	}
	json_decref(st);
}

/* drdns holds the zone's keys (so the expiry guard counts the RRSIGs too):
 * time to dark follows ns1's signatures, round by round, when they are
 * renewed and when they run short again. */
static void test_time_to_dark_with_keys(void **state)
{
	struct sandbox *s = *state;
	int64_t expires = rrsig_setup(s);
	s->conf->dnssec.keys = data_path("keys/ecdsa");
	dark_bad[0] = 0;
	s->each_round = check_dark;
	wd_start(s);
	WAIT_FOR(s, has_alert(s, RRSIG_3D));
	json_t *st = status(s);
	json_t *d = zone_dnssec(st);
	assert_true(json_is_true(json_object_get(d, "drdns_can_sign")));
	assert_string_equal(jstr(d, "dark_cause"), "rrsig");
	assert_int_equal(jint(d, "time_to_dark"), expires);
	json_decref(st);
	assert_string_equal(s->summary, "NORMAL, master answers, 1/1 secondaries answer");

	int64_t fresh = ns1_serve_fresh(s);
	WAIT_FOR(s, !has_alert(s, RRSIG_3D));
	wait_scans(s, 2);
	st = status(s);
	d = zone_dnssec(st);
	assert_int_equal(jint(d, "rrsig_earliest"), fresh);
	assert_string_equal(jstr(d, "dark_cause"), "expire");
	json_decref(st);

	ns1_serve_expiring(s);
	WAIT_FOR(s, has_alert(s, RRSIG_3D));
	wait_scans(s, 2);
	s->each_round = NULL;
	if (dark_bad[0])
		fail_msg("%s", dark_bad);
}

/* Promoted with keys, ns1 following: drdns_can_sign and the re-signing
 * machinery ready (refresh 600 s, not due). */
static void promoted_with_keys(struct sandbox *s)
{
	s->conf->dnssec.keys = data_path("keys/ecdsa");
	s->conf->dnssec.validity = 30 * DAY;
	s->conf->dnssec.jitter = 0;
	s->conf->dnssec.inception_offset = 3600;
	s->conf->dnssec.refresh = 600;
	s->conf->alerts.rrsig_scan_interval = 0.2;
	s->conf->alerts.repeat = 0.3;
	s->conf->alerts.escalate_after = 0;
	char body[1024];
	snprintf(body, sizeof(body),
	         "echo \"$DRDNS_ALERT $DRDNS_ALERT_REPEAT|$DRDNS_ALERT_MESSAGE\" >> %s/alerts.txt",
	         s->dir);
	s->conf->hooks.on_alert = write_script(s, "alert.sh", body);
	ns1_allow_scans(s);
	simulate_following_dr(s);
	wd_start(s);
	wait_promoted(s);
	WAIT_FOR(s, has_next_resign(s));
}

static size_t audit_count(const struct sandbox *s, const char *action, const char *result)
{
	json_t *audit = audit_lines(s);
	size_t i, n = 0;
	json_t *rec;
	json_array_foreach(audit, i, rec)
	{
		n += !strcmp(jstr(rec, "action"), action) && !strcmp(jstr(rec, "result"), result);
	}
	json_decref(audit);
	return n;
}

/* A re-signing that fails (the keys changed: key continuity refuses it):
 * nothing changes, the error shows in status, alert "resign-failed" is raised
 * (ackable, on_alert), and drdns does not retry at every round. */
static void test_resign_failure_alert(void **state)
{
	struct sandbox *s = *state;
	promoted_with_keys(s);
	const unsigned long gen = s->ctx.state->generation;
	const uint32_t serial = served_serial(s->ctx.server);
	WAIT_FOR(s, served_serial(s->ns1) == serial);

	free(s->conf->dnssec.keys);
	s->conf->dnssec.keys = data_path("keys/ed25519");
	s->conf->dnssec.refresh = 31 * DAY;
	WAIT_FOR(s, has_alert(s, "resign-failed"));
	json_t *st = status(s);
	json_t *a = book_alert(st, "resign-failed");
	assert_true(json_is_true(json_object_get(a, "ackable")));
	assert_true(json_is_false(json_object_get(a, "acked")));
	assert_prefix(jstr(a, "message"), "re-signing failed (exit 4): ");
	assert_has(jstr(a, "message"), "drdns retries in 600 s");
	const char *e = jstr(json_object_get(st, "dnssec"), "resign_error");
	assert_string_equal(e, jstr(a, "message"));
	assert_int_equal(jint(json_object_get(st, "dnssec"), "resigns"), 0);
	json_decref(st);
	WAIT_FOR(s, file_has(s, "alerts.txt", "resign-failed 0|re-signing failed (exit 4)"));
	assert_int_equal(s->ctx.state->generation, gen);
	assert_int_equal(served_serial(s->ctx.server), serial);
	assert_int_equal(audit_count(s, "resign", "refused") + audit_count(s, "resign", "error"),
	                 1);

	/* no retry at every round */
	wait_rounds(s, 10);
	assert_int_equal(audit_count(s, "resign", "refused") + audit_count(s, "resign", "error"),
	                 1);
	assert_int_equal(s->ctx.state->generation, gen);
	char err[512] = "";
	assert_int_equal(drdns_watchdog_ack(s->ctx.watchdog, "resign-failed", "tester",
	                                    "keys being rolled", err, sizeof(err)),
	                 0);
	assert_true(alert_acked(s, "resign-failed", true));
	assert_true(metrics_have(s, "\ndrdns_alerts_unacknowledged 0\n"));
}

/* A re-signing failure belongs to the promotion it happened in: after a
 * step-down and a new promotion (keys fixed), drdns is neither alerting about
 * it nor holding back re-signing because of it. */
static void test_resign_failure_forgotten_after_stepdown(void **state)
{
	struct sandbox *s = *state;
	s->conf->policy.block_after_failover = 0; /* a second automatic promotion at once */
	promoted_with_keys(s);
	const uint32_t serial = served_serial(s->ctx.server);
	WAIT_FOR(s, served_serial(s->ns1) == serial);
	free(s->conf->dnssec.keys);
	s->conf->dnssec.keys = data_path("keys/ed25519");
	s->conf->dnssec.refresh = 31 * DAY;
	WAIT_FOR(s, has_alert(s, "resign-failed"));
	s->conf->dnssec.refresh = 600;
	free(s->conf->dnssec.keys);
	s->conf->dnssec.keys = data_path("keys/ecdsa");

	/* the master is back, ahead, and ns1 follows it: step-down; the alert ends */
	master_start(s, CAMPUS_SERIAL + 10);
	ns1_serve(s, CAMPUS_SERIAL + 10);
	WAIT_FOR(s, !s->ctx.state->promoted && !s->ctx.busy && state_is(s, "NORMAL"));
	WAIT_FOR(s, !has_alert(s, "resign-failed"));

	/* the master dies again: a new promotion, signed with the (right) keys */
	master_stop(s);
	unsigned long gen = s->ctx.state->generation;
	WAIT_FOR(s, s->ctx.state->promoted && s->ctx.state->generation != gen);
	wait_promoted(s);
	WAIT_FOR(s, has_next_resign(s));
	wait_scans(s, 2);
	json_t *st = status(s);
	json_t *dn = json_object_get(st, "dnssec");
	const char *e = json_string_value(json_object_get(dn, "resign_error"));
	bool alert = book_alert(st, "resign-failed") != NULL;
	char msg[700];
	snprintf(msg, sizeof(msg), "%s", e ? e : "");
	json_decref(st);
	/* and when this promotion's signatures are due, it re-signs */
	const unsigned long gen2 = s->ctx.state->generation;
	s->conf->dnssec.refresh = 31 * DAY;
	wait_rounds(s, 20);
	bool started = s->ctx.busy || s->ctx.state->generation > gen2;
	s->conf->dnssec.refresh = 600;
	WAIT_FOR(s, !s->ctx.busy);
	if (alert || e || !started)
		fail_msg("new promotion (generation %lu) still carries the previous one's "
		         "re-signing failure: alert resign-failed %s; resign_error %s%s%s; a due "
		         "re-signing %s",
		         gen2, alert ? "raised" : "not raised", e ? "\"" : "null", msg,
		         e ? "\"" : "", started ? "started" : "did not start within 20 rounds");
}

int main(void)
{
	srand((unsigned)getpid());
	const char *verbose = getenv("DRDNS_TEST_VERBOSE");
	drdns_log_init("test_watchdog", false,
	               verbose && *verbose ? DRDNS_LOG_DEBUG : DRDNS_LOG_ERR);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_master_answers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_auto_promote, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_promotion_counted_once, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_manual_needed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_isolated, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pause, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pre_promote_veto, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hooks_promote, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stepdown, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stepdown_handback_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_stepdown_unless_ahead_and_followed, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_stop_during_round, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stop_during_promotion, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stop_during_convergence, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stop_during_hook, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stop_during_stepdown, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reconf_thresholds, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reload_during_round, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_on_campus_quorum, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_broken_zones_after_stepdown, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_blind_at_start, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reload_broken_zones, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rrsig_alert_ack, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rrsig_ack_survives_restart, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rrsig_ack_survives_failed_scan, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rrsig_unacked_survives_restart, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rrsig_alert_cleared, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rrsig_scan_refused_alert, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rrsig_dark_copy_ignored, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_resign_when_due, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_time_to_dark_with_keys, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_resign_failure_alert, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_resign_failure_forgotten_after_stepdown, setup,
	                                    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
