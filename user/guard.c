// SPDX-License-Identifier: MIT
/*
 * guard: the guardrails a patch passes before patch__apply() may write it.
 * Static rules look at resolved paths and at the lines the patch adds;
 * validators run on temp copies of the new content, never on the targets.
 */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <regex.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "heal/guard.h"
#include "heal/patch.h"
#include "heal/redact.h"

/*
 * ---- patterns ------------------------------------------------------------------
 * secret_patterns name a secret for a reason ("API key"); whether a line has
 * one is redact__has_secret()'s call. danger_patterns decide "dangerous".
 */

struct pattern {
	const char *what; /* secret kind, or the danger in "adds <what>: <shown>" */
	const char *re;	  /* POSIX extended regex */
	int icase;
	int show;	    /* dangers: submatch shown in the reason */
	const char *label;  /* dangers: shown instead of the submatch */
	int shell_only;	    /* dangers: only in shell files */
	int vgroup, vcount; /* secrets: submatches holding the value (first, how many) */
	unsigned min_value; /* secrets: shortest value that counts */
};

/*
 * Key = value (JSON, YAML, INI, env, C string assignments). Groups: 1 the
 * boundary, 2 the key, then the key's own groups, then (value (dq) (sq) (bare)).
 */
#define KV_PRE "(^|[^[:alnum:]])("
#define KV_POST                                                                                    \
	")[\"']?[[:space:]]*[:=][[:space:]]*(\"([^\"]*)\"|'([^']*)'|([^\"'[:space:];,()]+)"        \
	"([[:space:],#]|$))"
#define KV(kind, keys, key_groups, min)                                                            \
	{                                                                                          \
		.what = kind, .re = KV_PRE keys KV_POST, .icase = 1, .vgroup = 4 + (key_groups),   \
		.vcount = 3, .min_value = min                                                      \
	}

static const struct pattern secret_patterns[] = {
    {.what = "private key", .re = "-----BEGIN ([A-Z0-9]+ )*PRIVATE KEY( BLOCK)?-----"},
    {.what = "AWS access key", .re = "(^|[^A-Za-z0-9])(AKIA|ASIA)[A-Z0-9]{16}([^A-Za-z0-9]|$)"},
    {.what = "API key", .re = "(^|[^A-Za-z0-9_-])sk-[A-Za-z0-9_-]{20,}"},
    {.what = "API key", .re = "(^|[^A-Za-z0-9_])(sk|rk)_(live|test)_[A-Za-z0-9]{16,}"},
    {.what = "GitHub token", .re = "gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}"},
    {.what = "GitLab token", .re = "glpat-[A-Za-z0-9_-]{20,}"},
    {.what = "Slack token", .re = "xox[abposr]-[A-Za-z0-9-]{10,}"},
    {.what = "Google API key", .re = "AIza[0-9A-Za-z_-]{35}"},
    {.what = "token", .re = "eyJ[A-Za-z0-9_-]{8,}\\.eyJ[A-Za-z0-9_-]{8,}\\.[A-Za-z0-9_-]+"},
    {.what = "token", .re = "bearer[[:space:]]+[A-Za-z0-9._~+/=-]{20,}", .icase = 1},
    {.what = "password",
     .re = "[[:alpha:]][[:alnum:]+.-]*://[^/:@[:space:]\"']+:([^/@[:space:]\"']{3,})@",
     .vgroup = 1,
     .vcount = 1,
     .min_value = 3},
    KV("password", "password|passwd|passphrase|pwd|pass", 0, 4),
    KV("API key", "api[_-]?key|apikey|x-api-key|access[_-]?key[_-]?id|secret[_-]?access[_-]?key", 0,
       12),
    KV("token", "(access|auth|refresh|bearer|api|session|private)[_-]?token|token", 1, 12),
    KV("secret", "client[_-]?secret|secret[_-]?key|secret|private[_-]?key", 0, 8),
};

#define WB "(^|[^[:alnum:]_])" /* word boundary before */
#define WE "([^[:alnum:]_]|$)" /* and after */

#define DANGER(kind, regex, group)                                                                 \
	{                                                                                          \
		.what = kind, .re = regex, .show = group                                           \
	}

static const struct pattern danger_patterns[] = {
    DANGER("a download piped to a shell",
	   WB "((curl|wget)[^|]*\\|[[:space:]]*(sudo[[:space:]]+)?(ba|da|z|k)?sh)" WE, 2),
    DANGER("a download piped to a shell",
	   WB "((ba|da|z|k)?sh[[:space:]]*<[[:space:]]*\\([[:space:]]*(curl|wget))", 2),
    DANGER("a shell-out",
	   WB "((system|popen|execl|execlp|execle|execv|execvp|execvpe|execve|execveat|fexecve|"
	      "posix_spawnp?)[[:space:]]*\\()",
	   2),
    DANGER("a shell-out",
	   WB "(subprocess\\.[[:alnum:]_]+|child_process|os\\.popen|Runtime\\.getRuntime)", 2),
    DANGER("a shell-out", WB "((/usr)?(/bin/)?(ba|da|z|k)?sh[[:space:]]+-[[:alpha:]]*c)" WE, 2),
    {.what = "a shell-out", .re = "`", .label = "backticks", .shell_only = 1},
    {.what = "a shell-out", .re = "\\$\\(", .label = "$(", .shell_only = 1},
    DANGER("a recursive delete",
	   WB "(rm[[:space:]]+(-[^[:space:]]*[[:space:]]+)*(-[[:alpha:]]*[rR][[:alpha:]]*|--"
	      "recursive))" WE,
	   2),
    DANGER("a recursive delete", WB "(shutil\\.rmtree|FileUtils\\.rm_r)", 2),
    DANGER("a permission change",
	   WB "(chmod|fchmod|fchmodat|chown|fchown|lchown|fchownat|chgrp|chattr|setcap|setuid|"
	      "setgid|seteuid|setegid|setreuid|setregid|setresuid|setresgid)" WE,
	   2),
    DANGER("a permission change", WB "(0o?777|[ugoa]*\\+rwx)" WE, 2),
    DANGER("a write to an account file",
	   "(/etc/(passwd|shadow|gshadow|group|sudoers(\\.d)?))([^[:alnum:]_.-]|$)", 1),
};

