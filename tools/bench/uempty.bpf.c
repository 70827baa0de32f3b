// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The uprobe floor: an empty uretprobe; tools/bench/floor attaches it to BINARY:FUNC. */
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

SEC("uretprobe")
int empty_uretprobe(void *ctx)
{
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
