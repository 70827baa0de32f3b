// SPDX-License-Identifier: MIT
/*
 * heal.json: parse with cJSON, validate everything, and build the typed view.
 * Every problem is collected as (JSON path, reason) so --check-config can list
 * them all at once; nothing here prints.
 */
#ifndef _GNU_SOURCE /* pkg-config --cflags may already define it */
#endif
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h> /* isfinite, fabs: no libm needed */
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <regex.h>

#include <cjson/cJSON.h>

#include "heal/config.h"
#include "heal/names.h"
#include "heal/util.h"

#define STR_(x) #x
#define STR(x) STR_(x)
#define FIELD_LEN 256
#define CONFIG_MAX_BYTES (16u << 20) /* a config this large is a mistake, not a config */
#define NAME_MAX_LEN 32
#define KEYS_MAX 24 /* keys one object may have */
#define ENV_MAX 1024	 /* variables in one target's "env" */
#define PROBLEMS_MAX 200 /* past this, problems are counted, not listed */
#define COMM_MAX_LEN (HEAL_COMM_LEN - 1)
#define UPROBE_ARGS_MAX 6 /* arguments passed in registers, which is what a uprobe can read */
#define USDT_ARGS_MAX 12  /* the most a stapsdt note describes */
#define NT_STAPSDT 3
#define DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"

#define DEFAULT_SAMPLES_PER_SEC 10
#define DEFAULT_RINGBUF_KB 1024
#define DEFAULT_RESCAN_MS 2000

struct ctx {
	struct heal_config_errors *errs; /* may be NULL: then problems are only counted */
	size_t n_problems;
	bool nomem;
	bool check_files;
	uint32_t n_api; /* api rules seen so far, across targets */
};

static void problem(struct ctx *c, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void parse_heal_target(struct ctx *c, const cJSON *j, const char *at, struct heal_target *t);
static void parse_heal_root(struct ctx *c, const cJSON *root, struct heal_config *cfg);
static void check_target_refs(struct ctx *c, const struct heal_config *cfg);

static void problem(struct ctx *c, const char *field, const char *fmt, ...)
{
	struct heal_config_error *v;
	char *reason = NULL, *f = NULL;
	va_list ap;
	int n;

	c->n_problems++;
	if (!c->errs || c->n_problems > PROBLEMS_MAX + 1)
		return;
	/* A file of garbage should not turn into a million lines of output. */
	if (c->n_problems == PROBLEMS_MAX + 1) {
		field = "";
		fmt = "too many problems; only the first " STR(PROBLEMS_MAX) " are listed";
	}

	va_start(ap, fmt);
	n = vasprintf(&reason, fmt, ap);
	va_end(ap);
	if (n < 0) {
		reason = NULL;
		goto nomem;
	}
	f = strdup(field ? field : "");
	if (!f)
		goto nomem;
	v = realloc(c->errs->v, (c->errs->n + 1) * sizeof(*v));
	if (!v)
		goto nomem;
	c->errs->v = v;
	v[c->errs->n].field = f;
	v[c->errs->n].reason = reason;
	c->errs->n++;
	return;
nomem:
	c->nomem = true;
	free(reason);
	free(f);
}

static char *xstrdup(struct ctx *c, const char *s)
{
	char *d = strdup(s);

	if (!d)
		c->nomem = true;
	return d;
}

static void *xcalloc(struct ctx *c, size_t n, size_t size)
{
	/* Never calloc(0): it may return NULL, which would read as ENOMEM. */
	void *p = calloc(n ? n : 1, size);

	if (!p)
		c->nomem = true;
	return p;
}

/* Append s to the path in buf, truncating at FIELD_LEN (snprintf would warn under -Wformat=2). */
static void path_cat(char *buf, size_t *len, const char *s)
{
	size_t n = strnlen(s, FIELD_LEN - 1 - *len);

	memcpy(buf + *len, s, n);
	*len += n;
	buf[*len] = '\0';
}

/* "parent.key", or "key" at the top level; buf must not be parent. */
static const char *path_key(char *buf, const char *parent, const char *key)
{
	size_t len = 0;

	buf[0] = '\0';
	path_cat(buf, &len, parent);
	if (*parent)
		path_cat(buf, &len, ".");
	path_cat(buf, &len, key);
	return buf;
}

static const char *path_index(char *buf, const char *parent, size_t i)
{
	char idx[32];
	size_t len = 0;

	snprintf(idx, sizeof(idx), "[%zu]", i);
	buf[0] = '\0';
	path_cat(buf, &len, parent);
	path_cat(buf, &len, idx);
	return buf;
}

/* Report unknown and repeated keys (cJSON keeps both copies of a repeated key, silently). */
static void check_keys(struct ctx *c, const cJSON *obj, const char *at, const char *const *allowed)
{
	bool seen[KEYS_MAX] = { false };
	char field[FIELD_LEN];
	const cJSON *m;

	cJSON_ArrayForEach(m, obj) {
		size_t k;

		for (k = 0; k < KEYS_MAX && allowed[k]; k++) {
			if (strcmp(allowed[k], m->string) == 0)
				break;
		}
		if (k == KEYS_MAX || !allowed[k])
			problem(c, path_key(field, at, m->string), "unknown key \"%s\"", m->string);
		else if (seen[k])
			problem(c, path_key(field, at, m->string), "duplicate key \"%s\"",
				m->string);
		else
			seen[k] = true;
	}
}

static const cJSON *member(struct ctx *c, const cJSON *obj, const char *at, const char *key,
			   bool required)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(obj, key);
	char field[FIELD_LEN];

	if (!m && required)
		problem(c, path_key(field, at, key), "required key is missing");
	return m;
}

static bool want_type(struct ctx *c, const cJSON *j, const char *field, int type,
		      const char *expected)
{
	if ((j->type & 0xff) == type)
		return true;
	problem(c, field, "expected %s, got %s", expected, util__json_type_name(j));
	return false;
}

static bool want_object(struct ctx *c, const cJSON *j, const char *field)
{
	return want_type(c, j, field, cJSON_Object, "an object");
}

static bool want_array(struct ctx *c, const cJSON *j, const char *field)
{
	return want_type(c, j, field, cJSON_Array, "an array");
}

static bool want_string(struct ctx *c, const cJSON *j, const char *field)
{
	return want_type(c, j, field, cJSON_String, "a string");
}

static bool want_nonempty_string(struct ctx *c, const cJSON *j, const char *field)
{
	if (!want_string(c, j, field))
		return false;
	if (!*j->valuestring) {
		problem(c, field, "must not be empty");
		return false;
	}
	return true;
}

static bool want_absolute(struct ctx *c, const cJSON *j, const char *field)
{
	if (!want_nonempty_string(c, j, field))
		return false;
	if (j->valuestring[0] != '/') {
		problem(c, field, "must be an absolute path, got \"%s\"", j->valuestring);
		return false;
	}
	return true;
}

static bool want_bool(struct ctx *c, const cJSON *j, const char *field, bool *out)
{
	if (!cJSON_IsBool(j)) {
		problem(c, field, "expected a boolean, got %s", util__json_type_name(j));
		return false;
	}
	*out = cJSON_IsTrue(j);
	return true;
}

/* Without floor(): heald does not link libm for this one check. */
static bool is_integral(double d)
{
	if (!isfinite(d))
		return false;
	/* Every double this large is an integer, and the cast below would overflow. */
	if (fabs(d) >= 9e18)
		return true;
	return (double)(long long)d == d;
}

static void format_number(char *buf, size_t len, double d)
{
	if (is_integral(d) && fabs(d) < 1e18)
		snprintf(buf, len, "%.0f", d);
	else
		snprintf(buf, len, "%g", d);
}

/* An integer in [min, max]; JSON has only doubles, so reject fractions explicitly. */
static bool want_uint(struct ctx *c, const cJSON *j, const char *field, uint64_t min, uint64_t max,
		      uint64_t *out)
{
	char num[64];
	double d;

	if (!cJSON_IsNumber(j)) {
		problem(c, field, "expected an integer, got %s", util__json_type_name(j));
		return false;
	}
	d = j->valuedouble;
	format_number(num, sizeof(num), d);
	if (!is_integral(d)) {
		problem(c, field, "expected an integer, got %s", num);
		return false;
	}
	if (d < (double)min) {
		problem(c, field, "must be at least %" PRIu64 ", got %s", min, num);
		return false;
	}
	if (d > (double)max) {
		problem(c, field, "must be at most %" PRIu64 ", got %s", max, num);
		return false;
	}
	*out = (uint64_t)d;
	return true;
}

/* ---- predicates ---------------------------------------------------------- */

static const char *skip_space(const char *p)
{
	while (isspace((unsigned char)*p))
		p++;
	return p;
}

static bool is_op_char(char ch)
{
	return ch && strchr("<>=!", ch);
}

/* Optional sign, then decimal digits or 0x hex digits; never octal ("010" is ten). */
static int parse_int64(const char *p, const char **end, int64_t *out)
{
	bool neg = false;
	unsigned long long mag;
	int base = 10;
	char *e;

	if (*p == '-' || *p == '+')
		neg = *p++ == '-';
	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X') && isxdigit((unsigned char)p[2])) {
		base = 16;
		p += 2;
	}
	if (base == 10 ? !isdigit((unsigned char)*p) : !isxdigit((unsigned char)*p))
		return -EINVAL;
	errno = 0;
	mag = strtoull(p, &e, base);
	if (errno == ERANGE)
		return -ERANGE;
	if (neg ? mag > (unsigned long long)INT64_MAX + 1 : mag > (unsigned long long)INT64_MAX)
		return -ERANGE;
	/* Negate in unsigned arithmetic: -INT64_MIN does not exist as an int64. */
	*out = neg ? (int64_t)(0 - mag) : (int64_t)mag;
	*end = e;
	return 0;
}

