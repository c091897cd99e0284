/*
 * TSIG keys (BIND key-file format) and signing/verifying over ldns.
 *
 * Key-file grammar accepted (what tsig-keygen and ddns-confgen write):
 *
 *   key "name" { algorithm hmac-sha256; secret "base64"; };
 *
 * with '#', '//' and C comments and any whitespace.  Exactly one key per file.
 */
#include "drdns/tsig.h"

#include "drdns/conf.h"
#include "drdns/diag.h"
#include "drdns/error.h"

#include <ctype.h>
#include <limits.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#define TSIG_FUDGE     300
#define TSIG_ALGORITHM "hmac-sha256."
#define KEYFILE_MAX    (64 * 1024)

/* ---------------------------------------------------------------- key files */

enum tok_kind {
	TOK_EOF,
	TOK_WORD,
	TOK_STRING,
	TOK_LBRACE,
	TOK_RBRACE,
	TOK_SEMI,
	TOK_ERROR
};

struct lexer {
	const char *path;
	const char *p, *end;
	int line;
	struct drdns_diag *diag;
	bool failed;
	/* current token */
	enum tok_kind kind;
	int tok_line;
	char *text; /* WORD/STRING value (owned) */
};

static void lex_error(struct lexer *lx, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Report one error as "file:line: message" (only the first: later ones would
 * mostly be consequences of it). */
static void lex_error(struct lexer *lx, int line, const char *fmt, ...)
{
	if (!lx->failed) {
		char msg[512];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		drdns_diag_error(lx->diag, "%s:%d: %s", lx->path, line, msg);
	}
	lx->failed = true;
}

/* Skip whitespace and comments.  Returns false on an unterminated comment. */
static bool lex_skip(struct lexer *lx)
{
	while (lx->p < lx->end) {
		char c = *lx->p;
		if (c == '\n') {
			lx->line++;
			lx->p++;
		} else if (isspace((unsigned char)c)) {
			lx->p++;
		} else if (c == '#' || (c == '/' && lx->p + 1 < lx->end && lx->p[1] == '/')) {
			while (lx->p < lx->end && *lx->p != '\n')
				lx->p++;
		} else if (c == '/' && lx->p + 1 < lx->end && lx->p[1] == '*') {
			int start = lx->line;
			lx->p += 2;
			for (;;) {
				if (lx->p + 1 >= lx->end) {
					lx->p = lx->end;
					lex_error(lx, start, "unterminated comment");
					return false;
				}
				if (lx->p[0] == '*' && lx->p[1] == '/') {
					lx->p += 2;
					break;
				}
				if (*lx->p == '\n')
					lx->line++;
				lx->p++;
			}
		} else {
			break;
		}
	}
	return true;
}

static bool is_word_char(char c)
{
	return !isspace((unsigned char)c) && c != '{' && c != '}' && c != ';' && c != '"' &&
	       c != '#' && c != '\0';
}

/* Advance to the next token. */
static void lex_next(struct lexer *lx)
{
	free(lx->text);
	lx->text = NULL;
	if (!lex_skip(lx)) {
		lx->kind = TOK_ERROR;
		return;
	}
	lx->tok_line = lx->line;
	if (lx->p >= lx->end) {
		/* report the end of the file on its last line, not the one after */
		if (lx->line > 1 && lx->end[-1] == '\n')
			lx->tok_line = lx->line - 1;
		lx->kind = TOK_EOF;
		return;
	}
	char c = *lx->p;
	if (c == '{' || c == '}' || c == ';') {
		lx->kind = c == '{' ? TOK_LBRACE : c == '}' ? TOK_RBRACE : TOK_SEMI;
		lx->p++;
		return;
	}
	if (c == '"') {
		lx->p++;
		size_t cap = 64, len = 0;
		char *buf = malloc(cap);
		if (!buf) {
			lx->kind = TOK_ERROR;
			lx->failed = true;
			return;
		}
		while (lx->p < lx->end && *lx->p != '"') {
			char ch = *lx->p++;
			if (ch == '\\' && lx->p < lx->end)
				ch = *lx->p++;
			if (ch == '\n')
				lx->line++;
			if (len + 2 > cap) {
				char *g = realloc(buf, cap *= 2);
				if (!g) {
					free(buf);
					lx->kind = TOK_ERROR;
					lx->failed = true;
					return;
				}
				buf = g;
			}
			buf[len++] = ch;
		}
		if (lx->p >= lx->end) {
			free(buf);
			lex_error(lx, lx->tok_line, "unterminated string");
			lx->kind = TOK_ERROR;
			return;
		}
		lx->p++; /* closing quote */
		buf[len] = '\0';
		lx->text = buf;
		lx->kind = TOK_STRING;
		return;
	}
	const char *s = lx->p;
	while (lx->p < lx->end && is_word_char(*lx->p)) {
		if (*lx->p == '/' && lx->p + 1 < lx->end && (lx->p[1] == '/' || lx->p[1] == '*'))
			break;
		lx->p++;
	}
	if (lx->p == s) {
		/* a NUL byte or similar */
		lex_error(lx, lx->line, "unexpected character in key file");
		lx->kind = TOK_ERROR;
		return;
	}
	lx->text = strndup(s, (size_t)(lx->p - s));
	lx->kind = lx->text ? TOK_WORD : TOK_ERROR;
	if (!lx->text)
		lx->failed = true;
}

static const char *tok_describe(const struct lexer *lx)
{
	switch (lx->kind) {
	case TOK_EOF: return "end of file";
	case TOK_LBRACE: return "'{'";
	case TOK_RBRACE: return "'}'";
	case TOK_SEMI: return "';'";
	case TOK_WORD:
	case TOK_STRING: return lx->text;
	default: return "invalid input";
	}
}

/* Report "expected X, found Y" at the current token. */
static void expect_error(struct lexer *lx, const char *what)
{
	if (lx->kind == TOK_ERROR)
		return; /* already reported */
	const char *q = lx->kind == TOK_WORD || lx->kind == TOK_STRING ? "'" : "";
	lex_error(lx, lx->tok_line, "expected %s, found %s%s%s", what, q, tok_describe(lx), q);
}

static bool expect(struct lexer *lx, enum tok_kind kind, const char *what)
{
	if (lx->kind != kind) {
		expect_error(lx, what);
		return false;
	}
	lex_next(lx);
	return true;
}

/* Strict base64 check: decodes to at least one byte. */
static bool base64_ok(const char *s)
{
	size_t len = strlen(s);
	if (len == 0 || len % 4 != 0)
		return false;
	size_t pad = 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == '=') {
			pad++;
			continue;
		}
		if (pad)
			return false; /* data after padding */
		if (!isalnum((unsigned char)c) && c != '+' && c != '/')
			return false;
	}
	if (pad > 2)
		return false;
	if (len > INT_MAX / 2)
		return false;
	unsigned char *buf = malloc(len / 4 * 3 + 1);
	if (!buf)
		return false;
	int n = EVP_DecodeBlock(buf, (const unsigned char *)s, (int)len);
	OPENSSL_cleanse(buf, len / 4 * 3 + 1);
	free(buf);
	return n - (int)pad > 0;
}

