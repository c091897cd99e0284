/*
 * Unit tests for src/failover/promote.c and status.c: the promotion pipeline,
 * end to end on one libuv loop, without a real network.
 *
 * Every test builds a sandbox in its own mkdtemp directory (configuration,
 * zones-dr/, state_dir) and runs on 127.0.0.x with random ports:
 *   127.0.0.30  the DR controller's own server (drdns_server, as drdnsd runs it)
 *   127.0.0.31  "ns1", a configured secondary: another drdns_server serving the
 *               campus copy of example.edu. (it acknowledges NOTIFY; a test can
 *               "transfer" by installing the promoted serial into it)
 *   127.0.0.32  the campus master: nothing listens (dead), or a drdns_server
 * What is checked is the contract: exit codes, all or nothing (memory, state.json,
 * gen-N/ and the served set agree), idempotency, the audit log, and that a
 * shutdown (the server closed, ctx->server = NULL, as drdnsd's SIGTERM does)
 * while an operation is in flight is safe.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <ldns/ldns.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include "drdns/axfr.h"
#include "drdns/conf.h"
#include "drdns/ctl.h"
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
#include "drdns/tsig.h"
#include "drdns/zone.h"

#define CAMPUS_SERIAL 2024010105u
#define DR_FLOOR      2024010100u

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
	struct drdns_state *state;
	struct drdns_ctx ctx;
	struct drdns_conf peer_conf;   /* ns1's server */
	struct drdns_conf master_conf; /* the master's server, when it answers */
	struct drdns_server *ns1;
	struct drdns_server *master;
	uint16_t port_dr, port_ns1, port_master;
	/* simulated transfer: install the promoted serial into ns1 once notified */
	bool transfer;
	uv_timer_t transfer_timer;
	/* the hand-back tests */
	bool asking; /* ns1 transfers from drdns once notified */
	uv_timer_t ask_timer;
	unsigned long ask_base;
	struct dr_axfr *ask_p;
	bool status_timer_on;
	uv_timer_t status_timer;
	json_t *window_status;
	struct drdns_secondary master_secs[1];
};

struct result {
	bool done;
	json_t *reply;
};

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

static void write_zone(const struct sandbox *s, const char *rel, uint32_t serial)
{
	char text[1024];
	snprintf(text, sizeof(text), ZONE_FMT, serial);
	char *p = path_in(s, rel);
	write_text(p, text);
	free(p);
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
	char *p = path_in(s, "state/audit.log");
	char *text = NULL;
	if (drdns_read_file(p, &text, NULL) == 0) {
		for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
			json_t *o = json_loads(line, 0, NULL);
			assert_non_null(o);
			json_array_append_new(arr, o);
		}
	}
	free(text);
	free(p);
	return arr;
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

static void write_conf(struct sandbox *s, double default_wait)
{
	char text[2048];
	snprintf(text, sizeof(text),
	         "controller = { id = \"test\"; address = \"127.0.0.30\"; port = %u;\n"
	         "  ns_name = \"ns-dr.example.edu.\"; control_socket = \"run/control.sock\";\n"
	         "  state_dir = \"state\"; };\n"
	         "master = { address = \"127.0.0.32\"; port = %u; };\n"
	         "secondaries = ( { name = \"ns1.example.edu.\"; address = \"127.0.0.31\"; port = "
	         "%u; } );\n"
	         "zones = { directory = \"zones-dr\"; dr_ttl = 600; min_ns = 1; };\n"
	         "policy = { probe_timeout = 0.3; probe_attempts = 1; notify_timeout = 0.2;\n"
	         "  notify_attempts = 2; poll_interval = 0.05; default_wait = %g; };\n",
	         s->port_dr, s->port_master, s->port_ns1, default_wait);
	char *p = path_in(s, "drdns.conf");
	write_text(p, text);
	free(p);
}

static int setup(void **state)
{
	struct sandbox *s = calloc(1, sizeof(*s));
	assert_non_null(s);
	s->dir = strdup("/tmp/drdns-test-promote-XXXXXX");
	assert_non_null(mkdtemp(s->dir));
	assert_int_equal(uv_loop_init(&s->loop), 0);

	char *zd = path_in(s, "zones-dr");
	assert_int_equal(drdns_mkdir_p(zd, 0755), 0);
	free(zd);
	write_zone(s, "zones-dr/example.edu.zone", DR_FLOOR);

	/* ns1 serves the campus copy */
	s->ns1 = start_server(s, &s->peer_conf, "127.0.0.31", &s->port_ns1);
	drdns_server_set_zones(s->ns1, set_with_serial(s, CAMPUS_SERIAL));
	s->port_master = random_port(); /* nothing there unless a test starts it */

	/* the controller: its configuration as drdnsd loads it, its server */
	struct drdns_server *probe_srv =
	    start_server(s, &s->master_conf, "127.0.0.30", &s->port_dr);
	drdns_server_close(probe_srv, NULL, NULL); /* only to find a free port */
	uv_run(&s->loop, UV_RUN_NOWAIT);
	write_conf(s, 1.0);
	struct drdns_diag diag = {0};
	char *cp = path_in(s, "drdns.conf");
	int rc = drdns_conf_load(cp, &s->conf, &diag);
	for (size_t i = 0; rc && i < diag.n; i++)
		print_message("  %s\n", diag.msgs[i]);
	assert_int_equal(rc, 0);
	drdns_diag_clear(&diag);
	free(cp);
	char err[256] = "";
	assert_int_equal(
	    drdns_state_load(s->conf->controller.state_dir, &s->state, err, sizeof(err)), 0);
	s->ctx.loop = &s->loop;
	s->ctx.conf = s->conf;
	s->ctx.state = s->state;
	assert_int_equal(drdns_server_new(&s->loop, s->conf, &s->ctx.server), 0);
	drdns_failover_watch_refusals(&s->ctx); /* as drdnsd: watches read its refusals */
	*state = s;
	return 0;
}

static int teardown(void **state)
{
	struct sandbox *s = *state;
	drdns_failover_watch_refusals(NULL);
	if (s->transfer)
		uv_close((uv_handle_t *)&s->transfer_timer, NULL);
	if (s->asking || s->ask_p)
		uv_close((uv_handle_t *)&s->ask_timer, NULL);
	if (s->status_timer_on)
		uv_close((uv_handle_t *)&s->status_timer, NULL);
	drdns_server_close(s->ctx.server, NULL, NULL);
	drdns_server_close(s->ns1, NULL, NULL);
	drdns_server_close(s->master, NULL, NULL);
	uv_run(&s->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&s->loop), 0);
	drdns_state_free(s->ctx.state);
	drdns_conf_free(s->conf);
	json_decref(s->window_status);
	free(s->ask_p);
	drdns_rm_rf(s->dir);
	free(s->dir);
	free(s);
	return 0;
}

static void on_done(json_t *reply, void *arg)
{
	struct result *r = arg;
	assert_false(r->done);
	r->done = true;
	r->reply = reply;
}

static int reply_exit(const json_t *reply)
{
	assert_non_null(reply);
	assert_true(json_is_integer(json_object_get(reply, "exit")));
	return (int)json_integer_value(json_object_get(reply, "exit"));
}

static void run_until(struct sandbox *s, struct result *r)
{
	while (!r->done)
		uv_run(&s->loop, UV_RUN_ONCE);
}

static json_t *promote(struct sandbox *s, bool dry_run, double wait)
{
	json_t *who = json_pack("{s:i}", "uid", 0);
	struct drdns_promote_opts o = {
	    .reason = "unit test", .dry_run = dry_run, .wait = wait, .who = who};
	struct result r = {0};
	assert_int_equal(drdns_promote_start(&s->ctx, &o, on_done, &r), 0);
	json_decref(who);
	run_until(s, &r);
	assert_false(s->ctx.busy);
	return r.reply;
}

static uint32_t served_serial(const struct drdns_server *srv)
{
	const struct drdns_zoneset *set = drdns_server_zones(srv);
	assert_non_null(set);
	assert_int_equal(set->n, 1);
	return drdns_zone_serial(set->zones[0]);
}

/* "ns1 transfers": once it has been notified, install the promoted serial. */
static void transfer_cb(uv_timer_t *t)
{
	struct sandbox *s = t->data;
	struct drdns_server_stats st;
	drdns_server_stats(s->ns1, &st);
	uint32_t serial;
	if (st.notify_received == 0 ||
	    !drdns_state_published(s->ctx.state, "example.edu.", &serial))
		return;
	uv_timer_stop(t);
	drdns_server_set_zones(s->ns1, set_with_serial(s, serial));
}

static void simulate_transfer(struct sandbox *s)
{
	s->transfer = true;
	uv_timer_init(&s->loop, &s->transfer_timer);
	s->transfer_timer.data = s;
	uv_timer_start(&s->transfer_timer, transfer_cb, 10, 10);
}

/* Not promoted, anywhere: memory, disk, server. */
static void assert_nothing_changed(struct sandbox *s)
{
	assert_false(s->ctx.state->promoted);
	assert_null(drdns_server_zones(s->ctx.server));
	assert_int_equal(gen_dirs(s), 0);
	struct drdns_state *disk = NULL;
	char err[256];
	assert_int_equal(drdns_state_load(s->conf->controller.state_dir, &disk, err, sizeof(err)),
	                 0);
	assert_false(disk->promoted);
	drdns_state_free(disk);
}

/* ---- tests ---------------------------------------------------------------- */

static void test_refused_while_master_answers(void **state)
{
	struct sandbox *s = *state;
	/* the master answers on the configured address and port */
	memset(&s->master_conf, 0, sizeof(s->master_conf));
	s->master_conf.controller.address = "127.0.0.32";
	s->master_conf.controller.port = s->port_master;
	if (drdns_server_new(&s->loop, &s->master_conf, &s->master) != 0)
		skip(); /* the random port is taken */
	drdns_server_set_zones(s->master, set_with_serial(s, CAMPUS_SERIAL));

	json_t *reply = promote(s, false, 0.5);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_REFUSED);
	assert_non_null(strstr(json_string_value(json_object_get(reply, "error")), "--force"));
	json_decref(reply);
	assert_nothing_changed(s);

	json_t *audit = audit_lines(s);
	assert_int_equal(json_array_size(audit), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(audit, 0), "result")),
	                    "refused");
	assert_int_equal(json_integer_value(json_object_get(json_array_get(audit, 0), "exit")), 4);
	json_decref(audit);
}

/* A master that answers at all (here REFUSED: alive, but not serving this host)
 * is not a dead master: promoting would split the truth. */
