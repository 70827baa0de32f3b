// SPDX-License-Identifier: MIT
/*
 * Symbolizer: build id + file offset -> function, file:line, module.
 *
 * Three bounded tables:
 *  - the index: build id -> path, filled from live processes (add_pid) or
 *    by hand (add_file), a ring of SYM_INDEX_MAX entries (oldest dropped),
 *    with hash chains by build id and by path;
 *  - the Dwfl cache: one offline Dwfl per build id, SYM_DWFL_MAX of them,
 *    least recently used dropped;
 *  - memory map snapshots: the executable file mappings of SYM_PROC_MAX
 *    processes (add_pid), within SYM_MAPS_BYTES, least recently used
 *    dropped. DWARF unwinding (unwind) needs the load addresses after the
 *    process is gone.
 */
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <elfutils/libdw.h>
#include <elfutils/libdwelf.h>
#include <elfutils/libdwfl.h>

#include "heal/symbolize.h"

#define SYM_INDEX_MAX 4096
#define SYM_INDEX_BUCKETS 8192 /* power of two, twice the entries: short chains */
#define SYM_DWFL_MAX 64
#define SYM_DEBUG_DIR "/usr/lib/debug/.build-id"
#define SYM_PROC_MAX 1024
#define SYM_PROC_MAPS_MAX 512          /* executable mappings kept per process */
#define SYM_MAPS_BYTES (16u << 20)     /* all snapshots together, paths included */
#define SYM_REG_RIP 16                 /* x86-64 DWARF number of the ip in heal_rec_crash.regs */
#define SYM_NEEDED_DIRS 16             /* directories searched for libraries mapped after a snapshot */

struct index_entry {
	unsigned char build_id[HEAL_BUILD_ID_LEN]; /* zero-padded, as the kernel reports it */
	unsigned int bid_len;                     /* 0: file has no usable build id */
	bool used;
	char *path;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	int next_bid; /* hash chains: entry index or -1 */
	int next_path;
};

struct dwfl_slot {
	unsigned char build_id[HEAL_BUILD_ID_LEN];
	bool used;
	Dwfl *dwfl;         /* NULL: nothing found for this build id (negative entry) */
	Dwfl_Module *mod;
	uint64_t index_gen; /* negative and debug-dir entries hold only while the index is unchanged */
	bool indexed;       /* found through the index: the binary itself */
	uint64_t last_used;
	char module[sizeof(((struct heal_sym *)0)->module)];
};

/* One executable file mapping of a process, as /proc/PID/maps showed it. */
struct map_entry {
	uint64_t start, end, offset;
	unsigned char build_id[HEAL_BUILD_ID_LEN]; /* zero-padded, as the kernel reports it */
	unsigned int bid_len;                     /* 0: unknown, the path is used unverified */
	char *path;
};

struct proc_maps {
	pid_t pid; /* 0: free slot */
	unsigned int n, cap;
	size_t bytes; /* counted against SYM_MAPS_BYTES */
	uint64_t last_used;
	struct map_entry *maps;
};

struct symbolizer {
	struct index_entry idx[SYM_INDEX_MAX];
	int bid_head[SYM_INDEX_BUCKETS];
	int path_head[SYM_INDEX_BUCKETS];
	unsigned int idx_next; /* ring cursor: the slot reused next */
	uint64_t index_gen;    /* bumped whenever a build id is indexed */
	uint64_t index_dropped;
	struct dwfl_slot cache[SYM_DWFL_MAX];
	uint64_t tick;
	struct proc_maps procs[SYM_PROC_MAX];
	size_t maps_bytes;
	uint64_t procs_dropped; /* snapshots evicted for room */
	uint64_t maps_dropped;  /* mappings beyond SYM_PROC_MAPS_MAX, not kept */
};

/* Offline: nothing is loaded, modules are reported from files. */
static const Dwfl_Callbacks offline_callbacks = {
	.find_elf = dwfl_build_id_find_elf,
	.find_debuginfo = dwfl_standard_find_debuginfo,
	.section_address = dwfl_offline_section_address,
};

/* Unwinding: modules are reported with their ELF already open, at their load address. */
static const Dwfl_Callbacks unwind_callbacks = {
	.find_elf = dwfl_build_id_find_elf,
	.find_debuginfo = dwfl_standard_find_debuginfo,
};

static void copy_str(char *dst, size_t size, const char *src)
{
	size_t n = strlen(src);

	if (n >= size)
		n = size - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static uint32_t fnv1a(const void *data, size_t len)
{
	const unsigned char *p = data;
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 16777619u;
	}
	return h;
}

static unsigned int bid_bucket(const unsigned char *build_id)
{
	return fnv1a(build_id, HEAL_BUILD_ID_LEN) & (SYM_INDEX_BUCKETS - 1);
}

static unsigned int path_bucket(const char *path)
{
	return fnv1a(path, strlen(path)) & (SYM_INDEX_BUCKETS - 1);
}

/* Does a build id of len bytes equal the kernel's zero-padded 20-byte copy? */
static bool bid_equal(const unsigned char *padded, const unsigned char *bits, size_t len)
{
	if (len == 0 || len > HEAL_BUILD_ID_LEN || memcmp(padded, bits, len) != 0)
		return false;
	for (size_t i = len; i < HEAL_BUILD_ID_LEN; i++)
		if (padded[i])
			return false;
	return true;
}

static void hex_str(char *dst, const unsigned char *bytes, size_t len)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		dst[2 * i] = digits[bytes[i] >> 4];
		dst[2 * i + 1] = digits[bytes[i] & 0xf];
	}
	dst[2 * len] = '\0';
}

