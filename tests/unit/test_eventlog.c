// SPDX-License-Identifier: MIT
/* eventlog: ids, cursors, eviction by count and bytes, refused lines, waiting, concurrency. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "heal/eventlog.h"

struct got {
	uint64_t ids[64];
	char lines[64][64];
	size_t n;
	size_t stop_at; /* 0: never */
};

static int collect(uint64_t id, const char *line, size_t len, void *ctx)
{
	struct got *g = ctx;

	assert_int_equal(strlen(line), len);
	if (g->n < 64) {
		g->ids[g->n] = id;
		snprintf(g->lines[g->n], sizeof(g->lines[0]), "%s", line);
	}
	g->n++;
	return g->stop_at && g->n == g->stop_at;
}

static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_ids_and_cursors(void **state)
{
	struct eventlog *el = eventlog__new(16, 0);
	struct eventlog_span sp;
	struct got g = {0};

	assert_non_null(el);
	assert_int_equal(eventlog__last_id(el), 0);
	assert_int_equal(eventlog__since(el, 0, 0, collect, &g, &sp), 0);
	assert_int_equal(sp.first_id, 0);
	assert_int_equal(sp.last_id, 0);
	assert_int_equal(eventlog__append(el, "{\"n\":1}"), 1);
	assert_int_equal(eventlog__append(el, "{\"n\":2}"), 2);
	assert_int_equal(eventlog__append(el, "{\"n\":3}"), 3);
	assert_int_equal(eventlog__last_id(el), 3);

	assert_int_equal(eventlog__since(el, 0, 0, collect, &g, &sp), 3);
	assert_int_equal(g.ids[0], 1);
	assert_int_equal(g.ids[2], 3);
	assert_string_equal(g.lines[0], "{\"n\":1}");
	assert_string_equal(g.lines[2], "{\"n\":3}");
	assert_int_equal(sp.first_id, 1);
	assert_int_equal(sp.last_id, 3);
	assert_int_equal(sp.missed, 0);

	/* after a cursor, with a limit */
	memset(&g, 0, sizeof(g));
	assert_int_equal(eventlog__since(el, 1, 1, collect, &g, NULL), 1);
	assert_int_equal(g.ids[0], 2);
	/* at the end, and a cursor from the future */
	assert_int_equal(eventlog__since(el, 3, 0, collect, &g, NULL), 0);
	assert_int_equal(eventlog__since(el, 99, 0, collect, &g, &sp), 0);
	assert_int_equal(sp.last_id, 3);
	/* the callback stops the walk; the one that stopped it counts */
	memset(&g, 0, sizeof(g));
	g.stop_at = 2;
	assert_int_equal(eventlog__since(el, 0, 0, collect, &g, NULL), 2);
	assert_int_equal(eventlog__since(el, 0, 0, NULL, NULL, NULL), -EINVAL);
	eventlog__free(el);
	eventlog__free(NULL);
}

static void test_refused_lines(void **state)
{
	struct eventlog *el = eventlog__new(4, 32);
	struct eventlog_stats st;
	char big[40];

	assert_non_null(el);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(eventlog__append(el, ""), 0);
	assert_int_equal(eventlog__append(el, NULL), 0);
	assert_int_equal(eventlog__append(el, "{\"a\":\n1}"), 0);
	assert_int_equal(eventlog__append(el, "{\"a\":\r1}"), 0);
	assert_int_equal(eventlog__append(el, big), 0); /* longer than max_bytes */
	/* refused lines take no id */
	assert_int_equal(eventlog__append(el, "{}"), 1);
	eventlog__stats(el, &st);
	assert_int_equal(st.rejected, 5);
	assert_int_equal(st.appended, 1);
	assert_int_equal(st.events, 1);
	assert_int_equal(st.bytes, 2);
	eventlog__free(el);
}

