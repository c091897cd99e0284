/*
 * drdnsctl: the operator's and the runbooks' interface to drdnsd.
 *
 *   drdnsctl [-s SOCKET] [--json] [-t TIMEOUT] COMMAND [ARGS]
 *
 * Exit codes are the contract (enum drdns_exit): the daemon's reply carries the
 * code and drdnsctl exits with it; drdnsctl's own failures are 1 (could not
 * talk to drdnsd; nothing changed) and 2 (usage).  With --json, stdout holds
 * exactly one JSON document, also when drdnsctl itself fails.
 */
#include "drdns/ctl.h"
#include "drdns/error.h"
#include "drdns_config.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PROG           "drdnsctl"
#define STATUS_TIMEOUT 60.0 /* default -t for commands that change nothing */
#define WAIT_MARGIN    60.0 /* default -t = --wait + this */

struct cli {
	const char *socket;
	bool json;
	double timeout; /* seconds, 0 = none */
	bool timeout_set;
	const char *command; /* as typed, for messages */
	/* change commands (promote, later demote) */
	const char *reason;
	bool dry_run, yes, force;
	double wait;
	bool wait_set;
	/* drill */
	const char *zone;
	const char *alert_id; /* ack ID */
	bool preflight_only;
};

/* ------------------------------------------------------------------------ */
/* messages and exits                                                       */

/* With --json, a failure of drdnsctl itself still gives one document. */
static void json_failure(const struct cli *c, int code, const char *msg)
{
	if (!c->json)
		return;
	json_t *doc =
	    json_pack("{s:i, s:s?, s:s}", "exit", code, "command", c->command, "error", msg);
	if (doc) {
		json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		fputc('\n', stdout);
		json_decref(doc);
	}
}

__attribute__((format(printf, 2, 3), noreturn)) static void usage_error(const struct cli *c,
                                                                        const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s: %s (see '%s --help')\n", PROG, msg, PROG);
	json_failure(c, DRDNS_EXIT_USAGE, msg);
	exit(DRDNS_EXIT_USAGE);
}

__attribute__((format(printf, 3, 4), noreturn)) static void fail(const struct cli *c, int code,
                                                                 const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s: %s\n", PROG, msg);
	json_failure(c, code, msg);
	exit(code);
}

static void print_usage(FILE *f)
{
	fprintf(f,
	        "Usage: %s [-s SOCKET] [--json] [-t SECONDS] COMMAND [ARGS]\n"
	        "\n"
	        "Control drdnsd, the DR failover controller for authoritative DNS.\n"
	        "\n"
	        "Commands:\n",
	        PROG);
	for (int i = 0; i < DRDNS_CMD_UNKNOWN; i++) {
		const struct drdns_ctl_cmd_info *info = drdns_ctl_cmd_info((enum drdns_ctl_cmd)i);
		if (!info)
			continue;
		fprintf(f, "  %s%s%s\n      %s\n", info->name, info->args[0] ? " " : "", info->args,
		        info->summary);
	}
	fprintf(
	    f,
	    "\n"
	    "Options:\n"
	    "  -s, --socket PATH    control socket (default $DRDNS_SOCKET, else %s)\n"
	    "  -j, --json           print drdnsd's reply as one JSON document on stdout\n"
	    "  -t, --timeout SECS   give up waiting for drdnsd after SECS (0: never; default\n"
	    "                       %.0f for status, check, pre-flights and dry runs;\n"
	    "                       --wait + %.0f for promote and demote, 3 x --wait + that\n"
	    "                       for a live drill; never for those without --wait)\n"
	    "  -h, --help           this help\n"
	    "      --version        print the version\n"
	    "\n"
	    "pause, resume and ack options:\n"
	    "  -r, --reason TEXT    why (required for pause and ack; recorded in the audit\n"
	    "                       log)\n"
	    "\n"
	    "promote, demote and resign options:\n"
	    "  -r, --reason TEXT    why (required; recorded in the audit log with who and when)\n"
	    "  -n, --dry-run        show the plan, change nothing\n"
	    "  -y, --yes            do not ask for confirmation (required when stdin is not a\n"
	    "                       terminal)\n"
	    "      --force          promote even though the master still answers (switchover;\n"
	    "                       promote only)\n"
	    "  -w, --wait SECS      wait this long for secondaries to converge (default: the\n"
	    "                       daemon's policy.default_wait)\n"
	    "\n"
	    "drill options:\n"
	    "  -z, --zone ZONE      the drill zone (default: the daemon's drill.zone)\n"
	    "  -p, --preflight-only run the read-only pre-flight, no live drill\n"
	    "  -w, --wait SECS      per drill step (default: policy.default_wait)\n"
	    "  -r, --reason TEXT    why (optional; recorded in the audit log)\n"
	    "\n"
	    "Exit status:\n"
	    "  0  done, and every secondary converged\n"
	    "  1  error, nothing changed\n"
	    "  2  usage error\n"
	    "  3  done, but some secondaries did not converge within --wait\n"
	    "  4  refused by a safety check; the message says why and what to do\n",
	    DRDNS_DEFAULT_SOCKET, STATUS_TIMEOUT, WAIT_MARGIN);
}

/* ------------------------------------------------------------------------ */
/* option parsing                                                           */

enum {
	OPT_VERSION = 1000,
	OPT_FORCE
};

static const struct option drill_long[] = {
    {"socket", required_argument, NULL, 's'},
    {"json", no_argument, NULL, 'j'},
    {"timeout", required_argument, NULL, 't'},
    {"help", no_argument, NULL, 'h'},
    {"reason", required_argument, NULL, 'r'},
    {"zone", required_argument, NULL, 'z'},
    {"wait", required_argument, NULL, 'w'},
    {"preflight-only", no_argument, NULL, 'p'},
    {NULL, 0, NULL, 0},
};

static const struct option global_long[] = {
    {"socket", required_argument, NULL, 's'},    {"json", no_argument, NULL, 'j'},
    {"timeout", required_argument, NULL, 't'},   {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, OPT_VERSION}, {NULL, 0, NULL, 0},
};

