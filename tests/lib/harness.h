/* SPDX-License-Identifier: MIT */
/*
 * End-to-end test harness, in the spirit of the kernel's BPF selftests:
 * named ASSERT_* per fact (each returns bool), subtests, clean skips that
 * HEAL_REQUIRE_BPF=1 turns into failures. Also runs heald as a real process
 * and collects the events it prints.
 */
#ifndef HEAL_TEST_HARNESS_H
#define HEAL_TEST_HARNESS_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

/* ---- assertions ---- */
void h_fail(const char *file, int line, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#define ASSERT_TRUE(cond, name)                                                              \
	({                                                                                   \
		bool ___ok = (cond);                                                         \
		if (!___ok)                                                                  \
			h_fail(__FILE__, __LINE__, name, "unexpected false: %s", #cond);     \
		___ok;                                                                       \
	})
#define ASSERT_FALSE(cond, name) ASSERT_TRUE(!(cond), name)
#define ASSERT_EQ(a, b, name)                                                                \
	({                                                                                   \
		long long ___a = (long long)(a), ___b = (long long)(b);                      \
		bool ___ok = ___a == ___b;                                                   \
		if (!___ok)                                                                  \
			h_fail(__FILE__, __LINE__, name, "%s = %lld, expected %lld", #a,     \
			       ___a, ___b);                                                  \
		___ok;                                                                       \
	})
#define ASSERT_GE(a, b, name)                                                                \
	({                                                                                   \
		long long ___a = (long long)(a), ___b = (long long)(b);                      \
		bool ___ok = ___a >= ___b;                                                   \
		if (!___ok)                                                                  \
			h_fail(__FILE__, __LINE__, name, "%s = %lld, expected >= %lld", #a,  \
			       ___a, ___b);                                                  \
		___ok;                                                                       \
	})
#define ASSERT_LE(a, b, name)                                                                \
	({                                                                                   \
		long long ___a = (long long)(a), ___b = (long long)(b);                      \
		bool ___ok = ___a <= ___b;                                                   \
		if (!___ok)                                                                  \
			h_fail(__FILE__, __LINE__, name, "%s = %lld, expected <= %lld", #a,  \
			       ___a, ___b);                                                  \
		___ok;                                                                       \
	})
#define ASSERT_STREQ(a, b, name)                                                             \
	({                                                                                   \
		const char *___a = (a), *___b = (b);                                         \
		bool ___ok = ___a && ___b && strcmp(___a, ___b) == 0;                        \
		if (!___ok)                                                                  \
			h_fail(__FILE__, __LINE__, name, "%s = \"%s\", expected \"%s\"", #a, \
			       ___a ? ___a : "(null)", ___b ? ___b : "(null)");              \
		___ok;                                                                       \
	})
#define ASSERT_OK_PTR(p, name)                                                               \
	({                                                                                   \
		bool ___ok = (p) != NULL;                                                    \
		if (!___ok)                                                                  \
			h_fail(__FILE__, __LINE__, name, "%s is NULL", #p);                  \
		___ok;                                                                       \
	})

/* ---- subtests ---- */
typedef void (*h_test_fn)(void);
/* Run fn as subtest name (its asserts and skips count towards it); HEAL_ONLY=name runs only that one. */
void h_subtest(const char *name, h_test_fn fn);
/* Skip the current subtest with a reason; under HEAL_REQUIRE_BPF=1 a BPF skip fails. */
void h_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Skip unless BPF can run here (root, BTF, tracefs); returns false when skipped. */
bool h_need_bpf(void);
/* Print the summary line; returns the process exit code. */
int h_summary(const char *suite);

/* ---- paths ---- */
const char *h_bin(const char *name); /* $BIN/name, BIN defaults to .output/obj/bin */
/* A fresh temporary directory for this subtest (removed at exit unless HEAL_KEEP=1). */
const char *h_tmpdir(void);
/* Line number of the first line in the repository file containing needle, or -1. */
int h_source_line(const char *file, const char *needle);

/* ---- running heald ---- */
struct h_heald {
	pid_t pid;
	int out_fd;  /* heald's stdout */
	char dir[PATH_MAX];
	char config[PATH_MAX + 16];
	char errlog[PATH_MAX + 16];
	char buf[1 << 16];
	size_t buf_len;
	cJSON **events;
	size_t n_events, cap_events;
};

/*
 * Write config_json to DIR/heal.json (the string "@STATE@" is replaced by
 * DIR/state, "@FAILGEN@" by the failgen binary) and start heald --watch on it;
 * returns once heald says it is watching (or false on timeout/exit).
 */
bool h_heald_start(struct h_heald *h, const char *config_json);
/* SIGKILL heald the way a crash would (its supervised children live on); keep what it printed. */
void h_heald_kill(struct h_heald *h);
/*
 * Start heald again on the same config and state dir, after h_heald_stop or
 * h_heald_kill; the events collected so far are dropped (the previous run's
 * stderr is kept as heald.err.1).
 */
bool h_heald_restart(struct h_heald *h);
/* Wait up to timeout_ms for an event of type (and, when key is not NULL, that key). */
cJSON *h_heald_wait(struct h_heald *h, const char *type, const char *key, int timeout_ms);
/* Wait for an event of type whose payload.pid equals pid. */
cJSON *h_heald_wait_pid(struct h_heald *h, const char *type, int pid, int timeout_ms);
/* Collect whatever arrives for ms milliseconds. */
void h_heald_drain(struct h_heald *h, int ms);
/* Events of type seen so far. */
int h_heald_count(struct h_heald *h, const char *type);
/* SIGTERM heald, collect the rest; returns its exit status (wait(2) form) or -1. */
int h_heald_stop(struct h_heald *h);
void h_heald_free(struct h_heald *h);
/* Contents of the target's log (DIR/state/NAME.log), malloc'd; "" if none. */
char *h_target_log(struct h_heald *h, const char *target);

/* Run argv, capture stdout+stderr (malloc'd, NUL-terminated); returns wait status. */
int h_run(char *const argv[], char **output);

/* One HTTP/1.0 request to 127.0.0.1:port; returns the status, or -1 when it could not connect. */
int h_http(int port, const char *method, const char *path, const char *body);
/* A free TCP port on 127.0.0.1 (bound and released). */
int h_free_port(void);
/* Read a whole file (malloc'd, NUL-terminated); NULL if missing. */
char *h_read(const char *path, size_t *len);
/* Write a whole file. */
bool h_write(const char *path, const char *content);

/* payload helpers */
const char *h_str(const cJSON *ev, const char *field);
double h_num(const cJSON *ev, const char *field);
/* CLOCK_MONOTONIC in milliseconds. */
long h_now_ms(void);

#endif /* HEAL_TEST_HARNESS_H */
