// SPDX-License-Identifier: MIT
/*
 * The symbolizer resolves this test binary's own functions (a PIE on
 * Debian, so the offline load bias matters) and a libc function from
 * frames built the way the kernel builds them: build id + file offset.
 * It also unwinds a crash record of this process with DWARF CFI, through
 * libc's qsort (built without frame pointers).
 * Build with -g -fno-omit-frame-pointer.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

#include <cmocka.h>

#include "heal/symbolize.h"

/* ---- the functions the test symbolizes ---- */

/* noclone: gcc -O2 would otherwise symbolize a "target_fn.constprop.0". */
#ifdef __clang__
#define NOINLINE __attribute__((noinline))
#else
#define NOINLINE __attribute__((noinline, noclone))
#endif

static volatile uintptr_t g_ra;
static volatile int g_call_line;

static NOINLINE void record_ra(int line)
{
	g_call_line = line;
	g_ra = (uintptr_t)__builtin_return_address(0);
}

enum { TARGET_FIRST_LINE = __LINE__ + 1 };
static NOINLINE int target_fn(int x)
{
	int y = x * 3;

	record_ra(__LINE__);
	/* Keep the call out of tail position so its return address stays in target_fn. */
	__asm__ volatile("" ::: "memory");
	return y + 1;
}
enum { TARGET_LAST_LINE = __LINE__ - 1 };

/* ---- helpers ---- */

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Find the file mapping holding addr: its path and addr's offset in the file. */
static int find_mapping(uintptr_t addr, char *path, size_t size, uint64_t *file_off)
{
	char *line = NULL;
	size_t cap = 0;
	int err = -ENOENT;
	FILE *f;

	f = fopen("/proc/self/maps", "re");
	if (!f)
		return -errno;
	while (getline(&line, &cap, f) > 0) {
		unsigned long start, end, off;
		int at = -1;

		if (sscanf(line, "%lx-%lx %*s %lx %*x:%*x %*u %n", &start, &end, &off, &at) != 3 ||
		    at < 0)
			continue;
		if (addr < start || addr >= end || line[at] != '/')
			continue;
		line[strcspn(line, "\n")] = '\0';
		snprintf(path, size, "%s", line + at);
		*file_off = addr - start + off;
		err = 0;
		break;
	}
	free(line);
	fclose(f);
	return err;
}

/* Read the NT_GNU_BUILD_ID note with plain libelf, independently of the code under test. */
static int read_build_id(const char *path, unsigned char bid[HEAL_BUILD_ID_LEN])
{
	Elf_Scn *scn = NULL;
	int fd, err = -ENOENT;
	Elf *elf;

	elf_version(EV_CURRENT);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	elf = elf_begin(fd, ELF_C_READ, NULL);
	while (elf && err && (scn = elf_nextscn(elf, scn))) {
		GElf_Shdr shdr;
		Elf_Data *data;
		GElf_Nhdr nhdr;
		size_t off = 0, name_off, desc_off;

		if (!gelf_getshdr(scn, &shdr) || shdr.sh_type != SHT_NOTE)
			continue;
		data = elf_getdata(scn, NULL);
		while (data && (off = gelf_getnote(data, off, &nhdr, &name_off, &desc_off)) > 0) {
			if (nhdr.n_type == NT_GNU_BUILD_ID && nhdr.n_namesz == 4 &&
			    memcmp((char *)data->d_buf + name_off, "GNU", 4) == 0 &&
			    nhdr.n_descsz <= HEAL_BUILD_ID_LEN) {
				memset(bid, 0, HEAL_BUILD_ID_LEN);
				memcpy(bid, (char *)data->d_buf + desc_off, nhdr.n_descsz);
				err = 0;
				break;
			}
		}
	}
	elf_end(elf);
	close(fd);
	return err;
}

/* Build the frame the kernel would report for addr (BPF_F_USER_BUILD_ID). */
static void make_frame(uintptr_t addr, struct heal_frame *frame, char *path, size_t size)
{
	uint64_t off = 0;

	memset(frame, 0, sizeof(*frame));
	assert_int_equal(find_mapping(addr, path, size, &off), 0);
	assert_int_equal(read_build_id(path, frame->build_id), 0);
	frame->status = 1;
	frame->offset_or_ip = off;
}