int predicate__parse(const char *s, struct heal_predicate *out, const char **why)
{
	static const struct {
		const char *tok;
		enum heal_pred_op op;
	} ops[] = {
		{ ">=", HEAL_OP_GE }, { ">", HEAL_OP_GT },  { "<=", HEAL_OP_LE },
		{ "<", HEAL_OP_LT },  { "==", HEAL_OP_EQ }, { "!=", HEAL_OP_NE },
	};
	struct heal_predicate pred = { .op = HEAL_OP_NONE };
	const char *p, *q, *dummy;
	size_t len;
	int err;

	if (!why)
		why = &dummy;
	*why = NULL;
	if (!s || !out) {
		*why = "no predicate";
		return -EINVAL;
	}

	p = skip_space(s);
	if (strncmp(p, "ret", 3) == 0) {
		p += 3;
		pred.arg = 0;
	} else if (strncmp(p, "arg", 3) == 0 && isdigit((unsigned char)p[3])) {
		int n = 0;

		for (p += 3; isdigit((unsigned char)*p); p++) {
			n = n * 10 + (*p - '0');
			if (n > USDT_ARGS_MAX) {
				*why = "argument index must be 1..12";
				return -EINVAL;
			}
		}
		if (n < 1) {
			*why = "argument index must be 1..12";
			return -EINVAL;
		}
		pred.arg = n;
	} else {
		*why = "expected ret or argN on the left";
		return -EINVAL;
	}
	if (*p && !isspace((unsigned char)*p) && !is_op_char(*p)) {
		*why = "expected ret or argN on the left";
		return -EINVAL;
	}

	/* Take the whole run of operator characters so "ret >> 5" is an operator error. */
	p = skip_space(p);
	for (q = p; is_op_char(*q); q++)
		;
	len = (size_t)(q - p);
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		if (strlen(ops[i].tok) == len && strncmp(ops[i].tok, p, len) == 0) {
			pred.op = ops[i].op;
			break;
		}
	}
	if (pred.op == HEAL_OP_NONE) {
		*why = "expected one of >= > <= < == !=";
		return -EINVAL;
	}

	p = skip_space(q);
	err = parse_int64(p, &q, &pred.value);
	if (err == -ERANGE) {
		*why = "integer out of range";
		return -EINVAL;
	}
	if (err) {
		*why = "expected an integer on the right";
		return -EINVAL;
	}
	p = skip_space(q);
	if (*p) {
		*why = "unexpected text after the integer";
		return -EINVAL;
	}
	*out = pred;
	return 0;
}

bool predicate__eval(const struct heal_predicate *p, int64_t v)
{
	if (!p)
		return true;
	switch (p->op) {
	case HEAL_OP_NONE:
		return true;
	case HEAL_OP_GE:
		return v >= p->value;
	case HEAL_OP_GT:
		return v > p->value;
	case HEAL_OP_LE:
		return v <= p->value;
	case HEAL_OP_LT:
		return v < p->value;
	case HEAL_OP_EQ:
		return v == p->value;
	case HEAL_OP_NE:
		return v != p->value;
	}
	return false;
}

/* ---- files and ELF --------------------------------------------------------- */

/* Exists and is a regular file (and executable when asked); reports under field. */
static bool check_binary(struct ctx *c, const char *field, const char *path, bool need_exec)
{
	struct stat st;

	if (stat(path, &st) < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			problem(c, field, "binary \"%s\" does not exist", path);
		else
			problem(c, field, "binary \"%s\": %s", path, strerror(errno));
		return false;
	}
	if (!S_ISREG(st.st_mode)) {
		problem(c, field, "binary \"%s\" is not a regular file", path);
		return false;
	}
	if (need_exec && (!(st.st_mode & 0111) || access(path, X_OK) < 0)) {
		problem(c, field, "binary \"%s\" is not executable", path);
		return false;
	}
	return true;
}

/*
 * The stapsdt note's description: pc, base, semaphore, then "provider\0name\0args\0"
 * where args is one "size@location" token per argument. Returns the argument
 * count when provider:name matches, else -1.
 */
static int usdt_note_match(const char *desc, size_t len, int elf_class, const char *provider,
			   const char *name)
{
	size_t addrs = (elf_class == ELFCLASS32 ? 4 : 8) * 3;
	const char *str[3], *p = desc + addrs, *end = desc + len;
	int nargs = 0;

	if (len <= addrs)
		return -1;
	for (int i = 0; i < 3; i++) {
		const char *nul = memchr(p, '\0', (size_t)(end - p));

		if (!nul)
			return -1;
		str[i] = p;
		p = nul + 1;
		if (p >= end && i < 2)
			return -1;
	}
	if (strcmp(str[0], provider) != 0 || strcmp(str[1], name) != 0)
		return -1;
	for (p = str[2]; *p;) {
		while (isspace((unsigned char)*p))
			p++;
		if (!*p)
			break;
		nargs++;
		while (*p && !isspace((unsigned char)*p))
			p++;
	}
	return nargs;
}

static bool elf_has_symbol(Elf *elf, const char *symbol)
{
	Elf_Scn *scn = NULL;
	GElf_Shdr sh;

	while ((scn = elf_nextscn(elf, scn))) {
		Elf_Data *data;
		size_t n;

		if (!gelf_getshdr(scn, &sh))
			continue;
		if ((sh.sh_type != SHT_SYMTAB && sh.sh_type != SHT_DYNSYM) || !sh.sh_entsize)
			continue;
		data = elf_getdata(scn, NULL);
		if (!data)
			continue;
		n = sh.sh_size / sh.sh_entsize;
		for (size_t i = 0; i < n; i++) {
			GElf_Sym sym;
			const char *nm;
			int type;

			if (!gelf_getsym(data, (int)i, &sym))
				continue;
			type = GELF_ST_TYPE(sym.st_info);
			/* Imports are undefined here: a uprobe needs the code in this file. */
			if ((type != STT_FUNC && type != STT_GNU_IFUNC) ||
			    sym.st_shndx == SHN_UNDEF)
				continue;
			nm = elf_strptr(elf, sh.sh_link, sym.st_name);
			if (nm && strcmp(nm, symbol) == 0)
				return true;
		}
	}
	return false;
}

/* The argument count of USDT probe provider:name, or -1 when the binary has no such note. */
static int elf_usdt_nargs(Elf *elf, const char *provider, const char *name)
{
	int elf_class = gelf_getclass(elf);
	Elf_Scn *scn = NULL;
	size_t shstrndx;
	GElf_Shdr sh;

	if (elf_getshdrstrndx(elf, &shstrndx) < 0)
		return -1;
	while ((scn = elf_nextscn(elf, scn))) {
		const char *secname;
		Elf_Data *data;
		GElf_Nhdr nh;
		size_t off = 0, name_off, desc_off, next;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_NOTE)
			continue;
		secname = elf_strptr(elf, shstrndx, sh.sh_name);
		if (!secname || strcmp(secname, ".note.stapsdt") != 0)
			continue;
		data = elf_getdata(scn, NULL);
		if (!data)
			continue;
		while ((next = gelf_getnote(data, off, &nh, &name_off, &desc_off)) > 0) {
			const char *base = data->d_buf;
			int nargs;

			off = next;
			if (nh.n_type != NT_STAPSDT || nh.n_namesz != sizeof("stapsdt") ||
			    memcmp(base + name_off, "stapsdt", sizeof("stapsdt")) != 0)
				continue;
			nargs = usdt_note_match(base + desc_off, nh.n_descsz, elf_class, provider,
						name);
			if (nargs >= 0)
				return nargs;
		}
	}
	return -1;
}

/*
 * Resolve a uprobe symbol or a USDT note in r->binary, reporting under at.
 * For USDT, also check that the predicate and the capture name arguments the probe has.
 */
static void check_elf(struct ctx *c, const char *at, const struct heal_api_rule *r,
		      const char *fail_when)
{
	char field[FIELD_LEN];
	Elf *elf = NULL;
	int fd, nargs;

	path_key(field, at, r->symbol ? "symbol" : "usdt");
	fd = open(r->binary, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		problem(c, field, "cannot open \"%s\": %s", r->binary, strerror(errno));
		return;
	}
	if (elf_version(EV_CURRENT) == EV_NONE) {
		problem(c, field, "libelf: %s", elf_errmsg(-1));
		goto cleanup;
	}
	elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (!elf || elf_kind(elf) != ELF_K_ELF) {
		problem(c, field, "binary \"%s\" is not an ELF file", r->binary);
		goto cleanup;
	}
	if (r->symbol) {
		if (!elf_has_symbol(elf, r->symbol))
			problem(c, field, "symbol \"%s\" not found in %s", r->symbol, r->binary);
		goto cleanup;
	}
	nargs = elf_usdt_nargs(elf, r->usdt_provider, r->usdt_name);
	if (nargs < 0) {
		problem(c, field, "USDT probe %s:%s not found in %s", r->usdt_provider,
			r->usdt_name, r->binary);
		goto cleanup;
	}
	if (fail_when && r->fail_when.arg > nargs)
		problem(c, path_key(field, at, "fail_when"),
			"bad predicate \"%s\": USDT probe %s:%s has %d argument(s)", fail_when,
			r->usdt_provider, r->usdt_name, nargs);
	if (r->capture_index > (uint32_t)nargs)
		problem(c, path_key(field, at, "capture_arg.index"),
			"argument %u asked for, but USDT probe %s:%s has %d argument(s)",
			r->capture_index, r->usdt_provider, r->usdt_name, nargs);
cleanup:
	elf_end(elf);
	close(fd);
}

