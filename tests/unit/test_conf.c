/*
 * Unit tests for the configuration loader (src/conf/conf.c).
 *
 * Fixtures are tests/unit/data/conf-*.conf (found through DRDNS_TEST_DATA).
 * Each bad fixture breaks one rule, or several to show that every problem is
 * reported; the tests check the error code, that each message names the
 * right "file:LINE:", and what it says.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "drdns/conf.h"
#include "drdns/diag.h"
#include "drdns/error.h"
#include "drdns/tsig.h"
#include "drdns_config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *data_dir(void)
{
	const char *d = getenv("DRDNS_TEST_DATA");
	return d ? d : "tests/unit/data";
}

static char *data_path(const char *name)
{
	char *p = NULL;
	assert_true(asprintf(&p, "%s/%s", data_dir(), name) > 0);
	return p;
}

/* Load a fixture; the diag keeps its messages for the assertions. */
static int load(const char *name, struct drdns_conf **conf, struct drdns_diag *diag)
{
	char *path = data_path(name);
	int rc = drdns_conf_load(path, conf, diag);
	for (size_t i = 0; i < diag->n; i++)
		fprintf(stderr, "  | %s\n", diag->msgs[i]);
	free(path);
	return rc;
}

/* The message located at file:line that contains text, or fail. */
static void expect_msg(const struct drdns_diag *d, const char *file, unsigned line,
                       const char *text)
{
	char loc[256];
	snprintf(loc, sizeof(loc), "%s:%u: ", file, line);
	for (size_t i = 0; i < d->n; i++) {
		const char *at = strstr(d->msgs[i], loc);
		/* the location is the prefix (after the directory part of the path) */
		if (at && (at == d->msgs[i] || at[-1] == '/') && strstr(d->msgs[i], text))
			return;
	}
	fail_msg("no message \"%s...%s\" among %zu", loc, text, d->n);
}

/* Expect a failed load with exactly n_errors errors. */
static struct drdns_diag expect_invalid(const char *name, size_t n_errors)
{
	struct drdns_diag d = {0};
	struct drdns_conf *conf = (struct drdns_conf *)0x1;
	assert_int_equal(load(name, &conf, &d), DRDNS_ECONF);
	assert_null(conf);
	assert_int_equal(d.n_errors, n_errors);
	return d;
}

