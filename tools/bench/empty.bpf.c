// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The floor: an empty program on heald's syscall hook (tp_btf/sys_exit). */
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

SEC("tp_btf/sys_exit")
int empty_sys_exit(void *ctx)
{
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