/* A bare command name found in PATH, as execvp would, but only in absolute directories. */
static char *resolve_in_path(const char *cmd)
{
	const char *env = getenv("PATH");
	char *copy, *dir, *save = NULL, *found = NULL;

	copy = strdup(env && *env ? env : DEFAULT_PATH);
	if (!copy)
		return NULL;
	for (dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
		struct stat st;
		char *cand;

		/* A relative PATH entry would make the result depend on heald's cwd. */
		if (dir[0] != '/')
			continue;
		if (asprintf(&cand, "%s/%s", dir, cmd) < 0)
			break;
		if (stat(cand, &st) == 0 && S_ISREG(st.st_mode) && access(cand, X_OK) == 0) {
			found = cand;
			break;
		}
		free(cand);
	}
	free(copy);
	return found;
}

/* ---- detect ---------------------------------------------------------------- */

/*
 * "syscall" / "errno": a string or an array of strings; "*" anywhere means any.
 * Fills a deduplicated list of numbers, or sets *any with an empty list.
 */
static void parse_name_list(struct ctx *c, const cJSON *j, const char *field, const char *what,
			    int (*lookup)(const char *), int limit, int **out, size_t *n, bool *any)
{
	char item_field[FIELD_LEN];
	const cJSON *item;
	size_t count, i = 0;
	bool single = cJSON_IsString(j);

	if (!single && !cJSON_IsArray(j)) {
		problem(c, field, "expected a string or an array of strings, got %s", util__json_type_name(j));
		return;
	}
	count = single ? 1 : (size_t)cJSON_GetArraySize(j);
	if (!count) {
		problem(c, field, "must not be empty");
		return;
	}
	*out = xcalloc(c, count, sizeof(**out));
	if (!*out)
		return;

	for (item = single ? j : j->child; item; item = single ? NULL : item->next, i++) {
		const char *f = single ? field : path_index(item_field, field, i);
		bool dup = false;
		int nr;

		if (!want_string(c, item, f))
			continue;
		if (strcmp(item->valuestring, "*") == 0) {
			*any = true;
			continue;
		}
		nr = lookup(item->valuestring);
		if (nr < 0) {
			problem(c, f, "unknown %s \"%s\"", what, item->valuestring);
			continue;
		}
		if (limit && nr >= limit) {
			problem(c, f,
				"%s %s (%d) is above the largest that can be matched by name (%d); use \"*\"",
				what, item->valuestring, nr, limit - 1);
			continue;
		}
		for (size_t k = 0; k < *n; k++)
			dup |= (*out)[k] == nr;
		if (!dup)
			(*out)[(*n)++] = nr;
	}
	if (*any)
		*n = 0;
}

static void parse_syscall_rule(struct ctx *c, const cJSON *j, const char *at,
			       struct heal_syscall_rule *r)
{
	static const char *const keys[] = { "syscall", "errno", "threshold", "window_ms", NULL };
	char field[FIELD_LEN];
	const cJSON *m;
	uint64_t v;
	bool have_window = false;

	r->threshold = 1;
	r->any_syscall = true;
	r->any_errno = true;
	if (!want_object(c, j, at))
		return;
	check_keys(c, j, at, keys);

	m = member(c, j, at, "syscall", false);
	if (m) {
		r->any_syscall = false;
		parse_name_list(c, m, path_key(field, at, "syscall"), "syscall", names__syscall_nr,
				0, &r->syscalls, &r->n_syscalls, &r->any_syscall);
	}
	m = member(c, j, at, "errno", false);
	if (m) {
		r->any_errno = false;
		parse_name_list(c, m, path_key(field, at, "errno"), "errno", names__errno_nr,
				HEAL_ERRNO_MAX, &r->errnos, &r->n_errnos, &r->any_errno);
	}
	if (!cJSON_HasObjectItem(j, "syscall") && !cJSON_HasObjectItem(j, "errno"))
		problem(c, at, "needs \"syscall\" or \"errno\" (use \"*\" for any)");

	m = member(c, j, at, "threshold", false);
	if (m && want_uint(c, m, path_key(field, at, "threshold"), 1, UINT32_MAX, &v))
		r->threshold = (uint32_t)v;
	m = member(c, j, at, "window_ms", false);
	if (m && want_uint(c, m, path_key(field, at, "window_ms"), 0, UINT32_MAX, &v)) {
		r->window_ms = (uint32_t)v;
		have_window = true;
	}
	/* The kernel side treats window 0 as "no threshold": say so instead of ignoring it. */
	if (r->threshold > 1 && have_window && r->window_ms == 0)
		problem(c, path_key(field, at, "window_ms"),
			"must be above 0 when \"threshold\" is above 1");
	else if (r->threshold > 1 && !have_window)
		problem(c, path_key(field, at, "window_ms"),
			"required key is missing: \"threshold\" %u needs a window", r->threshold);
}

static void parse_capture(struct ctx *c, const cJSON *j, const char *at, bool usdt,
			  struct heal_api_rule *r)
{
	static const char *const keys[] = { "index", "type", NULL };
	uint32_t max = usdt ? USDT_ARGS_MAX : UPROBE_ARGS_MAX;
	char field[FIELD_LEN];
	const cJSON *m;
	uint64_t v;

	if (!want_object(c, j, at))
		return;
	check_keys(c, j, at, keys);

	m = member(c, j, at, "index", true);
	if (m) {
		path_key(field, at, "index");
		if (cJSON_IsNumber(m) && is_integral(m->valuedouble) && m->valuedouble > max) {
			problem(c, field, "must be at most %u for %s rules, got %.0f", max,
				usdt ? "USDT" : "\"symbol\"", m->valuedouble);
		} else if (want_uint(c, m, field, 1, max, &v)) {
			r->capture_index = (uint32_t)v;
		}
	}
	m = member(c, j, at, "type", true);
	if (m && want_string(c, m, path_key(field, at, "type"))) {
		if (strcmp(m->valuestring, "int") == 0)
			r->capture_kind = HEAL_ARG_INT;
		else if (strcmp(m->valuestring, "string") == 0)
			r->capture_kind = HEAL_ARG_STRING;
		else
			problem(c, field, "expected \"int\" or \"string\", got \"%s\"",
				m->valuestring);
	}
}

static void parse_api_rule(struct ctx *c, const cJSON *j, const char *at, uint32_t target_id,
			   struct heal_api_rule *r)
{
	static const char *const keys[] = { "binary",	   "symbol",   "usdt", "fail_when",
					    "capture_arg", "ret_type", NULL };
	static const char *const usdt_keys[] = { "provider", "name", NULL };
	char field[FIELD_LEN], sub[FIELD_LEN];
	const cJSON *m, *sym, *usdt;
	const char *pred = NULL; /* the predicate text, once it parsed */
	bool binary_ok = false, target_ok = false;

	r->id = c->n_api++;
	r->target_id = target_id;
	r->ret_bits = 32;
	if (r->id == HEAL_API_MAX)
		problem(c, at, "too many api rules: the limit is %d across all targets",
			HEAL_API_MAX);
	if (!want_object(c, j, at))
		return;
	check_keys(c, j, at, keys);

	m = member(c, j, at, "binary", true);
	if (m && want_absolute(c, m, path_key(field, at, "binary"))) {
		r->binary = xstrdup(c, m->valuestring);
		binary_ok = true;
	}

	sym = member(c, j, at, "symbol", false);
	usdt = member(c, j, at, "usdt", false);
	if (sym && usdt)
		problem(c, at, "has both \"symbol\" and \"usdt\"; use one");
	else if (!sym && !usdt)
		problem(c, at, "needs one of \"symbol\" or \"usdt\"");
	if (sym && want_nonempty_string(c, sym, path_key(field, at, "symbol"))) {
		r->symbol = xstrdup(c, sym->valuestring);
		target_ok = !usdt;
	}
	if (usdt && want_object(c, usdt, path_key(field, at, "usdt"))) {
		path_key(field, at, "usdt");
		check_keys(c, usdt, field, usdt_keys);
		m = member(c, usdt, field, "provider", true);
		if (m && want_nonempty_string(c, m, path_key(sub, field, "provider")))
			r->usdt_provider = xstrdup(c, m->valuestring);
		m = member(c, usdt, field, "name", true);
		if (m && want_nonempty_string(c, m, path_key(sub, field, "name")))
			r->usdt_name = xstrdup(c, m->valuestring);
		target_ok = !sym && r->usdt_provider && r->usdt_name;
	}

	m = member(c, j, at, "ret_type", false);
	if (m && want_string(c, m, path_key(field, at, "ret_type"))) {
		if (usdt)
			problem(c, field,
				"only for \"symbol\" rules: a USDT probe has no return value");
		else if (strcmp(m->valuestring, "long") == 0)
			r->ret_bits = 64;
		else if (strcmp(m->valuestring, "int") != 0)
			problem(c, field, "expected \"int\" or \"long\", got \"%s\"",
				m->valuestring);
	}

	m = member(c, j, at, "fail_when", false);
	path_key(field, at, "fail_when");
	if (!m && !usdt) {
		problem(c, field,
			"required key is missing: \"symbol\" rules need a predicate such as \"ret < 0\"");
	} else if (m && want_string(c, m, field)) {
		const char *why, *s = m->valuestring;

		if (predicate__parse(s, &r->fail_when, &why) < 0) {
			problem(c, field, "bad predicate \"%s\": %s", s, why);
		} else if (usdt && r->fail_when.arg == 0) {
			problem(c, field,
				"bad predicate \"%s\": USDT rules test an argument (arg1..arg12), not ret",
				s);
		} else if (!usdt && r->fail_when.arg != 0) {
			problem(c, field,
				"bad predicate \"%s\": \"symbol\" rules can only test ret", s);
		} else if (!usdt && r->ret_bits == 32 &&
			   (r->fail_when.value < INT32_MIN || r->fail_when.value > INT32_MAX)) {
			/* The BPF side sign-extends an int return: this compare would be constant. */
			problem(c, field,
				"bad predicate \"%s\": %" PRId64
				" does not fit an int return value; set \"ret_type\": \"long\"",
				s, r->fail_when.value);
		} else {
			pred = s;
		}
	}

	m = member(c, j, at, "capture_arg", false);
	if (m)
		parse_capture(c, m, path_key(field, at, "capture_arg"), usdt != NULL, r);