static const struct option reason_long[] = {
    {"socket", required_argument, NULL, 's'},  {"json", no_argument, NULL, 'j'},
    {"timeout", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'},
    {"reason", required_argument, NULL, 'r'},  {NULL, 0, NULL, 0},
};

static const struct option change_long[] = {
    {"socket", required_argument, NULL, 's'},  {"json", no_argument, NULL, 'j'},
    {"timeout", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'},
    {"reason", required_argument, NULL, 'r'},  {"dry-run", no_argument, NULL, 'n'},
    {"yes", no_argument, NULL, 'y'},           {"force", no_argument, NULL, OPT_FORCE},
    {"wait", required_argument, NULL, 'w'},    {NULL, 0, NULL, 0},
};

static bool parse_seconds(const char *s, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	while (end && (*end == ' ' || *end == '\t'))
		end++;
	if (errno || end == s || *end || !isfinite(v) || v < 0 || v > 1e7)
		return false;
	*out = v;
	return true;
}

/* Options that may come before or after the command. */
static bool common_option(struct cli *c, int opt, const char *arg)
{
	switch (opt) {
	case 's':
		if (!arg[0])
			usage_error(c, "--socket needs a path");
		c->socket = arg;
		return true;
	case 'j': c->json = true; return true;
	case 't':
		if (!parse_seconds(arg, &c->timeout))
			usage_error(c, "--timeout: '%s' is not a number of seconds >= 0", arg);
		c->timeout_set = true;
		return true;
	default: return false;
	}
}

static void bad_option(const struct cli *c, int opt, char **argv)
{
	const char *word = argv[optind - 1];
	if (opt == ':')
		usage_error(c, "option '%s' needs a value", word);
	if (optopt && !(word[0] == '-' && word[1] == '-'))
		usage_error(c, "unknown option '-%c'%s%s", optopt, c->command ? " for " : "",
		            c->command ? c->command : "");
	usage_error(c, "unknown option '%s'%s%s", word, c->command ? " for " : "",
	            c->command ? c->command : "");
}

/* Parse the options after the command name (argv[0] is the command). */
static void parse_command_options(struct cli *c, const struct drdns_ctl_cmd_info *info, int argc,
                                  char **argv)
{
	bool drill = info->cmd == DRDNS_CMD_DRILL;
	const struct option *longopts = drill                 ? drill_long
	                                : info->changes_state ? change_long
	                                : info->takes_reason  ? reason_long
	                                                      : global_long;
	const char *shortopts = drill                 ? ":s:jt:hr:z:w:p"
	                        : info->changes_state ? ":s:jt:hr:nyw:"
	                        : info->takes_reason  ? ":s:jt:hr:"
	                                              : ":s:jt:h";
	int opt;

	optind = 0; /* full re-initialisation of GNU getopt */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		if (common_option(c, opt, optarg))
			continue;
		switch (opt) {
		case 'h':
			printf("Usage: %s [-s SOCKET] [--json] [-t SECONDS] %s%s%s\n  %s\n", PROG,
			       info->name, info->args[0] ? " " : "", info->args, info->summary);
			exit(0);
		case 'r': c->reason = optarg; break;
		case 'n': c->dry_run = true; break;
		case 'y': c->yes = true; break;
		case OPT_FORCE: c->force = true; break;
		case 'z':
			if (!optarg[0])
				usage_error(c, "--zone needs a zone name");
			c->zone = optarg;
			break;
		case 'p': c->preflight_only = true; break;
		case 'w':
			if (!parse_seconds(optarg, &c->wait))
				usage_error(c, "--wait: '%s' is not a number of seconds >= 0",
				            optarg);
			c->wait_set = true;
			break;
		default: bad_option(c, opt, argv);
		}
	}
	if (info->cmd == DRDNS_CMD_ACK) {
		if (optind >= argc || !argv[optind][0])
			usage_error(c, "ack needs the alert's ID (drdnsctl status lists them)");
		c->alert_id = argv[optind++];
	}
	if (optind < argc)
		usage_error(c, "%s takes no argument '%s'", info->name, argv[optind]);
}

/* ------------------------------------------------------------------------ */
/* talking to drdnsd                                                        */

static json_t *client_identity(void)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
	struct passwd *pw = getpwuid(getuid());
	const char *login = getlogin();
	if (pw)
		json_object_set_new(o, "user", json_string(pw->pw_name));
	else if (login)
		json_object_set_new(o, "user", json_string(login));
	json_object_set_new(o, "uid", json_integer((json_int_t)getuid()));
	if (login && (!pw || strcmp(login, pw->pw_name) != 0))
		json_object_set_new(o, "login", json_string(login));
	const char *v;
	if ((v = getenv("SUDO_USER")) && v[0])
		json_object_set_new(o, "sudo_user", json_string(v));
	if ((v = getenv("SSH_CLIENT")) && v[0])
		json_object_set_new(o, "ssh_client", json_string(v));
	if ((v = ttyname(STDIN_FILENO)) || (v = ttyname(STDERR_FILENO)))
		json_object_set_new(o, "tty", json_string(v));
	return o;
}

/* Send request; returns the reply or exits 1 with drdnsctl's message. */
static json_t *call(const struct cli *c, const json_t *request, bool changes)
{
	json_t *reply = NULL;
	char err[512];
	int rc = drdns_ctl_call(c->socket, request, c->timeout, &reply, err, sizeof(err));
	if (rc == 0)
		return reply;
	/* Only a failure to connect proves the request never reached drdnsd; after
	 * that (timeout, lost connection: drdnsd stopping, say) a change may have
	 * been committed, so never claim "nothing changed". */
	bool never_sent = rc == -ENOENT || rc == -ECONNREFUSED || rc == -EACCES || rc == -EPERM ||
	                  rc == -ENOTSOCK || rc == DRDNS_EINVAL;
	if (changes && !never_sent)
		fail(c, DRDNS_EXIT_ERROR,
		     "%s; drdnsd may still be carrying out the %s: check with '%s status' before "
		     "trying again",
		     err, c->command, PROG);
	fail(c, DRDNS_EXIT_ERROR, "%s", err);
}

static int reply_exit(const json_t *reply)
{
	json_int_t e = json_integer_value(json_object_get(reply, "exit"));
	return e >= 0 && e <= 255 ? (int)e : DRDNS_EXIT_ERROR;
}

/* ------------------------------------------------------------------------ */
/* human output: every field may be missing; print what is there            */

static const char *jstr(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static bool jint(const json_t *o, const char *k, long long *out)
{
	const json_t *v = json_object_get(o, k);
	if (json_is_integer(v)) {
		*out = json_integer_value(v);
		return true;
	}
	if (json_is_real(v)) {
		*out = (long long)json_real_value(v);
		return true;
	}
	return false;
}

static bool jnum(const json_t *o, const char *k, double *out)
{
	const json_t *v = json_object_get(o, k);
	if (!json_is_number(v))
		return false;
	*out = json_number_value(v);
	return true;
}

/* 1 true, 0 false, -1 missing */
static int jbool(const json_t *o, const char *k)
{
	const json_t *v = json_object_get(o, k);
	return json_is_boolean(v) ? json_is_true(v) : -1;
}

static void print_value(FILE *f, const json_t *v)
{
	if (json_is_string(v)) {
		fputs(json_string_value(v), f);
		return;
	}
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
	fputs(s ? s : "?", f);
	free(s);
}

/* Fields the printer does not know yet (newer daemon): show them raw. */
static void print_other_fields(FILE *f, const json_t *reply, const char *const *known)
{
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)reply, key, v)
	{
		bool k = false;
		for (const char *const *p = known; *p && !k; p++)
			k = strcmp(*p, key) == 0;
		if (k || json_is_null(v))
			continue;
		fprintf(f, "%s: ", key);
		print_value(f, v);
		fputc('\n', f);
	}
}

static const char *plural(long long n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}

/* A text table: cells are copied; columns are padded to the widest cell
 * except the last. */
struct table {
	size_t ncols, nrows;
	char **cells;
};

static void table_row(struct table *t, ...)
{
	char **grown = realloc(t->cells, (t->nrows + 1) * t->ncols * sizeof(char *));
	if (!grown)
		return;
	t->cells = grown;
	va_list ap;
	va_start(ap, t);
	for (size_t i = 0; i < t->ncols; i++) {
		const char *v = va_arg(ap, const char *);
		t->cells[t->nrows * t->ncols + i] = strdup(v ? v : "");
	}
	va_end(ap);
	t->nrows++;
}

static void table_free(struct table *t)
{
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	t->cells = NULL;
	t->nrows = 0;
}

