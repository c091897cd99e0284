/*
 * The transfer ACL and the refusal record (see include/drdns/xfr_acl.h).
 */
#include "drdns/xfr_acl.h"

#include "drdns/conf.h"
#include "drdns/error.h"
#include "drdns/tsig.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- addresses and prefixes ---- */

static bool from_in6(const struct in6_addr *in6, struct drdns_prefix *p)
{
	if (IN6_IS_ADDR_V4MAPPED(in6)) {
		p->family = AF_INET;
		memcpy(p->b, &in6->s6_addr[12], 4);
		p->bits = 32;
	} else {
		p->family = AF_INET6;
		memcpy(p->b, in6, 16);
		p->bits = 128;
	}
	return true;
}

static bool addr_parse(const char *text, struct drdns_prefix *p)
{
	memset(p, 0, sizeof(*p));
	if (inet_pton(AF_INET, text, p->b) == 1) {
		p->family = AF_INET;
		p->bits = 32;
		return true;
	}
	struct in6_addr in6;
	return inet_pton(AF_INET6, text, &in6) == 1 && from_in6(&in6, p);
}

static bool addr_from_sockaddr(const struct sockaddr *sa, struct drdns_prefix *p)
{
	memset(p, 0, sizeof(*p));
	if (!sa)
		return false;
	if (sa->sa_family == AF_INET) {
		p->family = AF_INET;
		memcpy(p->b, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		p->bits = 32;
		return true;
	}
	if (sa->sa_family == AF_INET6)
		return from_in6(&((const struct sockaddr_in6 *)sa)->sin6_addr, p);
	return false;
}

/* Do a and b agree on their first bits bits? */
static bool bits_equal(const uint8_t *a, const uint8_t *b, unsigned bits)
{
	unsigned full = bits / 8, rest = bits % 8;
	if (memcmp(a, b, full) != 0)
		return false;
	if (!rest)
		return true;
	uint8_t mask = (uint8_t)(0xFF << (8 - rest));
	return (a[full] & mask) == (b[full] & mask);
}

int drdns_prefix_parse(const char *text, struct drdns_prefix *out, char *err, size_t errlen)
{
	char buf[INET6_ADDRSTRLEN + 8];
	if (!err)
		errlen = 0;
	if (!text || !*text || strlen(text) >= sizeof(buf)) {
		if (errlen)
			snprintf(err, errlen, "not an IPv4 or IPv6 address or prefix");
		return DRDNS_EINVAL;
	}
	snprintf(buf, sizeof(buf), "%s", text);
	char *slash = strchr(buf, '/');
	if (slash)
		*slash = '\0';
	struct drdns_prefix p;
	/* "::ffff:192.0.2.0/120" would fold to IPv4 with a length that does not fit:
	 * keep it simple and take the length against the family as written */
	bool v6_written = strchr(buf, ':') != NULL;
	if (!addr_parse(buf, &p)) {
		if (errlen)
			snprintf(err, errlen, "not an IPv4 or IPv6 address%s",
			         slash ? " before the '/'" : " or prefix");
		return DRDNS_EINVAL;
	}
	if (slash) {
		const char *len = slash + 1;
		unsigned max = v6_written ? 128 : 32;
		char *end = NULL;
		unsigned long bits =
		    isdigit((unsigned char)*len) ? strtoul(len, &end, 10) : max + 1;
		if (!end || *end || bits > max) {
			if (errlen)
				snprintf(err, errlen, "prefix length '%s' is not 0 to %u", len,
				         max);
			return DRDNS_EINVAL;
		}
		if (v6_written && p.family == AF_INET) { /* IPv4-mapped: count in IPv4 bits */
			if (bits < 96) {
				if (errlen)
					snprintf(
					    err, errlen,
					    "an IPv4-mapped prefix needs a length of 96 or more");
				return DRDNS_EINVAL;
			}
			bits -= 96;
		}
		p.bits = (unsigned)bits;
		size_t size = p.family == AF_INET ? 4 : 16;
		/* every bit below the length must be zero */
		uint8_t masked[16];
		memcpy(masked, p.b, size);
		for (size_t i = 0; i < size; i++) {
			unsigned lo = (unsigned)i * 8;
			if (lo >= p.bits)
				masked[i] = 0;
			else if (lo + 8 > p.bits)
				masked[i] &= (uint8_t)(0xFF << (8 - (p.bits - lo)));
		}
		if (memcmp(masked, p.b, size) != 0) {
			char fixed[INET6_ADDRSTRLEN] = "?";
			inet_ntop(p.family, masked, fixed, sizeof(fixed));
			if (errlen)
				snprintf(err, errlen, "bits set below /%lu (did you mean %s/%lu?)",
				         bits + (v6_written && p.family == AF_INET ? 96 : 0), fixed,
				         bits);
			return DRDNS_EINVAL;
		}
	}
	if (out)
		*out = p;
	return 0;
}

bool drdns_prefix_contains(const struct drdns_prefix *p, const struct sockaddr *sa)
{
	struct drdns_prefix a;
	return p && addr_from_sockaddr(sa, &a) && a.family == p->family &&
	       bits_equal(a.b, p->b, p->bits);
}

bool drdns_prefix_contains_text(const struct drdns_prefix *p, const char *text)
{
	struct drdns_prefix a;
	return p && text && addr_parse(text, &a) && a.family == p->family &&
	       bits_equal(a.b, p->b, p->bits);
}

/* Does sa match the address or prefix text? */
static bool matches(const char *text, const struct sockaddr *sa)
{
	struct drdns_prefix p;
	return text && drdns_prefix_parse(text, &p, NULL, 0) == 0 && drdns_prefix_contains(&p, sa);
}

static bool matches_text(const char *text, const char *addr)
{
	struct drdns_prefix p;
	return text && drdns_prefix_parse(text, &p, NULL, 0) == 0 &&
	       drdns_prefix_contains_text(&p, addr);
}

static bool has_key(const struct drdns_secondary *s)
{
	return s->key || s->tsig_key_file;
}

/* ---- the decision ---- */

enum drdns_xfr_verdict drdns_xfr_acl(const struct drdns_conf *conf, const struct sockaddr *peer,
                                     bool signed_ok)
{
	if (!conf)
		return DRDNS_XFR_NOT_ALLOWED;
	if (signed_ok)
		return DRDNS_XFR_OK_KEY;
	for (size_t i = 0; i < conf->n_secondaries; i++) {
		const struct drdns_secondary *s = &conf->secondaries[i];
		if (!has_key(s) && matches(s->address, peer))
			return DRDNS_XFR_OK_SECONDARY;
	}
	for (size_t i = 0; i < conf->n_secondaries; i++) {
		const struct drdns_secondary *s = &conf->secondaries[i];
		for (size_t k = 0; !has_key(s) && k < s->n_transfer_sources; k++)
			if (matches(s->transfer_sources[k], peer))
				return DRDNS_XFR_OK_SOURCE;
	}
	for (size_t i = 0; i < conf->controller.n_allow_transfer; i++)
		if (matches(conf->controller.allow_transfer[i], peer))
			return DRDNS_XFR_OK_ACL;
	return DRDNS_XFR_NOT_ALLOWED;
}

/* ---- the refusal record ---- */

static void copy_field(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src ? src : "");
}

