/*
 * Configuration loader: libconfig syntax in, a validated struct drdns_conf out.
 *
 * Validation never stops at the first problem: every check appends
 * "file:line: message" to the diagnostics collector and loading carries on, so
 * `drdnsd --check` shows an operator everything that is wrong in one run.  The
 * line is always that of the offending setting (libconfig keeps one per
 * setting); a missing setting is reported at the line of its group, and a
 * missing top-level group at line 1.
 */
#include "drdns/conf.h"

#include "drdns/diag.h"
#include "drdns/error.h"
#include "drdns/fsutil.h"
#include "drdns/tsig.h"
#include "drdns/xfr_acl.h"
#include "drdns_config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ldns/ldns.h>
#include <libconfig.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define DEFAULT_STATE_DIR "/var/lib/drdns"
#define AUDIT_LOG_NAME    "audit.log"

/* Ranges.  dr_ttl: 1 s up to one day; the DR set is about reaching everyone
 * quickly, so a low ceiling is legitimate and a very low one only a warning. */
#define PORT_MIN              1
#define PORT_MAX              65535
#define INTERVAL_MAX          3600.0
#define TIMEOUT_MAX           60.0
#define FAIL_AFTER_MIN        1
#define FAIL_AFTER_MAX        100
#define DR_TTL_MIN            1
#define DR_TTL_MAX            86400
#define DR_TTL_WARN           30
#define MIN_NS_MIN            1
#define MIN_NS_MAX            13
#define ATTEMPTS_MIN          1
#define ATTEMPTS_MAX          20
#define WAIT_MAX              86400.0
#define LONG_WAIT_MAX         (90 * 86400.0) /* watchdog delays: up to 90 days */
#define HOOK_TIMEOUT_MAX      3600.0
#define AXFR_TIMEOUT_MAX      3600.0
#define DNSSEC_VALIDITY_MIN   86400LL    /* one day */
#define DNSSEC_VALIDITY_MAX   31536000LL /* one year */
#define DNSSEC_NSEC3_ITER_MAX 100LL      /* RFC 9276: 0; validators give up above ~100 */

/* Every key drdns knows, per group.  Anything else is an error naming it. */
static const char *const root_keys[] = {"controller", "master", "secondaries", "zones",
                                        "policy",     "hooks",  "metrics",     "drill",
                                        "dnssec",     "alerts", NULL};
static const char *const controller_keys[] = {
    "id",       "address",        "port",     "ns_name", "control_socket", "state_dir", "audit_log",
    "pid_file", "allow_transfer", "identity", "version", "nsid",           NULL};
static const char *const master_keys[] = {"address",  "port",         "interval",
                                          "timeout",  "fail_after",   "recover_after",
                                          "tsig_key", "axfr_timeout", NULL};
static const char *const secondary_keys[] = {"name",      "address",          "port", "tsig_key",
                                             "on_campus", "transfer_sources", NULL};
static const char *const zones_keys[] = {"directory", "dr_ttl", "min_ns", NULL};
static const char *const policy_keys[] = {
    "auto_promote",    "probe_timeout",        "probe_attempts", "notify_timeout",
    "notify_attempts", "poll_interval",        "default_wait",   "promote_after",
    "expire_margin",   "block_after_failover", "auto_demote",    NULL};
static const char *const hooks_keys[] = {"pre_promote", "post_promote", "post_demote", "on_alert",
                                         "on_escalate", "timeout",      NULL};
static const char *const metrics_keys[] = {"address", "port", NULL};
static const char *const drill_keys[] = {"zone", NULL};
static const char *const dnssec_keys[] = {
    "keys",       "validity",      "inception_offset", "jitter",  "nsec3", "nsec3_iterations",
    "nsec3_salt", "nsec3_opt_out", "threads",          "refresh", NULL};
static const char *const alerts_keys[] = {"repeat", "escalate_after", "rrsig_thresholds",
                                          "rrsig_scan_interval", NULL};

/* Messages are collected, then handed to the diagnostics collector sorted by
 * file and line, so the output reads like a compiler's whatever order the
 * checks ran in. */
struct message {
	const char *file; /* libconfig's or the loader's string, not owned */
	unsigned line;
	size_t seq;
	bool is_error;
	char *text; /* complete: "file:line: ..." */
};

struct loader {
	const char *path;        /* as given: used in messages */
	char *dir;               /* absolute directory of the file: base for relative paths */
	struct drdns_diag *diag; /* may be NULL */
	unsigned errors;
	bool oom;
	struct message *msgs;
	size_t n_msgs;
};

static void add_message(struct loader *l, const char *file, unsigned line, bool is_error,
                        char *text)
{
	struct message *grown = text ? realloc(l->msgs, (l->n_msgs + 1) * sizeof(*grown)) : NULL;
	if (!grown) {
		free(text);
		l->oom = true;
		return;
	}
	l->msgs = grown;
	l->msgs[l->n_msgs] = (struct message){file, line, l->n_msgs, is_error, text};
	l->n_msgs++;
	if (is_error)
		l->errors++;
}

/* ---- diagnostics ---- */

static void vreport(struct loader *l, bool is_error, const config_setting_t *s, const char *fmt,
                    va_list ap)
{
	char *msg = NULL, *text = NULL;
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	const char *file =
	    s && config_setting_source_file(s) ? config_setting_source_file(s) : l->path;
	unsigned line = s ? config_setting_source_line(s) : 0;
	if (line == 0)
		line = 1;
	if (!msg ||
	    asprintf(&text, "%s:%u: %s%s", file, line, is_error ? "" : "warning: ", msg) < 0)
		text = NULL;
	free(msg);
	add_message(l, file, line, is_error, text);
}

/* Messages from another checker (the TSIG key loader) about setting s: they
 * are sorted as if at s's line, after s's own. */
static void adopt_messages(struct loader *l, const config_setting_t *s, struct drdns_diag *d)
{
	const char *file = config_setting_source_file(s) ? config_setting_source_file(s) : l->path;
	for (size_t i = 0; i < d->n; i++) {
		char *text = strdup(d->msgs[i]);
		add_message(l, file, config_setting_source_line(s), true, text);
	}
	drdns_diag_clear(d);
}

