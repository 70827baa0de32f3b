// SPDX-License-Identifier: MIT
/* Event encoding: the seed's JSON shape, timestamps, keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "heal/bus.h"
#include "heal/detect.h"
#include "heal/event.h"

static void test_format_time(void **state)
{
	char buf[48];

	(void)state;
	event__format_time(0, buf, sizeof(buf));
	assert_string_equal(buf, "1970-01-01T00:00:00.000000Z");
	/* 2026-11-25T00:27:03.000042Z */
	event__format_time(1795566423ull * 1000000ull + 42, buf, sizeof(buf));
	assert_string_equal(buf, "2026-11-25T00:27:03.000042Z");
	event__format_time(1795566423ull * 1000000ull + 999999, buf, sizeof(buf));
	assert_string_equal(buf, "2026-11-25T00:27:03.999999Z");
}

static void test_to_json_shape(void **state)
{
	struct heal_event *ev = event__new("SYSCALL_FAILURE");
	cJSON *o, *p;
	char *s;

	(void)state;
	assert_non_null(ev);
	ev->ts_us = 1795566423ull * 1000000ull + 5;
	snprintf(ev->key, sizeof(ev->key), "shop:SYSCALL_FAILURE:openat:ENOENT:/x \"q\"");
	ev->ui_hint = "failure";
	cJSON_AddStringToObject(ev->payload, "target", "shop");
	cJSON_AddNumberToObject(ev->payload, "pid", 42);
	s = event__to_json(ev);
	assert_non_null(s);
	assert_null(strchr(s, '\n'));
	o = cJSON_Parse(s);
	assert_non_null(o);
	assert_string_equal(cJSON_GetObjectItem(o, "type")->valuestring, "SYSCALL_FAILURE");
	assert_string_equal(cJSON_GetObjectItem(o, "key")->valuestring,
			    "shop:SYSCALL_FAILURE:openat:ENOENT:/x \"q\"");
	assert_string_equal(cJSON_GetObjectItem(o, "timestamp")->valuestring,
			    "2026-11-25T00:27:03.000005Z");
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "trace_id")));
	assert_string_equal(cJSON_GetObjectItem(o, "ui_hint")->valuestring, "failure");
	p = cJSON_GetObjectItem(o, "payload");
	assert_string_equal(cJSON_GetObjectItem(p, "target")->valuestring, "shop");
	assert_int_equal(cJSON_GetObjectItem(p, "pid")->valueint, 42);
	/* exactly the six fields of the seed's event */
	assert_int_equal(cJSON_GetArraySize(o), 6);
	cJSON_Delete(o);
	free(s);

	snprintf(ev->trace_id, sizeof(ev->trace_id), "tr-1");
	ev->ui_hint = NULL;
	s = event__to_json(ev);
	o = cJSON_Parse(s);
	assert_string_equal(cJSON_GetObjectItem(o, "trace_id")->valuestring, "tr-1");
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "ui_hint")));
	cJSON_Delete(o);
	/* event__json: the same line, built once and kept with the event */
	assert_string_equal(event__json(ev), s);
	assert_ptr_equal(event__json(ev), event__json(ev));
	free(s);
	event__free(ev);
	event__free(NULL);
}

static void test_syscall_key(void **state)
{
	char key[128];

	(void)state;
	detect__key_syscall(key, sizeof(key), "shop", "openat", "ENOENT", "/etc/shop.json");
	assert_string_equal(key, "shop:SYSCALL_FAILURE:openat:ENOENT:/etc/shop.json");
	detect__key_syscall(key, sizeof(key), "shop", "write", "ENOSPC", "");
	assert_string_equal(key, "shop:SYSCALL_FAILURE:write:ENOSPC");
	detect__key_syscall(key, sizeof(key), "shop", "connect", "ECONNREFUSED", NULL);
	assert_string_equal(key, "shop:SYSCALL_FAILURE:connect:ECONNREFUSED");
	/* long details are cut, never overflow */
	detect__key_syscall(key, 20, "shop", "openat", "ENOENT", "/a/very/long/path");
	assert_int_equal(strlen(key), 19);
}

static int seen_all, seen_crash;

static void count_all(struct heal_event *ev, void *ctx)
{
	(void)ev;
	(*(int *)ctx)++;
}

static void test_bus_delivery(void **state)
{
	struct bus *b = bus__new();
	int i;

	(void)state;
	assert_non_null(b);
	assert_int_equal(bus__subscribe(b, NULL, count_all, &seen_all), 0);
	assert_int_equal(bus__subscribe(b, "CRASH", count_all, &seen_crash), 0);
	bus__publish(b, event__new("CRASH"));
	bus__publish(b, event__new("SYSCALL_FAILURE"));
	bus__publish(b, NULL);
	assert_int_equal(seen_all, 2);
	assert_int_equal(seen_crash, 1);
	assert_int_equal(bus__published(b), 2);
	/* the subscriber table is bounded */
	for (i = 0; i < 64; i++)
		if (bus__subscribe(b, NULL, count_all, &seen_all))
			break;
	assert_true(i < 64);
	bus__free(b);
	bus__free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format_time),
		cmocka_unit_test(test_to_json_shape),
		cmocka_unit_test(test_syscall_key),
		cmocka_unit_test(test_bus_delivery),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