#define N_SECRET (sizeof(secret_patterns) / sizeof(secret_patterns[0]))
#define N_DANGER (sizeof(danger_patterns) / sizeof(danger_patterns[0]))

static regex_t secret_re[N_SECRET], danger_re[N_DANGER];
static pthread_once_t compile_once = PTHREAD_ONCE_INIT;
static int compiled; /* 1 when all compiled, -1 when one failed */

static void compile_patterns(void)
{
	size_t i, s = 0, d = 0;

	for (; s < N_SECRET; s++)
		if (regcomp(&secret_re[s], secret_patterns[s].re,
			    REG_EXTENDED | (secret_patterns[s].icase ? REG_ICASE : 0)))
			goto fail;
	for (; d < N_DANGER; d++)
		if (regcomp(&danger_re[d], danger_patterns[d].re,
			    REG_EXTENDED | (danger_patterns[d].icase ? REG_ICASE : 0)))
			goto fail;
	compiled = 1;
	return;
fail:
	for (i = 0; i < s; i++)
		regfree(&secret_re[i]);
	for (i = 0; i < d; i++)
		regfree(&danger_re[i]);
	compiled = -1;
}

static void __attribute__((destructor)) free_patterns(void)
{
	size_t i;

	if (compiled != 1)
		return;
	for (i = 0; i < N_SECRET; i++)
		regfree(&secret_re[i]);
	for (i = 0; i < N_DANGER; i++)
		regfree(&danger_re[i]);
	compiled = 0;
}

static int patterns_ready(void)
{
	pthread_once(&compile_once, compile_patterns);
	return compiled == 1;
}

/* ---- secrets ----------------------------------------------------------------- */

static bool placeholder(const char *v, size_t n)
{
	static const char *const words[] = {
	    "null",	"none",	   "nil",      "true",	 "false",     "changeme", "change-me",
	    "redacted", "example", "password", "secret", "undefined", "todo",	  "env"};
	size_t i;

	if (!n || strchr("$<{%*", v[0]))
		return true;
	for (i = 1; i < n && v[i] == v[0]; i++)
		;
	if (i == n)
		return true; /* xxxxxxxx */
	for (i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strlen(words[i]) == n && strncasecmp(v, words[i], n) == 0)
			return true;
	return false;
}

/* A match counts when it has no value part, or a value that is long enough and no placeholder. */
static bool real_value(const struct pattern *p, const char *s, const regmatch_t *m)
{
	for (int g = p->vgroup; g < p->vgroup + p->vcount; g++) {
		size_t n = (size_t)(m[g].rm_eo - m[g].rm_so);

		if (m[g].rm_so >= 0 && n >= p->min_value && !placeholder(s + m[g].rm_so, n))
			return true;
	}
	return !p->vcount;
}

/* What kind of secret s holds, or NULL: a name for the reason, not the detector. */
static const char *secret_kind(const char *s)
{
	regmatch_t m[16];
	const char *off;

	if (!patterns_ready())
		return NULL;
	for (size_t i = 0; i < N_SECRET; i++) {
		/* a placeholder value does not end the search: a later one on the line may be real
		 */
		for (off = s; regexec(&secret_re[i], off, 16, m, off == s ? 0 : REG_NOTBOL) == 0;
		     off += m[0].rm_eo) {
			if (real_value(&secret_patterns[i], off, m))
				return secret_patterns[i].what;
			if (m[0].rm_eo <= 0)
				break;
		}
	}
	return NULL;
}

/* The one secret detector heald has (redact.c); secret_kind() only names what it found. */
static bool guard_has_secret(const char *s)
{
	return redact__has_secret(s);
}

static bool token_char(char c)
{
	return c && !strchr(" \t\r\n\v\f\"'`,;:()[]{}<>=", c);
}

/* Is tok (n bytes) a whole token of hay? */
static bool has_token(const char *hay, size_t hlen, const char *tok, size_t n)
{
	const char *p = hay, *end;

	if (!hay || !n)
		return false;
	end = hay + hlen;
	while (p < end && (p = memmem(p, (size_t)(end - p), tok, n))) {
		if ((p == hay || !token_char(p[-1])) && (p + n == end || !token_char(p[n])))
			return true;
		p++;
	}
	return false;
}

/*
 * A secret on an added line is new unless it survives dropping every token
 * the old content does not have: moving or re-indenting a key already in
 * the file is fine, changing its value or adding one is not.
 */
static bool secret_is_new(const char *line, const struct patch_file *f)
{
	const char *old = f->old_exists ? f->old_content : NULL;
	size_t oldlen = f->old_exists ? f->old_len : 0, i = 0, n, k = 0;
	char *kept;
	bool still;

	if (!old || !oldlen)
		return true;
	kept = malloc(strlen(line) + 1);
	if (!kept)
		return true;
	while (line[i]) {
		if (!token_char(line[i])) {
			kept[k++] = line[i++];
			continue;
		}
		for (n = 0; token_char(line[i + n]); n++)
			;
		if (has_token(old, oldlen, line + i, n)) {
			memcpy(kept + k, line + i, n);
			k += n;
		}
		i += n;
	}
	kept[k] = 0;
	still = guard_has_secret(kept);
	free(kept);
	return !still;
}

/* ---- paths ------------------------------------------------------------------- */

static int split_path(const char *path, char *dir, size_t dirlen, const char **base)
{
	const char *slash = strrchr(path, '/');
	size_t n;

	if (!slash)
		return -EINVAL;
	n = slash == path ? 1 : (size_t)(slash - path);
	if (n >= dirlen)
		return -ENAMETOOLONG;
	memcpy(dir, path, n);
	dir[n] = 0;
	*base = slash + 1;
	return 0;
}

