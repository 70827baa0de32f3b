/* SPDX-License-Identifier: MIT */
/*
 * guard: the guardrails every patch passes before anything is written. Only
 * reads the file system (realpath, lstat) and runs validators on temp copies.
 */
#ifndef HEAL_GUARD_H
#define HEAL_GUARD_H

#include <stddef.h>

#include "heal/patch.h"

/* Defaults for the limits left at 0. */
#define GUARD_DEFAULT_MAX_LINES	 50u
#define GUARD_DEFAULT_MAX_FILES	 3u
#define GUARD_DEFAULT_TIMEOUT_MS 10000u
/* Validator output kept in a reason. */
#define GUARD_OUTPUT_MAX 1024
/* A sentence plus up to GUARD_OUTPUT_MAX bytes of validator output. */
#define GUARD_REASON_LEN 1280
/* Number of rules, so a verdict array of this size always holds them all. */
#define GUARD_RULES 8

struct guard_rules {
	/*
	 * fnmatch(3) globs matched without FNM_PATHNAME, so '*' also matches '/':
	 * "/etc/shop/" followed by '*' covers the whole tree below /etc/shop, and
	 * "**" is just '*'. They match the resolved path (symlinks and ".." gone);
	 * the directory part before the first wildcard is resolved too, so a
	 * pattern still matches when /etc/shop is itself a symlink. An empty
	 * allowlist allows nothing.
	 */
	char **allow;
	size_t n_allow;
	unsigned max_lines; /* lines added + removed; 0 = GUARD_DEFAULT_MAX_LINES */
	unsigned max_files; /* 0 = GUARD_DEFAULT_MAX_FILES */
	char **deny;	    /* POSIX extended regexes forbidden in added lines */
	size_t n_deny;
	/* NULL-terminated argv run for every file ("{}" = the temp copy); must exit 0 */
	char **validate;
	/* NULL-terminated argv that must build a .c/.h file ("{}" = the temp copy) */
	char **build;		     /* NULL: cc -fsyntax-only -I<its dir> -I<its dir>/../include */
	unsigned command_timeout_ms;
	/*
	 * Nonzero: the patch restores a known-good version of each file (content
	 * that ran before), so its lines are not scanned for secrets, dangerous
	 * operations or deny patterns; paths, sizes and validators still apply.
	 */
	int restore; /* per command, killed after; 0 = GUARD_DEFAULT_TIMEOUT_MS */
};

/*
 * rule: "allowlist", "path", "max_files", "max_lines", "secrets", "dangerous",
 * "deny" or "validate"; reason: a sentence for a person, blocked or not.
 */
struct guard_verdict {
	const char *rule;
	int ok;
	char reason[GUARD_REASON_LEN];
};

/*
 * Check p against r, never writing a target. Every rule is checked, in the
 * order above, except "validate" (it runs commands): it only runs when all
 * others passed. Fills up to vcap verdicts and *nv with how many; returns 0
 * when all pass, -EPERM with *blocked_by set to the first failing rule, or
 * -EINVAL / -ENOMEM. Validators run on temp copies under $TMPDIR (or /tmp),
 * each in its own process group, killed with it after the timeout; this can
 * take that long, so call it from a worker.
 *
 * "path" blocks a relative, non-canonical (symlinked directory, "..", "//")
 * or unresolvable path, a final component that is a symlink, a target that
 * is not a regular file, a file listed twice. "secrets" blocks an added line
 * where redact__has_secret() finds a secret the old content did not hold
 * (moving or re-indenting one is fine, a new value is not). "dangerous"
 * blocks shell-outs (system/popen/exec*(, posix_spawn, subprocess, sh -c,
 * backticks and $( in shell files), rm -r, permission and identity changes
 * (chmod, chown, setuid, 0777...), curl|wget piped to a shell and the account
 * files (/etc/passwd, /etc/shadow, /etc/sudoers...). "validate": .json must
 * parse, .c/.h must build, the validate command must exit 0.
 */
int guard__check(const struct guard_rules *r, const struct patch *p, struct guard_verdict *v,
		 size_t *nv, size_t vcap, const char **blocked_by);

#endif /* HEAL_GUARD_H */