static int message_cmp(const void *a, const void *b)
{
	const struct message *x = a, *y = b;
	int fc = strcmp(x->file, y->file);
	if (fc)
		return fc;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Hand every message to the collector: the main file first, then included
 * files, each in line order. */
static void flush_messages(struct loader *l)
{
	for (size_t i = 0; i < l->n_msgs; i++)
		if (strcmp(l->msgs[i].file, l->path) == 0)
			l->msgs[i].file = ""; /* sorts first */
	if (l->n_msgs > 1)
		qsort(l->msgs, l->n_msgs, sizeof(*l->msgs), message_cmp);
	for (size_t i = 0; i < l->n_msgs; i++) {
		if (l->msgs[i].is_error)
			drdns_diag_error(l->diag, "%s", l->msgs[i].text);
		else
			drdns_diag_warn(l->diag, "%s", l->msgs[i].text);
		free(l->msgs[i].text);
	}
	free(l->msgs);
	l->msgs = NULL;
	l->n_msgs = 0;
}

__attribute__((format(printf, 3, 4))) static void
report(struct loader *l, const config_setting_t *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport(l, true, s, fmt, ap);
	va_end(ap);
}

__attribute__((format(printf, 3, 4))) static void warn(struct loader *l, const config_setting_t *s,
                                                       const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport(l, false, s, fmt, ap);
	va_end(ap);
}

static const char *type_name(const config_setting_t *s)
{
	switch (config_setting_type(s)) {
	case CONFIG_TYPE_GROUP: return "a group { ... }";
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64: return "an integer";
	case CONFIG_TYPE_FLOAT: return "a number with a fraction";
	case CONFIG_TYPE_STRING: return "a string";
	case CONFIG_TYPE_BOOL: return "a boolean";
	case CONFIG_TYPE_ARRAY: return "an array [ ... ]";
	case CONFIG_TYPE_LIST: return "a list ( ... )";
	default: return "an unknown type";
	}
}

/* Levenshtein distance, capped: good enough for "did you mean". */
static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 63 || lb > 63)
		return SIZE_MAX;
	size_t prev[64], cur[64];
	for (size_t j = 0; j <= lb; j++)
		prev[j] = j;
	for (size_t i = 1; i <= la; i++) {
		cur[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t sub = prev[j - 1] + (tolower((unsigned char)a[i - 1]) !=
			                            tolower((unsigned char)b[j - 1]));
			size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
			cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
		}
		memcpy(prev, cur, (lb + 1) * sizeof(prev[0]));
	}
	return prev[lb];
}

/* Report every member of group whose name is not in known. */
static void check_keys(struct loader *l, const config_setting_t *group, const char *prefix,
                       const char *const *known)
{
	int n = config_setting_length(group);
	for (int i = 0; i < n; i++) {
		const config_setting_t *m = config_setting_get_elem(group, (unsigned)i);
		const char *name = config_setting_name(m);
		if (!name)
			continue;
		bool ok = false;
		const char *best = NULL;
		size_t best_d = SIZE_MAX;
		for (const char *const *k = known; *k; k++) {
			if (strcmp(name, *k) == 0) {
				ok = true;
				break;
			}
			size_t d = edit_distance(name, *k);
			if (d < best_d) {
				best_d = d;
				best = *k;
			}
		}
		if (ok)
			continue;
		const char *dot = prefix[0] ? "." : "";
		if (best && best_d <= 2)
			report(l, m, "unknown setting '%s%s%s' (did you mean '%s'?)", prefix, dot,
			       name, best);
		else
			report(l, m, "unknown setting '%s%s%s'", prefix, dot, name);
	}
}

/* ---- typed getters: each reports its own problems and returns the setting
 * only when it is present and of the right type ---- */

static const config_setting_t *get_member(const config_setting_t *group, const char *key)
{
	return group ? config_setting_get_member((config_setting_t *)group, key) : NULL;
}

static void report_missing(struct loader *l, const config_setting_t *group, const char *prefix,
                           const char *key)
{
	report(l, group, "%s: missing required setting '%s'", prefix, key);
}

static const char *get_string(struct loader *l, const config_setting_t *group, const char *prefix,
                              const char *key, bool required, const config_setting_t **where)
{
	const config_setting_t *s = get_member(group, key);
	if (where)
		*where = s;
	if (!s) {
		if (required && group)
			report_missing(l, group, prefix, key);
		return NULL;
	}
	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		report(l, s, "%s.%s: expected a string, got %s", prefix, key, type_name(s));
		return NULL;
	}
	const char *v = config_setting_get_string(s);
	if (!v || !v[0]) {
		report(l, s, "%s.%s: must not be empty", prefix, key);
		return NULL;
	}
	return v;
}

/* Integer in [lo, hi].  Returns true and *out when present and valid. */
static bool get_int(struct loader *l, const config_setting_t *group, const char *prefix,
                    const char *key, long long lo, long long hi, long long *out)
{
	const config_setting_t *s = get_member(group, key);
	if (!s)
		return false;
	int t = config_setting_type(s);
	if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64) {
		if (t == CONFIG_TYPE_STRING)
			report(
			    l, s,
			    "%s.%s: expected an integer, got a string (\"%s\"): remove the quotes",
			    prefix, key, config_setting_get_string(s));
		else
			report(l, s, "%s.%s: expected an integer, got %s", prefix, key,
			       type_name(s));
		return false;
	}
	long long v = config_setting_get_int64(s);
	if (v < lo || v > hi) {
		report(l, s, "%s.%s: %lld is out of range (%lld..%lld)", prefix, key, v, lo, hi);
		return false;
	}
	*out = v;
	return true;
}

enum bound {
	INCL,
	EXCL
};

/* Number (integer or float) in the range lo..hi, each bound inclusive or not. */
static bool get_num(struct loader *l, const config_setting_t *group, const char *prefix,
                    const char *key, double lo, enum bound lob, double hi, double *out,
                    const config_setting_t **where)
{
	const config_setting_t *s = get_member(group, key);
	if (where)
		*where = s;
	if (!s)
		return false;
	int t = config_setting_type(s);
	double v;
	if (t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64) {
		v = (double)config_setting_get_int64(s);
	} else if (t == CONFIG_TYPE_FLOAT) {
		v = config_setting_get_float(s);
	} else {
		if (t == CONFIG_TYPE_STRING)
			report(l, s,
			       "%s.%s: expected a number, got a string (\"%s\"): remove the quotes",
			       prefix, key, config_setting_get_string(s));
		else
			report(l, s, "%s.%s: expected a number, got %s", prefix, key, type_name(s));
		return false;
	}
	if (!isfinite(v) || (lob == INCL ? v < lo : v <= lo) || v > hi) {
		report(l, s, "%s.%s: %g is out of range (%s %g and at most %g seconds)", prefix,
		       key, v, lob == INCL ? "at least" : "more than", lo, hi);
		return false;
	}
	*out = v;
	return true;
}

static bool get_bool(struct loader *l, const config_setting_t *group, const char *prefix,
                     const char *key, bool *out)
{
	const config_setting_t *s = get_member(group, key);
	if (!s)
		return false;
	if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
		report(l, s, "%s.%s: expected true or false, got %s", prefix, key, type_name(s));
		return false;
	}
	*out = config_setting_get_bool(s) != 0;
	return true;
}

