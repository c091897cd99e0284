/*
 * Unit tests for src/failover/check.c (drdnsctl check) and src/net/axfr.c,
 * on a real libuv loop.
 *
 * Every test builds a sandbox in its own mkdtemp directory (configuration,
 * zones-dr/) and runs on 127.0.0.x with random ports:
 *   127.0.0.51  the DR controller (controller.address: the AXFR source)
 *   127.0.0.52  the campus master: a drdns_server serving the campus zone
 *               set, allowing unsigned transfers from 127.0.0.51 only (or
 *               nothing listens: unreachable)
 * What is checked is the reply's contract (failover.h): exit codes, the DR
 * set's verdict, and per zone what the DR set leaves out; that done is never
 * called before drdns_check_start returns; that the op survives the
 * configuration being freed and the server closing under it (a reload, a
 * shutdown); and (valgrind, ASan) that nothing leaks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>
#include <ldns/ldns.h>
#include <uv.h>

#include "drdns/axfr.h"
#include "drdns/conf.h"
#include "drdns/ctl.h"
#include "drdns/diag.h"
#include "drdns/error.h"
#include "drdns/failover.h"
#include "drdns/fsutil.h"
#include "drdns/log.h"
#include "drdns/server.h"
#include "drdns/zone.h"

#define DR_ADDR        "127.0.0.51"
#define MASTER_ADDR    "127.0.0.52"
#define CAMPUS_SERIAL  2024010105u
#define CAMPUS_RECORDS 11 /* SOA + 10 */
#define DR_RECORDS     8  /* SOA + 7 */

static const char *DR_ZONE = "$ORIGIN example.edu.\n"
                             "$TTL 3600\n"
                             "@ IN SOA ns0.example.net. hostmaster.example.edu. 2024010100 "
                             "3600 600 1209600 3600\n"
                             "@ IN NS ns-dr\n"
                             "@ IN NS ns1\n"
                             "ns-dr IN A 192.0.2.53\n"
                             "ns1 IN A 127.0.0.53\n"
                             "www IN A 192.0.2.80\n"
                             "MAIL IN A 192.0.2.25\n"
                             "@ 300 IN MX 10 mail\n";

static const char *CAMPUS_ZONE = "$ORIGIN example.edu.\n"
                                 "$TTL 86400\n"
                                 "@ IN SOA ns0.example.net. hostmaster.example.edu. 2024010105 "
                                 "3600 600 1209600 3600\n"
                                 "@ IN NS ns0.example.net.\n"
                                 "@ IN NS ns1\n"
                                 "ns1 IN A 127.0.0.53\n"
                                 "www IN A 192.0.2.80\n"
                                 "www IN A 192.0.2.81\n"
                                 "www IN AAAA 2001:db8::80\n"
                                 "mail IN A 192.0.2.25\n"
                                 "@ IN MX 10 MAIL.example.edu.\n"
                                 "intranet IN A 192.0.2.90\n"
                                 "intranet IN TXT \"staff only\"\n";

/* A second DR zone the campus master does not serve (it answers REFUSED). */
static const char *OTHER_ZONE = "$ORIGIN other.test.\n"
                                "$TTL 600\n"
                                "@ IN SOA ns-dr.example.edu. hostmaster.other.test. 1 3600 600 "
                                "1209600 600\n"
                                "@ IN NS ns-dr.example.edu.\n"
                                "@ IN NS ns1.example.edu.\n";

struct sandbox {
	char *dir;
	uv_loop_t loop;
	struct drdns_conf *conf;
	struct drdns_ctx ctx;
	struct drdns_conf master_conf;
	char *allow[1];
	struct drdns_server *master; /* or NULL: nothing listens */
	uint16_t port_master;
};

struct result {
	bool done;
	bool started; /* drdns_check_start has returned */
	json_t *reply;
};

static char *path_in(const struct sandbox *s, const char *rel)
{
	char *p = NULL;
	assert_true(asprintf(&p, "%s/%s", s->dir, rel) > 0);
	return p;
}

static void write_in(const struct sandbox *s, const char *rel, const char *text)
{
	char *p = path_in(s, rel);
	assert_int_equal(drdns_write_atomic(p, text, strlen(text), 0644), 0);
	free(p);
}

