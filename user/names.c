// SPDX-License-Identifier: MIT
/* Name tables: syscalls of this architecture, errnos and signals (from glibc). */
#ifndef _GNU_SOURCE /* pkg-config --cflags may already define it */
#endif
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "heal/names.h"

struct name_nr {
	const char *name;
	int nr;
};

/* Generated from <asm/unistd.h> by tools/gen-syscalls.sh, sorted by number. */
static const struct name_nr syscall_table[] = {
#include "syscall_table.h"
};

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* errno values are small on Linux; this bounds the one-time scan of glibc's table. */
#define ERRNO_SCAN_MAX 4096

/* Names glibc maps to another value's canonical name (strerrorname_np knows only one). */
static const struct name_nr errno_aliases[] = {
	{ "EWOULDBLOCK", EAGAIN },
	{ "EDEADLOCK", EDEADLK },
	{ "ENOTSUP", EOPNOTSUPP },
};

static const struct name_nr signal_aliases[] = {
	{ "IOT", SIGABRT },
	{ "POLL", SIGIO },
	{ "CLD", SIGCHLD },
};

/* Filled once: strerrorname_np() per call is cheap, but name -> number needs a scan. */
static struct name_nr errno_table[ERRNO_SCAN_MAX];
static size_t errno_count;
static pthread_once_t errno_once = PTHREAD_ONCE_INIT;

/* "SIG" + sigabbrev_np(): glibc has no full-name table, so keep stable storage here. */
#define SIGNAME_LEN 16
static char signal_names[NSIG][SIGNAME_LEN];
static pthread_once_t signal_once = PTHREAD_ONCE_INIT;

static void errno_table_init(void)
{
	for (int e = 1; e < ERRNO_SCAN_MAX; e++) {
		const char *name = strerrorname_np(e);

		if (!name)
			continue;
		errno_table[errno_count].name = name;
		errno_table[errno_count].nr = e;
		errno_count++;
	}
}

static void signal_table_init(void)
{
	for (int sig = 1; sig < NSIG; sig++) {
		const char *abbrev = sigabbrev_np(sig);

		if (abbrev)
			snprintf(signal_names[sig], SIGNAME_LEN, "SIG%s", abbrev);
	}
}

int names__syscall_nr(const char *name)
{
	if (!name)
		return -1;
	for (size_t i = 0; i < ARRAY_SIZE(syscall_table); i++) {
		if (strcmp(syscall_table[i].name, name) == 0)
			return syscall_table[i].nr;
	}
	return -1;
}

const char *names__syscall_name(int nr)
{
	for (size_t i = 0; i < ARRAY_SIZE(syscall_table); i++) {
		if (syscall_table[i].nr == nr)
			return syscall_table[i].name;
	}
	return NULL;
}

int names__errno_nr(const char *name)
{
	if (!name)
		return -1;
	pthread_once(&errno_once, errno_table_init);
	for (size_t i = 0; i < errno_count; i++) {
		if (strcasecmp(errno_table[i].name, name) == 0)
			return errno_table[i].nr;
	}
	for (size_t i = 0; i < ARRAY_SIZE(errno_aliases); i++) {
		if (strcasecmp(errno_aliases[i].name, name) == 0)
			return errno_aliases[i].nr;
	}
	return -1;
}

const char *names__errno_name(int err)
{
	if (err <= 0 || err >= ERRNO_SCAN_MAX)
		return NULL;
	return strerrorname_np(err);
}

int names__signal_nr(const char *name)
{
	if (!name)
		return -1;
	pthread_once(&signal_once, signal_table_init);
	if (strncasecmp(name, "SIG", 3) == 0)
		name += 3;
	if (!*name)
		return -1;
	for (int sig = 1; sig < NSIG; sig++) {
		if (signal_names[sig][0] && strcasecmp(signal_names[sig] + 3, name) == 0)
			return sig;
	}
	for (size_t i = 0; i < ARRAY_SIZE(signal_aliases); i++) {
		if (strcasecmp(signal_aliases[i].name, name) == 0)
			return signal_aliases[i].nr;
	}
	return -1;
}

const char *names__signal_name(int sig)
{
	if (sig <= 0 || sig >= NSIG)
		return NULL;
	pthread_once(&signal_once, signal_table_init);
	return signal_names[sig][0] ? signal_names[sig] : NULL;
}