static void chain_unlink(int *head, int victim, size_t link_off, struct index_entry *idx)
{
	for (int *pp = head; *pp >= 0; pp = (int *)((char *)&idx[*pp] + link_off)) {
		if (*pp == victim) {
			*pp = *(int *)((char *)&idx[victim] + link_off);
			return;
		}
	}
}

static void index_drop(struct symbolizer *s, int i)
{
	struct index_entry *e = &s->idx[i];

	if (!e->used)
		return;
	if (e->bid_len)
		chain_unlink(&s->bid_head[bid_bucket(e->build_id)], i,
			     offsetof(struct index_entry, next_bid), s->idx);
	chain_unlink(&s->path_head[path_bucket(e->path)], i, offsetof(struct index_entry, next_path),
		     s->idx);
	free(e->path);
	memset(e, 0, sizeof(*e));
	e->next_bid = e->next_path = -1;
}

static int index_find_path(const struct symbolizer *s, const char *path)
{
	for (int i = s->path_head[path_bucket(path)]; i >= 0; i = s->idx[i].next_path)
		if (strcmp(s->idx[i].path, path) == 0)
			return i;
	return -1;
}

static bool same_file(const struct index_entry *e, const struct stat *st)
{
	return e->dev == st->st_dev && e->ino == st->st_ino && e->size == st->st_size &&
	       e->mtime.tv_sec == st->st_mtim.tv_sec && e->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

static int index_insert(struct symbolizer *s, const char *path, const struct stat *st,
			const unsigned char *build_id, size_t bid_len)
{
	unsigned int i = s->idx_next;
	struct index_entry *e = &s->idx[i];
	char *copy;

	copy = strdup(path);
	if (!copy)
		return -ENOMEM;
	if (e->used)
		s->index_dropped++;
	index_drop(s, (int)i);
	s->idx_next = (i + 1) % SYM_INDEX_MAX;

	e->used = true;
	e->path = copy;
	e->dev = st->st_dev;
	e->ino = st->st_ino;
	e->size = st->st_size;
	e->mtime = st->st_mtim;
	e->bid_len = (unsigned int)bid_len;
	memcpy(e->build_id, build_id, bid_len);

	unsigned int pb = path_bucket(path);
	e->next_path = s->path_head[pb];
	s->path_head[pb] = (int)i;
	if (bid_len) {
		unsigned int bb = bid_bucket(e->build_id);

		e->next_bid = s->bid_head[bb];
		s->bid_head[bb] = (int)i;
		s->index_gen++;
	}
	return 0;
}

static void proc_clear(struct proc_maps *p)
{
	for (unsigned int i = 0; i < p->n; i++)
		free(p->maps[i].path);
	free(p->maps);
	memset(p, 0, sizeof(*p));
}

static void proc_drop(struct symbolizer *s, struct proc_maps *p)
{
	s->maps_bytes -= p->bytes;
	proc_clear(p);
}

static struct proc_maps *proc_find(struct symbolizer *s, pid_t pid)
{
	if (pid <= 0)
		return NULL;
	for (int i = 0; i < SYM_PROC_MAX; i++)
		if (s->procs[i].pid == pid)
			return &s->procs[i];
	return NULL;
}

/* Append one mapping to a snapshot being built; its build id is the index's for the path. */
static int proc_push(struct symbolizer *s, struct proc_maps *p, uint64_t start, uint64_t end,
		     uint64_t offset, const char *path)
{
	struct map_entry *m;
	int i;

	if (p->n == SYM_PROC_MAPS_MAX) {
		s->maps_dropped++;
		return 0;
	}
	if (p->n == p->cap) {
		unsigned int cap = p->cap ? 2 * p->cap : 16;
		struct map_entry *grown = realloc(p->maps, cap * sizeof(*grown));

		if (!grown)
			return -ENOMEM;
		p->maps = grown;
		p->cap = cap;
	}
	m = &p->maps[p->n];
	memset(m, 0, sizeof(*m));
	m->path = strdup(path);
	if (!m->path)
		return -ENOMEM;
	m->start = start;
	m->end = end;
	m->offset = offset;
	i = index_find_path(s, path);
	if (i >= 0 && s->idx[i].bid_len) {
		memcpy(m->build_id, s->idx[i].build_id, HEAL_BUILD_ID_LEN);
		m->bid_len = s->idx[i].bid_len;
	}
	p->n++;
	p->bytes += sizeof(*m) + strlen(path) + 1;
	return 0;
}

/* Keep snap (moved out, zeroed) as its pid's snapshot, dropping the least recently used for room. */
static void proc_store(struct symbolizer *s, struct proc_maps *snap)
{
	struct proc_maps *old = proc_find(s, snap->pid);

	if (old)
		proc_drop(s, old);
	for (;;) {
		struct proc_maps *free_slot = NULL, *victim = NULL;

		for (int i = 0; i < SYM_PROC_MAX; i++) {
			struct proc_maps *p = &s->procs[i];

			if (!p->pid)
				free_slot = free_slot ? free_slot : p;
			else if (!victim || p->last_used < victim->last_used)
				victim = p;
		}
		if (free_slot && s->maps_bytes + snap->bytes <= SYM_MAPS_BYTES) {
			*free_slot = *snap;
			free_slot->last_used = ++s->tick;
			s->maps_bytes += snap->bytes;
			memset(snap, 0, sizeof(*snap));
			return;
		}
		/* Cannot happen with the limits above (one snapshot fits the budget); the caller frees snap. */
		if (!victim)
			return;
		proc_drop(s, victim);
		s->procs_dropped++;
	}
}

struct symbolizer *symbolizer__new(void)
{
	struct symbolizer *s;

	if (elf_version(EV_CURRENT) == EV_NONE) {
		errno = ENOSYS;
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	for (int i = 0; i < SYM_INDEX_BUCKETS; i++)
		s->bid_head[i] = s->path_head[i] = -1;
	for (int i = 0; i < SYM_INDEX_MAX; i++)
		s->idx[i].next_bid = s->idx[i].next_path = -1;
	return s;
}

static void slot_clear(struct dwfl_slot *slot)
{
	if (slot->dwfl)
		dwfl_end(slot->dwfl);
	memset(slot, 0, sizeof(*slot));
}

void symbolizer__free(struct symbolizer *s)
{
	if (!s)
		return;
	for (int i = 0; i < SYM_DWFL_MAX; i++)
		slot_clear(&s->cache[i]);
	for (int i = 0; i < SYM_INDEX_MAX; i++)
		free(s->idx[i].path);
	for (int i = 0; i < SYM_PROC_MAX; i++)
		proc_clear(&s->procs[i]);
	free(s);
}

int symbolizer__add_file(struct symbolizer *s, const char *path)
{
	unsigned char bid[HEAL_BUILD_ID_LEN] = { 0 };
	const void *bits = NULL;
	struct stat st;
	Elf *elf = NULL;
	ssize_t len;
	int fd = -1, i, err = 0;

	if (!s || !path || path[0] == '\0')
		return -EINVAL;
	if (stat(path, &st))
		return -errno;
	/* The same path with the same inode and mtime was read before: nothing changed. */
	i = index_find_path(s, path);
	if (i >= 0 && same_file(&s->idx[i], &st))
		return 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st)) {
		err = -errno;
		goto cleanup;
	}
	if (!S_ISREG(st.st_mode)) {
		err = -EINVAL;
		goto cleanup;
	}
	elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (!elf || elf_kind(elf) != ELF_K_ELF) {
		err = -ENOEXEC;
		goto cleanup;
	}
	len = dwelf_elf_gnu_build_id(elf, &bits);
	/* The kernel reports nothing for a missing or oversized note: index the path only. */
	if (len <= 0 || len > HEAL_BUILD_ID_LEN)
		len = 0;
	else
		memcpy(bid, bits, (size_t)len);

	/* The file at this path changed (upgrade): forget the old record. */
	if (i >= 0)
		index_drop(s, i);
	err = index_insert(s, path, &st, bid, (size_t)len);

cleanup:
	elf_end(elf);
	if (fd >= 0)
		close(fd);
	return err;
}