static uint16_t random_port(void)
{
	return (uint16_t)(20000 + rand() % 40000);
}

/* The campus master, serving campus/ and allowing transfers to allow_from. */
static void start_master(struct sandbox *s, const char *allow_from)
{
	char *dir = path_in(s, "campus");
	assert_int_equal(drdns_mkdir_p(dir, 0755), 0);
	write_in(s, "campus/example.edu.zone", CAMPUS_ZONE);
	struct drdns_diag diag = {0};
	struct drdns_zoneset *set = NULL;
	assert_int_equal(drdns_zoneset_load_dir(dir, &set, &diag), 0);
	drdns_diag_clear(&diag);
	free(dir);

	memset(&s->master_conf, 0, sizeof(s->master_conf));
	s->master_conf.controller.address = MASTER_ADDR;
	s->allow[0] = (char *)allow_from;
	s->master_conf.controller.allow_transfer = s->allow;
	s->master_conf.controller.n_allow_transfer = 1;
	for (int tries = 0; tries < 50 && !s->master; tries++) {
		s->port_master = random_port();
		s->master_conf.controller.port = s->port_master;
		if (drdns_server_new(&s->loop, &s->master_conf, &s->master) < 0)
			s->master = NULL;
	}
	assert_non_null(s->master);
	drdns_server_set_zones(s->master, set);
}

static void load_conf(struct sandbox *s)
{
	char text[2048];
	snprintf(text, sizeof(text),
	         "controller = { id = \"test\"; address = \"" DR_ADDR "\"; port = %u;\n"
	         "  ns_name = \"ns-dr.example.edu.\"; control_socket = \"run/control.sock\";\n"
	         "  state_dir = \"state\"; };\n"
	         "master = { address = \"" MASTER_ADDR "\"; port = %u; };\n"
	         "secondaries = ( { name = \"ns1.example.edu.\"; address = \"127.0.0.53\"; "
	         "port = %u; } );\n"
	         "zones = { directory = \"zones-dr\"; dr_ttl = 600; min_ns = 1; };\n",
	         random_port(), s->port_master, random_port());
	write_in(s, "drdns.conf", text);
	struct drdns_diag diag = {0};
	char *cp = path_in(s, "drdns.conf");
	int rc = drdns_conf_load(cp, &s->conf, &diag);
	for (size_t i = 0; rc && i < diag.n; i++)
		print_message("  %s\n", diag.msgs[i]);
	assert_int_equal(rc, 0);
	drdns_diag_clear(&diag);
	free(cp);
	s->ctx.loop = &s->loop;
	s->ctx.conf = s->conf;
}

/* The sandbox with the DR set; the master and the configuration come later,
 * from each test (the configuration names the master's port). */
static int setup(void **state)
{
	struct sandbox *s = calloc(1, sizeof(*s));
	assert_non_null(s);
	s->dir = strdup("/tmp/drdns-test-check-XXXXXX");
	assert_non_null(mkdtemp(s->dir));
	assert_int_equal(uv_loop_init(&s->loop), 0);
	char *zd = path_in(s, "zones-dr");
	assert_int_equal(drdns_mkdir_p(zd, 0755), 0);
	free(zd);
	write_in(s, "zones-dr/example.edu.zone", DR_ZONE);
	write_in(s, "zones-dr/other.test.zone", OTHER_ZONE);
	*state = s;
	return 0;
}

static int teardown(void **state)
{
	struct sandbox *s = *state;
	drdns_server_close(s->master, NULL, NULL);
	drdns_server_close(s->ctx.server, NULL, NULL);
	uv_run(&s->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&s->loop), 0);
	drdns_conf_free(s->conf);
	drdns_rm_rf(s->dir);
	free(s->dir);
	free(s);
	return 0;
}