static void test_good(void **state)
{
	(void)state;
	struct drdns_diag d = {0};
	struct drdns_conf *c = NULL;
	assert_int_equal(load("conf-good.conf", &c, &d), 0);
	assert_non_null(c);
	assert_int_equal(d.n, 0);

	char *dir = realpath(data_dir(), NULL);
	assert_non_null(dir);
	char buf[PATH_MAX + 64];

	assert_true(c->path[0] == '/');
	assert_non_null(strstr(c->path, "conf-good.conf"));
	assert_string_equal(c->controller.id, "dr-test");
	assert_string_equal(c->controller.address, "192.0.2.53");
	assert_int_equal(c->controller.port, 5300);
	assert_string_equal(c->controller.ns_name, "ns-dr.example.edu.");
	/* relative paths are taken from the configuration's directory */
	assert_true(c->controller.control_socket[0] == '/');
	snprintf(buf, sizeof(buf), "%s", c->controller.control_socket);
	assert_non_null(strstr(buf, "/conf-run/control.sock"));
	assert_true(c->controller.state_dir[0] == '/');
	assert_non_null(strstr(c->controller.state_dir, "conf-state"));
	assert_non_null(strstr(c->controller.audit_log, "conf-state/audit.log"));
	assert_non_null(strstr(c->controller.pid_file, "conf-run/drdnsd.pid"));
	assert_int_equal(c->controller.n_allow_transfer, 4);
	assert_string_equal(c->controller.allow_transfer[0], "192.0.2.60");
	assert_string_equal(c->controller.allow_transfer[1], "2001:db8::60");
	assert_string_equal(c->controller.allow_transfer[2], "198.51.100.128/25");
	assert_string_equal(c->controller.allow_transfer[3], "2001:db8:60::/48");

	assert_string_equal(c->master.address, "198.51.100.10");
	assert_int_equal(c->master.port, 53);
	assert_true(c->master.interval == 2.0);
	assert_true(c->master.timeout == 0.75);
	assert_int_equal(c->master.fail_after, 5);
	assert_non_null(strstr(c->master.tsig_key_file, "/conf-keys/ns2.key"));
	assert_non_null(c->master.key);
	assert_string_equal(c->master.key->name, "drdns-ns2.");
	assert_true(c->master.axfr_timeout == 30.0);

	assert_int_equal(c->n_secondaries, 3);
	assert_string_equal(c->secondaries[0].name, "ns1.example.edu.");
	assert_string_equal(c->secondaries[0].address, "198.51.100.11");
	assert_int_equal(c->secondaries[0].port, 53);
	assert_null(c->secondaries[0].tsig_key_file);
	assert_null(c->secondaries[0].key);
	assert_int_equal(c->secondaries[0].n_transfer_sources, 2);
	assert_string_equal(c->secondaries[0].transfer_sources[0], "198.51.100.111");
	assert_string_equal(c->secondaries[0].transfer_sources[1], "2001:db8:11::/64");
	assert_int_equal(c->secondaries[1].n_transfer_sources, 0);
	assert_string_equal(c->secondaries[1].name, "ns2.example.edu.");
	assert_int_equal(c->secondaries[1].port, 5353);
	assert_true(c->secondaries[1].tsig_key_file[0] == '/');
	assert_non_null(strstr(c->secondaries[1].tsig_key_file, "conf-keys/ns2.key"));
	assert_non_null(c->secondaries[1].key);
	assert_string_equal(c->secondaries[1].key->name, "drdns-ns2.");
	/* a name without the trailing dot is normalised */
	assert_string_equal(c->secondaries[2].name, "ns3.example.edu.");
	assert_string_equal(c->secondaries[2].address, "2001:db8:3::53");

	snprintf(buf, sizeof(buf), "%s/conf-zones", dir);
	char *zd = realpath(c->zones.directory, NULL);
	assert_non_null(zd);
	assert_string_equal(zd, buf);
	free(zd);
	assert_int_equal(c->zones.dr_ttl, 300);
	assert_int_equal(c->zones.min_ns, 3);

	assert_true(c->policy.auto_promote);
	assert_true(c->policy.probe_timeout == 1.5);
	assert_int_equal(c->policy.probe_attempts, 3);
	assert_true(c->policy.notify_timeout == 0.5);
	assert_int_equal(c->policy.notify_attempts, 7);
	assert_true(c->policy.poll_interval == 0.25);
	assert_true(c->policy.default_wait == 0.0);

	assert_ptr_equal(drdns_conf_find_secondary(c, "NS2.example.edu"), &c->secondaries[1]);
	assert_ptr_equal(drdns_conf_find_secondary(c, "ns3.example.edu."), &c->secondaries[2]);
	assert_null(drdns_conf_find_secondary(c, "ns9.example.edu."));
	assert_null(drdns_conf_find_secondary(c, "ns1.example"));

	free(dir);
	drdns_conf_free(c);
	drdns_diag_clear(&d);
}

static void test_defaults(void **state)
{
	(void)state;
	struct drdns_diag d = {0};
	struct drdns_conf *c = NULL;
	assert_int_equal(load("conf-minimal.conf", &c, &d), 0);
	assert_int_equal(d.n, 0);
	char host[256] = "";
	gethostname(host, sizeof(host) - 1);
	assert_string_equal(c->controller.id, host);
	assert_int_equal(c->controller.port, 53);
	assert_string_equal(c->controller.control_socket, DRDNS_DEFAULT_SOCKET);
	assert_string_equal(c->controller.state_dir, "/var/lib/drdns");
	assert_string_equal(c->controller.audit_log, "/var/lib/drdns/audit.log");
	assert_null(c->controller.pid_file);
	assert_int_equal(c->controller.n_allow_transfer, 0);
	assert_int_equal(c->master.port, 53);
	assert_true(c->master.interval == 1.0);
	assert_true(c->master.timeout == 0.5);
	assert_int_equal(c->master.fail_after, 3);
	assert_int_equal(c->n_secondaries, 1);
	assert_int_equal(c->secondaries[0].port, 53);
	assert_int_equal(c->zones.dr_ttl, 600);
	assert_int_equal(c->zones.min_ns, 2);
	assert_false(c->policy.auto_promote);
	assert_true(c->policy.probe_timeout == 1.0);
	assert_int_equal(c->policy.probe_attempts, 2);
	assert_true(c->policy.notify_timeout == 1.0);
	assert_int_equal(c->policy.notify_attempts, 5);
	assert_true(c->policy.poll_interval == 0.2);
	assert_true(c->policy.default_wait == 120.0);
	assert_int_equal(c->master.recover_after, 3);
	assert_null(c->master.tsig_key_file);
	assert_null(c->master.key);
	assert_true(c->master.axfr_timeout == 60.0);
	assert_true(c->policy.promote_after == 60.0);
	assert_true(c->policy.expire_margin == 3600.0);
	assert_true(c->policy.block_after_failover == 3600.0);
	assert_false(c->policy.auto_demote);
	assert_null(c->hooks.pre_promote);
	assert_null(c->hooks.on_alert);
	assert_true(c->hooks.timeout == 30.0);
	assert_null(c->metrics.address);
	assert_null(c->drill.zone);
	assert_null(c->dnssec.keys);
	assert_int_equal(c->dnssec.validity, 30 * 86400);
	assert_null(c->hooks.on_escalate);
	assert_true(c->alerts.repeat == 3600.0);
	assert_int_equal(c->alerts.escalate_after, 3);
	assert_int_equal(c->alerts.n_rrsig_thresholds, 3);
	assert_int_equal(c->alerts.rrsig_thresholds[0], 7 * 86400);
	assert_int_equal(c->alerts.rrsig_thresholds[2], 86400);
	assert_true(c->alerts.rrsig_scan_interval == 3600.0);
	assert_false(c->secondaries[0].on_campus);
	drdns_conf_free(c);
	drdns_diag_clear(&d);
}

