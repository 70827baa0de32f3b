/* SPDX-License-Identifier: MIT */
/*
 * Secret redaction for text that leaves the host (LLM prompts) or enters a
 * file (patches): API keys and tokens, Authorization credentials, PEM private
 * keys, URL passwords, and the values of password/secret/token-like keys in
 * JSON, INI, YAML, env and command-line form. Hand-written scanners, no regex.
 */
#ifndef HEAL_REDACT_H
#define HEAL_REDACT_H

#include <stdbool.h>
#include <stddef.h>

/* What a secret is replaced with; text already holding it is left as is (idempotent). */
#define REDACT_MARK "[REDACTED]"

/*
 * A malloc'd copy of in with every secret replaced by REDACT_MARK; the number
 * of replacements goes to *n_redacted (may be NULL). NULL (errno set) when in
 * is NULL or memory runs out.
 */
char *redact__text(const char *in, size_t *n_redacted);
/* True when redact__text would replace something in s (guard: refuse patches adding secrets). */
bool redact__has_secret(const char *s);

#endif /* HEAL_REDACT_H */
