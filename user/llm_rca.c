// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "heal/llm_rca.h"
#include "heal/redact.h"

const char llm_rca_system[] =
	"You are the root-cause analyst of a self-healing host agent. A program failed; you get the "
	"failure as the kernel saw it and the configuration files that may be involved. Answer with "
	"one JSON object and nothing else: {\"cause\": \"one sentence\", \"confidence\": 0.0-1.0, "
	"\"risk\": 0.0-1.0, \"file\": \"path of one given file to change, or null\", \"content\": "
	"\"the whole new content of that file, or null\"}. Change as little as possible; never add "
	"secrets, shell commands or permission changes.";

char *llm_rca__prompt(const char *type, const char *key, const cJSON *payload,
		      const struct llm_rca_file *files, int n_files, size_t *n_redacted)
{
	char *failure = cJSON_PrintUnformatted(payload), *buf = NULL, *out;
	size_t cap = 4096, used = 0, n;
	int i;

	if (!failure)
		return NULL;
	cap += strlen(failure) + (size_t)n_files * (LLM_RCA_FILE_BYTES + PATH_MAX + 64);
	buf = malloc(cap);
	if (!buf) {
		free(failure);
		return NULL;
	}
	used += (size_t)snprintf(buf + used, cap - used, "Failure %s (signature %s):\n%s\n", type, key,
				 failure);
	free(failure);
	for (i = 0; i < n_files && i < LLM_RCA_FILES_MAX; i++) {
		if (!files[i].content) {
			used += (size_t)snprintf(buf + used, cap - used, "\nFile %s: missing\n", files[i].path);
			continue;
		}
		n = files[i].len > LLM_RCA_FILE_BYTES ? LLM_RCA_FILE_BYTES : files[i].len;
		used += (size_t)snprintf(buf + used, cap - used, "\nFile %s%s:\n<file>\n%.*s</file>\n",
					 files[i].path, n < files[i].len ? " (cut)" : "", (int)n,
					 files[i].content);
		if (used >= cap)
			break;
	}
	/* secrets never leave the host */
	out = redact__text(buf, n_redacted);
	free(buf);
	return out;
}

static bool fraction(const cJSON *v, double *out)
{
	if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= 1))
		return false;
	*out = v->valuedouble;
	return true;
}

int llm_rca__parse(const char *answer, const struct llm_rca_file *files, int n_files,
		   struct llm_rca_answer *out, char *why, size_t whylen)
{
	const char *a, *b;
	const cJSON *cause, *file, *content;
	cJSON *o;
	int i;

	memset(out, 0, sizeof(*out));
	a = answer ? strchr(answer, '{') : NULL;
	b = answer ? strrchr(answer, '}') : NULL;
	if (!a || !b || b < a) {
		snprintf(why, whylen, "the answer holds no JSON object");
		return -EBADMSG;
	}
	o = cJSON_ParseWithLength(a, (size_t)(b - a + 1));
	if (!cJSON_IsObject(o)) {
		cJSON_Delete(o);
		snprintf(why, whylen, "the answer's JSON does not parse");
		return -EBADMSG;
	}
	cause = cJSON_GetObjectItem(o, "cause");
	if (!cJSON_IsString(cause) || !cause->valuestring[0]) {
		snprintf(why, whylen, "the answer has no cause");
		goto bad;
	}
	snprintf(out->cause, sizeof(out->cause), "%s", cause->valuestring);
	if (!fraction(cJSON_GetObjectItem(o, "confidence"), &out->confidence) ||
	    !fraction(cJSON_GetObjectItem(o, "risk"), &out->risk)) {
		snprintf(why, whylen, "confidence and risk must be numbers from 0 to 1");
		goto bad;
	}
	file = cJSON_GetObjectItem(o, "file");
	content = cJSON_GetObjectItem(o, "content");
	if (cJSON_IsString(file) && file->valuestring[0]) {
		for (i = 0; i < n_files; i++)
			if (strcmp(files[i].path, file->valuestring) == 0)
				break;
		if (i == n_files) {
			snprintf(why, whylen, "the answer changes %s, a file it was not given",
				 file->valuestring);
			goto bad;
		}
		if (!cJSON_IsString(content)) {
			snprintf(why, whylen, "the answer names a file but gives no content");
			goto bad;
		}
		snprintf(out->file, sizeof(out->file), "%s", file->valuestring);
		out->content = strdup(content->valuestring);
		if (!out->content) {
			cJSON_Delete(o);
			return -ENOMEM;
		}
	}
	cJSON_Delete(o);
	return 0;
bad:
	cJSON_Delete(o);
	return -EBADMSG;
}

void llm_rca_answer__free(struct llm_rca_answer *a)
{
	if (!a)
		return;
	free(a->content);
	a->content = NULL;
}