static void self_path(char *path)
{
	assert_non_null(realpath("/proc/self/exe", path));
}

/* ---- crash records of this process ---- */

/*
 * A crash record of this process taken inside a qsort() comparator: the
 * registers at that point and the stack above them, as crash.bpf.c takes
 * them at a fatal signal.
 */
static struct heal_rec_crash g_rec;
static ucontext_t g_uc;
static volatile bool g_captured;
static volatile int g_qsort_line;

/* End of the mapping holding addr (the stack's top, for the stack pointer). */
static uint64_t mapping_end(uint64_t addr)
{
	unsigned long long start, end;
	char *line = NULL;
	size_t cap = 0;
	uint64_t found = 0;
	FILE *f = fopen("/proc/self/maps", "re");

	while (f && getline(&line, &cap, f) > 0) {
		if (sscanf(line, "%llx-%llx", &start, &end) == 2 && addr >= start && addr < end) {
			found = end;
			break;
		}
	}
	free(line);
	if (f)
		fclose(f);
	return found;
}

/* Raw stack bytes include other frames' redzones: read them past ASan, a word at a time. */
#ifdef __clang__
__attribute__((no_sanitize("address")))
#else
__attribute__((no_sanitize_address))
#endif
static NOINLINE void copy_stack(uint64_t sp, uint64_t len)
{
	const volatile uint64_t *src = (const volatile uint64_t *)(uintptr_t)sp;

	for (uint64_t i = 0; i < len / sizeof(uint64_t); i++) {
		uint64_t w = src[i];

		memcpy(g_rec.stack_dump + i * sizeof(w), &w, sizeof(w));
	}
}

static NOINLINE void capture_record(const ucontext_t *uc)
{
	/* DWARF numbering: rax rdx rcx rbx rsi rdi rbp rsp r8-r15 rip. */
	static const int greg[HEAL_REGS_N] = {
		REG_RAX, REG_RDX, REG_RCX, REG_RBX, REG_RSI, REG_RDI, REG_RBP, REG_RSP, REG_R8,
		REG_R9,	 REG_R10, REG_R11, REG_R12, REG_R13, REG_R14, REG_R15, REG_RIP,
	};
	uint64_t sp = (uint64_t)uc->uc_mcontext.gregs[REG_RSP], top = mapping_end(sp), len;

	memset(&g_rec, 0, sizeof(g_rec));
	g_rec.hdr.type = HEAL_REC_CRASH;
	g_rec.hdr.tgid = (uint32_t)getpid();
	g_rec.hdr.tid = (uint32_t)gettid();
	for (int i = 0; i < HEAL_REGS_N; i++)
		g_rec.regs[i] = (uint64_t)uc->uc_mcontext.gregs[greg[i]];
	len = top > sp && top - sp < HEAL_STACK_DUMP ? top - sp : HEAL_STACK_DUMP;
	g_rec.stack_dump_addr = sp;
	g_rec.stack_dump_len = (uint32_t)len;
	copy_stack(sp, len);
}

/* Called by libc's qsort, whose frames have no frame pointer to walk. */
static NOINLINE int capture_cmp(const void *a, const void *b)
{
	if (!g_captured) {
		g_captured = true;
		/* Registers as they are right after the call returns: the frame of this function. */
		getcontext(&g_uc);
		capture_record(&g_uc);
	}
	return *(const int *)a - *(const int *)b;
}

typedef void (*qsort_fn)(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *));

/* libc's own qsort: a sanitizer's interceptor would call the comparator itself first. */
static qsort_fn libc_qsort(void)
{
	void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
	qsort_fn fn;
	void *sym;

	assert_non_null(libc);
	sym = dlsym(libc, "qsort");
	assert_non_null(sym);
	memcpy(&fn, &sym, sizeof(fn));
	dlclose(libc); /* libc stays: the process links it */
	return fn;
}

