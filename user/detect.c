// SPDX-License-Identifier: MIT
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "heal/detect.h"
#include "heal/log.h"
#include "heal/names.h"
#include "heal/symbolize.h"

#define REINDEX_MAX 256
#define REINDEX_DELAY_US 300000 /* after exec, let the loader map the libraries first */

struct reindex {
	uint64_t due_us;
	uint32_t tgid;
};

#define SWEEP_MAX 256

struct detect {
	const struct heal_config *cfg;
	struct reindex reindex[REINDEX_MAX]; /* second look at a process's libraries */
	unsigned n_reindex;
	unsigned long long reindex_dropped;
	struct bus *bus;
	struct worker *worker;
	struct probe *probe;
	struct targets *targets;
	struct symbolizer *sym; /* used on the worker thread only */
	uint32_t gone[SWEEP_MAX]; /* tgids with counts and no process at the last sweep */
	size_t n_gone;
	uint64_t drops_reported[HEAL_REC_MAX];
	uint64_t drops_total;
	unsigned long long crash_unsymbolized; /* worker queue full: published raw */
	long page_kb;
};

/* A crash on its way through the worker. */
struct crash_job {
	struct detect *d;
	struct heal_rec_crash rec;
	char target[64];
	char exe[PATH_MAX];
	struct heal_sym syms[HEAL_STACK_MAX];
	int nframes;
	int resolved;
};

struct index_job {
	struct detect *d;
	uint32_t tgid;
	char exe[PATH_MAX];
};

static uint64_t boot_to_wall_us(uint64_t boot_ns)
{
	struct timespec rt, bt;
	uint64_t now_rt, now_bt;

	clock_gettime(CLOCK_REALTIME, &rt);
	clock_gettime(CLOCK_BOOTTIME, &bt);
	now_rt = (uint64_t)rt.tv_sec * 1000000000ull + (uint64_t)rt.tv_nsec;
	now_bt = (uint64_t)bt.tv_sec * 1000000000ull + (uint64_t)bt.tv_nsec;
	if (boot_ns > now_bt)
		boot_ns = now_bt;
	return (now_rt - (now_bt - boot_ns)) / 1000u;
}

static const char *target_name(const struct detect *d, uint32_t id)
{
	const struct heal_target *t = config__target_by_id(d->cfg, id);

	return t ? t->name : "?";
}

/* exe of tgid from the table, else from /proc while the process is still there. */
static void proc_exe(struct detect *d, uint32_t tgid, char *out, size_t len)
{
	const struct proc_info *pi = d->targets ? targets__lookup(d->targets, tgid) : NULL;
	char path[64];
	ssize_t n;

	out[0] = 0;
	if (pi && pi->exe[0]) {
		snprintf(out, len, "%s", pi->exe);
		return;
	}
	snprintf(path, sizeof(path), "/proc/%u/exe", tgid);
	n = readlink(path, out, len - 1);
	out[n > 0 ? n : 0] = 0;
}

static struct heal_event *new_event(struct detect *d, const char *type,
				    const struct heal_rec_hdr *h, const char *exe)
{
	struct heal_event *ev = event__new(type);
	char comm[HEAL_COMM_LEN + 1];

	if (!ev)
		return NULL;
	ev->ts_us = boot_to_wall_us(h->ts_ns);
	ev->ui_hint = "failure";
	memcpy(comm, h->comm, HEAL_COMM_LEN);
	comm[HEAL_COMM_LEN] = 0;
	cJSON_AddStringToObject(ev->payload, "target", target_name(d, h->target_id));
	cJSON_AddNumberToObject(ev->payload, "pid", h->tgid);
	cJSON_AddNumberToObject(ev->payload, "tid", h->tid);
	cJSON_AddStringToObject(ev->payload, "comm", comm);
	cJSON_AddStringToObject(ev->payload, "exe", exe);
	return ev;
}

