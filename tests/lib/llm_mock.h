/* SPDX-License-Identifier: MIT */
/*
 * A local LLM endpoint for tests: libmicrohttpd on 127.0.0.1 (ephemeral port,
 * its own threads) speaking the Anthropic Messages wire format on
 * /v1/messages and the OpenAI chat format on /v1/chat/completions. Replies
 * come from a script consumed in order; every request is recorded.
 */
#ifndef HEAL_TEST_LLM_MOCK_H
#define HEAL_TEST_LLM_MOCK_H

#include <stddef.h>

enum llm_mock_kind {
	LLM_MOCK_OK,	/* 200 with text (and text2, a second text block) */
	LLM_MOCK_ERROR, /* status with the provider's error shape: error_type, text as message */
	LLM_MOCK_RAW,	/* status with text as the body, verbatim (truncated JSON, odd shapes) */
};

struct llm_mock_reply {
	enum llm_mock_kind kind;
	int status; /* 0: 200 */
	const char *text;
	const char *text2;	/* OK, Anthropic: a tool_use block, then this second text block */
	const char *error_type; /* ERROR */
	unsigned retry_after_s; /* > 0: send retry-after */
	unsigned delay_ms;	/* wait this long before answering */
	const char *request_id; /* NULL: "req_mock_<n>" */
};

struct llm_mock_request {
	char method[16];
	char path[256];
	char **names, **values; /* headers, as received */
	size_t n_headers;
	char *body; /* NUL-terminated */
	size_t body_len;
	long at_ms; /* CLOCK_MONOTONIC when the request was complete */
};

struct llm_mock;

/* Start on 127.0.0.1:0; NULL on failure. */
struct llm_mock *llm_mock__start(void);
/* Stop (wakes delayed replies) and free everything. */
void llm_mock__stop(struct llm_mock *m);
/* "http://127.0.0.1:PORT" */
const char *llm_mock__url(const struct llm_mock *m);

/* Append a reply to the script (strings are copied). An empty script answers 500. */
void llm_mock__push(struct llm_mock *m, const struct llm_mock_reply *r);
void llm_mock__ok(struct llm_mock *m, const char *text);
void llm_mock__error(struct llm_mock *m, int status, const char *type, const char *message);
void llm_mock__rate_limited(struct llm_mock *m, unsigned retry_after_s); /* 429 rate_limit_error */
void llm_mock__overloaded(struct llm_mock *m);				 /* 529 overloaded_error */
void llm_mock__slow(struct llm_mock *m, unsigned delay_ms, const char *text);
void llm_mock__raw(struct llm_mock *m, int status, const char *body);

/* Forget the script and the recorded requests. */
void llm_mock__reset(struct llm_mock *m);
size_t llm_mock__n_requests(struct llm_mock *m);
/* The i-th request (valid until reset or stop), NULL past the end. */
const struct llm_mock_request *llm_mock__request(struct llm_mock *m, size_t i);
/* Value of a request header, case-insensitive name; NULL when absent. */
const char *llm_mock__header(const struct llm_mock_request *r, const char *name);

#endif /* HEAL_TEST_LLM_MOCK_H */