static void on_done(json_t *reply, void *arg)
{
	struct result *r = arg;
	assert_true(r->started); /* never before drdns_check_start returned */
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

static void start_check(struct sandbox *s, struct result *r)
{
	memset(r, 0, sizeof(*r));
	assert_int_equal(drdns_check_start(&s->ctx, on_done, r), 0);
	r->started = true;
	assert_false(r->done);
}

static json_t *wait_check(struct sandbox *s, struct result *r)
{
	while (!r->done)
		uv_run(&s->loop, UV_RUN_ONCE);
	assert_string_equal(json_string_value(json_object_get(r->reply, "command")), "check");
	assert_true(json_is_string(json_object_get(r->reply, "message")));
	return r->reply;
}

static json_t *check(struct sandbox *s)
{
	struct result r;
	start_check(s, &r);
	return wait_check(s, &r);
}

static const json_t *zone_row(const json_t *reply, size_t i)
{
	const json_t *zones = json_object_get(reply, "zones");
	assert_true(json_is_array(zones));
	assert_true(i < json_array_size(zones));
	return json_array_get(zones, i);
}

static json_int_t jint(const json_t *o, const char *path)
{
	char key[64];
	const char *dot = strchr(path, '.');
	if (dot) {
		snprintf(key, sizeof(key), "%.*s", (int)(dot - path), path);
		return jint(json_object_get(o, key), dot + 1);
	}
	const json_t *v = json_object_get(o, path);
	if (!json_is_integer(v))
		fail_msg("%s is not an integer", path);
	return json_integer_value(v);
}

static void assert_strings(const json_t *arr, const char *const *want)
{
	size_t n = 0;
	while (want[n])
		n++;
	assert_int_equal(json_array_size(arr), n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(json_string_value(json_array_get(arr, i)), want[i]);
}

static unsigned long master_axfrs(const struct sandbox *s)
{
	struct drdns_server_stats st;
	drdns_server_stats(s->master, &st);
	return st.axfr;
}

/* ---- the tests ---- */

static void test_valid_set_with_left_out_records(void **state)
{
	struct sandbox *s = *state;
	start_master(s, DR_ADDR);
	load_conf(s);
	json_t *reply = check(s);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_OK);
	const json_t *set = json_object_get(reply, "dr_set");
	assert_true(json_is_true(json_object_get(set, "valid")));
	assert_string_equal(json_string_value(json_object_get(set, "directory")),
	                    s->conf->zones.directory);
	assert_int_equal(json_array_size(json_object_get(set, "errors")), 0);

	/* advisory: DR TTLs above dr_ttl 600; no "warning: " inside the list */
	const json_t *warnings = json_object_get(reply, "warnings");
	assert_true(json_array_size(warnings) >= 1);
	size_t i;
	const json_t *w;
	json_array_foreach(warnings, i, w)
	{
		assert_non_null(strstr(json_string_value(w), ": zone "));
		assert_null(strstr(json_string_value(w), "warning: "));
	}

	/* zones in name order: example.edu. fetched and compared */
	assert_int_equal(json_array_size(json_object_get(reply, "zones")), 2);
	const json_t *z = zone_row(reply, 0);
	assert_string_equal(json_string_value(json_object_get(z, "zone")), "example.edu.");
	assert_int_equal(jint(z, "records"), DR_RECORDS);
	assert_true(json_is_true(json_object_get(z, "publishes_self"))); /* lists ns-dr */
	const json_t *c = json_object_get(z, "campus");
	assert_true(json_is_true(json_object_get(c, "fetched")));
	assert_null(json_object_get(c, "detail"));
	assert_int_equal(jint(c, "serial"), CAMPUS_SERIAL);
	assert_int_equal(jint(c, "records"), CAMPUS_RECORDS);
	assert_int_equal(jint(c, "left_out.names"), 1);
	assert_int_equal(jint(c, "left_out.rrsets"), 3);
	assert_int_equal(jint(c, "left_out.records"), 5);
	assert_strings(json_object_get(json_object_get(c, "left_out"), "examples"),
	               (const char *const[]){"example.edu. NS", "intranet.example.edu. A",
	                                     "intranet.example.edu. TXT", "www.example.edu. A",
	                                     "www.example.edu. AAAA", NULL});
	assert_int_equal(jint(c, "dr_only.names"), 1);
	assert_int_equal(jint(c, "dr_only.rrsets"), 1);
	assert_int_equal(jint(c, "dr_only.records"), 2);
	assert_strings(json_object_get(json_object_get(c, "dr_only"), "examples"),
	               (const char *const[]){"example.edu. NS", "ns-dr.example.edu. A", NULL});

	/* other.test.: the master refuses it; reported, not an error */
	z = zone_row(reply, 1);
	assert_string_equal(json_string_value(json_object_get(z, "zone")), "other.test.");
	c = json_object_get(z, "campus");
	assert_true(json_is_false(json_object_get(c, "fetched")));
	assert_non_null(strstr(json_string_value(json_object_get(c, "detail")), "REFUSED"));
	assert_true(json_is_null(json_object_get(c, "serial")));
	assert_true(json_is_null(json_object_get(c, "left_out")));
	assert_int_equal(master_axfrs(s), 1);
	json_decref(reply);

	/* again: nothing kept between checks */
	reply = check(s);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_OK);
	assert_int_equal(jint(json_object_get(zone_row(reply, 0), "campus"), "left_out.records"),
	                 5);
	json_decref(reply);
}