int symbolizer__add_pid(struct symbolizer *s, pid_t pid)
{
	struct proc_maps snap = { .pid = pid };
	char maps[64], prev[4096] = "";
	char *line = NULL;
	size_t cap = 0;
	FILE *f;
	int err = 0;

	if (!s || pid <= 0)
		return -EINVAL;
	snprintf(maps, sizeof(maps), "/proc/%d/maps", (int)pid);
	f = fopen(maps, "re");
	if (!f)
		return errno == ENOENT ? -ESRCH : -errno;

	while (getline(&line, &cap, f) > 0) {
		unsigned long long start, end, offset;
		char perms[8];
		int path_at = -1;
		char *path;
		size_t n;

		/* start-end perms offset dev inode path */
		if (sscanf(line, "%llx-%llx %7s %llx %*x:%*x %*u %n", &start, &end, perms, &offset,
			   &path_at) != 4 ||
		    path_at < 0)
			continue;
		if (strlen(perms) < 3 || perms[2] != 'x')
			continue;
		path = line + path_at;
		n = strlen(path);
		if (n && path[n - 1] == '\n')
			path[--n] = '\0';
		/* Pseudo mappings ([vdso], anon) and files deleted since mapping have no usable path. */
		if (path[0] != '/')
			continue;
		if (n >= 10 && strcmp(path + n - 10, " (deleted)") == 0)
			continue;
		if (strcmp(path, prev) != 0) {
			copy_str(prev, sizeof(prev), path);
			/* One unreadable library must not hide the others; add_file errors are per file. */
			(void)symbolizer__add_file(s, path);
		}
		err = proc_push(s, &snap, start, end, offset, path);
		if (err)
			goto cleanup;
	}
	if (ferror(f)) {
		err = -EIO;
		goto cleanup;
	}
	/* A zombie's maps are empty: keep the snapshot taken while it lived. */
	if (snap.n)
		proc_store(s, &snap);

cleanup:
	proc_clear(&snap);
	free(line);
	fclose(f);
	return err;
}

/* Open path as an offline module; keep it only when its build id is the wanted one. */
static int open_module(const char *path, const unsigned char *build_id, Dwfl **dwflp,
		       Dwfl_Module **modp)
{
	const unsigned char *bits;
	Dwfl_Module *mod;
	GElf_Addr bias, vaddr;
	Dwfl *dwfl;
	int len;

	dwfl = dwfl_begin(&offline_callbacks);
	if (!dwfl)
		return -ENOMEM;
	mod = dwfl_report_offline(dwfl, path, path, -1);
	if (!mod || dwfl_report_end(dwfl, NULL, NULL) != 0)
		goto fail;
	/* dwfl_module_build_id needs the ELF loaded first. */
	if (!dwfl_module_getelf(mod, &bias))
		goto fail;
	len = dwfl_module_build_id(mod, &bits, &vaddr);
	if (len <= 0 || !bid_equal(build_id, bits, (size_t)len))
		goto fail;
	*dwflp = dwfl;
	*modp = mod;
	return 0;
fail:
	dwfl_end(dwfl);
	return -ENOENT;
}