static void table_print(FILE *f, struct table *t, const char *indent)
{
	size_t w[16] = {0};
	for (size_t r = 0; r < t->nrows; r++)
		for (size_t i = 0; i < t->ncols && i < 16; i++) {
			const char *v = t->cells[r * t->ncols + i];
			if (v && strlen(v) > w[i])
				w[i] = strlen(v);
		}
	for (size_t r = 0; r < t->nrows; r++) {
		/* drop trailing empty cells so lines do not end in blanks */
		size_t last = t->ncols;
		while (last > 1 &&
		       !(t->cells[r * t->ncols + last - 1] && t->cells[r * t->ncols + last - 1][0]))
			last--;
		fputs(indent, f);
		for (size_t i = 0; i < last; i++) {
			const char *v = t->cells[r * t->ncols + i];
			if (i + 1 < last)
				fprintf(f, "%-*s  ", (int)w[i], v ? v : "");
			else
				fputs(v ? v : "", f);
		}
		fputc('\n', f);
	}
	table_free(t);
}

static void fmt_int(char *buf, size_t len, const json_t *o, const char *k)
{
	long long v;
	if (jint(o, k, &v))
		snprintf(buf, len, "%lld", v);
	else
		snprintf(buf, len, "-");
}

static void print_message_and_error(const json_t *reply)
{
	const char *msg = jstr(reply, "message");
	const char *err = jstr(reply, "error");
	if (msg)
		printf("%s\n", msg);
	if (err) {
		fflush(stdout);
		const char *cmd = jstr(reply, "command");
		fprintf(stderr, "%s: %s%s%s\n", PROG, cmd ? cmd : "", cmd ? ": " : "", err);
	}
}

/* ---- promote ---- */

/* "    label: owner TYPE address", one line per record of arr. */
static void print_records(FILE *f, const json_t *arr, const char *label)
{
	size_t i;
	const json_t *d;
	json_array_foreach(arr, i, d)
	{
		fprintf(f, "    %s: ", label);
		if (json_is_string(d)) {
			/* records may come in zone-file form, with tabs: one space reads better */
			bool space = false;
			for (const char *p = json_string_value(d); *p; p++) {
				bool ws = *p == ' ' || *p == '\t';
				if (!ws)
					fputc(*p, f);
				else if (!space)
					fputc(' ', f);
				space = ws;
			}
		} else {
			print_value(f, d);
		}
		fputc('\n', f);
	}
}

static void print_zone_plan(FILE *f, const json_t *z)
{
	const char *name = jstr(z, "zone");
	long long from = 0, to = 0, floor = 0;
	bool have_from = jint(z, "max_observed", &from) || jint(z, "old_serial", &from);
	bool have_to = jint(z, "new_serial", &to);
	bool have_floor = jint(z, "file_serial", &floor);
	const char *note = jstr(z, "note");

	fprintf(f, "  %s: serial ", name ? name : "?");
	if (have_from)
		fprintf(f, "%lld -> ", from);
	else if (have_floor && have_to)
		fprintf(f, "(none observed; file floor %lld) -> ", floor);
	if (have_to)
		fprintf(f, "%lld", to);
	else
		fputs("?", f);
	if (note)
		fprintf(f, " (%s)", note);
	fputc('\n', f);

	size_t i;
	const json_t *d;
	int publishes = jbool(z, "publishes_self");
	if (publishes == 1) {
		const char *self = NULL;
		json_array_foreach(json_object_get(z, "ns"), i, d)
		{
			const char *verdict = jstr(d, "verdict");
			if (verdict && strcmp(verdict, "keep-self") == 0)
				self = jstr(d, "name");
		}
		fprintf(f, "    publishes %s as a public nameserver (listed in the DR file)\n",
		        self ? self : "drdnsd");
	} else if (publishes == 0) {
		fputs("    does not publish drdns (MNAME only)\n", f);
	}
	struct table t = {.ncols = 5};
	json_array_foreach(json_object_get(z, "ns"), i, d)
	{
		const char *verdict = jstr(d, "verdict");
		const char *shown = verdict ? verdict : "?";
		if (verdict && strcmp(verdict, "drop") == 0)
			shown = "DROPPED";
		else if (verdict && strcmp(verdict, "keep-min-ns") == 0)
			shown = "kept (min_ns)";
		else if (verdict && strncmp(verdict, "keep", 4) == 0)
			shown = "kept";
		table_row(&t, "NS", jstr(d, "name"), jstr(d, "address") ? jstr(d, "address") : "-",
		          shown, jstr(d, "reason"));
	}
	table_print(f, &t, "    ");
	print_records(f, json_object_get(z, "dropped_glue"), "glue dropped (with its cut)");
	print_records(f, json_object_get(z, "kept_addresses"),
	              "address kept (zone data, not glue)");
	long long clamped;
	if (jint(z, "ttls_clamped", &clamped) && clamped > 0)
		fprintf(f, "    TTLs clamped to dr_ttl: %lld %s\n", clamped,
		        plural(clamped, "record", "records"));
	if (jbool(z, "soa_minimum_clamped") == 1)
		fprintf(f, "    SOA minimum clamped to dr_ttl\n");
	const char *warning = jstr(z, "warning");
	if (warning)
		fprintf(f, "    warning: %s\n", warning);
}

/* Per secondary with a refused transfer: "  ns1.example.edu.: transfer of ...". */
static void print_refusals(FILE *f, const json_t *secs)
{
	size_t i;
	const json_t *s;
	json_array_foreach(secs, i, s)
	{
		const json_t *x = json_object_get(s, "transfer_refused");
		const char *text = jstr(x, "text");
		if (text)
			fprintf(f, "  %s: %s\n", jstr(s, "name") ? jstr(s, "name") : "?", text);
	}
}

static void print_promote_secondaries(FILE *f, const json_t *secs)
{
	struct table t = {.ncols = 8};
	size_t i, j;
	const json_t *s, *z;

	table_row(&t, "SECONDARY", "ADDRESS", "NOTIFY", "CONVERGED", "TIME", "ZONE", "SERIAL",
	          "DETAIL");
	json_array_foreach(secs, i, s)
	{
		char notify[48] = "-", conv[16] = "-", secs_s[32] = "-", serial[24];
		const json_t *n = json_object_get(s, "notify");
		long long attempts;
		bool skipped = jbool(s, "skipped") == 1;
		int acked = jbool(n, "acked");
		if (skipped) {
			snprintf(notify, sizeof(notify), "skipped");
		} else if (acked >= 0) {
			bool have_att = jint(n, "attempts", &attempts);
			snprintf(notify, sizeof(notify), "%s", acked ? "acked" : "NOT acked");
			if (have_att)
				snprintf(notify + strlen(notify), sizeof(notify) - strlen(notify),
				         " (%lld %s)", attempts, plural(attempts, "try", "tries"));
		}
		int c = jbool(s, "converged");
		if (c >= 0 && !skipped)
			snprintf(conv, sizeof(conv), "%s", c ? "yes" : "NO");
		double sec;
		if (jnum(s, "seconds", &sec))
			snprintf(secs_s, sizeof(secs_s), "%.2f s", sec);
		const char *detail = jstr(s, "detail");
		if (detail && strcmp(detail, "ok") == 0)
			detail = NULL;

		const json_t *zones = json_object_get(s, "zones");
		if (json_array_size(zones) == 0) {
			table_row(&t, jstr(s, "name"), jstr(s, "address"), notify, conv, secs_s, "",
			          "", detail);
			continue;
		}
		json_array_foreach(zones, j, z)
		{
			fmt_int(serial, sizeof(serial), z, "serial");
			if (j == 0)
				table_row(&t, jstr(s, "name"), jstr(s, "address"), notify, conv,
				          secs_s, jstr(z, "zone"), serial, detail);
			else
				table_row(&t, "", "", "", "", "", jstr(z, "zone"), serial, "");
		}
	}
	table_print(f, &t, "  ");
}