static char *normalize_key_name(const char *text)
{
	ldns_rdf *rdf = NULL;
	if (!text[0] || ldns_str2rdf_dname(&rdf, text) != LDNS_STATUS_OK || !rdf)
		return NULL;
	ldns_dname2canonical(rdf);
	char *s = ldns_rdf2str(rdf);
	ldns_rdf_deep_free(rdf);
	if (s && !strcmp(s, ".")) { /* the root is not a key name */
		free(s);
		return NULL;
	}
	return s;
}

void drdns_tsig_key_free(struct drdns_tsig_key *key)
{
	if (!key)
		return;
	free(key->name);
	free(key->algorithm);
	if (key->secret) {
		/* do not leave the secret lying around in freed memory */
		OPENSSL_cleanse(key->secret, strlen(key->secret));
		free(key->secret);
	}
	free(key);
}

/* Parse one key statement; the lexer sits on the key name.  key_line is the
 * line of the "key" keyword.  Fills *key on success. */
static bool parse_key_body(struct lexer *lx, int key_line, struct drdns_tsig_key *key)
{
	if (lx->kind != TOK_STRING && lx->kind != TOK_WORD) {
		expect_error(lx, "a key name");
		return false;
	}
	char *name = normalize_key_name(lx->text);
	if (!name) {
		lex_error(lx, lx->tok_line, "invalid key name '%s'", lx->text);
		return false;
	}
	key->name = name;
	lex_next(lx);
	if (!expect(lx, TOK_LBRACE, "'{'"))
		return false;

	while (lx->kind != TOK_RBRACE) {
		if (lx->kind != TOK_WORD) {
			expect_error(lx, "'algorithm', 'secret' or '}'");
			return false;
		}
		int line = lx->tok_line;
		if (!strcasecmp(lx->text, "algorithm")) {
			lex_next(lx);
			if (lx->kind != TOK_WORD && lx->kind != TOK_STRING) {
				expect_error(lx, "an algorithm name");
				return false;
			}
			if (key->algorithm) {
				lex_error(lx, line, "algorithm given twice");
				return false;
			}
			char *alg = strdup(lx->text);
			if (!alg)
				return false;
			for (char *c = alg; *c; c++)
				*c = (char)tolower((unsigned char)*c);
			size_t alen = strlen(alg);
			if (alen && alg[alen - 1] == '.')
				alg[alen - 1] = '\0';
			bool ok = !strcmp(alg, "hmac-sha256");
			free(alg);
			if (!ok) {
				lex_error(lx, lx->tok_line,
				          "unsupported TSIG algorithm '%s' (only hmac-sha256 is "
				          "supported)",
				          lx->text);
				return false;
			}
			key->algorithm = strdup(TSIG_ALGORITHM);
			if (!key->algorithm)
				return false;
			lex_next(lx);
		} else if (!strcasecmp(lx->text, "secret")) {
			lex_next(lx);
			if (lx->kind != TOK_WORD && lx->kind != TOK_STRING) {
				expect_error(lx, "a base64 secret");
				return false;
			}
			if (key->secret) {
				lex_error(lx, line, "secret given twice");
				return false;
			}
			if (!base64_ok(lx->text)) {
				lex_error(lx, lx->tok_line, "secret is not valid base64");
				return false;
			}
			key->secret = strdup(lx->text);
			if (!key->secret)
				return false;
			lex_next(lx);
		} else {
			lex_error(lx, line, "unknown key option '%s'", lx->text);
			return false;
		}
		if (!expect(lx, TOK_SEMI, "';'"))
			return false;
	}
	lex_next(lx); /* '}' */
	if (!expect(lx, TOK_SEMI, "';' after '}'"))
		return false;
	if (!key->algorithm) {
		lex_error(lx, key_line, "key '%s' has no algorithm", key->name);
		return false;
	}
	if (!key->secret) {
		lex_error(lx, key_line, "key '%s' has no secret", key->name);
		return false;
	}
	return true;
}