static int try_debug_dir(struct dwfl_slot *slot, size_t bid_len, const char *suffix)
{
	char hex[2 * HEAL_BUILD_ID_LEN + 1], path[sizeof(slot->module)], *real;

	hex_str(hex, slot->build_id, bid_len);
	snprintf(path, sizeof(path), SYM_DEBUG_DIR "/%.2s/%s%s", hex, hex + 2, suffix);
	if (open_module(path, slot->build_id, &slot->dwfl, &slot->mod))
		return -ENOENT;
	/* The suffix-less name is a symlink to the installed binary: name the binary. */
	real = realpath(path, NULL);
	copy_str(slot->module, sizeof(slot->module), real ? real : path);
	free(real);
	return 0;
}

/*
 * Candidates, best first: indexed paths (verified: the path may hold a newer
 * build since), the binary linked from the debug dir (Fedora-style
 * packages), then the separate debug file itself.
 */
static void slot_fill(struct symbolizer *s, struct dwfl_slot *slot)
{
	static const unsigned char zero[4];

	slot->index_gen = s->index_gen;
	for (int i = s->bid_head[bid_bucket(slot->build_id)]; i >= 0; i = s->idx[i].next_bid) {
		const struct index_entry *e = &s->idx[i];

		if (!bid_equal(slot->build_id, e->build_id, e->bid_len))
			continue;
		if (open_module(e->path, slot->build_id, &slot->dwfl, &slot->mod) == 0) {
			copy_str(slot->module, sizeof(slot->module), e->path);
			slot->indexed = true;
			return;
		}
	}
	/* Build ids shorter than 20 bytes (md5, uuid: 16) come zero-padded. */
	for (size_t len = HEAL_BUILD_ID_LEN; len >= 16; len -= 4) {
		if (len < HEAL_BUILD_ID_LEN && memcmp(slot->build_id + len, zero, 4) != 0)
			break;
		if (try_debug_dir(slot, len, "") == 0 || try_debug_dir(slot, len, ".debug") == 0)
			return;
	}
}

static bool index_has_bid(const struct symbolizer *s, const unsigned char *build_id)
{
	for (int i = s->bid_head[bid_bucket(build_id)]; i >= 0; i = s->idx[i].next_bid)
		if (bid_equal(build_id, s->idx[i].build_id, s->idx[i].bid_len))
			return true;
	return false;
}

static struct dwfl_slot *cache_get(struct symbolizer *s, const unsigned char *build_id)
{
	struct dwfl_slot *slot = NULL;

	for (int i = 0; i < SYM_DWFL_MAX; i++) {
		struct dwfl_slot *c = &s->cache[i];

		if (c->used && memcmp(c->build_id, build_id, HEAL_BUILD_ID_LEN) == 0) {
			/*
			 * A miss is retried once the index has learned something new, a
			 * debug-dir hit once the index knows the binary (its path names it).
			 */
			if (c->index_gen != s->index_gen &&
			    (!c->dwfl || (!c->indexed && index_has_bid(s, build_id)))) {
				slot = c;
				break;
			}
			c->last_used = ++s->tick;
			return c;
		}
		if (!slot || !c->used || (slot->used && c->last_used < slot->last_used))
			slot = c;
	}
	slot_clear(slot);
	slot->used = true;
	slot->last_used = ++s->tick;
	memcpy(slot->build_id, build_id, HEAL_BUILD_ID_LEN);
	slot_fill(s, slot);
	return slot;
}

/* File offset -> ELF virtual address through the PT_LOAD segment that maps it. */
static int offset_to_vaddr(Elf *elf, uint64_t off, uint64_t *vaddr)
{
	uint64_t base = 0;
	bool have_base = false;
	size_t phnum;

	if (elf_getphdrnum(elf, &phnum))
		return -ENOEXEC;
	for (size_t i = 0; i < phnum; i++) {
		GElf_Phdr mem, *ph = gelf_getphdr(elf, (int)i, &mem);

		if (!ph || ph->p_type != PT_LOAD)
			continue;
		if (!have_base) {
			base = ph->p_vaddr - ph->p_offset;
			have_base = true;
		}
		if (ph->p_filesz && off >= ph->p_offset && off - ph->p_offset < ph->p_filesz) {
			*vaddr = off - ph->p_offset + ph->p_vaddr;
			return 0;
		}
	}
	/*
	 * Separate debug files keep the segments but zero p_filesz and rewrite
	 * p_offset, so the real layout is lost. GNU ld puts text at the same
	 * distance from the first segment in the file and in memory: assume that.
	 */
	for (size_t i = 0; have_base && i < phnum; i++) {
		GElf_Phdr mem, *ph = gelf_getphdr(elf, (int)i, &mem);

		if (!ph || ph->p_type != PT_LOAD || ph->p_filesz || !(ph->p_flags & PF_X))
			continue;
		if (off + base >= ph->p_vaddr && off + base - ph->p_vaddr < ph->p_memsz) {
			*vaddr = off + base;
			return 0;
		}
	}
	return -ENOENT;
}

/*
 * libdw before 0.191 finds a CU only through .debug_aranges, which clang
 * does not emit by default: walk the CUs' own address ranges instead.
 */