static void hex_addr(char *out, size_t len, uint64_t v)
{
	snprintf(out, len, "0x%" PRIx64, v);
}

void detect__key_syscall(char *out, size_t len, const char *target, const char *syscall,
			 const char *err, const char *detail)
{
	if (detail && detail[0])
		snprintf(out, len, "%s:SYSCALL_FAILURE:%s:%s:%s", target, syscall, err, detail);
	else
		snprintf(out, len, "%s:SYSCALL_FAILURE:%s:%s", target, syscall, err);
}

static void format_addr(const struct heal_rec_syscall *r, char *out, size_t len)
{
	char ip[INET6_ADDRSTRLEN];

	out[0] = 0;
	switch (r->addr_family) {
	case HEAL_ADDR_INET:
		inet_ntop(AF_INET, r->addr, ip, sizeof(ip));
		snprintf(out, len, "%s:%u", ip, r->addr_port);
		break;
	case HEAL_ADDR_INET6:
		inet_ntop(AF_INET6, r->addr, ip, sizeof(ip));
		snprintf(out, len, "[%s]:%u", ip, r->addr_port);
		break;
	case HEAL_ADDR_UNIX:
		snprintf(out, len, "unix:%.*s", (int)sizeof(r->path), r->path);
		break;
	default:
		break;
	}
}

static void on_syscall(struct detect *d, const struct heal_rec_syscall *r)
{
	const char *sc = names__syscall_name((int)r->nr), *en = names__errno_name((int)r->err);
	char scbuf[32], enbuf[32], exe[PATH_MAX], addr[HEAL_PATH_LEN + 16] = "";
	char path[HEAL_PATH_LEN + 1], path2[HEAL_PATH_LEN + 1];
	struct heal_event *ev;

	if (!sc) {
		snprintf(scbuf, sizeof(scbuf), "syscall_%u", r->nr);
		sc = scbuf;
	}
	if (!en) {
		snprintf(enbuf, sizeof(enbuf), "E%u", r->err);
		en = enbuf;
	}
	snprintf(path, sizeof(path), "%.*s", HEAL_PATH_LEN, r->path);
	snprintf(path2, sizeof(path2), "%.*s", HEAL_PATH_LEN, r->path2);
	format_addr(r, addr, sizeof(addr));
	proc_exe(d, r->hdr.tgid, exe, sizeof(exe));
	ev = new_event(d, "SYSCALL_FAILURE", &r->hdr, exe);
	if (!ev)
		return;
	/* the path or address is part of the signature: a different file is a different failure */
	/* Out of descriptors is the process's state, whatever file it was opening: one signature. */
	detect__key_syscall(ev->key, sizeof(ev->key), target_name(d, r->hdr.target_id), sc, en,
			    r->err == EMFILE || r->err == ENFILE ? NULL : addr[0] ? addr : path);
	cJSON_AddStringToObject(ev->payload, "syscall", sc);
	cJSON_AddStringToObject(ev->payload, "errno", en);
	cJSON_AddNumberToObject(ev->payload, "ret", (double)r->ret);
	if (r->addr_family != HEAL_ADDR_UNIX && path[0])
		cJSON_AddStringToObject(ev->payload, "path", path);
	if (path2[0])
		cJSON_AddStringToObject(ev->payload, "path2", path2);
	if (addr[0])
		cJSON_AddStringToObject(ev->payload, "addr", addr);
	if (r->fd >= 0)
		cJSON_AddNumberToObject(ev->payload, "fd", r->fd);
	cJSON_AddNumberToObject(ev->payload, "count", (double)r->count);
	bus__publish(d->bus, ev);
}

static int count_named(const struct heal_sym *syms, int n)
{
	int i, named = 0;

	for (i = 0; i < n; i++)
		named += syms[i].func[0] != 0;
	return named;
}