static int join(char *out, size_t outlen, const char *dir, const char *name)
{
	int n = snprintf(out, outlen, "%s/%s", strcmp(dir, "/") ? dir : "", name);

	return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

/*
 * Where writing path would really land: realpath of the file, or of its
 * directory plus the name when it does not exist yet, following a dangling
 * final symlink to where it points. out has PATH_MAX bytes.
 */
static int resolve(const char *path, char *out)
{
	char cur[PATH_MAX], dir[PATH_MAX], link[PATH_MAX];
	const char *base;
	struct stat st;
	ssize_t n;
	int err;

	if (snprintf(cur, sizeof(cur), "%s", path) >= (int)sizeof(cur))
		return -ENAMETOOLONG;
	for (int hops = 0; hops < 8; hops++) {
		if (realpath(cur, out))
			return 0;
		if (errno != ENOENT)
			return -errno;
		err = split_path(cur, dir, sizeof(dir), &base);
		if (err)
			return err;
		if (!base[0] || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
			return -ENOENT;
		if (!realpath(dir, out))
			return -errno;
		if (lstat(cur, &st) || !S_ISLNK(st.st_mode)) {
			snprintf(dir, sizeof(dir), "%s", out);
			return join(out, PATH_MAX, dir, base);
		}
		n = readlink(cur, link, sizeof(link) - 1);
		if (n < 0)
			return -errno;
		link[n] = 0;
		if (link[0] == '/')
			snprintf(cur, sizeof(cur), "%s", link);
		else if (join(cur, sizeof(cur), out, link))
			return -ENAMETOOLONG;
	}
	return -ELOOP;
}

struct target {
	char resolved[PATH_MAX];
	int rerr; /* resolve() failed: -errno */
	struct stat st;
	int exists; /* lstat() found something */
};

/* fnmatch pattern, and the same with its leading directory resolved. */
static bool allowed(const struct guard_rules *r, const char *resolved)
{
	char dir[PATH_MAX], rdir[PATH_MAX], alt[PATH_MAX * 2];
	const char *pat, *wild, *slash;

	for (size_t i = 0; i < r->n_allow; i++) {
		pat = r->allow[i];
		if (!pat)
			continue;
		if (fnmatch(pat, resolved, 0) == 0)
			return true;
		wild = strpbrk(pat, "*?[");
		for (slash = wild ? wild : pat + strlen(pat); slash > pat && *slash != '/'; slash--)
			;
		if (*slash != '/' || (size_t)(slash - pat) >= sizeof(dir))
			continue;
		memcpy(dir, pat, (size_t)(slash - pat));
		dir[slash - pat] = 0;
		if (!realpath(dir[0] ? dir : "/", rdir) || strcmp(rdir, dir) == 0)
			continue;
		snprintf(alt, sizeof(alt), "%s%s", strcmp(rdir, "/") ? rdir : "", slash);
		if (fnmatch(alt, resolved, 0) == 0)
			return true;
	}
	return false;
}

static const char *file_type(mode_t m)
{
	if (S_ISDIR(m))
		return "a directory";
	if (S_ISFIFO(m))
		return "a FIFO";
	if (S_ISSOCK(m))
		return "a socket";
	if (S_ISCHR(m) || S_ISBLK(m))
		return "a device";
	return "not a regular file";
}

/* ---- commands ---------------------------------------------------------------- */

struct run {
	int status;    /* wait status of the command, when exited */
	int exited;    /* status is known */
	int timed_out; /* killed after the timeout */
	int spawn_err; /* the command could not be started: errno */
	char out[GUARD_OUTPUT_MAX + 1];
	size_t len;
	int truncated;
};

/* What the runner process reports back. */
struct report {
	int kind; /* REPORT_* */
	int value;
};

enum { REPORT_EXEC_ERRNO = 1, REPORT_STATUS = 2 };

struct clone3_args {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
};

/* fork-like: exit_signal 0 makes a "clone child" that waitpid(-1) does not see. */
static pid_t clone_fork(int exit_signal)
{
	struct clone3_args a = {.exit_signal = (uint64_t)exit_signal};

	return (pid_t)syscall(SYS_clone3, &a, sizeof(a));
}

/* The command itself, in the runner's process group. Only async-signal-safe calls. */
static void __attribute__((noreturn)) exec_command(char *const argv[], int outfd, int repfd)
{
	struct sigaction dfl = {.sa_handler = SIG_DFL};
	struct report r = {REPORT_EXEC_ERRNO, 0};
	sigset_t none;
	int fd, s;

	for (s = 1; s < 32; s++)
		if (s != SIGKILL && s != SIGSTOP)
			sigaction(s, &dfl,
				  NULL); /* ignored signals would stay ignored across exec */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (outfd < 3)
		outfd = fcntl(outfd, F_DUPFD, 3);
	fd = open("/dev/null", O_RDONLY);
	if (fd > 0) {
		dup2(fd, 0);
		close(fd);
	}
	dup2(outfd, 1);
	dup2(outfd, 2);
	syscall(SYS_close_range, 3U, ~0U, 4U /* CLOSE_RANGE_CLOEXEC */);
	execvp(argv[0], argv);
	r.value = errno;
	if (write(repfd, &r, sizeof(r)) < 0)
		_exit(127);
	_exit(127);
}

/*
 * The runner: a copy of heald that starts the command, waits for it and
 * writes its status to repfd. heald's SIGCHLD reaper (waitpid(-1)) may take
 * any child of heald, so the status travels through a pipe; and a command
 * that execs cannot stay invisible to waitpid(-1) (the kernel gives it
 * SIGCHLD again), while the runner, which never execs, can. Only
 * async-signal-safe calls: other threads' locks were copied as they were.
 */
static void __attribute__((noreturn)) runner(char *const argv[], int outfd, int repfd, bool raw)
{
	struct report r = {REPORT_STATUS, 0};
	pid_t pid;

	setpgid(0, 0); /* one group with the command, so a timeout kills both */
	pid = raw ? clone_fork(SIGCHLD) : fork();
	if (pid == 0)
		exec_command(argv, outfd, repfd);
	if (pid < 0) {
		r = (struct report){REPORT_EXEC_ERRNO, errno};
	} else {
		close(outfd);
		while (waitpid(pid, &r.value, 0) < 0)
			if (errno != EINTR)
				_exit(1);
	}
	if (write(repfd, &r, sizeof(r)) < 0)
		_exit(1);
	_exit(0);
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Read what is there; keep the first GUARD_OUTPUT_MAX bytes. Returns 1 at EOF. */
static int take_output(struct run *res, int fd)
{
	char buf[4096];
	ssize_t n;
	size_t room, k;

	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		room = GUARD_OUTPUT_MAX - res->len;
		k = (size_t)n < room ? (size_t)n : room;
		if ((size_t)n > room)
			res->truncated = 1;
		memcpy(res->out + res->len, buf, k);
		res->len += k;
		res->out[res->len] = 0;
	}
	return n == 0;
}

/* Read the runner's reports; returns 1 at EOF (the runner and the command before exec are gone). */
static int take_reports(struct run *res, int fd)
{
	struct report r;
	ssize_t n;

	while ((n = read(fd, &r, sizeof(r))) == sizeof(r)) {
		if (r.kind == REPORT_EXEC_ERRNO)
			res->spawn_err = r.value;
		else if (r.kind == REPORT_STATUS)
			res->status = r.value, res->exited = 1;
	}
	return n == 0;
}

/* Run argv with stdin /dev/null and stdout+stderr captured (first 1 KiB), killed after timeout_ms.
 */
static int run_command(char *const argv[], unsigned timeout_ms, struct run *res)
{
	int out[2] = {-1, -1}, rep[2] = {-1, -1}, err = 0, out_eof = 0, rep_eof = 0;
	long long deadline, left;
	struct pollfd pfd[2];
	bool raw = true;
	pid_t pid;

	memset(res, 0, sizeof(*res));
	if (pipe2(out, O_CLOEXEC) || pipe2(rep, O_CLOEXEC)) {
		err = -errno;
		goto cleanup;
	}
	pid = clone_fork(0);
	if (pid < 0 && (errno == ENOSYS || errno == EPERM)) {
		/* no clone3 (old kernel, seccomp, valgrind): the pipe still carries the status */
		raw = false;
		pid = fork();
	}
	if (pid == 0)
		runner(argv, out[1], rep[1], raw);
	if (pid < 0) {
		err = -errno;
		goto cleanup;
	}
	setpgid(pid, pid); /* also here, so a kill right away cannot miss the group */
	close(out[1]);
	close(rep[1]);
	out[1] = rep[1] = -1;
	fcntl(out[0], F_SETFL, O_NONBLOCK);
	fcntl(rep[0], F_SETFL, O_NONBLOCK);
	deadline = now_ms() + timeout_ms;
	while (!rep_eof) {
		left = deadline - now_ms();
		if (left <= 0) {
			res->timed_out = 1;
			break;
		}
		pfd[0] = (struct pollfd){.fd = out_eof ? -1 : out[0], .events = POLLIN};
		pfd[1] = (struct pollfd){.fd = rep[0], .events = POLLIN};
		if (poll(pfd, 2, left > INT_MAX ? INT_MAX : (int)left) < 0 && errno != EINTR) {
			err = -errno;
			res->timed_out = 1;
			break;
		}
		if (pfd[0].revents)
			out_eof = take_output(res, out[0]);
		if (pfd[1].revents)
			rep_eof = take_reports(res, rep[0]);
	}
	/*
	 * Take down the group: on timeout, and whatever the command left running.
	 * The runner is not reaped yet, so its pid (the group's id) is still ours.
	 */
	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, __WALL) < 0 && errno == EINTR)
		;
	take_output(res, out[0]);
	if (res->timed_out)
		res->exited = 0;
cleanup:
	for (int i = 0; i < 2; i++) {
		if (out[i] >= 0)
			close(out[i]);
		if (rep[i] >= 0)
			close(rep[i]);
	}
	return err;
}