/* The campus ACL does not allow this host: REFUSED, reported, exit 0. */
static void test_master_refuses_transfer(void **state)
{
	struct sandbox *s = *state;
	start_master(s, "127.0.0.99");
	load_conf(s);
	json_t *reply = check(s);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_OK);
	const json_t *c = json_object_get(zone_row(reply, 0), "campus");
	assert_true(json_is_false(json_object_get(c, "fetched")));
	const char *detail = json_string_value(json_object_get(c, "detail"));
	assert_non_null(strstr(detail, "REFUSED"));
	assert_non_null(strstr(detail, "source " DR_ADDR));
	json_decref(reply);
}

static void test_master_unreachable(void **state)
{
	struct sandbox *s = *state;
	s->port_master = random_port(); /* nothing listens on MASTER_ADDR */
	load_conf(s);
	json_t *reply = check(s);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_OK);
	assert_true(json_is_true(json_object_get(json_object_get(reply, "dr_set"), "valid")));
	for (size_t i = 0; i < 2; i++) {
		const json_t *z = zone_row(reply, i);
		assert_int_equal(jint(z, "records"), i == 0 ? DR_RECORDS : 3);
		const json_t *c = json_object_get(z, "campus");
		assert_true(json_is_false(json_object_get(c, "fetched")));
		assert_non_null(
		    strstr(json_string_value(json_object_get(c, "detail")), "Connection refused"));
	}
	json_decref(reply);
}

static void test_invalid_set_is_exit_1(void **state)
{
	struct sandbox *s = *state;
	start_master(s, DR_ADDR);
	load_conf(s);
	write_in(s, "zones-dr/broken.test.zone",
	         "$ORIGIN broken.test.\n$TTL 600\n"
	         "@ IN SOA ns-dr.example.edu. h.broken.test. 1 3600 600 1209600 600\n"
	         "@ IN NS ns-dr.example.edu.\n"
	         "www IN A not-an-address\n");
	json_t *reply = check(s);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_ERROR);
	const json_t *set = json_object_get(reply, "dr_set");
	assert_true(json_is_false(json_object_get(set, "valid")));
	const json_t *errors = json_object_get(set, "errors");
	assert_true(json_array_size(errors) >= 1);
	assert_non_null(strstr(json_string_value(json_array_get(errors, 0)), "broken.test.zone:5"));
	assert_int_equal(json_array_size(json_object_get(reply, "zones")), 0);
	assert_int_equal(json_array_size(json_object_get(reply, "warnings")), 0);
	assert_int_equal(master_axfrs(s), 0); /* no transfer for an invalid set */
	json_decref(reply);

	/* cannot be promoted: the zone lists ns_name, inside the zone, without glue */
	char *p = path_in(s, "zones-dr/broken.test.zone");
	unlink(p);
	free(p);
	write_in(s, "zones-dr/example.edu.zone",
	         "$ORIGIN example.edu.\n$TTL 600\n"
	         "@ IN SOA ns0.example.net. h.example.edu. 1 3600 600 1209600 600\n"
	         "@ IN NS ns-dr\n@ IN NS ns1\nns1 IN A 127.0.0.53\n");
	reply = check(s);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_ERROR);
	errors = json_object_get(json_object_get(reply, "dr_set"), "errors");
	assert_true(json_array_size(errors) >= 1);
	assert_non_null(strstr(json_string_value(json_array_get(errors, 0)), "ns-dr.example.edu."));
	assert_int_equal(master_axfrs(s), 0);
	json_decref(reply);

	/* not listed: no glue needed, valid, and the reply says drdnsd is not a public
	 * nameserver of the zone (MNAME only) */
	write_in(s, "zones-dr/example.edu.zone",
	         "$ORIGIN example.edu.\n$TTL 600\n"
	         "@ IN SOA ns0.example.net. h.example.edu. 1 3600 600 1209600 600\n"
	         "@ IN NS ns1\nns1 IN A 127.0.0.53\n");
	reply = check(s);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_OK);
	const json_t *z = zone_row(reply, 0);
	assert_string_equal(json_string_value(json_object_get(z, "zone")), "example.edu.");
	assert_true(json_is_false(json_object_get(z, "publishes_self")));
	assert_true(json_is_true(json_object_get(zone_row(reply, 1), "publishes_self")));
	json_decref(reply);
}

