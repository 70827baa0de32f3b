// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Failed API returns in unmodified binaries: a uprobe at entry keeps the
 * argument to capture (its raw value, in the calling thread's task storage),
 * a uretprobe evaluates the rule's predicate on the return value in the
 * kernel, so only failures cross the ring buffer, and only a failure reads
 * the string behind the pointer. USDT probes fire when their predicate over
 * the probe's arguments holds. The attach cookie is the rule's index in
 * api_specs. Every call of a probed function runs these, so their path is
 * costed (BENCHMARKS.md): no hash map on a call that succeeds.
 */
#include "common.bpf.h"
#include <bpf/usdt.bpf.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, HEAL_API_MAX);
	__type(key, __u32);
	__type(value, struct heal_api_spec);
} api_specs SEC(".maps");

/* Per thread, freed with it (a call left by longjmp or a dying thread never
 * returns through its uretprobe). Slot api_id % HEAL_API_SLOTS: nested calls
 * of two probed functions keep both arguments unless their ids collide. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct heal_api_calls);
} api_calls SEC(".maps");

/* Scratch for building an entry on the per-CPU side of the 512-byte stack limit. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct heal_api_arg);
} api_scratch SEC(".maps");

static __always_inline bool pred_holds(const struct heal_api_spec *s, __s64 v)
{
	switch (s->op) {
	case HEAL_OP_GE: return v >= s->value;
	case HEAL_OP_GT: return v > s->value;
	case HEAL_OP_LE: return v <= s->value;
	case HEAL_OP_LT: return v < s->value;
	case HEAL_OP_EQ: return v == s->value;
	case HEAL_OP_NE: return v != s->value;
	default: return true;
	}
}

/* The spec for this attachment, if the current process belongs to the rule's target. */
static __always_inline struct heal_api_spec *spec_for_current(__u32 api_id, __u32 *tgid, __u32 *tid)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct heal_api_spec *s;
	__u32 target_id;

	*tgid = id >> 32;
	*tid = (__u32)id;
	target_id = current_target(*tgid);
	if (!target_id)
		return NULL;
	s = bpf_map_lookup_elem(&api_specs, &api_id);
	if (!s || s->target_id != target_id)
		return NULL;
	return s;
}

/* CORE reads: a switch over direct ctx loads gets merged into a variable-offset load the verifier refuses */
static __always_inline __u64 uprobe_arg(struct pt_regs *ctx, __u32 idx)
{
	switch (idx) {
	case 1: return PT_REGS_PARM1_CORE(ctx);
	case 2: return PT_REGS_PARM2_CORE(ctx);
	case 3: return PT_REGS_PARM3_CORE(ctx);
	case 4: return PT_REGS_PARM4_CORE(ctx);
	case 5: return PT_REGS_PARM5_CORE(ctx);
	default: return 0; /* config limits uprobe captures to the register arguments */
	}
}

static __always_inline void capture(struct heal_api_arg *a, __u32 kind, __u64 raw)
{
	if (kind == HEAL_ARG_STRING) {
		a->arg_int = 0;
		if (bpf_probe_read_user_str(a->arg_str, sizeof(a->arg_str), (void *)raw) < 0)
			a->arg_str[0] = 0;
	} else {
		a->arg_int = (__s64)raw;
		a->arg_str[0] = 0;
	}
}

static __always_inline void emit_api(const struct heal_api_spec *s, __u32 api_id, __u32 tgid,
				     __u32 tid, __s64 ret, const struct heal_api_arg *a)
{
	struct heal_rec_api *rec;

	rec = sample_room() ? bpf_ringbuf_reserve(&events, sizeof(*rec), 0) : NULL;
	if (!rec) {
		count_drop(HEAL_REC_API);
		return;
	}
	fill_hdr(&rec->hdr, HEAL_REC_API, s->target_id, tgid, tid);
	rec->ret = ret;
	rec->api_id = api_id;
	rec->arg_kind = a ? s->arg_kind : HEAL_ARG_NONE;
	rec->arg_int = a ? a->arg_int : 0;
	rec->arg_str[0] = 0;
	if (a && s->arg_kind == HEAL_ARG_STRING)
		__builtin_memcpy(rec->arg_str, a->arg_str, sizeof(rec->arg_str));
	bpf_ringbuf_submit(rec, 0);
}

SEC("uprobe")
int BPF_KPROBE(api_entry)
{
	__u32 api_id = (__u32)bpf_get_attach_cookie(ctx), tgid, tid;
	struct heal_api_calls *calls;
	struct heal_api_spec *s;
	struct heal_api_call *c;

	s = spec_for_current(api_id, &tgid, &tid);
	if (!s || s->arg_kind == HEAL_ARG_NONE)
		return 0;
	calls = bpf_task_storage_get(&api_calls, bpf_get_current_task_btf(), 0,
				     BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!calls)
		return 0;
	c = &calls->slot[api_id % HEAL_API_SLOTS];
	c->api_id = api_id;
	c->live = 1;
	c->raw = uprobe_arg(ctx, s->arg_index);
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(api_return, long ret)
{
	__u32 api_id = (__u32)bpf_get_attach_cookie(ctx), tgid, tid, zero = 0;
	struct heal_api_calls *calls;
	struct heal_api_arg *a = NULL;
	struct heal_api_spec *s;
	struct heal_api_call *c;
	__s64 v;

	s = spec_for_current(api_id, &tgid, &tid);
	if (!s)
		return 0;
	v = s->ret_bits == 32 ? (__s64)(__s32)ret : (__s64)ret;
	if (!pred_holds(s, v))
		return 0;
	/* A failure: the argument kept at entry, read now (strings: the caller's memory). */
	if (s->arg_kind != HEAL_ARG_NONE) {
		calls = bpf_task_storage_get(&api_calls, bpf_get_current_task_btf(), 0, 0);
		if (calls) {
			c = &calls->slot[api_id % HEAL_API_SLOTS];
			if (c->live && c->api_id == api_id) {
				c->live = 0;
				a = bpf_map_lookup_elem(&api_scratch, &zero);
				if (a)
					capture(a, s->arg_kind, c->raw);
			}
		}
	}
	emit_api(s, api_id, tgid, tid, v, a);
	return 0;
}

SEC("usdt")
int BPF_USDT(api_usdt)
{
	__u32 api_id = (__u32)bpf_usdt_cookie(ctx), tgid, tid, zero = 0;
	struct heal_api_spec *s;
	struct heal_api_arg *a;
	long v = 0, raw = 0;

	s = spec_for_current(api_id, &tgid, &tid);
	if (!s)
		return 0;
	if (s->pred_arg) {
		if (bpf_usdt_arg(ctx, s->pred_arg - 1, &v))
			return 0;
		if (!pred_holds(s, v))
			return 0;
	}
	if (s->arg_kind == HEAL_ARG_NONE) {
		emit_api(s, api_id, tgid, tid, v, NULL);
		return 0;
	}
	a = bpf_map_lookup_elem(&api_scratch, &zero);
	if (!a || bpf_usdt_arg(ctx, s->arg_index - 1, &raw))
		return 0;
	capture(a, s->arg_kind, raw);
	emit_api(s, api_id, tgid, tid, v, a);
	return 0;
}
