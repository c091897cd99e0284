/*
 * Signature expiry: the pure parts (see expiry.h).  The scan that feeds them
 * is src/net/rrsig_scan.c.
 *
 * Readings of the contract chosen here:
 *   - summarize: the first SOA met gives the serial (an AXFR carries one);
 *     an RRSIG whose RDATA is incomplete is not counted.  When several
 *     signatures expire in the same second, earliest_what names the lowest in
 *     canonical order (owner, then type covered, then key tag), so the report
 *     does not flap with the order of an AXFR;
 *   - evaluate: a copy is used when it is known and has signatures and an
 *     earliest > 0 (0 means "none" everywhere in expiry.h).  On a tie for
 *     the earliest expiration rrsig_at names the first copy, drdns's own
 *     coming after the copies;
 *   - the servers named in alert_msg are those whose earliest expiration is
 *     within the level's threshold, in the order of the copies, "drdns"
 *     last;
 *   - the root zone's alert id keeps its dot ("rrsig:.:3d"), not an empty
 *     name.
 */
#include "drdns/expiry.h"

#include "drdns/zone.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_LISTED 4 /* servers named in an alert, then "and N more" */

int64_t drdns_rrsig_time(uint32_t field, int64_t now)
{
	/* The distance from now's low 32 bits to field, taken in
	 * [-2^31, 2^31): that is the nearest time with those bits. */
	int64_t d = (int64_t)(uint32_t)(field - (uint32_t)(uint64_t)now);
	if (d >= INT64_C(0x80000000))
		d -= INT64_C(0x100000000);
	return now + d;
}

/* a < b in the order earliest_what ties are broken by. */
static bool sig_before(const ldns_rr *a, const ldns_rr *b)
{
	int c = ldns_dname_compare(ldns_rr_owner(a), ldns_rr_owner(b));
	if (c != 0)
		return c < 0;
	ldns_rr_type ta = ldns_rdf2rr_type(ldns_rr_rrsig_typecovered(a));
	ldns_rr_type tb = ldns_rdf2rr_type(ldns_rr_rrsig_typecovered(b));
	if (ta != tb)
		return ta < tb;
	return ldns_rdf2native_int16(ldns_rr_rrsig_keytag(a)) <
	       ldns_rdf2native_int16(ldns_rr_rrsig_keytag(b));
}

struct scan {
	struct drdns_rrsig_summary *out;
	int64_t now;
	const ldns_rr *first; /* the RRSIG that expires first */
};

static void scan_rr(struct scan *s, const ldns_rr *rr)
{
	ldns_rr_type t = ldns_rr_get_type(rr);
	if (t == LDNS_RR_TYPE_SOA && !s->out->has_soa) {
		const ldns_rdf *serial = ldns_rr_rd_count(rr) > 2 ? ldns_rr_rdf(rr, 2) : NULL;
		if (serial) {
			s->out->has_soa = true;
			s->out->serial = ldns_rdf2native_int32(serial);
		}
		return;
	}
	if (t != LDNS_RR_TYPE_RRSIG || ldns_rr_rd_count(rr) < 9)
		return;
	const ldns_rdf *exp = ldns_rr_rrsig_expiration(rr);
	if (!exp || ldns_rdf_size(exp) != 4 || ldns_rdf_size(ldns_rr_rrsig_typecovered(rr)) != 2 ||
	    ldns_rdf_size(ldns_rr_rrsig_keytag(rr)) != 2)
		return;
	int64_t when = drdns_rrsig_time(ldns_rdf2native_int32(exp), s->now);
	s->out->signatures++;
	if (!s->first || when < s->out->earliest ||
	    (when == s->out->earliest && sig_before(rr, s->first))) {
		s->first = rr;
		s->out->earliest = when;
	}
}

static void scan_finish(struct scan *s)
{
	if (!s->first)
		return;
	char *owner = ldns_rdf2str(ldns_rr_owner(s->first));
	ldns_rr_type covered = ldns_rdf2rr_type(ldns_rr_rrsig_typecovered(s->first));
	char *type = ldns_rr_type2str(covered);
	snprintf(s->out->earliest_what, sizeof(s->out->earliest_what), "%s %s (key %u)",
	         owner ? owner : "?", type ? type : "?",
	         (unsigned)ldns_rdf2native_int16(ldns_rr_rrsig_keytag(s->first)));
	free(owner);
	free(type);
}

