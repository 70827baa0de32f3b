// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Fatal signals of watched processes, seen when the signal is delivered:
 * the task is still in its faulting user context, so the user stack taken
 * here is the crash's. Frames are recorded as build id + file offset, which
 * heald can symbolize after the process is gone.
 */
#include "common.bpf.h"

#define SIG_DFL_HANDLER 0

static __always_inline bool fatal_signal(int sig)
{
	switch (sig) {
	case 4:  /* SIGILL */
	case 5:  /* SIGTRAP */
	case 6:  /* SIGABRT */
	case 7:  /* SIGBUS */
	case 8:  /* SIGFPE */
	case 11: /* SIGSEGV */
	case 31: /* SIGSYS */
		return true;
	default:
		return false;
	}
}

static __always_inline bool has_fault_addr(int sig)
{
	return sig == 4 || sig == 5 || sig == 7 || sig == 8 || sig == 11;
}

/* User registers (DWARF order) and the top of the user stack, for unwinding without frame pointers. */
static __always_inline void dump_user_state(struct heal_rec_crash *rec)
{
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	__u64 sp;

	rec->regs[0] = BPF_CORE_READ(regs, ax);
	rec->regs[1] = BPF_CORE_READ(regs, dx);
	rec->regs[2] = BPF_CORE_READ(regs, cx);
	rec->regs[3] = BPF_CORE_READ(regs, bx);
	rec->regs[4] = BPF_CORE_READ(regs, si);
	rec->regs[5] = BPF_CORE_READ(regs, di);
	rec->regs[6] = BPF_CORE_READ(regs, bp);
	rec->regs[7] = BPF_CORE_READ(regs, sp);
	rec->regs[8] = BPF_CORE_READ(regs, r8);
	rec->regs[9] = BPF_CORE_READ(regs, r9);
	rec->regs[10] = BPF_CORE_READ(regs, r10);
	rec->regs[11] = BPF_CORE_READ(regs, r11);
	rec->regs[12] = BPF_CORE_READ(regs, r12);
	rec->regs[13] = BPF_CORE_READ(regs, r13);
	rec->regs[14] = BPF_CORE_READ(regs, r14);
	rec->regs[15] = BPF_CORE_READ(regs, r15);
	rec->regs[16] = BPF_CORE_READ(regs, ip);
	rec->start_code = BPF_CORE_READ(bpf_get_current_task_btf(), mm, start_code);
	sp = rec->regs[7];
	rec->stack_dump_addr = sp;
	rec->pad = 0;
	/* A read that crosses the top of the stack mapping fails whole: retry shorter. */
	if (!bpf_probe_read_user(rec->stack_dump, HEAL_STACK_DUMP, (void *)sp))
		rec->stack_dump_len = HEAL_STACK_DUMP;
	else if (!bpf_probe_read_user(rec->stack_dump, HEAL_STACK_DUMP / 2, (void *)sp))
		rec->stack_dump_len = HEAL_STACK_DUMP / 2;
	else if (!bpf_probe_read_user(rec->stack_dump, HEAL_STACK_DUMP / 4, (void *)sp))
		rec->stack_dump_len = HEAL_STACK_DUMP / 4;
	else if (!bpf_probe_read_user(rec->stack_dump, HEAL_STACK_DUMP / 8, (void *)sp))
		rec->stack_dump_len = HEAL_STACK_DUMP / 8;
	else
		rec->stack_dump_len = 0;
}

SEC("tp_btf/signal_deliver")
int BPF_PROG(signal_deliver, int sig, struct kernel_siginfo *info, struct k_sigaction *ka)
{
	struct heal_rec_crash *rec;
	struct heal_watch *w;
	__u32 tgid, tid;

	if (!fatal_signal(sig))
		return 0;
	w = current_watch(&tgid, &tid);
	if (!w || !(w->detect & HEAL_DETECT_CRASHES))
		return 0;
	/* A handler that catches the signal is not a crash (yet): it may re-raise with SIG_DFL. */
	if ((__u64)BPF_CORE_READ(ka, sa.sa_handler) != SIG_DFL_HANDLER)
		return 0;

	rec = bpf_ringbuf_reserve(&events, sizeof(*rec), 0);
	if (!rec) {
		count_drop(HEAL_REC_CRASH);
		return 0;
	}
	fill_hdr(&rec->hdr, HEAL_REC_CRASH, w->target_id, tgid, tid);
	rec->signal = sig;
	rec->si_code = BPF_CORE_READ(info, si_code);
	rec->fault_addr = has_fault_addr(sig) ? (__u64)BPF_CORE_READ(info, _sifields._sigfault._addr) : 0;
	rec->stack_bytes = bpf_get_stack(ctx, rec->frames, sizeof(rec->frames),
					 BPF_F_USER_STACK | BPF_F_USER_BUILD_ID);
	dump_user_state(rec);
	bpf_ringbuf_submit(rec, 0);
	return 0;
}
