/* SPDX-License-Identifier: MIT */
/*
 * journal: heald's embedded default store, append-only JSON lines in
 * STATE_DIR/journal/:
 *
 *   current.jsonl              lines being appended (0600, O_APPEND)
 *   journal-<seq>.jsonl.gz     rotated files, gzip (zcat reads them); the
 *                              smallest seq is the oldest
 *   journal-<seq>.jsonl        a rotated file whose compression was cut off
 *                              by a crash or failed; finished at the next
 *                              rotation or open, read as is meanwhile
 *
 * One writer per directory (journal__open takes an exclusive flock on it);
 * any number of readers with journal__read, heald running or not.
 */
#ifndef HEAL_JOURNAL_H
#define HEAL_JOURNAL_H

#include <stddef.h>

/* Longest line accepted by journal__append and returned by journal__read. */
#define JOURNAL_LINE_MAX (1u << 20)

struct journal;

struct journal_opts {
	size_t rotate_bytes; /* rotate past this size; 0: 8 MiB; clamped to 4 KiB..1 GiB */
	unsigned keep_files; /* rotated files kept; 0: 20, at most 10000 */
};

struct journal_stats {
	unsigned long long lines;	    /* appended since open */
	unsigned long long bytes;	    /* appended since open, newlines included */
	unsigned long long rotations;	    /* current.jsonl swapped for an empty one */
	unsigned long long rotate_failures; /* swap or compression failed; retried later */
	int last_rotate_err;		    /* -errno of the latest failure, 0 if none */
};

/*
 * Create dir (0700) if needed, lock it, open or create current.jsonl, drop a
 * torn last line left by a crash, finish any rotation a crash cut off.
 * o may be NULL (defaults). 0, -EBUSY (another writer has it) or -errno.
 */
int journal__open(const char *dir, const struct journal_opts *o, struct journal **out);
/* fdatasync and close; accepts NULL. */
void journal__close(struct journal *j);
/*
 * Append one line: a JSON object with no newline, at most JOURNAL_LINE_MAX
 * bytes. It goes out in one writev(2) with its '\n' (short writes retried; a
 * failed partial line is truncated away), then fdatasync(2) when sync is
 * nonzero. 0 once the line is written (and synced), -EINVAL (empty, has a
 * newline), -EMSGSIZE or -errno.
 *
 * When current.jsonl passes rotate_bytes the same call rotates it: a hard
 * link and a rename swap in an empty current.jsonl (cheap), then the old one
 * is gzip'd synchronously into journal-<seq>.jsonl.gz (temp file, fsync,
 * rename) and files beyond keep_files are removed. That one call blocks
 * for the compression: ~80 ms for the default 8 MiB of event JSON (gzip
 * level 6, ~14x smaller, ext4, fsyncs included), once per 8 MiB appended.
 * A failed rotation does not fail the append: it is counted in
 * journal__stats and retried.
 */
int journal__append(struct journal *j, const char *json_line, int sync);
/* Counters since open. */
void journal__stats(const struct journal *j, struct journal_stats *st);

/* Called with each line (NUL-terminated, no newline); nonzero stops the read. */
typedef int (*journal_line_fn)(const char *line, void *ctx);
/*
 * Read every line of the journal in dir in order: rotated files oldest first,
 * then current.jsonl. An unterminated last line of current.jsonl (a write in
 * flight or cut by a crash) is skipped silently; complete lines that are not
 * a JSON object, longer than JOURNAL_LINE_MAX, or an unreadable gzip file
 * are skipped and counted in *skipped (may be NULL). Needs no running heald;
 * lines rotated away while reading may be missed. 0, the callback's nonzero
 * return value, -ENOENT (no such dir) or -errno.
 */
int journal__read(const char *dir, journal_line_fn cb, void *ctx, unsigned *skipped);

#endif /* HEAL_JOURNAL_H */