/* The shipped example must be valid except for paths of the installed system. */
static void test_shipped_example(void **state)
{
	(void)state;
	struct drdns_diag d = {0};
	struct drdns_conf *c = NULL;
	char *path = data_path("../../../etc/drdns.conf.example");
	int rc = drdns_conf_load(path, &c, &d);
	for (size_t i = 0; i < d.n; i++) {
		fprintf(stderr, "  | %s\n", d.msgs[i]);
		assert_non_null(strstr(d.msgs[i], "zones.directory: '/etc/drdns/zones-dr'"));
	}
	if (rc == 0) {
		assert_string_equal(c->controller.ns_name, "ns-dr.example.edu.");
		assert_int_equal(c->n_secondaries, 4);
	} else {
		assert_int_equal(rc, DRDNS_ECONF);
	}
	drdns_conf_free(c);
	drdns_diag_clear(&d);
	free(path);
}

static void test_bad_type(void **state)
{
	(void)state;
	struct drdns_diag d = expect_invalid("conf-bad-type.conf", 4);
	expect_msg(&d, "conf-bad-type.conf", 5,
	           "controller.port: expected an integer, got a string");
	expect_msg(&d, "conf-bad-type.conf", 9, "master.interval: expected a number, got a string");
	expect_msg(&d, "conf-bad-type.conf", 10, "master.fail_after: expected an integer");
	expect_msg(&d, "conf-bad-type.conf", 19, "policy.auto_promote: expected true or false");
	drdns_diag_clear(&d);
}

static void test_out_of_range(void **state)
{
	(void)state;
	struct drdns_diag d = expect_invalid("conf-range.conf", 14);
	const char *f = "conf-range.conf";
	expect_msg(&d, f, 4, "controller.port: 70000 is out of range (1..65535)");
	expect_msg(&d, f, 9, "master.port: 0 is out of range");
	expect_msg(&d, f, 10, "master.interval: 0 is out of range");
	expect_msg(&d, f, 11, "master.timeout: -1 is out of range");
	expect_msg(&d, f, 12, "master.fail_after: 101 is out of range (1..100)");
	expect_msg(&d, f, 15, "secondaries[0].port: 65536 is out of range");
	expect_msg(&d, f, 19, "zones.dr_ttl: 86401 is out of range (1..86400)");
	expect_msg(&d, f, 20, "zones.min_ns: 14 is out of range (1..13)");
	expect_msg(&d, f, 23, "policy.probe_timeout: 0 is out of range");
	expect_msg(&d, f, 24, "policy.probe_attempts: 0 is out of range (1..20)");
	expect_msg(&d, f, 25, "policy.notify_timeout: -0.5 is out of range");
	expect_msg(&d, f, 26, "policy.notify_attempts: 21 is out of range (1..20)");
	expect_msg(&d, f, 27, "policy.poll_interval: 0 is out of range");
	expect_msg(&d, f, 28, "policy.default_wait: -1 is out of range");
	drdns_diag_clear(&d);
}

