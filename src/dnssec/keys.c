/*
 * DNSSEC keys: loading a zone's BIND key files (see dnssec.h).
 *
 * For every file in the directory named K<zone>.+<alg>+<tag>.key or .private
 * (the zone as BIND writes it, with its trailing dot; the form without the dot
 * is accepted too; other zones' files and other suffixes are ignored), the
 * pair is loaded and cross-checked:
 *   - the .key holds exactly one DNSKEY, owned by the zone, with the zone-key
 *     flag, protocol 3, the algorithm and key tag of its file name;
 *   - the algorithm is 8, 13 or 15;
 *   - the .private parses (ldns_key_new_frm_fp_l: ldns 1.8.3 reads BIND's
 *     v1.2/v1.3 RSA, ECDSA and ED25519 files) and the public key derived from
 *     it equals the DNSKEY's.
 * The ldns_key then gets the DNSKEY's flags, owner and key tag, so ldns's
 * signing functions write correct RRSIGs with it.
 *
 * Every problem is reported (as "path: message"), not only the first.
 *
 * Ownership: drdns_keyset_load() returns a keyset that owns everything in it
 * (zone string, key array, each ldns_key with its pubkey owner, each DNSKEY
 * rr, each path); drdns_keyset_free() frees all of it.  Internally, a failed
 * load frees whatever it built before returning.
 */
#include "drdns/dnssec.h"

#include "drdns/diag.h"
#include "drdns/error.h"
#include "drdns/fsutil.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define KEYFILE_MAX (1024 * 1024)

/* One K<zone>.+<alg>+<tag> base name found in the directory. */
struct key_entry {
	char *base; /* dir/K<zone>.+AAA+TTTTT (owned) */
	uint8_t alg;
	uint16_t tag;
	bool has_key, has_private;
};

struct loader {
	const char *dir;
	const char *zone;   /* lowercase, trailing dot */
	ldns_rdf *zone_rdf; /* owned */
	struct drdns_diag *diag;
	size_t n_errors;
	bool oom;
};

static void load_error(struct loader *ld, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void load_error(struct loader *ld, const char *fmt, ...)
{
	va_list ap;
	char *msg = NULL;
	ld->n_errors++;
	va_start(ap, fmt);
	int r = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (r < 0) {
		ld->oom = true;
		return;
	}
	drdns_diag_error(ld->diag, "%s", msg);
	free(msg);
}

static bool supported_algorithm(unsigned alg)
{
	return alg == LDNS_RSASHA256 || alg == LDNS_ECDSAP256SHA256 || alg == LDNS_ED25519;
}

/* The mnemonic of a DNSSEC algorithm ("ECDSAP384SHA384"), or "unknown". */
static const char *algorithm_name(unsigned alg)
{
	ldns_lookup_table *lt = ldns_lookup_by_id(ldns_algorithms, (int)alg);
	return lt && lt->name ? lt->name : "unknown";
}

/* zone in canonical form: lowercase with a trailing dot (new string), or NULL
 * when empty or out of memory. */
static char *canonical_zone(const char *zone)
{
	size_t len = strlen(zone);
	if (len == 0)
		return NULL;
	if (len > 1 && zone[len - 1] == '.')
		len--;
	bool root = len == 1 && zone[0] == '.';
	char *out = malloc(len + 2);
	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i++)
		out[i] = (char)tolower((unsigned char)zone[i]);
	if (root) {
		out[1] = '\0';
	} else {
		out[len] = '.';
		out[len + 1] = '\0';
	}
	return out;
}

/* Parse "<digits>" of at most maxdigits into *v (<= maxval).  Returns the
 * number of characters consumed, or 0. */
static size_t parse_num(const char *s, size_t maxdigits, unsigned long maxval, unsigned long *v)
{
	size_t i = 0;
	unsigned long n = 0;
	while (i < maxdigits && isdigit((unsigned char)s[i])) {
		n = n * 10 + (unsigned long)(s[i] - '0');
		i++;
	}
	if (i == 0 || isdigit((unsigned char)s[i]) || n > maxval)
		return 0;
	*v = n;
	return i;
}