static void test_refused_while_master_refuses(void **state)
{
	struct sandbox *s = *state;
	memset(&s->master_conf, 0, sizeof(s->master_conf));
	s->master_conf.controller.address = "127.0.0.32";
	s->master_conf.controller.port = s->port_master;
	if (drdns_server_new(&s->loop, &s->master_conf, &s->master) != 0)
		skip();
	json_t *reply = promote(s, false, 0.5); /* no zones installed: REFUSED */
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_REFUSED);
	assert_non_null(strstr(json_string_value(json_object_get(reply, "error")), "REFUSED"));
	json_decref(reply);
	assert_nothing_changed(s);
}

static void test_dry_run_changes_nothing(void **state)
{
	struct sandbox *s = *state;
	json_t *reply = promote(s, true, 0.5);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_OK);
	json_t *z = json_array_get(json_object_get(reply, "zones"), 0);
	assert_int_equal(json_integer_value(json_object_get(z, "new_serial")), CAMPUS_SERIAL + 1);
	assert_true(json_is_true(json_object_get(z, "publishes_self"))); /* the file lists ns-dr */
	json_decref(reply);
	assert_nothing_changed(s);
	json_t *audit = audit_lines(s);
	assert_int_equal(json_array_size(audit), 0); /* dry runs are not audited */
	json_decref(audit);
}

static void test_promote_then_repeat(void **state)
{
	struct sandbox *s = *state;
	simulate_transfer(s);
	json_t *reply = promote(s, false, 5);
	if (reply_exit(reply) != DRDNS_EXIT_OK)
		fail_msg("promote: %s", json_dumps(reply, 0));
	assert_false(json_is_true(json_object_get(reply, "already_promoted")));
	json_t *sec = json_array_get(json_object_get(reply, "secondaries"), 0);
	assert_true(json_is_true(json_object_get(sec, "converged")));
	assert_true(json_is_true(json_object_get(json_object_get(sec, "notify"), "acked")));
	assert_true(json_is_null(json_object_get(sec, "transfer_refused"))); /* stable key */
	json_decref(reply);

	/* memory, disk and server agree */
	const uint32_t dr = CAMPUS_SERIAL + 1;
	uint32_t serial = 0;
	assert_true(s->ctx.state->promoted);
	assert_int_equal(s->ctx.state->generation, 1);
	assert_true(drdns_state_published(s->ctx.state, "example.edu.", &serial));
	assert_int_equal(serial, dr);
	assert_int_equal(served_serial(s->ctx.server), dr);
	assert_true(exists_in(s, "state/gen-1/example.edu.zone"));
	assert_int_equal(gen_dirs(s), 1);
	struct drdns_state *disk = NULL;
	char err[256];
	assert_int_equal(drdns_state_load(s->conf->controller.state_dir, &disk, err, sizeof(err)),
	                 0);
	assert_true(disk->promoted);
	assert_int_equal(disk->generation, 1);
	assert_true(drdns_state_published(disk, "example.edu.", &serial));
	assert_int_equal(serial, dr);
	assert_string_equal(disk->reason, "unit test");
	drdns_state_free(disk);

	/* a second promote publishes nothing new, even with zones-dr/ broken meanwhile
	 * (it works from the served set) */
	char *zf = path_in(s, "zones-dr/example.edu.zone");
	write_text(zf, "$ORIGIN example.edu.\n@ IN SOA half-edited\n");
	free(zf);
	reply = promote(s, false, 5);
	if (reply_exit(reply) != DRDNS_EXIT_OK)
		fail_msg("second promote: %s", json_dumps(reply, 0));
	assert_true(json_is_true(json_object_get(reply, "already_promoted")));
	json_t *z = json_array_get(json_object_get(reply, "zones"), 0);
	assert_int_equal(json_integer_value(json_object_get(z, "new_serial")), dr);
	json_decref(reply);
	assert_int_equal(s->ctx.state->generation, 1);
	assert_int_equal(served_serial(s->ctx.server), dr);
	assert_int_equal(gen_dirs(s), 1);

	/* audit: committed + done for the first, done for the repeat */
	json_t *audit = audit_lines(s);
	assert_int_equal(json_array_size(audit), 3);
	assert_string_equal(json_string_value(json_object_get(json_array_get(audit, 0), "result")),
	                    "committed");
	assert_string_equal(json_string_value(json_object_get(json_array_get(audit, 1), "result")),
	                    "done");
	assert_string_equal(json_string_value(json_object_get(json_array_get(audit, 2), "result")),
	                    "done");
	assert_true(json_is_true(json_object_get(json_array_get(audit, 2), "repeat")));
	json_decref(audit);
}

static void test_not_converged_is_exit_3(void **state)
{
	struct sandbox *s = *state;
	json_t *reply = promote(s, false, 0.3); /* ns1 never "transfers" */
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_PARTIAL);
	json_decref(reply);
	assert_true(s->ctx.state->promoted); /* done, though */
	assert_int_equal(served_serial(s->ctx.server), CAMPUS_SERIAL + 1);
	json_t *audit = audit_lines(s);
	assert_int_equal(json_array_size(audit), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(audit, 1), "result")),
	                    "done-not-converged");
	json_decref(audit);
}

/* A host that keeps asking the DR primary for an unsigned AXFR from an address
 * nobody configured (a secondary's other address), until told to stop. */
struct asker {
	pthread_t thread;
	atomic_bool stop;
	uint16_t port;
	int asked;
};

static void *ask_axfr(void *arg)
{
	struct asker *a = arg;
	while (!atomic_load(&a->stop)) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct sockaddr_in src = {.sin_family = AF_INET}, dst = {.sin_family = AF_INET};
		inet_pton(AF_INET, "127.0.0.77", &src.sin_addr);
		inet_pton(AF_INET, "127.0.0.30", &dst.sin_addr);
		dst.sin_port = htons(a->port);
		struct timeval tv = {.tv_sec = 1};
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		ldns_pkt *q = NULL;
		uint8_t *wire = NULL;
		size_t len = 0;
		if (fd >= 0 && bind(fd, (struct sockaddr *)&src, sizeof(src)) == 0 &&
		    connect(fd, (struct sockaddr *)&dst, sizeof(dst)) == 0 &&
		    ldns_pkt_query_new_frm_str(&q, "example.edu.", LDNS_RR_TYPE_AXFR,
		                               LDNS_RR_CLASS_IN, 0) == LDNS_STATUS_OK &&
		    ldns_pkt2wire(&wire, q, &len) == LDNS_STATUS_OK) {
			uint8_t hdr[2] = {(uint8_t)(len >> 8), (uint8_t)len};
			uint8_t buf[512];
			if (send(fd, hdr, 2, MSG_NOSIGNAL) == 2 &&
			    send(fd, wire, len, MSG_NOSIGNAL) == (ssize_t)len &&
			    recv(fd, buf, sizeof(buf), 0) > 0)
				a->asked++;
		}
		free(wire);
		ldns_pkt_free(q);
		if (fd >= 0)
			close(fd);
		usleep(50 * 1000);
	}
	return NULL;
}

/* ns1 never converges, and meanwhile drdns refuses unsigned transfers from an
 * unknown address: the report names it for ns1 ("possibly": nobody is known by
 * that address) with the fix. */
static void test_not_converged_names_refused_transfer(void **state)
{
	struct sandbox *s = *state;
	struct asker a = {.port = s->port_dr};
	assert_int_equal(pthread_create(&a.thread, NULL, ask_axfr, &a), 0);
	json_t *reply = promote(s, false, 1.0);
	atomic_store(&a.stop, true);
	pthread_join(a.thread, NULL);
	assert_true(a.asked > 0);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_PARTIAL);
	json_t *sec = json_array_get(json_object_get(reply, "secondaries"), 0);
	assert_true(json_is_false(json_object_get(sec, "converged")));
	json_t *x = json_object_get(sec, "transfer_refused");
	if (!json_is_object(x))
		fail_msg("no transfer_refused in %s", json_dumps(sec, 0));
	assert_string_equal(json_string_value(json_object_get(x, "source")), "127.0.0.77");
	assert_string_equal(json_string_value(json_object_get(x, "zone")), "example.edu.");
	assert_string_equal(json_string_value(json_object_get(x, "reason")), "not-allowed");
	assert_true(json_is_false(json_object_get(x, "signed")));
	assert_true(json_is_true(json_object_get(x, "possibly")));
	assert_true(json_integer_value(json_object_get(x, "count")) >= 1);
	assert_non_null(strstr(json_string_value(json_object_get(x, "text")),
	                       "from 127.0.0.77 refused (not an allowed address): add it to "
	                       "secondaries[ns1].transfer_sources or controller.allow_transfer"));
	json_decref(reply);
}

static void stop_ns1(struct sandbox *s)
{
	drdns_server_close(s->ns1, NULL, NULL);
	s->ns1 = NULL;
	uv_run(&s->loop, UV_RUN_NOWAIT);
}

/* Nobody answers and no serial was ever seen: no safe serial exists. */
static void test_no_serial_known_is_refused(void **state)
{
	struct sandbox *s = *state;
	stop_ns1(s);
	json_t *reply = promote(s, false, 0.3);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_REFUSED);
	assert_non_null(strstr(json_string_value(json_object_get(reply, "error")),
	                       "no serial was ever observed"));
	json_decref(reply);
	assert_nothing_changed(s);
}

/* Nobody answers, but a serial was seen earlier: publish above it, and say
 * honestly that no secondary converged (exit 3, not 0). */
static void test_no_live_secondary_is_exit_3(void **state)
{
	struct sandbox *s = *state;
	drdns_state_note_seen(s->ctx.state, "example.edu.", CAMPUS_SERIAL);
	stop_ns1(s);
	json_t *reply = promote(s, false, 0.3);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_PARTIAL);
	assert_non_null(
	    strstr(json_string_value(json_object_get(reply, "message")), "no secondary answered"));
	json_decref(reply);
	assert_true(s->ctx.state->promoted);
	assert_int_equal(served_serial(s->ctx.server), CAMPUS_SERIAL + 1);
}

static void test_invalid_zone_set(void **state)
{
	struct sandbox *s = *state;
	char *p = path_in(s, "zones-dr/example.edu.zone");
	write_text(p, "$ORIGIN example.edu.\n@ IN SOA broken\n");
	free(p);
	json_t *reply = promote(s, false, 0.3);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_ERROR);
	assert_non_null(
	    strstr(json_string_value(json_object_get(reply, "error")), "example.edu.zone:"));
	json_decref(reply);
	assert_nothing_changed(s);
	json_t *audit = audit_lines(s);
	assert_int_equal(json_array_size(audit), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(audit, 0), "result")),
	                    "error");
	json_decref(audit);
}

/* ---- DNSSEC at promotion ---- */

