/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The one definition of every record that crosses the ring buffer, and of
 * the map layouts heald fills. Shared by bpf/ and user/: data only,
 * fixed-width fields, largest first, no pointers.
 */
#ifndef HEAL_EVENTS_H
#define HEAL_EVENTS_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define HEAL_COMM_LEN 16
#define HEAL_PATH_LEN 256
#define HEAL_ARG_STR_LEN 128
#define HEAL_STACK_MAX 48
#define HEAL_BUILD_ID_LEN 20
#define HEAL_SYSCALL_MAX 512   /* size of the per-syscall capture table */
#define HEAL_ERRNO_MAX 192     /* errnos above this are matched only by "*" */
#define HEAL_ERRNO_WORDS (HEAL_ERRNO_MAX / 64)
#define HEAL_SYSCALL_ANY 0xffffffffu /* config's "syscall": "*" */
#define HEAL_SYSCALL_ROW (HEAL_SYSCALL_MAX + 1) /* sys_rules per target: each nr, then "*" */
#define HEAL_STACK_DUMP 8192  /* bytes of user stack kept for DWARF unwinding */
#define HEAL_REGS_N 17         /* x86-64 DWARF registers 0..16: rax rdx rcx rbx rsi rdi rbp rsp r8-r15 rip */
#define HEAL_API_MAX 64              /* uprobe/USDT rules across all targets */
#define HEAL_TARGET_MAX 64

/* Every record starts with one of these. */
enum heal_rec_type {
	HEAL_REC_SYSCALL = 1,
	HEAL_REC_CRASH = 2,
	HEAL_REC_EXIT = 3,
	HEAL_REC_OOM = 4,
	HEAL_REC_API = 5,
	HEAL_REC_PROC = 6, /* membership change: fork, exec, exit of a watched tgid */
	HEAL_REC_MAX = 7,
};

/* Per-target detection switches, kept in the watched map. */
enum heal_detect_flags {
	HEAL_DETECT_SYSCALLS = 1 << 0,
	HEAL_DETECT_CRASHES = 1 << 1,
	HEAL_DETECT_EXITS = 1 << 2,
	HEAL_DETECT_OOM = 1 << 3,
	HEAL_DETECT_API = 1 << 4,
};

/* Header common to every record. */
struct heal_rec_hdr {
	__u64 ts_ns; /* bpf_ktime_get_boot_ns() */
	__u32 type;  /* enum heal_rec_type */
	__u32 target_id;
	__u32 tgid;
	__u32 tid;
	char comm[HEAL_COMM_LEN];
};

enum heal_addr_family {
	HEAL_ADDR_NONE = 0,
	HEAL_ADDR_INET = 2,  /* AF_INET */
	HEAL_ADDR_INET6 = 10, /* AF_INET6 */
	HEAL_ADDR_UNIX = 1,  /* AF_UNIX, path in rec.path */
};

struct heal_rec_syscall {
	struct heal_rec_hdr hdr;
	__u64 count; /* exact in-kernel count for (tgid, syscall, errno) so far */
	__s64 ret;
	__u32 nr;
	__u32 err; /* positive errno */
	__s32 fd;  /* -1 when not captured */
	__u16 addr_family;
	__u16 addr_port; /* host byte order */
	__u8 addr[16];
	char path[HEAL_PATH_LEN];
	char path2[HEAL_PATH_LEN];
};

/* Mirrors struct bpf_stack_build_id (UAPI). */
struct heal_frame {
	__s32 status; /* 0 empty, 1 build id + file offset valid, 2 ip only */
	__u8 build_id[HEAL_BUILD_ID_LEN];
	__u64 offset_or_ip;
};

struct heal_rec_crash {
	struct heal_rec_hdr hdr;
	__u64 fault_addr;
	__s64 stack_bytes; /* bytes of frames filled, or a negative errno */
	__s32 signal;
	__s32 si_code;
	struct heal_frame frames[HEAL_STACK_MAX];
	/*
	 * For binaries without frame pointers (most of a distribution's
	 * libraries) the frames above stop early; these let heald unwind with
	 * DWARF CFI instead: user registers at the fault and the stack from sp up.
	 */
	__u64 regs[HEAL_REGS_N];
	__u64 stack_dump_addr; /* user address of stack_dump[0] (the sp) */
	__u64 start_code;      /* mm->start_code: places the main binary when no memory map was kept */
	__u32 stack_dump_len;
	__u32 pad;
	__u8 stack_dump[HEAL_STACK_DUMP];
};

struct heal_rec_exit {
	struct heal_rec_hdr hdr;
	__u32 exit_code; /* wait(2) status word */
	__u32 pad;
};

struct heal_rec_oom {
	struct heal_rec_hdr hdr; /* tgid/tid/comm: the victim */
	__u64 total_vm_pages;
	__u64 anon_rss_pages;
	__u64 file_rss_pages;
	__u64 shmem_rss_pages;
	__u64 pgtables_bytes;
	__u32 uid;
	__s32 oom_score_adj;
};

