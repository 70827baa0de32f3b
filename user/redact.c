// SPDX-License-Identifier: MIT
/*
 * Secret redaction in one left-to-right pass. At each word a few cheap
 * matchers run (PEM block, URL password, known token prefixes, JWT,
 * Authorization credentials, sensitive keys); a word that matches none is
 * copied whole. The heuristics lean towards redacting: a false positive costs
 * the reader one value, a false negative leaks a credential. They also
 * understand JSON-escaped text (\" and \n), so a request body whose strings
 * carry a prompt is redacted the same way as the prompt itself.
 */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "heal/redact.h"
#include "heal/util.h"

#define MARK_LEN (sizeof(REDACT_MARK) - 1)
#define KEY_MAX	 128 /* longer words are not key names */

struct out {
	struct util_sb b;
	size_t n; /* replacements */
};

/* A secret at [from, to); scanning resumes at to. */
struct hit {
	size_t from, to;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (n)
		util__sb_putn(&o->b, s, n);
}

static char lower(char c)
{
	return (char)tolower((unsigned char)c);
}

static bool is_alnum(char c)
{
	return isalnum((unsigned char)c);
}

/* Characters of a word: identifiers, dotted and dashed names, most tokens. */
static bool is_word(char c)
{
	return is_alnum(c) || c == '_' || c == '-' || c == '.';
}

static bool is_b64url(char c)
{
	return is_alnum(c) || c == '_' || c == '-';
}