enum name_match {
	NAME_OTHER,   /* not a key file of this zone: ignored */
	NAME_KEY,     /* K<zone>.+AAA+TTTTT.key */
	NAME_PRIVATE, /* K<zone>.+AAA+TTTTT.private */
	NAME_BAD,     /* K<zone>.+....key/.private with a malformed algorithm/tag */
};

/* Classify a directory entry; on NAME_KEY/NAME_PRIVATE, *baselen is the length
 * of the name without the suffix, and *alg, *tag are from the name. */
static enum name_match match_name(const char *name, const char *zone, size_t *baselen, uint8_t *alg,
                                  uint16_t *tag)
{
	size_t zlen = strlen(zone); /* with trailing dot */
	size_t nlen = strlen(name);
	size_t slen;
	enum name_match kind;
	if (nlen > 4 && strcmp(name + nlen - 4, ".key") == 0) {
		slen = 4;
		kind = NAME_KEY;
	} else if (nlen > 8 && strcmp(name + nlen - 8, ".private") == 0) {
		slen = 8;
		kind = NAME_PRIVATE;
	} else {
		return NAME_OTHER;
	}
	if (name[0] != 'K')
		return NAME_OTHER;
	const char *p = name + 1;
	/* The zone, with its trailing dot (BIND) or without, then '+'. */
	if (strncasecmp(p, zone, zlen) == 0 && p[zlen] == '+') {
		p += zlen;
	} else if (zlen > 1 && strncasecmp(p, zone, zlen - 1) == 0 && p[zlen - 1] == '+') {
		p += zlen - 1;
	} else {
		return NAME_OTHER;
	}
	p++; /* '+' */
	unsigned long a = 0, t = 0;
	size_t n = parse_num(p, 3, 255, &a);
	if (n == 0 || p[n] != '+')
		return NAME_BAD;
	p += n + 1;
	n = parse_num(p, 5, 65535, &t);
	if (n == 0 || p + n != name + nlen - slen)
		return NAME_BAD;
	*baselen = nlen - slen;
	*alg = (uint8_t)a;
	*tag = (uint16_t)t;
	return kind;
}

static void entries_free(struct key_entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(e[i].base);
	free(e);
}

static int entry_cmp(const void *a, const void *b)
{
	const struct key_entry *x = a, *y = b;
	return strcmp(x->base, y->base);
}

/* Scan dir for the zone's key files into *out (n entries, sorted by name).
 * Returns 0, or DRDNS_EDNSSEC (reported) or DRDNS_ENOMEM. */
static int scan_dir(struct loader *ld, struct key_entry **out, size_t *nout)
{
	*out = NULL;
	*nout = 0;
	DIR *d = opendir(ld->dir);
	if (!d) {
		load_error(ld, "%s: cannot read key directory: %s", ld->dir, strerror(errno));
		return DRDNS_EDNSSEC;
	}
	struct key_entry *ents = NULL;
	size_t n = 0, cap = 0;
	size_t dlen = strlen(ld->dir);
	const char *sep = dlen > 0 && ld->dir[dlen - 1] == '/' ? "" : "/";
	int ret = 0;
	struct dirent *de;
	errno = 0;
	while ((de = readdir(d))) {
		size_t baselen = 0;
		uint8_t alg = 0;
		uint16_t tag = 0;
		enum name_match m = match_name(de->d_name, ld->zone, &baselen, &alg, &tag);
		if (m == NAME_OTHER)
			continue;
		if (m == NAME_BAD) {
			load_error(ld,
			           "%s%s%s: not a key file name of the form K%s+<algorithm>+<tag>"
			           ".key/.private",
			           ld->dir, sep, de->d_name, ld->zone);
			continue;
		}
		char *base = NULL;
		if (asprintf(&base, "%s%s%.*s", ld->dir, sep, (int)baselen, de->d_name) < 0) {
			ret = DRDNS_ENOMEM;
			break;
		}
		size_t i;
		for (i = 0; i < n; i++)
			if (ents[i].alg == alg && ents[i].tag == tag)
				break;
		if (i < n && strcmp(ents[i].base, base) != 0) {
			/* Same algorithm and tag under another spelling of the zone
			 * (case, trailing dot): two files claim one key. */
			load_error(ld, "%s%s%s: a second file for key %u algorithm %u (%s)",
			           ld->dir, sep, de->d_name, tag, alg, ents[i].base);
			free(base);
			continue;
		}
		if (i == n) {
			if (n == cap) {
				size_t ncap = cap ? cap * 2 : 8;
				struct key_entry *grown = realloc(ents, ncap * sizeof(*grown));
				if (!grown) {
					free(base);
					ret = DRDNS_ENOMEM;
					break;
				}
				ents = grown;
				cap = ncap;
			}
			ents[n] = (struct key_entry){.base = base, .alg = alg, .tag = tag};
			n++;
		} else {
			free(base);
		}
		if (m == NAME_KEY)
			ents[i].has_key = true;
		else
			ents[i].has_private = true;
		errno = 0;
	}
	if (ret == 0 && errno != 0) {
		load_error(ld, "%s: cannot read key directory: %s", ld->dir, strerror(errno));
		ret = DRDNS_EDNSSEC;
	}
	closedir(d);
	if (ret < 0) {
		entries_free(ents, n);
		return ret;
	}
	if (n > 1)
		qsort(ents, n, sizeof(*ents), entry_cmp);
	*out = ents;
	*nout = n;
	return 0;
}