static void use_keys(struct sandbox *s, const char *fixture)
{
	const char *data = getenv("DRDNS_TEST_DATA");
	assert_non_null(data);
	free(s->conf->dnssec.keys);
	assert_true(asprintf(&s->conf->dnssec.keys, "%s/keys/%s", data, fixture) > 0);
}

static size_t count_type(const struct drdns_zone *z, ldns_rr_type t)
{
	size_t n = 0;
	for (size_t i = 0; i < ldns_rr_list_rr_count(z->rrs); i++)
		n += ldns_rr_get_type(ldns_rr_list_rr(z->rrs, i)) == t;
	return n;
}

/* Keys for the zone: the published set is signed (DNSKEY, NSEC, RRSIGs), the
 * plan and the reply say with which keys, and what is on disk is what is
 * served. */
static void test_promote_signs(void **state)
{
	struct sandbox *s = *state;
	use_keys(s, "ecdsa");
	simulate_transfer(s);
	json_t *reply = promote(s, false, 2.0);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_OK);
	json_t *d = json_object_get(json_array_get(json_object_get(reply, "zones"), 0), "dnssec");
	assert_true(json_is_true(json_object_get(d, "signed")));
	assert_int_equal(json_array_size(json_object_get(d, "keys")), 2);
	assert_true(json_integer_value(json_object_get(d, "signatures")) > 0);
	json_decref(reply);
	const struct drdns_zoneset *served = drdns_server_zones(s->ctx.server);
	assert_non_null(served);
	assert_int_equal(count_type(served->zones[0], LDNS_RR_TYPE_DNSKEY), 2);
	assert_true(count_type(served->zones[0], LDNS_RR_TYPE_NSEC) > 0);
	assert_true(count_type(served->zones[0], LDNS_RR_TYPE_RRSIG) > 0);
	assert_true(s->ctx.state->promoted);
}

/* A corrupt key: exit 1, the file named, nothing changed. */
static void test_promote_bad_key_changes_nothing(void **state)
{
	struct sandbox *s = *state;
	use_keys(s, "mismatch");
	json_t *reply = promote(s, false, 0.5);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_ERROR);
	assert_non_null(strstr(json_string_value(json_object_get(reply, "error")), "keys"));
	assert_non_null(strstr(json_string_value(json_object_get(reply, "error")), ".private"));
	json_decref(reply);
	assert_nothing_changed(s);
}

/* The dry run lists the keys and signs nothing. */
static void test_promote_dry_run_shows_keys(void **state)
{
	struct sandbox *s = *state;
	use_keys(s, "csk");
	json_t *reply = promote(s, true, 0.5);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_OK);
	json_t *d = json_object_get(json_array_get(json_object_get(reply, "zones"), 0), "dnssec");
	assert_true(json_is_true(json_object_get(d, "signed")));
	assert_int_equal(json_array_size(json_object_get(d, "keys")), 1);
	assert_null(json_object_get(d, "signatures"));
	json_decref(reply);
	assert_nothing_changed(s);
}

/* ---- DNSSEC key continuity ---- */

/* ns1 serves the campus copy with the DNSKEY set of a key fixture. */
static void ns1_publishes_keys(struct sandbox *s, const char *fixture)
{
	char *dir = NULL;
	assert_true(asprintf(&dir, "%s/keys/%s", getenv("DRDNS_TEST_DATA"), fixture) > 0);
	struct drdns_keyset *ks = NULL;
	struct drdns_diag diag = {0};
	assert_int_equal(drdns_keyset_load(dir, "example.edu", &ks, &diag), 0);
	assert_non_null(ks);
	drdns_diag_clear(&diag);
	struct drdns_zoneset *set = set_with_serial(s, CAMPUS_SERIAL);
	ldns_rr_list *keys = drdns_keyset_dnskeys(ks, 3600);
	for (size_t i = 0; i < ldns_rr_list_rr_count(keys); i++)
		ldns_rr_list_push_rr(set->zones[0]->rrs, ldns_rr_clone(ldns_rr_list_rr(keys, i)));
	ldns_rr_list_deep_free(keys);
	drdns_keyset_free(ks);
	free(dir);
	drdns_server_set_zones(s->ns1, set);
}

static const char *continuity_of(const json_t *reply)
{
	json_t *z = json_array_get(json_object_get(reply, "zones"), 0);
	return json_string_value(json_object_get(json_object_get(z, "dnssec"), "continuity"));
}

static json_t *promote_forced(struct sandbox *s, double wait)
{
	json_t *who = json_pack("{s:i}", "uid", 0);
	struct drdns_promote_opts o = {
	    .reason = "unit test", .force = true, .wait = wait, .who = who};
	struct result r = {0};
	assert_int_equal(drdns_promote_start(&s->ctx, &o, on_done, &r), 0);
	json_decref(who);
	run_until(s, &r);
	return r.reply;
}

/* The secondary publishes the keys drdns has: signed and published. */
static void test_continuity_same_keys(void **state)
{
	struct sandbox *s = *state;
	use_keys(s, "ecdsa");
	ns1_publishes_keys(s, "ecdsa");
	simulate_transfer(s);
	json_t *reply = promote(s, false, 2.0);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_OK);
	assert_string_equal(continuity_of(reply), "same");
	json_decref(reply);
	assert_true(s->ctx.state->promoted);
}

/* The secondary publishes other keys: refused (dry run too), nothing changed;
 * --force promotes all the same. */
static void test_continuity_mismatch_refused(void **state)
{
	struct sandbox *s = *state;
	use_keys(s, "ecdsa");
	ns1_publishes_keys(s, "ed25519");
	json_t *reply = promote(s, true, 0.5);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_REFUSED);
	json_decref(reply);
	reply = promote(s, false, 0.5);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_REFUSED);
	const char *err = json_string_value(json_object_get(reply, "error"));
	assert_non_null(strstr(err, "key continuity"));
	assert_non_null(strstr(err, "ns1.example.edu."));
	assert_non_null(strstr(err, "--force"));
	json_decref(reply);
	assert_nothing_changed(s);
	reply = promote_forced(s, 0.3);
	assert_int_not_equal(reply_exit(reply), DRDNS_EXIT_REFUSED);
	assert_string_equal(continuity_of(reply), "mismatch");
	json_decref(reply);
	assert_true(s->ctx.state->promoted);
}

/* Signed on the campus, no dnssec group here: never serve it unsigned. */
static void test_continuity_would_unsign_refused(void **state)
{
	struct sandbox *s = *state;
	ns1_publishes_keys(s, "ecdsa");
	json_t *reply = promote(s, false, 0.5);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_REFUSED);
	assert_non_null(strstr(json_string_value(json_object_get(reply, "error")), "unsigned"));
	json_decref(reply);
	assert_nothing_changed(s);
}

/* Unsigned on the campus and here: nothing to say, promoted as before. */
static void test_continuity_unsigned(void **state)
{
	struct sandbox *s = *state;
	simulate_transfer(s);
	json_t *reply = promote(s, false, 2.0);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_OK);
	assert_string_equal(continuity_of(reply), "unsigned");
	json_decref(reply);
}

/* state.json cannot be replaced: the promotion fails and changes nothing. */
static void test_commit_failure_changes_nothing(void **state)
{
	struct sandbox *s = *state;
	char *p = path_in(s, "state/state.json");
	assert_int_equal(drdns_mkdir_p(p, 0755), 0); /* a directory: rename over it fails */
	char *inside = path_in(s, "state/state.json/x");
	write_text(inside, "x");
	free(inside);
	json_t *reply = promote(s, false, 0.3);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_ERROR);
	assert_non_null(
	    strstr(json_string_value(json_object_get(reply, "error")), "cannot commit"));
	json_decref(reply);
	assert_false(s->ctx.state->promoted);
	assert_null(drdns_server_zones(s->ctx.server));
	json_t *audit = audit_lines(s);
	assert_int_equal(json_array_size(audit), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(audit, 0), "result")),
	                    "error");
	json_decref(audit);
	drdns_rm_rf(p);
	free(p);
	/* the left-over generation (the old state could not be restored either) is
	 * not referenced: start-up removes it, as drdnsd does */
	drdns_state_gc(s->conf->controller.state_dir, 0);
	assert_nothing_changed(s);
}

static void test_busy_is_audited(void **state)
{
	struct sandbox *s = *state;
	json_t *who = json_object();
	struct drdns_promote_opts o = {.reason = "first", .wait = 0.2, .who = who};
	struct result r = {0};
	assert_int_equal(drdns_promote_start(&s->ctx, &o, on_done, &r), 0);
	struct drdns_promote_opts o2 = {.reason = "second", .wait = 0.2, .who = who};
	struct result r2 = {0};
	assert_int_equal(drdns_promote_start(&s->ctx, &o2, on_done, &r2), DRDNS_EBUSY);
	json_decref(who);
	run_until(s, &r);
	assert_false(r2.done);
	json_decref(r.reply);
	json_t *audit = audit_lines(s);
	assert_true(json_array_size(audit) >= 2);
	json_t *busy = json_array_get(audit, 0);
	assert_string_equal(json_string_value(json_object_get(busy, "reason")), "second");
	assert_int_equal(json_integer_value(json_object_get(busy, "exit")), DRDNS_EXIT_ERROR);
	json_decref(audit);
}

static void on_status(json_t *reply, void *arg)
{
	on_done(reply, arg);
}

/* SIGTERM while a promote and a status wait for their probes: drdnsd closes
 * its server and sets ctx.server to NULL.  Nothing may be committed, nothing
 * may crash, and both still get a reply. */
static void test_shutdown_during_probes(void **state)
{
	struct sandbox *s = *state;
	json_t *who = json_object();
	struct drdns_promote_opts o = {.reason = "stopping", .wait = 0.2, .who = who};
	struct result r = {0}, st = {0};
	assert_int_equal(drdns_promote_start(&s->ctx, &o, on_done, &r), 0);
	assert_int_equal(drdns_status_start(&s->ctx, on_status, &st), 0);
	json_decref(who);
	drdns_server_close(s->ctx.server, NULL, NULL);
	s->ctx.server = NULL;
	run_until(s, &r);
	run_until(s, &st);
	assert_int_equal(reply_exit(r.reply), DRDNS_EXIT_ERROR);
	assert_non_null(
	    strstr(json_string_value(json_object_get(r.reply, "error")), "shutting down"));
	assert_int_equal(reply_exit(st.reply), DRDNS_EXIT_OK);
	json_decref(r.reply);
	json_decref(st.reply);
	assert_false(s->ctx.state->promoted);
	assert_int_equal(gen_dirs(s), 0);
}