int drdns_tsig_key_load(const char *path, struct drdns_tsig_key **out, struct drdns_diag *diag)
{
	*out = NULL;
	FILE *f = fopen(path, "r");
	if (!f) {
		drdns_diag_error(diag, "%s:0: cannot read key file: %s", path, strerror(errno));
		return DRDNS_ETSIG;
	}
	char *buf = malloc(KEYFILE_MAX + 1);
	if (!buf) {
		fclose(f);
		return DRDNS_ENOMEM;
	}
	size_t len = fread(buf, 1, KEYFILE_MAX + 1, f);
	bool read_err = ferror(f);
	int saved = errno;
	fclose(f);
	if (read_err) {
		drdns_diag_error(diag, "%s:0: cannot read key file: %s", path, strerror(saved));
		free(buf);
		return DRDNS_ETSIG;
	}
	if (len > KEYFILE_MAX) {
		drdns_diag_error(diag, "%s:0: key file is too large (over %d bytes)", path,
		                 KEYFILE_MAX);
		free(buf);
		return DRDNS_ETSIG;
	}
	buf[len] = '\0';

	struct lexer lx = {.path = path, .p = buf, .end = buf + len, .line = 1, .diag = diag};
	struct drdns_tsig_key *key = NULL;
	lex_next(&lx);
	while (!lx.failed && lx.kind != TOK_EOF) {
		if (lx.kind != TOK_WORD || strcasecmp(lx.text, "key") != 0) {
			expect_error(&lx, "'key'");
			break;
		}
		int key_line = lx.tok_line;
		if (key) {
			lex_error(
			    &lx, key_line,
			    "more than one key in the file (one key per file; the first is '%s')",
			    key->name);
			break;
		}
		key = calloc(1, sizeof(*key));
		if (!key) {
			lx.failed = true;
			break;
		}
		lex_next(&lx);
		if (!parse_key_body(&lx, key_line, key))
			lx.failed = true;
	}
	if (!lx.failed && !key)
		lex_error(&lx, 1, "no key statement in the file");
	free(lx.text);
	/* wipe the file text: it holds the secret */
	OPENSSL_cleanse(buf, len);
	free(buf);
	if (lx.failed) {
		drdns_tsig_key_free(key);
		return DRDNS_ETSIG;
	}
	*out = key;
	return 0;
}