static void test_timeout_not_below_interval(void **state)
{
	(void)state;
	struct drdns_diag d = expect_invalid("conf-timeout.conf", 1);
	expect_msg(&d, "conf-timeout.conf", 9,
	           "master.timeout (1 s) must be less than master.interval");
	drdns_diag_clear(&d);
}

static void test_bad_address(void **state)
{
	(void)state;
	struct drdns_diag d = expect_invalid("conf-bad-address.conf", 9);
	const char *f = "conf-bad-address.conf";
	expect_msg(&d, f, 3,
	           "controller.address: '192.0.2.53@5353' is not an IPv4 or IPv6 address "
	           "(give the port in a separate 'port' setting)");
	/* prefixes are fine in allow_transfer and transfer_sources; bad ones are not */
	expect_msg(&d, f, 5,
	           "controller.allow_transfer[1]: '192.0.2.1/24': bits set below /24 (did you "
	           "mean 192.0.2.0/24?)");
	expect_msg(&d, f, 5, "controller.allow_transfer[2]: '2001:db8::/129': prefix length");
	expect_msg(&d, f, 5, "controller.allow_transfer[3]: 'ns.example.edu/24': not an IPv4");
	expect_msg(&d, f, 13, "secondaries[1].transfer_sources[1]: '10.0.0.0/33': prefix length");
	expect_msg(&d, f, 14, "secondaries[2].transfer_sources: expected a list of addresses");
	expect_msg(&d, f, 8, "master.address: '198.51.100.300' is not an IPv4 or IPv6 address");
	expect_msg(&d, f, 11, "secondaries[0].address: 'ns1.example.edu'");
	expect_msg(&d, f, 12, "secondaries[1].address: '2001:db8::zz'");
	drdns_diag_clear(&d);
}

static void test_bad_ns_name(void **state)
{
	(void)state;
	struct drdns_diag d = expect_invalid("conf-bad-nsname.conf", 5);
	const char *f = "conf-bad-nsname.conf";
	expect_msg(&d, f, 4, "controller.ns_name: 'ns dr.example.edu.' is not a valid host name");
	expect_msg(
	    &d, f, 10,
	    "secondaries[0].name: 'ns1..example.edu.' is not a valid host name: empty label");
	expect_msg(&d, f, 11, "a label starts with '-'");
	expect_msg(&d, f, 12, "the root is not a host name");
	expect_msg(&d, f, 13, "longer than 63 characters");
	drdns_diag_clear(&d);
}

static void test_missing_zone_dir(void **state)
{
	(void)state;
	struct drdns_diag d = expect_invalid("conf-missing-dir.conf", 1);
	expect_msg(&d, "conf-missing-dir.conf", 13,
	           "conf-no-such-directory': No such file or directory");
	drdns_diag_clear(&d);

	d = expect_invalid("conf-not-dir.conf", 2);
	expect_msg(&d, "conf-not-dir.conf", 5, "controller.state_dir:");
	expect_msg(&d, "conf-not-dir.conf", 5, "neither does its parent");
	expect_msg(&d, "conf-not-dir.conf", 14, "conf-minimal.conf' is not a directory");
	drdns_diag_clear(&d);
}

static void test_unknown_key(void **state)
{
	(void)state;
	struct drdns_diag d = expect_invalid("conf-unknown-key.conf", 3);
	const char *f = "conf-unknown-key.conf";
	expect_msg(&d, f, 8, "unknown setting 'master.fail_afetr' (did you mean 'fail_after'?)");
	expect_msg(&d, f, 11,
	           "unknown setting 'secondaries[0].tsig_kye' (did you mean 'tsig_key'?)");
	expect_msg(&d, f, 16, "unknown setting 'polcy' (did you mean 'policy'?)");
	drdns_diag_clear(&d);
}

static void test_duplicate_secondary(void **state)
{
	(void)state;
	struct drdns_diag d = expect_invalid("conf-dup-secondary.conf", 5);
	const char *f = "conf-dup-secondary.conf";
	/* names compare case-insensitively and with or without the trailing dot */
	expect_msg(&d, f, 11,
	           "secondaries[1].name: ns1.example.edu. is listed twice (also secondaries[0] at "
	           "line 10)");
	expect_msg(&d, f, 12, "secondaries[2].address: 198.51.100.11 port 53 is listed twice");
	expect_msg(&d, f, 13, "is master.address");
	expect_msg(&d, f, 14, "is controller.address and port");
	expect_msg(&d, f, 15, "is controller.ns_name");
	/* same address on another port (line 16) is a different server: fine */
	drdns_diag_clear(&d);
}