void drdns_xfr_refusals_note(struct drdns_xfr_refusals *r, time_t now, const char *zone,
                             const struct sockaddr *peer, const char *key, const char *reason)
{
	if (!r)
		return;
	struct drdns_xfr_refusal e = {0};
	copy_field(e.zone, sizeof(e.zone), zone);
	struct drdns_prefix a;
	if (addr_from_sockaddr(peer, &a))
		inet_ntop(a.family, a.b, e.source, sizeof(e.source));
	else
		copy_field(e.source, sizeof(e.source), "?");
	e.is_signed = key != NULL;
	copy_field(e.key, sizeof(e.key), key);
	copy_field(e.reason, sizeof(e.reason), reason);
	e.first = e.last = now;
	e.count = 1;
	/* the same refusal again (a secondary retrying): merge, move to the newest */
	for (size_t i = 0; i < r->n; i++) {
		const struct drdns_xfr_refusal *o = &r->e[i];
		if (o->is_signed == e.is_signed && !strcasecmp(o->zone, e.zone) &&
		    !strcmp(o->source, e.source) && !strcasecmp(o->key, e.key) &&
		    !strcmp(o->reason, e.reason)) {
			e.first = o->first;
			e.count = o->count + 1;
			memmove(&r->e[i], &r->e[i + 1], (r->n - i - 1) * sizeof(r->e[0]));
			r->n--;
			break;
		}
	}
	if (r->n == DRDNS_XFR_REFUSALS_MAX) { /* full: the oldest goes */
		memmove(&r->e[0], &r->e[1], (r->n - 1) * sizeof(r->e[0]));
		r->n--;
	}
	e.seq = ++r->seq;
	r->e[r->n++] = e;
}

uint64_t drdns_xfr_refusals_mark(const struct drdns_xfr_refusals *r)
{
	return r ? r->seq : 0;
}

size_t drdns_xfr_refusals_since(const struct drdns_xfr_refusals *r, uint64_t since,
                                struct drdns_xfr_refusal *out, size_t max)
{
	if (!r || !out || !max)
		return 0;
	size_t first = r->n; /* entries are in seq order: find the first after since */
	while (first > 0 && r->e[first - 1].seq > since)
		first--;
	size_t n = r->n - first;
	if (n > max) {
		first += n - max;
		n = max;
	}
	memcpy(out, &r->e[first], n * sizeof(*out));
	return n;
}

