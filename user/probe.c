// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "heal/names.h"
#include "heal/probe.h"
#include "heal/util.h"

#include "api.skel.h"
#include "crash.skel.h"
#include "procs.skel.h"
#include "syscalls.skel.h"

struct api_slot {
	const struct heal_api_rule *rule;
	const struct heal_target *target;
};

struct probe {
	const struct heal_config *cfg;
	struct procs_bpf *procs; /* owns the shared maps */
	struct syscalls_bpf *sys;
	struct crash_bpf *crash;
	struct api_bpf *api;
	struct ring_buffer *rb;
	struct bpf_link **links;
	size_t n_links, cap_links;
	probe_record_fn rb_cb;
	void *rb_ctx;
	struct api_slot apis[HEAL_API_MAX];
	size_t n_apis;
	int ncpus;
	int budget; /* records probe__consume may still hand out */
	volatile uint8_t *tgid_bytes; /* watched_tgid, mmapped: one byte per tgid */
	size_t tgid_bytes_len;
};

/* What to capture per syscall: argument positions are 1-based. */
static const struct {
	const char *name;
	struct heal_sys_capture cap;
} capture_table[] = {
	/* path first */
	{ "open", { .path_arg = 1 } },       { "creat", { .path_arg = 1 } },
	{ "stat", { .path_arg = 1 } },       { "lstat", { .path_arg = 1 } },
	{ "access", { .path_arg = 1 } },     { "execve", { .path_arg = 1 } },
	{ "unlink", { .path_arg = 1 } },     { "mkdir", { .path_arg = 1 } },
	{ "rmdir", { .path_arg = 1 } },      { "truncate", { .path_arg = 1 } },
	{ "chdir", { .path_arg = 1 } },      { "readlink", { .path_arg = 1 } },
	{ "chmod", { .path_arg = 1 } },      { "chown", { .path_arg = 1 } },
	{ "lchown", { .path_arg = 1 } },     { "statfs", { .path_arg = 1 } },
	{ "mknod", { .path_arg = 1 } },      { "utimes", { .path_arg = 1 } },
	{ "chroot", { .path_arg = 1 } },
	{ "rename", { .path_arg = 1, .path2_arg = 2 } },
	{ "link", { .path_arg = 1, .path2_arg = 2 } },
	{ "symlink", { .path_arg = 1, .path2_arg = 2 } },
	/* dirfd, path */
	{ "openat", { .path_arg = 2 } },     { "openat2", { .path_arg = 2 } },
	{ "newfstatat", { .path_arg = 2 } }, { "statx", { .path_arg = 2 } },
	{ "faccessat", { .path_arg = 2 } },  { "faccessat2", { .path_arg = 2 } },
	{ "unlinkat", { .path_arg = 2 } },   { "mkdirat", { .path_arg = 2 } },
	{ "mknodat", { .path_arg = 2 } },    { "fchownat", { .path_arg = 2 } },
	{ "fchmodat", { .path_arg = 2 } },   { "readlinkat", { .path_arg = 2 } },
	{ "utimensat", { .path_arg = 2 } },  { "execveat", { .path_arg = 2 } },
	{ "renameat", { .path_arg = 2, .path2_arg = 4 } },
	{ "renameat2", { .path_arg = 2, .path2_arg = 4 } },
	{ "linkat", { .path_arg = 2, .path2_arg = 4 } },
	{ "symlinkat", { .path_arg = 1, .path2_arg = 3 } },
	/* fd first */
	{ "read", { .fd_arg = 1 } },         { "write", { .fd_arg = 1 } },
	{ "pread64", { .fd_arg = 1 } },      { "pwrite64", { .fd_arg = 1 } },
	{ "readv", { .fd_arg = 1 } },        { "writev", { .fd_arg = 1 } },
	{ "preadv", { .fd_arg = 1 } },       { "pwritev", { .fd_arg = 1 } },
	{ "close", { .fd_arg = 1 } },        { "fsync", { .fd_arg = 1 } },
	{ "fdatasync", { .fd_arg = 1 } },    { "ftruncate", { .fd_arg = 1 } },
	{ "fallocate", { .fd_arg = 1 } },    { "fstat", { .fd_arg = 1 } },
	{ "lseek", { .fd_arg = 1 } },        { "getdents64", { .fd_arg = 1 } },
	{ "ioctl", { .fd_arg = 1 } },        { "fcntl", { .fd_arg = 1 } },
	{ "flock", { .fd_arg = 1 } },        { "sendto", { .fd_arg = 1 } },
	{ "recvfrom", { .fd_arg = 1 } },     { "sendmsg", { .fd_arg = 1 } },
	{ "recvmsg", { .fd_arg = 1 } },      { "accept", { .fd_arg = 1 } },
	{ "accept4", { .fd_arg = 1 } },      { "listen", { .fd_arg = 1 } },
	{ "shutdown", { .fd_arg = 1 } },     { "sendfile", { .fd_arg = 1 } },
	{ "splice", { .fd_arg = 1 } },       { "dup", { .fd_arg = 1 } },
	{ "dup2", { .fd_arg = 1 } },         { "dup3", { .fd_arg = 1 } },
	/* fd, sockaddr, len */
	{ "connect", { .fd_arg = 1, .sockaddr_arg = 2 } },
	{ "bind", { .fd_arg = 1, .sockaddr_arg = 2 } },
};