static void line_by_cu_scan(Dwfl_Module *mod, Dwarf_Addr addr, struct heal_sym *out)
{
	Dwarf_Die *cu = NULL;
	Dwarf_Addr bias;

	while ((cu = dwfl_module_nextcu(mod, cu, &bias))) {
		Dwarf_Line *line;
		const char *src;
		int lineno = 0;

		if (dwarf_haspc(cu, addr - bias) <= 0)
			continue;
		line = dwarf_getsrc_die(cu, addr - bias);
		if (!line || !(src = dwarf_linesrc(line, NULL, NULL)) || dwarf_lineno(line, &lineno))
			continue;
		copy_str(out->file, sizeof(out->file), src);
		out->line = lineno;
		return;
	}
}

/* Function, offset, file:line of addr (an address in mod's Dwfl). 0 when a function was found. */
static int describe(Dwfl_Module *mod, GElf_Addr addr, bool is_return_addr, struct heal_sym *out)
{
	GElf_Addr lookup;
	GElf_Off sym_off;
	GElf_Sym sym;
	const char *name, *src;
	Dwfl_Line *line;

	/* A return address may already be past the call's function (noreturn calls at the end). */
	lookup = is_return_addr && addr ? addr - 1 : addr;

	line = dwfl_module_getsrc(mod, lookup);
	if (line) {
		int lineno = 0;

		src = dwfl_lineinfo(line, NULL, &lineno, NULL, NULL, NULL);
		if (src) {
			copy_str(out->file, sizeof(out->file), src);
			out->line = lineno;
		}
	} else {
		line_by_cu_scan(mod, lookup, out);
	}

	name = dwfl_module_addrinfo(mod, lookup, &sym_off, &sym, NULL, NULL, NULL);
	if (!name || !name[0])
		return -ENOENT;
	copy_str(out->func, sizeof(out->func), name);
	out->offset = sym_off + (addr - lookup);
	return 0;
}

int symbolizer__resolve(struct symbolizer *s, const struct heal_frame *frame, int is_return_addr,
			struct heal_sym *out)
{
	char hex[2 * HEAL_BUILD_ID_LEN + 1];
	struct dwfl_slot *slot;
	GElf_Addr bias;
	uint64_t vaddr;
	Elf *elf;