void drdns_rrsig_summarize(const ldns_rr_list *rrs, int64_t now, struct drdns_rrsig_summary *out)
{
	memset(out, 0, sizeof(*out));
	struct scan s = {.out = out, .now = now};
	size_t n = rrs ? ldns_rr_list_rr_count(rrs) : 0;
	for (size_t i = 0; i < n; i++)
		scan_rr(&s, ldns_rr_list_rr(rrs, i));
	scan_finish(&s);
}

void drdns_zone_rrsig_summarize(const struct drdns_zone *z, int64_t now,
                                struct drdns_rrsig_summary *out)
{
	memset(out, 0, sizeof(*out));
	if (!z)
		return;
	/* In place: a zone can be large, and a list of it would be a copy. */
	struct scan s = {.out = out, .now = now};
	if (z->soa)
		scan_rr(&s, z->soa);
	size_t n = z->rrs ? ldns_rr_list_rr_count(z->rrs) : 0;
	for (size_t i = 0; i < n; i++)
		scan_rr(&s, ldns_rr_list_rr(z->rrs, i));
	scan_finish(&s);
}

void drdns_duration_label(uint32_t seconds, char *buf, size_t len)
{
	if (seconds == 0)
		snprintf(buf, len, "0s");
	else if (seconds % 86400 == 0)
		snprintf(buf, len, "%ud", seconds / 86400);
	else if (seconds % 3600 == 0)
		snprintf(buf, len, "%uh", seconds / 3600);
	else if (seconds % 60 == 0)
		snprintf(buf, len, "%um", seconds / 60);
	else
		snprintf(buf, len, "%us", seconds);
}

/* "2d 23h 59m" for people: days, hours and minutes that are not zero (the
 * seconds only below a minute, where they are all there is). */
static void human_duration(double seconds, char *buf, size_t len)
{
	uint64_t s = seconds > 0 ? (uint64_t)seconds : 0;
	if (s < 60) {
		snprintf(buf, len, "%us", (unsigned)s);
		return;
	}
	uint64_t d = s / 86400, h = s % 86400 / 3600, m = s % 3600 / 60;
	size_t at = 0;
	buf[0] = '\0';
	if (d && at < len)
		at += (size_t)snprintf(buf + at, len - at, "%llud", (unsigned long long)d);
	if (h && at < len)
		at += (size_t)snprintf(buf + at, len - at, "%s%lluh", at ? " " : "",
		                       (unsigned long long)h);
	if (m && at < len)
		snprintf(buf + at, len - at, "%s%llum", at ? " " : "", (unsigned long long)m);
}

static void utc_time(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (!gmtime_r(&tt, &tm) || !strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm))
		snprintf(buf, len, "@%lld", (long long)t);
}

static bool copy_signed(const struct drdns_expiry_copy *c)
{
	return c->known && c->signatures > 0 && c->earliest > 0;
}

static bool own_signed(const struct drdns_expiry_zone *z)
{
	return z->own && z->own_signatures > 0 && z->own_earliest > 0;
}

/* Append to a bounded buffer; stops quietly when it is full. */
static void append(char *buf, size_t len, size_t *at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void append(char *buf, size_t len, size_t *at, const char *fmt, ...)
{
	if (*at >= len)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf + *at, len - *at, fmt, ap);
	va_end(ap);
	if (n > 0)
		*at += (size_t)n;
}

/* The servers whose earliest expiration is at or before `by`. */
static void list_servers(const struct drdns_expiry_zone *z, double by, char *buf, size_t len)
{
	size_t at = 0, listed = 0, more = 0;
	buf[0] = '\0';
	for (size_t i = 0; i <= z->n_copies; i++) {
		const char *name;
		if (i < z->n_copies) {
			const struct drdns_expiry_copy *c = &z->copies[i];
			if (!copy_signed(c) || (double)c->earliest > by)
				continue;
			name = c->server ? c->server : "?";
		} else {
			if (!own_signed(z) || (double)z->own_earliest > by)
				continue;
			name = "drdns";
		}
		if (listed == MAX_LISTED) {
			more++;
			continue;
		}
		append(buf, len, &at, "%s%s", listed ? ", " : "", name);
		listed++;
	}
	if (more)
		append(buf, len, &at, " and %zu more", more);
}