/* Read a regular file into a FILE* over memory that ends with a newline (ldns
 * mishandles a last line without one).  *buf must be freed after fclose. */
static FILE *open_text(struct loader *ld, const char *path, char **buf)
{
	*buf = NULL;
	struct stat st;
	if (stat(path, &st) != 0) {
		load_error(ld, "%s: cannot read: %s", path, strerror(errno));
		return NULL;
	}
	if (!S_ISREG(st.st_mode)) {
		load_error(ld, "%s: not a regular file", path);
		return NULL;
	}
	if (st.st_size > KEYFILE_MAX) {
		load_error(ld, "%s: too large for a key file (%lld bytes)", path,
		           (long long)st.st_size);
		return NULL;
	}
	char *text = NULL;
	size_t len = 0;
	int r = drdns_read_file(path, &text, &len);
	if (r < 0) {
		if (r == DRDNS_ENOMEM)
			ld->oom = true;
		load_error(ld, "%s: cannot read: %s", path, drdns_strerror(r));
		return NULL;
	}
	if (len == 0 || text[len - 1] != '\n') {
		char *grown = realloc(text, len + 2);
		if (!grown) {
			free(text);
			ld->oom = true;
			load_error(ld, "%s: out of memory", path);
			return NULL;
		}
		text = grown;
		text[len++] = '\n';
		text[len] = '\0';
	}
	FILE *fp = fmemopen(text, len, "r");
	if (!fp) {
		free(text);
		ld->oom = true;
		load_error(ld, "%s: out of memory", path);
		return NULL;
	}
	*buf = text;
	return fp;
}

static char *dname_text(const ldns_rdf *d)
{
	char *s = ldns_rdf2str(d);
	return s ? s : strdup("?");
}

/* Parse the .key file: exactly one DNSKEY record, checked against the zone and
 * the file name.  Returns the record (caller frees) or NULL (reported). */