/* Turn a load/attach errno into what a person should do about it. */
static void explain(char *err, size_t len, const char *what, int e)
{
	const char *hint = "";

	if (e == EPERM || e == EACCES)
		hint = "; heald must run as root (CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN)";
	else if (e == ESRCH)
		hint = "; this kernel lacks a tracepoint or BTF type heal needs (is /sys/kernel/btf/vmlinux present?)";
	snprintf(err, len, "cannot %s: %s%s", what, strerror(e), hint);
}

static int add_link(struct probe *p, struct bpf_link *l)
{
	if (p->n_links == p->cap_links) {
		size_t cap = p->cap_links ? p->cap_links * 2 : 16;
		struct bpf_link **v = realloc(p->links, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		p->links = v;
		p->cap_links = cap;
	}
	p->links[p->n_links++] = l;
	return 0;
}

static int share_maps(struct bpf_map *events, struct bpf_map *watched, struct bpf_map *watched_tgid,
		      struct bpf_map *drops, struct bpf_map *stats, const struct procs_bpf *owner)
{
	int err;

	if ((err = bpf_map__reuse_fd(events, bpf_map__fd(owner->maps.events))) ||
	    (err = bpf_map__reuse_fd(watched, bpf_map__fd(owner->maps.watched))) ||
	    (err = bpf_map__reuse_fd(watched_tgid, bpf_map__fd(owner->maps.watched_tgid))) ||
	    (err = bpf_map__reuse_fd(drops, bpf_map__fd(owner->maps.drops))) ||
	    (err = bpf_map__reuse_fd(stats, bpf_map__fd(owner->maps.stats))))
		return err;
	return 0;
}

static bool any_target(const struct heal_config *cfg, uint32_t flag)
{
	size_t i;

	for (i = 0; i < cfg->n_targets; i++)
		if (cfg->targets[i].detect & flag)
			return true;
	return false;
}

static void count_api(const struct heal_config *cfg, int *uprobes, int *usdts)
{
	size_t i, j;

	*uprobes = *usdts = 0;
	for (i = 0; i < cfg->n_targets; i++)
		for (j = 0; j < cfg->targets[i].n_api; j++) {
			if (cfg->targets[i].api[j].symbol)
				(*uprobes)++;
			else
				(*usdts)++;
		}
}

static bool any_match(const struct heal_config *cfg)
{
	size_t i;

	for (i = 0; i < cfg->n_targets; i++)
		if (cfg->targets[i].has_match)
			return true;
	return false;
}

/* Two rules on one slot merge: their errno sets add up. */
static int merge_rule(int fd_rules, __u32 key, const struct heal_syscall_rule *r)
{
	struct heal_sys_rule rule = {};
	size_t e;

	bpf_map_lookup_elem(fd_rules, &key, &rule);
	rule.active = 1;
	rule.any_errno |= r->any_errno;
	for (e = 0; e < r->n_errnos; e++) {
		int en = r->errnos[e];

		if (en > 0 && en < HEAL_ERRNO_MAX)
			rule.errno_mask[en / 64] |= 1ull << (en % 64);
	}
	if (r->threshold > rule.threshold)
		rule.threshold = r->threshold;
	if ((uint64_t)r->window_ms * 1000000ull > rule.window_ns)
		rule.window_ns = (uint64_t)r->window_ms * 1000000ull;
	return bpf_map_update_elem(fd_rules, &key, &rule, BPF_ANY) ? -errno : 0;
}

static int fill_syscall_maps(struct probe *p)
{
	const struct heal_config *cfg = p->cfg;
	int fd_cap = bpf_map__fd(p->sys->maps.sys_capture);
	int fd_rules = bpf_map__fd(p->sys->maps.sys_rules);
	size_t i, j, k;
	int err;

	for (i = 0; i < sizeof(capture_table) / sizeof(capture_table[0]); i++) {
		int nr = names__syscall_nr(capture_table[i].name);
		__u32 key = (__u32)nr;

		if (nr < 0 || nr >= HEAL_SYSCALL_MAX)
			continue; /* not on this architecture */
		if (bpf_map_update_elem(fd_cap, &key, &capture_table[i].cap, BPF_ANY))
			return -errno;
	}
	for (i = 0; i < cfg->n_targets; i++) {
		const struct heal_target *t = &cfg->targets[i];

		if (!(t->detect & HEAL_DETECT_SYSCALLS))
			continue;
		for (j = 0; j < t->n_syscall_rules; j++) {
			const struct heal_syscall_rule *r = &t->syscall_rules[j];
			size_t nkeys = r->any_syscall ? 1 : r->n_syscalls;

			for (k = 0; k < nkeys; k++) {
				__u32 nr = r->any_syscall ? HEAL_SYSCALL_MAX : (__u32)r->syscalls[k];

				if (nr > HEAL_SYSCALL_MAX)
					continue; /* config checked names against this table */
				/* the target's row, and row 0: every target's rules merged */
				if ((err = merge_rule(fd_rules, t->id * HEAL_SYSCALL_ROW + nr, r)) ||
				    (err = merge_rule(fd_rules, nr, r)))
					return err;
			}
		}
	}
	return 0;
}

/* kernel.pid_max, the bound of every tgid (4194304 at most on 64-bit) */
static uint32_t pid_max(void)
{
	char *s = NULL;
	size_t len;
	long v = 0;

	if (util__read_file("/proc/sys/kernel/pid_max", 64, &s, &len) == 0)
		v = strtol(s, NULL, 10);
	free(s);
	return v > 0 && v <= (1L << 22) ? (uint32_t)v : 1u << 22;
}

/* Map watched_tgid so heald sets bytes without a syscall and without racing
 * the kernel's byte stores to the same word (a read-modify-write would). */
static int map_tgid_bytes(struct probe *p)
{
	const struct bpf_map *m = p->procs->maps.watched_tgid;
	size_t len = (size_t)bpf_map__max_entries(m) * bpf_map__value_size(m);
	void *addr;

	len = (len + (size_t)sysconf(_SC_PAGESIZE) - 1) & ~((size_t)sysconf(_SC_PAGESIZE) - 1);
	addr = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, bpf_map__fd(m), 0);
	if (addr == MAP_FAILED)
		return -errno;
	p->tgid_bytes = addr;
	p->tgid_bytes_len = (size_t)bpf_map__max_entries(m) * bpf_map__value_size(m);
	return 0;
}

