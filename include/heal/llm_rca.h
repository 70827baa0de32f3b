/* SPDX-License-Identifier: MIT */
/*
 * RCA by an LLM, for failures no playbook is confident about: the compact
 * context sent (the failure, its stack, the files involved — redacted) and
 * the strict reading of the answer. Anything that does not parse is refused
 * with a reason, and the caller falls back to the playbooks.
 */
#ifndef HEAL_LLM_RCA_H
#define HEAL_LLM_RCA_H

#include <limits.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#define LLM_RCA_FILES_MAX 4
#define LLM_RCA_FILE_BYTES (16u << 10) /* per file in the prompt: larger files are cut */

struct llm_rca_file {
	const char *path;
	const char *content; /* may be NULL: the file is missing */
	size_t len;
};

struct llm_rca_answer {
	char cause[384];
	double confidence; /* 0..1 */
	double risk;       /* 0..1 */
	char file[PATH_MAX]; /* "" when the answer proposes no change */
	char *content;       /* the whole new file (malloc'd), or NULL */
};

extern const char llm_rca_system[];

/*
 * The user message: failure type, key, payload (stack included), and the
 * files, each cut to LLM_RCA_FILE_BYTES. Redacted before it is returned;
 * *n_redacted counts what was replaced. malloc'd; NULL on ENOMEM.
 */
char *llm_rca__prompt(const char *type, const char *key, const cJSON *payload,
		      const struct llm_rca_file *files, int n_files, size_t *n_redacted);
/*
 * Read the model's answer: one JSON object (bare or in a ```json fence) with
 * "cause" (string), "confidence" and "risk" (0..1), and optionally "file"
 * (one of the files sent) with "content" (the whole new file). 0, or -EBADMSG
 * with why set.
 */
int llm_rca__parse(const char *answer, const struct llm_rca_file *files, int n_files,
		   struct llm_rca_answer *out, char *why, size_t whylen);
void llm_rca_answer__free(struct llm_rca_answer *a);

#endif /* HEAL_LLM_RCA_H */