static void crash_run(void *arg)
{
	struct crash_job *j = arg;
	struct heal_sym *dwarf;
	int i, n;

	n = j->rec.stack_bytes > 0 ? (int)(j->rec.stack_bytes / (int64_t)sizeof(struct heal_frame)) : 0;
	if (n > HEAL_STACK_MAX)
		n = HEAL_STACK_MAX;
	/* libraries loaded since the process joined: index them while it may still be there */
	symbolizer__add_pid(j->d->sym, (pid_t)j->rec.hdr.tgid);
	if (j->exe[0])
		symbolizer__add_file(j->d->sym, j->exe);
	for (i = 0; i < n; i++)
		symbolizer__resolve(j->d->sym, &j->rec.frames[i], i > 0, &j->syms[i]);
	j->nframes = n;
	j->resolved = 1;
	if (!j->rec.stack_dump_len)
		return;
	/* the frame-pointer walk stops at the first library built without them: try DWARF CFI */
	dwarf = calloc(HEAL_STACK_MAX, sizeof(*dwarf));
	if (!dwarf)
		return;
	n = symbolizer__unwind(j->d->sym, &j->rec, j->exe, dwarf, HEAL_STACK_MAX);
	if (n > 0 && count_named(dwarf, n) > count_named(j->syms, j->nframes)) {
		memcpy(j->syms, dwarf, (size_t)n * sizeof(*dwarf));
		j->nframes = n;
	}
	free(dwarf);
}

/* The function that names a crash: the first frame in the program itself, else the first known. */
static const char *crash_site(const struct crash_job *j)
{
	int i;

	for (i = 0; i < j->nframes; i++)
		if (j->syms[i].func[0] && strcmp(j->syms[i].module, j->exe) == 0)
			return j->syms[i].func;
	for (i = 0; i < j->nframes; i++)
		if (j->syms[i].func[0])
			return j->syms[i].func;
	return NULL;
}

static void crash_publish(void *arg)
{
	struct crash_job *j = arg;
	struct detect *d = j->d;
	const char *sig = names__signal_name(j->rec.signal), *site;
	char sigbuf[16], fault[32];
	struct heal_event *ev;
	cJSON *stack;
	int i;

	if (!sig) {
		snprintf(sigbuf, sizeof(sigbuf), "SIG%d", j->rec.signal);
		sig = sigbuf;
	}
	hex_addr(fault, sizeof(fault), j->rec.fault_addr);
	ev = new_event(d, "CRASH", &j->rec.hdr, j->exe);
	if (!ev)
		goto cleanup;
	site = crash_site(j);
	if (site)
		snprintf(ev->key, sizeof(ev->key), "%s:CRASH:%s:%s", j->target, sig, site);
	else
		snprintf(ev->key, sizeof(ev->key), "%s:CRASH:%s:%s", j->target, sig, fault);
	cJSON_AddStringToObject(ev->payload, "signal", sig);
	cJSON_AddNumberToObject(ev->payload, "si_code", j->rec.si_code);
	cJSON_AddStringToObject(ev->payload, "fault_addr", fault);
	stack = cJSON_AddArrayToObject(ev->payload, "stack");
	for (i = 0; stack && i < j->nframes; i++) {
		const struct heal_sym *s = &j->syms[i];
		cJSON *f = cJSON_CreateObject();
		char a[32];

		if (!f)
			break;
		cJSON_AddItemToArray(stack, f);
		if (s->func[0])
			cJSON_AddStringToObject(f, "func", s->func);
		else
			cJSON_AddNullToObject(f, "func");
		cJSON_AddNumberToObject(f, "offset", (double)s->offset);
		if (s->file[0]) {
			cJSON_AddStringToObject(f, "file", s->file);
			cJSON_AddNumberToObject(f, "line", s->line);
		} else {
			cJSON_AddNullToObject(f, "file");
			cJSON_AddNullToObject(f, "line");
		}
		cJSON_AddStringToObject(f, "module", s->module);
		hex_addr(a, sizeof(a), s->addr);
		cJSON_AddStringToObject(f, "addr", a);
	}
	if (j->rec.stack_bytes < 0)
		cJSON_AddNumberToObject(ev->payload, "stack_error", (double)j->rec.stack_bytes);
	if (!j->resolved)
		cJSON_AddBoolToObject(ev->payload, "stack_unsymbolized", 1);
	bus__publish(d->bus, ev);
cleanup:
	free(j);
}