static bool get_port(struct loader *l, const config_setting_t *group, const char *prefix,
                     uint16_t *out)
{
	long long v;
	if (!get_int(l, group, prefix, "port", PORT_MIN, PORT_MAX, &v))
		return false;
	*out = (uint16_t)v;
	return true;
}

/* ---- value checks ---- */

struct addr {
	int family; /* 0: invalid */
	unsigned char bytes[16];
};

static struct addr parse_addr(const char *s)
{
	struct addr a = {0};
	if (s && inet_pton(AF_INET, s, a.bytes) == 1)
		a.family = AF_INET;
	else if (s && inet_pton(AF_INET6, s, a.bytes) == 1)
		a.family = AF_INET6;
	return a;
}

static bool addr_eq(const struct addr *a, const struct addr *b)
{
	return a->family && a->family == b->family &&
	       memcmp(a->bytes, b->bytes, a->family == AF_INET ? 4 : 16) == 0;
}

/* Check an address literal; returns a copy or NULL (reported). */
static char *check_address(struct loader *l, const config_setting_t *s, const char *what,
                           const char *v)
{
	struct addr a = parse_addr(v);
	if (!a.family) {
		const char *hint = "";
		if (strchr(v, '@') || (strchr(v, ':') && strchr(v, '.') && !strchr(v, '[')))
			hint = " (give the port in a separate 'port' setting)";
		else if (strchr(v, '/'))
			hint = " (a single address, not a prefix)";
		else if (isalpha((unsigned char)v[0]) && !strchr(v, ':'))
			hint = " (an IP address, not a host name)";
		report(l, s, "%s: '%s' is not an IPv4 or IPv6 address%s", what, v, hint);
		return NULL;
	}
	char *dup = strdup(v);
	if (!dup)
		l->oom = true;
	return dup;
}

/* Check an address or prefix ("192.0.2.0/24", "2001:db8::/48"); returns a copy
 * or NULL (reported). */
static char *check_prefix(struct loader *l, const config_setting_t *s, const char *what,
                          const char *v)
{
	char why[160];
	if (drdns_prefix_parse(v, NULL, why, sizeof(why)) < 0) {
		report(l, s, "%s: '%s': %s", what, v, why);
		return NULL;
	}
	char *dup = strdup(v);
	if (!dup)
		l->oom = true;
	return dup;
}

/* A list of addresses or prefixes, [ "192.0.2.1", "198.51.100.0/24" ]. */
static void load_prefix_list(struct loader *l, const config_setting_t *s, const char *what,
                             char ***out, size_t *n_out)
{
	if (!s)
		return;
	if (!config_setting_is_array(s) && !config_setting_is_list(s)) {
		report(l, s,
		       "%s: expected a list of addresses or prefixes "
		       "[ \"192.0.2.1\", \"198.51.100.0/24\", ... ], got %s",
		       what, type_name(s));
		return;
	}
	int n = config_setting_length(s);
	*out = calloc((size_t)n + 1, sizeof(char *));
	if (!*out) {
		l->oom = true;
		return;
	}
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		char item[96];
		snprintf(item, sizeof(item), "%s[%d]", what, i);
		if (config_setting_type(e) != CONFIG_TYPE_STRING) {
			report(l, e, "%s: expected a string, got %s", item, type_name(e));
			continue;
		}
		char *a = check_prefix(l, e, item, config_setting_get_string(e));
		if (a)
			(*out)[(*n_out)++] = a;
	}
}

/* A host name usable as an NS target: LDH labels, checked by ldns for length.
 * Returns the name lowercased with a trailing dot, or NULL (reported). */
static char *check_ns_name(struct loader *l, const config_setting_t *s, const char *what,
                           const char *v)
{
	const char *why = NULL;
	size_t len = strlen(v);
	if (strcmp(v, ".") == 0) {
		why = "the root is not a host name";
	} else {
		size_t label = 0;
		for (size_t i = 0; i < len && !why; i++) {
			unsigned char c = (unsigned char)v[i];
			if (c == '.') {
				if (label == 0)
					why = "empty label";
				else if (v[i - 1] == '-')
					why = "a label ends with '-'";
				label = 0;
			} else if (isalnum(c) || c == '-') {
				if (label == 0 && c == '-')
					why = "a label starts with '-'";
				if (++label > 63)
					why = "a label is longer than 63 characters";
			} else {
				why = "only letters, digits, '-' and '.' are allowed";
			}
		}
		if (!why && label > 0 && v[len - 1] == '-')
			why = "a label ends with '-'";
	}
	if (!why) {
		ldns_rdf *rdf = ldns_dname_new_frm_str(v);
		if (!rdf)
			why = "not a valid domain name (too long?)";
		else
			ldns_rdf_deep_free(rdf);
	}
	if (why) {
		report(l, s, "%s: '%s' is not a valid host name: %s", what, v, why);
		return NULL;
	}
	bool dot = v[len - 1] == '.';
	char *out = malloc(len + (dot ? 1 : 2));
	if (!out) {
		l->oom = true;
		return NULL;
	}
	for (size_t i = 0; i < len; i++)
		out[i] = (char)tolower((unsigned char)v[i]);
	if (!dot)
		out[len++] = '.';
	out[len] = '\0';
	return out;
}