static ldns_rr *load_dnskey(struct loader *ld, const char *path, uint8_t alg, uint16_t tag)
{
	char *text = NULL;
	FILE *fp = open_text(ld, path, &text);
	if (!fp)
		return NULL;
	ldns_rr *found = NULL;
	size_t records = 0;
	bool failed = false;
	uint32_t ttl = 3600;
	ldns_rdf *origin = ldns_rdf_clone(ld->zone_rdf);
	ldns_rdf *prev = NULL;
	int line = 1;
	while (!feof(fp)) {
		ldns_rr *rr = NULL;
		ldns_status s = ldns_rr_new_frm_fp_l(&rr, fp, &ttl, &origin, &prev, &line);
		int at = line > 1 ? line - 1 : 1;
		if (s == LDNS_STATUS_SYNTAX_EMPTY || s == LDNS_STATUS_SYNTAX_TTL ||
		    s == LDNS_STATUS_SYNTAX_ORIGIN)
			continue;
		if (s != LDNS_STATUS_OK) {
			load_error(ld, "%s: line %d: cannot parse the DNSKEY record: %s", path, at,
			           ldns_get_errorstr_by_id(s));
			failed = true;
			break;
		}
		records++;
		if (found) {
			ldns_rr_free(rr);
			continue;
		}
		found = rr;
	}
	fclose(fp);
	free(text);
	ldns_rdf_deep_free(origin);
	ldns_rdf_deep_free(prev);
	if (failed) {
		ldns_rr_free(found);
		return NULL;
	}
	if (!found) {
		load_error(ld, "%s: no DNSKEY record", path);
		return NULL;
	}
	if (records > 1) {
		load_error(ld, "%s: %zu records; a key file holds one DNSKEY record", path,
		           records);
		ldns_rr_free(found);
		return NULL;
	}
	if (ldns_rr_get_type(found) != LDNS_RR_TYPE_DNSKEY || ldns_rr_rd_count(found) != 4) {
		char *t = ldns_rr_type2str(ldns_rr_get_type(found));
		load_error(ld, "%s: the record is %s, not DNSKEY", path, t ? t : "?");
		free(t);
		ldns_rr_free(found);
		return NULL;
	}
	bool ok = true;
	if (ldns_dname_compare(ldns_rr_owner(found), ld->zone_rdf) != 0) {
		char *o = dname_text(ldns_rr_owner(found));
		load_error(ld, "%s: DNSKEY owner %s is not the zone %s", path, o, ld->zone);
		free(o);
		ok = false;
	}
	uint16_t flags = ldns_rdf2native_int16(ldns_rr_rdf(found, 0));
	uint8_t proto = ldns_rdf2native_int8(ldns_rr_rdf(found, 1));
	uint8_t ralg = ldns_rdf2native_int8(ldns_rr_rdf(found, 2));
	if (!(flags & LDNS_KEY_ZONE_KEY)) {
		load_error(ld, "%s: DNSKEY flags %u lack the zone-key bit (256 or 257 expected)",
		           path, flags);
		ok = false;
	}
	if (flags & LDNS_KEY_REVOKE_KEY) {
		load_error(ld, "%s: DNSKEY flags %u: the key is revoked", path, flags);
		ok = false;
	}
	if (proto != 3) {
		load_error(ld, "%s: DNSKEY protocol %u (3 expected)", path, proto);
		ok = false;
	}
	if (ralg != alg) {
		load_error(ld, "%s: DNSKEY algorithm %u (%s) is not the file name's %u", path, ralg,
		           algorithm_name(ralg), alg);
		ok = false;
	} else if (ldns_calc_keytag(found) != tag) {
		load_error(ld, "%s: DNSKEY key tag %u is not the file name's %u", path,
		           ldns_calc_keytag(found), tag);
		ok = false;
	}
	if (!ok) {
		ldns_rr_free(found);
		return NULL;
	}
	return found;
}

/* Parse the .private file (any algorithm ldns reads).  Returns the key
 * (caller frees with ldns_key_deep_free) or NULL (reported). */
static ldns_key *load_private(struct loader *ld, const char *path)
{
	char *text = NULL;
	FILE *fp = open_text(ld, path, &text);
	if (!fp)
		return NULL;
	/* ldns does not look at the format line; check it here. */
	if (strncmp(text, "Private-key-format: v1.", 23) != 0) {
		load_error(ld, "%s: not a BIND private key file (no \"Private-key-format: v1.x\")",
		           path);
		fclose(fp);
		free(text);
		return NULL;
	}
	ldns_key *k = NULL;
	int line = 1;
	ldns_status s = ldns_key_new_frm_fp_l(&k, fp, &line);
	fclose(fp);
	free(text);
	if (s != LDNS_STATUS_OK || !k) {
		load_error(ld, "%s: cannot parse the private key (truncated or corrupt?): %s", path,
		           ldns_get_errorstr_by_id(s));
		if (k)
			ldns_key_deep_free(k);
		return NULL;
	}
	return k;
}