static NOINLINE void capture_in_qsort(void)
{
	qsort_fn sort = libc_qsort();
	int v[2] = { 2, 1 };

	g_captured = false;
	g_qsort_line = __LINE__ + 1;
	sort(v, 2, sizeof(v[0]), capture_cmp);
	/* Keep qsort out of tail position so this frame stays on the stack. */
	__asm__ volatile("" ::: "memory");
	assert_true(g_captured);
}

/*
 * The child of test_unwind_libc_after_snapshot: a process that aborts in
 * libc, with the record taken in its SIGABRT handler as crash.bpf.c takes
 * it at signal delivery (the kernel's first frame included).
 */
static int g_child_fd = -1;

static void abort_handler(int sig, siginfo_t *si, void *ctx)
{
	const ucontext_t *uc = ctx;
	uint64_t rip = (uint64_t)uc->uc_mcontext.gregs[REG_RIP], off = 0;
	const char *p = (const char *)&g_rec;
	char path[PATH_MAX];
	size_t done = 0;

	capture_record(uc);
	if (find_mapping(rip, path, sizeof(path), &off) == 0 &&
	    read_build_id(path, g_rec.frames[0].build_id) == 0) {
		g_rec.frames[0].status = 1;
		g_rec.frames[0].offset_or_ip = off;
		g_rec.stack_bytes = sizeof(g_rec.frames[0]);
	}
	while (done < sizeof(g_rec)) {
		ssize_t n = write(g_child_fd, p + done, sizeof(g_rec) - done);

		if (n <= 0)
			_exit(1);
		done += (size_t)n;
	}
	_exit(0);
}

/* A constant: the child's globals do not reach the parent. */
enum { ABORT_LINE = __LINE__ + 3 };
static NOINLINE void abort_in_child(void)
{
	abort();
}

static int abort_child(int fd)
{
	struct sigaction sa = { .sa_sigaction = abort_handler, .sa_flags = SA_SIGINFO };

	g_child_fd = fd;
	if (sigaction(SIGABRT, &sa, NULL))
		return 1;
	abort_in_child();
	return 1;
}

/* ---- tests ---- */

static void test_free_null(void **state)
{
	symbolizer__free(NULL);
}

static void test_bad_args(void **state)
{
	struct symbolizer *s = symbolizer__new();
	struct heal_frame frame = { .status = 1 };
	struct heal_sym sym;
	char path[256];
	FILE *f;

	assert_non_null(s);
	assert_int_equal(symbolizer__add_file(s, "/nonexistent/heal-symbolize"), -ENOENT);
	assert_int_equal(symbolizer__add_file(s, NULL), -EINVAL);
	assert_int_equal(symbolizer__add_pid(s, 0), -EINVAL);
	assert_int_equal(symbolizer__add_pid(s, INT_MAX), -ESRCH);
	assert_int_equal(symbolizer__resolve(s, &frame, 0, NULL), -EINVAL);
	assert_int_equal(symbolizer__resolve(s, NULL, 0, &sym), -EINVAL);

	/* Not ELF: refused, not indexed. */
	snprintf(path, sizeof(path), "/tmp/heal-sym-%d.txt", (int)getpid());
	f = fopen(path, "we");
	assert_non_null(f);
	fputs("not an elf file\n", f);
	fclose(f);
	assert_int_equal(symbolizer__add_file(s, path), -ENOEXEC);
	unlink(path);
	symbolizer__free(s);
}