static void test_syntax_error(void **state)
{
	(void)state;
	struct drdns_diag d = expect_invalid("conf-syntax.conf", 1);
	expect_msg(&d, "conf-syntax.conf", 4, "syntax error");
	drdns_diag_clear(&d);

	d = expect_invalid("conf-no-such-file.conf", 1);
	assert_non_null(strstr(d.msgs[0], "conf-no-such-file.conf: cannot open the configuration: "
	                                  "No such file or directory"));
	drdns_diag_clear(&d);
}

static void test_missing_required(void **state)
{
	(void)state;
	struct drdns_diag d = expect_invalid("conf-missing.conf", 4);
	const char *f = "conf-missing.conf";
	expect_msg(&d, f, 1, "missing required group 'master'");
	expect_msg(&d, f, 2, "controller: missing required setting 'address'");
	expect_msg(&d, f, 5, "secondaries: the list is empty");
	expect_msg(&d, f, 6, "zones: missing required setting 'directory'");
	drdns_diag_clear(&d);

	d = expect_invalid("conf-wrong-shape.conf", 3);
	f = "conf-wrong-shape.conf";
	expect_msg(&d, f, 2, "controller: expected a group");
	expect_msg(&d, f, 7, "secondaries[0]: expected a group");
	expect_msg(&d, f, 10, "zones: expected a group { ... }, got an array");
	drdns_diag_clear(&d);
}

static void test_tsig_keys(void **state)
{
	(void)state;
	/* 3 settings in error, plus the key loader's own message about bad.key */
	struct drdns_diag d = expect_invalid("conf-tsig.conf", 6);
	const char *f = "conf-tsig.conf";
	expect_msg(&d, f, 7, "master.tsig_key: cannot use '");
	expect_msg(&d, f, 7, "master-missing.key': No such file or directory");
	expect_msg(&d, f, 8, "master.axfr_timeout: 0 is out of range");
	expect_msg(&d, f, 10, "missing.key': No such file or directory");
	expect_msg(&d, f, 11, "secondaries[1].tsig_key: cannot load the key");
	expect_msg(&d, "bad.key", 2, "hmac-md5");
	expect_msg(&d, f, 12, "is not a regular file");
	drdns_diag_clear(&d);
}

/* Every problem in one run, in line order. */
static void test_many_errors(void **state)
{
	(void)state;
	struct drdns_diag d = expect_invalid("conf-many.conf", 5);
	const char *f = "conf-many.conf";
	expect_msg(&d, f, 3, "controller.address: '192.0.2.999'");
	expect_msg(&d, f, 8, "master.fail_after: 0 is out of range");
	expect_msg(&d, f, 11, "secondaries[0].port: expected an integer, got a string");
	expect_msg(&d, f, 14, "zones.directory:");
	expect_msg(&d, f, 15, "unknown setting 'zones.min_nss' (did you mean 'min_ns'?)");
	unsigned prev = 0;
	for (size_t i = 0; i < d.n; i++) {
		const char *p = strstr(d.msgs[i], "conf-many.conf:");
		assert_non_null(p);
		unsigned line = (unsigned)atoi(p + strlen("conf-many.conf:"));
		assert_true(line >= prev);
		prev = line;
	}
	drdns_diag_clear(&d);
}

static void test_warnings_only(void **state)
{
	(void)state;
	struct drdns_diag d = {0};
	struct drdns_conf *c = NULL;
	assert_int_equal(load("conf-warn.conf", &c, &d), 0);
	assert_non_null(c);
	assert_int_equal(d.n_errors, 0);
	assert_int_equal(d.n, 3);
	expect_msg(&d, "conf-warn.conf", 11,
	           "warning: secondaries[0].address: 192.0.2.53 is also controller.address");
	expect_msg(&d, "conf-warn.conf", 15, "warning: zones.dr_ttl 10 is very low");
	expect_msg(&d, "conf-warn.conf", 16, "warning: zones.min_ns (5)");
	drdns_conf_free(c);
	drdns_diag_clear(&d);
}