static void on_crash(struct detect *d, const struct heal_rec_crash *r)
{
	struct crash_job *j = calloc(1, sizeof(*j));

	if (!j)
		return;
	j->d = d;
	j->rec = *r;
	snprintf(j->target, sizeof(j->target), "%s", target_name(d, r->hdr.target_id));
	proc_exe(d, r->hdr.tgid, j->exe, sizeof(j->exe));
	if (worker__submit(d->worker, crash_run, crash_publish, j)) {
		d->crash_unsymbolized++;
		crash_publish(j); /* never lose the crash: publish it without names */
	}
}

static void on_exit_rec(struct detect *d, const struct heal_rec_exit *r)
{
	int status = (int)r->exit_code;
	char exe[PATH_MAX];
	struct heal_event *ev;
	const char *t = target_name(d, r->hdr.target_id);

	proc_exe(d, r->hdr.tgid, exe, sizeof(exe));
	ev = new_event(d, "EXIT_FAILURE", &r->hdr, exe);
	if (!ev)
		return;
	cJSON_AddNumberToObject(ev->payload, "status", status);
	if (WIFSIGNALED(status)) {
		const char *sig = names__signal_name(WTERMSIG(status));
		char sigbuf[16];

		if (!sig) {
			snprintf(sigbuf, sizeof(sigbuf), "SIG%d", WTERMSIG(status));
			sig = sigbuf;
		}
		snprintf(ev->key, sizeof(ev->key), "%s:EXIT_FAILURE:%s", t, sig);
		cJSON_AddNullToObject(ev->payload, "exit_code");
		cJSON_AddStringToObject(ev->payload, "signal", sig);
		cJSON_AddBoolToObject(ev->payload, "core_dumped", WCOREDUMP(status) != 0);
	} else {
		snprintf(ev->key, sizeof(ev->key), "%s:EXIT_FAILURE:%d", t, WEXITSTATUS(status));
		cJSON_AddNumberToObject(ev->payload, "exit_code", WEXITSTATUS(status));
	}
	bus__publish(d->bus, ev);
}

static void on_oom(struct detect *d, const struct heal_rec_oom *r)
{
	char exe[PATH_MAX];
	struct heal_event *ev;

	proc_exe(d, r->hdr.tgid, exe, sizeof(exe));
	ev = new_event(d, "OOM_KILL", &r->hdr, exe);
	if (!ev)
		return;
	snprintf(ev->key, sizeof(ev->key), "%s:OOM_KILL", target_name(d, r->hdr.target_id));
	cJSON_AddNumberToObject(ev->payload, "total_vm_kb", (double)(r->total_vm_pages * (uint64_t)d->page_kb));
	cJSON_AddNumberToObject(ev->payload, "anon_rss_kb", (double)(r->anon_rss_pages * (uint64_t)d->page_kb));
	cJSON_AddNumberToObject(ev->payload, "file_rss_kb", (double)(r->file_rss_pages * (uint64_t)d->page_kb));
	cJSON_AddNumberToObject(ev->payload, "shmem_rss_kb", (double)(r->shmem_rss_pages * (uint64_t)d->page_kb));
	cJSON_AddNumberToObject(ev->payload, "pgtables_kb", (double)(r->pgtables_bytes / 1024));
	cJSON_AddNumberToObject(ev->payload, "uid", r->uid);
	cJSON_AddNumberToObject(ev->payload, "oom_score_adj", r->oom_score_adj);
	bus__publish(d->bus, ev);
}