static void test_status_standby(void **state)
{
	struct sandbox *s = *state;
	struct result st = {0};
	assert_int_equal(drdns_status_start(&s->ctx, on_status, &st), 0);
	run_until(s, &st);
	assert_int_equal(reply_exit(st.reply), DRDNS_EXIT_OK);
	assert_string_equal(json_string_value(json_object_get(st.reply, "state")), "MASTER_DOWN");
	assert_false(json_is_true(json_object_get(json_object_get(st.reply, "master"), "up")));
	json_decref(st.reply);

	/* no valid DR set: nothing is probed, so the master is not reported up */
	char *p = path_in(s, "zones-dr/example.edu.zone");
	unlink(p);
	free(p);
	st = (struct result){0};
	assert_int_equal(drdns_status_start(&s->ctx, on_status, &st), 0);
	run_until(s, &st);
	assert_string_equal(json_string_value(json_object_get(st.reply, "state")), "UNKNOWN");
	assert_false(json_is_true(json_object_get(json_object_get(st.reply, "master"), "up")));
	json_decref(st.reply);
}

static void test_error_reply_invalid_utf8(void **state)
{
	(void)state;
	/* invalid bytes, and a 3-byte character cut after its first byte */
	json_t *r = drdns_error_reply("promote", 1, "bad \xff file %s", "z\xc3\xa9\xe2");
	assert_non_null(r);
	assert_string_equal(json_string_value(json_object_get(r, "error")),
	                    "bad ? file z\xc3\xa9?");
	json_decref(r);
	/* a long message is cut, still valid */
	char big[10000];
	memset(big, 'a', sizeof(big));
	for (size_t i = 0; i + 2 < sizeof(big); i += 2)
		big[i] = '\xc3', big[i + 1] = '\xa9';
	big[sizeof(big) - 1] = '\0';
	r = drdns_error_reply("promote", 1, "x%s", big);
	assert_non_null(r);
	json_decref(r);
}

/* ---- demote ---------------------------------------------------------------- */

static json_t *demote(struct sandbox *s, bool dry_run, double wait)
{
	json_t *who = json_pack("{s:i}", "uid", 0);
	struct drdns_demote_opts o = {
	    .reason = "unit test: failback", .dry_run = dry_run, .wait = wait, .who = who};
	struct result r = {0};
	assert_int_equal(drdns_demote_start(&s->ctx, &o, on_done, &r), 0);
	json_decref(who);
	run_until(s, &r);
	assert_false(s->ctx.busy);
	return r.reply;
}

static bool start_master(struct sandbox *s, uint32_t serial);

/* Promote with the master dead, then bring the master back at serial. */
static bool promoted_then_master_back(struct sandbox *s, uint32_t serial)
{
	simulate_transfer(s);
	json_t *reply = promote(s, false, 2.0);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_OK);
	json_decref(reply);
	return start_master(s, serial);
}

static void test_demote_standby_is_noop(void **state)
{
	struct sandbox *s = *state;
	json_t *reply = demote(s, false, 1.0);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_OK);
	assert_non_null(strstr(json_string_value(json_object_get(reply, "message")), "standby"));
	json_decref(reply);
	assert_nothing_changed(s);
}

/* The master is back but behind the DR serial: refused, the serial it must
 * publish, nothing changed (memory, disk, what is served), audited. */
static void test_demote_refused_master_behind(void **state)
{
	struct sandbox *s = *state;
	if (!promoted_then_master_back(s, CAMPUS_SERIAL))
		skip();
	json_t *audit0 = audit_lines(s);
	size_t before = json_array_size(audit0);
	json_decref(audit0);
	json_t *reply = demote(s, false, 1.0);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_REFUSED);
	json_t *z = json_array_get(json_object_get(reply, "zones"), 0);
	assert_false(json_is_true(json_object_get(z, "ready")));
	assert_int_equal(json_integer_value(json_object_get(z, "master_must_publish")),
	                 CAMPUS_SERIAL + 2); /* above the DR serial CAMPUS + 1 */
	assert_non_null(
	    strstr(json_string_value(json_object_get(reply, "error")), "must publish 2024010107"));
	json_decref(reply);
	assert_true(s->ctx.state->promoted);
	assert_int_equal(served_serial(s->ctx.server), CAMPUS_SERIAL + 1);
	assert_int_equal(gen_dirs(s), 1);
	json_t *audit = audit_lines(s);
	assert_int_equal(json_array_size(audit), before + 1);
	json_t *last = json_array_get(audit, json_array_size(audit) - 1);
	assert_string_equal(json_string_value(json_object_get(last, "action")), "demote");
	assert_string_equal(json_string_value(json_object_get(last, "result")), "refused");
	json_decref(audit);
}

/* The master is 2^31 or more away: a two-step plan. */
static void test_demote_two_step_plan(void **state)
{
	struct sandbox *s = *state;
	if (!promoted_then_master_back(s, CAMPUS_SERIAL + 1 + 0x80000000u))
		skip();
	json_t *reply = demote(s, true, 1.0);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_REFUSED);
	json_t *z = json_array_get(json_object_get(reply, "zones"), 0);
	assert_true(json_is_integer(json_object_get(z, "first_publish")));
	assert_non_null(strstr(json_string_value(json_object_get(reply, "error")), "two steps"));
	json_decref(reply);
	assert_true(s->ctx.state->promoted);
}

/* The master is ahead and ns1 follows it: dry run changes nothing; demote steps
 * down, ns1 is reported back, drdns serves nothing, state.json standby. */
static void test_demote_master_ahead(void **state)
{
	struct sandbox *s = *state;
	if (!promoted_then_master_back(s, CAMPUS_SERIAL + 10))
		skip();
	json_t *reply = demote(s, true, 1.0);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_OK);
	assert_true(json_is_true(json_object_get(reply, "dry_run")));
	json_decref(reply);
	assert_true(s->ctx.state->promoted);

	drdns_server_set_zones(s->ns1, set_with_serial(s, CAMPUS_SERIAL + 10)); /* follows */
	reply = demote(s, false, 2.0);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_OK);
	json_t *sec = json_array_get(json_object_get(reply, "secondaries"), 0);
	assert_true(json_is_true(json_object_get(sec, "converged")));
	json_decref(reply);
	assert_false(s->ctx.state->promoted);
	assert_null(drdns_server_zones(s->ctx.server));
	assert_int_equal(gen_dirs(s), 0);
	struct drdns_state *disk = NULL;
	char err[256];
	assert_int_equal(drdns_state_load(s->conf->controller.state_dir, &disk, err, sizeof(err)),
	                 0);
	assert_false(disk->promoted);
	drdns_state_free(disk);
}

/* ns1 never takes the master's serial: stepped down all the same, exit 3. */
static void test_demote_not_converged_is_exit_3(void **state)
{
	struct sandbox *s = *state;
	if (!promoted_then_master_back(s, CAMPUS_SERIAL + 10))
		skip();
	json_t *reply = demote(s, false, 0.3);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_PARTIAL);
	json_decref(reply);
	assert_false(s->ctx.state->promoted);
}

/* ---- drill ------------------------------------------------------------------ */

static bool start_master(struct sandbox *s, uint32_t serial)
{
	memset(&s->master_conf, 0, sizeof(s->master_conf));
	s->master_conf.controller.address = "127.0.0.32";
	s->master_conf.controller.port = s->port_master;
	/* the hand-back fetches the campus copies (unsigned, from the controller) */
	static char *handback_from[] = {"127.0.0.30"};
	s->master_conf.controller.allow_transfer = handback_from;
	s->master_conf.controller.n_allow_transfer = 1;
	if (drdns_server_new(&s->loop, &s->master_conf, &s->master) != 0)
		return false; /* the random port is taken */
	drdns_server_set_zones(s->master, set_with_serial(s, serial));
	return true;
}

static json_t *drill(struct sandbox *s, const char *zone, bool preflight_only, double wait)
{
	json_t *who = json_pack("{s:i}", "uid", 0);
	struct drdns_drill_opts o = {.zone = zone,
	                             .preflight_only = preflight_only,
	                             .wait = wait,
	                             .reason = "unit test: drill",
	                             .who = who};
	struct result r = {0};
	assert_int_equal(drdns_drill_start(&s->ctx, &o, on_done, &r), 0);
	json_decref(who);
	run_until(s, &r);
	assert_false(s->ctx.busy);
	assert_null(drdns_server_drill_zones(s->ctx.server)); /* never left served */
	assert_null(drdns_server_handback_zones(s->ctx.server));
	assert_true(s->ctx.handback_until == 0);
	return r.reply;
}

/* The named pre-flight check's ok, or -1 when it is missing. */
static int preflight_ok(const json_t *reply, const char *check)
{
	size_t i;
	json_t *c;
	json_array_foreach(json_object_get(reply, "preflight"), i, c)
	{
		if (!strcmp(json_string_value(json_object_get(c, "check")), check))
			return json_is_true(json_object_get(c, "ok"));
	}
	return -1;
}

static uint32_t ns1_serial(struct sandbox *s)
{
	return served_serial(s->ns1);
}

/* "ns1 follows its primaries" (drdns first, then the master), as RFC 1982
 * says: it takes a serial only when it is greater than its own. */
static void follow_cb(uv_timer_t *t)
{
	struct sandbox *s = t->data;
	uint32_t mine = ns1_serial(s);
	const struct drdns_zoneset *d = drdns_server_drill_zones(s->ctx.server);
	const struct drdns_zoneset *m = s->master ? drdns_server_zones(s->master) : NULL;
	if (d && drdns_serial_gt(drdns_zone_serial(d->zones[0]), mine))
		drdns_server_set_zones(s->ns1, set_with_serial(s, drdns_zone_serial(d->zones[0])));
	else if (m && drdns_serial_gt(drdns_zone_serial(m->zones[0]), mine))
		drdns_server_set_zones(s->ns1, set_with_serial(s, drdns_zone_serial(m->zones[0])));
}

static void simulate_following(struct sandbox *s)
{
	s->transfer = true;
	uv_timer_init(&s->loop, &s->transfer_timer);
	s->transfer_timer.data = s;
	uv_timer_start(&s->transfer_timer, follow_cb, 10, 10);
}

/* ---- re-signing while promoted (drdns_resign_start) ---- */

/* "ns1 follows drdns": it takes drdns's served copy (signed or not) once it is
 * newer than its own, as a secondary's transfer would. */