/* ---- explaining ---- */

static bool names_equal(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la && a[la - 1] == '.')
		la--;
	if (lb && b[lb - 1] == '.')
		lb--;
	return la == lb && !strncasecmp(a, b, la);
}

/* The secondary a refusal comes from: by key name, else by address or
 * transfer_sources; NULL when none is known by it. */
static const struct drdns_secondary *owner_of(const struct drdns_conf *conf,
                                              const struct drdns_xfr_refusal *r)
{
	for (size_t i = 0; r->is_signed && i < conf->n_secondaries; i++) {
		const struct drdns_secondary *s = &conf->secondaries[i];
		if (s->key && s->key->name && names_equal(s->key->name, r->key))
			return s;
	}
	for (size_t i = 0; i < conf->n_secondaries; i++) {
		const struct drdns_secondary *s = &conf->secondaries[i];
		if (matches_text(s->address, r->source))
			return s;
		for (size_t k = 0; k < s->n_transfer_sources; k++)
			if (matches_text(s->transfer_sources[k], r->source))
				return s;
	}
	return NULL;
}

static bool zone_wanted(const char *zone, const char *const *zones, size_t n)
{
	if (!zones)
		return true;
	for (size_t i = 0; i < n; i++)
		if (zones[i] && names_equal(zones[i], zone))
			return true;
	return false;
}

/* "ns1" from "ns1.example.edu.": how the fix names the secondary. */
static void short_name(const char *name, char *out, size_t size)
{
	size_t len = strcspn(name, ".");
	snprintf(out, size, "%.*s", (int)len, name);
}

/* snprintf that may cut a long zone or key name short (the text is for people). */
static void say(char *out, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *out, size_t size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (vsnprintf(out, size, fmt, ap) < 0 && size)
		out[0] = '\0';
	va_end(ap);
}

static void explain_text(const struct drdns_secondary *peer, const struct drdns_secondary *owner,
                         const struct drdns_xfr_explained *x, char *out, size_t size)
{
	const struct drdns_xfr_refusal *r = &x->refusal;
	char sec[64];
	short_name(peer ? peer->name : "?", sec, sizeof(sec));
	const char *maybe = x->possibly ? "possibly this secondary: " : "";
	if (!strncmp(r->reason, "tsig-", 5)) {
		const char *what =
		    !strcmp(r->reason, "tsig-badkey")    ? "BADKEY: drdns has no such key"
		    : !strcmp(r->reason, "tsig-badtime") ? "BADTIME: clocks differ"
		                                         : "BADSIG: the secrets differ";
		say(out, size,
		    "%stransfer of %s from %s refused (TSIG key %s, %s): give the secondary "
		    "and drdns the same key (secondaries[%s].tsig_key)",
		    maybe, r->zone, r->source, r->key, what, sec);
	} else if (owner && has_key(owner)) {
		say(out, size,
		    "%stransfer of %s from %s refused (unsigned, but secondaries[%s] has a "
		    "TSIG key): configure that key for transfers on the secondary",
		    maybe, r->zone, r->source, sec);
	} else {
		say(out, size,
		    "%stransfer of %s from %s refused (not an allowed address): add it to "
		    "secondaries[%s].transfer_sources or controller.allow_transfer, or give "
		    "the secondary a TSIG key",
		    maybe, r->zone, r->source, sec);
	}
}

bool drdns_xfr_explain(const struct drdns_conf *conf, const struct drdns_xfr_refusal *list,
                       size_t n, const char *peer_name, const char *const *zones, size_t n_zones,
                       struct drdns_xfr_explained *out)
{
	if (!conf || !list || !peer_name || !out)
		return false;
	const struct drdns_secondary *peer = NULL;
	for (size_t i = 0; i < conf->n_secondaries && !peer; i++)
		if (conf->secondaries[i].name && names_equal(conf->secondaries[i].name, peer_name))
			peer = &conf->secondaries[i];
	const struct drdns_xfr_refusal *mine = NULL, *unknown = NULL;
	const struct drdns_secondary *mine_owner = NULL;
	for (size_t i = 0; i < n; i++) {
		const struct drdns_xfr_refusal *r = &list[i];
		if (!zone_wanted(r->zone, zones, n_zones))
			continue;
		const struct drdns_secondary *o = owner_of(conf, r);
		if (o && o == peer) {
			if (!mine || r->seq > mine->seq) {
				mine = r;
				mine_owner = o;
			}
		} else if (!o && (!unknown || r->seq > unknown->seq)) {
			unknown = r;
		}
	}
	const struct drdns_xfr_refusal *pick = mine ? mine : unknown;
	if (!pick)
		return false;
	memset(out, 0, sizeof(*out));
	out->refusal = *pick;
	out->possibly = !mine;
	explain_text(peer, mine_owner, out, out->text, sizeof(out->text));
	return true;
}