enum heal_arg_kind {
	HEAL_ARG_NONE = 0,
	HEAL_ARG_INT = 1,
	HEAL_ARG_STRING = 2,
};

struct heal_rec_api {
	struct heal_rec_hdr hdr;
	__s64 ret;
	__s64 arg_int;
	__u32 api_id; /* index into the api_specs map: which rule fired */
	__u32 arg_kind;
	char arg_str[HEAL_ARG_STR_LEN];
};

enum heal_proc_kind {
	HEAL_PROC_FORK = 1,
	HEAL_PROC_EXEC = 2,
	HEAL_PROC_EXIT = 3,
};

struct heal_rec_proc {
	struct heal_rec_hdr hdr;
	__u32 kind; /* enum heal_proc_kind */
	__u32 parent_tgid;
	char filename[HEAL_PATH_LEN]; /* exec: the new image */
};

/* ---- maps heald fills before and after load ---- */

/* watched: tgid -> this */
struct heal_watch {
	__u32 target_id;
	__u32 detect; /* enum heal_detect_flags */
};

/* exe_match: a target's executable, matched at exec by inode */
struct heal_exe_key {
	__u64 dev; /* kernel dev_t of the superblock */
	__u64 ino;
};

/* sys_rules[target_id * HEAL_SYSCALL_ROW + nr]; nr HEAL_SYSCALL_MAX holds "*" */
struct heal_sys_rule {
	__u64 errno_mask[HEAL_ERRNO_WORDS];
	__u64 window_ns; /* threshold window; 0 = no threshold */
	__u32 active;    /* 0: no rule at this slot */
	__u32 any_errno;
	__u32 threshold; /* failures within window_ns before a sample is sent */
	__u32 pad;
};

/* sys_capture: syscall nr -> which arguments to capture (argument index + 1; 0 none) */
struct heal_sys_capture {
	__u8 path_arg;
	__u8 path2_arg;
	__u8 fd_arg;
	__u8 sockaddr_arg;
};

/* sys_counts: (tgid, nr, errno) -> exact count and sampling state */
struct heal_count_key {
	__u32 tgid;
	__u32 nr;
	__u32 err;
	__u32 target_id;
};

struct heal_count {
	__u64 count;
	__u64 win_start_ns; /* threshold window */
	__u64 win_count;
	__u64 sample_start_ns; /* rate-limit second */
	__u64 samples;         /* samples sent in the current rate-limit second */
	__u64 epoch;           /* when the entry was made: tells a reused tgid's entry apart */
};

/*
 * count_cache, one per CPU: the (tgid, syscall, errno) this CPU last counted
 * after its samples for the second were used up. Until that second ends its
 * repeats are counted here, a per-CPU add instead of the shared hash, and
 * moved into the sys_counts entry (if it still has this epoch) when the CPU
 * counts anything else. heald adds the pending counts when it reads the table.
 */
struct heal_count_cache {
	struct heal_count_key key;
	__u64 epoch;       /* of the sys_counts entry the pending counts belong to */
	__u64 pending;     /* counted here, not yet in the entry */
	__u64 quiet_until; /* the rate limiter's clock: no sample for key before this */
};

enum heal_pred_op {
	HEAL_OP_NONE = 0, /* always true */
	HEAL_OP_GE,
	HEAL_OP_GT,
	HEAL_OP_LE,
	HEAL_OP_LT,
	HEAL_OP_EQ,
	HEAL_OP_NE,
};

/* api_specs: rule index (the attach cookie) -> predicate and capture */
struct heal_api_spec {
	__s64 value;
	__u32 op;        /* enum heal_pred_op on the return value (uprobe) or an argument (USDT) */
	__u32 ret_bits;  /* 32: int return, sign-extended from the low 32 bits; 64: long */
	__u32 arg_kind;  /* enum heal_arg_kind */
	__u32 arg_index; /* 1-based */
	__u32 pred_arg;  /* USDT: 1-based argument the predicate reads; 0 = none */
	__u32 target_id;
};

/* api_calls (task storage): the argument to capture, kept at function entry */
#define HEAL_API_SLOTS 4
struct heal_api_call {
	__u64 raw; /* the argument register: an int, or the string's address */
	__u32 api_id;
	__u32 live;
};

struct heal_api_calls {
	struct heal_api_call slot[HEAL_API_SLOTS];
};

struct heal_api_arg {
	__s64 arg_int;
	char arg_str[HEAL_ARG_STR_LEN];
};

/* stats: per-CPU counters heald reads and reports */
enum heal_stat {
	HEAL_STAT_COUNT_TABLE_FULL = 0, /* a (tgid, syscall, errno) could not be counted */
	HEAL_STAT_SAMPLES_SUPPRESSED,   /* failures counted but not sampled (rate limit) */
	HEAL_STAT_BELOW_THRESHOLD,      /* failures counted, threshold not reached yet */
	HEAL_STAT_WATCH_TABLE_FULL,     /* a child could not be added to its target */
	HEAL_STAT_MAX,
};

#endif /* HEAL_EVENTS_H */