static const char *op_text(enum heal_pred_op op)
{
	switch (op) {
	case HEAL_OP_GE: return ">=";
	case HEAL_OP_GT: return ">";
	case HEAL_OP_LE: return "<=";
	case HEAL_OP_LT: return "<";
	case HEAL_OP_EQ: return "==";
	case HEAL_OP_NE: return "!=";
	default: return NULL;
	}
}

static void on_api(struct detect *d, const struct heal_rec_api *r)
{
	const struct heal_target *t = NULL;
	const struct heal_api_rule *rule = probe__api_rule(d->probe, r->api_id, &t);
	char exe[PATH_MAX], what[256], pred[96] = "";
	struct heal_event *ev;

	if (!rule)
		return;
	if (rule->symbol)
		snprintf(what, sizeof(what), "%s", rule->symbol);
	else
		snprintf(what, sizeof(what), "%s:%s", rule->usdt_provider, rule->usdt_name);
	if (op_text(rule->fail_when.op)) {
		if (rule->fail_when.arg)
			snprintf(pred, sizeof(pred), "arg%d %s %" PRId64, rule->fail_when.arg,
				 op_text(rule->fail_when.op), rule->fail_when.value);
		else
			snprintf(pred, sizeof(pred), "ret %s %" PRId64, op_text(rule->fail_when.op),
				 rule->fail_when.value);
	}
	proc_exe(d, r->hdr.tgid, exe, sizeof(exe));
	ev = new_event(d, "API_FAILURE", &r->hdr, exe);
	if (!ev)
		return;
	snprintf(ev->key, sizeof(ev->key), "%s:API_FAILURE:%s", t->name, what);
	if (rule->symbol)
		cJSON_AddStringToObject(ev->payload, "symbol", rule->symbol);
	else
		cJSON_AddStringToObject(ev->payload, "usdt", what);
	cJSON_AddStringToObject(ev->payload, "binary", rule->binary);
	if (pred[0])
		cJSON_AddStringToObject(ev->payload, "fail_when", pred);
	/* for USDT the "return value" is the argument the predicate read */
	cJSON_AddNumberToObject(ev->payload, "ret", (double)r->ret);
	if (r->arg_kind == HEAL_ARG_STRING) {
		char arg[HEAL_ARG_STR_LEN + 1];

		snprintf(arg, sizeof(arg), "%.*s", HEAL_ARG_STR_LEN, r->arg_str);
		cJSON_AddStringToObject(ev->payload, "arg", arg);
	} else if (r->arg_kind == HEAL_ARG_INT) {
		cJSON_AddNumberToObject(ev->payload, "arg", (double)r->arg_int);
	}
	bus__publish(d->bus, ev);
}

struct counts_ctx {
	cJSON *arr;
	uint64_t total;
};

static void add_count(void *ctx, uint32_t nr, uint32_t err, uint64_t count)
{
	struct counts_ctx *c = ctx;
	const char *sc = names__syscall_name((int)nr), *en = names__errno_name((int)err);
	cJSON *o = cJSON_CreateObject();

	if (!o)
		return;
	if (sc)
		cJSON_AddStringToObject(o, "syscall", sc);
	else
		cJSON_AddNumberToObject(o, "syscall", nr);
	if (en)
		cJSON_AddStringToObject(o, "errno", en);
	else
		cJSON_AddNumberToObject(o, "errno", err);
	cJSON_AddNumberToObject(o, "count", (double)count);
	cJSON_AddItemToArray(c->arr, o);
	c->total += count;
}

/* Report a process's exact in-kernel failure counts and remove them from the table. */
static void report_counts(struct detect *d, const struct heal_rec_hdr *h, const char *exe,
			  bool exit_seen)
{
	struct counts_ctx c = { 0 };
	struct heal_event *ev;

	ev = new_event(d, "SYSCALL_COUNTS", h, exe);
	if (ev) {
		ev->ui_hint = "info";
		snprintf(ev->key, sizeof(ev->key), "%s:SYSCALL_COUNTS", target_name(d, h->target_id));
		if (!exit_seen)
			cJSON_AddBoolToObject(ev->payload, "exit_seen", false);
		c.arr = cJSON_AddArrayToObject(ev->payload, "counts");
	}
	if (c.arr && probe__take_counts(d->probe, h->tgid, add_count, &c) > 0) {
		cJSON_AddNumberToObject(ev->payload, "total", (double)c.total);
		bus__publish(d->bus, ev);
	} else {
		event__free(ev);
	}
}