static void test_include(void **state)
{
	(void)state;
	struct drdns_diag d = expect_invalid("conf-include.conf", 1);
	/* the message names the included file and its line */
	expect_msg(&d, "conf-include.inc", 4, "master.port: 99999 is out of range");
	drdns_diag_clear(&d);
}

static void test_watchdog_settings(void **state)
{
	(void)state;
	struct drdns_diag d = {0};
	struct drdns_conf *c = NULL;
	assert_int_equal(load("conf-watchdog.conf", &c, &d), 0);
	assert_int_equal(c->master.recover_after, 5);
	assert_true(c->secondaries[0].on_campus);
	assert_true(c->policy.auto_promote);
	assert_true(c->policy.promote_after == 300.0);
	assert_true(c->policy.expire_margin == 86400.0);
	assert_true(c->policy.block_after_failover == 7200.5);
	assert_true(c->policy.auto_demote);
	assert_non_null(strstr(c->hooks.pre_promote, "/conf-hooks/ok.sh"));
	assert_true(c->hooks.pre_promote[0] == '/'); /* made absolute */
	assert_non_null(c->hooks.on_alert);
	assert_null(c->hooks.post_promote);
	assert_true(c->hooks.timeout == 5.0);
	assert_string_equal(c->metrics.address, "::1");
	assert_int_equal(c->metrics.port, 9100);
	assert_string_equal(c->drill.zone, "drill.example.edu.");
	assert_non_null(strstr(c->dnssec.keys, "/conf-zones"));
	assert_int_equal(c->dnssec.validity, 864000);
	assert_int_equal(c->dnssec.jitter, 86400); /* validity / 10 */
	assert_int_equal(c->dnssec.inception_offset, 3600);
	assert_true(c->dnssec.nsec3);
	assert_int_equal(c->dnssec.nsec3_salt_len, 2);
	assert_int_equal(c->dnssec.nsec3_salt[0], 0xab);
	assert_int_equal(c->dnssec.nsec3_salt[1], 0x01);
	assert_int_equal(c->dnssec.threads, 2);
	assert_int_equal(c->dnssec.refresh, 300000);
	assert_non_null(strstr(c->hooks.on_escalate, "/conf-hooks/ok.sh"));
	assert_true(c->alerts.repeat == 600.0);
	assert_int_equal(c->alerts.escalate_after, 0);
	assert_int_equal(c->alerts.n_rrsig_thresholds, 3); /* sorted, longest first */
	assert_int_equal(c->alerts.rrsig_thresholds[0], 172800);
	assert_int_equal(c->alerts.rrsig_thresholds[1], 86400);
	assert_int_equal(c->alerts.rrsig_thresholds[2], 3600);
	assert_true(c->alerts.rrsig_scan_interval == 60.5);
	drdns_conf_free(c);
	drdns_diag_clear(&d);
}

static void test_watchdog_bad(void **state)
{
	(void)state;
	const char *f = "conf-watchdog-bad.conf";
	struct drdns_diag d = expect_invalid(f, 24);
	expect_msg(&d, f, 3, "master.recover_after: 0 is out of range (1..100)");
	expect_msg(&d, f, 6, "policy.promote_after: -1 is out of range");
	expect_msg(&d, f, 6, "policy.expire_margin: 1e+09 is out of range");
	expect_msg(&d, f, 6, "policy.auto_demote: expected true or false");
	expect_msg(&d, f, 8, "hooks.pre_promote: '");
	expect_msg(&d, f, 8, "No such file or directory");
	expect_msg(&d, f, 9, "is not executable");
	expect_msg(&d, f, 10, "is not a regular file");
	expect_msg(&d, f, 11, "hooks.timeout: 0 is out of range");
	expect_msg(&d, f, 12, "on_alarm");
	expect_msg(&d, f, 14, "metrics.port: 0 is out of range");
	expect_msg(&d, f, 15, "drill.zone: 'bad zone!' is not a valid host name");
	expect_msg(&d, f, 15, "size");
	expect_msg(&d, f, 16, "dnssec.keys: '");
	expect_msg(&d, f, 16, "dnssec.validity: 60 is out of range");
	expect_msg(&d, f, 16, "dnssec.jitter: 999999999 is out of range");
	expect_msg(&d, f, 16, "dnssec.nsec3_salt: 'abc' is not an even number of hex digits");
	expect_msg(&d, f, 16, "dnssec.nsec3_iterations: 500 is out of range");
	expect_msg(&d, f, 16, "dnssec.refresh: 10 is out of range");
	expect_msg(&d, f, 17, "alerts.repeat: 1 is out of range");
	expect_msg(&d, f, 17, "alerts.escalate_after: 5000 is out of range");
	expect_msg(&d, f, 17, "alerts.rrsig_thresholds[1]: 86400 is listed twice");
	expect_msg(&d, f, 17, "alerts.rrsig_scan_interval: 0 is out of range");
	expect_msg(&d, f, 18, "alerts2");
	drdns_diag_clear(&d);
}