static int fill_match_maps(struct probe *p)
{
	const struct heal_config *cfg = p->cfg;
	size_t i;

	for (i = 0; i < cfg->n_targets; i++) {
		const struct heal_target *t = &cfg->targets[i];
		struct heal_watch w = { .target_id = t->id, .detect = t->detect };
		struct stat st;

		if (!t->has_match)
			continue;
		if (t->match.exe && stat(t->match.exe, &st) == 0) {
			/* the kernel's dev_t packs major:minor as 12:20 bits */
			struct heal_exe_key k = {
				.dev = ((__u64)major(st.st_dev) << 20) | minor(st.st_dev),
				.ino = st.st_ino,
			};

			if (bpf_map_update_elem(bpf_map__fd(p->procs->maps.exe_match), &k, &w, BPF_ANY))
				return -errno;
		}
		if (t->match.comm) {
			char comm[HEAL_COMM_LEN] = {};

			strncpy(comm, t->match.comm, sizeof(comm) - 1);
			if (bpf_map_update_elem(bpf_map__fd(p->procs->maps.comm_match), comm, &w, BPF_ANY))
				return -errno;
		}
		if (t->match.cgroup) {
			char path[4096];
			__u64 id;

			/* on cgroup v2 a cgroup's id is its directory's inode number */
			if (t->match.cgroup[0] == '/' && strncmp(t->match.cgroup, "/sys/fs/cgroup", 14) == 0)
				snprintf(path, sizeof(path), "%s", t->match.cgroup);
			else
				snprintf(path, sizeof(path), "%s/%s", util__cgroup2_root(),
					 t->match.cgroup + (t->match.cgroup[0] == '/'));
			if (stat(path, &st) == 0) {
				id = st.st_ino;
				if (bpf_map_update_elem(bpf_map__fd(p->procs->maps.cgroup_match), &id, &w,
							BPF_ANY))
					return -errno;
			}
		}
	}
	return 0;
}

