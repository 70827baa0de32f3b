// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Failed syscalls of watched processes. One hook only, sys_exit: the
 * arguments are still in the task's saved registers there, so no sys_enter
 * hook (each enabled syscall tracepoint costs every task on the host).
 *
 * This program runs on every syscall of every task, so its path is costed
 * (BENCHMARKS.md): success leaves on the first compare; a failure no target
 * has a rule for after two inlined array loads (sys_rules row 0, every
 * target's rules merged); one of an unwatched task after the pid helper and
 * one more (watched_tgid); a failure its target's rules do not want after
 * two more. Only a matching failure is counted: in a per-CPU slot while its
 * samples are used up, else in the sys_counts hash.
 */
#include "common.bpf.h"
#include <bpf/bpf_endian.h>

#define MAX_ERRNO 4095
#define NSEC_PER_SEC 1000000000ull

/* The kernel's tick rate (libbpf reads it from the kernel config; 0 when there is none). */
extern unsigned int CONFIG_HZ __kconfig __weak;

/* Samples per second per (tgid, syscall, errno); counts stay exact regardless. */
const volatile __u64 samples_per_sec = 10;

/* (target_id, nr) -> rule at target_id * HEAL_SYSCALL_ROW + nr; nr HEAL_SYSCALL_MAX is "*".
 * Target ids start at 1: row 0 is every target's rules merged (the pre-filter).
 * heald sizes it to its targets. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, HEAL_SYSCALL_ROW);
	__type(key, __u32);
	__type(value, struct heal_sys_rule);
} sys_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, HEAL_SYSCALL_MAX);
	__type(key, __u32);
	__type(value, struct heal_sys_capture);
} sys_capture SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct heal_count_key);
	__type(value, struct heal_count);
} sys_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct heal_count_cache);
} count_cache SEC(".maps");

static __always_inline __u64 syscall_arg(struct pt_regs *regs, __u32 idx)
{
	switch (idx) {
	case 1:
		return PT_REGS_PARM1_CORE_SYSCALL(regs);
	case 2:
		return PT_REGS_PARM2_CORE_SYSCALL(regs);
	case 3:
		return PT_REGS_PARM3_CORE_SYSCALL(regs);
	case 4:
		return PT_REGS_PARM4_CORE_SYSCALL(regs);
	default:
		/* no capture reads a sixth argument */
		return PT_REGS_PARM5_CORE_SYSCALL(regs);
	}
}

static __always_inline bool errno_matches(const struct heal_sys_rule *rule, __u32 err)
{
	if (!rule->active)
		return false;
	if (rule->any_errno)
		return true;
	__u64 bit = 1ull << (err % 64);

	/* constant indexes: clang folds a bounds check on a computed one away */
	if (err < 64)
		return rule->errno_mask[0] & bit;
	if (err < 128)
		return rule->errno_mask[1] & bit;
	if (err < 192)
		return rule->errno_mask[2] & bit;
	return false;
}

static __always_inline bool same_key(const struct heal_count_key *a, const struct heal_count_key *b)
{
	return a->tgid == b->tgid && a->nr == b->nr && a->err == b->err && a->target_id == b->target_id;
}

/* Move a CPU's pending counts into their entry; dropped if the entry is gone
 * (heald took the counts at exit, and read the pending ones with them). */
static __always_inline void flush_cache(struct heal_count_cache *cc)
{
	struct heal_count *c = bpf_map_lookup_elem(&sys_counts, &cc->key);

	if (c && c->epoch == cc->epoch) {
		__sync_fetch_and_add(&c->count, cc->pending);
		c->win_count += cc->pending;
	}
	cc->pending = 0;
	cc->quiet_until = 0;
}

/* Count exactly; decide whether this failure also becomes a sample. */
static __always_inline bool count_and_sample(const struct heal_sys_rule *rule,
					     struct heal_count_key *key, __u64 now,
					     struct heal_count_cache *cc, __u64 *count_out)
{
	struct heal_count zero = {}, *c;

	c = bpf_map_lookup_elem(&sys_counts, key);
	if (!c) {
		/* NOEXIST: another CPU may have inserted it meanwhile; either way look again. */
		zero.epoch = bpf_ktime_get_boot_ns();
		bpf_map_update_elem(&sys_counts, key, &zero, BPF_NOEXIST);
		c = bpf_map_lookup_elem(&sys_counts, key);
		if (!c) {
			count_stat(HEAL_STAT_COUNT_TABLE_FULL);
			return false;
		}
	}
	*count_out = __sync_fetch_and_add(&c->count, 1) + 1;

	/* The window and rate-limit fields race benignly across CPUs: they only shape sampling. */
	if (rule->threshold > 1) {
		if (rule->window_ns && now - c->win_start_ns > rule->window_ns) {
			c->win_start_ns = now;
			c->win_count = 0;
		}
		c->win_count += 1;
		if (c->win_count < rule->threshold) {
			count_stat(HEAL_STAT_BELOW_THRESHOLD);
			return false;
		}
	}
	if (now - c->sample_start_ns >= NSEC_PER_SEC) {
		c->sample_start_ns = now;
		c->samples = 0;
	}
	if (c->samples >= samples_per_sec) {
		count_stat(HEAL_STAT_SAMPLES_SUPPRESSED);
		if (cc) {
			/* nothing more to send this second: count the repeats on this CPU */
			cc->key = *key;
			cc->epoch = c->epoch;
			cc->pending = 0;
			cc->quiet_until = c->sample_start_ns + NSEC_PER_SEC;
		}
		return false;
	}
	c->samples += 1;
	return true;
}