static bool is_dir(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static char *resolve(struct loader *l, const char *v)
{
	char *p = drdns_path_resolve(l->dir, v);
	if (!p)
		l->oom = true;
	return p;
}

/* A path whose directory may be created by drdnsd (one level): the directory
 * itself or its parent must exist. */
static void check_creatable_parent(struct loader *l, const config_setting_t *s, const char *what,
                                   const char *path)
{
	char *dir = drdns_dirname(path);
	if (!dir) {
		l->oom = true;
		return;
	}
	if (!is_dir(dir)) {
		char *parent = drdns_dirname(dir);
		if (!parent)
			l->oom = true;
		else if (!is_dir(parent))
			report(l, s, "%s: neither '%s' nor its parent directory '%s' exists", what,
			       dir, parent);
		free(parent);
	}
	free(dir);
}

/* ---- groups ---- */

static const config_setting_t *get_group(struct loader *l, const config_setting_t *root,
                                         const char *name, bool required)
{
	const config_setting_t *g = get_member(root, name);
	if (!g) {
		if (required)
			report(l, NULL, "missing required group '%s' (%s = { ... };)", name, name);
		return NULL;
	}
	if (!config_setting_is_group(g)) {
		report(l, g, "%s: expected a group { ... }, got %s", name, type_name(g));
		return NULL;
	}
	return g;
}

static void load_controller(struct loader *l, const config_setting_t *root, struct drdns_conf *c)
{
	const config_setting_t *g = get_group(l, root, "controller", true);
	const config_setting_t *s;
	const char *v;

	if (g)
		check_keys(l, g, "controller", controller_keys);

	if ((v = get_string(l, g, "controller", "id", false, NULL))) {
		c->controller.id = strdup(v);
	} else {
		char host[HOST_NAME_MAX + 1] = "drdns";
		if (gethostname(host, sizeof(host)) != 0)
			strcpy(host, "drdns");
		host[HOST_NAME_MAX] = '\0';
		c->controller.id = strdup(host);
	}
	if (!c->controller.id)
		l->oom = true;

	if ((v = get_string(l, g, "controller", "address", true, &s)))
		c->controller.address = check_address(l, s, "controller.address", v);
	get_port(l, g, "controller", &c->controller.port);
	if ((v = get_string(l, g, "controller", "ns_name", true, &s)))
		c->controller.ns_name = check_ns_name(l, s, "controller.ns_name", v);

	/* control socket: relative paths are taken from the configuration's
	 * directory like every other path (drdnsd may chdir("/")). */
	v = get_string(l, g, "controller", "control_socket", false, &s);
	c->controller.control_socket = v ? resolve(l, v) : strdup(DRDNS_DEFAULT_SOCKET);
	if (!c->controller.control_socket)
		l->oom = true;
	else if (v) {
		struct sockaddr_un sun;
		struct stat st;
		if (strlen(c->controller.control_socket) >= sizeof(sun.sun_path))
			report(l, s,
			       "controller.control_socket: '%s' is too long for a UNIX socket "
			       "(at most %zu bytes)",
			       c->controller.control_socket, sizeof(sun.sun_path) - 1);
		else if (lstat(c->controller.control_socket, &st) == 0 && !S_ISSOCK(st.st_mode))
			report(l, s, "controller.control_socket: '%s' exists and is not a socket",
			       c->controller.control_socket);
		else
			check_creatable_parent(l, s, "controller.control_socket",
			                       c->controller.control_socket);
	}

	v = get_string(l, g, "controller", "state_dir", false, &s);
	c->controller.state_dir = v ? resolve(l, v) : strdup(DEFAULT_STATE_DIR);
	if (!c->controller.state_dir) {
		l->oom = true;
	} else if (v) {
		struct stat st;
		if (stat(c->controller.state_dir, &st) == 0) {
			if (!S_ISDIR(st.st_mode))
				report(l, s, "controller.state_dir: '%s' is not a directory",
				       c->controller.state_dir);
		} else {
			char *parent = drdns_dirname(c->controller.state_dir);
			if (!parent)
				l->oom = true;
			else if (!is_dir(parent))
				report(
				    l, s,
				    "controller.state_dir: '%s' does not exist, and neither does "
				    "its parent '%s' (drdnsd creates only the last component)",
				    c->controller.state_dir, parent);
			free(parent);
		}
	}

	v = get_string(l, g, "controller", "audit_log", false, &s);
	if (v) {
		c->controller.audit_log = resolve(l, v);
		struct stat st;
		if (c->controller.audit_log && stat(c->controller.audit_log, &st) == 0 &&
		    !S_ISREG(st.st_mode)) {
			report(l, s, "controller.audit_log: '%s' exists and is not a regular file",
			       c->controller.audit_log);
		} else if (c->controller.audit_log) {
			char *dir = drdns_dirname(c->controller.audit_log);
			if (!dir)
				l->oom = true;
			else if (!is_dir(dir) && !(c->controller.state_dir &&
			                           strcmp(dir, c->controller.state_dir) == 0))
				report(l, s, "controller.audit_log: directory '%s' does not exist",
				       dir);
			free(dir);
		}
	} else if (c->controller.state_dir) {
		if (asprintf(&c->controller.audit_log, "%s/%s", c->controller.state_dir,
		             AUDIT_LOG_NAME) < 0)
			c->controller.audit_log = NULL;
	}
	if (!c->controller.audit_log && c->controller.state_dir)
		l->oom = true;

	if ((v = get_string(l, g, "controller", "pid_file", false, &s))) {
		c->controller.pid_file = resolve(l, v);
		if (c->controller.pid_file)
			check_creatable_parent(l, s, "controller.pid_file", c->controller.pid_file);
	}

	const char *const self_keys[] = {"identity", "version", "nsid"};
	char **self_vals[] = {&c->controller.identity, &c->controller.version, &c->controller.nsid};
	for (size_t i = 0; i < 3; i++) {
		if (!(v = get_string(l, g, "controller", self_keys[i], false, &s)))
			continue;
		if (!*v || strlen(v) > 255)
			report(l, s, "controller.%s: expected 1 to 255 characters", self_keys[i]);
		else if (!(*self_vals[i] = strdup(v)))
			l->oom = true;
	}
	load_prefix_list(l, get_member(g, "allow_transfer"), "controller.allow_transfer",
	                 &c->controller.allow_transfer, &c->controller.n_allow_transfer);
}

/* A tsig_key setting: a BIND key file, relative to the configuration's
 * directory.  Sets *file and *key (owned by the caller's struct); reports
 * errors at the setting's line. */
static void load_key_file(struct loader *l, const config_setting_t *s, const char *prefix,
                          const char *v, char **file, struct drdns_tsig_key **key)
{
	*file = resolve(l, v);
	if (!*file)
		return;
	struct stat st;
	if (stat(*file, &st) != 0) {
		report(l, s, "%s.tsig_key: cannot use '%s': %s", prefix, *file, strerror(errno));
	} else if (!S_ISREG(st.st_mode)) {
		report(l, s, "%s.tsig_key: '%s' is not a regular file", prefix, *file);
	} else {
		struct drdns_diag kd = {0};
		if (drdns_tsig_key_load(*file, key, &kd) != 0) {
			*key = NULL;
			report(l, s, "%s.tsig_key: cannot load the key in '%s'%s", prefix, *file,
			       kd.n ? " (see below)" : "");
		}
		adopt_messages(l, s, &kd);
	}
}

static void load_master(struct loader *l, const config_setting_t *root, struct drdns_conf *c)
{
	const config_setting_t *g = get_group(l, root, "master", true);
	const config_setting_t *s, *ts;
	const char *v;
	long long n;

	if (g)
		check_keys(l, g, "master", master_keys);
	if ((v = get_string(l, g, "master", "address", true, &s)))
		c->master.address = check_address(l, s, "master.address", v);
	get_port(l, g, "master", &c->master.port);
	bool iv =
	    get_num(l, g, "master", "interval", 0, EXCL, INTERVAL_MAX, &c->master.interval, &s);
	bool tv = get_num(l, g, "master", "timeout", 0, EXCL, TIMEOUT_MAX, &c->master.timeout, &ts);
	if ((iv || !s) && (tv || !ts) && c->master.timeout >= c->master.interval) {
		/* report on whichever of the two the operator wrote */
		report(l, ts ? ts : s,
		       "master.timeout (%g s) must be less than master.interval (%g s): a probe "
		       "round has to finish before the next one starts",
		       c->master.timeout, c->master.interval);
	}
	if (get_int(l, g, "master", "fail_after", FAIL_AFTER_MIN, FAIL_AFTER_MAX, &n))
		c->master.fail_after = (int)n;
	if (get_int(l, g, "master", "recover_after", FAIL_AFTER_MIN, FAIL_AFTER_MAX, &n))
		c->master.recover_after = (int)n;
	if ((v = get_string(l, g, "master", "tsig_key", false, &s)))
		load_key_file(l, s, "master", v, &c->master.tsig_key_file, &c->master.key);
	get_num(l, g, "master", "axfr_timeout", 0, EXCL, AXFR_TIMEOUT_MAX, &c->master.axfr_timeout,
	        &s);
}

static void load_secondary(struct loader *l, const config_setting_t *e, int i,
                           struct drdns_secondary *sec)
{
	char prefix[32];
	char what[64];
	const config_setting_t *s;
	const char *v;

	snprintf(prefix, sizeof(prefix), "secondaries[%d]", i);
	sec->port = 53;
	if (!config_setting_is_group(e)) {
		report(l, e, "%s: expected a group { name = \"...\"; address = \"...\"; }, got %s",
		       prefix, type_name(e));
		return;
	}
	check_keys(l, e, prefix, secondary_keys);
	if ((v = get_string(l, e, prefix, "name", true, &s))) {
		snprintf(what, sizeof(what), "%s.name", prefix);
		sec->name = check_ns_name(l, s, what, v);
	}
	if ((v = get_string(l, e, prefix, "address", true, &s))) {
		snprintf(what, sizeof(what), "%s.address", prefix);
		sec->address = check_address(l, s, what, v);
	}
	get_port(l, e, prefix, &sec->port);
	get_bool(l, e, prefix, "on_campus", &sec->on_campus);
	snprintf(what, sizeof(what), "%s.transfer_sources", prefix);
	load_prefix_list(l, get_member(e, "transfer_sources"), what, &sec->transfer_sources,
	                 &sec->n_transfer_sources);
	if ((v = get_string(l, e, prefix, "tsig_key", false, &s)))
		load_key_file(l, s, prefix, v, &sec->tsig_key_file, &sec->key);
}

static void load_secondaries(struct loader *l, const config_setting_t *root, struct drdns_conf *c)
{
	const config_setting_t *g = get_member(root, "secondaries");
	if (!g) {
		report(l, NULL,
		       "missing required list 'secondaries' "
		       "(secondaries = ( { name = \"...\"; address = \"...\"; }, ... );)");
		return;
	}
	if (!config_setting_is_list(g)) {
		report(l, g, "secondaries: expected a list ( { ... }, { ... } ), got %s",
		       type_name(g));
		return;
	}
	int n = config_setting_length(g);
	if (n == 0) {
		report(l, g, "secondaries: the list is empty; list every secondary nameserver");
		return;
	}
	c->secondaries = calloc((size_t)n, sizeof(*c->secondaries));
	if (!c->secondaries) {
		l->oom = true;
		return;
	}
	c->n_secondaries = (size_t)n;
	for (int i = 0; i < n; i++)
		load_secondary(l, config_setting_get_elem(g, (unsigned)i), i, &c->secondaries[i]);
}

static void load_zones(struct loader *l, const config_setting_t *root, struct drdns_conf *c)
{
	const config_setting_t *g = get_group(l, root, "zones", true);
	const config_setting_t *s;
	const char *v;
	long long n;

	if (g)
		check_keys(l, g, "zones", zones_keys);
	if ((v = get_string(l, g, "zones", "directory", true, &s))) {
		c->zones.directory = resolve(l, v);
		struct stat st;
		if (!c->zones.directory)
			;
		else if (stat(c->zones.directory, &st) != 0)
			report(l, s, "zones.directory: '%s': %s", c->zones.directory,
			       strerror(errno));
		else if (!S_ISDIR(st.st_mode))
			report(l, s, "zones.directory: '%s' is not a directory",
			       c->zones.directory);
		else if (access(c->zones.directory, R_OK | X_OK) != 0)
			report(l, s, "zones.directory: '%s' is not readable: %s",
			       c->zones.directory, strerror(errno));
	}
	if (get_int(l, g, "zones", "dr_ttl", DR_TTL_MIN, DR_TTL_MAX, &n)) {
		c->zones.dr_ttl = (uint32_t)n;
		if (n < DR_TTL_WARN)
			warn(l, get_member(g, "dr_ttl"),
			     "zones.dr_ttl %lld is very low: resolvers will query the surviving "
			     "nameservers every %lld s",
			     n, n);
	}
	if (get_int(l, g, "zones", "min_ns", MIN_NS_MIN, MIN_NS_MAX, &n))
		c->zones.min_ns = (unsigned)n;
}

static void load_policy(struct loader *l, const config_setting_t *root, struct drdns_conf *c)
{
	const config_setting_t *g = get_group(l, root, "policy", false);
	long long n;

	if (!g)
		return;
	check_keys(l, g, "policy", policy_keys);
	get_bool(l, g, "policy", "auto_promote", &c->policy.auto_promote);
	get_num(l, g, "policy", "probe_timeout", 0, EXCL, TIMEOUT_MAX, &c->policy.probe_timeout,
	        NULL);
	if (get_int(l, g, "policy", "probe_attempts", ATTEMPTS_MIN, ATTEMPTS_MAX, &n))
		c->policy.probe_attempts = (int)n;
	get_num(l, g, "policy", "notify_timeout", 0, EXCL, TIMEOUT_MAX, &c->policy.notify_timeout,
	        NULL);
	if (get_int(l, g, "policy", "notify_attempts", ATTEMPTS_MIN, ATTEMPTS_MAX, &n))
		c->policy.notify_attempts = (int)n;
	get_num(l, g, "policy", "poll_interval", 0, EXCL, TIMEOUT_MAX, &c->policy.poll_interval,
	        NULL);
	get_num(l, g, "policy", "default_wait", 0, INCL, WAIT_MAX, &c->policy.default_wait, NULL);
	get_num(l, g, "policy", "promote_after", 0, INCL, LONG_WAIT_MAX, &c->policy.promote_after,
	        NULL);
	get_num(l, g, "policy", "expire_margin", 0, INCL, LONG_WAIT_MAX, &c->policy.expire_margin,
	        NULL);
	get_num(l, g, "policy", "block_after_failover", 0, INCL, LONG_WAIT_MAX,
	        &c->policy.block_after_failover, NULL);
	get_bool(l, g, "policy", "auto_demote", &c->policy.auto_demote);
}

/* A hook: an absolute (or config-relative) path to an executable file. */
static void load_hook(struct loader *l, const config_setting_t *g, const char *key, char **out)
{
	const config_setting_t *s;
	char what[64];
	const char *v = get_string(l, g, "hooks", key, false, &s);
	if (!v)
		return;
	snprintf(what, sizeof(what), "hooks.%s", key);
	*out = resolve(l, v);
	if (!*out)
		return;
	struct stat st;
	if (stat(*out, &st) != 0)
		report(l, s, "%s: '%s': %s", what, *out, strerror(errno));
	else if (!S_ISREG(st.st_mode))
		report(l, s, "%s: '%s' is not a regular file", what, *out);
	else if (access(*out, X_OK) != 0)
		report(l, s, "%s: '%s' is not executable: %s", what, *out, strerror(errno));
}

static void load_hooks(struct loader *l, const config_setting_t *root, struct drdns_conf *c)
{
	const config_setting_t *g = get_group(l, root, "hooks", false);
	if (!g)
		return;
	check_keys(l, g, "hooks", hooks_keys);
	load_hook(l, g, "pre_promote", &c->hooks.pre_promote);
	load_hook(l, g, "post_promote", &c->hooks.post_promote);
	load_hook(l, g, "post_demote", &c->hooks.post_demote);
	load_hook(l, g, "on_alert", &c->hooks.on_alert);
	load_hook(l, g, "on_escalate", &c->hooks.on_escalate);
	get_num(l, g, "hooks", "timeout", 0, EXCL, HOOK_TIMEOUT_MAX, &c->hooks.timeout, NULL);
}

static void load_metrics(struct loader *l, const config_setting_t *root, struct drdns_conf *c)
{
	const config_setting_t *g = get_group(l, root, "metrics", false);
	const config_setting_t *s;
	const char *v;
	if (!g)
		return;
	check_keys(l, g, "metrics", metrics_keys);
	if ((v = get_string(l, g, "metrics", "address", true, &s)))
		c->metrics.address = check_address(l, s, "metrics.address", v);
	get_port(l, g, "metrics", &c->metrics.port);
}

/* NSEC3 salt as hex ("-": none, as in BIND) into c; false when it is not hex. */
static bool parse_salt(const char *v, struct drdns_conf *c)
{
	if (!strcmp(v, "-"))
		v = "";
	size_t len = strlen(v);
	if (len % 2 || len > 2 * sizeof(c->dnssec.nsec3_salt))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isxdigit((unsigned char)v[i]))
			return false;
	for (size_t i = 0; i < len / 2; i++) {
		unsigned byte = 0;
		sscanf(v + 2 * i, "%2x", &byte);
		c->dnssec.nsec3_salt[i] = (uint8_t)byte;
	}
	c->dnssec.nsec3_salt_len = (uint8_t)(len / 2);
	return true;
}