/* A threshold drdns's own signatures cross before every re-signing: said. */
static void test_threshold_above_refresh(void **state)
{
	(void)state;
	struct drdns_diag d = {0};
	struct drdns_conf *c = NULL;
	assert_int_equal(load("conf-threshold-warn.conf", &c, &d), 0);
	assert_int_equal(d.n_errors, 0);
	assert_int_equal(d.n, 1);
	expect_msg(&d, "conf-threshold-warn.conf", 7,
	           "warning: alerts.rrsig_thresholds: 604800 is more than dnssec.refresh (216000)");
	drdns_conf_free(c);
	drdns_diag_clear(&d);
}

/* Re-signing must leave fresh signatures clear of the threshold. */
static void test_refresh_too_close(void **state)
{
	(void)state;
	const char *f = "conf-refresh-bad.conf";
	struct drdns_diag d = expect_invalid(f, 1);
	expect_msg(&d, f, 6, "dnssec.refresh: 50000 is more than half");
	drdns_diag_clear(&d);
}

static void test_self(void **state)
{
	(void)state;
	struct drdns_diag d = {0};
	struct drdns_conf *c = NULL;
	assert_int_equal(load("conf-self.conf", &c, &d), 0);
	assert_string_equal(c->controller.identity, "dr1.example.edu");
	assert_string_equal(c->controller.version, "drdns");
	assert_string_equal(c->controller.nsid, "dr1");
	drdns_conf_free(c);
	drdns_diag_clear(&d);
	/* unset by default: REFUSED / no NSID */
	assert_int_equal(load("conf-minimal.conf", &c, &d), 0);
	assert_null(c->controller.identity);
	assert_null(c->controller.version);
	assert_null(c->controller.nsid);
	drdns_conf_free(c);
	drdns_diag_clear(&d);

	d = expect_invalid("conf-self-bad.conf", 3);
	const char *f = "conf-self-bad.conf";
	expect_msg(&d, f, 4, "controller.identity: must not be empty");
	expect_msg(&d, f, 5, "controller.version: expected 1 to 255 characters");
	expect_msg(&d, f, 6, "controller.nsid: expected a string");
	drdns_diag_clear(&d);
}

static void test_null_diag(void **state)
{
	(void)state;
	struct drdns_conf *c = NULL;
	char *path = data_path("conf-many.conf");
	assert_int_equal(drdns_conf_load(path, &c, NULL), DRDNS_ECONF);
	assert_null(c);
	free(path);
	path = data_path("conf-good.conf");
	assert_int_equal(drdns_conf_load(path, &c, NULL), 0);
	drdns_conf_free(c);
	drdns_conf_free(NULL);
	assert_null(drdns_conf_find_secondary(NULL, "x"));
	free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_good),
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_shipped_example),
	    cmocka_unit_test(test_bad_type),
	    cmocka_unit_test(test_out_of_range),
	    cmocka_unit_test(test_timeout_not_below_interval),
	    cmocka_unit_test(test_bad_address),
	    cmocka_unit_test(test_bad_ns_name),
	    cmocka_unit_test(test_missing_zone_dir),
	    cmocka_unit_test(test_unknown_key),
	    cmocka_unit_test(test_duplicate_secondary),
	    cmocka_unit_test(test_syntax_error),
	    cmocka_unit_test(test_missing_required),
	    cmocka_unit_test(test_tsig_keys),
	    cmocka_unit_test(test_many_errors),
	    cmocka_unit_test(test_warnings_only),
	    cmocka_unit_test(test_include),
	    cmocka_unit_test(test_watchdog_settings),
	    cmocka_unit_test(test_watchdog_bad),
	    cmocka_unit_test(test_refresh_too_close),
	    cmocka_unit_test(test_threshold_above_refresh),
	    cmocka_unit_test(test_self),
	    cmocka_unit_test(test_null_diag),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
