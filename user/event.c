// SPDX-License-Identifier: MIT
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "heal/event.h"

struct heal_event *event__new(const char *type)
{
	struct heal_event *ev = calloc(1, sizeof(*ev));

	if (!ev)
		return NULL;
	ev->payload = cJSON_CreateObject();
	if (!ev->payload) {
		free(ev);
		return NULL;
	}
	ev->type = type;
	ev->ts_us = event__now_us();
	return ev;
}

void event__free(struct heal_event *ev)
{
	if (!ev)
		return;
	cJSON_Delete(ev->payload);
	free(ev->json);
	free(ev);
}

uint64_t event__now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void event__format_time(uint64_t ts_us, char *buf, size_t len)
{
	time_t sec = (time_t)(ts_us / 1000000u);
	struct tm tm;
	char day[32];

	gmtime_r(&sec, &tm);
	strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%06uZ", day, (unsigned)(ts_us % 1000000u));
}

char *event__to_json(const struct heal_event *ev)
{
	cJSON *o = cJSON_CreateObject();
	char when[48];
	char *out = NULL;

	if (!o)
		return NULL;
	event__format_time(ev->ts_us, when, sizeof(when));
	/* cJSON_AddItemReferenceToObject: the payload stays owned by the event */
	if (!cJSON_AddStringToObject(o, "type", ev->type) ||
	    !cJSON_AddStringToObject(o, "key", ev->key) ||
	    !cJSON_AddItemReferenceToObject(o, "payload", ev->payload) ||
	    !cJSON_AddStringToObject(o, "timestamp", when) ||
	    !(ev->trace_id[0] ? cJSON_AddStringToObject(o, "trace_id", ev->trace_id) :
				cJSON_AddNullToObject(o, "trace_id")) ||
	    !(ev->ui_hint ? cJSON_AddStringToObject(o, "ui_hint", ev->ui_hint) :
			    cJSON_AddNullToObject(o, "ui_hint")))
		goto cleanup;
	out = cJSON_PrintUnformatted(o);
cleanup:
	cJSON_Delete(o);
	return out;
}

const char *event__json(struct heal_event *ev)
{
	if (!ev->json)
		ev->json = event__to_json(ev);
	return ev->json;
}