static void print_promote(FILE *f, const json_t *reply)
{
	static const char *const known[] = {"exit",    "command", "dry_run", "already_promoted",
	                                    "message", "error",   "zones",   "secondaries",
	                                    NULL};
	bool dry = jbool(reply, "dry_run") == 1;
	const json_t *zones = json_object_get(reply, "zones");
	const json_t *secs = json_object_get(reply, "secondaries");
	size_t i;
	const json_t *z;

	if (json_array_size(zones) > 0) {
		fprintf(f, "%s\n", dry ? "Plan (dry run, nothing changed):" : "Zones:");
		json_array_foreach(zones, i, z) print_zone_plan(f, z);
	}
	if (json_is_array(secs) && json_array_size(secs) > 0) {
		fprintf(f, "Secondaries:\n");
		print_promote_secondaries(f, secs);
		print_refusals(f, secs);
		size_t total = json_array_size(secs), conv = 0, skipped = 0;
		json_array_foreach(secs, i, z)
		{
			conv += jbool(z, "converged") == 1;
			skipped += jbool(z, "skipped") == 1;
		}
		fprintf(f, "%zu of %zu %s converged", conv, total,
		        plural((long long)total, "secondary", "secondaries"));
		if (skipped)
			fprintf(f, " (%zu skipped: did not answer at promotion)", skipped);
		fputc('\n', f);
	}
	print_other_fields(f, reply, known);
	fflush(f);
}

/* ---- status ---- */

static void fmt_since(char *buf, size_t len, long long since)
{
	time_t t = (time_t)since;
	struct tm tm;
	char when[32];
	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
	long long ago = (long long)time(NULL) - since;
	if (ago < 0)
		snprintf(buf, len, "%s", when);
	else if (ago < 120)
		snprintf(buf, len, "%s, %lld s ago", when, ago);
	else if (ago < 7200)
		snprintf(buf, len, "%s, %lld min ago", when, ago / 60);
	else if (ago < 172800)
		snprintf(buf, len, "%s, %lld h %lld min ago", when, ago / 3600, ago % 3600 / 60);
	else
		snprintf(buf, len, "%s, %lld days ago", when, ago / 86400);
}

/* demote: the per-zone failback check, then each secondary's return. */
static void print_demote(FILE *f, const json_t *r)
{
	size_t i;
	const json_t *z;
	const json_t *zones = json_object_get(r, "zones");
	if (json_array_size(zones) > 0) {
		struct table t = {.ncols = 5};
		table_row(&t, "ZONE", "DR SERIAL", "MASTER", "READY", "MASTER MUST PUBLISH");
		json_array_foreach(zones, i, z)
		{
			char dr[24], m[24], must[48] = "";
			long long v, first;
			fmt_int(dr, sizeof(dr), z, "dr_serial");
			fmt_int(m, sizeof(m), z, "master_serial");
			if (jint(z, "master_must_publish", &v)) {
				if (jint(z, "first_publish", &first))
					snprintf(must, sizeof(must), "%lld, then %lld", first, v);
				else
					snprintf(must, sizeof(must), "%lld", v);
			}
			table_row(&t, jstr(z, "zone"), dr, m, jbool(z, "ready") == 1 ? "yes" : "NO",
			          must);
		}
		table_print(f, &t, "  ");
	}
	/* the hand-back relay: the campus copies fetched, checked and served */
	const json_t *hb = json_object_get(r, "handback");
	const json_t *hbz = json_object_get(hb, "zones");
	if (json_array_size(hbz) > 0) {
		fprintf(f, "\nhand-back (campus copies by AXFR from the master):\n");
		struct table t = {.ncols = 6};
		table_row(&t, "ZONE", "DR SERIAL", "CAMPUS", "RECORDS", "OK", "DETAIL");
		json_array_foreach(hbz, i, z)
		{
			char dr[24], cs[24], rec[24];
			fmt_int(dr, sizeof(dr), z, "dr_serial");
			fmt_int(cs, sizeof(cs), z, "campus_serial");
			fmt_int(rec, sizeof(rec), z, "records");
			table_row(&t, jstr(z, "zone"), dr, cs, rec,
			          jbool(z, "ok") == 1 ? "yes" : "NO", jstr(z, "detail"));
		}
		table_print(f, &t, "  ");
		double v;
		if (jnum(hb, "seconds", &v))
			fprintf(f, "  served the copies for %.2f s (%s), then REFUSED\n", v,
			        jstr(hb, "closed") ? jstr(hb, "closed") : "closed");
		else if (jnum(hb, "window_seconds", &v))
			fprintf(f,
			        "  would serve the copies for at most %.0f s while the secondaries "
			        "follow\n",
			        v);
	}
	const json_t *secs = json_object_get(r, "secondaries");
	if (json_array_size(secs) > 0) {
		fprintf(f, "\nsecondaries:\n");
		struct table t = {.ncols = 5};
		table_row(&t, "NAME", "ADDRESS", "NOTIFY", "BACK AFTER", "DETAIL");
		json_array_foreach(secs, i, z)
		{
			char secs_s[32] = "-";
			double v;
			if (jnum(z, "seconds", &v))
				snprintf(secs_s, sizeof(secs_s), "%.2f s", v);
			table_row(&t, jstr(z, "name"), jstr(z, "address"),
			          jbool(z, "notify_acked") == 1 ? "acked" : "no ack", secs_s,
			          jstr(z, "detail"));
		}
		table_print(f, &t, "  ");
		print_refusals(f, secs);
	}
	fflush(f);
}

/* "2d 03h 15m" (or "EXPIRED 1h 05m ago") for seconds left. */
static void fmt_left(char *buf, size_t len, long long left)
{
	long long a = left < 0 ? -left : left;
	if (a >= 86400)
		snprintf(buf, len, "%s%lldd %02lldh %02lldm%s", left < 0 ? "EXPIRED " : "",
		         a / 86400, a % 86400 / 3600, a % 3600 / 60, left < 0 ? " ago" : "");
	else
		snprintf(buf, len, "%s%lldh %02lldm%s", left < 0 ? "EXPIRED " : "", a / 3600,
		         a % 3600 / 60, left < 0 ? " ago" : "");
}