static int attach_api(struct probe *p, char *err, size_t errlen)
{
	const struct heal_config *cfg = p->cfg;
	size_t i, j;

	for (i = 0; i < cfg->n_targets; i++) {
		const struct heal_target *t = &cfg->targets[i];

		for (j = 0; j < t->n_api; j++) {
			const struct heal_api_rule *r = &t->api[j];
			__u32 id = (__u32)p->n_apis;
			struct heal_api_spec spec = {
				.value = r->fail_when.value,
				.op = r->fail_when.op,
				.ret_bits = r->ret_bits ? r->ret_bits : 32,
				.arg_kind = r->capture_kind,
				.arg_index = r->capture_index,
				.pred_arg = (__u32)r->fail_when.arg,
				.target_id = t->id,
			};
			struct bpf_link *l;
			char what[512];

			if (p->n_apis >= HEAL_API_MAX)
				return -E2BIG;
			if (bpf_map_update_elem(bpf_map__fd(p->api->maps.api_specs), &id, &spec, BPF_ANY))
				return -errno;
			p->apis[p->n_apis].rule = r;
			p->apis[p->n_apis].target = t;
			p->n_apis++;

			if (r->symbol) {
				struct bpf_uprobe_opts uo = { .sz = sizeof(uo), .func_name = r->symbol,
							      .bpf_cookie = id };

				snprintf(what, sizeof(what), "attach uprobe %s:%s", r->binary, r->symbol);
				if (r->capture_kind != HEAL_ARG_NONE) {
					l = bpf_program__attach_uprobe_opts(p->api->progs.api_entry, -1,
									    r->binary, 0, &uo);
					if (!l) {
						explain(err, errlen, what, errno);
						return -errno;
					}
					add_link(p, l);
				}
				uo.retprobe = true;
				l = bpf_program__attach_uprobe_opts(p->api->progs.api_return, -1,
								    r->binary, 0, &uo);
			} else {
				struct bpf_usdt_opts so = { .sz = sizeof(so), .usdt_cookie = id };

				snprintf(what, sizeof(what), "attach USDT %s:%s in %s", r->usdt_provider,
					 r->usdt_name, r->binary);
				l = bpf_program__attach_usdt(p->api->progs.api_usdt, -1, r->binary,
							     r->usdt_provider, r->usdt_name, &so);
			}
			if (!l) {
				int e = errno;

				explain(err, errlen, what, e);
				return -e;
			}
			if (add_link(p, l)) {
				bpf_link__destroy(l);
				return -ENOMEM;
			}
		}
	}
	return 0;
}

static int on_record(void *ctx, void *data, size_t len)
{
	struct probe *p = ctx;

	if (len >= sizeof(struct heal_rec_hdr))
		p->rb_cb(p->rb_ctx, data, len);
	/* libbpf has consumed this record; a negative return ends the call */
	return --p->budget > 0 ? 0 : -EAGAIN;
}