/* RFC 7235 token68, what Bearer/Basic credentials are made of. */
static bool is_cred(char c)
{
	return is_alnum(c) || (c && strchr("-._~+/=", c));
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static bool at(const char *s, size_t n, size_t i, const char *p)
{
	size_t l = strlen(p);

	return i + l <= n && memcmp(s + i, p, l) == 0;
}

static bool eq_ci(const char *s, size_t n, const char *w)
{
	return strlen(w) == n && strncasecmp(s, w, n) == 0;
}

static size_t skip_blanks(const char *s, size_t n, size_t i)
{
	while (i < n && is_blank(s[i]))
		i++;
	return i;
}

/* A JSON escape that ends a line or a string: \n \r \t \" inside an encoded body. */
static bool is_escaped_break(const char *s, size_t n, size_t i)
{
	return s[i] == '\\' && i + 1 < n && strchr("nrt\"", s[i + 1]) && s[i + 1];
}

/* -----BEGIN ... PRIVATE KEY----- through its END line, or to the end of the text. */
static bool match_pem(const char *s, size_t n, size_t i, struct hit *h)
{
	size_t j = i + 11, k;
	const char *end;

	if (!at(s, n, i, "-----BEGIN "))
		return false;
	for (k = j; k < n && k - j < 64 &&
		    (isupper((unsigned char)s[k]) || isdigit((unsigned char)s[k]) || s[k] == ' ');
	     k++)
		;
	if (!at(s, n, k, "-----") || !memmem(s + j, k - j, "PRIVATE KEY", 11))
		return false;
	h->from = i;
	h->to = n;
	end = memmem(s + k, n - k, "-----END ", 9);
	if (end) {
		const char *dash = memmem(end + 9, n - (size_t)(end + 9 - s), "-----", 5);

		if (dash)
			h->to = (size_t)(dash + 5 - s);
	}
	return true;
}

/* scheme://user:PASSWORD@host: the password, found from the "://". */
static bool match_url_password(const char *s, size_t n, size_t i, struct hit *h)
{
	size_t a = i + 3, e, k, at_sign = 0, colon = 0;

	if (i == 0 || !is_alnum(s[i - 1]) || !at(s, n, i, "://"))
		return false;
	for (e = a; e < n && !strchr("/?#\"'<>`\\ \t\r\n", s[e]); e++)
		if (s[e] == '@')
			at_sign = e; /* the last '@': passwords may hold one unescaped */
	if (!at_sign)
		return false;
	for (k = a; k < at_sign; k++) {
		if (s[k] == ':') {
			colon = k;
			break;
		}
	}
	if (!colon)
		return false;
	h->from = colon + 1;
	h->to = at_sign;
	return true;
}

struct token_prefix {
	const char *prefix;
	unsigned min_len; /* of what follows the prefix */
	bool aws;	  /* exactly 16 of [0-9A-Z] */
};

static const struct token_prefix token_prefixes[] = {
    {"sk-ant-", 20, false},  {"sk-", 20, false},      {"sk_live_", 16, false},
    {"sk_test_", 16, false}, {"rk_live_", 16, false}, {"rk_test_", 16, false},
    {"ghp_", 20, false},     {"gho_", 20, false},     {"ghu_", 20, false},
    {"ghs_", 20, false},     {"ghr_", 20, false},     {"github_pat_", 20, false},
    {"glpat-", 20, false},   {"xoxa-", 10, false},    {"xoxb-", 10, false},
    {"xoxp-", 10, false},    {"xoxr-", 10, false},    {"xoxs-", 10, false},
    {"hf_", 30, false},	     {"npm_", 30, false},     {"AIza", 30, false},
    {"AKIA", 16, true},	     {"ASIA", 16, true},
};

/* API keys and tokens recognised by their prefix (sk-, sk-ant-, ghp_, xoxb-, AKIA, ...). */
static bool match_token(const char *s, size_t n, size_t i, struct hit *h)
{
	size_t t, k, p;

	for (t = 0; t < sizeof(token_prefixes) / sizeof(token_prefixes[0]); t++) {
		const struct token_prefix *tp = &token_prefixes[t];
		bool digit = false, up = false, low = false;

		if (!at(s, n, i, tp->prefix))
			continue;
		p = i + strlen(tp->prefix);
		if (tp->aws) {
			for (k = p; k < n &&
				    (isupper((unsigned char)s[k]) || isdigit((unsigned char)s[k]));
			     k++)
				;
			if (k - p != tp->min_len || (k < n && is_alnum(s[k])))
				continue;
		} else {
			for (k = p; k < n && is_b64url(s[k]); k++) {
				digit |= isdigit((unsigned char)s[k]) != 0;
				up |= isupper((unsigned char)s[k]) != 0;
				low |= islower((unsigned char)s[k]) != 0;
			}
			/* random keys have digits or mixed case; names like sk-learn-... do not */
			if (k - p < tp->min_len || !(digit || (up && low)))
				continue;
		}
		h->from = i;
		h->to = k;
		return true;
	}
	return false;
}

/* header.payload.signature with both JSON parts base64url ("eyJ"). */
static bool match_jwt(const char *s, size_t n, size_t i, struct hit *h)
{
	size_t k = i, j;

	if (!at(s, n, i, "eyJ"))
		return false;
	while (k < n && is_b64url(s[k]))
		k++;
	if (k - i < 10 || !at(s, n, k, ".eyJ"))
		return false;
	j = ++k;
	while (k < n && is_b64url(s[k]))
		k++;
	if (k - j < 4 || k >= n || s[k] != '.')
		return false;
	k++;
	while (k < n && is_b64url(s[k]))
		k++;
	h->from = i;
	h->to = k;
	return true;
}

/* Length of an opening quote at i: " ' or \" (JSON-escaped); 0 when none. */
static size_t quote_len(const char *s, size_t n, size_t i)
{
	if (i < n && (s[i] == '"' || s[i] == '\''))
		return 1;
	if (at(s, n, i, "\\\""))
		return 2;
	return 0;
}

/* End of a quoted value opened by the quote at q (length ql): its closing quote or the line end. */
static size_t quoted_end(const char *s, size_t n, size_t q, size_t ql)
{
	size_t j = q + ql;

	while (j < n && s[j] != '\n' && s[j] != '\r') {
		if (ql == 2) {
			if (at(s, n, j, "\\\"") || s[j] == '"')
				return j; /* a bare quote ends the enclosing JSON string */
			if (s[j] == '\\') {
				j += 2;
				continue;
			}
		} else if (s[q] == '"') {
			if (s[j] == '"')
				return j;
			if (s[j] == '\\') {
				j += 2;
				continue;
			}
		} else if (s[j] == '\'') {
			return j;
		}
		j++;
	}
	return j > n ? n : j;
}

/* The credentials after "Authorization:", keeping a Bearer/Basic/... scheme. */
static bool match_authorization(const char *s, size_t n, size_t i, size_t wend, struct hit *h)
{
	size_t k = wend, j, q, ql;

	if (!eq_ci(s + i, wend - i, "authorization") &&
	    !eq_ci(s + i, wend - i, "proxy-authorization"))
		return false;
	k += quote_len(s, n, k);
	k = skip_blanks(s, n, k);
	if (k >= n || (s[k] != ':' && s[k] != '='))
		return false;
	q = skip_blanks(s, n, k + 1);
	ql = quote_len(s, n, q);
	k = q + ql;
	for (j = k; j < n && is_cred(s[j]); j++)
		;
	if (j > k && j < n && is_blank(s[j])) {
		/* a scheme word, then the credentials */
		bool simple = eq_ci(s + k, j - k, "bearer") || eq_ci(s + k, j - k, "basic") ||
			      eq_ci(s + k, j - k, "token");

		k = skip_blanks(s, n, j);
		if (at(s, n, k, REDACT_MARK)) {
			j = k + MARK_LEN;
		} else if (simple) {
			for (j = k; j < n && is_cred(s[j]); j++)
				;
		} else if (ql) {
			/* Digest, AWS4-HMAC-SHA256, ...: the rest of the quoted value */
			j = quoted_end(s, n, q, ql);
		} else {
			for (j = k;
			     j < n && s[j] != '\n' && s[j] != '\r' && !is_escaped_break(s, n, j);
			     j++)
				;
		}
	} else if (at(s, n, k, REDACT_MARK)) {
		j = k + MARK_LEN;
	}
	if (j <= k)
		return false;
	h->from = k;
	h->to = j;
	return true;
}

/* "Bearer <token>" anywhere (curl command lines, logs). */
static bool match_bearer(const char *s, size_t n, size_t i, size_t wend, struct hit *h)
{
	size_t k = wend + 1, j;

	if (!eq_ci(s + i, wend - i, "bearer") || wend >= n || s[wend] != ' ')
		return false;
	if (at(s, n, k, REDACT_MARK)) {
		h->from = k;
		h->to = k + MARK_LEN;
		return true;
	}
	for (j = k; j < n && is_cred(s[j]); j++)
		;
	if (j - k < 16)
		return false;
	h->from = k;
	h->to = j;
	return true;
}

static const char *const strong_words[] = {
    "password", "passwd",      "passphrase", "secret",	   "api_key",
    "apikey",	"private_key", "access_key", "credential",
};

/* Names that say where a secret lives or describe it, not the secret itself. */
static const char *const ignore_suffixes[] = {
    "file",   "path",	 "env",	       "dir",	     "name",   "url",	 "uri",	  "endpoint",
    "type",   "ttl",	 "len",	       "length",     "size",   "count",	 "limit", "timeout",
    "expiry", "expires", "expires_in", "expires_at", "policy", "prompt", "hint",  "header",
};
static const char *const ignore_prefixes[] = {
    "has_", "is_", "use_", "n_", "num_", "max_", "min_", "no_", "enable_", "require_", "show_",
};

/*
 * Does the word name a secret? Weak when only "token" makes it so (then a bare
 * number is a count or a TTL, not a secret). "tokens" and "tokenizer" are not.
 */
static bool sensitive_key(const char *s, size_t len, bool *weak)
{
	char k[KEY_MAX + 1];
	const char *p;
	size_t i, sl;
	bool strong = false, tok = false;

	if (len == 0 || len > KEY_MAX)
		return false;
	for (i = 0; i < len; i++)
		k[i] = s[i] == '-' ? '_' : lower(s[i]);
	k[len] = '\0';
	for (i = 0; i < sizeof(strong_words) / sizeof(strong_words[0]) && !strong; i++)
		strong = strstr(k, strong_words[i]) != NULL;
	/* Cookie: and Set-Cookie: carry session credentials */
	strong = strong || strcmp(k, "cookie") == 0 || strcmp(k, "set_cookie") == 0;
	for (p = k; !strong && !tok && (p = strstr(p, "token")); p += 5)
		tok = p[5] != 's' && p[5] != 'i';
	if (!strong && !tok)
		return false;
	for (i = 0; i < sizeof(ignore_prefixes) / sizeof(ignore_prefixes[0]); i++) {
		const char *w = k;

		while (*w == '_')
			w++; /* --no-password became __no_password */
		if (strncmp(w, ignore_prefixes[i], strlen(ignore_prefixes[i])) == 0)
			return false;
	}
	for (i = 0; i < sizeof(ignore_suffixes) / sizeof(ignore_suffixes[0]); i++) {
		sl = strlen(ignore_suffixes[i]);
		if (len > sl && strcmp(k + len - sl, ignore_suffixes[i]) == 0)
			return false;
	}
	*weak = !strong;
	return true;
}

static bool all_digits(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]))
			return false;
	return n > 0;
}