/* The watchdog's DNSSEC view: per signed zone, time to dark and re-signing. */
static void print_status_dnssec(FILE *f, const json_t *wd)
{
	const json_t *wz;
	size_t k;
	time_t now = time(NULL);
	struct table t = {.ncols = 5};
	table_row(&t, "ZONE", "TIME TO DARK", "CAUSE", "EARLIEST RRSIG", "NEXT RE-SIGN");
	json_array_foreach(json_object_get(wd, "zones"), k, wz)
	{
		const json_t *d = json_object_get(wz, "dnssec");
		long long dark, rrsig, resign;
		char c1[48] = "-", c2[96] = "-", c3[48] = "-";
		if (!json_is_object(d))
			continue;
		if (jint(d, "seconds_to_dark", &dark))
			fmt_left(c1, sizeof(c1), dark);
		if (jint(d, "rrsig_earliest", &rrsig)) {
			fmt_left(c2, sizeof(c2), rrsig - (long long)now);
			if (jstr(d, "rrsig_earliest_at"))
				snprintf(c2 + strlen(c2), sizeof(c2) - strlen(c2), " (%s)",
				         jstr(d, "rrsig_earliest_at"));
		}
		if (jint(d, "next_resign", &resign))
			fmt_left(c3, sizeof(c3), resign - (long long)now);
		if (jbool(d, "signed") != 1 && !jint(d, "seconds_to_dark", &dark))
			continue;
		table_row(&t, jstr(wz, "zone"), c1,
		          jstr(d, "dark_cause") ? jstr(d, "dark_cause") : "-",
		          jbool(d, "signed") == 1 ? c2 : "unsigned", c3);
	}
	if (t.nrows > 1) {
		fputs("time to dark:\n", f);
		table_print(f, &t, "  ");
	} else {
		table_free(&t);
	}
	/* copies the last scan could not transfer: their signatures are unknown */
	const json_t *sec, *sz;
	size_t si, zi, unknown = 0;
	json_array_foreach(json_object_get(wd, "secondaries"), si, sec)
	{
		json_array_foreach(json_object_get(sec, "zones"), zi, sz)
		{
			const json_t *rr = json_object_get(sz, "rrsig");
			const char *detail = jstr(rr, "detail");
			if (!detail || !strcmp(detail, "ok"))
				continue;
			if (unknown++ < 4)
				fprintf(f, "%s %s %s: %s\n",
				        unknown == 1 ? "rrsig scan failed:" : "                  ",
				        jstr(sec, "name") ? jstr(sec, "name") : "?",
				        jstr(sz, "zone") ? jstr(sz, "zone") : "?", detail);
		}
	}
	if (unknown > 4)
		fprintf(f, "                   and %zu more\n", unknown - 4);
	const json_t *dn = json_object_get(wd, "dnssec");
	if (jstr(dn, "resign_error"))
		fprintf(f, "re-signing: %s\n", jstr(dn, "resign_error"));
}

/* An alert that can be acknowledged: who did, or how to. */
static void print_alert_ack(FILE *f, const json_t *o)
{
	if (jbool(o, "ackable") != 1)
		return;
	const json_t *ack = json_object_get(o, "ack");
	if (jbool(o, "acked") == 1 && json_is_object(ack)) {
		fprintf(f, "\n      acknowledged by %s: %s",
		        jstr(ack, "who") ? jstr(ack, "who") : "?",
		        jstr(ack, "reason") ? jstr(ack, "reason") : "");
		return;
	}
	long long repeats = 0;
	jint(o, "repeats", &repeats);
	fprintf(f,
	        "\n      NOT acknowledged (repeated %lld time%s%s): drdnsctl ack %s --reason ...",
	        repeats, repeats == 1 ? "" : "s", jbool(o, "escalated") == 1 ? ", ESCALATED" : "",
	        jstr(o, "id") ? jstr(o, "id") : "ID");
}

static void print_status(FILE *f, const json_t *r)
{
	static const char *const known[] = {
	    "exit",   "command",    "role",   "state",       "since",    "reason",
	    "who",    "controller", "master", "secondaries", "zones",    "alerts",
	    "server", "message",    "error",  "watchdog",    "handback", NULL};
	const json_t *ctl = json_object_get(r, "controller");
	const json_t *m = json_object_get(r, "master");
	size_t i, j;
	const json_t *o, *z;
	char buf[128], serial[24], lag[24], rtt[24];
	long long since, port;

	if (json_is_object(ctl)) {
		fprintf(f, "controller: %s", jstr(ctl, "id") ? jstr(ctl, "id") : "?");
		if (jstr(ctl, "address"))
			fprintf(f, " at %s", jstr(ctl, "address"));
		if (jint(ctl, "port", &port) && port != 53)
			fprintf(f, " port %lld", port);
		if (jstr(ctl, "ns_name"))
			fprintf(f, " (%s)", jstr(ctl, "ns_name"));
		fputc('\n', f);
	}
	if (jstr(r, "role") || jstr(r, "state")) {
		fprintf(f, "role: %s  state: %s", jstr(r, "role") ? jstr(r, "role") : "?",
		        jstr(r, "state") ? jstr(r, "state") : "?");
		if (jint(r, "since", &since) && since > 0) {
			fmt_since(buf, sizeof(buf), since);
			fprintf(f, "  since %s", buf);
		}
		fputc('\n', f);
	}
	if (jstr(r, "reason"))
		fprintf(f, "reason: %s\n", jstr(r, "reason"));
	const json_t *hb = json_object_get(r, "handback");
	if (json_is_object(hb)) {
		long long until = 0;
		jint(hb, "until", &until);
		fprintf(f, "hand-back: relaying the campus copies of");
		json_array_foreach(json_object_get(hb, "zones"), i, z)
		{
			long long sv = 0;
			jint(z, "serial", &sv);
			fprintf(f, " %s (%lld)", jstr(z, "zone") ? jstr(z, "zone") : "?", sv);
		}
		fprintf(f, " until the secondaries follow, %lld s at most\n",
		        until > (long long)time(NULL) ? until - (long long)time(NULL) : 0LL);
	}
	const json_t *who = json_object_get(r, "who");
	if (who && !json_is_null(who)) {
		fputs("by: ", f);
		print_value(f, who);
		fputc('\n', f);
	}

	const json_t *wd = json_object_get(r, "watchdog");
	if (json_is_object(wd)) {
		long long silent = 0;
		fprintf(f, "watchdog: %s%s", jstr(wd, "state") ? jstr(wd, "state") : "?",
		        jbool(wd, "paused") == 1 ? ", PAUSED" : "");
		if (jint(wd, "master_silent_rounds", &silent) && silent > 0)
			fprintf(f, ", master silent for %lld round%s", silent,
			        silent == 1 ? "" : "s");
		fputc('\n', f);
		const json_t *pb = json_object_get(wd, "paused_by");
		if (json_is_object(pb))
			fprintf(f, "paused by %s: %s\n", jstr(pb, "who") ? jstr(pb, "who") : "?",
			        jstr(pb, "reason") ? jstr(pb, "reason") : "");
		if (jstr(wd, "stepdown_error"))
			fprintf(f, "step-down: %s\n", jstr(wd, "stepdown_error"));
		const json_t *wz;
		size_t k;
		json_array_foreach(json_object_get(wd, "zones"), k, wz)
		{
			long long left;
			if (!jint(wz, "seconds_left", &left))
				continue;
			if (left <= 0) {
				fprintf(f, "  %s: a secondary may ALREADY have dropped it\n",
				        jstr(wz, "zone") ? jstr(wz, "zone") : "?");
				continue;
			}
			fprintf(f,
			        "  %s: a secondary may drop it in %lldd %02lldh%02lldm if nothing "
			        "changes\n",
			        jstr(wz, "zone") ? jstr(wz, "zone") : "?", left / 86400,
			        left % 86400 / 3600, left % 3600 / 60);
		}
		print_status_dnssec(f, wd);
	}

	if (json_is_object(m)) {
		int up = jbool(m, "up");
		fprintf(f, "\nmaster %s", jstr(m, "address") ? jstr(m, "address") : "?");
		if (jint(m, "port", &port) && port != 53)
			fprintf(f, " port %lld", port);
		if (up >= 0)
			fprintf(f, ": %s", up ? "up" : "DOWN");
		fputc('\n', f);
		struct table t = {.ncols = 4};
		table_row(&t, "ZONE", "SERIAL", "RTT", "DETAIL");
		json_array_foreach(json_object_get(m, "zones"), i, z)
		{
			double v;
			fmt_int(serial, sizeof(serial), z, "serial");
			if (jnum(z, "rtt", &v) && jbool(z, "answered") != 0)
				snprintf(rtt, sizeof(rtt), "%.0f ms", v * 1000.0);
			else
				snprintf(rtt, sizeof(rtt), "-");
			table_row(&t, jstr(z, "zone"), serial, rtt, jstr(z, "detail"));
		}
		if (t.nrows > 1)
			table_print(f, &t, "  ");
		else
			table_free(&t);
	}

	const json_t *secs = json_object_get(r, "secondaries");
	if (json_array_size(secs) > 0) {
		fprintf(f, "\nsecondaries:\n");
		struct table t = {.ncols = 6};
		table_row(&t, "NAME", "ADDRESS", "ZONE", "SERIAL", "LAG", "DETAIL");
		json_array_foreach(secs, i, o)
		{
			char addr[80];
			snprintf(addr, sizeof(addr), "%s",
			         jstr(o, "address") ? jstr(o, "address") : "-");
			if (jint(o, "port", &port) && port != 53)
				snprintf(addr + strlen(addr), sizeof(addr) - strlen(addr),
				         " port %lld", port);
			const json_t *zones = json_object_get(o, "zones");
			if (json_array_size(zones) == 0)
				table_row(&t, jstr(o, "name"), addr, "", "", "", jstr(o, "detail"));
			json_array_foreach(zones, j, z)
			{
				fmt_int(serial, sizeof(serial), z, "serial");
				fmt_int(lag, sizeof(lag), z, "lag");
				table_row(&t, j ? "" : jstr(o, "name"), j ? "" : addr,
				          jstr(z, "zone"), serial, lag, jstr(z, "detail"));
			}
		}
		table_print(f, &t, "  ");
	}

	const json_t *zones = json_object_get(r, "zones");
	if (json_array_size(zones) > 0) {
		fprintf(f, "\nDR zones:\n");
		struct table t = {.ncols = 3};
		table_row(&t, "ZONE", "PUBLISHED", "MASTER");
		json_array_foreach(zones, i, z)
		{
			char pub[24], mst[24];
			fmt_int(pub, sizeof(pub), z, "published_serial");
			fmt_int(mst, sizeof(mst), z, "master_serial");
			table_row(&t, jstr(z, "zone"), pub, mst);
		}
		table_print(f, &t, "  ");
	}

	const json_t *alerts = json_object_get(r, "alerts");
	if (json_is_array(alerts)) {
		if (json_array_size(alerts) == 0) {
			fprintf(f, "\nalerts: none\n");
		} else {
			fprintf(f, "\nalerts:\n");
			json_array_foreach(alerts, i, o)
			{
				fputs("  - ", f);
				if (json_is_object(o) && (jstr(o, "message") || jstr(o, "text"))) {
					if (jstr(o, "id"))
						fprintf(f, "[%s] ", jstr(o, "id"));
					else if (json_is_integer(json_object_get(o, "id")))
						fprintf(f, "[%lld] ",
						        (long long)json_integer_value(
						            json_object_get(o, "id")));
					fputs(jstr(o, "message") ? jstr(o, "message")
					                         : jstr(o, "text"),
					      f);
					print_alert_ack(f, o);
				} else {
					print_value(f, o);
				}
				fputc('\n', f);
			}
		}
	}
	const json_t *server = json_object_get(r, "server");
	if (json_is_object(server)) {
		const char *key;
		json_t *v;
		fputs("\nserver:", f);
		json_object_foreach((json_t *)server, key, v)
		{
			fprintf(f, " %s=", key);
			print_value(f, v);
		}
		fputc('\n', f);
	}
	bool other = false;
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)r, key, v)
	{
		bool k = false;
		for (const char *const *p = known; *p && !k; p++)
			k = strcmp(*p, key) == 0;
		other = other || (!k && !json_is_null(v));
	}
	if (other)
		fputc('\n', f);
	print_other_fields(f, r, known);
	fflush(f);
}