static void follow_dr_cb(uv_timer_t *t)
{
	struct sandbox *s = t->data;
	const struct drdns_zoneset *d = drdns_server_zones(s->ctx.server);
	if (!d || !drdns_serial_gt(drdns_zone_serial(d->zones[0]), ns1_serial(s)))
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

static json_t *resign(struct sandbox *s, bool dry_run, bool force, double wait)
{
	json_t *who = json_pack("{s:s}", "user", "operator");
	struct drdns_resign_opts o = {.reason = "unit test re-sign",
	                              .dry_run = dry_run,
	                              .force = force,
	                              .wait = wait,
	                              .who = who};
	struct result r = {0};
	assert_int_equal(drdns_resign_start(&s->ctx, &o, on_done, &r), 0);
	json_decref(who);
	run_until(s, &r);
	assert_false(s->ctx.busy);
	return r.reply;
}

static int64_t served_earliest(struct sandbox *s)
{
	const struct drdns_zoneset *served = drdns_server_zones(s->ctx.server);
	assert_non_null(served);
	struct drdns_rrsig_summary sum;
	drdns_zone_rrsig_summarize(served->zones[0], (int64_t)time(NULL), &sum);
	assert_true(sum.signatures > 0);
	return sum.earliest;
}

/* Standby: there is nothing of drdns's to re-sign; busy: refused at once. */
static void test_resign_refused_standby_or_busy(void **state)
{
	struct sandbox *s = *state;
	struct drdns_resign_opts o = {.reason = "x", .wait = 0.1};
	struct result r = {0};
	assert_int_equal(drdns_resign_start(&s->ctx, &o, on_done, &r), DRDNS_ESTATE);
	assert_false(r.done);
	assert_nothing_changed(s);
	use_keys(s, "ecdsa");
	simulate_following_dr(s);
	json_t *reply = promote(s, false, 2.0);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_OK);
	json_decref(reply);
	s->ctx.busy = true;
	assert_int_equal(drdns_resign_start(&s->ctx, &o, on_done, &r), DRDNS_EBUSY);
	s->ctx.busy = false;
	assert_false(r.done);
}

/* Promoted with keys: a new generation, the next serial, later expirations,
 * the secondary follows; the promotion's time and reason stay; audited. */
static void test_resign_signs_afresh(void **state)
{
	struct sandbox *s = *state;
	use_keys(s, "ecdsa");
	simulate_following_dr(s);
	json_t *reply = promote(s, false, 2.0);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_OK);
	json_decref(reply);
	unsigned long gen = s->ctx.state->generation;
	uint32_t serial = 0;
	assert_true(drdns_state_published(s->ctx.state, "example.edu.", &serial));
	int64_t promoted_at = s->ctx.state->last_promotion_at;
	char *why = strdup(s->ctx.state->reason);
	int64_t before = served_earliest(s);
	s->conf->dnssec.validity *= 2; /* so the fresh signatures are visibly later */
	s->conf->dnssec.jitter = 0;

	reply = resign(s, false, false, 2.0);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_OK);
	assert_string_equal(json_string_value(json_object_get(reply, "command")), "resign");
	json_t *z = json_array_get(json_object_get(reply, "zones"), 0);
	assert_int_equal(json_integer_value(json_object_get(z, "old_serial")), serial);
	assert_int_equal(json_integer_value(json_object_get(z, "new_serial")), serial + 1);
	assert_string_equal(continuity_of(reply), "same");
	json_decref(reply);

	assert_true(s->ctx.state->promoted);
	assert_int_equal(s->ctx.state->generation, gen + 1);
	assert_int_equal(served_serial(s->ctx.server), serial + 1);
	assert_int_equal(ns1_serial(s), serial + 1);
	assert_true(served_earliest(s) > before);
	assert_int_equal(s->ctx.state->last_promotion_at, promoted_at);
	assert_string_equal(s->ctx.state->reason, why);
	free(why);
	/* on disk as in memory */
	struct drdns_state *disk = NULL;
	char err[256];
	assert_int_equal(drdns_state_load(s->conf->controller.state_dir, &disk, err, sizeof(err)),
	                 0);
	assert_int_equal(disk->generation, gen + 1);
	assert_int_equal(disk->last_promotion_at, promoted_at);
	drdns_state_free(disk);
	json_t *audit = audit_lines(s);
	json_t *last = json_array_get(audit, json_array_size(audit) - 1);
	assert_string_equal(json_string_value(json_object_get(last, "action")), "resign");
	assert_string_equal(json_string_value(json_object_get(last, "result")), "done");
	json_decref(audit);
}

/* The dry run shows the plan and changes nothing; without keys there is
 * nothing to re-sign (exit 1, nothing changed). */
static void test_resign_dry_run_and_no_keys(void **state)
{
	struct sandbox *s = *state;
	simulate_following_dr(s);
	json_t *reply = promote(s, false, 2.0);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_OK);
	json_decref(reply);
	unsigned long gen = s->ctx.state->generation;
	reply = resign(s, false, false, 0.5);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_ERROR);
	assert_non_null(
	    strstr(json_string_value(json_object_get(reply, "error")), "nothing to re-sign"));
	json_decref(reply);
	assert_int_equal(s->ctx.state->generation, gen);

	use_keys(s, "ecdsa");
	uint32_t serial = served_serial(s->ctx.server);
	reply = resign(s, true, false, 0.5);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_OK);
	assert_true(json_is_true(json_object_get(reply, "dry_run")));
	json_t *z = json_array_get(json_object_get(reply, "zones"), 0);
	assert_int_equal(json_integer_value(json_object_get(z, "new_serial")), serial + 1);
	json_decref(reply);
	assert_int_equal(s->ctx.state->generation, gen);
	assert_int_equal(served_serial(s->ctx.server), serial);
	assert_int_equal(gen_dirs(s), 1);
}

/* The keys on disk changed since the promotion: the secondaries publish the
 * old DNSKEY set, so re-signing would break validation: exit 4, nothing
 * changed; --force re-signs all the same. */
static void test_resign_key_change_refused(void **state)
{
	struct sandbox *s = *state;
	use_keys(s, "ecdsa");
	simulate_following_dr(s);
	json_t *reply = promote(s, false, 2.0);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_OK);
	json_decref(reply);
	unsigned long gen = s->ctx.state->generation;
	uint32_t serial = served_serial(s->ctx.server);
	use_keys(s, "ed25519");
	reply = resign(s, false, false, 0.5);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_REFUSED);
	assert_non_null(
	    strstr(json_string_value(json_object_get(reply, "error")), "key continuity"));
	json_decref(reply);
	assert_int_equal(s->ctx.state->generation, gen);
	assert_int_equal(served_serial(s->ctx.server), serial);
	reply = resign(s, false, true, 2.0);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_OK);
	json_decref(reply);
	assert_int_equal(s->ctx.state->generation, gen + 1);
}

/* The campus is back with a newer serial: the secondaries are failing back to
 * it, so a re-signing is refused (exit 4, nothing changed); --force publishes
 * above the master all the same. */
static void test_resign_refused_master_ahead(void **state)
{
	struct sandbox *s = *state;
	use_keys(s, "ecdsa");
	simulate_following_dr(s);
	json_t *reply = promote(s, false, 2.0);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_OK);
	json_decref(reply);
	unsigned long gen = s->ctx.state->generation;
	uint32_t serial = served_serial(s->ctx.server);
	if (!start_master(s, serial + 10))
		skip();
	reply = resign(s, false, false, 0.5);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_REFUSED);
	const char *err = json_string_value(json_object_get(reply, "error"));
	assert_non_null(strstr(err, "fail back"));
	assert_non_null(strstr(err, "--force"));
	json_decref(reply);
	assert_int_equal(s->ctx.state->generation, gen);
	assert_int_equal(served_serial(s->ctx.server), serial);
	reply = resign(s, false, true, 0.5);
	assert_true(reply_exit(reply) == DRDNS_EXIT_OK || reply_exit(reply) == DRDNS_EXIT_PARTIAL);
	json_decref(reply);
	assert_int_equal(served_serial(s->ctx.server), serial + 11);
}

static void test_drill_refused_while_promoted(void **state)
{
	struct sandbox *s = *state;
	s->ctx.state->promoted = true; /* in memory only: the drill must not look further */
	json_t *reply = drill(s, "example.edu", false, 1.0);
	s->ctx.state->promoted = false;
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_REFUSED);
	assert_non_null(strstr(json_string_value(json_object_get(reply, "error")), "promoted"));
	json_decref(reply);
	assert_nothing_changed(s);
}

static void test_drill_busy(void **state)
{
	struct sandbox *s = *state;
	s->ctx.busy = true;
	struct drdns_drill_opts o = {.wait = 1.0};
	struct result r = {0};
	assert_int_equal(drdns_drill_start(&s->ctx, &o, on_done, &r), DRDNS_EBUSY);
	assert_false(r.done);
	s->ctx.busy = false;
}

/* No drill zone: the pre-flight alone, which changes nothing. */
static void test_drill_preflight_only(void **state)
{
	struct sandbox *s = *state;
	if (!start_master(s, CAMPUS_SERIAL))
		skip();
	json_t *reply = drill(s, NULL, false, 1.0);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_OK);
	assert_string_equal(json_string_value(json_object_get(reply, "verdict")), "pass");
	assert_true(json_is_false(json_object_get(reply, "live")));
	assert_int_equal(preflight_ok(reply, "dr_set"), 1);
	assert_int_equal(preflight_ok(reply, "secondaries"), 1);
	assert_int_equal(preflight_ok(reply, "serial_plan"), 1);
	assert_int_equal(preflight_ok(reply, "nameservers"), 1);
	assert_int_equal(preflight_ok(reply, "dnssec"), 1);
	assert_int_equal(preflight_ok(reply, "drill_zone"), -1);
	json_decref(reply);
	assert_nothing_changed(s);
	assert_int_equal(ns1_serial(s), CAMPUS_SERIAL);
}

static void test_drill_zone_not_in_set(void **state)
{
	struct sandbox *s = *state;
	if (!start_master(s, CAMPUS_SERIAL))
		skip();
	json_t *reply = drill(s, "NoSuch.Example.EDU", false, 1.0);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_REFUSED);
	assert_int_equal(preflight_ok(reply, "drill_zone"), 0);
	assert_string_equal(json_string_value(json_object_get(reply, "zone")),
	                    "nosuch.example.edu.");
	json_decref(reply);
	assert_nothing_changed(s);
	json_t *audit = audit_lines(s);
	assert_int_equal(json_array_size(audit), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(audit, 0), "result")),
	                    "refused");
	json_decref(audit);
}

static void test_drill_invalid_dr_set(void **state)
{
	struct sandbox *s = *state;
	char *p = path_in(s, "zones-dr/example.edu.zone");
	write_text(p, "$ORIGIN example.edu.\nwww IN A 192.0.2.999\n");
	free(p);
	json_t *reply = drill(s, "example.edu", false, 1.0);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_REFUSED);
	assert_int_equal(preflight_ok(reply, "dr_set"), 0);
	json_decref(reply);
	assert_nothing_changed(s);
}