static void alert(const struct drdns_expiry_conf *conf, const struct drdns_expiry_zone *z,
                  double now, const char *first, struct drdns_expiry_out *o)
{
	uint32_t threshold = conf->thresholds[o->level];
	char label[16];
	drdns_duration_label(threshold, label, sizeof(label));

	const char *zone = z->zone ? z->zone : "?";
	int zlen = (int)strlen(zone);
	if (zlen > 1 && zone[zlen - 1] == '.')
		zlen--;
	snprintf(o->alert_id, sizeof(o->alert_id), "rrsig:%.*s:%s", zlen, zone, label);

	double left = (double)o->rrsig_dark - now;
	char span[64], when[64], servers[320];
	human_duration(left > 0 ? left : -left, span, sizeof(span));
	utc_time(o->rrsig_dark, when, sizeof(when));
	list_servers(z, now + threshold, servers, sizeof(servers));
	size_t at = 0;
	char *m = o->alert_msg;
	size_t len = sizeof(o->alert_msg);
	if (left > 0)
		append(m, len, &at, "%.*s: RRSIGs expire in %s (%s) on %s", zlen, zone, span, when,
		       servers);
	else
		append(m, len, &at, "%.*s: RRSIGs have EXPIRED %s ago (%s) on %s", zlen, zone, span,
		       when, servers);
	if (first && *first)
		append(m, len, &at, " (first: %s)", first);
	append(m, len, &at, "; threshold %s", label);
}

static void evaluate_one(const struct drdns_expiry_conf *conf, const struct drdns_expiry_zone *z,
                         double now, struct drdns_expiry_out *o)
{
	memset(o, 0, sizeof(*o));
	o->level = -1;
	const char *first = NULL; /* the record that expires first, when known */
	for (size_t i = 0; i < z->n_copies; i++) {
		const struct drdns_expiry_copy *c = &z->copies[i];
		if (!c->known || c->signatures == 0)
			continue;
		o->is_signed = true;
		if (copy_signed(c) && (o->rrsig_dark == 0 || c->earliest < o->rrsig_dark)) {
			o->rrsig_dark = c->earliest;
			o->rrsig_at = c->server;
			first = c->earliest_what;
		}
	}
	if (z->own && z->own_signatures > 0) {
		o->is_signed = true;
		if (own_signed(z) && (o->rrsig_dark == 0 || z->own_earliest < o->rrsig_dark)) {
			o->rrsig_dark = z->own_earliest;
			o->rrsig_at = "drdns";
			first = NULL;
		}
		o->next_resign = z->own_earliest - (int64_t)conf->refresh;
		o->resign_due = o->next_resign != 0 && now >= (double)o->next_resign;
	}

	bool soa = z->soa_deadline > 0, rrsig = o->rrsig_dark > 0;
	if (rrsig && (!soa || (double)o->rrsig_dark <= z->soa_deadline)) {
		o->time_to_dark = (double)o->rrsig_dark;
		o->dark_cause = "rrsig";
	} else if (soa) {
		o->time_to_dark = z->soa_deadline;
		o->dark_cause = "expire";
	}

	if (!rrsig)
		return;
	double left = (double)o->rrsig_dark - now;
	for (size_t i = 0; i < conf->n_thresholds; i++) {
		uint32_t t = conf->thresholds[i];
		if ((double)t >= left && (o->level < 0 || t < conf->thresholds[o->level]))
			o->level = (int)i;
	}
	if (o->level >= 0)
		alert(conf, z, now, first, o);
}

void drdns_expiry_evaluate(const struct drdns_expiry_conf *conf,
                           const struct drdns_expiry_zone *zones, size_t n, double now,
                           struct drdns_expiry_out *out)
{
	for (size_t i = 0; i < n; i++)
		evaluate_one(conf, &zones[i], now, &out[i]);
}
