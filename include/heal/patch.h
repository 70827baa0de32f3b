/* SPDX-License-Identifier: MIT */
/*
 * A patch: new content for one or more files. Renders a unified diff, counts
 * what it changes, and applies it atomically per file after keeping a
 * byte-exact backup that patch__restore() puts back.
 */
#ifndef HEAL_PATCH_H
#define HEAL_PATCH_H

#include <stddef.h>

/* Diff limits per side of one file; larger files make the diff fail with -E2BIG. */
#define PATCH_MAX_BYTES (1u << 20)
#define PATCH_MAX_LINES 20000u
/* Length of a backup id ("20250101T120000Z-ab12Cd") with its NUL. */
#define PATCH_BACKUP_ID_LEN 24

/*
 * One file. old_* is what the patch was computed against (old_exists 0: the
 * patch creates the file); new_content is written in full (NULL = empty).
 * A patch never deletes a file. Contents need not be NUL-terminated.
 */
struct patch_file {
	char *path;
	char *old_content;
	size_t old_len;
	int old_exists;
	char *new_content;
	size_t new_len;
};

struct patch {
	struct patch_file *files;
	size_t n;
};

/*
 * Unified diff of every file, 3 lines of context, "--- path" / "+++ path"
 * headers ("--- /dev/null" for a new file), so `patch -p0` applies it. Files
 * without changes are left out; content with NUL bytes gives "Binary files
 * ... differ". malloc'd; NULL with errno set (E2BIG, ENOMEM, EINVAL).
 */
char *patch__diff(const struct patch *p);
/* Lines added + removed across files; SIZE_MAX when a file cannot be diffed. */
size_t patch__changed_lines(const struct patch *p);
/* Lines added and removed across files. 0, -E2BIG (a file over the limits), -ENOMEM, -EINVAL. */
int patch__line_stats(const struct patch *p, size_t *added, size_t *removed);

/* Called per added line: text without its newline, 1-based line number in the new content. */
typedef int (*patch_line_fn)(const char *line, size_t len, size_t lineno, void *ctx);
/* Call fn for each line f adds, in order; stops at fn's first non-zero return and returns it. */
int patch__for_each_added(const struct patch_file *f, patch_line_fn fn, void *ctx);

/*
 * Apply p. First every target is checked against the patch (regular file, not
 * a symlink, content still equal to old_content, else -ESTALE / -EEXIST /
 * -ELOOP) and copied byte for byte into a new directory <backup_dir>/<id>
 * (0700) with manifest.json (path, existed, mode, uid, gid, size), all
 * fsync'd. Then each file is written to ".<name>.heal-XXXXXX" in its own
 * directory, fsync'd, given the original's mode and owner (new files: 0644,
 * owned like their directory), renamed over the target, and the directory
 * fsync'd. If a file fails, the ones already written are restored, the backup
 * is dropped and backup_id is "". 0 and backup_id, or -errno and a sentence
 * in err (when restoring failed too, the backup is kept and named there).
 */
int patch__apply(const struct patch *p, const char *backup_dir, char *backup_id, size_t idlen,
		 char *err, size_t errlen);
/*
 * Put back every file of a backup byte for byte (same atomic write, recorded
 * mode and owner) and remove the files the patch created, last file first.
 * Keeps going past a failing file; returns the first error. The backup stays.
 */
int patch__restore(const char *backup_dir, const char *backup_id, char *err, size_t errlen);

/* Read a regular file of at most max bytes into a NUL-terminated malloc'd buffer. 0, -EFBIG,
 * -errno. */
int patch__read_file(const char *path, size_t max, char **content, size_t *len);
/* Free what the files own and the file array (not p itself). Accepts NULL. */
void patch__free(struct patch *p);

#endif /* HEAL_PATCH_H */