/* argv with every "{}" replaced by file; NULL-terminated, malloc'd. */
static char **expand_argv(char *const *argv, const char *file)
{
	size_t n = 0, i, flen = strlen(file);
	char **out;

	while (argv[n])
		n++;
	out = calloc(n + 1, sizeof(*out));
	if (!out)
		return NULL;
	for (i = 0; i < n; i++) {
		const char *s = argv[i], *m;
		size_t count = 0, len;
		char *d;

		for (m = s; (m = strstr(m, "{}")); m += 2)
			count++;
		len = strlen(s) + count * flen;
		out[i] = d = malloc(len + 1);
		if (!d)
			goto fail;
		for (m = s; *m;) {
			if (m[0] == '{' && m[1] == '}') {
				memcpy(d, file, flen);
				d += flen;
				m += 2;
			} else {
				*d++ = *m++;
			}
		}
		*d = 0;
	}
	return out;
fail:
	for (i = 0; i < n; i++)
		free(out[i]);
	free(out);
	return NULL;
}

static void free_argv(char **argv)
{
	for (size_t i = 0; argv && argv[i]; i++)
		free(argv[i]);
	free(argv);
}

/* Append text to a reason, readable: the temp path shown as the real one, no control bytes. */
static void append_output(char *dst, size_t cap, const char *text, const char *tmp,
			  const char *real)
{
	size_t len = strlen(dst), tl = strlen(tmp), rl = strlen(real), end;

	end = strlen(text);
	while (end && (text[end - 1] == '\n' || text[end - 1] == ' ' || text[end - 1] == '\r'))
		end--;
	for (size_t i = 0; i < end && len + 1 < cap;) {
		if (tl && strncmp(text + i, tmp, tl) == 0) {
			size_t k = rl < cap - 1 - len ? rl : cap - 1 - len;

			memcpy(dst + len, real, k);
			len += k;
			i += tl;
			continue;
		}
		unsigned char c = (unsigned char)text[i++];

		dst[len++] = (c == '\n' || c == '\t' || (c >= 0x20 && c != 0x7f)) ? (char)c : '?';
	}
	dst[len] = 0;
}

