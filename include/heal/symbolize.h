/* SPDX-License-Identifier: MIT */
/*
 * Symbolizer: user stack frames (build id + file offset, as the kernel
 * records them) -> function + offset, file:line (libdw), module. Works after
 * the process is gone: binaries are found by build id from an index filled
 * while processes live, and from /usr/lib/debug/.build-id.
 * Not thread-safe: one owner thread (heald's worker).
 */
#ifndef HEAL_SYMBOLIZE_H
#define HEAL_SYMBOLIZE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "heal/events.h"

struct symbolizer;

struct heal_sym {
	char func[128];   /* "" when unknown */
	uint64_t offset;  /* from the start of func */
	char file[256];   /* "" when no debug info */
	int line;         /* 0 when unknown */
	char module[256]; /* path of the binary, or "build-id:<hex>" when not found */
	uint64_t addr;    /* file offset (build-id frames) or raw ip */
};

struct symbolizer *symbolizer__new(void);
void symbolizer__free(struct symbolizer *s);
/* Index an ELF file by its build id (no-op when it has none). 0 or -errno. */
int symbolizer__add_file(struct symbolizer *s, const char *path);
/* Index every file-backed executable mapping of a live process. 0 or -errno. */
int symbolizer__add_pid(struct symbolizer *s, pid_t pid);
/*
 * Resolve one frame. is_return_addr: the frame is a return address (not the
 * first frame), so line lookup uses addr - 1. Always fills *out (module at
 * least); returns 0 when a function was found, -ENOENT otherwise.
 */
int symbolizer__resolve(struct symbolizer *s, const struct heal_frame *frame, int is_return_addr,
			struct heal_sym *out);

/*
 * Unwind a crash with DWARF CFI (.eh_frame/.debug_frame) from the registers
 * and stack bytes in rec, for code built without frame pointers. Module load
 * addresses come from the memory map remembered by symbolizer__add_pid() for
 * rec->hdr.tgid (the process is usually gone by now). Fills up to max frames
 * (frame 0 is the faulting ip), each resolved like symbolizer__resolve().
 * exe (may be NULL): the process's binary, placed by rec->start_code when the
 * remembered map lacks it (a process that crashed before it could be read).
 * Returns the number of frames, -ENOENT when nothing places any module, other
 * -errno on failure.
 */
int symbolizer__unwind(struct symbolizer *s, const struct heal_rec_crash *rec, const char *exe,
		       struct heal_sym *out, int max);

#endif /* HEAL_SYMBOLIZE_H */