int probe__new(const struct heal_config *cfg, probe_record_fn cb, void *ctx, struct probe **out,
	       char *err, size_t errlen)
{
	bool want_sys = any_target(cfg, HEAL_DETECT_SYSCALLS);
	bool want_crash = any_target(cfg, HEAL_DETECT_CRASHES);
	bool want_oom = any_target(cfg, HEAL_DETECT_OOM);
	int n_uprobes, n_usdts, e;
	struct probe *p;

	*out = NULL;
	err[0] = 0;
	count_api(cfg, &n_uprobes, &n_usdts);
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->cfg = cfg;
	p->rb_cb = cb;
	p->rb_ctx = ctx;
	p->ncpus = libbpf_num_possible_cpus();
	if (p->ncpus <= 0) {
		e = -p->ncpus;
		explain(err, errlen, "count CPUs", e);
		goto fail;
	}

	/* procs owns the shared maps: it is always loaded first */
	p->procs = procs_bpf__open();
	if (!p->procs) {
		e = errno;
		explain(err, errlen, "open the process-tracking BPF object", e);
		goto fail;
	}
	p->procs->rodata->has_match = any_match(cfg);
	bpf_program__set_autoload(p->procs->progs.mark_victim, want_oom);
	if ((e = -bpf_map__set_max_entries(p->procs->maps.events, cfg->ringbuf_kb * 1024u)) ||
	    (e = -bpf_map__set_max_entries(p->procs->maps.watched_tgid, (pid_max() + 7) / 8))) {
		explain(err, errlen, "size the ring buffer and the tgid table", e);
		goto fail;
	}
	if ((e = -procs_bpf__load(p->procs))) {
		explain(err, errlen, "load the process-tracking BPF programs", e);
		goto fail;
	}
	if ((e = -map_tgid_bytes(p))) {
		explain(err, errlen, "map the tgid table", e);
		goto fail;
	}

	if (want_sys) {
		p->sys = syscalls_bpf__open();
		if (!p->sys) {
			e = errno;
			explain(err, errlen, "open the syscall BPF object", e);
			goto fail;
		}
		p->sys->rodata->samples_per_sec = cfg->samples_per_sec;
		if ((e = -bpf_map__set_max_entries(p->sys->maps.sys_rules,
						   (uint32_t)(cfg->n_targets + 1) * HEAL_SYSCALL_ROW))) {
			explain(err, errlen, "size the syscall rule table", e);
			goto fail;
		}
		if ((e = -share_maps(p->sys->maps.events, p->sys->maps.watched, p->sys->maps.watched_tgid, p->sys->maps.drops,
				     p->sys->maps.stats, p->procs)) ||
		    (e = -syscalls_bpf__load(p->sys))) {
			explain(err, errlen, "load the syscall BPF program", e);
			goto fail;
		}
		if ((e = -fill_syscall_maps(p))) {
			explain(err, errlen, "fill the syscall rule maps", e);
			goto fail;
		}
	}
	if (want_crash) {
		p->crash = crash_bpf__open();
		if (!p->crash) {
			e = errno;
			explain(err, errlen, "open the crash BPF object", e);
			goto fail;
		}
		if ((e = -share_maps(p->crash->maps.events, p->crash->maps.watched, p->crash->maps.watched_tgid,
				     p->crash->maps.drops, p->crash->maps.stats, p->procs)) ||
		    (e = -crash_bpf__load(p->crash))) {
			explain(err, errlen, "load the crash BPF program", e);
			goto fail;
		}
	}
	if (n_uprobes + n_usdts > 0) {
		p->api = api_bpf__open();
		if (!p->api) {
			e = errno;
			explain(err, errlen, "open the API BPF object", e);
			goto fail;
		}
		bpf_program__set_autoload(p->api->progs.api_entry, n_uprobes > 0);
		bpf_program__set_autoload(p->api->progs.api_return, n_uprobes > 0);
		bpf_program__set_autoload(p->api->progs.api_usdt, n_usdts > 0);
		if ((e = -share_maps(p->api->maps.events, p->api->maps.watched, p->api->maps.watched_tgid, p->api->maps.drops,
				     p->api->maps.stats, p->procs)) ||
		    (e = -api_bpf__load(p->api))) {
			explain(err, errlen, "load the API BPF programs", e);
			goto fail;
		}
	}

	if ((e = -fill_match_maps(p))) {
		explain(err, errlen, "fill the process match maps", e);
		goto fail;
	}
	/* attach last: every map is filled before the first event can fire */
	if ((e = -procs_bpf__attach(p->procs))) {
		explain(err, errlen, "attach the process tracepoints", e);
		goto fail;
	}
	if (p->sys && (e = -syscalls_bpf__attach(p->sys))) {
		explain(err, errlen, "attach tp_btf/sys_exit", e);
		goto fail;
	}
	if (p->crash && (e = -crash_bpf__attach(p->crash))) {
		explain(err, errlen, "attach tp_btf/signal_deliver", e);
		goto fail;
	}
	if (p->api && (e = -attach_api(p, err, errlen))) {
		if (!err[0])
			explain(err, errlen, "attach the API probes", e);
		goto fail;
	}
	p->rb = ring_buffer__new(bpf_map__fd(p->procs->maps.events), on_record, p, NULL);
	if (!p->rb) {
		e = errno;
		explain(err, errlen, "open the ring buffer", e);
		goto fail;
	}
	*out = p;
	return 0;
fail:
	probe__free(p);
	return -e;
}