	if (c->check_files && binary_ok &&
	    check_binary(c, path_key(field, at, "binary"), r->binary, false) && target_ok)
		check_elf(c, at, r, pred);
}

static void parse_detect(struct ctx *c, const cJSON *j, const char *at, struct heal_target *t)
{
	static const char *const keys[] = { "syscalls", "crashes", "exits", "oom", "api", NULL };
	char field[FIELD_LEN], item[FIELD_LEN];
	const cJSON *m, *e;
	size_t i;

	if (!want_object(c, j, at))
		return;
	check_keys(c, j, at, keys);

	m = member(c, j, at, "syscalls", false);
	if (m && want_array(c, m, path_key(field, at, "syscalls"))) {
		t->n_syscall_rules = (size_t)cJSON_GetArraySize(m);
		t->syscall_rules = xcalloc(c, t->n_syscall_rules, sizeof(*t->syscall_rules));
		if (!t->syscall_rules)
			t->n_syscall_rules = 0;
		i = 0;
		cJSON_ArrayForEach(e, m) {
			if (i >= t->n_syscall_rules)
				break;
			parse_syscall_rule(c, e, path_index(item, field, i), &t->syscall_rules[i]);
			i++;
		}
	}

	m = member(c, j, at, "crashes", false);
	if (m)
		want_bool(c, m, path_key(field, at, "crashes"), &t->crashes);
	m = member(c, j, at, "exits", false);
	if (m)
		want_bool(c, m, path_key(field, at, "exits"), &t->exits);
	m = member(c, j, at, "oom", false);
	if (m)
		want_bool(c, m, path_key(field, at, "oom"), &t->oom);

	m = member(c, j, at, "api", false);
	if (m && want_array(c, m, path_key(field, at, "api"))) {
		t->n_api = (size_t)cJSON_GetArraySize(m);
		t->api = xcalloc(c, t->n_api, sizeof(*t->api));
		if (!t->api)
			t->n_api = 0;
		i = 0;
		cJSON_ArrayForEach(e, m) {
			if (i >= t->n_api)
				break;
			parse_api_rule(c, e, path_index(item, field, i), t->id, &t->api[i]);
			i++;
		}
	}
}

/* ---- targets --------------------------------------------------------------- */

static bool valid_name(const char *s)
{
	for (; *s; s++) {
		if (!isalnum((unsigned char)*s) && *s != '_' && *s != '.' && *s != '-')
			return false;
	}
	return true;
}

static void parse_exec(struct ctx *c, const cJSON *j, const char *field, struct heal_target *t)
{
	char item[FIELD_LEN];
	const cJSON *e;
	const char *argv0;
	size_t i = 0, n;

	if (!want_array(c, j, field))
		return;
	n = (size_t)cJSON_GetArraySize(j);
	if (!n) {
		problem(c, field, "must not be empty: the first element is the program to run");
		return;
	}
	t->exec = xcalloc(c, n + 1, sizeof(*t->exec));
	if (!t->exec)
		return;
	t->n_exec = n;
	cJSON_ArrayForEach(e, j) {
		if (i >= n)
			break;
		path_index(item, field, i);
		if (want_string(c, e, item))
			t->exec[i] = xstrdup(c, e->valuestring);
		else
			t->exec[i] = xstrdup(c, "");
		i++;
	}
	if (!cJSON_IsString(j->child))
		return;

	path_index(item, field, 0);
	argv0 = j->child->valuestring;
	if (!*argv0) {
		problem(c, item, "must not be empty");
	} else if (argv0[0] == '/') {
		t->exec_path = xstrdup(c, argv0);
		if (c->check_files)
			check_binary(c, item, argv0, true);
	} else if (strchr(argv0, '/')) {
		problem(c, item, "must be an absolute path or a command found in PATH, got \"%s\"",
			argv0);
	} else {
		t->exec_path = resolve_in_path(argv0);
		if (!t->exec_path && c->check_files)
			problem(c, item, "command \"%s\" not found in PATH", argv0);
		else if (!t->exec_path)
			t->exec_path = xstrdup(c, argv0);
	}
}

static void parse_env(struct ctx *c, const cJSON *j, const char *field, struct heal_target *t)
{
	char item[FIELD_LEN];
	const cJSON *e;
	size_t n;

	if (!want_object(c, j, field))
		return;
	n = (size_t)cJSON_GetArraySize(j);
	if (n > ENV_MAX) {
		problem(c, field, "too many variables: %zu, the limit is %d", n, ENV_MAX);
		return;
	}
	t->env = xcalloc(c, n + 1, sizeof(*t->env));
	if (!t->env)
		return;
	cJSON_ArrayForEach(e, j) {
		const cJSON *prev;

		path_key(item, field, e->string);
		if (!*e->string || strchr(e->string, '=')) {
			problem(c, item, "bad variable name \"%s\"", e->string);
			continue;
		}
		for (prev = j->child; prev != e; prev = prev->next) {
			if (strcmp(prev->string, e->string) == 0)
				break;
		}
		if (prev != e) {
			problem(c, item, "duplicate key \"%s\"", e->string);
			continue;
		}
		if (!want_string(c, e, item))
			continue;
		if (asprintf(&t->env[t->n_env], "%s=%s", e->string, e->valuestring) < 0) {
			t->env[t->n_env] = NULL;
			c->nomem = true;
			continue;
		}
		t->n_env++;
	}
}

static void parse_user(struct ctx *c, const cJSON *j, const char *field, struct heal_target *t)
{
	struct passwd pw, *res = NULL;
	char buf[4096];
	const char *s;

	if (!want_nonempty_string(c, j, field))
		return;
	s = j->valuestring;
	t->user = xstrdup(c, s);
	if (!c->check_files || strspn(s, "0123456789") == strlen(s))
		return;
	if (getpwnam_r(s, &pw, buf, sizeof(buf), &res) != 0 || !res)
		problem(c, field, "unknown user \"%s\"", s);
}

/* "always" | "never", or {"policy", "backoff_ms", "max_backoff_ms"}. */
static bool restart_policy(struct ctx *c, const cJSON *j, const char *field, struct heal_target *t)
{
	if (!want_string(c, j, field))
		return false;
	if (strcmp(j->valuestring, "always") == 0)
		t->restart.policy = HEAL_RESTART_ALWAYS;
	else if (strcmp(j->valuestring, "never") == 0)
		t->restart.policy = HEAL_RESTART_NEVER;
	else {
		problem(c, field, "expected \"always\" or \"never\", got \"%s\"", j->valuestring);
		return false;
	}
	return true;
}

static void parse_restart(struct ctx *c, const cJSON *j, const char *at, struct heal_target *t)
{
	static const char *const keys[] = { "policy", "backoff_ms", "max_backoff_ms", NULL };
	char field[FIELD_LEN];
	const cJSON *m;
	uint64_t v;

	if (cJSON_IsString(j)) {
		restart_policy(c, j, at, t);
		return;
	}
	if (!cJSON_IsObject(j)) {
		problem(c, at, "expected \"always\", \"never\" or an object, got %s",
			util__json_type_name(j));
		return;
	}
	check_keys(c, j, at, keys);
	m = member(c, j, at, "policy", false);
	if (m)
		restart_policy(c, m, path_key(field, at, "policy"), t);
	m = member(c, j, at, "backoff_ms", false);
	if (m && want_uint(c, m, path_key(field, at, "backoff_ms"), 0, 3600000, &v))
		t->restart.backoff_ms = (uint32_t)v;
	m = member(c, j, at, "max_backoff_ms", false);
	/* a long first wait raises the default cap; a cap given must hold it */
	if (!m && t->restart.max_backoff_ms < t->restart.backoff_ms)
		t->restart.max_backoff_ms = t->restart.backoff_ms;
	if (m && want_uint(c, m, path_key(field, at, "max_backoff_ms"), 0, 3600000, &v))
		t->restart.max_backoff_ms = (uint32_t)v;
	if (m && t->restart.max_backoff_ms < t->restart.backoff_ms)
		problem(c, path_key(field, at, "max_backoff_ms"),
			"must be at least backoff_ms (%u), got %u", t->restart.backoff_ms,
			t->restart.max_backoff_ms);
}

static void parse_match(struct ctx *c, const cJSON *j, const char *at, struct heal_target *t)
{
	static const char *const keys[] = { "exe", "comm", "pid_file", "cgroup", NULL };
	char field[FIELD_LEN];
	const cJSON *m;

	if (!want_object(c, j, at))
		return;
	check_keys(c, j, at, keys);
	t->has_match = true;

	m = member(c, j, at, "exe", false);
	if (m && want_absolute(c, m, path_key(field, at, "exe"))) {
		t->match.exe = xstrdup(c, m->valuestring);
		if (c->check_files)
			check_binary(c, field, m->valuestring, false);
	}
	m = member(c, j, at, "comm", false);
	if (m && want_nonempty_string(c, m, path_key(field, at, "comm"))) {
		if (strlen(m->valuestring) > COMM_MAX_LEN)
			problem(c, field,
				"must be at most %d characters (the kernel truncates comm), got %zu",
				COMM_MAX_LEN, strlen(m->valuestring));
		else
			t->match.comm = xstrdup(c, m->valuestring);
	}
	m = member(c, j, at, "pid_file", false);
	if (m && want_absolute(c, m, path_key(field, at, "pid_file")))
		t->match.pid_file = xstrdup(c, m->valuestring);
	m = member(c, j, at, "cgroup", false);
	if (m && want_nonempty_string(c, m, path_key(field, at, "cgroup")))
		t->match.cgroup = xstrdup(c, m->valuestring);

	if (!t->match.exe && !t->match.comm && !t->match.pid_file && !t->match.cgroup &&
	    !cJSON_HasObjectItem(j, "exe") && !cJSON_HasObjectItem(j, "comm") &&
	    !cJSON_HasObjectItem(j, "pid_file") && !cJSON_HasObjectItem(j, "cgroup"))
		problem(c, at, "needs at least one of \"exe\", \"comm\", \"pid_file\", \"cgroup\"");
}

