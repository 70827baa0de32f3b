/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Maps and helpers every heal BPF object shares. Each object declares them;
 * heald creates them once (first object) and hands the same fds to the
 * others with bpf_map__reuse_fd(), so one ring buffer carries every record.
 */
#ifndef HEAL_COMMON_BPF_H
#define HEAL_COMMON_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "heal/events.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* One ring buffer for every record kind; size set by heald before load. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} events SEC(".maps");

/* tgid -> target: the only processes any program looks at. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct heal_watch);
} watched SEC(".maps");

/*
 * tgid -> target id, one byte per tgid (8 to a word, 0 = not watched): the
 * syscall hook's pre-filter. Every failing syscall of every task on the host
 * asks "is this process watched?"; an inlined array load answers in a few ns
 * where the hash above costs a hash computation and bucket walk. heald sizes
 * it from kernel.pid_max and writes it through mmap; tgids past its end
 * (pid_max raised later) fall back to the hash. Kept in step with `watched`.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u64);
} watched_tgid SEC(".maps");

/* Records that did not fit in the ring buffer, per record type. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, HEAL_REC_MAX);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

/* Other counters heald reports (enum heal_stat). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, HEAL_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

static __always_inline void count_drop(__u32 type)
{
	__u64 *v = bpf_map_lookup_elem(&drops, &type);

	if (v)
		*v += 1; /* per-CPU slot: no atomics needed */
}

static __always_inline void count_stat(__u32 stat)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &stat);

	if (v)
		*v += 1;
}

/* The target of process tgid, or 0: the early return for everyone else. */
static __always_inline __u32 current_target(__u32 tgid)
{
	__u32 word = tgid / 8;
	__u8 *b = bpf_map_lookup_elem(&watched_tgid, &word);
	struct heal_watch *w;

	if (b)
		return b[tgid % 8];
	w = bpf_map_lookup_elem(&watched, &tgid); /* past pid_max at load */
	return w ? w->target_id : 0;
}

/* The watch entry of the current process, or NULL: the early return for everyone else. */
static __always_inline struct heal_watch *current_watch(__u32 *tgid_out, __u32 *tid_out)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;

	*tgid_out = tgid;
	*tid_out = (__u32)id;
	return bpf_map_lookup_elem(&watched, &tgid);
}

/*
 * Failure samples (syscall, API) may fill half the ring at most: the other
 * half stays free for the records a storm must not crowd out: process
 * lifecycle, exits, crashes, OOM kills (an exit lost is a process whose
 * exact counts are never reported). Only the sampling path asks.
 */
static __always_inline bool sample_room(void)
{
	return bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) <
	       bpf_ringbuf_query(&events, BPF_RB_RING_SIZE) / 2;
}

/* Byte stores: the neighbours in the word belong to other tgids and stay untouched. */
static __always_inline void mark_watched(__u32 tgid, __u32 target_id)
{
	__u32 word = tgid / 8;
	__u8 *w = bpf_map_lookup_elem(&watched_tgid, &word);

	if (w)
		w[tgid % 8] = (__u8)target_id;
}

static __always_inline void fill_hdr(struct heal_rec_hdr *h, __u32 type, __u32 target_id,
				     __u32 tgid, __u32 tid)
{
	h->ts_ns = bpf_ktime_get_boot_ns();
	h->type = type;
	h->target_id = target_id;
	h->tgid = tgid;
	h->tid = tid;
	bpf_get_current_comm(h->comm, sizeof(h->comm));
}

#endif /* HEAL_COMMON_BPF_H */