/* ---------------------------------------------------------- sign / verify */

static void drop_tsig(ldns_pkt *pkt)
{
	ldns_rr *old = ldns_pkt_tsig(pkt);
	if (old) {
		ldns_pkt_set_tsig(pkt, NULL);
		ldns_rr_free(old);
	}
}

static bool key_usable(const struct drdns_tsig_key *key)
{
	return key && key->name && key->secret && key->algorithm;
}

int drdns_tsig_sign(ldns_pkt *pkt, const struct drdns_tsig_key *key, const ldns_rdf *query_mac)
{
	if (!pkt || !key_usable(key))
		return DRDNS_ETSIG;
	drop_tsig(pkt);
	ldns_status st =
	    ldns_pkt_tsig_sign(pkt, key->name, key->secret, TSIG_FUDGE, key->algorithm, query_mac);
	return st == LDNS_STATUS_OK && ldns_pkt_tsig(pkt) ? 0 : DRDNS_ETSIG;
}

int drdns_tsig_sign_next(ldns_pkt *pkt, const struct drdns_tsig_key *key, const ldns_rdf *prev_mac)
{
	if (!pkt || !key_usable(key) || !prev_mac)
		return DRDNS_ETSIG;
	drop_tsig(pkt);
	ldns_status st = ldns_pkt_tsig_sign_next(pkt, key->name, key->secret, TSIG_FUDGE,
	                                         key->algorithm, prev_mac, 1);
	return st == LDNS_STATUS_OK && ldns_pkt_tsig(pkt) ? 0 : DRDNS_ETSIG;
}

static bool dname_equals_text(const ldns_rdf *rdf, const char *text)
{
	ldns_rdf *other = NULL;
	if (!rdf || ldns_rdf_get_type(rdf) != LDNS_RDF_TYPE_DNAME ||
	    ldns_str2rdf_dname(&other, text) != LDNS_STATUS_OK || !other)
		return false;
	bool eq = ldns_dname_compare(rdf, other) == 0;
	ldns_rdf_deep_free(other);
	return eq;
}

static int verify(ldns_pkt *pkt, const uint8_t *wire, size_t wire_len,
                  const struct drdns_tsig_key *key, const ldns_rdf *request_mac, int timers_only)
{
	if (!pkt || !wire || !key_usable(key))
		return DRDNS_ETSIG;
	ldns_rr *tsig = ldns_pkt_tsig(pkt);
	if (!tsig || ldns_rr_rd_count(tsig) < 7)
		return DRDNS_ETSIG;
	/* key name and algorithm must be ours (this also keeps ldns away from an
	 * unknown algorithm, on which it loses the TSIG record) */
	if (!dname_equals_text(ldns_rr_owner(tsig), key->name) ||
	    !dname_equals_text(ldns_rr_rdf(tsig, 0), key->algorithm))
		return DRDNS_ETSIG;
	if (!drdns_tsig_time_ok(tsig, (uint64_t)time(NULL)))
		return DRDNS_ETSIG;

	/* ldns temporarily detaches the TSIG and swaps the id; on some internal
	 * failures it does not put them back, so guard against that here. */
	uint16_t id = ldns_pkt_id(pkt);
	bool ok = ldns_pkt_tsig_verify_next(pkt, wire, wire_len, key->name, key->secret,
	                                    request_mac, timers_only);
	if (ldns_pkt_tsig(pkt) != tsig) {
		ldns_pkt_set_tsig(pkt, tsig);
		ldns_pkt_set_id(pkt, id);
		ok = false;
	}
	return ok ? 0 : DRDNS_ETSIG;
}