/* A watched process ended: report its exact in-kernel failure counts, then forget it. */
static void on_proc_exit(struct detect *d, const struct heal_rec_proc *r)
{
	char exe[PATH_MAX];

	proc_exe(d, r->hdr.tgid, exe, sizeof(exe));
	report_counts(d, &r->hdr, exe, true);
	targets__forget(d->targets, r->hdr.tgid);
}

static bool process_alive(uint32_t tgid)
{
	return kill((pid_t)tgid, 0) == 0 || errno == EPERM;
}

/*
 * Counts whose process is gone but whose exit record never came (a ring
 * buffer overrun): report them as at exit instead of keeping them forever.
 * A process must be missing at two sweeps in a row, so an exit record still
 * waiting in the ring is reported the usual way first.
 */
void detect__sweep(struct detect *d)
{
	struct probe_count_owner own[SWEEP_MAX];
	uint32_t gone[SWEEP_MAX];
	size_t n_gone = 0, i, j;
	int n;

	if (!d->probe || (n = probe__count_owners(d->probe, own, SWEEP_MAX)) <= 0) {
		d->n_gone = 0;
		return;
	}
	for (i = 0; i < (size_t)n; i++) {
		struct heal_rec_hdr h = { .tgid = own[i].tgid, .tid = own[i].tgid,
					  .target_id = own[i].target_id };
		struct timespec bt;

		if (process_alive(own[i].tgid))
			continue;
		for (j = 0; j < d->n_gone && d->gone[j] != own[i].tgid; j++)
			;
		if (j == d->n_gone) {
			gone[n_gone++] = own[i].tgid; /* first sighting: next time */
			continue;
		}
		clock_gettime(CLOCK_BOOTTIME, &bt);
		h.ts_ns = (uint64_t)bt.tv_sec * 1000000000ull + (uint64_t)bt.tv_nsec;
		report_counts(d, &h, "", false);
		targets__forget(d->targets, own[i].tgid);
	}
	memcpy(d->gone, gone, n_gone * sizeof(gone[0]));
	d->n_gone = n_gone;
}

void detect__record(struct detect *d, const void *data, size_t len)
{
	const struct heal_rec_hdr *h = data;

#define NEED(T)                                                                              \
	do {                                                                                 \
		if (len < sizeof(T))                                                         \
			return;                                                              \
	} while (0)

	switch (h->type) {
	case HEAL_REC_SYSCALL:
		NEED(struct heal_rec_syscall);
		on_syscall(d, data);
		break;
	case HEAL_REC_CRASH:
		NEED(struct heal_rec_crash);
		on_crash(d, data);
		break;
	case HEAL_REC_EXIT:
		NEED(struct heal_rec_exit);
		on_exit_rec(d, data);
		break;
	case HEAL_REC_OOM:
		NEED(struct heal_rec_oom);
		on_oom(d, data);
		break;
	case HEAL_REC_API:
		NEED(struct heal_rec_api);
		on_api(d, data);
		break;
	case HEAL_REC_PROC: {
		const struct heal_rec_proc *p = data;

		NEED(struct heal_rec_proc);
		if (p->kind == HEAL_PROC_EXIT)
			on_proc_exit(d, p);
		else
			targets__on_proc(d->targets, p);
		break;
	}
	default:
		break;
	}
#undef NEED
}