static void parse_target(struct ctx *c, const cJSON *j, const char *at, struct heal_config *cfg,
			 size_t idx)
{
	static const char *const keys[] = { "name",    "exec",   "cwd",        "env",
					    "user",    "restart", "match", "detect", "guardrails",
					    "reload",  "build",  "verify",     "ready",
					    "dependencies", "cleanup", "playbooks", "triggers", NULL };
	static const char *const exec_only[] = { "cwd", "env", "user", "restart" };
	struct heal_target *t = &cfg->targets[idx];
	char field[FIELD_LEN];
	const cJSON *m, *exec, *match;

	t->id = (uint32_t)idx + 1;
	t->restart.backoff_ms = 1000;
	t->restart.max_backoff_ms = 30000;
	if (!want_object(c, j, at))
		return;
	check_keys(c, j, at, keys);

	m = member(c, j, at, "name", true);
	if (m && want_nonempty_string(c, m, path_key(field, at, "name"))) {
		const char *name = m->valuestring;

		if (strlen(name) > NAME_MAX_LEN) {
			problem(c, field, "must be at most %d characters, got %zu", NAME_MAX_LEN,
				strlen(name));
		} else if (!valid_name(name)) {
			problem(c, field, "bad name \"%s\": use letters, digits, '_', '.', '-'",
				name);
		} else {
			for (size_t k = 0; k < idx; k++) {
				if (cfg->targets[k].name &&
				    strcmp(cfg->targets[k].name, name) == 0) {
					problem(c, field,
						"duplicate name \"%s\" (also targets[%zu])", name,
						k);
					break;
				}
			}
			t->name = xstrdup(c, name);
		}
	}

	exec = member(c, j, at, "exec", false);
	match = member(c, j, at, "match", false);
	if (exec && match)
		problem(c, at, "has both \"exec\" and \"match\"; use one");
	else if (!exec && !match)
		problem(c, at, "needs one of \"exec\" (run it) or \"match\" (watch it)");
	if (exec)
		parse_exec(c, exec, path_key(field, at, "exec"), t);
	if (match)
		parse_match(c, match, path_key(field, at, "match"), t);

	for (size_t k = 0; k < sizeof(exec_only) / sizeof(exec_only[0]); k++) {
		if (!exec && cJSON_HasObjectItem(j, exec_only[k]))
			problem(c, path_key(field, at, exec_only[k]), "only allowed with \"exec\"");
	}
	m = member(c, j, at, "cwd", false);
	if (exec && m && want_absolute(c, m, path_key(field, at, "cwd"))) {
		struct stat st;

		t->cwd = xstrdup(c, m->valuestring);
		if (c->check_files && (stat(m->valuestring, &st) < 0 || !S_ISDIR(st.st_mode)))
			problem(c, field, "directory \"%s\" does not exist", m->valuestring);
	}
	m = member(c, j, at, "env", false);
	if (exec && m)
		parse_env(c, m, path_key(field, at, "env"), t);
	m = member(c, j, at, "user", false);
	if (exec && m)
		parse_user(c, m, path_key(field, at, "user"), t);
	m = member(c, j, at, "restart", false);
	if (exec && m)
		parse_restart(c, m, path_key(field, at, "restart"), t);

	m = member(c, j, at, "detect", false);
	if (m) {
		parse_detect(c, m, path_key(field, at, "detect"), t);
	} else {
		t->crashes = true;
		t->exits = true;
	}
	if (t->n_syscall_rules)
		t->detect |= HEAL_DETECT_SYSCALLS;
	if (t->crashes)
		t->detect |= HEAL_DETECT_CRASHES;
	if (t->exits)
		t->detect |= HEAL_DETECT_EXITS;
	if (t->oom)
		t->detect |= HEAL_DETECT_OOM;
	if (t->n_api)
		t->detect |= HEAL_DETECT_API;
	parse_heal_target(c, j, at, t);
}


/* ---- healing ------------------------------------------------------------- */

#define DEFAULT_MAX_LINES 50
#define DEFAULT_MAX_FILES 3

/* An array of strings; NULL-terminated copy in *out (n in *n when not NULL). */
static char **parse_strv(struct ctx *c, const cJSON *j, const char *field, size_t *n, bool nonempty)
{
	char item[FIELD_LEN];
	const cJSON *e;
	size_t count, i = 0;
	char **v;

	if (!want_array(c, j, field))
		return NULL;
	count = (size_t)cJSON_GetArraySize(j);
	if (nonempty && !count) {
		problem(c, field, "must not be empty");
		return NULL;
	}
	v = xcalloc(c, count + 1, sizeof(*v));
	if (!v)
		return NULL;
	cJSON_ArrayForEach(e, j) {
		path_index(item, field, i);
		if (want_nonempty_string(c, e, item))
			v[i++] = xstrdup(c, e->valuestring);
	}
	if (n)
		*n = i;
	return v;
}

static bool want_fraction(struct ctx *c, const cJSON *j, const char *field, double *out)
{
	if (!cJSON_IsNumber(j)) {
		problem(c, field, "expected a number from 0 to 1, got %s", util__json_type_name(j));
		return false;
	}
	if (!(j->valuedouble >= 0 && j->valuedouble <= 1)) {
		problem(c, field, "must be from 0 to 1, got %g", j->valuedouble);
		return false;
	}
	*out = j->valuedouble;
	return true;
}

static void guardrail_defaults(struct heal_guardrails *g)
{
	g->max_lines = DEFAULT_MAX_LINES;
	g->max_files = DEFAULT_MAX_FILES;
}

static void parse_guardrails(struct ctx *c, const cJSON *j, const char *at, struct heal_guardrails *g)
{
	static const char *const keys[] = { "allow", "deny", "max_lines", "max_files", "validate", NULL };
	char field[FIELD_LEN], item[FIELD_LEN];
	const cJSON *m;
	uint64_t v;

	guardrail_defaults(g);
	if (!want_object(c, j, at))
		return;
	check_keys(c, j, at, keys);
	m = member(c, j, at, "allow", false);
	if (m) {
		g->allow = parse_strv(c, m, path_key(field, at, "allow"), &g->n_allow, false);
		for (size_t i = 0; g->allow && i < g->n_allow; i++)
			if (g->allow[i][0] != '/')
				problem(c, path_index(item, field, i),
					"must be an absolute path or glob, got \"%s\"", g->allow[i]);
	}
	m = member(c, j, at, "deny", false);
	if (m) {
		g->deny = parse_strv(c, m, path_key(field, at, "deny"), &g->n_deny, false);
		for (size_t i = 0; g->deny && i < g->n_deny; i++) {
			regex_t re;
			int rc = regcomp(&re, g->deny[i], REG_EXTENDED | REG_NOSUB);

			if (rc) {
				char why[128];

				regerror(rc, &re, why, sizeof(why));
				problem(c, path_index(item, field, i), "bad pattern \"%s\": %s",
					g->deny[i], why);
			} else {
				regfree(&re);
			}
		}
	}
	m = member(c, j, at, "max_lines", false);
	if (m && want_uint(c, m, path_key(field, at, "max_lines"), 1, 100000, &v))
		g->max_lines = (uint32_t)v;
	m = member(c, j, at, "max_files", false);
	if (m && want_uint(c, m, path_key(field, at, "max_files"), 1, 1000, &v))
		g->max_files = (uint32_t)v;
	m = member(c, j, at, "validate", false);
	if (m)
		g->validate = parse_strv(c, m, path_key(field, at, "validate"), NULL, true);
}

static void parse_reload(struct ctx *c, const cJSON *j, const char *at, struct heal_target *t)
{
	static const char *const keys[] = { "signal", "restart", "command", "stop_timeout_ms", NULL };
	char field[FIELD_LEN];
	const cJSON *m;
	int ways = 0;
	uint64_t v;

	if (!want_object(c, j, at))
		return;
	check_keys(c, j, at, keys);
	m = member(c, j, at, "signal", false);
	if (m && want_nonempty_string(c, m, path_key(field, at, "signal"))) {
		t->reload.signal = names__signal_nr(m->valuestring);
		if (t->reload.signal <= 0)
			problem(c, field, "unknown signal \"%s\"", m->valuestring);
		ways++;
	}
	m = member(c, j, at, "restart", false);
	if (m && want_bool(c, m, path_key(field, at, "restart"), &t->reload.restart) &&
	    t->reload.restart) {
		if (!t->exec)
			problem(c, field, "only supervised (\"exec\") targets can be restarted by heald");
		ways++;
	}
	m = member(c, j, at, "command", false);
	if (m) {
		t->reload.command = parse_strv(c, m, path_key(field, at, "command"), NULL, true);
		ways++;
	}
	if (ways > 1)
		problem(c, at, "use one of \"signal\", \"restart\" or \"command\"");
	m = member(c, j, at, "stop_timeout_ms", false);
	if (m && want_uint(c, m, path_key(field, at, "stop_timeout_ms"), 0, 600000, &v))
		t->reload.stop_timeout_ms = (uint32_t)v;
}

static void parse_verify(struct ctx *c, const cJSON *j, const char *at, struct heal_target *t)
{
	static const char *const keys[] = { "command", "tries", "interval_ms", "timeout_ms", "window_ms",
					    NULL };
	char field[FIELD_LEN];
	const cJSON *m;
	uint64_t v;

	if (!want_object(c, j, at))
		return;
	check_keys(c, j, at, keys);
	m = member(c, j, at, "command", false);
	if (m)
		t->verify.command = parse_strv(c, m, path_key(field, at, "command"), NULL, true);
	m = member(c, j, at, "tries", false);
	if (m && want_uint(c, m, path_key(field, at, "tries"), 1, 100, &v))
		t->verify.tries = (uint32_t)v;
	m = member(c, j, at, "interval_ms", false);
	if (m && want_uint(c, m, path_key(field, at, "interval_ms"), 0, 600000, &v))
		t->verify.interval_ms = (uint32_t)v;
	m = member(c, j, at, "timeout_ms", false);
	if (m && want_uint(c, m, path_key(field, at, "timeout_ms"), 10, 600000, &v))
		t->verify.timeout_ms = (uint32_t)v;
	m = member(c, j, at, "window_ms", false);
	if (m && want_uint(c, m, path_key(field, at, "window_ms"), 0, 3600000, &v))
		t->verify.window_ms = (uint32_t)v;
}