/* A master that accepts connections and never answers; returns the socket. */
static int stalled_master(uint16_t *port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	inet_pton(AF_INET, MASTER_ADDR, &sa.sin_addr);
	*port = 0;
	for (int tries = 0; tries < 50 && !*port; tries++) {
		sa.sin_port = htons(random_port());
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			*port = ntohs(sa.sin_port);
	}
	assert_true(*port != 0);
	assert_int_equal(listen(fd, 8), 0); /* the kernel completes the handshakes */
	return fd;
}

/* One check at a time; the op owns copies of everything (a reload frees the
 * old configuration only at exit, but the op must not even need that). */
static void test_busy_and_conf_freed_underneath(void **state)
{
	struct sandbox *s = *state;
	start_master(s, DR_ADDR);
	load_conf(s);
	struct result r;
	start_check(s, &r);
	struct result other = {0};
	assert_int_equal(drdns_check_start(&s->ctx, on_done, &other), DRDNS_EBUSY);
	drdns_conf_free(s->conf);
	s->conf = NULL;
	s->ctx.conf = NULL;
	json_t *reply = wait_check(s, &r);
	assert_false(other.done);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_OK);
	assert_true(json_is_true(
	    json_object_get(json_object_get(zone_row(reply, 0), "campus"), "fetched")));
	json_decref(reply);
}

/* drdnsd's SIGTERM closes the server (ctx->server = NULL) while a transfer is
 * stuck: the check winds down at once, it does not hold the exit for the
 * transfer's 10 s. */
static void test_shutdown_cancels_a_stuck_transfer(void **state)
{
	struct sandbox *s = *state;
	int fd = stalled_master(&s->port_master);
	load_conf(s);
	assert_int_equal(drdns_server_new(&s->loop, s->conf, &s->ctx.server), 0);
	struct result r;
	start_check(s, &r);
	usleep(300 * 1000); /* the job is in the first transfer now */
	assert_false(r.done);
	drdns_server_close(s->ctx.server, NULL, NULL);
	s->ctx.server = NULL;
	uint64_t t0 = uv_hrtime();
	json_t *reply = wait_check(s, &r);
	double took = (double)(uv_hrtime() - t0) / 1e9;
	assert_true(took < 2.0);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_OK);
	const json_t *c = json_object_get(zone_row(reply, 0), "campus");
	assert_true(json_is_false(json_object_get(c, "fetched")));
	const char *detail = json_string_value(json_object_get(c, "detail"));
	/* cut short in the transfer, or (a slow machine) before it began */
	assert_true(strstr(detail, "failed: cancelled") || strstr(detail, "drdnsd is stopping"));
	c = json_object_get(zone_row(reply, 1), "campus");
	assert_string_equal(json_string_value(json_object_get(c, "detail")),
	                    "not fetched: drdnsd is stopping");
	json_decref(reply);
	close(fd);

	/* a check started afterwards, without a server: nothing to watch */
	reply = check(s);
	assert_int_equal(reply_exit(reply), DRDNS_EXIT_OK);
	json_decref(reply);
}

/* ---- the AXFR client on its own ---- */

/* A blocking fetch on a second thread while this thread runs the master's loop. */
struct fetch {
	struct drdns_axfr_opts o;
	ldns_rr_list *rrs;
	int ret;
	char err[200];
	uv_async_t async;
	bool done;
};

static void fetch_thread(void *arg)
{
	struct fetch *f = arg;
	f->ret = drdns_axfr_fetch(&f->o, &f->rrs, f->err, sizeof(f->err));
	uv_async_send(&f->async);
}