/* Values that are code or a reference, not a secret. */
static bool not_a_value(const char *v, size_t n)
{
	static const char *const literals[] = {"null", "nil", "none", "true", "false", "undefined"};
	size_t i;

	for (i = 0; i < sizeof(literals) / sizeof(literals[0]); i++)
		if (eq_ci(v, n, literals[i]))
			return true;
	/* $VAR, ${VAR}, $(cmd); printf formats */
	return v[0] == '$' ||
	       (v[0] == '%' && n > 1 && (isalpha((unsigned char)v[1]) || v[1] == '-'));
}

/* Type names after "token:" in signatures (Python, TypeScript, Rust). */
static bool is_type_name(const char *v, size_t n)
{
	static const char *const types[] = {"str", "string", "bytes",	 "secretstr",
					    "int", "bool",   "optional", "option"};
	size_t i, w;

	for (w = 0; w < n && (is_alnum(v[w]) || v[w] == '_'); w++)
		;
	if (w < n && is_alnum(v[w]))
		return false;
	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (eq_ci(v, w, types[i]))
			return true;
	return false;
}

/*
 * key=value, key: value, "key": "value", --key value, where key names a secret:
 * the value. Code (==, :=, calls, member access, statements) is left alone.
 */
static bool match_key_value(const char *s, size_t n, size_t i, size_t wend, struct hit *h)
{
	size_t k = wend, kq = 0, ql, v, e, after;
	bool weak = false, colon, spaced, flag = false;

	if (!sensitive_key(s + i, wend - i, &weak))
		return false;
	/* a quoted key must close right after the word */
	if (i >= 2 && s[i - 1] == '"' && s[i - 2] == '\\')
		kq = 2;
	else if (i >= 1 && (s[i - 1] == '"' || s[i - 1] == '\''))
		kq = 1;
	if (kq && (kq == 2 ? at(s, n, k, "\\\"") : (k < n && s[k] == s[i - 1])))
		k += kq;
	else
		kq = 0; /* echo "password=x": the quote opened something else */
	k = skip_blanks(s, n, k);
	spaced = k > wend + kq;
	if (k >= n)
		return false;
	if (s[k] == ':') {
		if (k + 1 < n && (s[k + 1] == ':' || s[k + 1] == '='))
			return false;
		if (spaced && !kq)
			return false; /* "a ? token : b"; YAML keys touch their colon */
		colon = true;
	} else if (s[k] == '=') {
		if (k + 1 < n && strchr("=>~", s[k + 1]) && s[k + 1])
			return false;
		colon = false;
	} else if (at(s, n, i, "--") && s[wend] == ' ' && k == wend + 1 && s[k] != '-' && !kq) {
		flag = true;
		colon = false;
	} else {
		return false;
	}
	v = flag ? k : skip_blanks(s, n, k + 1);
	if (v >= n)
		return false;

	ql = quote_len(s, n, v);
	if (ql) {
		e = quoted_end(s, n, v, ql);
		v += ql;
		if (e <= v)
			return false;
		h->from = v;
		h->to = e;
		return true;
	}
	if (colon) {
		/* YAML: a plain scalar to the end of the line; nested objects are scanned on */
		if (strchr("{[|>&*\r\n", s[v]) || is_escaped_break(s, n, v))
			return false;
		for (e = v; e < n && !strchr(",}]\"\r\n", s[e]) && !is_escaped_break(s, n, e) &&
			    !(s[e] == '#' && is_blank(s[e - 1]));
		     e++)
			;
		while (e > v && is_blank(s[e - 1]))
			e--;
		if (is_type_name(s + v, e - v))
			return false;
	} else {
		for (e = v; e < n && !isspace((unsigned char)s[e]) &&
			    !strchr("\"'`,;&<>()[]{}", s[e]) && !is_escaped_break(s, n, e);
		     e++)
			;
		after = skip_blanks(s, n, e);
		if (after < n && (s[after] == '(' || s[after] == '['))
			return false; /* a call or an index */
		if (e < n && s[e] == '>' && e > v && s[e - 1] == '-')
			return false; /* p->member */
		if (spaced && after < n && s[after] == ';')
			return false; /* x = y; */
		if (after < n && s[after] == ')' && (isalpha((unsigned char)s[v]) || s[v] == '_')) {
			size_t j;

			for (j = v; j < e && (is_alnum(s[j]) || s[j] == '_' || s[j] == '.'); j++)
				;
			if (j == e)
				return false; /* f(password=password) */
		}
	}
	if (e <= v || not_a_value(s + v, e - v))
		return false;
	if (weak && all_digits(s + v, e - v))
		return false;
	h->from = v;
	h->to = e;
	return true;
}