static void parse_ready(struct ctx *c, const cJSON *j, const char *at, struct heal_target *t)
{
	static const char *const keys[] = { "tcp", "timeout_ms", NULL };
	char field[FIELD_LEN];
	const cJSON *m;
	uint64_t v;

	if (!want_object(c, j, at))
		return;
	check_keys(c, j, at, keys);
	m = member(c, j, at, "tcp", true);
	if (m && want_nonempty_string(c, m, path_key(field, at, "tcp"))) {
		if (!strrchr(m->valuestring, ':'))
			problem(c, field, "expected host:port, got \"%s\"", m->valuestring);
		t->ready_tcp = xstrdup(c, m->valuestring);
	}
	m = member(c, j, at, "timeout_ms", false);
	if (m && want_uint(c, m, path_key(field, at, "timeout_ms"), 10, 600000, &v))
		t->ready_timeout_ms = (uint32_t)v;
}

static void parse_deps(struct ctx *c, const cJSON *j, const char *at, struct heal_target *t)
{
	static const char *const keys[] = { "target", "addr", NULL };
	char item[FIELD_LEN], field[FIELD_LEN];
	const cJSON *e, *m;
	size_t i = 0;

	if (!want_array(c, j, at))
		return;
	t->deps = xcalloc(c, (size_t)cJSON_GetArraySize(j) + 1, sizeof(*t->deps));
	if (!t->deps)
		return;
	cJSON_ArrayForEach(e, j) {
		struct heal_dependency *d = &t->deps[i];

		path_index(item, at, i++);
		t->n_deps = i;
		if (!want_object(c, e, item))
			continue;
		check_keys(c, e, item, keys);
		m = member(c, e, item, "target", true);
		if (m && want_nonempty_string(c, m, path_key(field, item, "target")))
			d->target = xstrdup(c, m->valuestring);
		m = member(c, e, item, "addr", true);
		if (m && want_nonempty_string(c, m, path_key(field, item, "addr")))
			d->addr = xstrdup(c, m->valuestring);
	}
}

static const struct {
	const char *name;
	enum heal_action action;
} actions[] = {
	{ "restore_known_good", HEAL_ACT_RESTORE_KNOWN_GOOD },
	{ "raise_nofile", HEAL_ACT_RAISE_NOFILE },
	{ "cleanup", HEAL_ACT_CLEANUP },
	{ "restart_dependency", HEAL_ACT_RESTART_DEPENDENCY },
	{ "restart", HEAL_ACT_RESTART },
	{ "json_set", HEAL_ACT_JSON_SET },
	{ "llm_patch", HEAL_ACT_LLM_PATCH },
};

const char *config__action_name(enum heal_action a)
{
	for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++)
		if (actions[i].action == a)
			return actions[i].name;
	return "?";
}

const char *config__mode_name(enum heal_mode m)
{
	return m == HEAL_MODE_APPROVE ? "approve" :
	       m == HEAL_MODE_DRY_RUN ? "dry-run" :
	       m == HEAL_MODE_OBSERVE ? "observe" : "auto";
}

static const char *const event_types[] = { "SYSCALL_FAILURE", "API_FAILURE", "CRASH",
					   "EXIT_FAILURE",    "OOM_KILL",    NULL };

static void parse_pb_match(struct ctx *c, const cJSON *j, const char *at, struct heal_playbook_match *pm)
{
	static const char *const keys[] = { "type", "syscall", "errno", "path", "signal",
					    "symbol", "exit_code", "ret", NULL };
	char field[FIELD_LEN];
	const cJSON *m;
	uint64_t v;

	pm->syscall = -1;
	pm->err = -1;
	pm->exit_code = -1;
	if (!want_object(c, j, at))
		return;
	check_keys(c, j, at, keys);
	m = member(c, j, at, "type", false);
	if (m && want_nonempty_string(c, m, path_key(field, at, "type"))) {
		for (size_t i = 0; event_types[i]; i++)
			if (strcmp(event_types[i], m->valuestring) == 0)
				pm->type = event_types[i];
		if (!pm->type)
			problem(c, field, "unknown event type \"%s\"", m->valuestring);
	}
	m = member(c, j, at, "syscall", false);
	if (m && want_nonempty_string(c, m, path_key(field, at, "syscall"))) {
		pm->syscall = names__syscall_nr(m->valuestring);
		if (pm->syscall < 0)
			problem(c, field, "unknown syscall \"%s\"", m->valuestring);
	}
	m = member(c, j, at, "errno", false);
	if (m && want_nonempty_string(c, m, path_key(field, at, "errno"))) {
		pm->err = names__errno_nr(m->valuestring);
		if (pm->err < 0)
			problem(c, field, "unknown errno \"%s\"", m->valuestring);
	}
	m = member(c, j, at, "path", false);
	if (m && want_nonempty_string(c, m, path_key(field, at, "path")))
		pm->path = xstrdup(c, m->valuestring);
	m = member(c, j, at, "signal", false);
	if (m && want_nonempty_string(c, m, path_key(field, at, "signal"))) {
		pm->signal = names__signal_nr(m->valuestring);
		if (pm->signal <= 0)
			problem(c, field, "unknown signal \"%s\"", m->valuestring);
	}
	m = member(c, j, at, "symbol", false);
	if (m && want_nonempty_string(c, m, path_key(field, at, "symbol")))
		pm->symbol = xstrdup(c, m->valuestring);
	m = member(c, j, at, "exit_code", false);
	if (m && want_uint(c, m, path_key(field, at, "exit_code"), 0, 255, &v))
		pm->exit_code = (int)v;
	m = member(c, j, at, "ret", false);
	if (m && want_nonempty_string(c, m, path_key(field, at, "ret"))) {
		const char *why = NULL;

		if (predicate__parse(m->valuestring, &pm->ret, &why) || pm->ret.arg)
			problem(c, field, "bad predicate \"%s\": %s", m->valuestring,
				why ? why : "use ret OP N");
		else
			pm->has_ret = true;
	}
}

static void parse_playbook(struct ctx *c, const cJSON *j, const char *at, struct heal_playbook *pb)
{
	static const char *const keys[] = { "name", "match", "action", "params", "confidence", "risk",
					    NULL };
	static const char *const params_keys[] = { "file", "pointer", "value", "globs", "compress",
						   "target", "limit", NULL };
	char field[FIELD_LEN], pf[FIELD_LEN];
	const cJSON *m, *params;
	uint64_t v;

	pb->confidence = 0.8;
	pb->risk = 0.3;
	if (!want_object(c, j, at))
		return;
	check_keys(c, j, at, keys);
	m = member(c, j, at, "name", true);
	if (m && want_nonempty_string(c, m, path_key(field, at, "name")))
		pb->name = xstrdup(c, m->valuestring);
	m = member(c, j, at, "match", true);
	if (m)
		parse_pb_match(c, m, path_key(field, at, "match"), &pb->match);
	m = member(c, j, at, "action", true);
	if (m && want_nonempty_string(c, m, path_key(field, at, "action"))) {
		for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++)
			if (strcmp(actions[i].name, m->valuestring) == 0)
				pb->action = actions[i].action;
		if (!pb->action)
			problem(c, field,
				"unknown action \"%s\": use restore_known_good, raise_nofile, cleanup, "
				"restart_dependency, restart, json_set or llm_patch",
				m->valuestring);
	}
	m = member(c, j, at, "confidence", false);
	if (m)
		want_fraction(c, m, path_key(field, at, "confidence"), &pb->confidence);
	m = member(c, j, at, "risk", false);
	if (m)
		want_fraction(c, m, path_key(field, at, "risk"), &pb->risk);

	params = member(c, j, at, "params", false);
	path_key(pf, at, "params");
	if (params && !want_object(c, params, pf))
		params = NULL;
	if (params)
		check_keys(c, params, pf, params_keys);
	m = params ? member(c, params, pf, "file", false) : NULL;
	if (m && want_absolute(c, m, path_key(field, pf, "file")))
		pb->file = xstrdup(c, m->valuestring);
	m = params ? member(c, params, pf, "pointer", false) : NULL;
	if (m && want_string(c, m, path_key(field, pf, "pointer"))) {
		if (m->valuestring[0] && m->valuestring[0] != '/')
			problem(c, field, "a JSON pointer starts with '/', got \"%s\"", m->valuestring);
		pb->pointer = xstrdup(c, m->valuestring);
	}
	m = params ? member(c, params, pf, "value", false) : NULL;
	if (m)
		pb->value_json = cJSON_PrintUnformatted(m);
	m = params ? member(c, params, pf, "globs", false) : NULL;
	if (m)
		pb->globs = parse_strv(c, m, path_key(field, pf, "globs"), NULL, true);
	m = params ? member(c, params, pf, "compress", false) : NULL;
	if (m)
		want_bool(c, m, path_key(field, pf, "compress"), &pb->compress);
	m = params ? member(c, params, pf, "target", false) : NULL;
	if (m && want_nonempty_string(c, m, path_key(field, pf, "target")))
		pb->dep_target = xstrdup(c, m->valuestring);
	m = params ? member(c, params, pf, "limit", false) : NULL;
	if (m && want_uint(c, m, path_key(field, pf, "limit"), 16, 1u << 20, &v))
		pb->limit = v;

	/* what each action cannot do without */
	if (pb->action == HEAL_ACT_JSON_SET && (!pb->file || !pb->pointer || !pb->value_json))
		problem(c, at, "json_set needs params.file, params.pointer and params.value");
	if (pb->action == HEAL_ACT_LLM_PATCH && !pb->file)
		problem(c, at, "llm_patch needs params.file");
	if (pb->action == HEAL_ACT_RESTART_DEPENDENCY && !pb->dep_target)
		problem(c, at, "restart_dependency needs params.target");
	if (pb->action == HEAL_ACT_CLEANUP && !pb->globs)
		problem(c, at, "cleanup needs params.globs");
}