static void test_eviction_by_count(void **state)
{
	struct eventlog *el = eventlog__new(4, 0);
	struct eventlog_stats st;
	struct eventlog_span sp;
	struct got g = {0};
	char line[32];
	int i;

	assert_non_null(el);
	for (i = 1; i <= 10; i++) {
		snprintf(line, sizeof(line), "{\"n\":%d}", i);
		assert_int_equal(eventlog__append(el, line), i);
	}
	eventlog__stats(el, &st);
	assert_int_equal(st.evicted, 6);
	assert_int_equal(st.events, 4);
	/* a reader at 2 missed 3..6: told so, then given 7..10 */
	assert_int_equal(eventlog__since(el, 2, 0, collect, &g, &sp), 4);
	assert_int_equal(sp.first_id, 7);
	assert_int_equal(sp.last_id, 10);
	assert_int_equal(sp.missed, 4);
	assert_int_equal(g.ids[0], 7);
	assert_string_equal(g.lines[0], "{\"n\":7}");
	assert_int_equal(g.ids[3], 10);
	/* a reader inside the ring misses nothing */
	memset(&g, 0, sizeof(g));
	assert_int_equal(eventlog__since(el, 8, 0, collect, &g, &sp), 2);
	assert_int_equal(sp.missed, 0);
	assert_int_equal(g.ids[0], 9);
	eventlog__free(el);
}

static void test_eviction_by_bytes(void **state)
{
	struct eventlog *el = eventlog__new(100, 20);
	struct eventlog_stats st;
	struct eventlog_span sp;
	struct got g = {0};

	assert_non_null(el);
	assert_int_equal(eventlog__append(el, "{\"a\":111}"), 1); /* 9 bytes */
	assert_int_equal(eventlog__append(el, "{\"b\":222}"), 2); /* 18 */
	assert_int_equal(eventlog__append(el, "{\"c\":333}"), 3); /* 27 > 20: 1 goes */
	eventlog__stats(el, &st);
	assert_int_equal(st.events, 2);
	assert_int_equal(st.bytes, 18);
	assert_int_equal(st.evicted, 1);
	assert_int_equal(st.evicted_bytes, 9);
	/* a line of exactly max_bytes empties the ring */
	assert_int_equal(eventlog__append(el, "{\"d\":\"01234567890\"}"), 4);
	assert_int_equal(eventlog__since(el, 0, 0, collect, &g, &sp), 1);
	assert_int_equal(sp.missed, 3);
	assert_int_equal(g.ids[0], 4);
	eventlog__free(el);
}

struct waker {
	struct eventlog *el;
	int delay_ms;
	int *cancel; /* set this and wake instead of appending */
};

static void *waker_main(void *p)
{
	struct waker *w = p;
	struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)w->delay_ms * 1000000L};

	nanosleep(&ts, NULL);
	if (w->cancel) {
		__atomic_store_n(w->cancel, 1, __ATOMIC_RELEASE);
		eventlog__wake(w->el);
	} else {
		eventlog__append(w->el, "{\"woke\":true}");
	}
	return NULL;
}

static void test_wait(void **state)
{
	struct eventlog *el = eventlog__new(8, 0);
	struct waker w = {.el = el, .delay_ms = 50};
	long long t0;
	pthread_t th;
	int cancel = 0;

	assert_non_null(el);
	/* timeout */
	t0 = mono_ms();
	assert_int_equal(eventlog__wait(el, 0, 60, NULL), 0);
	assert_true(mono_ms() - t0 >= 55);
	/* an append from another thread wakes the reader well before the timeout */
	t0 = mono_ms();
	assert_int_equal(pthread_create(&th, NULL, waker_main, &w), 0);
	assert_int_equal(eventlog__wait(el, 0, 5000, NULL), 1);
	assert_true(mono_ms() - t0 < 2000);
	pthread_join(th, NULL);
	/* already newer: at once */
	assert_int_equal(eventlog__wait(el, 0, -1, NULL), 1);
	/* cancel + wake ends a wait with no timeout */
	w.cancel = &cancel;
	assert_int_equal(pthread_create(&th, NULL, waker_main, &w), 0);
	assert_int_equal(eventlog__wait(el, 1, -1, &cancel), -ECANCELED);
	pthread_join(th, NULL);
	assert_int_equal(eventlog__wait(el, 1, 1000, &cancel), -ECANCELED);
	eventlog__free(el);
}

/* -- two writers and two readers at once ------------------------------------------------------- */