static void test_self_via_pid(void **state)
{
	struct symbolizer *s = symbolizer__new();
	uintptr_t fn = (uintptr_t)&target_fn;
	struct heal_frame frame;
	struct heal_sym sym;
	char path[PATH_MAX], exe[PATH_MAX];

	assert_non_null(s);
	self_path(exe);
	assert_int_equal(symbolizer__add_pid(s, getpid()), 0);

	/* The function's first byte, offset 0: the declarator's line or its brace's (compiler's
	 * choice). */
	make_frame(fn, &frame, path, sizeof(path));
	assert_string_equal(path, exe);
	assert_int_equal(symbolizer__resolve(s, &frame, 0, &sym), 0);
	assert_string_equal(sym.func, "target_fn");
	assert_int_equal(sym.offset, 0);
	assert_true(ends_with(sym.file, "test_symbolize.c"));
	assert_in_range(sym.line, TARGET_FIRST_LINE, TARGET_FIRST_LINE + 1);
	assert_string_equal(sym.module, exe);
	assert_int_equal(sym.addr, frame.offset_or_ip);

	/* A few bytes in: same function, the offset, a line inside the body. */
	make_frame(fn + 4, &frame, path, sizeof(path));
	assert_int_equal(symbolizer__resolve(s, &frame, 0, &sym), 0);
	assert_string_equal(sym.func, "target_fn");
	assert_int_equal(sym.offset, 4);
	assert_true(ends_with(sym.file, "test_symbolize.c"));
	assert_in_range(sym.line, TARGET_FIRST_LINE, TARGET_LAST_LINE);

	/* A return address: the line is the call's, the offset is the address's. */
	target_fn(1);
	assert_in_range(g_ra, fn + 1, fn + 4096);
	make_frame(g_ra, &frame, path, sizeof(path));
	assert_int_equal(symbolizer__resolve(s, &frame, 1, &sym), 0);
	assert_string_equal(sym.func, "target_fn");
	assert_int_equal(sym.offset, g_ra - fn);
	assert_true(ends_with(sym.file, "test_symbolize.c"));
	assert_int_equal(sym.line, g_call_line);

	/* Twice: served from the cache, same answer. */
	assert_int_equal(symbolizer__resolve(s, &frame, 1, &sym), 0);
	assert_int_equal(sym.line, g_call_line);

	/* Re-adding the same live process is a no-op. */
	assert_int_equal(symbolizer__add_pid(s, getpid()), 0);
	symbolizer__free(s);
}

static void test_libc(void **state)
{
	struct symbolizer *s = symbolizer__new();
	/* dlsym, not &getpid: a non-PIE build would hand out a PLT address. */
	uintptr_t fn = (uintptr_t)dlsym(RTLD_DEFAULT, "getpid");
	struct heal_frame frame;
	struct heal_sym sym;
	char path[PATH_MAX];

	assert_non_null(s);
	assert_true(fn != 0);
	assert_int_equal(symbolizer__add_pid(s, getpid()), 0);
	make_frame(fn, &frame, path, sizeof(path));
	assert_int_equal(symbolizer__resolve(s, &frame, 0, &sym), 0);
	/* glibc exports getpid as a weak alias of __getpid: either name is right. */
	assert_non_null(strstr(sym.func, "getpid"));
	assert_int_equal(sym.offset, 0);
	assert_non_null(strstr(sym.module, "libc"));
	symbolizer__free(s);
}

/* The process is gone: only the index (add_file) knows where the binary is. */
static void test_add_file_only(void **state)
{
	struct symbolizer *s = symbolizer__new();
	struct heal_frame frame;
	struct heal_sym sym;
	char path[PATH_MAX], exe[PATH_MAX];

	assert_non_null(s);
	self_path(exe);
	make_frame((uintptr_t)&target_fn + 4, &frame, path, sizeof(path));

	/* Not indexed yet: only the build id is known. */
	assert_int_equal(symbolizer__resolve(s, &frame, 0, &sym), -ENOENT);
	assert_true(strncmp(sym.module, "build-id:", 9) == 0);

	assert_int_equal(symbolizer__add_file(s, exe), 0);
	assert_int_equal(symbolizer__add_file(s, exe), 0);
	/* The earlier miss must not stick once the index knows the file. */
	assert_int_equal(symbolizer__resolve(s, &frame, 0, &sym), 0);
	assert_string_equal(sym.func, "target_fn");
	assert_int_equal(sym.offset, 4);
	assert_string_equal(sym.module, exe);
	assert_in_range(sym.line, TARGET_FIRST_LINE, TARGET_LAST_LINE);
	symbolizer__free(s);
}