/* ------------------------------------------------------------ server side */

bool drdns_tsig_time_ok(const ldns_rr *tsig, uint64_t now)
{
	const ldns_rdf *t = tsig ? ldns_rr_rdf(tsig, 1) : NULL,
	               *f = tsig ? ldns_rr_rdf(tsig, 2) : NULL;
	if (!t || !f || ldns_rdf_size(t) != 6 || ldns_rdf_size(f) != 2)
		return false;
	const uint8_t *d = ldns_rdf_data(t);
	uint64_t at = ((uint64_t)d[0] << 40) | ((uint64_t)d[1] << 32) | ((uint64_t)d[2] << 24) |
	              ((uint64_t)d[3] << 16) | ((uint64_t)d[4] << 8) | (uint64_t)d[5];
	uint64_t skew = now > at ? now - at : at - now;
	return skew <= ldns_rdf2native_int16(f);
}

const struct drdns_tsig_key *drdns_tsig_find_key(const struct drdns_conf *conf, const ldns_rr *tsig)
{
	if (!conf || !tsig || ldns_rr_rd_count(tsig) < 1)
		return NULL;
	for (size_t i = 0; i < conf->n_secondaries; i++) {
		const struct drdns_tsig_key *k = conf->secondaries[i].key;
		if (k && dname_equals_text(ldns_rr_owner(tsig), k->name) &&
		    dname_equals_text(ldns_rr_rdf(tsig, 0), k->algorithm))
			return k;
	}
	return NULL;
}

struct drdns_tsig_key *drdns_tsig_key_copy(const struct drdns_tsig_key *k)
{
	struct drdns_tsig_key *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->name = strdup(k->name);
	c->algorithm = strdup(k->algorithm);
	c->secret = strdup(k->secret);
	if (!c->name || !c->algorithm || !c->secret) {
		drdns_tsig_key_free(c);
		return NULL;
	}
	return c;
}

const char *drdns_tsig_error_name(uint16_t e)
{
	switch (e) {
	case DRDNS_TSIG_BADSIG: return "BADSIG";
	case DRDNS_TSIG_BADKEY: return "BADKEY";
	case DRDNS_TSIG_BADTIME: return "BADTIME";
	default: return "ERROR";
	}
}

ldns_rr *drdns_tsig_error_rr(const ldns_rr *qtsig, uint16_t orig_id, uint16_t error, uint64_t now)
{
	if (!qtsig || ldns_rr_rd_count(qtsig) < 7)
		return NULL;
	ldns_rr *rr = ldns_rr_new();
	if (!rr)
		return NULL;
	ldns_rr_set_owner(rr, ldns_rdf_clone(ldns_rr_owner(qtsig)));
	ldns_rr_set_class(rr, LDNS_RR_CLASS_ANY);
	ldns_rr_set_type(rr, LDNS_RR_TYPE_TSIG);
	ldns_rr_set_ttl(rr, 0);
	uint8_t now48[6];
	for (int i = 5; i >= 0; i--, now >>= 8)
		now48[i] = (uint8_t)(now & 0xff);
	ldns_rr_push_rdf(rr, ldns_rdf_clone(ldns_rr_rdf(qtsig, 0)));
	if (error == DRDNS_TSIG_BADTIME)
		ldns_rr_push_rdf(rr, ldns_rdf_clone(ldns_rr_rdf(qtsig, 1)));
	else
		ldns_rr_push_rdf(rr, ldns_rdf_new_frm_data(LDNS_RDF_TYPE_TSIGTIME, 6, now48));
	ldns_rr_push_rdf(rr, ldns_rdf_clone(ldns_rr_rdf(qtsig, 2)));
	ldns_rr_push_rdf(rr, ldns_native2rdf_int16_data(0, NULL));
	ldns_rr_push_rdf(rr, ldns_native2rdf_int16(LDNS_RDF_TYPE_INT16, orig_id));
	ldns_rr_push_rdf(rr, ldns_native2rdf_int16(LDNS_RDF_TYPE_INT16, error));
	if (error == DRDNS_TSIG_BADTIME)
		ldns_rr_push_rdf(rr, ldns_native2rdf_int16_data(6, now48));
	else
		ldns_rr_push_rdf(rr, ldns_native2rdf_int16_data(0, NULL));
	for (size_t i = 0; i < 7; i++) {
		if (!ldns_rr_rdf(rr, i)) {
			ldns_rr_free(rr);
			return NULL;
		}
	}
	return rr;
}

