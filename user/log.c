// SPDX-License-Identifier: MIT
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bpf/libbpf.h>

#include "heal/log.h"

static int g_level = LOG_LVL_WARN;

void log_set_level(int level)
{
	g_level = level;
}

int log_get_level(void)
{
	return g_level;
}

static void log_vmsg(int level, const char *fmt, va_list ap)
{
	static const char *const names[] = { "error", "warn", "info", "debug", "trace" };
	struct timespec ts;
	struct tm tm;
	char when[32];

	if (level > g_level)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%H:%M:%S", &tm);
	fprintf(stderr, "heald %s.%03ld %s: ", when, ts.tv_nsec / 1000000, names[level]);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void log_msg(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	int lvl = level == LIBBPF_WARN ? LOG_LVL_WARN :
		  level == LIBBPF_INFO ? LOG_LVL_DEBUG : LOG_LVL_TRACE;
	char *buf = NULL;
	size_t n;

	if (lvl > g_level)
		return 0;
	/* verifier logs run to many kilobytes: no fixed buffer */
	if (vasprintf(&buf, fmt, ap) < 0)
		return 0;
	n = strlen(buf);
	while (n && buf[n - 1] == '\n') /* libbpf ends its lines itself */
		buf[--n] = 0;
	log_msg(lvl, "%s", buf);
	free(buf);
	return 0;
}

void log_hook_libbpf(void)
{
	libbpf_set_print(libbpf_print);
}