/* ---- check ---- */

/* "  title:" then each string of arr as "    - text"; nothing when arr is empty. */
static void print_list(FILE *f, const char *title, const json_t *arr)
{
	size_t i;
	const json_t *v;
	if (json_array_size(arr) == 0)
		return;
	fprintf(f, "%s:\n", title);
	json_array_foreach(arr, i, v)
	{
		fputs("  - ", f);
		print_value(f, v);
		fputc('\n', f);
	}
}

/* "    left out: 4 records (3 whole RRsets, 2 whole names): www.example.edu. A, ..." */
static void print_difference(FILE *f, const char *label, const json_t *d)
{
	long long names = 0, rrsets = 0, records = 0;
	if (!json_is_object(d))
		return;
	jint(d, "names", &names);
	jint(d, "rrsets", &rrsets);
	jint(d, "records", &records);
	fprintf(f, "    %s: ", label);
	if (records == 0) {
		fputs("nothing\n", f);
		return;
	}
	fprintf(f, "%lld %s (%lld whole %s, %lld whole %s)", records,
	        plural(records, "record", "records"), rrsets, plural(rrsets, "RRset", "RRsets"),
	        names, plural(names, "name", "names"));
	const json_t *ex = json_object_get(d, "examples");
	size_t i;
	const json_t *v;
	json_array_foreach(ex, i, v)
	{
		fputs(i ? ", " : ": ", f);
		print_value(f, v);
	}
	if (json_array_size(ex) > 0 && (long long)json_array_size(ex) < records)
		fputs(", ...", f);
	fputc('\n', f);
}

static void print_check_zone(FILE *f, const json_t *z)
{
	const json_t *c = json_object_get(z, "campus");
	char dr[24], serial[24], campus[24];
	fmt_int(dr, sizeof(dr), z, "records");
	fprintf(f, "  %s: DR %s %s", jstr(z, "zone") ? jstr(z, "zone") : "?", dr,
	        strcmp(dr, "1") ? "records" : "record");
	int publishes = jbool(z, "publishes_self");
	const char *pub = publishes == 1   ? "; publishes drdnsd as a public nameserver"
	                  : publishes == 0 ? "; does not publish drdns (MNAME only)"
	                                   : "";
	if (jbool(c, "fetched") != 1) {
		fprintf(f, "%s; campus not fetched: %s\n", pub,
		        jstr(c, "detail") ? jstr(c, "detail") : "no detail");
		return;
	}
	fmt_int(serial, sizeof(serial), c, "serial");
	fmt_int(campus, sizeof(campus), c, "records");
	fprintf(f, "%s; campus serial %s, %s %s\n", pub, serial, campus,
	        strcmp(campus, "1") ? "records" : "record");
	print_difference(f, "left out", json_object_get(c, "left_out"));
	print_difference(f, "DR only", json_object_get(c, "dr_only"));
}

