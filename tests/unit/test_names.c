// SPDX-License-Identifier: MIT
/* names: syscall, errno and signal tables, both directions. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <cmocka.h>

#include "heal/names.h"

static void test_syscalls_round_trip(void **state)
{
	static const struct {
		const char *name;
		int nr;
	} cases[] = {
		{ "openat", SYS_openat }, { "connect", SYS_connect }, { "read", SYS_read },
		{ "write", SYS_write },	  { "close", SYS_close },     { "execve", SYS_execve },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(names__syscall_nr(cases[i].name), cases[i].nr);
		assert_string_equal(names__syscall_name(cases[i].nr), cases[i].name);
	}
}

static void test_syscalls_unknown(void **state)
{
	assert_int_equal(names__syscall_nr("opnat"), -1);
	assert_int_equal(names__syscall_nr(""), -1);
	assert_int_equal(names__syscall_nr("*"), -1);
	assert_int_equal(names__syscall_nr(NULL), -1);
	assert_null(names__syscall_name(-1));
	assert_null(names__syscall_name(100000));
}

static void test_errnos_round_trip(void **state)
{
	static const struct {
		const char *name;
		int nr;
	} cases[] = {
		{ "ENOENT", ENOENT }, { "ECONNREFUSED", ECONNREFUSED },
		{ "EMFILE", EMFILE }, { "ENOSPC", ENOSPC },
		{ "EACCES", EACCES }, { "EPERM", EPERM },
		{ "EAGAIN", EAGAIN }, { "ETIMEDOUT", ETIMEDOUT },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(names__errno_nr(cases[i].name), cases[i].nr);
		assert_string_equal(names__errno_name(cases[i].nr), cases[i].name);
	}
}

static void test_errnos_aliases_and_case(void **state)
{
	assert_int_equal(names__errno_nr("EWOULDBLOCK"), EAGAIN);
	assert_int_equal(names__errno_nr("ENOTSUP"), EOPNOTSUPP);
	assert_int_equal(names__errno_nr("EDEADLOCK"), EDEADLK);
	assert_int_equal(names__errno_nr("enoent"), ENOENT);
	/* The canonical name wins on the way back. */
	assert_string_equal(names__errno_name(EAGAIN), "EAGAIN");
}

static void test_errnos_unknown(void **state)
{
	assert_int_equal(names__errno_nr("ENOENTT"), -1);
	assert_int_equal(names__errno_nr("NOENT"), -1);
	assert_int_equal(names__errno_nr(""), -1);
	assert_int_equal(names__errno_nr(NULL), -1);
	assert_null(names__errno_name(0));
	assert_null(names__errno_name(-2));
	assert_null(names__errno_name(4095));
	assert_null(names__errno_name(1 << 20));
}

static void test_signals(void **state)
{
	assert_int_equal(names__signal_nr("SIGSEGV"), SIGSEGV);
	assert_int_equal(names__signal_nr("SEGV"), SIGSEGV);
	assert_int_equal(names__signal_nr("segv"), SIGSEGV);
	assert_int_equal(names__signal_nr("sigsegv"), SIGSEGV);
	assert_int_equal(names__signal_nr("SigAbrt"), SIGABRT);
	assert_int_equal(names__signal_nr("KILL"), SIGKILL);
	assert_int_equal(names__signal_nr("SIGIOT"), SIGABRT);
	assert_string_equal(names__signal_name(SIGSEGV), "SIGSEGV");
	assert_string_equal(names__signal_name(SIGBUS), "SIGBUS");
	assert_string_equal(names__signal_name(SIGABRT), "SIGABRT");
	assert_string_equal(names__signal_name(SIGFPE), "SIGFPE");
	assert_string_equal(names__signal_name(SIGILL), "SIGILL");
	assert_string_equal(names__signal_name(SIGKILL), "SIGKILL");
	for (int sig = 1; sig < SIGRTMIN; sig++) {
		const char *name = names__signal_name(sig);

		if (!name)
			continue;
		assert_int_equal(names__signal_nr(name), sig);
	}
}

static void test_signals_unknown(void **state)
{
	assert_int_equal(names__signal_nr("SIGSEGVV"), -1);
	assert_int_equal(names__signal_nr("SIG"), -1);
	assert_int_equal(names__signal_nr(""), -1);
	assert_int_equal(names__signal_nr("11"), -1);
	assert_int_equal(names__signal_nr(NULL), -1);
	assert_null(names__signal_name(0));
	assert_null(names__signal_name(-1));
	assert_null(names__signal_name(NSIG));
}

#define N_THREADS 8

static void *lookup_thread(void *arg)
{
	intptr_t bad = 0;

	for (int i = 0; i < 200; i++) {
		bad += names__errno_nr("ECONNREFUSED") != ECONNREFUSED;
		bad += names__signal_nr("segv") != SIGSEGV;
		bad += strcmp(names__signal_name(SIGABRT), "SIGABRT") != 0;
	}
	return (void *)bad;
}

/* The lazily built tables must come out whole when the first lookups race. */
static void test_concurrent_first_use(void **state)
{
	pthread_t th[N_THREADS];

	for (int i = 0; i < N_THREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, lookup_thread, NULL), 0);
	for (int i = 0; i < N_THREADS; i++) {
		void *bad = NULL;

		assert_int_equal(pthread_join(th[i], &bad), 0);
		assert_int_equal((intptr_t)bad, 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		/* First, so the tables are built by racing threads. */
		cmocka_unit_test(test_concurrent_first_use),
		cmocka_unit_test(test_syscalls_round_trip),
		cmocka_unit_test(test_syscalls_unknown),
		cmocka_unit_test(test_errnos_round_trip),
		cmocka_unit_test(test_errnos_aliases_and_case),
		cmocka_unit_test(test_errnos_unknown),
		cmocka_unit_test(test_signals),
		cmocka_unit_test(test_signals_unknown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