static void parse_playbooks(struct ctx *c, const cJSON *j, const char *at, struct heal_target *t)
{
	char item[FIELD_LEN];
	const cJSON *e;
	size_t i = 0;

	if (!want_array(c, j, at))
		return;
	t->playbooks = xcalloc(c, (size_t)cJSON_GetArraySize(j) + 1, sizeof(*t->playbooks));
	if (!t->playbooks)
		return;
	cJSON_ArrayForEach(e, j) {
		parse_playbook(c, e, path_index(item, at, i), &t->playbooks[i]);
		t->n_playbooks = ++i;
	}
}

static void parse_triggers(struct ctx *c, const cJSON *j, const char *at, struct heal_target *t)
{
	static const char *const keys[] = { "name", "description", "command", NULL };
	char item[FIELD_LEN], field[FIELD_LEN];
	const cJSON *e, *m;
	size_t i = 0;

	if (!want_array(c, j, at))
		return;
	t->triggers = xcalloc(c, (size_t)cJSON_GetArraySize(j) + 1, sizeof(*t->triggers));
	if (!t->triggers)
		return;
	cJSON_ArrayForEach(e, j) {
		struct heal_trigger *tg = &t->triggers[i];

		path_index(item, at, i++);
		t->n_triggers = i;
		if (!want_object(c, e, item))
			continue;
		check_keys(c, e, item, keys);
		m = member(c, e, item, "name", true);
		if (m && want_nonempty_string(c, m, path_key(field, item, "name"))) {
			if (!valid_name(m->valuestring))
				problem(c, field, "bad name \"%s\": use letters, digits, '_', '.', '-'",
					m->valuestring);
			tg->name = xstrdup(c, m->valuestring);
		}
		m = member(c, e, item, "description", false);
		if (m && want_string(c, m, path_key(field, item, "description")))
			tg->description = xstrdup(c, m->valuestring);
		m = member(c, e, item, "command", true);
		if (m)
			tg->command = parse_strv(c, m, path_key(field, item, "command"), NULL, true);
	}
}

static void heal_target_defaults(struct heal_target *t)
{
	t->reload.stop_timeout_ms = 5000;
	t->verify.tries = 3;
	t->verify.interval_ms = 500;
	t->verify.timeout_ms = 5000;
	t->verify.window_ms = 3000;
	t->ready_timeout_ms = 10000;
}

static void parse_heal_target(struct ctx *c, const cJSON *j, const char *at, struct heal_target *t)
{
	char field[FIELD_LEN];
	const cJSON *m;

	heal_target_defaults(t);
	m = member(c, j, at, "guardrails", false);
	if (m) {
		t->has_guardrails = true;
		parse_guardrails(c, m, path_key(field, at, "guardrails"), &t->guardrails);
	}
	m = member(c, j, at, "reload", false);
	if (m)
		parse_reload(c, m, path_key(field, at, "reload"), t);
	m = member(c, j, at, "build", false);
	if (m)
		t->build = parse_strv(c, m, path_key(field, at, "build"), NULL, true);
	m = member(c, j, at, "verify", false);
	if (m)
		parse_verify(c, m, path_key(field, at, "verify"), t);
	m = member(c, j, at, "ready", false);
	if (m)
		parse_ready(c, m, path_key(field, at, "ready"), t);
	m = member(c, j, at, "dependencies", false);
	if (m)
		parse_deps(c, m, path_key(field, at, "dependencies"), t);
	m = member(c, j, at, "cleanup", false);
	if (m) {
		t->cleanup = parse_strv(c, m, path_key(field, at, "cleanup"), NULL, false);
		for (size_t i = 0; t->cleanup && t->cleanup[i]; i++)
			if (t->cleanup[i][0] != '/')
				problem(c, field, "globs must be absolute, got \"%s\"", t->cleanup[i]);
	}
	m = member(c, j, at, "playbooks", false);
	if (m)
		parse_playbooks(c, m, path_key(field, at, "playbooks"), t);
	m = member(c, j, at, "triggers", false);
	if (m)
		parse_triggers(c, m, path_key(field, at, "triggers"), t);
}

/* Names that refer to other targets can only be checked once all are parsed. */
static void check_target_refs(struct ctx *c, const struct heal_config *cfg)
{
	char at[FIELD_LEN], field[FIELD_LEN], item[FIELD_LEN];

	for (size_t i = 0; i < cfg->n_targets; i++) {
		const struct heal_target *t = &cfg->targets[i];

		path_index(at, "targets", i);
		for (size_t k = 0; k < t->n_deps; k++) {
			const struct heal_target *d = t->deps[k].target ?
				config__target_by_name(cfg, t->deps[k].target) : NULL;

			if (t->deps[k].target && !d)
				problem(c, path_key(field, path_index(item, path_key(field, at, "dependencies"), k), "target"),
					"no target named \"%s\"", t->deps[k].target);
		}
		for (size_t k = 0; k < t->n_playbooks; k++) {
			const struct heal_playbook *pb = &t->playbooks[k];

			if (pb->dep_target && !config__target_by_name(cfg, pb->dep_target))
				problem(c, path_key(field, path_index(item, path_key(field, at, "playbooks"), k), "params"),
					"no target named \"%s\"", pb->dep_target);
		}
	}
}

static void parse_limits(struct ctx *c, const cJSON *j, const char *at, struct heal_limits *l)
{
	static const char *const keys[] = { "heals_per_hour", "per_signature_per_hour", "backoff_ms",
					    "backoff_max_ms", "breaker_failures", "breaker_reset_ms",
					    NULL };
	struct {
		const char *key;
		uint32_t *dst;
		uint64_t min, max;
	} fields[] = {
		{ "heals_per_hour", &l->heals_per_hour, 1, 100000 },
		{ "per_signature_per_hour", &l->per_signature_per_hour, 1, 100000 },
		{ "backoff_ms", &l->backoff_ms, 0, 3600000 },
		{ "backoff_max_ms", &l->backoff_max_ms, 0, 86400000 },
		{ "breaker_failures", &l->breaker_failures, 1, 1000 },
		{ "breaker_reset_ms", &l->breaker_reset_ms, 1000, 604800000 },
	};
	char field[FIELD_LEN];
	uint64_t v;

	if (!want_object(c, j, at))
		return;
	check_keys(c, j, at, keys);
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		const cJSON *m = member(c, j, at, fields[i].key, false);

		if (m && want_uint(c, m, path_key(field, at, fields[i].key), fields[i].min,
				   fields[i].max, &v))
			*fields[i].dst = (uint32_t)v;
	}
}

static void parse_heal_root(struct ctx *c, const cJSON *root, struct heal_config *cfg)
{
	const cJSON *m;

	cfg->approve_above = 0.5;
	guardrail_defaults(&cfg->guardrails);
	cfg->limits = (struct heal_limits){ .heals_per_hour = 30, .per_signature_per_hour = 4,
					    .backoff_ms = 1000, .backoff_max_ms = 60000,
					    .breaker_failures = 3, .breaker_reset_ms = 600000 };
	m = member(c, root, "", "mode", false);
	if (m && want_nonempty_string(c, m, "mode")) {
		if (strcmp(m->valuestring, "auto") == 0)
			cfg->mode = HEAL_MODE_AUTO;
		else if (strcmp(m->valuestring, "approve") == 0)
			cfg->mode = HEAL_MODE_APPROVE;
		else if (strcmp(m->valuestring, "dry-run") == 0)
			cfg->mode = HEAL_MODE_DRY_RUN;
		else if (strcmp(m->valuestring, "observe") == 0)
			cfg->mode = HEAL_MODE_OBSERVE;
		else
			problem(c, "mode", "unknown mode \"%s\": use auto, approve, dry-run or observe",
				m->valuestring);
	}
	m = member(c, root, "", "approve_above", false);
	if (m)
		want_fraction(c, m, "approve_above", &cfg->approve_above);
	m = member(c, root, "", "guardrails", false);
	if (m)
		parse_guardrails(c, m, "guardrails", &cfg->guardrails);
	m = member(c, root, "", "limits", false);
	if (m)
		parse_limits(c, m, "limits", &cfg->limits);
	m = member(c, root, "", "llm", false);
	if (m && want_object(c, m, "llm"))
		cfg->llm_json = cJSON_PrintUnformatted(m);
	m = member(c, root, "", "store", false);
	if (m && want_object(c, m, "store")) {
		static const char *const keys[] = { "postgres", "host", NULL };
		const cJSON *v;

		check_keys(c, m, "store", keys);
		v = member(c, m, "store", "postgres", true);
		if (v && want_nonempty_string(c, v, "store.postgres"))
			cfg->store_postgres = xstrdup(c, v->valuestring);
		v = member(c, m, "store", "host", false);
		if (v && want_nonempty_string(c, v, "store.host"))
			cfg->store_host = xstrdup(c, v->valuestring);
	}
	m = member(c, root, "", "listen", false);
	if (m && want_string(c, m, "listen")) {
		if (m->valuestring[0] && !strrchr(m->valuestring, ':'))
			problem(c, "listen", "expected host:port (or \"\" for no HTTP API), got \"%s\"",
				m->valuestring);
		cfg->listen = xstrdup(c, m->valuestring);
	}
}