static void scan(const char *s, size_t n, struct out *o)
{
	size_t i = 0, wend;
	struct hit h;

	while (i < n && !o->b.err) {
		bool hit = false;

		wend = i + 1;
		if (s[i] == '-' && match_pem(s, n, i, &h)) {
			hit = true;
		} else if (s[i] == ':' && match_url_password(s, n, i, &h)) {
			hit = true;
		} else if (is_word(s[i])) {
			for (wend = i; wend < n && is_word(s[wend]); wend++)
				;
			if (i == 0 || !is_word(s[i - 1]))
				hit = match_jwt(s, n, i, &h) || match_token(s, n, i, &h) ||
				      match_authorization(s, n, i, wend, &h) ||
				      match_bearer(s, n, i, wend, &h) ||
				      match_key_value(s, n, i, wend, &h);
		}
		if (!hit) {
			put(o, s + i, wend - i);
			i = wend;
			continue;
		}
		if (h.to <= h.from || at(s, n, h.from, REDACT_MARK)) {
			/* empty, or redacted before: copy as is */
			put(o, s + i, h.to - i);
		} else {
			put(o, s + i, h.from - i);
			put(o, REDACT_MARK, MARK_LEN);
			o->n++;
		}
		i = h.to > i ? h.to : i + 1;
	}
}

char *redact__text(const char *in, size_t *n_redacted)
{
	struct out o = {0};

	if (n_redacted)
		*n_redacted = 0;
	if (!in) {
		errno = EINVAL;
		return NULL;
	}
	scan(in, strlen(in), &o);
	util__sb_putn(&o.b, "", 0); /* a string even when in was empty */
	if (o.b.err) {
		free(o.b.p);
		errno = ENOMEM;
		return NULL;
	}
	if (n_redacted)
		*n_redacted = o.n;
	return o.b.p;
}

bool redact__has_secret(const char *s)
{
	size_t n = 0;
	char *r;

	if (!s)
		return false;
	r = redact__text(s, &n);
	free(r);
	/* out of memory: say yes, the guard then refuses rather than lets a secret through */
	return !r || n > 0;
}