/* dnssec { keys; validity; ... }: absent, nothing is signed. */
static void load_dnssec(struct loader *l, const config_setting_t *root, struct drdns_conf *c)
{
	const config_setting_t *g = get_group(l, root, "dnssec", false);
	const config_setting_t *s;
	const char *v;
	long long n;
	if (!g)
		return;
	check_keys(l, g, "dnssec", dnssec_keys);
	if ((v = get_string(l, g, "dnssec", "keys", true, &s))) {
		c->dnssec.keys = resolve(l, v);
		if (c->dnssec.keys && !is_dir(c->dnssec.keys))
			report(l, s, "dnssec.keys: '%s' is not a directory", c->dnssec.keys);
	}
	if (get_int(l, g, "dnssec", "validity", DNSSEC_VALIDITY_MIN, DNSSEC_VALIDITY_MAX, &n))
		c->dnssec.validity = (uint32_t)n;
	if (get_int(l, g, "dnssec", "inception_offset", 0, DNSSEC_VALIDITY_MIN, &n))
		c->dnssec.inception_offset = (uint32_t)n;
	c->dnssec.jitter = c->dnssec.validity / 10;
	if (get_int(l, g, "dnssec", "jitter", 0, DNSSEC_VALIDITY_MAX, &n)) {
		c->dnssec.jitter = (uint32_t)n;
		if (c->dnssec.jitter >= c->dnssec.validity / 2)
			report(l, get_member(g, "jitter"),
			       "dnssec.jitter: %u must be less than half of dnssec.validity (%u)",
			       c->dnssec.jitter, c->dnssec.validity);
	}
	get_bool(l, g, "dnssec", "nsec3", &c->dnssec.nsec3);
	if (get_int(l, g, "dnssec", "nsec3_iterations", 0, DNSSEC_NSEC3_ITER_MAX, &n))
		c->dnssec.nsec3_iterations = (uint16_t)n;
	get_bool(l, g, "dnssec", "nsec3_opt_out", &c->dnssec.nsec3_opt_out);
	if ((v = get_string(l, g, "dnssec", "nsec3_salt", false, &s)) && !parse_salt(v, c))
		report(l, s,
		       "dnssec.nsec3_salt: '%s' is not an even number of hex digits, at most 255 "
		       "bytes (\"-\" for none, as RFC 9276 recommends)",
		       v);
	if (get_int(l, g, "dnssec", "threads", 0, 256, &n))
		c->dnssec.threads = (unsigned)n;
	/* Re-signing must leave fresh signatures well clear of the threshold, or
	 * every round would re-sign again. */
	uint32_t refresh_max = (c->dnssec.validity - c->dnssec.jitter) / 2;
	c->dnssec.refresh = c->dnssec.validity / 4;
	if (get_int(l, g, "dnssec", "refresh", 600, DNSSEC_VALIDITY_MAX, &n)) {
		c->dnssec.refresh = (uint32_t)n;
		if (c->dnssec.refresh > refresh_max)
			report(l, get_member(g, "refresh"),
			       "dnssec.refresh: %u is more than half of what a fresh signature "
			       "lives (dnssec.validity - dnssec.jitter = %u): drdns would re-sign "
			       "again and again",
			       c->dnssec.refresh, c->dnssec.validity - c->dnssec.jitter);
	}
}