static void on_fetch_closed(uv_handle_t *h)
{
	((struct fetch *)h->data)->done = true;
}

static void on_fetched(uv_async_t *a)
{
	uv_close((uv_handle_t *)a, on_fetch_closed);
}

static void fetch_beside_loop(struct sandbox *s, struct fetch *f)
{
	assert_int_equal(uv_async_init(&s->loop, &f->async, on_fetched), 0);
	f->async.data = f;
	uv_thread_t t;
	assert_int_equal(uv_thread_create(&t, fetch_thread, f), 0);
	while (!f->done)
		uv_run(&s->loop, UV_RUN_ONCE);
	uv_thread_join(&t);
}

static void test_axfr_fetch(void **state)
{
	struct sandbox *s = *state;
	start_master(s, DR_ADDR);
	struct fetch f = {.o = {.zone = "EXAMPLE.edu", /* any case, trailing dot optional */
	                        .address = MASTER_ADDR,
	                        .port = s->port_master,
	                        .source = DR_ADDR,
	                        .timeout = 5}};
	fetch_beside_loop(s, &f);
	assert_int_equal(f.ret, 0);
	assert_int_equal(ldns_rr_list_rr_count(f.rrs), CAMPUS_RECORDS);
	size_t soas = 0;
	for (size_t i = 0; i < ldns_rr_list_rr_count(f.rrs); i++)
		soas += ldns_rr_get_type(ldns_rr_list_rr(f.rrs, i)) == LDNS_RR_TYPE_SOA;
	assert_int_equal(soas, 1); /* the closing SOA is dropped */
	const ldns_rr *soa = ldns_rr_list_rr(f.rrs, 0);
	assert_int_equal(ldns_rr_get_type(soa), LDNS_RR_TYPE_SOA);
	assert_int_equal(ldns_rdf2native_int32(ldns_rr_rdf(soa, 2)), CAMPUS_SERIAL);
	ldns_rr_list_deep_free(f.rrs);

	/* a zone the master does not serve */
	struct fetch g = {.o = f.o};
	g.o.zone = "other.test.";
	fetch_beside_loop(s, &g);
	assert_int_equal(g.ret, DRDNS_EPROTO);
	assert_string_equal(g.err, "REFUSED");
	assert_null(g.rrs);
}

/* A master that accepts the connection and never answers: the deadline holds. */
static void test_axfr_timeout_and_bad_input(void **state)
{
	(void)state;
	uint16_t port;
	int fd = stalled_master(&port);
	struct drdns_axfr_opts o = {
	    .zone = "example.edu.", .address = MASTER_ADDR, .port = port, .timeout = 0.3};
	ldns_rr_list *rrs = NULL;
	char err[200] = "";
	uint64_t t0 = uv_hrtime();
	assert_int_equal(drdns_axfr_fetch(&o, &rrs, err, sizeof(err)), DRDNS_ETIMEOUT);
	double took = (double)(uv_hrtime() - t0) / 1e9;
	assert_true(took >= 0.29 && took < 3.0);
	assert_string_equal(err, "timed out after 0.3 s");
	assert_null(rrs);
	close(fd);

	o.source = "not-an-address";
	assert_int_equal(drdns_axfr_fetch(&o, &rrs, err, sizeof(err)), DRDNS_EINVAL);
	assert_non_null(strstr(err, "not-an-address"));
	o.source = "::1";
	assert_int_equal(drdns_axfr_fetch(&o, &rrs, err, sizeof(err)), DRDNS_EINVAL);
	assert_non_null(strstr(err, "address family"));
	o.source = NULL;
	o.timeout = 0;
	assert_int_equal(drdns_axfr_fetch(&o, &rrs, err, sizeof(err)), DRDNS_EINVAL);
	assert_null(rrs);
}

int main(void)
{
	srand((unsigned)getpid());
	drdns_log_init("test_check", false, DRDNS_LOG_ERR);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_valid_set_with_left_out_records, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_master_refuses_transfer, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_master_unreachable, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_invalid_set_is_exit_1, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_busy_and_conf_freed_underneath, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_shutdown_cancels_a_stuck_transfer, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_axfr_fetch, setup, teardown),
	    cmocka_unit_test(test_axfr_timeout_and_bad_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
