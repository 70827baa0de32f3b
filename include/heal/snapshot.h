/* SPDX-License-Identifier: MIT */
/*
 * snapshot: known-good versions of allowlisted files, so "restore last known
 * good" also undoes changes made by people. Layout under STATE_DIR/snapshots:
 *
 *   <escaped path>/index.jsonl          one line per version, oldest first:
 *       {"time_us":..,"hash":"<16 hex>","size":..,"mode":..,"uid":..,"gid":..,"reason":".."}
 *   <escaped path>/<16 hex>-<size>.z    the content, zlib (deflate) stream
 *
 * The path is percent-escaped (all but [A-Za-z0-9._-], and a leading '.');
 * escapes longer than 200 bytes keep a prefix and end in "~<hash of path>".
 * Content is addressed by its 64-bit FNV-1a hash and size. Every file is
 * written to a temp file, fsync'd, renamed, and the directory fsync'd.
 * Takes on one path are serialised with flock, so heald and healctl can
 * share the directory.
 */
#ifndef HEAL_SNAPSHOT_H
#define HEAL_SNAPSHOT_H

#include <stddef.h>
#include <sys/types.h>

#define SNAPSHOT_MAX_FILE   (16u << 20) /* larger files: -EFBIG */
#define SNAPSHOT_REASON_MAX 256		/* longer reasons are cut (at a UTF-8 boundary) */

struct snapshots;

/* Create dir (0700) if needed. keep_per_file: versions kept per path; 0: 10, at most 1000. */
int snapshot__open(const char *dir, unsigned keep_per_file, struct snapshots **out);
/* Accepts NULL. */
void snapshot__close(struct snapshots *s);
/*
 * Store path's current content (a regular file, symlinks followed) with its
 * mode, uid, gid and reason (may be NULL). When it equals the newest stored
 * version nothing is recorded (*stored = 0, may be NULL). Versions beyond
 * keep_per_file are pruned. 0, -ENOENT, -EFBIG (over SNAPSHOT_MAX_FILE),
 * -EINVAL (not a regular file) or -errno. Use the same spelling of path
 * (absolute) in every call: it is the key.
 */
int snapshot__take(struct snapshots *s, const char *path, const char *reason, int *stored);
/*
 * The newest version: content malloc'd (exact bytes, plus a NUL after them
 * for convenience), len, and permission bits/uid/gid (each may be NULL).
 * 0, -ENOENT (no version), -EBADMSG (stored object damaged) or -errno.
 */
int snapshot__latest(struct snapshots *s, const char *path, char **content, size_t *len,
		     mode_t *mode, uid_t *uid, gid_t *gid);
/* The newest version whose content differs from current (may be NULL if
 * current_len is 0): what to restore when the current content is bad. Same
 * returns as snapshot__latest. */
int snapshot__latest_other_than(struct snapshots *s, const char *path, const char *current,
				size_t current_len, char **content, size_t *len);
/* Versions newest first; hash is 16 hex digits. cb's nonzero return stops
 * the walk and is returned. 0 (also when there are none) or -errno. */
int snapshot__list(struct snapshots *s, const char *path,
		   int (*cb)(void *ctx, long long time_us, const char *hash, size_t size,
			     const char *reason),
		   void *ctx);

#endif /* HEAL_SNAPSHOT_H */