static int cmp_desc(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? 1 : x > y ? -1 : 0;
}

/* alerts { repeat; escalate_after; rrsig_thresholds; rrsig_scan_interval } */
static void load_alerts(struct loader *l, const config_setting_t *root, struct drdns_conf *c)
{
	const config_setting_t *g = get_group(l, root, "alerts", false);
	long long n;
	if (!g)
		return;
	check_keys(l, g, "alerts", alerts_keys);
	get_num(l, g, "alerts", "repeat", 10, INCL, 604800, &c->alerts.repeat, NULL);
	if (get_int(l, g, "alerts", "escalate_after", 0, 1000, &n))
		c->alerts.escalate_after = (unsigned)n;
	get_num(l, g, "alerts", "rrsig_scan_interval", 5, INCL, 86400,
	        &c->alerts.rrsig_scan_interval, NULL);
	const config_setting_t *s = get_member(g, "rrsig_thresholds");
	if (!s)
		return;
	if (!config_setting_is_array(s) && !config_setting_is_list(s)) {
		report(l, s,
		       "alerts.rrsig_thresholds: expected a list of seconds, such as [604800, "
		       "259200, 86400]");
		return;
	}
	int count = config_setting_length(s);
	if (count > DRDNS_CONF_MAX_THRESHOLDS) {
		report(l, s, "alerts.rrsig_thresholds: %d entries, at most %d", count,
		       DRDNS_CONF_MAX_THRESHOLDS);
		return;
	}
	uint32_t th[DRDNS_CONF_MAX_THRESHOLDS];
	size_t used = 0;
	for (int i = 0; i < count; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		int t = config_setting_type(e);
		long long v = t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64
		                  ? config_setting_get_int64(e)
		                  : -1;
		if (v < 60 || v > DNSSEC_VALIDITY_MAX) {
			report(l, e,
			       "alerts.rrsig_thresholds[%d]: expected seconds from 60 to %lld "
			       "(integers)",
			       i, DNSSEC_VALIDITY_MAX);
			return;
		}
		for (size_t j = 0; j < used; j++)
			if (th[j] == (uint32_t)v) {
				report(l, e, "alerts.rrsig_thresholds[%d]: %lld is listed twice", i,
				       v);
				return;
			}
		th[used++] = (uint32_t)v;
	}
	qsort(th, used, sizeof(th[0]), cmp_desc);
	memcpy(c->alerts.rrsig_thresholds, th, sizeof(th[0]) * used);
	c->alerts.n_rrsig_thresholds = used;
	if (c->dnssec.keys && used > 0 && th[0] > c->dnssec.refresh)
		warn(l, s,
		     "alerts.rrsig_thresholds: %u is more than dnssec.refresh (%u): while "
		     "promoted, drdns's own signatures raise that alert before every "
		     "re-signing",
		     th[0], c->dnssec.refresh);
}

