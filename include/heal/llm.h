/* SPDX-License-Identifier: MIT */
/*
 * LLM client: the Anthropic Messages API and any OpenAI-compatible chat
 * endpoint (OpenAI, llama.cpp, Ollama, Morph's apply model). Blocking calls
 * under a total time budget, retries with backoff; meant for worker threads.
 * Everything sent is passed through redact__text first; nothing is printed.
 */
#ifndef HEAL_LLM_H
#define HEAL_LLM_H

#include <stddef.h>

struct cJSON;

enum llm_provider {
	LLM_ANTHROPIC, /* POST {base_url}/v1/messages, x-api-key */
	LLM_OPENAI,    /* POST {base_url}/v1/chat/completions, Authorization: Bearer (optional) */
};

#define LLM_ANSWER_MAX	 (4u << 20) /* larger response bodies are an error */
#define LLM_KEY_FILE_MAX 4096

/*
 * The "llm" object of heal.json. The key itself never is in the config.
 * base_url defaults to https://api.anthropic.com or https://api.openai.com;
 * it is kept without a trailing '/', and a base ending in /v1 gets no second /v1.
 */
struct llm_config {
	enum llm_provider provider; /* "anthropic" | "openai" (required) */
	char *base_url;
	char *model;	      /* required */
	char *api_key_env;    /* environment variable holding the key, or NULL */
	char *api_key_file;   /* absolute path of a 0600 file holding it, or NULL */
	unsigned timeout_ms;  /* budget of a call, retries included (30000) */
	unsigned max_retries; /* retries after the first attempt (2) */
	unsigned max_tokens;  /* of the answer (1024) */
	unsigned backoff_ms;  /* first retry delay, doubled per retry, jittered, max 8 s (500) */
};

/*
 * Parse obj, the object found at JSON path at ("llm" when NULL), into out
 * (defaults filled in). 0, or -EINVAL with the full JSON path of the
 * offending field ("llm.model") and a reason, or -ENOMEM. Anthropic needs
 * one of api_key_env/api_key_file; an "api_key" member is refused.
 */
int llm_config__parse(const struct cJSON *obj, const char *at, struct llm_config *out, char *field,
		      size_t flen, char *reason, size_t rlen);
void llm_config__free(struct llm_config *c);
const char *llm__provider_name(enum llm_provider p);

struct llm_client;

/*
 * A client for config c (copied). Loads the key now, from the environment
 * variable or the key file (refused unless a regular file owned by this user
 * or root, with no group/other permission bits), and refuses to send a key
 * over plain http to anything but loopback. NULL with a one-line reason in err.
 */
struct llm_client *llm__new(const struct llm_config *c, char *err, size_t errlen);
void llm__free(struct llm_client *c);

struct llm_result {
	int ok;
	long http_status;     /* of the last response; 0 when none arrived */
	char *text;	      /* the answer (malloc'd) when ok */
	char request_id[128]; /* request-id / x-request-id of the last response */
	unsigned attempts;
	long duration_ms;
	unsigned redacted; /* secrets replaced in what was sent (the answer may echo the mark) */
	int truncated;	   /* the model stopped at max_tokens */
	char error[256];   /* one line naming the cause when !ok */
};

/*
 * Ask for a completion of user under system (NULL: none) within budget_ms
 * (0, or more than the config's timeout_ms, means timeout_ms), retrying 429,
 * 5xx and transport errors with backoff (retry-after honoured), never other
 * 4xx. Thread-safe. 0 with out->ok, or a negative errno with out->error:
 * -ETIMEDOUT, -EIO (HTTP or transport), -EBADMSG (answer not JSON or without
 * text), -EMSGSIZE (answer over LLM_ANSWER_MAX), -ENOMEM, -EINVAL. out is
 * always filled; free it with llm_result__free.
 */
int llm__complete(struct llm_client *c, const char *system, const char *user, unsigned budget_ms,
		  struct llm_result *out);
/*
 * Morph-style apply: sends "<instruction>I</instruction>\n<code>C</code>\n<update>U</update>"
 * as the user message (no system prompt); the answer is the whole merged file.
 */
int llm__morph_apply(struct llm_client *c, const char *instruction, const char *code,
		     const char *update, unsigned budget_ms, struct llm_result *out);
void llm_result__free(struct llm_result *r);

#endif /* HEAL_LLM_H */
