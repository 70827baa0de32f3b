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

/* ---- healing ---- */

enum heal_mode {
	HEAL_MODE_AUTO = 0, /* heal without asking */
	HEAL_MODE_APPROVE,  /* plans riskier than approve_above wait for a person */
	HEAL_MODE_DRY_RUN,  /* diagnose and plan, change nothing */
	HEAL_MODE_OBSERVE,  /* detect and report only: no traces */
};

struct heal_guardrails {
	char **allow; /* globs of files heald may change (NULL-terminated) */
	size_t n_allow;
	char **deny; /* extended regexes forbidden in added lines */
	size_t n_deny;
	char **validate; /* argv run on a candidate file ("{}" = its path); NULL: by file type */
	uint32_t max_lines; /* default 50 */
	uint32_t max_files; /* default 3 */
};

struct heal_reload {
	int signal;          /* e.g. SIGHUP; 0 none */
	bool restart;        /* supervised targets: stop gracefully, start, wait ready */
	char **command;      /* argv; NULL none */
	uint32_t stop_timeout_ms; /* default 5000 */
};

/* What supervision does when a supervised target's main process ends and no heal brings it back. */
enum heal_restart_policy {
	HEAL_RESTART_ALWAYS = 0, /* start it again after a backoff (the default) */
	HEAL_RESTART_NEVER,	 /* leave it down (one-shot jobs); heals may still start it */
};

struct heal_restart {
	enum heal_restart_policy policy;
	uint32_t backoff_ms;	 /* first delay, doubled per quick death; default 1000 */
	uint32_t max_backoff_ms; /* default 30000 */
};

struct heal_verify {
	char **command;       /* argv; exit 0 = healthy; NULL: only the recurrence window */
	uint32_t tries;       /* default 3 */
	uint32_t interval_ms; /* between tries, default 500 */
	uint32_t timeout_ms;  /* per try, default 5000 */
	uint32_t window_ms;   /* the same signature must not recur within it, default 3000 */
};

struct heal_dependency {
	char *target; /* a target name (restarted when the address refuses) */
	char *addr;   /* "127.0.0.1:8081" as it shows in connect failures */
};

enum heal_action {
	HEAL_ACT_RESTORE_KNOWN_GOOD = 1, /* params: file (optional) */
	HEAL_ACT_RAISE_NOFILE,           /* params: limit (optional, default 4x) */
	HEAL_ACT_CLEANUP,                /* params: globs, compress */
	HEAL_ACT_RESTART_DEPENDENCY,     /* params: target */
	HEAL_ACT_RESTART,                /* restart the target itself */
	HEAL_ACT_JSON_SET,               /* params: file, pointer, value */
	HEAL_ACT_LLM_PATCH,              /* params: file */
};

struct heal_playbook_match {
	const char *type;   /* static: "SYSCALL_FAILURE", ...; NULL any */
	int syscall;        /* -1 any */
	int err;            /* -1 any */
	char *path;         /* glob on payload.path/addr; NULL any */
	int signal;         /* 0 any */
	char *symbol;       /* NULL any */
	int exit_code;      /* -1 any */
	bool has_ret;
	struct heal_predicate ret;
};

struct heal_playbook {
	char *name;
	struct heal_playbook_match match;
	enum heal_action action;
	char *file;         /* restore_known_good, json_set, llm_patch */
	char *pointer;      /* json_set: RFC 6901 pointer */
	char *value_json;   /* json_set: the new value, as JSON text */
	char **globs;       /* cleanup */
	bool compress;      /* cleanup: gzip instead of delete */
	char *dep_target;   /* restart_dependency */
	uint64_t limit;     /* raise_nofile */
	double confidence;  /* 0..1, default 0.8 */
	double risk;        /* 0..1, default 0.3 */
};

/* A failure a person may switch on from the dashboard or the API (the demo's "break it"). */
struct heal_trigger {
	char *name;
	char *description;
	char **command; /* argv */
};

struct heal_limits {
	uint32_t heals_per_hour;         /* all targets, default 30 */
	uint32_t per_signature_per_hour; /* default 4 */
	uint32_t backoff_ms;             /* first wait between attempts on one signature, default 1000 */
	uint32_t backoff_max_ms;         /* default 60000 */
	uint32_t breaker_failures;       /* failed heals of a signature before ESCALATED, default 3 */
	uint32_t breaker_reset_ms;       /* healthy time that closes the breaker again, default 600000 */
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
	struct heal_restart restart;
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
	/* healing */
	bool has_guardrails; /* else the config's top-level guardrails apply */
	struct heal_guardrails guardrails;
	struct heal_reload reload;
	char **build; /* argv run before a restart after a code patch */
	struct heal_verify verify;
	char *ready_tcp;  /* "host:port" accepting connections = ready after a start */
	uint32_t ready_timeout_ms;
	struct heal_dependency *deps;
	size_t n_deps;
	char **cleanup; /* globs the ENOSPC playbook may remove or compress */
	struct heal_playbook *playbooks;
	size_t n_playbooks;
	struct heal_trigger *triggers;
	size_t n_triggers;
};

struct heal_config {
	char *path;
	char *state_dir;
	struct heal_target *targets;
	size_t n_targets;
	uint32_t samples_per_sec;  /* "samples_per_sec": per (process, syscall, errno); default 10 */
	uint32_t ringbuf_kb;       /* "ringbuf_kb": ring buffer size; default 1024, power of 2 */
	uint32_t rescan_ms;        /* "rescan_ms": how often match targets are looked for; default 2000 */
	enum heal_mode mode;
	double approve_above;      /* risk above which approve mode waits; default 0.5 */
	struct heal_guardrails guardrails;
	struct heal_limits limits;
	char *llm_json;            /* the "llm" object as JSON text, parsed by the LLM client; NULL none */
	char *listen;              /* "listen": the HTTP API's address; NULL: the default; "" off */
	char *store_postgres;      /* "store": {"postgres": URL}: the fleet store; NULL none */
	char *store_host;          /* "store": {"host": NAME}: this host's name in it; NULL: hostname */
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
/* The guardrails that apply to t: its own, else the config's. */
const struct heal_guardrails *config__guardrails(const struct heal_config *cfg,
						 const struct heal_target *t);
const char *config__mode_name(enum heal_mode m);
const char *config__action_name(enum heal_action a);
/* The target called name, or NULL. */
const struct heal_target *config__target_by_name(const struct heal_config *cfg, const char *name);
/* The api rule with this id (heal_rec_api.api_id), or NULL; *target (optional) gets its target. */
const struct heal_api_rule *config__api_rule_by_id(const struct heal_config *cfg, uint32_t id,
						   const struct heal_target **target);

#endif /* HEAL_CONFIG_H */