/* Load and cross-check one pair into *dk.  Returns true on success. */
static bool load_pair(struct loader *ld, const struct key_entry *e, struct drdns_dnskey *dk,
                      int *ksk_count, int *zsk_count)
{
	char *keypath = NULL, *privpath = NULL;
	if (asprintf(&keypath, "%s.key", e->base) < 0) {
		ld->oom = true;
		return false;
	}
	if (asprintf(&privpath, "%s.private", e->base) < 0) {
		free(keypath);
		ld->oom = true;
		return false;
	}
	bool ok = false;
	ldns_rr *dnskey = NULL;
	ldns_key *key = NULL;
	ldns_rr *derived = NULL;

	if (!supported_algorithm(e->alg)) {
		load_error(ld,
		           "%s: unsupported algorithm %u (%s); drdns signs with 8 (RSASHA256), "
		           "13 (ECDSAP256SHA256) and 15 (ED25519)",
		           e->has_key ? keypath : privpath, e->alg, algorithm_name(e->alg));
		goto out;
	}
	if (e->has_key) {
		dnskey = load_dnskey(ld, keypath, e->alg, e->tag);
		if (dnskey) {
			/* Count the intended roles even if the private key fails, so
			 * the KSK/ZSK rule is not reported on top of that failure. */
			if (ldns_rdf2native_int16(ldns_rr_rdf(dnskey, 0)) & LDNS_KEY_SEP_KEY)
				(*ksk_count)++;
			else
				(*zsk_count)++;
		}
	} else {
		load_error(ld, "%s: no matching .key file (%s)", privpath, keypath);
	}
	if (e->has_private)
		key = load_private(ld, privpath);
	else
		load_error(ld, "%s: no matching .private file (%s)", keypath, privpath);
	if (!dnskey || !key)
		goto out;

	uint16_t flags = ldns_rdf2native_int16(ldns_rr_rdf(dnskey, 0));
	unsigned kalg = (unsigned)ldns_key_algorithm(key);
	if (kalg != e->alg) {
		load_error(ld, "%s: private key algorithm %u (%s) is not the DNSKEY's %u (%s)",
		           privpath, kalg, algorithm_name(kalg), e->alg, algorithm_name(e->alg));
		goto out;
	}
	ldns_key_set_flags(key, flags);
	derived = ldns_key2rr(key);
	if (!derived || ldns_rr_rd_count(derived) != 4) {
		load_error(ld, "%s: cannot derive the public key from the private key", privpath);
		goto out;
	}
	if (ldns_rdf_compare(ldns_rr_rdf(derived, 3), ldns_rr_rdf(dnskey, 3)) != 0 ||
	    ldns_rdf_compare(ldns_rr_rdf(derived, 2), ldns_rr_rdf(dnskey, 2)) != 0 ||
	    ldns_calc_keytag(derived) != e->tag) {
		load_error(ld, "%s: the private key does not match the DNSKEY in %s", privpath,
		           keypath);
		goto out;
	}
	ldns_rdf *owner = ldns_rdf_clone(ldns_rr_owner(dnskey));
	if (!owner) {
		ld->oom = true;
		goto out;
	}
	ldns_key_set_pubkey_owner(key, owner);
	ldns_key_set_keytag(key, e->tag);

	*dk = (struct drdns_dnskey){
	    .key = key,
	    .dnskey = dnskey,
	    .tag = e->tag,
	    .algorithm = e->alg,
	    .ksk = (flags & LDNS_KEY_SEP_KEY) != 0,
	    .path = keypath,
	};
	key = NULL;
	dnskey = NULL;
	keypath = NULL;
	ok = true;
out:
	ldns_rr_free(derived);
	ldns_rr_free(dnskey);
	if (key)
		ldns_key_deep_free(key);
	free(keypath);
	free(privpath);
	return ok;
}

static int dnskey_cmp(const void *a, const void *b)
{
	const struct drdns_dnskey *x = a, *y = b;
	if (x->ksk != y->ksk)
		return x->ksk ? -1 : 1;
	if (x->tag != y->tag)
		return x->tag < y->tag ? -1 : 1;
	return (int)x->algorithm - (int)y->algorithm;
}

