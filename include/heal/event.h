/* SPDX-License-Identifier: MIT */
/*
 * heal_event: the userspace form of every event, JSON-shaped as in the seed:
 * {type, key, payload, timestamp, trace_id, ui_hint}.
 */
#ifndef HEAL_EVENT_H
#define HEAL_EVENT_H

#include <stdint.h>
#include <cjson/cJSON.h>

#define HEAL_KEY_LEN 512
#define HEAL_TRACE_ID_LEN 40

struct heal_event {
	const char *type;            /* "SYSCALL_FAILURE", ... (static string) */
	char key[HEAL_KEY_LEN];      /* stable failure signature */
	uint64_t ts_us;              /* wall clock, microseconds since the epoch */
	char trace_id[HEAL_TRACE_ID_LEN]; /* empty until the healer opens a trace */
	const char *ui_hint;         /* static string, may be NULL */
	cJSON *payload;              /* owned */
	char *json;                  /* event__json()'s cache, owned */
};

/* A new event of type with an empty payload object; NULL on ENOMEM. */
struct heal_event *event__new(const char *type);
void event__free(struct heal_event *ev);
/* Format ts_us as RFC 3339 UTC with microseconds: 2026-11-25T00:27:03.123456Z. */
void event__format_time(uint64_t ts_us, char *buf, size_t len);
/* One JSON object, no newline; caller frees. NULL on ENOMEM. */
char *event__to_json(const struct heal_event *ev);
/*
 * The same, built once per event and kept with it: the journal, --watch, the
 * API's log and the fleet store each want the line, and formatting is most of
 * what an event costs heald. Valid until event__free; change nothing after.
 */
const char *event__json(struct heal_event *ev);
/* Current wall clock in microseconds. */
uint64_t event__now_us(void);

#endif /* HEAL_EVENT_H */