static __always_inline void capture_sockaddr(struct heal_rec_syscall *rec, __u64 uaddr, __u64 len)
{
	struct sockaddr_in6 sa = {}; /* the largest of in/in6; unix paths read separately */
	__u16 family = 0;

	if (!uaddr || bpf_probe_read_user(&family, sizeof(family), (void *)uaddr))
		return;
	if (family == HEAL_ADDR_INET) {
		struct sockaddr_in sin = {};

		if (bpf_probe_read_user(&sin, sizeof(sin), (void *)uaddr))
			return;
		rec->addr_family = HEAL_ADDR_INET;
		rec->addr_port = bpf_ntohs(sin.sin_port);
		__builtin_memcpy(rec->addr, &sin.sin_addr, 4);
	} else if (family == HEAL_ADDR_INET6) {
		if (bpf_probe_read_user(&sa, sizeof(sa), (void *)uaddr))
			return;
		rec->addr_family = HEAL_ADDR_INET6;
		rec->addr_port = bpf_ntohs(sa.sin6_port);
		__builtin_memcpy(rec->addr, &sa.sin6_addr, 16);
	} else if (family == HEAL_ADDR_UNIX) {
		rec->addr_family = HEAL_ADDR_UNIX;
		/* sun_path follows the 2-byte family; abstract names start with NUL */
		bpf_probe_read_user_str(rec->path, sizeof(rec->path), (void *)(uaddr + 2));
	}
}

static __always_inline const struct heal_sys_rule *rule_for(__u32 target_id, __u32 nr, __u32 err)
{
	const struct heal_sys_rule *rule;
	__u32 idx;

	if (nr < HEAL_SYSCALL_MAX) {
		idx = target_id * HEAL_SYSCALL_ROW + nr;
		rule = bpf_map_lookup_elem(&sys_rules, &idx);
		if (rule && errno_matches(rule, err))
			return rule;
	}
	idx = target_id * HEAL_SYSCALL_ROW + HEAL_SYSCALL_MAX;
	rule = bpf_map_lookup_elem(&sys_rules, &idx);
	if (rule && errno_matches(rule, err))
		return rule;
	return NULL;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(sys_exit, struct pt_regs *regs, long ret)
{
	const struct heal_sys_rule *rule;
	struct heal_sys_capture *cap;
	struct heal_count_key ckey;
	struct heal_rec_syscall *rec;
	struct heal_count_cache *cc;
	__u32 tgid, target_id, nr, err, zero = 0;
	__u64 count = 0, now;

	/* Success is by far the common case: leave before any map lookup. */
	if (ret >= 0 || ret < -MAX_ERRNO)
		return 0;
	nr = (__u32)regs->orig_ax; /* a BTF pointer: a plain load, no probe-read helper */
	err = (__u32)-ret;
	/* Row 0 holds every target's rules merged: a failure no target asks
	 * for leaves before the helper call that names the process, which
	 * costs more than the rest of this path together. */
	if (!rule_for(0, nr, err))
		return 0;
	tgid = bpf_get_current_pid_tgid() >> 32;
	target_id = current_target(tgid);
	if (!target_id)
		return 0;
	rule = rule_for(target_id, nr, err);
	if (!rule)
		return 0;

	ckey.tgid = tgid;
	ckey.nr = nr;
	ckey.err = err;
	ckey.target_id = target_id;
	/* Tick resolution is plenty for 1 s rate limits and threshold windows,
	 * and jiffies are a load where the precise clock reads the clocksource. */
	now = CONFIG_HZ ? bpf_jiffies64() * (NSEC_PER_SEC / CONFIG_HZ) : bpf_ktime_get_boot_ns();
	cc = bpf_map_lookup_elem(&count_cache, &zero);
	if (cc && now < cc->quiet_until && same_key(&cc->key, &ckey)) {
		cc->pending += 1; /* a storm's repeats: no shared cache line, no hash */
		count_stat(HEAL_STAT_SAMPLES_SUPPRESSED);
		return 0;
	}
	if (cc && cc->pending)
		flush_cache(cc);
	if (!count_and_sample(rule, &ckey, now, cc, &count))
		return 0;

	rec = sample_room() ? bpf_ringbuf_reserve(&events, sizeof(*rec), 0) : NULL;
	if (!rec) {
		count_drop(HEAL_REC_SYSCALL);
		return 0;
	}
	fill_hdr(&rec->hdr, HEAL_REC_SYSCALL, target_id, tgid, (__u32)bpf_get_current_pid_tgid());
	rec->count = count;
	rec->ret = ret;
	rec->nr = nr;
	rec->err = err;
	rec->fd = -1;
	rec->addr_family = HEAL_ADDR_NONE;
	rec->addr_port = 0;
	__builtin_memset(rec->addr, 0, sizeof(rec->addr));
	rec->path[0] = 0;
	rec->path2[0] = 0;

	cap = bpf_map_lookup_elem(&sys_capture, &nr);
	if (cap) {
		if (cap->path_arg)
			bpf_probe_read_user_str(rec->path, sizeof(rec->path),
						(void *)syscall_arg(regs, cap->path_arg));
		if (cap->path2_arg)
			bpf_probe_read_user_str(rec->path2, sizeof(rec->path2),
						(void *)syscall_arg(regs, cap->path2_arg));
		if (cap->fd_arg)
			rec->fd = (__s32)syscall_arg(regs, cap->fd_arg);
		if (cap->sockaddr_arg)
			capture_sockaddr(rec, syscall_arg(regs, cap->sockaddr_arg),
					 syscall_arg(regs, cap->sockaddr_arg + 1));
	}
	bpf_ringbuf_submit(rec, 0);
	return 0;
}