void probe__free(struct probe *p)
{
	size_t i;

	if (!p)
		return;
	ring_buffer__free(p->rb);
	for (i = 0; i < p->n_links; i++)
		bpf_link__destroy(p->links[i]);
	free(p->links);
	if (p->tgid_bytes)
		munmap((void *)p->tgid_bytes, p->tgid_bytes_len);
	api_bpf__destroy(p->api);
	crash_bpf__destroy(p->crash);
	syscalls_bpf__destroy(p->sys);
	procs_bpf__destroy(p->procs);
	free(p);
}

int probe__fd(const struct probe *p)
{
	return ring_buffer__epoll_fd(p->rb);
}

int probe__consume(struct probe *p, int max)
{
	int n;

	p->budget = max > 0 ? max : 1;
	n = ring_buffer__consume(p->rb);
	if (n == -EAGAIN)
		return max; /* budget spent: more may be waiting */
	return n;
}

int probe__watch(struct probe *p, uint32_t tgid, const struct heal_target *t)
{
	struct heal_watch w = { .target_id = t->id, .detect = t->detect };

	if (bpf_map_update_elem(bpf_map__fd(p->procs->maps.watched), &tgid, &w, BPF_ANY))
		return -errno;
	if (tgid < p->tgid_bytes_len)
		p->tgid_bytes[tgid] = (uint8_t)t->id;
	return 0;
}

int probe__unwatch(struct probe *p, uint32_t tgid)
{
	if (tgid < p->tgid_bytes_len)
		p->tgid_bytes[tgid] = 0;
	if (bpf_map_delete_elem(bpf_map__fd(p->procs->maps.watched), &tgid) && errno != ENOENT)
		return -errno;
	return 0;
}

static int sum_percpu(struct probe *p, int fd, uint64_t *out, uint32_t n)
{
	uint64_t *vals = calloc((size_t)p->ncpus, sizeof(*vals));
	uint32_t k;
	int c;

	if (!vals)
		return -ENOMEM;
	for (k = 0; k < n; k++) {
		out[k] = 0;
		if (bpf_map_lookup_elem(fd, &k, vals))
			continue;
		for (c = 0; c < p->ncpus; c++)
			out[k] += vals[c];
	}
	free(vals);
	return 0;
}

int probe__read_drops(struct probe *p, uint64_t drops[HEAL_REC_MAX])
{
	return sum_percpu(p, bpf_map__fd(p->procs->maps.drops), drops, HEAL_REC_MAX);
}

int probe__read_stats(struct probe *p, uint64_t stats[HEAL_STAT_MAX])
{
	return sum_percpu(p, bpf_map__fd(p->procs->maps.stats), stats, HEAL_STAT_MAX);
}

typedef void (*count_walk_fn)(void *ctx, const struct heal_count_key *k, const struct heal_count *v);

/* Counts a CPU holds back for an entry (count_cache): part of its exact count. */
static uint64_t pending_for(const struct heal_count_cache *cc, int ncpus,
			    const struct heal_count_key *k, uint64_t epoch)
{
	uint64_t n = 0;
	int i;

	for (i = 0; cc && i < ncpus; i++)
		if (cc[i].pending && cc[i].epoch == epoch && !memcmp(&cc[i].key, k, sizeof(*k)))
			n += cc[i].pending;
	return n;
}