static void test_unknown_build_id(void **state)
{
	struct symbolizer *s = symbolizer__new();
	struct heal_frame frame = { .status = 1, .offset_or_ip = 0x1234 };
	struct heal_sym sym;

	assert_non_null(s);
	for (int i = 0; i < HEAL_BUILD_ID_LEN; i++)
		frame.build_id[i] = (unsigned char)(0xd0 + i);
	assert_int_equal(symbolizer__add_pid(s, getpid()), 0);
	assert_int_equal(symbolizer__resolve(s, &frame, 1, &sym), -ENOENT);
	assert_string_equal(sym.module, "build-id:d0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3");
	assert_string_equal(sym.func, "");
	assert_int_equal(sym.line, 0);
	assert_int_equal(sym.addr, 0x1234);
	symbolizer__free(s);
}

static void test_ip_only(void **state)
{
	struct symbolizer *s = symbolizer__new();
	struct heal_frame frame = { .status = 2, .offset_or_ip = 0x7f0012345678ull };
	struct heal_sym sym;

	assert_non_null(s);
	assert_int_equal(symbolizer__resolve(s, &frame, 0, &sym), -ENOENT);
	assert_string_equal(sym.module, "");
	assert_string_equal(sym.func, "");
	assert_int_equal(sym.addr, 0x7f0012345678ull);

	frame.status = 0;
	assert_int_equal(symbolizer__resolve(s, &frame, 0, &sym), -ENOENT);
	symbolizer__free(s);
}

/* An indexed path now holds another build (upgrade): never symbolize against it. */
static void test_replaced_file(void **state)
{
	struct symbolizer *s = symbolizer__new();
	struct heal_frame frame;
	struct heal_sym sym;
	char path[PATH_MAX], exe[PATH_MAX], copy[64], cmd[PATH_MAX + 128];
	int err;

	assert_non_null(s);
	self_path(exe);
	snprintf(copy, sizeof(copy), "/tmp/heal-sym-%d.bin", (int)getpid());
	snprintf(cmd, sizeof(cmd), "cp '%s' %s", exe, copy);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(symbolizer__add_file(s, copy), 0);

	snprintf(cmd, sizeof(cmd), "cp /bin/sh %s.new && mv %s.new %s", copy, copy, copy);
	assert_int_equal(system(cmd), 0);
	make_frame((uintptr_t)&target_fn, &frame, path, sizeof(path));
	err = symbolizer__resolve(s, &frame, 0, &sym);
	unlink(copy);
	symbolizer__free(s);
	assert_int_equal(err, -ENOENT);
	assert_true(strncmp(sym.module, "build-id:", 9) == 0);
}

/* Binary without DWARF or symbols: names and lines come from its .gnu_debuglink file. */
static void test_separate_debuginfo(void **state)
{
	struct symbolizer *s;
	struct heal_frame frame;
	struct heal_sym sym;
	char path[PATH_MAX], exe[PATH_MAX], dir[64], bin[128], cmd[PATH_MAX + 512];
	int add_err, err;

	if (system("command -v objcopy >/dev/null 2>&1") != 0)
		skip(); /* binutils missing: cannot split the debug info */
	self_path(exe);
	snprintf(dir, sizeof(dir), "/tmp/heal-sym-dbg-%d", (int)getpid());
	snprintf(bin, sizeof(bin), "%s/test_symbolize", dir);
	snprintf(cmd, sizeof(cmd),
		 "mkdir -p %s && cp '%s' %s && cd %s && "
		 "objcopy --only-keep-debug test_symbolize test_symbolize.debug && "
		 "objcopy --strip-all --add-gnu-debuglink=test_symbolize.debug test_symbolize",
		 dir, exe, bin, dir);
	assert_int_equal(system(cmd), 0);

	s = symbolizer__new();
	assert_non_null(s);
	add_err = symbolizer__add_file(s, bin);
	target_fn(2);
	make_frame(g_ra, &frame, path, sizeof(path));
	err = symbolizer__resolve(s, &frame, 1, &sym);
	symbolizer__free(s);
	/* Clean up before asserting: a failed assert does not return. */
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);

	assert_int_equal(add_err, 0);
	assert_int_equal(err, 0);
	assert_string_equal(sym.func, "target_fn");
	assert_int_equal(sym.offset, g_ra - (uintptr_t)&target_fn);
	assert_string_equal(sym.module, bin);
	assert_true(ends_with(sym.file, "test_symbolize.c"));
	assert_int_equal(sym.line, g_call_line);
}