int drdns_tsig_verify(ldns_pkt *pkt, const uint8_t *wire, size_t wire_len,
                      const struct drdns_tsig_key *key, const ldns_rdf *request_mac)
{
	return verify(pkt, wire, wire_len, key, request_mac, 0);
}

int drdns_tsig_verify_next(ldns_pkt *pkt, const uint8_t *wire, size_t wire_len,
                           const struct drdns_tsig_key *key, const ldns_rdf *prev_mac)
{
	if (!prev_mac)
		return DRDNS_ETSIG;
	return verify(pkt, wire, wire_len, key, prev_mac, 1);
}

/* ------------------------------------------------------------ wire signing */

/* The digest of a TSIG algorithm name ("hmac-sha256." or without the dot). */
static const EVP_MD *tsig_digest(const char *algorithm)
{
	static const struct {
		const char *name;
		const EVP_MD *(*md)(void);
	} algs[] = {
	    {"hmac-sha256", EVP_sha256}, {"hmac-sha384", EVP_sha384}, {"hmac-sha512", EVP_sha512},
	    {"hmac-sha224", EVP_sha224}, {"hmac-sha1", EVP_sha1},
	};
	size_t n = strlen(algorithm);
	if (n && algorithm[n - 1] == '.')
		n--;
	for (size_t i = 0; i < sizeof(algs) / sizeof(*algs); i++)
		if (strlen(algs[i].name) == n && !strncasecmp(algorithm, algs[i].name, n))
			return algs[i].md();
	return NULL;
}