/* Every entry of the in-kernel count table, without removing any. Returns entries or -errno. */
static int walk_counts(struct probe *p, count_walk_fn fn, void *ctx)
{
	struct heal_count_key key, last, *prev = NULL;
	struct heal_count_cache *cc;
	struct {
		struct heal_count_key k;
		struct heal_count v;
	} *ent = NULL, *grown;
	size_t n = 0, cap = 0, i;
	__u32 zero = 0;
	int fd;

	if (!p->sys)
		return 0;
	fd = bpf_map__fd(p->sys->maps.sys_counts);
	while (bpf_map_get_next_key(fd, prev, &key) == 0) {
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			if (!(grown = realloc(ent, cap * sizeof(*ent)))) {
				free(ent);
				return -ENOMEM;
			}
			ent = grown;
		}
		last = key;
		prev = &last;
		ent[n].k = key;
		if (bpf_map_lookup_elem(fd, &key, &ent[n].v) == 0)
			n++;
	}
	/* The per-CPU caches after the table: a count moving from a cache into
	 * the table meanwhile is missed by this read (the next one has it),
	 * never counted twice. At a process's exit nothing moves: exact. */
	cc = calloc((size_t)p->ncpus, sizeof(*cc));
	if (cc && bpf_map_lookup_elem(bpf_map__fd(p->sys->maps.count_cache), &zero, cc)) {
		free(cc);
		cc = NULL;
	}
	for (i = 0; i < n; i++) {
		ent[i].v.count += pending_for(cc, p->ncpus, &ent[i].k, ent[i].v.epoch);
		fn(ctx, &ent[i].k, &ent[i].v);
	}
	free(cc);
	free(ent);
	return (int)n;
}

struct take_ctx {
	uint32_t tgid;
	probe_count_fn cb;
	void *ctx;
	struct heal_count_key found[256];
	size_t nfound;
	int n;
};

static void take_one(void *arg, const struct heal_count_key *k, const struct heal_count *v)
{
	struct take_ctx *t = arg;

	if (k->tgid != t->tgid)
		return;
	t->cb(t->ctx, k->nr, k->err, v->count);
	t->n++;
	if (t->nfound < sizeof(t->found) / sizeof(t->found[0]))
		t->found[t->nfound++] = *k;
}

int probe__take_counts(struct probe *p, uint32_t tgid, probe_count_fn cb, void *ctx)
{
	struct take_ctx *t;
	size_t i;
	int n;

	if (!p->sys)
		return 0;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->tgid = tgid;
	t->cb = cb;
	t->ctx = ctx;
	/* collect first, delete after: deleting while walking restarts the walk */
	walk_counts(p, take_one, t);
	for (i = 0; i < t->nfound; i++)
		bpf_map_delete_elem(bpf_map__fd(p->sys->maps.sys_counts), &t->found[i]);
	n = t->n;
	free(t);
	return n;
}

struct owners_ctx {
	struct probe_count_owner *out;
	size_t max, n;
};

static void owner_one(void *arg, const struct heal_count_key *k, const struct heal_count *v)
{
	struct owners_ctx *o = arg;
	size_t i;

	(void)v;
	for (i = 0; i < o->n; i++)
		if (o->out[i].tgid == k->tgid)
			return;
	if (o->n < o->max) {
		o->out[o->n].tgid = k->tgid;
		o->out[o->n].target_id = k->target_id;
		o->n++;
	}
}

int probe__count_owners(struct probe *p, struct probe_count_owner *out, size_t max)
{
	struct owners_ctx o = { .out = out, .max = max };
	int n = walk_counts(p, owner_one, &o);

	return n < 0 ? n : (int)o.n;
}

struct live_ctx {
	probe_live_count_fn cb;
	void *ctx;
};

static void live_one(void *arg, const struct heal_count_key *k, const struct heal_count *v)
{
	struct live_ctx *l = arg;

	l->cb(l->ctx, k->target_id, k->nr, k->err, v->count);
}

int probe__live_counts(struct probe *p, probe_live_count_fn cb, void *ctx)
{
	struct live_ctx l = { .cb = cb, .ctx = ctx };

	return walk_counts(p, live_one, &l);
}

const struct heal_api_rule *probe__api_rule(const struct probe *p, uint32_t api_id,
					    const struct heal_target **target)
{
	if (api_id >= p->n_apis)
		return NULL;
	if (target)
		*target = p->apis[api_id].target;
	return p->apis[api_id].rule;
}