const struct heal_guardrails *config__guardrails(const struct heal_config *cfg,
						 const struct heal_target *t)
{
	return t && t->has_guardrails ? &t->guardrails : &cfg->guardrails;
}

/* ---- top level ------------------------------------------------------------- */

/* cJSON reports only a position: turn it into line and column for people. */
static void json_syntax_problem(struct ctx *c, const char *json, const char *err_at)
{
	size_t len = strlen(json);
	int line = 1, col = 1;
	char near[24];
	size_t k = 0;

	if (!err_at || err_at < json || err_at > json + len)
		err_at = json + len;
	for (const char *p = json; p < err_at; p++) {
		if (*p == '\n') {
			line++;
			col = 1;
		} else {
			col++;
		}
	}
	if (!*err_at) {
		problem(c, "(json)", "invalid JSON at line %d, column %d: unexpected end of input",
			line, col);
		return;
	}
	while (k < sizeof(near) - 1 && err_at[k] && err_at[k] != '\n' && err_at[k] != '\r')
		near[k] = err_at[k], k++;
	near[k] = '\0';
	problem(c, "(json)", "invalid JSON at line %d, column %d, near \"%s\"", line, col, near);
}

static void parse_root(struct ctx *c, const cJSON *root, struct heal_config *cfg)
{
	static const char *const keys[] = { "state_dir",  "targets",   "samples_per_sec",
					    "ringbuf_kb", "rescan_ms", "mode",
					    "approve_above", "guardrails", "limits",
					    "llm",        "listen",    "store",
					    NULL };
	char item[FIELD_LEN];
	const cJSON *m, *e;
	uint64_t v;
	size_t i;

	if (!cJSON_IsObject(root)) {
		problem(c, "(json)", "expected an object at the top level, got %s",
			util__json_type_name(root));
		return;
	}
	check_keys(c, root, "", keys);

	m = member(c, root, "", "state_dir", false);
	if (m && want_absolute(c, m, "state_dir"))
		cfg->state_dir = xstrdup(c, m->valuestring);
	else if (!m)
		cfg->state_dir = xstrdup(c, HEAL_DEFAULT_STATE_DIR);

	m = member(c, root, "", "samples_per_sec", false);
	if (m && want_uint(c, m, "samples_per_sec", 1, 100000, &v))
		cfg->samples_per_sec = (uint32_t)v;
	m = member(c, root, "", "ringbuf_kb", false);
	if (m && want_uint(c, m, "ringbuf_kb", 64, 262144, &v)) {
		/* The kernel wants a power-of-two number of pages for a ring buffer. */
		if (v & (v - 1))
			problem(c, "ringbuf_kb", "must be a power of two, got %" PRIu64, v);
		else
			cfg->ringbuf_kb = (uint32_t)v;
	}
	m = member(c, root, "", "rescan_ms", false);
	if (m && want_uint(c, m, "rescan_ms", 100, 3600000, &v))
		cfg->rescan_ms = (uint32_t)v;

	parse_heal_root(c, root, cfg);

	m = member(c, root, "", "targets", true);
	if (!m || !want_array(c, m, "targets"))
		return;
	cfg->n_targets = (size_t)cJSON_GetArraySize(m);
	/* Only the first HEAL_TARGET_MAX are checked: name checks are quadratic. */
	if (cfg->n_targets > HEAL_TARGET_MAX) {
		problem(c, "targets", "too many targets: %zu, the limit is %d", cfg->n_targets,
			HEAL_TARGET_MAX);
		cfg->n_targets = HEAL_TARGET_MAX;
	}
	cfg->targets = xcalloc(c, cfg->n_targets, sizeof(*cfg->targets));
	if (!cfg->targets) {
		cfg->n_targets = 0;
		return;
	}
	i = 0;
	cJSON_ArrayForEach(e, m) {
		if (i >= cfg->n_targets)
			break;
		parse_target(c, e, path_index(item, "targets", i), cfg, i);
		i++;
	}
	check_target_refs(c, cfg);
}

int config__parse(const char *json, const char *path, bool check_files, struct heal_config **out,
		  struct heal_config_errors *errs)
{
	struct ctx c = { .errs = errs, .check_files = check_files };
	struct heal_config *cfg = NULL;
	const char *err_at = NULL;
	cJSON *root = NULL;
	int err = 0;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!json)
		return -EINVAL;

	cfg = calloc(1, sizeof(*cfg));
	if (!cfg)
		return -ENOMEM;
	cfg->samples_per_sec = DEFAULT_SAMPLES_PER_SEC;
	cfg->ringbuf_kb = DEFAULT_RINGBUF_KB;
	cfg->rescan_ms = DEFAULT_RESCAN_MS;
	if (path) {
		cfg->path = strdup(path);
		if (!cfg->path) {
			err = -ENOMEM;
			goto cleanup;
		}
	}

	root = cJSON_ParseWithOpts(json, &err_at, 1);
	if (!root)
		json_syntax_problem(&c, json, err_at);
	else
		parse_root(&c, root, cfg);

	if (c.nomem)
		err = -ENOMEM;
	else if (c.n_problems)
		err = -EINVAL;
cleanup:
	cJSON_Delete(root);
	if (err) {
		config__free(cfg);
		return err;
	}
	*out = cfg;
	return 0;
}

int config__load(const char *path, bool check_files, struct heal_config **out,
		 struct heal_config_errors *errs)
{
	char *buf = NULL;
	size_t len = 0;
	struct stat st;
	int fd, err;

	if (!path || !out)
		return -EINVAL;
	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		err = -errno;
		goto cleanup;
	}
	if (!S_ISREG(st.st_mode)) {
		err = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
		goto cleanup;
	}
	if ((uint64_t)st.st_size > CONFIG_MAX_BYTES) {
		err = -EFBIG;
		goto cleanup;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		err = -ENOMEM;
		goto cleanup;
	}
	/* Read to EOF rather than trusting st_size: the file may change under us. */
	while (len < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = -errno;
			goto cleanup;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	err = config__parse(buf, path, check_files, out, errs);
cleanup:
	free(buf);
	close(fd);
	return err;
}

static void free_strv(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

static void free_guardrails(struct heal_guardrails *g)
{
	free_strv(g->allow);
	free_strv(g->deny);
	free_strv(g->validate);
}

void config__free(struct heal_config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < cfg->n_targets && cfg->targets; i++) {
		struct heal_target *t = &cfg->targets[i];

		free(t->name);
		/* exec is sized n_exec + 1 and may have holes after ENOMEM: free by count. */
		for (size_t k = 0; t->exec && k < t->n_exec; k++)
			free(t->exec[k]);
		free(t->exec);
		free(t->exec_path);
		free(t->cwd);
		free_strv(t->env);
		free(t->user);
		free(t->match.exe);
		free(t->match.comm);
		free(t->match.pid_file);
		free(t->match.cgroup);
		for (size_t k = 0; t->syscall_rules && k < t->n_syscall_rules; k++) {
			free(t->syscall_rules[k].syscalls);
			free(t->syscall_rules[k].errnos);
		}
		free(t->syscall_rules);
		for (size_t k = 0; t->api && k < t->n_api; k++) {
			free(t->api[k].binary);
			free(t->api[k].symbol);
			free(t->api[k].usdt_provider);
			free(t->api[k].usdt_name);
		}
		free(t->api);
		free_guardrails(&t->guardrails);
		free_strv(t->reload.command);
		free_strv(t->build);
		free_strv(t->verify.command);
		free(t->ready_tcp);
		for (size_t k = 0; t->deps && k < t->n_deps; k++) {
			free(t->deps[k].target);
			free(t->deps[k].addr);
		}
		free(t->deps);
		free_strv(t->cleanup);
		for (size_t k = 0; t->playbooks && k < t->n_playbooks; k++) {
			struct heal_playbook *pb = &t->playbooks[k];

			free(pb->name);
			free(pb->match.path);
			free(pb->match.symbol);
			free(pb->file);
			free(pb->pointer);
			free(pb->value_json);
			free_strv(pb->globs);
			free(pb->dep_target);
		}
		free(t->playbooks);
		for (size_t k = 0; t->triggers && k < t->n_triggers; k++) {
			free(t->triggers[k].name);
			free(t->triggers[k].description);
			free_strv(t->triggers[k].command);
		}
		free(t->triggers);
	}
	free_guardrails(&cfg->guardrails);
	free(cfg->llm_json);
	free(cfg->listen);
	free(cfg->store_postgres);
	free(cfg->store_host);
	free(cfg->targets);
	free(cfg->state_dir);
	free(cfg->path);
	free(cfg);
}

void config_errors__free(struct heal_config_errors *errs)
{
	if (!errs)
		return;
	for (size_t i = 0; i < errs->n; i++) {
		free(errs->v[i].field);
		free(errs->v[i].reason);
	}
	free(errs->v);
	errs->v = NULL;
	errs->n = 0;
}

const struct heal_target *config__target_by_id(const struct heal_config *cfg, uint32_t id)
{
	if (!cfg || id == 0 || id > cfg->n_targets)
		return NULL;
	return &cfg->targets[id - 1];
}

const struct heal_target *config__target_by_name(const struct heal_config *cfg, const char *name)
{
	if (!cfg || !name)
		return NULL;
	for (size_t i = 0; i < cfg->n_targets; i++) {
		if (cfg->targets[i].name && strcmp(cfg->targets[i].name, name) == 0)
			return &cfg->targets[i];
	}
	return NULL;
}

const struct heal_api_rule *config__api_rule_by_id(const struct heal_config *cfg, uint32_t id,
						   const struct heal_target **target)
{
	if (!cfg)
		return NULL;
	for (size_t i = 0; i < cfg->n_targets; i++) {
		const struct heal_target *t = &cfg->targets[i];

		for (size_t k = 0; k < t->n_api; k++) {
			if (t->api[k].id != id)
				continue;
			if (target)
				*target = t;
			return &t->api[k];
		}
	}
	return NULL;
}