static void index_run(void *arg)
{
	struct index_job *j = arg;

	/* A short-lived process may be gone, or a zombie with no maps, by now: index its exe
	 * by path too (a no-op when already indexed). */
	symbolizer__add_pid(j->d->sym, (pid_t)j->tgid);
	if (j->exe[0])
		symbolizer__add_file(j->d->sym, j->exe);
}

static void index_done(void *arg)
{
	free(arg);
}

static void submit_index(struct detect *d, uint32_t tgid, const char *exe)
{
	struct index_job *j = calloc(1, sizeof(*j));

	if (!j)
		return;
	j->d = d;
	j->tgid = tgid;
	snprintf(j->exe, sizeof(j->exe), "%s", exe ? exe : "");
	if (worker__submit(d->worker, index_run, index_done, j))
		free(j);
}

void detect__joined(struct detect *d, const struct proc_info *pi)
{
	submit_index(d, pi->tgid, pi->exe);
	/* at exec only the binary and ld.so are mapped: look again once libc and friends are */
	if (d->n_reindex < REINDEX_MAX)
		d->reindex[d->n_reindex++] = (struct reindex){
			.due_us = event__now_us() + REINDEX_DELAY_US, .tgid = pi->tgid
		};
	else
		d->reindex_dropped++;
}

static void reindex_due(struct detect *d)
{
	uint64_t now = event__now_us();
	unsigned i = 0;

	while (i < d->n_reindex) {
		if (d->reindex[i].due_us > now) {
			i++;
			continue;
		}
		submit_index(d, d->reindex[i].tgid, NULL);
		d->reindex[i] = d->reindex[--d->n_reindex];
	}
}

void detect__tick(struct detect *d)
{
	uint64_t drops[HEAL_REC_MAX], delta = 0, total = 0;
	static const char *const names[HEAL_REC_MAX] = {
		[HEAL_REC_SYSCALL] = "SYSCALL_FAILURE", [HEAL_REC_CRASH] = "CRASH",
		[HEAL_REC_EXIT] = "EXIT_FAILURE",       [HEAL_REC_OOM] = "OOM_KILL",
		[HEAL_REC_API] = "API_FAILURE",         [HEAL_REC_PROC] = "PROC",
	};
	struct heal_event *ev;
	cJSON *by;
	int i;

	reindex_due(d);
	if (!d->probe || probe__read_drops(d->probe, drops))
		return;
	for (i = 1; i < HEAL_REC_MAX; i++) {
		total += drops[i];
		delta += drops[i] - d->drops_reported[i];
	}
	if (!delta)
		return;
	ev = event__new("EVENTS_DROPPED");
	if (!ev)
		return;
	ev->ui_hint = "warning";
	snprintf(ev->key, sizeof(ev->key), "heal:EVENTS_DROPPED");
	cJSON_AddNumberToObject(ev->payload, "dropped", (double)delta);
	cJSON_AddNumberToObject(ev->payload, "total", (double)total);
	by = cJSON_AddObjectToObject(ev->payload, "by_type");
	for (i = 1; i < HEAL_REC_MAX; i++) {
		if (by && drops[i] != d->drops_reported[i])
			cJSON_AddNumberToObject(by, names[i], (double)(drops[i] - d->drops_reported[i]));
		d->drops_reported[i] = drops[i];
	}
	d->drops_total = total;
	bus__publish(d->bus, ev);
}

struct detect *detect__new(const struct heal_config *cfg, struct bus *bus, struct worker *w)
{
	struct detect *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	d->cfg = cfg;
	d->bus = bus;
	d->worker = w;
	d->page_kb = sysconf(_SC_PAGESIZE) / 1024;
	d->sym = symbolizer__new();
	if (!d->sym) {
		free(d);
		return NULL;
	}
	return d;
}

void detect__attach(struct detect *d, struct probe *probe, struct targets *ts)
{
	d->probe = probe;
	d->targets = ts;
}

void detect__free(struct detect *d)
{
	if (!d)
		return;
	symbolizer__free(d->sym);
	free(d);
}