/*
 * Path n of many spellings of one file: bit b of n picks "./" or "/" for
 * component b, so each index entry is a distinct path without touching disk.
 */
static void spell_path(char *dst, size_t size, const char *file, unsigned int n)
{
	const char *base = strrchr(file, '/') + 1;
	size_t len = (size_t)(base - file);

	snprintf(dst, size, "%.*s", (int)len, file);
	for (int b = 0; b < 13; b++)
		strncat(dst, n & (1u << b) ? "./" : "/", size - strlen(dst) - 1);
	strncat(dst, base, size - strlen(dst) - 1);
}

/* More paths than the index holds: old ones are dropped, nothing breaks. */
static void test_index_bound(void **state)
{
	struct symbolizer *s = symbolizer__new();
	struct heal_frame frame;
	struct heal_sym sym;
	char path[PATH_MAX], exe[PATH_MAX], spelled[PATH_MAX];
	const unsigned int n = 4096 + 100;

	assert_non_null(s);
	self_path(exe);
	for (unsigned int i = 0; i < n; i++) {
		spell_path(spelled, sizeof(spelled), exe, i);
		assert_int_equal(symbolizer__add_file(s, spelled), 0);
	}
	make_frame((uintptr_t)&target_fn, &frame, path, sizeof(path));
	assert_int_equal(symbolizer__resolve(s, &frame, 0, &sym), 0);
	assert_string_equal(sym.func, "target_fn");
	/* The newest entry wins; the first ones were dropped from the index. */
	spell_path(spelled, sizeof(spelled), exe, n - 1);
	assert_string_equal(sym.module, spelled);
	symbolizer__free(s);
}

/* First frame at or after from in func (or a gcc split of it: main.cold); -1 when none. */
static int find_func(const struct heal_sym *syms, int n, int from, const char *func)
{
	size_t len = strlen(func);

	for (int i = from; i < n; i++)
		if (strncmp(syms[i].func, func, len) == 0 &&
		    (syms[i].func[len] == '\0' || syms[i].func[len] == '.'))
			return i;
	return -1;
}

static int find_module(const struct heal_sym *syms, int n, int from, const char *part)
{
	for (int i = from; i < n; i++)
		if (strstr(syms[i].module, part))
			return i;
	return -1;
}

/* comparator -> libc (qsort internals) -> the function that called qsort -> test, in that order. */
static void assert_qsort_stack(const struct heal_sym *syms, int n, const char *test)
{
	char exe[PATH_MAX];
	int libc, caller;

	self_path(exe);
	assert_true(n >= 3);
	assert_string_equal(syms[0].func, "capture_cmp");
	assert_string_equal(syms[0].module, exe);
	assert_true(ends_with(syms[0].file, "test_symbolize.c"));
	assert_int_equal(syms[0].addr, (uint64_t)g_uc.uc_mcontext.gregs[REG_RIP]);
	libc = find_module(syms, n, 1, "libc");
	assert_true(libc > 0);
	caller = find_func(syms, n, libc + 1, "capture_in_qsort");
	assert_true(caller > libc);
	assert_string_equal(syms[caller].module, exe);
	assert_true(ends_with(syms[caller].file, "test_symbolize.c"));
	/* A return address: the line of the call. */
	assert_int_equal(syms[caller].line, g_qsort_line);
	/* And on up to the test itself. */
	assert_true(find_func(syms, n, caller + 1, test) > caller);
}