/* drdnsctl check (reply shape: failover.h, drdns_check_start). */
static void print_check(FILE *f, const json_t *r)
{
	static const char *const known[] = {"exit",  "command", "dr_set", "warnings",
	                                    "zones", "message", "error",  NULL};
	const json_t *set = json_object_get(r, "dr_set");
	if (json_is_object(set)) {
		int valid = jbool(set, "valid");
		fprintf(f, "DR set %s: %s\n", jstr(set, "directory") ? jstr(set, "directory") : "?",
		        valid == 1   ? "valid"
		        : valid == 0 ? "INVALID"
		                     : "?");
		print_list(f, "errors", json_object_get(set, "errors"));
	}
	print_list(f, "warnings", json_object_get(r, "warnings"));
	const json_t *zones = json_object_get(r, "zones");
	if (json_array_size(zones) > 0) {
		size_t i;
		const json_t *z;
		fprintf(f, "zones (DR set against the campus zone by AXFR):\n");
		json_array_foreach(zones, i, z) print_check_zone(f, z);
	}
	print_other_fields(f, r, known);
	fflush(f);
}

/* drill: pre-flight items, then the live steps per secondary, the timeline,
 * production zones, warnings, and the verdict last. */
static void print_drill(FILE *f, const json_t *r)
{
	size_t i;
	const json_t *o;
	const json_t *pre = json_object_get(r, "preflight");
	if (json_array_size(pre) > 0) {
		fprintf(f, "pre-flight%s%s:\n", jstr(r, "zone") ? " for drill zone " : "",
		        jstr(r, "zone") ? jstr(r, "zone") : "");
		json_array_foreach(pre, i, o)
		{
			fprintf(f, "  %-4s %-12s %s\n", jbool(o, "ok") == 1 ? "ok" : "FAIL",
			        jstr(o, "check") ? jstr(o, "check") : "?",
			        jstr(o, "detail") ? jstr(o, "detail") : "");
		}
	}
	const json_t *secs = json_object_get(r, "secondaries");
	if (json_array_size(secs) > 0) {
		const json_t *serials = json_object_get(r, "serials");
		long long s0 = 0, s1 = 0, s2 = 0;
		jint(serials, "drill", &s0);
		jint(serials, "return", &s1);
		jint(serials, "campus", &s2);
		fprintf(f, "\nlive drill: serials %lld (promote), %lld (return), %lld (release)\n",
		        s0, s1, s2);
		struct table t = {.ncols = 6};
		table_row(&t, "NAME", "ADDRESS", "PROMOTE", "RETURN", "RELEASE", "RESULT");
		json_array_foreach(secs, i, o)
		{
			char cell[3][32];
			size_t k;
			const json_t *st;
			for (k = 0; k < 3; k++)
				snprintf(cell[k], sizeof(cell[k]), "-");
			json_array_foreach(json_object_get(o, "steps"), k, st)
			{
				double v;
				if (k < 3 && jnum(st, "seconds", &v))
					snprintf(cell[k], sizeof(cell[k]), "%.2f s", v);
				else if (k < 3 && jbool(st, "converged") == 0)
					snprintf(cell[k], sizeof(cell[k]), "no");
			}
			table_row(&t, jstr(o, "name"), jstr(o, "address"), cell[0], cell[1],
			          cell[2], jbool(o, "ok") == 1 ? "ok" : jstr(o, "detail"));
		}
		table_print(f, &t, "  ");
		print_refusals(f, secs);
	}
	const json_t *prod = json_object_get(r, "production");
	if (json_array_size(prod) > 0) {
		fprintf(f, "\nproduction zones:\n");
		json_array_foreach(prod, i, o)
		{
			fprintf(f, "  %-4s %s: %s\n", jbool(o, "unchanged") == 1 ? "ok" : "FAIL",
			        jstr(o, "zone") ? jstr(o, "zone") : "?",
			        jstr(o, "detail") ? jstr(o, "detail") : "");
		}
	}
	const json_t *tl = json_object_get(r, "timeline");
	if (json_array_size(tl) > 0 && json_array_size(secs) > 0) {
		fprintf(f, "\ntimeline:\n");
		json_array_foreach(tl, i, o)
		{
			double t = 0;
			jnum(o, "t", &t);
			fprintf(f, "  %8.2f s  %s\n", t, jstr(o, "event") ? jstr(o, "event") : "");
		}
	}
	const json_t *warns = json_object_get(r, "warnings");
	if (json_array_size(warns) > 0) {
		fprintf(f, "\nwarnings:\n");
		json_array_foreach(warns, i, o)
		{
			fprintf(f, "  %s\n", json_string_value(o) ? json_string_value(o) : "?");
		}
	}
	if (jstr(r, "verdict"))
		fprintf(f, "\nverdict: %s\n", strcmp(jstr(r, "verdict"), "pass") ? "FAIL" : "PASS");
	fflush(f);
}

