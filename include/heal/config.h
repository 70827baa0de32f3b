/* SPDX-License-Identifier: MIT */
/* heal.json: parse, validate, and the typed view the rest of heald uses. */
#ifndef HEAL_CONFIG_H
#define HEAL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "heal/events.h"

#define HEAL_DEFAULT_STATE_DIR "/var/lib/heal"

struct heal_syscall_rule {
	int *syscalls;      /* syscall numbers; empty when any */
	size_t n_syscalls;
	bool any_syscall;   /* "syscall": "*" */
	int *errnos;        /* positive errnos */
	size_t n_errnos;
	bool any_errno;     /* "errno": "*" */
	uint32_t threshold; /* default 1 */
	uint32_t window_ms; /* default 0: no window */
};

struct heal_predicate {
	enum heal_pred_op op; /* HEAL_OP_NONE: always true */
	int arg;              /* 0: "ret"; N >= 1: "argN" (USDT only) */
	int64_t value;
};

struct heal_api_rule {
	uint32_t id;    /* index across all targets, in file order: the api_specs key and cookie */
	uint32_t target_id;
	char *binary;   /* absolute path */
	char *symbol;   /* uprobe: function name; NULL for USDT */
	char *usdt_provider;
	char *usdt_name;
	struct heal_predicate fail_when;
	uint32_t ret_bits;       /* "ret_type": "int" (32, default) | "long" (64) */
	enum heal_arg_kind capture_kind;
	uint32_t capture_index;  /* 1-based; for uprobes up to 6 */
};

struct heal_match {
	char *exe;      /* absolute path, compared by inode */
	char *comm;     /* up to 15 chars */
	char *pid_file;
	char *cgroup;   /* cgroup v2 path, absolute under the unified mount or relative to it */
};

struct heal_target {
	char *name;
	uint32_t id; /* index + 1; 0 is never a target */
	/* supervised */
	char **exec; /* NULL-terminated argv; NULL when matched */
	size_t n_exec;
	char *exec_path; /* exec[0] resolved through PATH when it has no '/'; else a copy of exec[0] */
	char *cwd;
	char **env; /* NULL-terminated "K=V" */
	size_t n_env;
	char *user;
	/* matched */
	bool has_match;
	struct heal_match match;
	/* detect; a target without a "detect" object watches crashes and exits */
	struct heal_syscall_rule *syscall_rules;
	size_t n_syscall_rules;
	bool crashes, exits, oom;
	struct heal_api_rule *api;
	size_t n_api;
	uint32_t detect; /* enum heal_detect_flags, derived */
};

struct heal_config {
	char *path;
	char *state_dir;
	struct heal_target *targets;
	size_t n_targets;
	uint32_t samples_per_sec;  /* "samples_per_sec": per (process, syscall, errno); default 10 */
	uint32_t ringbuf_kb;       /* "ringbuf_kb": ring buffer size; default 1024, power of 2 */
	uint32_t rescan_ms;        /* "rescan_ms": how often match targets are looked for; default 2000 */
};

/* One "file: field: reason" problem. */
struct heal_config_error {
	char *field; /* JSON path, e.g. targets[0].detect.syscalls[1].errno[0] */
	char *reason;
};

struct heal_config_errors {
	struct heal_config_error *v;
	size_t n;
};

/*
 * Parse and validate the file at path. On success returns 0 and *out.
 * On problems returns -EINVAL and fills errs (every problem, not just the
 * first); other negative errnos when the file cannot be read.
 * check_files: also check that binaries exist and symbols/USDT notes resolve.
 */
int config__load(const char *path, bool check_files, struct heal_config **out,
		 struct heal_config_errors *errs);
/* The same from a string; path is used in messages only. */
int config__parse(const char *json, const char *path, bool check_files,
		  struct heal_config **out, struct heal_config_errors *errs);
void config__free(struct heal_config *cfg);
void config_errors__free(struct heal_config_errors *errs);

/* Parse "ret >= 500" / "arg2 != 0". Returns 0 or -EINVAL with *why set to a static reason. */
int predicate__parse(const char *s, struct heal_predicate *out, const char **why);
/* Evaluate the predicate on a value (the same semantics the BPF side applies). */
bool predicate__eval(const struct heal_predicate *p, int64_t v);

const struct heal_target *config__target_by_id(const struct heal_config *cfg, uint32_t id);
/* The target called name, or NULL. */
const struct heal_target *config__target_by_name(const struct heal_config *cfg, const char *name);
/* The api rule with this id (heal_rec_api.api_id), or NULL; *target (optional) gets its target. */
const struct heal_api_rule *config__api_rule_by_id(const struct heal_config *cfg, uint32_t id,
						   const struct heal_target **target);

#endif /* HEAL_CONFIG_H */