/* ---- validators ---------------------------------------------------------------- */

static const char *ext_of(const char *path)
{
	const char *base = strrchr(path, '/'), *dot;

	base = base ? base + 1 : path;
	dot = strrchr(base, '.');
	return dot && dot != base ? dot : "";
}

static bool shellish(const struct patch_file *f)
{
	static const char *const exts[] = {".sh",      ".bash",	  ".zsh",   ".ksh",	    ".env",
					   ".profile", ".bashrc", ".zshrc", ".bash_profile"};
	const char *ext = ext_of(f->path), *base = strrchr(f->path, '/'), *nl;
	size_t i;

	base = base ? base + 1 : f->path;
	for (i = 0; i < sizeof(exts) / sizeof(exts[0]); i++)
		if (strcmp(ext, exts[i]) == 0 || strcmp(base, exts[i]) == 0)
			return true;
	if (f->new_len > 2 && f->new_content[0] == '#' && f->new_content[1] == '!') {
		nl = memchr(f->new_content, '\n', f->new_len);
		i = nl ? (size_t)(nl - f->new_content) : f->new_len;
		return memmem(f->new_content, i, "sh", 2) != NULL;
	}
	return false;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

static int tmp_copy(const struct patch_file *f, char *dir, size_t dirlen, char *file,
		    size_t filelen)
{
	const char *tmp = getenv("TMPDIR"), *base = strrchr(f->path, '/');
	int fd, err;

	if (!tmp || tmp[0] != '/')
		tmp = "/tmp";
	if (snprintf(dir, dirlen, "%s/heal-guard-XXXXXX", tmp) >= (int)dirlen) {
		dir[0] = 0;
		return -ENAMETOOLONG;
	}
	if (!mkdtemp(dir)) {
		dir[0] = 0;
		return -errno;
	}
	/* same name as the target, so tools that look at the extension behave */
	err = join(file, filelen, dir, base ? base + 1 : f->path);
	if (err)
		return err;
	fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	for (size_t n = 0; n < f->new_len;) {
		ssize_t w = write(fd, f->new_content + n, f->new_len - n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			err = -errno;
			break;
		}
		n += (size_t)w;
	}
	if (close(fd) && !err)
		err = -errno;
	return err;
}

/* "invalid JSON at line 4 of X: ..." into reason, or 0 when f is JSON. */
static int check_json(const struct patch_file *f, char *reason, size_t cap)
{
	const char *end = NULL, *p;
	size_t line = 1, col = 1, i, n;
	char near[40];
	char *buf;
	cJSON *j;

	if (f->new_len && memchr(f->new_content, 0, f->new_len)) {
		snprintf(reason, cap, "invalid JSON in %s: it contains a NUL byte", f->path);
		return -EINVAL;
	}
	buf = malloc(f->new_len + 1);
	if (!buf)
		return -ENOMEM;
	if (f->new_len)
		memcpy(buf, f->new_content, f->new_len);
	buf[f->new_len] = 0;
	j = cJSON_ParseWithLengthOpts(buf, f->new_len + 1, &end, 1);
	if (j) {
		cJSON_Delete(j);
		free(buf);
		return 0;
	}
	if (!end || end < buf || end > buf + f->new_len)
		end = buf + f->new_len;
	for (p = buf; p < end; p++) {
		if (*p == '\n')
			line++, col = 1;
		else
			col++;
	}
	/* cJSON stops at the end when the input is cut short */
	for (p = end; *p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'; p++)
		;
	if (!*p) {
		snprintf(reason, cap, "invalid JSON at line %zu of %s: unexpected end of input",
			 line, f->path);
	} else {
		for (i = 0, n = 0; p[i] && p[i] != '\n' && n < 24; i++)
			near[n++] = (unsigned char)p[i] < 0x20 ? '?' : p[i];
		near[n] = 0;
		snprintf(reason, cap,
			 "invalid JSON at line %zu, column %zu of %s: unexpected \"%s\"", line, col,
			 f->path, near);
	}
	free(buf);
	return -EINVAL;
}

/* Run one validator command on the temp copy; fills reason when it fails. */
static int check_command(const char *what, char *const *argv, unsigned timeout_ms,
			 const struct patch_file *f, const char *tmpfile, char *reason, size_t cap)
{
	char **av = expand_argv(argv, tmpfile);
	struct run *res;
	int err;

	res = malloc(sizeof(*res));
	if (!av || !res) {
		free_argv(av);
		free(res);
		return -ENOMEM;
	}
	err = run_command(av, timeout_ms, res);
	if (err) {
		snprintf(reason, cap, "cannot run the %s for %s: %s", what, f->path,
			 strerror(-err));
		err = -EINVAL;
	} else if (res->spawn_err) {
		snprintf(reason, cap, "cannot run the %s \"%s\" for %s: %s", what, av[0], f->path,
			 strerror(res->spawn_err));
		err = -EINVAL;
	} else if (res->timed_out) {
		snprintf(reason, cap, "the %s timed out after %u ms on %s and was killed", what,
			 timeout_ms, f->path);
		err = -EINVAL;
	} else if (!res->exited) {
		snprintf(reason, cap, "lost the exit status of the %s for %s", what, f->path);
		err = -EINVAL;
	} else if (WIFSIGNALED(res->status)) {
		snprintf(reason, cap, "the %s was killed by signal %d on %s", what,
			 WTERMSIG(res->status), f->path);
		err = -EINVAL;
	} else if (WEXITSTATUS(res->status)) {
		snprintf(reason, cap, "the %s failed on %s (exit %d)", what, f->path,
			 WEXITSTATUS(res->status));
		err = -EINVAL;
	}
	if (err && res->len) {
		size_t l = strlen(reason);

		snprintf(reason + l, cap - l, ":\n");
		append_output(reason, cap, res->out, tmpfile, f->path);
		l = strlen(reason);
		if (res->truncated)
			snprintf(reason + l, cap - l, "\n[output truncated]");
	}
	free_argv(av);
	free(res);
	return err;
}

/* Validate one file; 0, -EINVAL with reason, or another -errno. what: what ran, for an ok reason.
 */
static int validate_file(const struct guard_rules *r, const struct patch_file *f,
			 const char *realdir, char *reason, size_t cap, const char **what)
{
	char dir[PATH_MAX] = "", file[PATH_MAX], inc1[PATH_MAX + 8], inc2[PATH_MAX + 16];
	const char *ext = ext_of(f->path);
	unsigned timeout = r->command_timeout_ms ? r->command_timeout_ms : GUARD_DEFAULT_TIMEOUT_MS;
	bool is_c = strcmp(ext, ".c") == 0 || strcmp(ext, ".h") == 0;
	int err = 0;

	*what = NULL;
	if (strcmp(ext, ".json") == 0) {
		err = check_json(f, reason, cap);
		if (err)
			return err;
		*what = "JSON";
	}
	if (!is_c && !r->validate)
		return 0;
	err = tmp_copy(f, dir, sizeof(dir), file, sizeof(file));
	if (err) {
		snprintf(reason, cap, "cannot make a temp copy of %s: %s", f->path, strerror(-err));
		goto cleanup;
	}
	if (is_c && r->build) {
		err = check_command("build command", r->build, timeout, f, file, reason, cap);
		*what = "build";
	} else if (is_c) {
		/* the temp copy is elsewhere: let its includes still find their neighbours */
		char *cc[] = {"cc", "-fsyntax-only", "-x", "c", inc1, inc2, file, NULL};

		snprintf(inc1, sizeof(inc1), "-I%s", realdir);
		snprintf(inc2, sizeof(inc2), "-I%s/../include", realdir);
		err = check_command("syntax check (cc -fsyntax-only)", cc, timeout, f, file, reason,
				    cap);
		*what = "cc -fsyntax-only";
	}
	if (!err && r->validate) {
		err = check_command("validate command", r->validate, timeout, f, file, reason, cap);
		if (!*what)
			*what = "validate command";
		else if (strcmp(*what, "JSON") == 0)
			*what = "JSON, validate command";
		else
			*what = is_c && r->build ? "build, validate command"
						 : "cc -fsyntax-only, validate command";
	}
cleanup:
	if (dir[0])
		nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	return err;
}

/* ---- the check ------------------------------------------------------------------ */

struct hit {
	size_t count; /* added lines with a finding */
	const char *path;
	size_t line;
	char what[160];
};

struct scan {
	const struct patch_file *f;
	bool shell;
	regex_t *deny;
	char *const *deny_src;
	size_t n_deny;
	struct hit secret, danger, denied;
	const char *undiffable; /* a file whose added lines are unknown */
	int undiff_err;
	char *buf;
	size_t cap;
	int err;
};

static void note(struct hit *h, const struct patch_file *f, size_t line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void note(struct hit *h, const struct patch_file *f, size_t line, const char *fmt, ...)
{
	va_list ap;

	if (h->count++)
		return;
	h->path = f->path;
	h->line = line;
	va_start(ap, fmt);
	vsnprintf(h->what, sizeof(h->what), fmt, ap);
	va_end(ap);
}

static int scan_line(const char *line, size_t len, size_t lineno, void *ctx)
{
	struct scan *s = ctx;
	regmatch_t m[8];
	const char *kind;
	size_t i;

	if (len + 1 > s->cap) {
		char *nb = realloc(s->buf, len + 1);

		if (!nb) {
			s->err = -ENOMEM;
			return 1;
		}
		s->buf = nb;
		s->cap = len + 1;
	}
	/* a NUL byte must not hide the rest of the line from the patterns */
	for (i = 0; i < len; i++)
		s->buf[i] = line[i] ? line[i] : ' ';
	s->buf[len] = 0;

	if (guard_has_secret(s->buf) && secret_is_new(s->buf, s->f)) {
		kind = secret_kind(s->buf);
		note(&s->secret, s->f, lineno, "(%s)", kind ? kind : "secret");
	}
	for (i = 0; i < N_DANGER; i++) {
		const struct pattern *p = &danger_patterns[i];
		const regmatch_t *g;
		int n;

		if (p->shell_only && !s->shell)
			continue;
		if (regexec(&danger_re[i], s->buf, 8, m, 0))
			continue;
		g = m[p->show].rm_so >= 0 ? &m[p->show] : &m[0];
		n = (int)(g->rm_eo - g->rm_so);
		if (p->label)
			note(&s->danger, s->f, lineno, "%s: %s", p->what, p->label);
		else if (n > 60)
			note(&s->danger, s->f, lineno, "%s: %.57s...", p->what, s->buf + g->rm_so);
		else
			note(&s->danger, s->f, lineno, "%s: %.*s", p->what, n, s->buf + g->rm_so);
		break;
	}
	for (i = 0; i < s->n_deny; i++) {
		if (regexec(&s->deny[i], s->buf, 0, NULL, 0) == 0) {
			note(&s->denied, s->f, lineno, "\"%s\"", s->deny_src[i]);
			break;
		}
	}
	return 0;
}

struct check {
	struct guard_verdict *v;
	size_t nv, vcap;
	const char *blocked_by;
};

static void verdict(struct check *c, const char *rule, int ok, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void verdict(struct check *c, const char *rule, int ok, const char *fmt, ...)
{
	struct guard_verdict *v;
	va_list ap;

	if (!ok && !c->blocked_by)
		c->blocked_by = rule;
	if (!c->v || c->nv >= c->vcap)
		return;
	v = &c->v[c->nv++];
	v->rule = rule;
	v->ok = ok;
	va_start(ap, fmt);
	vsnprintf(v->reason, sizeof(v->reason), fmt, ap);
	va_end(ap);
}

static void hit_verdict(struct check *c, const char *rule, const struct hit *h, const char *verb,
			const char *none)
{
	if (!h->count)
		verdict(c, rule, 1, "%s", none);
	else if (h->count == 1)
		verdict(c, rule, 0, "%s %s at line %zu of %s", verb, h->what, h->line, h->path);
	else
		verdict(c, rule, 0, "%s %s at line %zu of %s (and %zu more line%s)", verb, h->what,
			h->line, h->path, h->count - 1, h->count == 2 ? "" : "s");
}

static const char *why_noncanonical(const char *path)
{
	const char *p;

	for (p = path; (p = strstr(p, "/..")); p++)
		if (p[3] == '/' || !p[3])
			return "through \"..\"";
	if (strstr(path, "/./") || strstr(path, "//") ||
	    (strlen(path) > 2 && !strcmp(path + strlen(path) - 2, "/.")))
		return "it is not normalized";
	return "through a symlink";
}

static void check_paths(struct check *c, const struct guard_rules *r, const struct patch *p,
			struct target *t)
{
	char msg[GUARD_REASON_LEN] = "";
	size_t i, j, outside = 0;

	/* allowlist: where the write would really land */
	for (i = 0; i < p->n; i++) {
		const char *path = p->files[i].path;

		if (t[i].rerr) {
			if (!outside++)
				snprintf(msg, sizeof(msg),
					 "cannot resolve %s (%s), so it cannot be allowed", path,
					 strerror(-t[i].rerr));
		} else if (!allowed(r, t[i].resolved)) {
			if (outside++)
				continue;
			if (!r->n_allow)
				snprintf(msg, sizeof(msg),
					 "no allowlist is configured, so %s cannot be patched",
					 path);
			else if (strcmp(path, t[i].resolved))
				snprintf(msg, sizeof(msg),
					 "%s resolves to %s, outside the allowlist", path,
					 t[i].resolved);
			else
				snprintf(msg, sizeof(msg), "%s is outside the allowlist", path);
		}
	}
	if (outside)
		verdict(c, "allowlist", 0, "%s%s", msg, outside > 1 ? " (and more files)" : "");
	else
		verdict(c, "allowlist", 1, "%zu file%s inside the allowlist", p->n,
			p->n == 1 ? "" : "s");

	/* path: exactly the file that was checked gets written */
	msg[0] = 0;
	for (i = 0; i < p->n && !msg[0]; i++) {
		const char *path = p->files[i].path;

		if (path[0] != '/')
			snprintf(msg, sizeof(msg), "%s is not an absolute path", path);
		else if (t[i].exists && S_ISLNK(t[i].st.st_mode))
			snprintf(msg, sizeof(msg),
				 "%s is a symlink (to %s); refusing to write through it", path,
				 t[i].rerr ? "a missing file" : t[i].resolved);
		else if (t[i].rerr)
			snprintf(msg, sizeof(msg), "cannot resolve %s: %s", path,
				 strerror(-t[i].rerr));
		else if (t[i].exists && !S_ISREG(t[i].st.st_mode))
			snprintf(msg, sizeof(msg), "%s is %s", path, file_type(t[i].st.st_mode));
		else if (strcmp(path, t[i].resolved))
			snprintf(msg, sizeof(msg),
				 "%s resolves to %s (%s); patch the resolved path", path,
				 t[i].resolved, why_noncanonical(path));
		for (j = 0; j < i && !msg[0]; j++)
			if (!t[j].rerr && !t[i].rerr && strcmp(t[i].resolved, t[j].resolved) == 0)
				snprintf(msg, sizeof(msg), "%s and %s are the same file",
					 p->files[j].path, path);
	}
	if (msg[0])
		verdict(c, "path", 0, "%s", msg);
	else
		verdict(c, "path", 1,
			"every path is canonical and names a regular file or a new one");
}

int guard__check(const struct guard_rules *r, const struct patch *p, struct guard_verdict *v,
		 size_t *nv, size_t vcap, const char **blocked_by)
{
	struct check c = {.v = v, .vcap = vcap};
	struct scan s = {0};
	struct target *t = NULL;
	unsigned max_files, max_lines;
	size_t i, added = 0, removed = 0;
	const char *big = NULL, *what;
	char reason[GUARD_REASON_LEN], done[GUARD_REASON_LEN] = "";
	regex_t *deny = NULL;
	size_t n_deny = 0;
	int err = 0, ret;

	if (nv)
		*nv = 0;
	if (blocked_by)
		*blocked_by = NULL;
	if (!r || !p || (p->n && !p->files) || (r->n_allow && !r->allow) || (r->n_deny && !r->deny))
		return -EINVAL;
	for (i = 0; i < r->n_deny; i++)
		if (!r->deny[i])
			return -EINVAL;
	for (i = 0; i < p->n; i++)
		if (!p->files[i].path || (!p->files[i].new_content && p->files[i].new_len) ||
		    (!p->files[i].old_content && p->files[i].old_exists && p->files[i].old_len))
			return -EINVAL;
	if (!patterns_ready())
		return -EINVAL;
	max_files = r->max_files ? r->max_files : GUARD_DEFAULT_MAX_FILES;
	max_lines = r->max_lines ? r->max_lines : GUARD_DEFAULT_MAX_LINES;

	t = calloc(p->n + 1, sizeof(*t));
	deny = calloc(r->n_deny + 1, sizeof(*deny));
	if (!t || !deny) {
		err = -ENOMEM;
		goto cleanup;
	}
	for (i = 0; i < p->n; i++) {
		const char *path = p->files[i].path;

		t[i].exists = lstat(path, &t[i].st) == 0;
		t[i].rerr = path[0] && strlen(path) < PATH_MAX ? resolve(path, t[i].resolved)
							       : -ENAMETOOLONG;
	}
	check_paths(&c, r, p, t);

	if (p->n > max_files)
		verdict(&c, "max_files", 0, "changes %zu files, max is %u", p->n, max_files);
	else
		verdict(&c, "max_files", 1, "changes %zu file%s, max is %u", p->n,
			p->n == 1 ? "" : "s", max_files);

	ret = patch__line_stats(p, &added, &removed);
	for (i = 0; ret == -E2BIG && i < p->n && !big; i++)
		if (p->files[i].new_len > PATCH_MAX_BYTES ||
		    p->files[i].old_len > PATCH_MAX_BYTES ||
		    patch__changed_lines(&(struct patch){&p->files[i], 1}) == SIZE_MAX)
			big = p->files[i].path;
	if (ret == -ENOMEM) {
		err = ret;
		goto cleanup;
	} else if (ret) {
		verdict(&c, "max_lines", 0, "cannot diff %s: more than %u bytes or %u lines",
			big ? big : "the patch", PATCH_MAX_BYTES, PATCH_MAX_LINES);
	} else if (added + removed > max_lines) {
		verdict(&c, "max_lines", 0, "changes %zu lines (%zu added, %zu removed), max is %u",
			added + removed, added, removed, max_lines);
	} else {
		verdict(&c, "max_lines", 1,
			"changes %zu line%s (%zu added, %zu removed), max is %u", added + removed,
			added + removed == 1 ? "" : "s", added, removed, max_lines);
	}

	/* secrets, dangerous and deny share one pass over the added lines */
	for (; n_deny < r->n_deny; n_deny++) {
		ret = regcomp(&deny[n_deny], r->deny[n_deny], REG_EXTENDED | REG_NOSUB);
		if (ret) {
			regerror(ret, &deny[n_deny], reason, 128);
			regfree(&deny[n_deny]);
			break;
		}
	}
	s.deny = deny;
	s.deny_src = r->deny;
	s.n_deny = n_deny;
	for (i = 0; i < p->n && !s.err; i++) {
		s.f = &p->files[i];
		s.shell = shellish(s.f);
		ret = patch__for_each_added(s.f, scan_line, &s);
		if (ret && !s.err && !s.undiffable) {
			s.undiffable = s.f->path;
			s.undiff_err = ret;
		}
	}
	if (s.err) {
		err = s.err;
		goto cleanup;
	}
	if (r->restore) {
		/* the content is a version that ran before: what it "adds" was there then */
		verdict(&c, "secrets", 1, "restores a known-good version");
		verdict(&c, "dangerous", 1, "restores a known-good version");
		verdict(&c, "deny", 1, "restores a known-good version");
	} else {
		/* lines that cannot be seen cannot pass */
		snprintf(reason, sizeof(reason), "cannot tell which lines %s adds: %s",
			 s.undiffable ? s.undiffable : "", strerror(-s.undiff_err));
		if (s.undiffable && !s.secret.count)
			verdict(&c, "secrets", 0, "%s", reason);
		else
			hit_verdict(&c, "secrets", &s.secret, "adds a secret", "adds no secret");
		if (s.undiffable && !s.danger.count)
			verdict(&c, "dangerous", 0, "%s", reason);
		else
			hit_verdict(&c, "dangerous", &s.danger, "adds", "adds no dangerous operation");
		if (s.undiffable && !s.denied.count && n_deny == r->n_deny && r->n_deny)
			verdict(&c, "deny", 0, "%s", reason);
		else if (n_deny < r->n_deny)
			verdict(&c, "deny", 0, "deny pattern %zu (\"%s\") is not a valid regex: %s",
				n_deny + 1, r->deny[n_deny], reason);
		else if (s.denied.count)
			hit_verdict(&c, "deny", &s.denied, "adds a line matching deny pattern", "");
		else if (r->n_deny)
			verdict(&c, "deny", 1, "no added line matches the %zu deny pattern%s", r->n_deny,
				r->n_deny == 1 ? "" : "s");
		else
			verdict(&c, "deny", 1, "no deny patterns configured");
	}

	/* validators run commands: only for a patch that passed everything else */
	if (c.blocked_by)
		goto cleanup;
	for (i = 0; i < p->n; i++) {
		char realdir[PATH_MAX];
		const char *base;

		reason[0] = 0;
		if (split_path(t[i].resolved, realdir, sizeof(realdir), &base))
			snprintf(realdir, sizeof(realdir), "/");
		ret = validate_file(r, &p->files[i], realdir, reason, sizeof(reason), &what);
		if (ret == -ENOMEM) {
			err = ret;
			goto cleanup;
		}
		if (ret) {
			verdict(&c, "validate", 0, "%s", reason);
			break;
		}
		if (what) {
			size_t dl = strlen(done);

			snprintf(done + dl, sizeof(done) - dl, "%s%s (%s)",
				 dl ? ", " : "validated ", p->files[i].path, what);
		}
	}
	if (!c.blocked_by)
		verdict(&c, "validate", 1, "%s",
			done[0] ? done : "no validator applies to these files");
cleanup:
	for (i = 0; i < n_deny; i++)
		regfree(&deny[i]);
	free(deny);
	free(s.buf);
	free(t);
	if (nv)
		*nv = c.nv;
	if (blocked_by)
		*blocked_by = c.blocked_by;
	if (err)
		return err;
	return c.blocked_by ? -EPERM : 0;
}