	if (!out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	if (!s || !frame)
		return -EINVAL;
	out->addr = frame->offset_or_ip;
	if (frame->status != 1) /* 2: a raw ip means nothing once the process is gone */
		return -ENOENT;

	slot = cache_get(s, frame->build_id);
	if (!slot->dwfl) {
		hex_str(hex, frame->build_id, HEAL_BUILD_ID_LEN);
		snprintf(out->module, sizeof(out->module), "build-id:%s", hex);
		return -ENOENT;
	}
	copy_str(out->module, sizeof(out->module), slot->module);

	elf = dwfl_module_getelf(slot->mod, &bias);
	if (!elf || offset_to_vaddr(elf, frame->offset_or_ip, &vaddr))
		return -ENOENT;
	/* Offline ET_DYN modules are placed at a nonzero bias in the Dwfl address space. */
	return describe(slot->mod, vaddr + bias, is_return_addr, out);
}

/* ---- DWARF unwinding of a crash record ---- */

/* What libdw's callbacks need: the record (registers, stack bytes) and where frames go. */
struct unwind_ctx {
	struct symbolizer *s;
	const struct heal_rec_crash *rec;
	Dwfl *dwfl;
	pid_t tid;
	struct heal_sym *out;
	int max, n;
};

/* ELF virtual address -> file offset through the PT_LOAD segment holding it. */
static int vaddr_to_offset(Elf *elf, uint64_t vaddr, uint64_t *off)
{
	size_t phnum;

	if (elf_getphdrnum(elf, &phnum))
		return -ENOEXEC;
	for (size_t i = 0; i < phnum; i++) {
		GElf_Phdr mem, *ph = gelf_getphdr(elf, (int)i, &mem);

		if (ph && ph->p_type == PT_LOAD && vaddr >= ph->p_vaddr &&
		    vaddr - ph->p_vaddr < ph->p_filesz) {
			*off = vaddr - ph->p_vaddr + ph->p_offset;
			return 0;
		}
	}
	return -ENOENT;
}

/*
 * Load bias (runtime address - ELF vaddr) from "file bytes [off, off + len)
 * are at runtime address addr": a mapping (whose offset is page-aligned, so
 * it may start before its segment's p_offset) or a single known ip.
 */
static int load_bias(Elf *elf, uint64_t off, uint64_t len, uint64_t addr, uint64_t *bias)
{
	size_t phnum;

	if (elf_getphdrnum(elf, &phnum))
		return -ENOEXEC;
	for (size_t i = 0; i < phnum; i++) {
		GElf_Phdr mem, *ph = gelf_getphdr(elf, (int)i, &mem);

		if (!ph || ph->p_type != PT_LOAD || !(ph->p_flags & PF_X) || !ph->p_filesz)
			continue;
		if (off < ph->p_offset + ph->p_filesz && off + len > ph->p_offset) {
			/* p_vaddr and p_offset are congruent modulo the page size: one bias for the segment. */
			*bias = addr - off + ph->p_offset - ph->p_vaddr;
			return 0;
		}
	}
	return -ENOENT;
}

/* Report path to dwfl placed by (off, len, addr), if it is an x86-64 ELF with build id bid (NULL: unchecked). */
static int place_file(Dwfl *dwfl, const char *path, const unsigned char *bid, uint64_t off,
		      uint64_t len, uint64_t addr)
{
	const void *bits;
	GElf_Ehdr ehdr;
	uint64_t bias;
	ssize_t bid_len;
	Elf *elf = NULL;
	int fd, err;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	/* The registers in the record are x86-64's, in its DWARF numbering. */
	if (!elf || elf_kind(elf) != ELF_K_ELF || !gelf_getehdr(elf, &ehdr) ||
	    ehdr.e_ident[EI_CLASS] != ELFCLASS64 || ehdr.e_machine != EM_X86_64) {
		err = -ENOEXEC;
		goto cleanup;
	}
	if (bid) {
		bid_len = dwelf_elf_gnu_build_id(elf, &bits);
		if (bid_len <= 0 || !bid_equal(bid, bits, (size_t)bid_len)) {
			err = -ENOENT;
			goto cleanup;
		}
	}
	err = load_bias(elf, off, len, addr, &bias);
	if (err)
		goto cleanup;
	/* add_p_vaddr: base is the load bias itself, not the address of the first segment. */
	if (!dwfl_report_elf(dwfl, path, path, -1, bias, true))
		err = -ENOEXEC;

cleanup:
	elf_end(elf);
	close(fd);
	return err;
}

/* Report the file with build id bid (path first, then indexed copies: the path may hold a newer build). */
static int report_file(struct symbolizer *s, Dwfl *dwfl, const char *path, const unsigned char *bid,
		       uint64_t off, uint64_t len, uint64_t addr)
{
	if (path && place_file(dwfl, path, bid, off, len, addr) == 0)
		return 0;
	if (!bid)
		return -ENOENT;
	for (int i = s->bid_head[bid_bucket(bid)]; i >= 0; i = s->idx[i].next_bid) {
		const struct index_entry *e = &s->idx[i];

		if (!bid_equal(bid, e->build_id, e->bid_len) || (path && strcmp(e->path, path) == 0))
			continue;
		if (place_file(dwfl, e->path, bid, off, len, addr) == 0)
			return 0;
	}
	return -ENOENT;
}

/* The kernel's first frame: the faulting ip as build id + file offset, when it recorded one. */
static const struct heal_frame *first_frame(const struct heal_rec_crash *rec)
{
	if (rec->stack_bytes < (int64_t)sizeof(rec->frames[0]) || rec->frames[0].status != 1)
		return NULL;
	return &rec->frames[0];
}

static const struct map_entry *proc_map_at(const struct proc_maps *p, uint64_t addr)
{
	for (unsigned int i = 0; i < p->n; i++)
		if (addr >= p->maps[i].start && addr < p->maps[i].end)
			return &p->maps[i];
	return NULL;
}

/* Directories of the snapshot's files, where their DT_NEEDED libraries are looked for. */
struct lib_dirs {
	const char *dir[SYM_NEEDED_DIRS]; /* into the snapshot's paths */
	size_t len[SYM_NEEDED_DIRS];
	int n;
};

static void lib_dirs_fill(struct lib_dirs *d, const struct proc_maps *p)
{
	d->n = 0;
	for (unsigned int i = 0; i < p->n && d->n < SYM_NEEDED_DIRS; i++) {
		const char *path = p->maps[i].path;
		size_t len = (size_t)(strrchr(path, '/') - path);
		int k;

		for (k = 0; k < d->n; k++)
			if (d->len[k] == len && strncmp(d->dir[k], path, len) == 0)
				break;
		if (k == d->n) {
			d->dir[d->n] = path;
			d->len[d->n++] = len;
		}
	}
}

static bool mapped_name(const struct proc_maps *p, const char *name)
{
	for (unsigned int i = 0; i < p->n; i++)
		if (strcmp(strrchr(p->maps[i].path, '/') + 1, name) == 0)
			return true;
	return false;
}

/* Index DT_NEEDED library name from the first directory that holds it. */
static void index_library(struct symbolizer *s, const struct lib_dirs *d, const char *name)
{
	char path[PATH_MAX];

	for (int k = 0; k < d->n; k++) {
		if (snprintf(path, sizeof(path), "%.*s/%s", (int)d->len[k], d->dir[k], name) >=
		    (int)sizeof(path))
			continue;
		if (symbolizer__add_file(s, path) == 0)
			return;
	}
}

/* The DT_NEEDED libraries of one ELF file, indexed from the first directory that holds each. */
static void index_needed_of(struct symbolizer *s, const char *path, const struct lib_dirs *dirs,
			    const struct proc_maps *p)
{
	Elf_Scn *scn = NULL;
	Elf *elf;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	while (elf && (scn = elf_nextscn(elf, scn))) {
		GElf_Shdr shdr;
		Elf_Data *data;

		if (!gelf_getshdr(scn, &shdr) || shdr.sh_type != SHT_DYNAMIC || !shdr.sh_entsize)
			continue;
		data = elf_getdata(scn, NULL);
		for (size_t k = 0; data && k < shdr.sh_size / shdr.sh_entsize; k++) {
			GElf_Dyn dyn;
			const char *name;

			if (!gelf_getdyn(data, (int)k, &dyn) || dyn.d_tag == DT_NULL)
				break;
			if (dyn.d_tag != DT_NEEDED)
				continue;
			name = elf_strptr(elf, shdr.sh_link, dyn.d_un.d_val);
			/* Mapped ones were indexed by add_pid already. */
			if (name && name[0] && !strchr(name, '/') && !mapped_name(p, name))
				index_library(s, dirs, name);
		}
	}
	elf_end(elf);
	close(fd);
}

/*
 * The exec-time snapshot holds the binary and ld.so only (and a process that
 * crashed at once has none), so heald may never have seen the libraries
 * mapped later: index the DT_NEEDED libraries of the snapshot's files and of
 * the binary, looked up next to them (libc sits next to ld.so) and in the
 * usual system directories, so a build id from the crash record can be found
 * as a file.
 */
static void index_needed(struct symbolizer *s, const struct proc_maps *p, const char *exe)
{
	static const char *const system_dirs[] = { "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu",
						   "/lib64", "/usr/lib64", "/lib", "/usr/lib" };
	struct lib_dirs dirs;

	lib_dirs_fill(&dirs, p);
	for (size_t k = 0; k < sizeof(system_dirs) / sizeof(system_dirs[0]) && dirs.n < SYM_NEEDED_DIRS;
	     k++) {
		dirs.dir[dirs.n] = system_dirs[k];
		dirs.len[dirs.n++] = strlen(system_dirs[k]);
	}
	for (unsigned int i = 0; i < p->n; i++) {
		if (i > 0 && strcmp(p->maps[i].path, p->maps[i - 1].path) == 0)
			continue;
		index_needed_of(s, p->maps[i].path, &dirs, p);
	}
	if (exe && exe[0])
		index_needed_of(s, exe, &dirs, p);
}

/* Report every mapped file of the snapshot; returns how many modules were reported. */
static int report_snapshot(struct symbolizer *s, Dwfl *dwfl, const struct proc_maps *p,
			   const char *exe, const struct heal_rec_crash *rec)
{
	const struct heal_frame *f0 = first_frame(rec);
	int n = 0;

	for (unsigned int i = 0; i < p->n; i++) {
		const struct map_entry *m = &p->maps[i];

		/* A file's second executable mapping is already covered by its module. */
		if (i > 0 && strcmp(m->path, p->maps[i - 1].path) == 0)
			continue;
		if (report_file(s, dwfl, m->path, m->bid_len ? m->build_id : NULL, m->offset,
				m->end - m->start, m->start) == 0)
			n++;
	}
	/*
	 * A library mapped after the snapshot (the one at exec time sees only the
	 * binary and ld.so; a zombie's maps are empty): the kernel's first frame
	 * still places the module that faulted.
	 */
	if (!f0 || proc_map_at(p, rec->regs[SYM_REG_RIP]))
		return n;
	if (report_file(s, dwfl, NULL, f0->build_id, f0->offset_or_ip, 1, rec->regs[SYM_REG_RIP]) != 0) {
		index_needed(s, p, exe);
		if (report_file(s, dwfl, NULL, f0->build_id, f0->offset_or_ip, 1,
				rec->regs[SYM_REG_RIP]) != 0)
			return n;
	}
	return n + 1;
}

/* File offset of the main binary's first executable segment: the kernel's start_code is its address. */
static int exe_text_offset(const char *path, uint64_t *off)
{
	uint64_t best_vaddr = UINT64_MAX;
	size_t phnum;
	Elf *elf;
	int fd, err = -ENOENT;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (elf && elf_getphdrnum(elf, &phnum) == 0) {
		for (size_t i = 0; i < phnum; i++) {
			GElf_Phdr mem, *ph = gelf_getphdr(elf, (int)i, &mem);

			if (ph && ph->p_type == PT_LOAD && (ph->p_flags & PF_X) && ph->p_vaddr < best_vaddr) {
				best_vaddr = ph->p_vaddr;
				*off = ph->p_offset;
				err = 0;
			}
		}
	}
	elf_end(elf);
	close(fd);
	return err;
}

/* Place the main binary from start_code unless the snapshot already maps something there. */
static int report_exe(struct symbolizer *s, Dwfl *dwfl, const struct proc_maps *p, const char *exe,
		      const struct heal_rec_crash *rec)
{
	uint64_t off = 0;

	if (!exe || !exe[0] || !rec->start_code || proc_map_at(p, rec->start_code))
		return -ENOENT;
	if (exe_text_offset(exe, &off))
		return -ENOENT;
	return report_file(s, dwfl, exe, NULL, off, 1, rec->start_code);
}

/* A snapshot from before an exec or of a reused pid: another file is mapped at the faulting ip. */
static bool snapshot_stale(const struct proc_maps *p, const struct heal_rec_crash *rec)
{
	const struct heal_frame *f0 = first_frame(rec);
	const struct map_entry *m = proc_map_at(p, rec->regs[SYM_REG_RIP]);

	return f0 && m && m->bid_len && !bid_equal(f0->build_id, m->build_id, m->bid_len);
}

/* A pc of the unwound process -> *out, through the build id + file offset path of symbolizer__resolve. */
static void resolve_pc(struct symbolizer *s, Dwfl_Module *mod, Dwarf_Addr pc, bool is_return_addr,
		       struct heal_sym *out)
{
	/* Place a return address by its call: a noreturn call may end the module. */
	Dwarf_Addr lookup = is_return_addr ? pc - 1 : pc;
	const unsigned char *bits;
	const char *name;
	GElf_Addr bias, bid_vaddr;
	uint64_t off;
	Elf *elf;
	int len;