/* A name in (uncompressed) wire form; false when it is not a valid name. */
static bool name_wire(const char *text, uint8_t out[256], size_t *len)
{
	ldns_rdf *rdf = NULL;
	if (ldns_str2rdf_dname(&rdf, text) != LDNS_STATUS_OK || !rdf)
		return false;
	*len = ldns_rdf_size(rdf);
	bool ok = *len >= 1 && *len <= 255;
	if (ok)
		memcpy(out, ldns_rdf_data(rdf), *len);
	ldns_rdf_deep_free(rdf);
	return ok;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put48(uint8_t *p, uint64_t v)
{
	for (int i = 5; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)(v & 0xff);
}

int drdns_tsig_sign_wire(uint8_t *msg, size_t len, size_t cap, size_t *out_len,
                         const struct drdns_tsig_key *key, const uint8_t *prev_mac,
                         size_t prev_mac_len, bool timers_only, uint64_t time_signed, uint8_t *mac,
                         size_t *mac_len)
{
	if (!msg || !out_len || !mac || !mac_len || !key_usable(key))
		return DRDNS_ETSIG;
	if (len < 12 || (prev_mac && prev_mac_len > 0xffff) || (!prev_mac && timers_only))
		return DRDNS_EINVAL;
	const EVP_MD *md = tsig_digest(key->algorithm);
	uint8_t kname[256], alg[256];
	size_t kname_len, alg_len;
	if (!md || EVP_MD_get_size(md) > DRDNS_TSIG_MAC_MAX ||
	    !name_wire(key->name, kname, &kname_len) || !name_wire(key->algorithm, alg, &alg_len))
		return DRDNS_ETSIG;
	size_t md_size = (size_t)EVP_MD_get_size(md);
	size_t rdlen = alg_len + 6 + 2 + 2 + md_size + 2 + 2 + 2;
	size_t total = len + kname_len + 10 + rdlen;
	uint16_t arcount = (uint16_t)((msg[10] << 8) | msg[11]);
	if (total > cap || total > 65535 || arcount == 0xffff)
		return DRDNS_EINVAL;

	/* the secret (base64 in the key file) */
	size_t b64 = strlen(key->secret);
	if (b64 == 0 || b64 % 4 != 0 || b64 > INT_MAX)
		return DRDNS_ETSIG;
	size_t pad = (key->secret[b64 - 1] == '=') + (b64 > 1 && key->secret[b64 - 2] == '=');
	uint8_t *secret = malloc(b64 / 4 * 3 + 1);
	if (!secret)
		return DRDNS_ENOMEM;
	int dec = EVP_DecodeBlock(secret, (const unsigned char *)key->secret, (int)b64);
	if (dec < 0 || (size_t)dec < pad + 1) {
		OPENSSL_cleanse(secret, b64 / 4 * 3 + 1);
		free(secret);
		return DRDNS_ETSIG;
	}
	size_t secret_len = (size_t)dec - pad;

	/* what the MAC covers: [prev MAC] message variables */
	size_t vars_max = 256 + 2 + 4 + 256 + 6 + 2 + 2 + 2;
	size_t dlen = 0;
	uint8_t *data = malloc((prev_mac ? 2 + prev_mac_len : 0) + len + vars_max);
	if (!data) {
		OPENSSL_cleanse(secret, b64 / 4 * 3 + 1);
		free(secret);
		return DRDNS_ENOMEM;
	}
	if (prev_mac) {
		put16(data, (uint16_t)prev_mac_len);
		memcpy(data + 2, prev_mac, prev_mac_len);
		dlen = 2 + prev_mac_len;
	}
	memcpy(data + dlen, msg, len);
	dlen += len;
	if (!timers_only) {
		for (size_t i = 0; i < kname_len; i++) /* canonical: lowercase */
			data[dlen + i] = (uint8_t)tolower(kname[i]);
		dlen += kname_len;
		put16(data + dlen, LDNS_RR_CLASS_ANY);
		memset(data + dlen + 2, 0, 4); /* TTL */
		dlen += 6;
		for (size_t i = 0; i < alg_len; i++)
			data[dlen + i] = (uint8_t)tolower(alg[i]);
		dlen += alg_len;
	}
	put48(data + dlen, time_signed);
	put16(data + dlen + 6, TSIG_FUDGE);
	dlen += 8;
	if (!timers_only) {
		memset(data + dlen, 0, 4); /* error, other length */
		dlen += 4;
	}
	unsigned int out = 0;
	uint8_t digest[EVP_MAX_MD_SIZE];
	bool ok =
	    HMAC(md, secret, (int)secret_len, data, dlen, digest, &out) != NULL && out == md_size;
	OPENSSL_cleanse(secret, b64 / 4 * 3 + 1);
	free(secret);
	free(data);
	if (!ok)
		return DRDNS_ETSIG;

	/* the record */
	uint8_t *p = msg + len;
	memcpy(p, kname, kname_len);
	p += kname_len;
	put16(p, LDNS_RR_TYPE_TSIG);
	put16(p + 2, LDNS_RR_CLASS_ANY);
	memset(p + 4, 0, 4);
	put16(p + 8, (uint16_t)rdlen);
	p += 10;
	memcpy(p, alg, alg_len);
	p += alg_len;
	put48(p, time_signed);
	put16(p + 6, TSIG_FUDGE);
	put16(p + 8, (uint16_t)md_size);
	p += 10;
	memcpy(p, digest, md_size);
	p += md_size;
	memcpy(p, msg, 2);   /* original id */
	memset(p + 2, 0, 4); /* error, other length */
	put16(msg + 10, (uint16_t)(arcount + 1));
	*out_len = total;
	memcpy(mac, digest, md_size);
	*mac_len = md_size;
	OPENSSL_cleanse(digest, sizeof(digest));
	return 0;
}
