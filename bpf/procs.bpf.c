// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Which processes belong to a target, kept current in the kernel: children
 * inherit their parent's target at fork, matching executables join at exec,
 * and a process leaves at exit. Also reports failing exits and OOM kills.
 */
#include "common.bpf.h"

/* Set by heald when any target finds its processes by exe, comm or cgroup. */
const volatile __u32 has_match = 0;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, HEAL_TARGET_MAX * 4);
	__type(key, struct heal_exe_key);
	__type(value, struct heal_watch);
} exe_match SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, HEAL_TARGET_MAX);
	__type(key, char[HEAL_COMM_LEN]);
	__type(value, struct heal_watch);
} comm_match SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, HEAL_TARGET_MAX);
	__type(key, __u64);
	__type(value, struct heal_watch);
} cgroup_match SEC(".maps");

static __always_inline void emit_proc(__u32 kind, const struct heal_watch *w, __u32 tgid,
				      __u32 tid, __u32 parent, const char *filename)
{
	struct heal_rec_proc *rec;

	rec = bpf_ringbuf_reserve(&events, sizeof(*rec), 0);
	if (!rec) {
		count_drop(HEAL_REC_PROC);
		return;
	}
	fill_hdr(&rec->hdr, HEAL_REC_PROC, w->target_id, tgid, tid);
	rec->kind = kind;
	rec->parent_tgid = parent;
	rec->filename[0] = 0;
	if (filename)
		bpf_probe_read_kernel_str(rec->filename, sizeof(rec->filename), filename);
	bpf_ringbuf_submit(rec, 0);
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(sched_process_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 ptgid = BPF_CORE_READ(parent, tgid);
	__u32 ctgid = BPF_CORE_READ(child, tgid);
	struct heal_watch *w;

	if (ctgid == ptgid) /* a new thread, already covered by its tgid */
		return 0;
	w = bpf_map_lookup_elem(&watched, &ptgid);
	if (!w)
		return 0;
	if (bpf_map_update_elem(&watched, &ctgid, w, BPF_ANY)) {
		count_stat(HEAL_STAT_WATCH_TABLE_FULL);
		return 0;
	}
	mark_watched(ctgid, w->target_id);
	emit_proc(HEAL_PROC_FORK, w, ctgid, BPF_CORE_READ(child, pid), ptgid, NULL);
	return 0;
}

static __always_inline struct heal_watch *match_exec(struct task_struct *p, struct linux_binprm *bprm)
{
	struct heal_exe_key ek = {};
	char comm[HEAL_COMM_LEN] = {};
	struct heal_watch *w;
	__u64 cgid;

	ek.ino = BPF_CORE_READ(bprm, file, f_inode, i_ino);
	ek.dev = BPF_CORE_READ(bprm, file, f_inode, i_sb, s_dev);
	w = bpf_map_lookup_elem(&exe_match, &ek);
	if (w)
		return w;
	bpf_probe_read_kernel_str(comm, sizeof(comm), BPF_CORE_READ(p, comm));
	w = bpf_map_lookup_elem(&comm_match, comm);
	if (w)
		return w;
	cgid = bpf_get_current_cgroup_id();
	return bpf_map_lookup_elem(&cgroup_match, &cgid);
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(sched_process_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	__u32 tgid = BPF_CORE_READ(p, tgid);
	struct heal_watch *w, copy;

	w = bpf_map_lookup_elem(&watched, &tgid);
	if (!w) {
		if (!has_match)
			return 0;
		w = match_exec(p, bprm);
		if (!w)
			return 0;
		copy = *w;
		if (bpf_map_update_elem(&watched, &tgid, &copy, BPF_ANY)) {
			count_stat(HEAL_STAT_WATCH_TABLE_FULL);
			return 0;
		}
		mark_watched(tgid, copy.target_id);
		w = &copy;
	}
	emit_proc(HEAL_PROC_EXEC, w, tgid, BPF_CORE_READ(p, pid), 0, BPF_CORE_READ(bprm, filename));
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(sched_process_exit, struct task_struct *p)
{
	__u32 tgid = BPF_CORE_READ(p, tgid), tid = BPF_CORE_READ(p, pid);
	struct heal_rec_exit *rec;
	struct heal_watch *w, copy;
	__u32 code;

	w = bpf_map_lookup_elem(&watched, &tgid);
	if (!w)
		return 0;
	/* Only the last thread out ends the process (signal->live counts live threads). */
	if (BPF_CORE_READ(p, signal, live.counter) != 0)
		return 0;
	copy = *w;
	code = BPF_CORE_READ(p, exit_code);
	if (code != 0 && (copy.detect & HEAL_DETECT_EXITS)) {
		rec = bpf_ringbuf_reserve(&events, sizeof(*rec), 0);
		if (rec) {
			fill_hdr(&rec->hdr, HEAL_REC_EXIT, copy.target_id, tgid, tid);
			rec->exit_code = code;
			rec->pad = 0;
			bpf_ringbuf_submit(rec, 0);
		} else {
			count_drop(HEAL_REC_EXIT);
		}
	}
	emit_proc(HEAL_PROC_EXIT, &copy, tgid, tid, 0, NULL);
	mark_watched(tgid, 0);
	bpf_map_delete_elem(&watched, &tgid);
	return 0;
}

SEC("tp_btf/mark_victim")
int BPF_PROG(mark_victim, struct task_struct *task)
{
	__u32 tgid = BPF_CORE_READ(task, tgid);
	struct heal_rec_oom *rec;
	struct mm_struct *mm;
	struct heal_watch *w;

	w = bpf_map_lookup_elem(&watched, &tgid);
	if (!w || !(w->detect & HEAL_DETECT_OOM))
		return 0;
	rec = bpf_ringbuf_reserve(&events, sizeof(*rec), 0);
	if (!rec) {
		count_drop(HEAL_REC_OOM);
		return 0;
	}
	/* Runs in the allocating task's context: describe the victim, not current. */
	fill_hdr(&rec->hdr, HEAL_REC_OOM, w->target_id, tgid, BPF_CORE_READ(task, pid));
	bpf_probe_read_kernel_str(rec->hdr.comm, sizeof(rec->hdr.comm), BPF_CORE_READ(task, comm));
	mm = BPF_CORE_READ(task, mm);
	rec->total_vm_pages = BPF_CORE_READ(mm, total_vm);
	/* The same approximate per-cpu counter sums the kernel's own OOM report prints. */
	rec->file_rss_pages = BPF_CORE_READ(mm, rss_stat[0].count);
	rec->anon_rss_pages = BPF_CORE_READ(mm, rss_stat[1].count);
	rec->shmem_rss_pages = BPF_CORE_READ(mm, rss_stat[3].count);
	rec->pgtables_bytes = BPF_CORE_READ(mm, pgtables_bytes.counter);
	rec->uid = BPF_CORE_READ(task, cred, uid.val);
	rec->oom_score_adj = BPF_CORE_READ(task, signal, oom_score_adj);
	bpf_ringbuf_submit(rec, 0);
	return 0;
}