	elf = dwfl_module_getelf(mod, &bias);
	len = dwfl_module_build_id(mod, &bits, &bid_vaddr);
	if (elf && len > 0 && len <= HEAL_BUILD_ID_LEN && vaddr_to_offset(elf, lookup - bias, &off) == 0) {
		struct heal_frame frame = { .status = 1, .offset_or_ip = off + (pc - lookup) };

		memcpy(frame.build_id, bits, (size_t)len);
		if (symbolizer__resolve(s, &frame, is_return_addr, out) == 0 ||
		    strncmp(out->module, "build-id:", 9) != 0) {
			out->addr = pc;
			return;
		}
	}
	/* No build id, or its file left the index: the unwinder's own copy of the module still knows. */
	memset(out, 0, sizeof(*out));
	out->addr = pc;
	name = dwfl_module_info(mod, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
	copy_str(out->module, sizeof(out->module), name ? name : "");
	(void)describe(mod, pc, is_return_addr, out);
}

static int unwind_frame(Dwfl_Frame *frame, void *arg)
{
	struct unwind_ctx *u = arg;
	struct heal_sym *out = &u->out[u->n];
	Dwfl_Module *mod;
	Dwarf_Addr pc;
	bool activation;

	if (!dwfl_frame_pc(frame, &pc, &activation) || pc == 0)
		return DWARF_CB_ABORT;
	mod = dwfl_addrmodule(u->dwfl, activation ? pc : pc - 1);
	if (mod) {
		resolve_pc(u->s, mod, pc, !activation, out);
	} else {
		memset(out, 0, sizeof(*out));
		out->addr = pc;
	}
	u->n++;
	/* Past the first frame, an address in no module is where the walk went astray. */
	if (u->n >= u->max || (!mod && u->n > 1))
		return DWARF_CB_ABORT;
	return DWARF_CB_OK;
}

static pid_t unwind_next_thread(Dwfl *dwfl, void *dwfl_arg, void **thread_argp)
{
	const struct unwind_ctx *u = dwfl_arg;

	if (*thread_argp)
		return 0;
	*thread_argp = dwfl_arg;
	return u->tid;
}

static bool unwind_get_thread(Dwfl *dwfl, pid_t tid, void *dwfl_arg, void **thread_argp)
{
	const struct unwind_ctx *u = dwfl_arg;

	*thread_argp = dwfl_arg;
	return tid == u->tid;
}

/* Only the stack bytes the record carries are known; everything else reads as unknown. */
static bool unwind_memory_read(Dwfl *dwfl, Dwarf_Addr addr, Dwarf_Word *result, void *dwfl_arg)
{
	const struct unwind_ctx *u = dwfl_arg;
	uint64_t len = u->rec->stack_dump_len, at;

	if (len > HEAL_STACK_DUMP)
		len = HEAL_STACK_DUMP;
	if (addr < u->rec->stack_dump_addr || len < sizeof(*result))
		return false;
	at = addr - u->rec->stack_dump_addr;
	if (at > len - sizeof(*result))
		return false;
	memcpy(result, u->rec->stack_dump + at, sizeof(*result));
	return true;
}

static bool unwind_set_initial_registers(Dwfl_Thread *thread, void *thread_arg)
{
	const struct unwind_ctx *u = thread_arg;
	Dwarf_Word regs[HEAL_REGS_N];

	for (int i = 0; i < HEAL_REGS_N; i++)
		regs[i] = u->rec->regs[i];
	return dwfl_thread_state_registers(thread, 0, HEAL_REGS_N, regs);
}

static const Dwfl_Thread_Callbacks unwind_thread_callbacks = {
	.next_thread = unwind_next_thread,
	.get_thread = unwind_get_thread,
	.memory_read = unwind_memory_read,
	.set_initial_registers = unwind_set_initial_registers,
};

int symbolizer__unwind(struct symbolizer *s, const struct heal_rec_crash *rec, const char *exe,
		       struct heal_sym *out, int max)
{
	struct unwind_ctx u = { .s = s, .rec = rec, .out = out, .max = max };
	struct proc_maps none = { 0 }, *p;
	Dwfl *dwfl;
	int err, placed;