/* drill { zone } -- whether the zone is in the DR set is checked by --check and
 * by the drill itself (the set can change without a reload). */
static void load_drill(struct loader *l, const config_setting_t *root, struct drdns_conf *c)
{
	const config_setting_t *g = get_group(l, root, "drill", false);
	const config_setting_t *s;
	const char *v;
	if (!g)
		return;
	check_keys(l, g, "drill", drill_keys);
	if ((v = get_string(l, g, "drill", "zone", true, &s)))
		c->drill.zone = check_ns_name(l, s, "drill.zone", v);
}

/* Checks across settings: duplicates and collisions between addresses. */
static void check_cross(struct loader *l, const config_setting_t *root, const struct drdns_conf *c)
{
	const config_setting_t *list = get_member(root, "secondaries");
	const config_setting_t *mg = get_member(root, "master");
	struct addr ctl = parse_addr(c->controller.address);
	struct addr mst = parse_addr(c->master.address);

	if (addr_eq(&ctl, &mst)) {
		const config_setting_t *s = get_member(mg, "address");
		if (c->controller.port == c->master.port)
			report(l, s,
			       "master.address: %s port %u is this controller's own address "
			       "(controller.address)",
			       c->master.address, c->master.port);
		else
			warn(l, s,
			     "master.address: %s is also controller.address: the DR primary "
			     "should run on another host than the campus primary",
			     c->master.address);
	}

	for (size_t i = 0; i < c->n_secondaries; i++) {
		const struct drdns_secondary *a = &c->secondaries[i];
		const config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
		const config_setting_t *an = get_member(e, "name");
		const config_setting_t *aa = get_member(e, "address");
		struct addr aaddr = parse_addr(a->address);

		if (a->name && c->controller.ns_name && strcmp(a->name, c->controller.ns_name) == 0)
			report(l, an,
			       "secondaries[%zu].name: %s is controller.ns_name, the DR primary "
			       "itself; list only the other nameservers",
			       i, a->name);
		if (addr_eq(&aaddr, &mst))
			report(l, aa,
			       "secondaries[%zu].address: %s is master.address; the campus "
			       "primary cannot also be a secondary",
			       i, a->address);
		if (addr_eq(&aaddr, &ctl)) {
			if (a->port == c->controller.port)
				report(l, aa,
				       "secondaries[%zu].address: %s port %u is controller.address "
				       "and port, drdnsd's own",
				       i, a->address, a->port);
			else
				warn(l, aa,
				     "secondaries[%zu].address: %s is also controller.address "
				     "(another port): NSD secondaries will not transfer from a "
				     "primary on "
				     "a non-standard port; give drdnsd its own address on port 53",
				     i, a->address);
		}
		for (size_t j = 0; j < i; j++) {
			const struct drdns_secondary *b = &c->secondaries[j];
			const config_setting_t *be = config_setting_get_elem(list, (unsigned)j);
			struct addr baddr = parse_addr(b->address);
			if (a->name && b->name && strcmp(a->name, b->name) == 0)
				report(l, an,
				       "secondaries[%zu].name: %s is listed twice (also "
				       "secondaries[%zu] at line %u)",
				       i, a->name, j, config_setting_source_line(be));
			if (addr_eq(&aaddr, &baddr) && a->port == b->port)
				report(l, aa,
				       "secondaries[%zu].address: %s port %u is listed twice (also "
				       "secondaries[%zu] at line %u)",
				       i, a->address, a->port, j, config_setting_source_line(be));
		}
	}

	size_t off_campus = 0;
	for (size_t i = 0; i < c->n_secondaries; i++)
		off_campus += !c->secondaries[i].on_campus;
	if (c->n_secondaries > 0 && off_campus == 0 && c->policy.auto_promote)
		warn(l, list,
		     "every secondary is on_campus: the watchdog's isolation guard has no "
		     "off-campus secondary to ask, so it will always see ISOLATED and never "
		     "promote on its own");

	size_t known = c->n_secondaries + 1;
	if (c->n_secondaries > 0 && c->zones.min_ns > known)
		warn(l, get_member(get_member(root, "zones"), "min_ns"),
		     "zones.min_ns (%u) is more than the %zu nameservers known (controller.ns_name "
		     "and "
		     "the secondaries): every NS will always be kept",
		     c->zones.min_ns, known);
}

/* ---- public ---- */