/* The frames go to the heap: 8 KiB of stack must reach past this test's own frame. */
static void test_unwind_qsort(void **state)
{
	struct symbolizer *s = symbolizer__new();
	struct heal_sym *syms = calloc(HEAL_STACK_MAX, sizeof(*syms)), few[2];
	int n;

	assert_non_null(s);
	assert_non_null(syms);
	assert_int_equal(symbolizer__add_pid(s, getpid()), 0);
	capture_in_qsort();
	n = symbolizer__unwind(s, &g_rec, NULL, syms, HEAL_STACK_MAX);
	assert_qsort_stack(syms, n, __func__);

	/* max is respected: the same first frames, no more. */
	assert_int_equal(symbolizer__unwind(s, &g_rec, NULL, few, 2), 2);
	assert_string_equal(few[0].func, syms[0].func);
	assert_int_equal(few[1].addr, syms[1].addr);

	/* Re-adding the pid replaces its snapshot: still the same answer. */
	assert_int_equal(symbolizer__add_pid(s, getpid()), 0);
	assert_int_equal(symbolizer__unwind(s, &g_rec, NULL, syms, HEAL_STACK_MAX), n);
	free(syms);
	symbolizer__free(s);
}

static void test_unwind_bad_args(void **state)
{
	struct symbolizer *s = symbolizer__new();
	struct heal_rec_crash *rec = calloc(1, sizeof(*rec));
	struct heal_sym sym;

	assert_non_null(s);
	assert_non_null(rec);
	assert_int_equal(symbolizer__unwind(NULL, rec, NULL, &sym, 1), -EINVAL);
	assert_int_equal(symbolizer__unwind(s, NULL, NULL, &sym, 1), -EINVAL);
	assert_int_equal(symbolizer__unwind(s, rec, NULL, NULL, 1), -EINVAL);
	assert_int_equal(symbolizer__unwind(s, rec, NULL, &sym, 0), -EINVAL);

	/* No snapshot for the pid (nor for pid 0, which marks free slots inside). */
	assert_int_equal(symbolizer__unwind(s, rec, NULL, &sym, 1), -ENOENT);
	rec->hdr.tgid = (uint32_t)getpid();
	assert_int_equal(symbolizer__unwind(s, rec, NULL, &sym, 1), -ENOENT);
	assert_int_equal(symbolizer__add_pid(s, getpid()), 0);
	rec->hdr.tgid = INT_MAX;
	assert_int_equal(symbolizer__unwind(s, rec, NULL, &sym, 1), -ENOENT);
	free(rec);
	symbolizer__free(s);
}

/* The kernel's first frame names another file than the snapshot maps at the ip: an old snapshot. */
static void test_unwind_stale(void **state)
{
	struct symbolizer *s = symbolizer__new();
	struct heal_sym syms[4];

	assert_non_null(s);
	assert_int_equal(symbolizer__add_pid(s, getpid()), 0);
	capture_in_qsort();
	g_rec.stack_bytes = sizeof(g_rec.frames[0]);
	g_rec.frames[0].status = 1;
	memset(g_rec.frames[0].build_id, 0xab, HEAL_BUILD_ID_LEN);
	assert_int_equal(symbolizer__unwind(s, &g_rec, NULL, syms, 4), -ESTALE);
	symbolizer__free(s);
}

/*
 * The usual case in heald: the process is gone when its crash is unwound.
 * A forked child maps what this process maps; its snapshot outlives it,
 * also through add_pid calls on the zombie (whose maps are empty).
 */
static void test_unwind_after_exit(void **state)
{
	struct symbolizer *s;
	struct heal_sym *syms;
	int pipefd[2], status, n;
	siginfo_t info;
	pid_t child;
	char c;

	/* Fork before allocating: the child's _exit must not leave anything behind. */
	assert_int_equal(pipe(pipefd), 0);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		close(pipefd[1]);
		_exit(read(pipefd[0], &c, 1) == 0 ? 0 : 1);
	}
	close(pipefd[0]);
	s = symbolizer__new();
	syms = calloc(HEAL_STACK_MAX, sizeof(*syms));
	assert_non_null(s);
	assert_non_null(syms);
	assert_int_equal(symbolizer__add_pid(s, child), 0);
	capture_in_qsort();
	g_rec.hdr.tgid = g_rec.hdr.tid = (uint32_t)child;

	close(pipefd[1]); /* the child exits */
	assert_int_equal(waitid(P_PID, (id_t)child, &info, WEXITED | WNOWAIT), 0);
	assert_int_equal(symbolizer__add_pid(s, child), 0); /* a zombie: nothing mapped */
	n = symbolizer__unwind(s, &g_rec, NULL, syms, HEAL_STACK_MAX);
	assert_qsort_stack(syms, n, __func__);

	assert_int_equal(waitpid(child, &status, 0), child);
	assert_int_equal(symbolizer__add_pid(s, child), -ESRCH);
	assert_int_equal(symbolizer__unwind(s, &g_rec, NULL, syms, HEAL_STACK_MAX), n);
	free(syms);
	symbolizer__free(s);
}