	if (!s || !rec || !out || max <= 0)
		return -EINVAL;
	p = proc_find(s, (pid_t)rec->hdr.tgid);
	if (p) {
		p->last_used = ++s->tick;
		if (snapshot_stale(p, rec))
			return -ESTALE;
	} else {
		/* crashed before its map could be read: the record still places the binary and frame 0 */
		p = &none;
	}
	u.tid = rec->hdr.tid > 0 ? (pid_t)rec->hdr.tid : (pid_t)rec->hdr.tgid;

	dwfl = dwfl_begin(&unwind_callbacks);
	if (!dwfl)
		return -ENOMEM;
	u.dwfl = dwfl;
	dwfl_report_begin(dwfl);
	placed = report_snapshot(s, dwfl, p, exe, rec);
	placed += report_exe(s, dwfl, p, exe, rec) == 0;
	if (placed == 0) {
		err = p == &none ? -ENOENT : -ENOEXEC; /* none of its files is readable any more */
		goto cleanup;
	}
	if (dwfl_report_end(dwfl, NULL, NULL) != 0 ||
	    !dwfl_attach_state(dwfl, NULL, (pid_t)rec->hdr.tgid, &unwind_thread_callbacks, &u)) {
		err = -ENOEXEC;
		goto cleanup;
	}
	/* -1 is also how a walk ends at a frame without CFI: the frames found so far stand. */
	(void)dwfl_getthread_frames(dwfl, u.tid, unwind_frame, &u);
	err = u.n;

cleanup:
	dwfl_end(dwfl);
	return err;
}