static void test_drill_secondary_unreachable(void **state)
{
	struct sandbox *s = *state;
	if (!start_master(s, CAMPUS_SERIAL))
		skip();
	stop_ns1(s);
	json_t *reply = drill(s, "example.edu", false, 1.0);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_REFUSED);
	assert_int_equal(preflight_ok(reply, "secondaries"), 0);
	assert_true(json_is_false(json_object_get(reply, "live")));
	json_decref(reply);
	assert_nothing_changed(s);
}

/* The master must answer for the drill zone: the drill hands back to it. */
static void test_drill_master_down(void **state)
{
	struct sandbox *s = *state;
	json_t *reply = drill(s, "example.edu", false, 1.0);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_REFUSED);
	assert_int_equal(preflight_ok(reply, "drill_zone"), 0);
	json_decref(reply);
	assert_nothing_changed(s);
}

/* A secondary still behind the master (a refresh away): it follows every step
 * all the same, and ends on the master's serial. */
static void test_drill_secondary_behind(void **state)
{
	struct sandbox *s = *state;
	if (!start_master(s, CAMPUS_SERIAL))
		skip();
	drdns_server_set_zones(s->ns1, set_with_serial(s, CAMPUS_SERIAL - 1));
	simulate_following(s);
	json_t *reply = drill(s, "example.edu", false, 5.0);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_OK);
	json_decref(reply);
	assert_int_equal(ns1_serial(s), CAMPUS_SERIAL);
	assert_nothing_changed(s);
}

/* A request that is not JSON booleans never reads as a pre-flight: the daemon
 * refuses it (tested in test_ctl); here the contract that a failing step after
 * something was served is exit 3, not 1 ("nothing changed"): ns1 is left
 * behind when the master is gone by the release step. */
static void test_drill_release_not_followed(void **state)
{
	struct sandbox *s = *state;
	if (!start_master(s, CAMPUS_SERIAL))
		skip();
	simulate_following(s);
	/* the master vanishes as soon as ns1 takes the first drill serial */
	json_t *who = json_pack("{s:i}", "uid", 0);
	struct drdns_drill_opts o = {.zone = "example.edu", .wait = 0.5, .who = who};
	struct result r = {0};
	assert_int_equal(drdns_drill_start(&s->ctx, &o, on_done, &r), 0);
	json_decref(who);
	while (!r.done) {
		uv_run(&s->loop, UV_RUN_ONCE);
		if (s->master && ns1_serial(s) == CAMPUS_SERIAL + 1431655765u) {
			drdns_server_close(s->master, NULL, NULL);
			s->master = NULL;
		}
	}
	assert_int_equal(reply_exit(r.reply), DRDNS_EXIT_PARTIAL);
	json_t *sec = json_array_get(json_object_get(r.reply, "secondaries"), 0);
	assert_non_null(
	    strstr(json_string_value(json_object_get(sec, "detail")), "run the drill again"));
	/* no campus copy to relay: the release fell back to REFUSED, and says so */
	json_t *rel = json_object_get(r.reply, "release");
	assert_true(json_is_false(json_object_get(rel, "relay")));
	assert_non_null(strstr(json_string_value(json_object_get(rel, "detail")), "AXFR"));
	assert_non_null(strstr(json_string_value(json_object_get(r.reply, "message")),
	                       "hand-back relay was not used"));
	json_decref(r.reply);
	assert_null(drdns_server_drill_zones(s->ctx.server));
	assert_null(drdns_server_handback_zones(s->ctx.server));
	assert_nothing_changed(s);
}

/* The whole live drill: ns1 takes S + T, then S + 2T, then the master's S. */
static void test_drill_live_pass(void **state)
{
	struct sandbox *s = *state;
	if (!start_master(s, CAMPUS_SERIAL))
		skip();
	simulate_following(s);
	json_t *reply = drill(s, "example.edu", false, 5.0);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_OK);
	assert_string_equal(json_string_value(json_object_get(reply, "verdict")), "pass");
	assert_true(json_is_true(json_object_get(reply, "live")));
	json_t *serials = json_object_get(reply, "serials");
	uint32_t t = 1431655765u;
	assert_int_equal(json_integer_value(json_object_get(serials, "drill")),
	                 (uint32_t)(CAMPUS_SERIAL + t));
	assert_int_equal(json_integer_value(json_object_get(serials, "return")),
	                 (uint32_t)(CAMPUS_SERIAL + 2 * t));
	json_t *sec = json_array_get(json_object_get(reply, "secondaries"), 0);
	assert_true(json_is_true(json_object_get(sec, "ok")));
	size_t i;
	json_t *step;
	json_array_foreach(json_object_get(sec, "steps"), i, step)
	{
		assert_true(json_is_true(json_object_get(step, "converged")));
		assert_true(json_is_number(json_object_get(step, "seconds")));
	}
	assert_int_equal(i, 3);
	json_decref(reply);
	assert_int_equal(ns1_serial(s), CAMPUS_SERIAL); /* back with the campus */
	assert_nothing_changed(s);                      /* state.json, generations */
	json_t *audit = audit_lines(s);
	assert_int_equal(json_array_size(audit), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(audit, 0), "result")),
	                    "started");
	assert_string_equal(json_string_value(json_object_get(json_array_get(audit, 1), "result")),
	                    "pass");
	json_decref(audit);
}

/* ns1 never follows: the drill fails at step 1 (exit 3), and stops serving. */
static void test_drill_live_not_following(void **state)
{
	struct sandbox *s = *state;
	if (!start_master(s, CAMPUS_SERIAL))
		skip();
	json_t *reply = drill(s, "example.edu", false, 0.3);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_PARTIAL);
	assert_string_equal(json_string_value(json_object_get(reply, "verdict")), "fail");
	json_t *sec = json_array_get(json_object_get(reply, "secondaries"), 0);
	assert_true(json_is_false(json_object_get(sec, "ok")));
	assert_non_null(strstr(json_string_value(json_object_get(sec, "detail")), "promote"));
	json_decref(reply);
	assert_int_equal(ns1_serial(s), CAMPUS_SERIAL);
	assert_nothing_changed(s);
}

/* A drill cut short left ns1 on S + T: the next drill brings it back but is
 * no full test (exit 3); the one after passes.  (A leftover on S + 2T is
 * below S: the secondary's own refresh from the campus brings it back, as the
 * simulation here would at once.) */
static void test_drill_resumes_cut_short(void **state)
{
	struct sandbox *s = *state;
	if (!start_master(s, CAMPUS_SERIAL))
		skip();
	drdns_server_set_zones(s->ns1, set_with_serial(s, CAMPUS_SERIAL + 1431655765u));
	simulate_following(s);
	json_t *reply = drill(s, "example.edu", false, 5.0);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_PARTIAL);
	assert_non_null(
	    strstr(json_string_value(json_object_get(reply, "message")), "run the drill again"));
	json_decref(reply);
	assert_int_equal(ns1_serial(s), CAMPUS_SERIAL);
	reply = drill(s, "example.edu", false, 5.0);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_OK);
	json_decref(reply);
	assert_int_equal(ns1_serial(s), CAMPUS_SERIAL);
}

/* The drill's pre-flight catches a key continuity break (its forced dry run
 * would not refuse it). */
static void test_drill_preflight_dnssec_mismatch(void **state)
{
	struct sandbox *s = *state;
	if (!start_master(s, CAMPUS_SERIAL))
		skip();
	use_keys(s, "ecdsa");
	ns1_publishes_keys(s, "ed25519");
	json_t *reply = drill(s, NULL, true, 1.0);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_REFUSED);
	assert_int_equal(preflight_ok(reply, "dnssec"), 0);
	json_decref(reply);
	assert_nothing_changed(s);
}

/* ---- the hand-back relay (demote / step-down) ------------------------------ */

/* An AXFR from drdns's own server, in the thread pool while the loop runs (the
 * server answers on this loop), from 127.0.0.31 (ns1, a configured secondary
 * without a key).  ret/err/serial/records for the test. */
struct dr_axfr {
	uv_work_t work;
	struct sandbox *s;
	bool running, done;
	int ret;
	uint32_t serial;
	size_t records;
	char err[200];
};

static void dr_axfr_work(uv_work_t *w)
{
	struct dr_axfr *a = w->data;
	struct drdns_axfr_opts o = {.zone = "example.edu.",
	                            .address = "127.0.0.30",
	                            .port = a->s->port_dr,
	                            .source = "127.0.0.31",
	                            .timeout = 5.0};
	ldns_rr_list *rrs = NULL;
	a->ret = drdns_axfr_fetch(&o, &rrs, a->err, sizeof(a->err));
	if (a->ret == 0) {
		a->serial = ldns_rdf2native_int32(ldns_rr_rdf(ldns_rr_list_rr(rrs, 0), 2));
		a->records = ldns_rr_list_rr_count(rrs);
		ldns_rr_list_deep_free(rrs);
	}
}

static void dr_axfr_after(uv_work_t *w, int status)
{
	struct dr_axfr *a = w->data;
	(void)status;
	a->running = false;
	a->done = true;
	/* "ns1 transferred": it now serves what drdns gave it */
	if (a->ret == 0 && a->s->asking)
		drdns_server_set_zones(a->s->ns1, set_with_serial(a->s, a->serial));
}

static void dr_axfr_start(struct sandbox *s, struct dr_axfr *a)
{
	memset(a, 0, sizeof(*a));
	a->s = s;
	a->work.data = a;
	a->running = true;
	assert_int_equal(uv_queue_work(&s->loop, &a->work, dr_axfr_work, dr_axfr_after), 0);
}

/* "ns1 asks only drdns" (PowerDNS asks the NOTIFY's sender; a BIND that lists
 * drdns first and missed the campus NOTIFY): once notified again, it transfers
 * from drdns, never from the master. */
static void ask_cb(uv_timer_t *t)
{
	struct sandbox *s = t->data;
	struct drdns_server_stats st;
	drdns_server_stats(s->ns1, &st);
	if (st.notify_received <= s->ask_base || s->ask_p->running || s->ask_p->done)
		return;
	uv_timer_stop(t);
	dr_axfr_start(s, s->ask_p);
}

static void simulate_asking_drdns(struct sandbox *s)
{
	struct drdns_server_stats st;
	drdns_server_stats(s->ns1, &st);
	s->ask_base = st.notify_received;
	s->asking = true;
	s->ask_p = calloc(1, sizeof(*s->ask_p));
	assert_non_null(s->ask_p);
	uv_timer_init(&s->loop, &s->ask_timer);
	s->ask_timer.data = s;
	uv_timer_start(&s->ask_timer, ask_cb, 5, 5);
}