/*
 * heald snapshots a process when it joins, at exec: ld.so has not mapped
 * libc yet, and by the crash the process is a zombie with nothing mapped.
 * The kernel's first frame (build id + offset of the ip) still places libc.
 */
static void test_unwind_libc_after_snapshot(void **state)
{
	struct symbolizer *s;
	struct heal_sym *syms;
	char exe[PATH_MAX], fdarg[16];
	char *buf = (char *)&g_rec;
	int pipefd[2], status, n, at, caller;
	size_t done = 0;
	pid_t child;

	self_path(exe);
	assert_int_equal(pipe(pipefd), 0);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		close(pipefd[0]);
		snprintf(fdarg, sizeof(fdarg), "%d", pipefd[1]);
		if (ptrace(PTRACE_TRACEME, 0, NULL, NULL))
			_exit(77);
		execl(exe, exe, "--abort-child", fdarg, (char *)NULL);
		_exit(127);
	}
	close(pipefd[1]);
	assert_int_equal(waitpid(child, &status, 0), child);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
		close(pipefd[0]);
		skip(); /* ptrace not permitted here: cannot stop the child at exec */
	}
	/* Stopped right after exec: the binary and ld.so are all that is mapped. */
	assert_true(WIFSTOPPED(status) && WSTOPSIG(status) == SIGTRAP);
	s = symbolizer__new();
	syms = calloc(HEAL_STACK_MAX, sizeof(*syms));
	assert_non_null(s);
	assert_non_null(syms);
	assert_int_equal(symbolizer__add_pid(s, child), 0);
	assert_int_equal(ptrace(PTRACE_DETACH, child, NULL, NULL), 0);

	while (done < sizeof(g_rec)) {
		ssize_t r = read(pipefd[0], buf + done, sizeof(g_rec) - done);

		assert_true(r > 0);
		done += (size_t)r;
	}
	close(pipefd[0]);
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(g_rec.frames[0].status, 1);

	n = symbolizer__unwind(s, &g_rec, NULL, syms, HEAL_STACK_MAX);
	assert_true(n >= 3);
	assert_non_null(strstr(syms[0].module, "libc"));
	assert_int_equal(syms[0].addr, g_rec.regs[16]);
	at = find_func(syms, n, 1, "abort");
	assert_true(at > 0);
	caller = find_func(syms, n, at + 1, "abort_in_child");
	assert_true(caller > at);
	assert_string_equal(syms[caller].module, exe);
	assert_true(ends_with(syms[caller].file, "test_symbolize.c"));
	assert_int_equal(syms[caller].line, ABORT_LINE);
	assert_true(find_func(syms, n, caller + 1, "main") > caller);
	free(syms);
	symbolizer__free(s);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_free_null),
		cmocka_unit_test(test_bad_args),
		cmocka_unit_test(test_self_via_pid),
		cmocka_unit_test(test_libc),
		cmocka_unit_test(test_add_file_only),
		cmocka_unit_test(test_unknown_build_id),
		cmocka_unit_test(test_ip_only),
		cmocka_unit_test(test_replaced_file),
		cmocka_unit_test(test_separate_debuginfo),
		cmocka_unit_test(test_index_bound),
		cmocka_unit_test(test_unwind_qsort),
		cmocka_unit_test(test_unwind_bad_args),
		cmocka_unit_test(test_unwind_stale),
		cmocka_unit_test(test_unwind_after_exit),
		cmocka_unit_test(test_unwind_libc_after_snapshot),
	};

	if (argc == 3 && strcmp(argv[1], "--abort-child") == 0)
		return abort_child(atoi(argv[2]));
	return cmocka_run_group_tests_name("symbolize", tests, NULL, NULL);
}