#define WRITERS	   2
#define PER_WRITER 20000

struct reader {
	struct eventlog *el;
	uint64_t cursor;
	uint64_t seen, missed;
	struct eventlog_span sp; /* filled before the first callback */
	int first;		 /* the next callback is the walk's first */
	long last_n[WRITERS];
	int bad;
	int *done;
};

static int check_line(uint64_t id, const char *line, size_t len, void *ctx)
{
	struct reader *r = ctx;
	/* ids contiguous but for a reported gap, and each writer's sequence in order */
	uint64_t expect = r->cursor + 1 + (r->first ? r->sp.missed : 0);
	int w;
	long n;

	r->first = 0;
	if (id != expect || sscanf(line, "{\"w\":%d,\"n\":%ld}", &w, &n) != 2 || w < 0 ||
	    w >= WRITERS || n <= r->last_n[w])
		r->bad++;
	else
		r->last_n[w] = n;
	r->cursor = id;
	r->seen++;
	return 0;
}

static void *reader_main(void *p)
{
	struct reader *r = p;
	int i;

	for (i = 0; i < WRITERS; i++)
		r->last_n[i] = -1;
	for (;;) {
		int done = __atomic_load_n(r->done, __ATOMIC_ACQUIRE);

		memset(&r->sp, 0, sizeof(r->sp));
		r->first = 1;
		if (eventlog__since(r->el, r->cursor, 100, check_line, r, &r->sp) < 0)
			r->bad++;
		r->missed += r->sp.missed;
		if (done && r->cursor == eventlog__last_id(r->el))
			break;
		eventlog__wait(r->el, r->cursor, 10, NULL);
	}
	return NULL;
}

struct writer {
	struct eventlog *el;
	int w;
	int zero_ids;
};

static void *writer_main(void *p)
{
	struct writer *wr = p;
	char line[64];
	int n;

	for (n = 0; n < PER_WRITER; n++) {
		snprintf(line, sizeof(line), "{\"w\":%d,\"n\":%d}", wr->w, n);
		if (!eventlog__append(wr->el, line))
			wr->zero_ids++;
	}
	return NULL;
}

static void test_concurrency(void **state)
{
	struct eventlog *el = eventlog__new(256, 0);
	struct writer wr[WRITERS];
	struct reader rd[2];
	pthread_t tw[WRITERS], tr[2];
	struct eventlog_stats st;
	int done = 0, i;

	assert_non_null(el);
	for (i = 0; i < 2; i++) {
		rd[i] = (struct reader){.el = el, .done = &done};
		assert_int_equal(pthread_create(&tr[i], NULL, reader_main, &rd[i]), 0);
	}
	for (i = 0; i < WRITERS; i++) {
		wr[i] = (struct writer){.el = el, .w = i};
		assert_int_equal(pthread_create(&tw[i], NULL, writer_main, &wr[i]), 0);
	}
	for (i = 0; i < WRITERS; i++)
		pthread_join(tw[i], NULL);
	__atomic_store_n(&done, 1, __ATOMIC_RELEASE);
	for (i = 0; i < 2; i++)
		pthread_join(tr[i], NULL);

	eventlog__stats(el, &st);
	assert_int_equal(st.appended, WRITERS * PER_WRITER);
	assert_int_equal(st.evicted, WRITERS * PER_WRITER - 256);
	assert_int_equal(eventlog__last_id(el), WRITERS * PER_WRITER);
	for (i = 0; i < WRITERS; i++)
		assert_int_equal(wr[i].zero_ids, 0);
	for (i = 0; i < 2; i++) {
		/* every id was either seen or reported missed, and all in order */
		assert_int_equal(rd[i].bad, 0);
		assert_int_equal(rd[i].seen + rd[i].missed, WRITERS * PER_WRITER);
	}
	eventlog__free(el);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ids_and_cursors),
	    cmocka_unit_test(test_refused_lines),
	    cmocka_unit_test(test_eviction_by_count),
	    cmocka_unit_test(test_eviction_by_bytes),
	    cmocka_unit_test(test_wait),
	    cmocka_unit_test(test_concurrency),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