static char *state_json(struct sandbox *s)
{
	char *p = path_in(s, "state/state.json");
	char *text = NULL;
	assert_int_equal(drdns_read_file(p, &text, NULL), 0);
	free(p);
	return text;
}

/* Promoted (the DR serial CAMPUS_SERIAL + 1 served), the master back and
 * ahead at CAMPUS_SERIAL + 10 per its SOA; state.json as it was. */
static void assert_still_promoted(struct sandbox *s, const char *state_before, size_t audit_before,
                                  const char *error_has)
{
	assert_true(s->ctx.state->promoted);
	assert_int_equal(served_serial(s->ctx.server), CAMPUS_SERIAL + 1);
	assert_null(drdns_server_handback_zones(s->ctx.server));
	assert_int_equal(gen_dirs(s), 1);
	char *now = state_json(s);
	assert_string_equal(now, state_before);
	free(now);
	json_t *audit = audit_lines(s);
	assert_int_equal(json_array_size(audit), audit_before + 1);
	json_t *last = json_array_get(audit, audit_before);
	assert_string_equal(json_string_value(json_object_get(last, "result")), "error");
	if (error_has)
		assert_non_null(
		    strstr(json_string_value(json_object_get(last, "error")), error_has));
	json_decref(audit);
}

static size_t audit_count(struct sandbox *s)
{
	json_t *a = audit_lines(s);
	size_t n = json_array_size(a);
	json_decref(a);
	return n;
}

/* The watchdog's path: drdns_stepdown_start with the master's serial given. */
static json_t *stepdown(struct sandbox *s, double wait)
{
	json_t *who = json_pack("{s:s}", "watchdog", "test");
	struct drdns_zone_serial ms = {"example.edu.", CAMPUS_SERIAL + 10};
	struct drdns_stepdown_opts o = {.action = "stepdown",
	                                .reason = "unit test: step-down",
	                                .who = who,
	                                .master_serials = &ms,
	                                .n_serials = 1,
	                                .wait = wait};
	struct result r = {0};
	assert_int_equal(drdns_stepdown_start(&s->ctx, &o, on_done, &r), 0);
	assert_false(r.done); /* never before returning */
	assert_true(s->ctx.busy);
	json_decref(who);
	run_until(s, &r);
	assert_false(s->ctx.busy);
	return r.reply;
}

static const char *reply_error(const json_t *reply)
{
	const char *e = json_string_value(json_object_get(reply, "error"));
	assert_non_null(e);
	return e;
}

/* ns1 asks only drdns: during the hand-back it transfers the campus copy from
 * drdns and converges; demote exits 0; the window closes (REFUSED again). */
static void test_handback_secondary_asking_drdns(void **state)
{
	struct sandbox *s = *state;
	if (!promoted_then_master_back(s, CAMPUS_SERIAL + 10))
		skip();
	/* dry run: fetched and checked, nothing changed */
	char *before = state_json(s);
	json_t *reply = demote(s, true, 1.0);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_OK);
	json_t *hz =
	    json_array_get(json_object_get(json_object_get(reply, "handback"), "zones"), 0);
	assert_true(json_is_true(json_object_get(hz, "ok")));
	assert_int_equal(json_integer_value(json_object_get(hz, "campus_serial")),
	                 CAMPUS_SERIAL + 10);
	json_decref(reply);
	assert_true(s->ctx.state->promoted);
	assert_int_equal(served_serial(s->ctx.server), CAMPUS_SERIAL + 1);
	char *after = state_json(s);
	assert_string_equal(before, after);
	free(before);
	free(after);

	simulate_asking_drdns(s);
	size_t n_audit = audit_count(s);
	reply = demote(s, false, 5.0);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_OK);
	/* what ns1 got from drdns was the campus copy */
	assert_true(s->ask_p->done);
	assert_int_equal(s->ask_p->ret, 0);
	assert_int_equal(s->ask_p->serial, CAMPUS_SERIAL + 10);
	assert_int_equal(s->ask_p->records, 7);
	json_t *sec = json_array_get(json_object_get(reply, "secondaries"), 0);
	assert_true(json_is_true(json_object_get(sec, "converged")));
	assert_true(json_is_number(json_object_get(sec, "seconds")));
	json_t *hb = json_object_get(reply, "handback");
	assert_string_equal(json_string_value(json_object_get(hb, "closed")),
	                    "every secondary converged");
	json_decref(reply);
	/* the window is closed: standby, nothing served, an AXFR is REFUSED */
	assert_false(s->ctx.state->promoted);
	assert_null(drdns_server_zones(s->ctx.server));
	assert_null(drdns_server_handback_zones(s->ctx.server));
	assert_true(s->ctx.handback_until == 0);
	struct dr_axfr a;
	s->asking = false;
	dr_axfr_start(s, &a);
	while (!a.done)
		uv_run(&s->loop, UV_RUN_ONCE);
	assert_int_not_equal(a.ret, 0);
	assert_string_equal(a.err, "REFUSED");
	json_t *audit = audit_lines(s);
	assert_int_equal(json_array_size(audit), n_audit + 2); /* committed, done */
	json_t *last = json_array_get(audit, n_audit + 1);
	assert_string_equal(json_string_value(json_object_get(last, "result")), "done");
	assert_true(json_is_object(json_object_get(last, "handback")));
	json_decref(audit);
}

/* "ns1 asks only drdns" through a drill: it takes the drill serials from
 * drdns's drill zone, and in the release step transfers from drdns again once
 * drdns serves the hand-back copy; never from the master. */
static void drill_ask_cb(uv_timer_t *t)
{
	struct sandbox *s = t->data;
	uint32_t mine = ns1_serial(s);
	const struct drdns_zoneset *d = drdns_server_drill_zones(s->ctx.server);
	if (d && drdns_serial_gt(drdns_zone_serial(d->zones[0]), mine))
		drdns_server_set_zones(s->ns1, set_with_serial(s, drdns_zone_serial(d->zones[0])));
	else if (!d && drdns_server_handback_zones(s->ctx.server) && !s->ask_p->running &&
	         !s->ask_p->done)
		dr_axfr_start(s, s->ask_p);
}

/* The drill's release step relays the campus copy: ns1, asking only drdns,
 * gets it from drdns and converges; then the window closes (REFUSED). */
static void test_drill_release_relay(void **state)
{
	struct sandbox *s = *state;
	if (!start_master(s, CAMPUS_SERIAL))
		skip();
	s->asking = true;
	s->ask_p = calloc(1, sizeof(*s->ask_p));
	assert_non_null(s->ask_p);
	uv_timer_init(&s->loop, &s->ask_timer);
	s->ask_timer.data = s;
	uv_timer_start(&s->ask_timer, drill_ask_cb, 5, 5);
	json_t *reply = drill(s, "example.edu", false, 5.0);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_OK);
	/* what ns1 got from drdns in the release step was the campus copy */
	assert_true(s->ask_p->done);
	assert_int_equal(s->ask_p->ret, 0);
	assert_int_equal(s->ask_p->serial, CAMPUS_SERIAL);
	assert_int_equal(s->ask_p->records, 7);
	assert_int_equal(ns1_serial(s), CAMPUS_SERIAL);
	json_t *sec = json_array_get(json_object_get(reply, "secondaries"), 0);
	assert_true(json_is_true(json_object_get(sec, "ok")));
	json_t *rel = json_object_get(reply, "release");
	assert_true(json_is_true(json_object_get(rel, "relay")));
	json_t *copy = json_object_get(rel, "copy");
	assert_true(json_is_true(json_object_get(copy, "ok")));
	assert_int_equal(json_integer_value(json_object_get(copy, "campus_serial")), CAMPUS_SERIAL);
	assert_non_null(strstr(json_string_value(json_object_get(reply, "message")),
	                       "through the hand-back relay"));
	json_decref(reply);
	/* the window is closed (drill() checked the slots): an AXFR is REFUSED */
	struct dr_axfr a;
	s->asking = false;
	dr_axfr_start(s, &a);
	while (!a.done)
		uv_run(&s->loop, UV_RUN_ONCE);
	assert_int_not_equal(a.ret, 0);
	assert_string_equal(a.err, "REFUSED");
	assert_nothing_changed(s);
}

/* The master refuses the release step's AXFR: drdns answers REFUSED at once
 * instead, ns1 goes back to the master by itself, and the drill passes,
 * saying that the relay was not used. */
static void test_drill_release_relay_refused(void **state)
{
	struct sandbox *s = *state;
	if (!start_master(s, CAMPUS_SERIAL))
		skip();
	s->master_conf.controller.n_allow_transfer = 0; /* REFUSED to drdns */
	simulate_following(s);
	json_t *reply = drill(s, "example.edu", false, 5.0);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_OK);
	assert_string_equal(json_string_value(json_object_get(reply, "verdict")), "pass");
	json_t *rel = json_object_get(reply, "release");
	assert_true(json_is_false(json_object_get(rel, "relay")));
	assert_non_null(strstr(json_string_value(json_object_get(rel, "detail")), "REFUSED"));
	assert_true(json_is_false(json_object_get(json_object_get(rel, "copy"), "ok")));
	assert_non_null(strstr(json_string_value(json_object_get(reply, "message")),
	                       "hand-back relay was not used"));
	size_t i;
	json_t *w;
	bool warned = false;
	json_array_foreach(json_object_get(reply, "warnings"), i, w)
	{
		if (strstr(json_string_value(w), "hand-back relay was not used"))
			warned = true;
	}
	assert_true(warned);
	json_decref(reply);
	assert_int_equal(ns1_serial(s), CAMPUS_SERIAL);
	assert_nothing_changed(s);
}

static void on_status_done(json_t *reply, void *arg)
{
	struct sandbox *s = arg;
	json_decref(s->window_status);
	s->window_status = reply;
}

/* While the window is open, status says so (role standby, handback zones). */
static void on_status_in_window(uv_timer_t *t)
{
	struct sandbox *s = t->data;
	if (!drdns_server_handback_zones(s->ctx.server) || s->window_status)
		return;
	uv_timer_stop(t);
	s->window_status = json_null();
	assert_int_equal(drdns_status_start(&s->ctx, on_status_done, s), 0);
}