static void set_defaults(struct drdns_conf *c)
{
	c->controller.port = 53;
	c->master.port = 53;
	c->master.interval = 1.0;
	c->master.timeout = 0.5;
	c->master.fail_after = 3;
	c->master.recover_after = 3;
	c->master.axfr_timeout = 60.0;
	c->zones.dr_ttl = 600;
	c->zones.min_ns = 2;
	c->policy.auto_promote = false;
	c->policy.probe_timeout = 1.0;
	c->policy.probe_attempts = 2;
	c->policy.notify_timeout = 1.0;
	c->policy.notify_attempts = 5;
	c->policy.poll_interval = 0.2;
	c->policy.default_wait = 120.0;
	c->policy.promote_after = 60.0;
	c->policy.expire_margin = 3600.0;
	c->policy.block_after_failover = 3600.0;
	c->policy.auto_demote = false;
	c->hooks.timeout = 30.0;
	c->metrics.port = 9353;
	c->dnssec.validity = 2592000; /* 30 days */
	c->dnssec.inception_offset = 3600;
	c->alerts.repeat = 3600.0;
	c->alerts.escalate_after = 3;
	c->alerts.rrsig_thresholds[0] = 604800; /* 7 days */
	c->alerts.rrsig_thresholds[1] = 259200; /* 3 days */
	c->alerts.rrsig_thresholds[2] = 86400;  /* 1 day */
	c->alerts.n_rrsig_thresholds = 3;
	c->alerts.rrsig_scan_interval = 3600.0;
}

int drdns_conf_load(const char *path, struct drdns_conf **out, struct drdns_diag *diag)
{
	struct loader l = {.path = path, .diag = diag};
	struct drdns_conf *c = NULL;
	config_t cf;
	int rc = DRDNS_ECONF;
	char *abs = NULL;

	*out = NULL;
	config_init(&cf);
	if (!path || !path[0]) {
		drdns_diag_error(diag, "no configuration file given");
		goto cleanup;
	}

	char cwd[PATH_MAX];
	if (path[0] != '/' && !getcwd(cwd, sizeof(cwd))) {
		drdns_diag_error(diag, "%s: cannot resolve a relative path: %s", path,
		                 strerror(errno));
		goto cleanup;
	}
	abs = path[0] == '/' ? strdup(path) : drdns_path_resolve(cwd, path);
	l.dir = abs ? drdns_dirname(abs) : NULL;
	if (!abs || !l.dir) {
		rc = DRDNS_ENOMEM;
		goto cleanup;
	}

	/* libconfig only says "file I/O error"; find out why ourselves. */
	FILE *f = fopen(path, "r");
	if (!f) {
		drdns_diag_error(diag, "%s: cannot open the configuration: %s", path,
		                 strerror(errno));
		goto cleanup;
	}
	fclose(f);
	struct stat st;
	if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
		drdns_diag_error(diag, "%s: cannot read the configuration: not a regular file",
		                 path);
		goto cleanup;
	}

	config_set_include_dir(&cf, l.dir);
	if (config_read_file(&cf, path) != CONFIG_TRUE) {
		if (config_error_type(&cf) == CONFIG_ERR_FILE_IO)
			drdns_diag_error(diag, "%s: %s",
			                 config_error_file(&cf) ? config_error_file(&cf) : path,
			                 config_error_text(&cf));
		else
			drdns_diag_error(diag, "%s:%d: %s",
			                 config_error_file(&cf) ? config_error_file(&cf) : path,
			                 config_error_line(&cf), config_error_text(&cf));
		goto cleanup;
	}

	c = calloc(1, sizeof(*c));
	if (!c) {
		rc = DRDNS_ENOMEM;
		goto cleanup;
	}
	set_defaults(c);
	c->path = abs;
	abs = NULL;

	const config_setting_t *root = config_root_setting(&cf);
	check_keys(&l, root, "", root_keys);
	load_controller(&l, root, c);
	load_master(&l, root, c);
	load_secondaries(&l, root, c);
	load_zones(&l, root, c);
	load_policy(&l, root, c);
	load_hooks(&l, root, c);
	load_metrics(&l, root, c);
	load_drill(&l, root, c);
	load_dnssec(&l, root, c);
	load_alerts(&l, root, c);
	check_cross(&l, root, c);
	flush_messages(&l);

	if (l.oom) {
		rc = DRDNS_ENOMEM;
		drdns_diag_error(diag, "%s: out of memory while loading the configuration", path);
	} else if (l.errors == 0) {
		*out = c;
		c = NULL;
		rc = 0;
	}

cleanup:
	for (size_t i = 0; i < l.n_msgs; i++)
		free(l.msgs[i].text);
	free(l.msgs);
	config_destroy(&cf);
	drdns_conf_free(c);
	free(abs);
	free(l.dir);
	return rc;
}

void drdns_conf_free(struct drdns_conf *conf)
{
	if (!conf)
		return;
	free(conf->path);
	free(conf->controller.id);
	free(conf->controller.address);
	free(conf->controller.ns_name);
	free(conf->controller.control_socket);
	free(conf->controller.state_dir);
	free(conf->controller.audit_log);
	free(conf->controller.pid_file);
	free(conf->controller.identity);
	free(conf->controller.version);
	free(conf->controller.nsid);
	for (size_t i = 0; i < conf->controller.n_allow_transfer; i++)
		free(conf->controller.allow_transfer[i]);
	free(conf->controller.allow_transfer);
	free(conf->master.address);
	free(conf->master.tsig_key_file);
	drdns_tsig_key_free(conf->master.key);
	for (size_t i = 0; i < conf->n_secondaries; i++) {
		struct drdns_secondary *s = &conf->secondaries[i];
		free(s->name);
		free(s->address);
		free(s->tsig_key_file);
		drdns_tsig_key_free(s->key);
		for (size_t k = 0; k < s->n_transfer_sources; k++)
			free(s->transfer_sources[k]);
		free(s->transfer_sources);
	}
	free(conf->secondaries);
	free(conf->zones.directory);
	free(conf->hooks.pre_promote);
	free(conf->hooks.post_promote);
	free(conf->hooks.post_demote);
	free(conf->hooks.on_alert);
	free(conf->hooks.on_escalate);
	free(conf->metrics.address);
	free(conf->drill.zone);
	free(conf->dnssec.keys);
	free(conf);
}

const struct drdns_secondary *drdns_conf_find_secondary(const struct drdns_conf *conf,
                                                        const char *name)
{
	if (!conf || !name)
		return NULL;
	size_t n = strlen(name);
	if (n > 0 && name[n - 1] == '.')
		n--;
	for (size_t i = 0; i < conf->n_secondaries; i++) {
		const char *s = conf->secondaries[i].name;
		if (!s)
			continue;
		size_t m = strlen(s);
		if (m > 0 && s[m - 1] == '.')
			m--;
		if (m == n && strncasecmp(s, name, n) == 0)
			return &conf->secondaries[i];
	}
	return NULL;
}