void drdns_keyset_free(struct drdns_keyset *ks)
{
	if (!ks)
		return;
	for (size_t i = 0; i < ks->n; i++) {
		if (ks->keys[i].key)
			ldns_key_deep_free(ks->keys[i].key); /* also the pubkey owner */
		ldns_rr_free(ks->keys[i].dnskey);
		free(ks->keys[i].path);
	}
	free(ks->keys);
	free(ks->zone);
	free(ks);
}

int drdns_keyset_load(const char *dir, const char *zone, struct drdns_keyset **out,
                      struct drdns_diag *diag)
{
	*out = NULL;
	if (!dir || !zone) {
		drdns_diag_error(diag, "%s: no key directory or zone given", dir ? dir : "?");
		return DRDNS_EDNSSEC;
	}
	struct loader ld = {.dir = dir, .diag = diag};
	char *czone = canonical_zone(zone);
	if (!czone) {
		if (*zone)
			return DRDNS_ENOMEM;
		drdns_diag_error(diag, "%s: empty zone name", dir);
		return DRDNS_EDNSSEC;
	}
	ld.zone = czone;
	if (ldns_str2rdf_dname(&ld.zone_rdf, czone) != LDNS_STATUS_OK) {
		drdns_diag_error(diag, "%s: invalid zone name %s", dir, zone);
		free(czone);
		return DRDNS_EDNSSEC;
	}

	struct key_entry *ents = NULL;
	size_t n_ents = 0;
	struct drdns_keyset *ks = NULL;
	int ret = scan_dir(&ld, &ents, &n_ents);
	if (ret < 0)
		goto done;
	if (n_ents == 0) {
		/* Nothing for this zone (perhaps malformed names, reported). */
		ret = ld.n_errors ? DRDNS_EDNSSEC : 0;
		goto done;
	}

	ks = calloc(1, sizeof(*ks));
	if (!ks || !(ks->keys = calloc(n_ents, sizeof(*ks->keys)))) {
		ret = DRDNS_ENOMEM;
		goto done;
	}
	int ksk = 0, zsk = 0;
	for (size_t i = 0; i < n_ents; i++)
		if (load_pair(&ld, &ents[i], &ks->keys[ks->n], &ksk, &zsk))
			ks->n++;
	if (ld.oom) {
		ret = DRDNS_ENOMEM;
		goto done;
	}
	/* The KSK/ZSK rule, over every key whose DNSKEY was readable. */
	if (ksk + zsk == 1 && zsk == 1)
		load_error(&ld,
		           "%s: zone %s has a single key and it is a ZSK (flags 256); a lone "
		           "key must be a CSK (flags 257)",
		           dir, czone);
	else if (ksk + zsk > 1 && ksk == 0)
		load_error(&ld, "%s: zone %s has no KSK (flags 257)", dir, czone);
	else if (ksk + zsk > 1 && zsk == 0)
		load_error(&ld, "%s: zone %s has no ZSK (flags 256) and more than one KSK", dir,
		           czone);
	if (ld.n_errors) {
		ret = DRDNS_EDNSSEC;
		goto done;
	}
	qsort(ks->keys, ks->n, sizeof(*ks->keys), dnskey_cmp);
	ks->zone = czone;
	czone = NULL;
	*out = ks;
	ks = NULL;
	ret = 0;
done:
	if (ret == DRDNS_EDNSSEC && ld.n_errors == 0)
		drdns_diag_error(diag, "%s: cannot load the keys of %s", dir, ld.zone);
	drdns_keyset_free(ks);
	entries_free(ents, n_ents);
	ldns_rdf_deep_free(ld.zone_rdf);
	free(czone);
	return ret;
}

ldns_rr_list *drdns_keyset_dnskeys(const struct drdns_keyset *ks, uint32_t ttl)
{
	ldns_rr_list *list = ldns_rr_list_new();
	if (!list || !ks)
		return list;
	for (size_t i = 0; i < ks->n; i++) {
		ldns_rr *rr = ldns_rr_clone(ks->keys[i].dnskey);
		if (!rr || !ldns_rr_list_push_rr(list, rr)) {
			ldns_rr_free(rr);
			ldns_rr_list_deep_free(list);
			return NULL;
		}
		ldns_rr_set_ttl(rr, ttl);
	}
	return list;
}