static void test_handback_window_in_status(void **state)
{
	struct sandbox *s = *state;
	if (!promoted_then_master_back(s, CAMPUS_SERIAL + 10))
		skip();
	uv_timer_init(&s->loop, &s->status_timer);
	s->status_timer.data = s;
	s->status_timer_on = true;
	uv_timer_start(&s->status_timer, on_status_in_window, 1, 1);
	json_t *reply = demote(s, false, 3.0); /* ns1 never follows: the wait runs out */
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_PARTIAL);
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(reply, "handback"), "closed")),
	    "the wait ran out");
	json_decref(reply);
	while (!s->window_status || json_is_null(s->window_status))
		uv_run(&s->loop, UV_RUN_ONCE);
	assert_string_equal(json_string_value(json_object_get(s->window_status, "role")),
	                    "standby");
	json_t *hb = json_object_get(s->window_status, "handback");
	assert_true(json_is_object(hb));
	json_t *z = json_array_get(json_object_get(hb, "zones"), 0);
	assert_string_equal(json_string_value(json_object_get(z, "zone")), "example.edu.");
	assert_int_equal(json_integer_value(json_object_get(z, "serial")), CAMPUS_SERIAL + 10);
	assert_true(json_integer_value(json_object_get(hb, "until")) > 0);
	assert_null(drdns_server_handback_zones(s->ctx.server));
}

/* The campus copy is not above the DR serial (the master went back meanwhile;
 * the watchdog's path does not probe again): exit 1, nothing changed. */
static void test_handback_copy_not_above_dr(void **state)
{
	struct sandbox *s = *state;
	if (!promoted_then_master_back(s, CAMPUS_SERIAL + 1)) /* = the DR serial */
		skip();
	char *before = state_json(s);
	size_t n_audit = audit_count(s);
	json_t *reply = stepdown(s, 1.0);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_ERROR);
	assert_non_null(strstr(reply_error(reply), "example.edu.: the campus serial 2024010106 is "
	                                           "not above the DR serial 2024010106"));
	assert_non_null(strstr(reply_error(reply), "Nothing changed"));
	json_t *hz =
	    json_array_get(json_object_get(json_object_get(reply, "handback"), "zones"), 0);
	assert_false(json_is_true(json_object_get(hz, "ok")));
	assert_int_equal(json_integer_value(json_object_get(hz, "campus_serial")),
	                 CAMPUS_SERIAL + 1);
	json_decref(reply);
	assert_still_promoted(s, before, n_audit, "not above the DR serial");
	free(before);
}

/* The master refuses the transfer: demote exits 1, nothing changed. */
static void test_handback_transfer_refused(void **state)
{
	struct sandbox *s = *state;
	if (!promoted_then_master_back(s, CAMPUS_SERIAL + 10))
		skip();
	s->master_conf.controller.n_allow_transfer = 0; /* REFUSED from now on */
	char *before = state_json(s);
	size_t n_audit = audit_count(s);
	json_t *reply = demote(s, false, 1.0);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_ERROR);
	assert_non_null(strstr(reply_error(reply), "example.edu.: AXFR from 127.0.0.32"));
	assert_non_null(strstr(reply_error(reply), "failed: REFUSED"));
	json_decref(reply);
	assert_still_promoted(s, before, n_audit, "REFUSED");
	/* the dry run says the same and changes nothing either */
	reply = demote(s, true, 1.0);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_ERROR);
	json_decref(reply);
	assert_int_equal(audit_count(s), n_audit + 1);
	free(before);
}

/* The master accepts the connection and never answers: the transfer times out
 * after master.axfr_timeout; exit 1, nothing changed. */
static void test_handback_transfer_timeout(void **state)
{
	struct sandbox *s = *state;
	simulate_transfer(s);
	json_t *reply = promote(s, false, 2.0);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_OK);
	json_decref(reply);
	/* a TCP listener that never accepts: connect succeeds (backlog), no answer */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	struct sockaddr_in a;
	assert_int_equal(uv_ip4_addr("127.0.0.32", s->port_master, &a), 0);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(fd);
		skip();
	}
	assert_int_equal(listen(fd, 4), 0);
	s->conf->master.axfr_timeout = 0.3;
	char *before = state_json(s);
	size_t n_audit = audit_count(s);
	reply = stepdown(s, 1.0);
	close(fd);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_ERROR);
	assert_non_null(strstr(reply_error(reply), "timed out after 0.3 s"));
	json_decref(reply);
	assert_still_promoted(s, before, n_audit, "timed out");
	free(before);
}

/* The master takes transfers from the controller only when signed with key (it
 * lists the controller as a secondary with that key); its copy has extra
 * records so the transfer spans several messages (each one verified). */
static bool start_master_keyed(struct sandbox *s, uint32_t serial, struct drdns_tsig_key *key)
{
	if (!start_master(s, serial))
		return false;
	s->master_conf.controller.n_allow_transfer = 0;
	s->master_secs[0] = (struct drdns_secondary){
	    .name = "ns-dr.example.edu.", .address = "127.0.0.30", .port = 53, .key = key};
	s->master_conf.secondaries = s->master_secs;
	s->master_conf.n_secondaries = 1;
	struct drdns_zoneset *set = set_with_serial(s, serial);
	for (int i = 0; i < 3000; i++) {
		char text[128];
		snprintf(text, sizeof(text), "host%d.example.edu. 3600 IN TXT \"campus record %d\"",
		         i, i);
		ldns_rr *rr = NULL;
		assert_int_equal(ldns_rr_new_frm_str(&rr, text, 0, NULL, NULL), LDNS_STATUS_OK);
		assert_true(ldns_rr_list_push_rr(set->zones[0]->rrs, rr));
	}
	drdns_server_set_zones(s->master, set);
	return true;
}

static void on_closed(void *arg)
{
	*(bool *)arg = true;
}

static void close_master(struct sandbox *s)
{
	bool closed = false;
	drdns_server_close(s->master, on_closed, &closed);
	s->master = NULL;
	while (!closed)
		uv_run(&s->loop, UV_RUN_ONCE);
}

static struct drdns_tsig_key *load_test_key(void)
{
	char *p = NULL;
	assert_true(asprintf(&p, "%s/tsig-good.key", getenv("DRDNS_TEST_DATA")) > 0);
	struct drdns_tsig_key *k = NULL;
	struct drdns_diag diag = {0};
	assert_int_equal(drdns_tsig_key_load(p, &k, &diag), 0);
	drdns_diag_clear(&diag);
	free(p);
	return k;
}

static void promote_for_tsig(struct sandbox *s)
{
	simulate_transfer(s);
	json_t *reply = promote(s, false, 2.0);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_OK);
	json_decref(reply);
}

/* master.tsig_key is the master's key: the signed AXFR works, every message
 * verifies, the copy (3007 records) is relayed. */
static void test_handback_tsig(void **state)
{
	struct sandbox *s = *state;
	promote_for_tsig(s);
	struct drdns_tsig_key *key = load_test_key();
	if (!start_master_keyed(s, CAMPUS_SERIAL + 10, key)) {
		drdns_tsig_key_free(key);
		skip();
	}
	/* unsigned: the master refuses */
	json_t *reply = stepdown(s, 0.3);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_ERROR);
	assert_non_null(strstr(reply_error(reply), "(unsigned) failed: REFUSED"));
	json_decref(reply);
	assert_true(s->ctx.state->promoted);
	/* signed with the right key */
	s->conf->master.key = load_test_key();
	drdns_server_set_zones(s->ns1, set_with_serial(s, CAMPUS_SERIAL + 10)); /* follows */
	reply = stepdown(s, 2.0);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_OK);
	json_t *hz =
	    json_array_get(json_object_get(json_object_get(reply, "handback"), "zones"), 0);
	assert_true(json_is_true(json_object_get(hz, "ok")));
	assert_int_equal(json_integer_value(json_object_get(hz, "records")), 3007);
	json_decref(reply);
	assert_false(s->ctx.state->promoted);
	close_master(s); /* before its key goes */
	drdns_tsig_key_free(key);
}

/* master.tsig_key is a wrong key (same name, other secret): the master answers
 * NOTAUTH (BADSIG); exit 1, nothing changed. */
static void test_handback_tsig_wrong_key(void **state)
{
	struct sandbox *s = *state;
	promote_for_tsig(s);
	struct drdns_tsig_key *key = load_test_key();
	if (!start_master_keyed(s, CAMPUS_SERIAL + 10, key)) {
		drdns_tsig_key_free(key);
		skip();
	}
	struct drdns_tsig_key *wrong = load_test_key();
	free(wrong->secret);
	wrong->secret = strdup("c2VjcmV0LWtleS1mb3ItZHJkbnMtdW5pdC10ZXN0cw==");
	s->conf->master.key = wrong;
	char *before = state_json(s);
	size_t n_audit = audit_count(s);
	json_t *reply = stepdown(s, 0.3);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_ERROR);
	assert_non_null(strstr(reply_error(reply), "with TSIG key drdns-test."));
	assert_non_null(strstr(reply_error(reply), "NOTAUTH"));
	json_decref(reply);
	assert_still_promoted(s, before, n_audit, "NOTAUTH");
	free(before);
	close_master(s);
	drdns_tsig_key_free(key);
}

int main(void)
{
	srand((unsigned)getpid());
	const char *verbose = getenv("DRDNS_TEST_VERBOSE");
	drdns_log_init("test_promote", false,
	               verbose && *verbose ? DRDNS_LOG_DEBUG : DRDNS_LOG_ERR);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_refused_while_master_answers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_refused_while_master_refuses, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dry_run_changes_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_promote_then_repeat, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_not_converged_names_refused_transfer, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_not_converged_is_exit_3, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_serial_known_is_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_live_secondary_is_exit_3, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_invalid_zone_set, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_promote_signs, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_promote_bad_key_changes_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_promote_dry_run_shows_keys, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_continuity_same_keys, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_continuity_mismatch_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_continuity_would_unsign_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_continuity_unsigned, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_drill_preflight_dnssec_mismatch, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_commit_failure_changes_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_busy_is_audited, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_shutdown_during_probes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_status_standby, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_demote_standby_is_noop, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_demote_refused_master_behind, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_demote_two_step_plan, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_demote_master_ahead, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_demote_not_converged_is_exit_3, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_handback_secondary_asking_drdns, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_handback_window_in_status, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_handback_copy_not_above_dr, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_handback_transfer_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_handback_transfer_timeout, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_handback_tsig, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_handback_tsig_wrong_key, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_drill_refused_while_promoted, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_drill_busy, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_drill_preflight_only, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_drill_zone_not_in_set, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_drill_invalid_dr_set, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_drill_secondary_unreachable, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_drill_master_down, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_drill_secondary_behind, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_drill_release_not_followed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_drill_live_pass, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_drill_live_not_following, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_drill_resumes_cut_short, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_drill_release_relay, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_drill_release_relay_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_resign_refused_standby_or_busy, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_resign_signs_afresh, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_resign_dry_run_and_no_keys, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_resign_key_change_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_resign_refused_master_ahead, setup, teardown),
	    cmocka_unit_test(test_error_reply_invalid_utf8),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