/* Print a reply: the document itself with --json, else the human form. */
static int output(const struct cli *c, const json_t *reply, enum drdns_ctl_cmd cmd)
{
	if (c->json) {
		json_dumpf(reply, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		fputc('\n', stdout);
		fflush(stdout);
		return reply_exit(reply);
	}
	if (cmd == DRDNS_CMD_PROMOTE || cmd == DRDNS_CMD_RESIGN)
		print_promote(stdout, reply);
	else if (cmd == DRDNS_CMD_DEMOTE)
		print_demote(stdout, reply);
	else if (cmd == DRDNS_CMD_STATUS)
		print_status(stdout, reply);
	else if (cmd == DRDNS_CMD_CHECK)
		print_check(stdout, reply);
	else if (cmd == DRDNS_CMD_DRILL)
		print_drill(stdout, reply);
	print_message_and_error(reply);
	return reply_exit(reply);
}

/* ------------------------------------------------------------------------ */
/* commands                                                                 */

static int cmd_status(struct cli *c)
{
	if (!c->timeout_set)
		c->timeout = STATUS_TIMEOUT;
	json_t *req = json_pack("{s:s}", "command", "status");
	if (!req)
		fail(c, DRDNS_EXIT_ERROR, "out of memory");
	json_t *reply = call(c, req, false);
	json_decref(req);
	int rc = output(c, reply, DRDNS_CMD_STATUS);
	json_decref(reply);
	return rc;
}

static bool blank(const char *s)
{
	for (; s && *s; s++)
		if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
			return false;
	return true;
}

/* pause, resume, reload: one request, one reply. */
static int cmd_simple(struct cli *c, enum drdns_ctl_cmd cmd)
{
	const char *name = drdns_ctl_cmd_name(cmd);
	if ((cmd == DRDNS_CMD_PAUSE || cmd == DRDNS_CMD_ACK) && (!c->reason || blank(c->reason)))
		usage_error(c, "%s needs --reason TEXT (it is recorded in the audit log)", name);
	if (!c->timeout_set)
		c->timeout = STATUS_TIMEOUT;
	json_t *client = client_identity();
	json_t *req =
	    json_pack("{s:s, s:o}", "command", name, "client", client ? client : json_object());
	if (req && c->reason)
		json_object_set_new(req, "reason", json_string(c->reason));
	if (req && c->alert_id)
		json_object_set_new(req, "id", json_string(c->alert_id));
	if (!req)
		fail(c, DRDNS_EXIT_ERROR, "out of memory");
	json_t *reply = call(c, req, true);
	json_decref(req);
	int rc = output(c, reply, cmd);
	json_decref(reply);
	return rc;
}

/* check: read-only, may take an AXFR per zone. */
static int cmd_check(struct cli *c)
{
	if (!c->timeout_set)
		c->timeout = STATUS_TIMEOUT;
	json_t *req = json_pack("{s:s}", "command", "check");
	if (!req)
		fail(c, DRDNS_EXIT_ERROR, "out of memory");
	json_t *reply = call(c, req, false);
	json_decref(req);
	int rc = output(c, reply, DRDNS_CMD_CHECK);
	json_decref(reply);
	return rc;
}

/* drill: a pre-flight, then up to three steps of --wait each. */
static int cmd_drill(struct cli *c)
{
	if (c->reason && blank(c->reason))
		usage_error(c, "--reason must not be empty");
	if (!c->timeout_set)
		c->timeout = c->preflight_only ? STATUS_TIMEOUT
		             : c->wait_set     ? 3 * c->wait + WAIT_MARGIN
		                               : 0;
	json_t *client = client_identity();
	json_t *req = json_pack("{s:s, s:b, s:o}", "command", "drill", "preflight_only",
	                        c->preflight_only, "client", client ? client : json_object());
	if (req && c->zone)
		json_object_set_new(req, "zone", json_string(c->zone));
	if (req && c->reason)
		json_object_set_new(req, "reason", json_string(c->reason));
	if (req && c->wait_set)
		json_object_set_new(req, "wait", json_real(c->wait));
	if (!req)
		fail(c, DRDNS_EXIT_ERROR, "out of memory");
	json_t *reply = call(c, req, !c->preflight_only);
	json_decref(req);
	int rc = output(c, reply, DRDNS_CMD_DRILL);
	json_decref(reply);
	return rc;
}

/* Ask on the terminal; true only for "yes". */
static bool confirm(const char *question)
{
	char line[64];
	fprintf(stderr, "%s Type 'yes' to continue: ", question);
	fflush(stderr);
	if (!fgets(line, sizeof(line), stdin))
		return false;
	line[strcspn(line, "\r\n")] = '\0';
	return strcmp(line, "yes") == 0;
}

/* promote (and, as rows are added, the other commands that change state). */
static int cmd_change(struct cli *c, enum drdns_ctl_cmd cmd)
{
	const char *name = drdns_ctl_cmd_name(cmd);
	if (!c->reason || blank(c->reason))
		usage_error(c, "%s needs --reason TEXT (it is recorded in the audit log)", name);
	if (cmd == DRDNS_CMD_DEMOTE && c->force)
		usage_error(c,
		            "demote has no --force: the secondaries follow only a higher serial");
	if (c->timeout_set && c->timeout > 0 && c->wait_set && c->timeout <= c->wait)
		usage_error(c, "--timeout (%g s) must be longer than --wait (%g s)", c->timeout,
		            c->wait);
	/* A dry run only probes: bound it like status.  A real one may wait for
	 * convergence: --wait plus a margin, or for as long as the daemon takes. */
	double plan_timeout = c->timeout_set ? c->timeout : STATUS_TIMEOUT;
	if (!c->timeout_set)
		c->timeout = c->dry_run ? STATUS_TIMEOUT : c->wait_set ? c->wait + WAIT_MARGIN : 0;
	bool interactive = !c->dry_run && !c->yes;
	if (interactive && !isatty(STDIN_FILENO))
		usage_error(c, "refusing to %s without --yes when stdin is not a terminal", name);

	json_t *client = client_identity();
	json_t *req = json_pack("{s:s, s:s, s:b, s:b, s:o}", "command", name, "reason", c->reason,
	                        "dry_run", c->dry_run || interactive, "force", c->force, "client",
	                        client ? client : json_object());
	if (!req)
		fail(c, DRDNS_EXIT_ERROR, "out of memory");
	if (c->wait_set)
		json_object_set_new(req, "wait", json_real(c->wait));

	if (interactive) {
		/* Show the plan first; the operator confirms what they have seen. */
		double real_timeout = c->timeout;
		c->timeout = plan_timeout;
		json_t *plan = call(c, req, false);
		c->timeout = real_timeout;
		int rc = reply_exit(plan);
		if (rc != DRDNS_EXIT_OK) {
			rc = output(c, plan, cmd);
			json_decref(plan);
			json_decref(req);
			return rc;
		}
		FILE *f = c->json ? stderr : stdout;
		if (cmd == DRDNS_CMD_DEMOTE)
			print_demote(f, plan);
		else
			print_promote(f, plan);
		if (jstr(plan, "message"))
			fprintf(f, "%s\n", jstr(plan, "message"));
		fflush(f);
		char question[160];
		size_t n = json_array_size(json_object_get(plan, "zones"));
		if (cmd == DRDNS_CMD_DEMOTE)
			snprintf(question, sizeof(question),
			         "Stop serving the DR set and fail back to the master for %zu %s?",
			         n, n == 1 ? "zone" : "zones");
		else if (cmd == DRDNS_CMD_RESIGN)
			snprintf(
			    question, sizeof(question),
			    "Sign %zu %s afresh under the next serial and NOTIFY the secondaries?",
			    n, n == 1 ? "zone" : "zones");
		else if (jbool(plan, "already_promoted") == 1)
			snprintf(question, sizeof(question),
			         "drdns is already the primary. NOTIFY the secondaries again?");
		else
			snprintf(question, sizeof(question), "%c%s drdns to primary for %zu %s?",
			         name[0] - 'a' + 'A', name + 1, n, n == 1 ? "zone" : "zones");
		json_decref(plan);
		if (!confirm(question)) {
			json_decref(req);
			fail(c, DRDNS_EXIT_ERROR, "aborted, nothing changed");
		}
		json_object_set_new(req, "dry_run", json_false());
	}

	json_t *reply = call(c, req, !c->dry_run);
	json_decref(req);
	int rc = output(c, reply, cmd);
	json_decref(reply);
	return rc;
}

/* ------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
	struct cli c = {0};
	int opt;

	c.socket = getenv("DRDNS_SOCKET");
	if (!c.socket || !c.socket[0])
		c.socket = DRDNS_DEFAULT_SOCKET;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+:s:jt:h", global_long, NULL)) != -1) {
		if (common_option(&c, opt, optarg))
			continue;
		switch (opt) {
		case 'h': print_usage(stdout); return 0;
		case OPT_VERSION:
			printf("%s %s (control protocol %d)\n", PROG, DRDNS_VERSION,
			       DRDNS_CTL_VERSION);
			return 0;
		default: bad_option(&c, opt, argv);
		}
	}
	if (optind >= argc)
		usage_error(&c, "no command given");
	c.command = argv[optind];
	enum drdns_ctl_cmd cmd = drdns_ctl_cmd_parse(c.command);
	const struct drdns_ctl_cmd_info *info = drdns_ctl_cmd_info(cmd);
	if (!info) {
		const char *typed = c.command;
		c.command = NULL;
		usage_error(&c, "unknown command '%s'", typed);
	}
	parse_command_options(&c, info, argc - optind, argv + optind);

	switch (cmd) {
	case DRDNS_CMD_STATUS: return cmd_status(&c);
	case DRDNS_CMD_PROMOTE:
	case DRDNS_CMD_RESIGN:
	case DRDNS_CMD_DEMOTE: return cmd_change(&c, cmd);
	case DRDNS_CMD_PAUSE:
	case DRDNS_CMD_ACK:
	case DRDNS_CMD_RESUME:
	case DRDNS_CMD_RELOAD: return cmd_simple(&c, cmd);
	case DRDNS_CMD_CHECK: return cmd_check(&c);
	case DRDNS_CMD_DRILL: return cmd_drill(&c);
	default: usage_error(&c, "command '%s' is not supported by this drdnsctl", c.command);
	}
}
