// SPDX-License-Identifier: MIT
/* redact: a corpus of secrets that must go, and of text, code and numbers that must stay. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "heal/redact.h"

struct red_case {
	const char *in;
	const char *out; /* NULL: unchanged */
	size_t n;	 /* replacements */
};

#define R REDACT_MARK

/* Every kind of secret, in the forms it shows up in. */
static const struct red_case secrets[] = {
    /* provider keys and tokens */
    {"key sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789ABCD-ef_0 end", "key " R " end", 1},
    {"sk-proj-AbCdEf1234567890abcdefGHIJ", R, 1},
    {"sk-Abcdefghijklmnopqrst0123456789", R, 1},
    {"aws AKIAIOSFODNN7EXAMPLE key", "aws " R " key", 1},
    {"ASIAY34FZKBOKMUTVV7A", R, 1},
    {"ghp_aBcD1234567890aBcD1234567890aBcD12", R, 1},
    {"github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", R, 1},
    {"slack xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", "slack " R, 1},
    {"xoxp-1234567890-abcdef", R, 1},
    {"sk_live_4eC39HqLyjWDarjtT1zdp7dc", R, 1},
    {"glpat-xxxxXXXXxxxx1234yyyy", R, 1},
    {"AIzaSyA1234567890abcdefghijklmnopqrstu", R, 1},
    /* JWT */
    {"jwt eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
     "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U done",
     "jwt " R " done", 1},
    /* Authorization */
    {"Authorization: Bearer abc.def-ghi_123", "Authorization: Bearer " R, 1},
    {"authorization: basic dXNlcjpwYXNzd29yZA==", "authorization: basic " R, 1},
    {"curl -H 'Authorization: Token abc123' -H \"Proxy-Authorization: Basic Zm9vOmJhcg==\" x",
     "curl -H 'Authorization: Token " R "' -H \"Proxy-Authorization: Basic " R "\" x", 2},
    {"{\"Authorization\": \"Bearer xyz789\"}", "{\"Authorization\": \"Bearer " R "\"}", 1},
    {"Authorization: Digest username=\"a\", response=\"b\"\nnext",
     "Authorization: Digest " R "\nnext", 1},
    {"Authorization: abcdef123456", "Authorization: " R, 1},
    {"sent Bearer abcdefghijklmnopqrstuvwxyz012345 to it", "sent Bearer " R " to it", 1},
    /* PEM private keys */
    {"before\n-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\nabc\n-----END RSA PRIVATE "
     "KEY-----\nafter",
     "before\n" R "\nafter", 1},
    {"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n-----END OPENSSH PRIVATE KEY-----", R,
     1},
    {"-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg (cut off)", R, 1},
    /* URL credentials */
    {"postgres://app:hunter2@db.example.com:5432/shop",
     "postgres://app:" R "@db.example.com:5432/shop", 1},
    {"redis://:s3cr3t@cache:6379/0", "redis://:" R "@cache:6379/0", 1},
    {"amqp://u:p@ss@mq/vh ok", "amqp://u:" R "@mq/vh ok", 1},
    {"https://example.com/?access_token=abc123&page=2",
     "https://example.com/?access_token=" R "&page=2", 1},
    /* key = value: JSON, INI, YAML, env, command line */
    {"password=hunter2", "password=" R, 1},
    {"DB_PASSWORD = \"a b c\"", "DB_PASSWORD = \"" R "\"", 1},
    {"db_password: 's3cret'", "db_password: '" R "'", 1},
    {"{\"api_key\": \"abc\", \"user\": \"bob\"}", "{\"api_key\": \"" R "\", \"user\": \"bob\"}", 1},
    {"{\"clientSecret\":\"x1\",\"ApiKey\":\"y2\",\"refresh_token\":\"z3\"}",
     "{\"clientSecret\":\"" R "\",\"ApiKey\":\"" R "\",\"refresh_token\":\"" R "\"}", 3},
    {"export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
     "export AWS_SECRET_ACCESS_KEY=" R, 1},
    {"[client]\nuser = app\npassword = hunter2\nhost = db\n",
     "[client]\nuser = app\npassword = " R "\nhost = db\n", 1},
    {"db:\n  passwd: my long pass phrase\n  host: x\n", "db:\n  passwd: " R "\n  host: x\n", 1},
    {"password: 1234 # comment", "password: " R " # comment", 1},
    {"private_key: abc\naccess-key=def\ncredentials: ghi",
     "private_key: " R "\naccess-key=" R "\ncredentials: " R, 3},
    {"mysql --password hunter2 --token=abc", "mysql --password " R " --token=" R, 2},
    {"x-api-key: abcdef123", "x-api-key: " R, 1},
    {"Server=db;Password=abc;User=x", "Server=db;Password=" R ";User=x", 1},
    {"echo \"password=hunter2\"", "echo \"password=" R "\"", 1},
    {"password = \"hunter2\"; /* hard-coded */", "password = \"" R "\"; /* hard-coded */", 1},
    {"Cookie: sessionid=abc123; csrftoken=def\nHost: x", "Cookie: " R "\nHost: x", 1},
    {"GITHUB_TOKEN=ghp_aBcD1234567890aBcD1234567890aBcD12", "GITHUB_TOKEN=" R, 1},
    /* JSON-escaped text (a prompt inside a request body) */
    {"{\\\"password\\\": \\\"hunter2\\\", \\\"x\\\": 1}",
     "{\\\"password\\\": \\\"" R "\\\", \\\"x\\\": 1}", 1},
    {"\"line\\npassword: hunter2\\nnext\"", "\"line\\npassword: " R "\\nnext\"", 1},
};

/* Ordinary text, code and numbers: left exactly as they are. */
static const char *const plain[] = {
    "The quick brown fox jumps over the lazy dog.",
    "12345 3.14159 -42 0x7fffffff 1e9 550e8400-e29b-41d4-a716-446655440000",
    "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "openat(\"/etc/nginx/nginx.conf\") = -1 ENOENT (No such file or directory)",
    "connect(3, {sa_family=AF_INET, sin_port=htons(5432), sin_addr=inet_addr(\"10.0.0.5\")}) = -1 "
    "ECONNREFUSED",
    "use sk-learn-pipeline-transformer-long-name here; task-list-builder; desk-top",
    "AKIA is a prefix; AKIAIOSFODNN7EXAMPLEX is too long",
    "{\"max_tokens\": 1024, \"model\": \"claude\", \"token_type\": \"Bearer\", \"input_tokens\": "
    "7}",
    "{\"password_file\": \"/etc/heal/pw\", \"api_key_env\": \"ANTHROPIC_API_KEY\", \"token_url\": "
    "\"https://a/b\"}",
    "static int token_count = 0;\nif (password == NULL)\n\treturn -EINVAL;",
    "char *token = strtok(line, \" \");\nconst char *secret = getenv(\"SECRET\");",
    "token = p->next;\npassword = NULL;\nsecret_len = strlen(secret);",
    "f(user=user, password=password)\ndef g(token: str = None): pass",
    "bool has_secret = n > 0;\nif (!is_token) return;",
    "printf(\"password=%s\\n\", pw);\nPASSWORD=$DB_PASSWORD ./run",
    "token: 3600\nexpires_in: 3600\nmax_tokens: 512",
    "user@example.com wrote: see https://example.com/path?q=1#frag",
    "http://[::1]:8080/ and https://example.com:443/",
    "case TOKEN:\n\tbreak;\nx = a ? token : other;",
    "Bearer tokens expire; the bearer of bad news.",
    "the password is wrong; secret sauce; token ring",
    "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
    "",
};

static void check_case(const char *in, const char *want, size_t want_n)
{
	size_t n = 99, n2 = 99;
	char *out = redact__text(in, &n), *again;

	assert_non_null(out);
	if (strcmp(out, want))
		fail_msg("redact(\"%s\")\n  = \"%s\"\n  expected \"%s\"", in, out, want);
	if (n != want_n)
		fail_msg("redact(\"%s\"): %zu replacements, expected %zu", in, n, want_n);
	assert_int_equal(redact__has_secret(in), want_n > 0);
	/* idempotent: the mark is never redacted again */
	again = redact__text(out, &n2);
	assert_non_null(again);
	if (strcmp(again, out) || n2)
		fail_msg("not idempotent: \"%s\" -> \"%s\" (%zu)", out, again, n2);
	assert_false(redact__has_secret(out));
	free(again);
	free(out);
}

static void test_secrets(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
		check_case(secrets[i].in, secrets[i].out ? secrets[i].out : secrets[i].in,
			   secrets[i].n);
}

static void test_plain_text_untouched(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(plain) / sizeof(plain[0]); i++)
		check_case(plain[i], plain[i], 0);
}

/* A JSON document holding secrets in its strings stays valid JSON once redacted. */
static void test_json_stays_json(void **state)
{
	cJSON *o = cJSON_CreateObject(), *back;
	char *s, *r;
	size_t n;

	(void)state;
	cJSON_AddStringToObject(o, "model", "m");
	cJSON_AddNumberToObject(o, "max_tokens", 1024);
	cJSON_AddStringToObject(
	    o, "content",
	    "config:\n{\"password\": \"p\\\"w\", \"token\": \"t\"}\n"
	    "DB_URL=postgres://u:pw@h/db\npassword: x \"y\" z\n"
	    "Authorization: Digest a=\"b\"\nkey sk-ant-api03-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe");
	s = cJSON_PrintUnformatted(o);
	r = redact__text(s, &n);
	assert_non_null(r);
	assert_true(n >= 5);
	back = cJSON_Parse(r);
	if (!back)
		fail_msg("not JSON any more: %s", r);
	assert_int_equal(cJSON_GetObjectItem(back, "max_tokens")->valueint, 1024);
	assert_null(strstr(r, "Zx9Yw8"));
	assert_null(strstr(r, ":pw@"));
	cJSON_Delete(back);
	cJSON_Delete(o);
	free(s);
	free(r);
}

static void test_has_secret(void **state)
{
	(void)state;
	assert_true(
	    redact__has_secret("+\tconst char *key = \"sk-ant-api03-Zx9Yw8Vu7Ts6Rq5Po4Nm3\";"));
	assert_true(redact__has_secret("+password: hunter2"));
	assert_false(redact__has_secret("+\tworker_connections 1024;"));
	assert_false(redact__has_secret("+\tpassword = read_password(fd);"));
	assert_false(redact__has_secret(NULL));
}

static void test_edges(void **state)
{
	char *big, *out;
	size_t i, n, len = 1u << 21;

	(void)state;
	errno = 0;
	assert_null(redact__text(NULL, &n));
	assert_int_equal(errno, EINVAL);
	assert_int_equal(n, 0);

	/* truncated inputs at every length must not read past the end */
	{
		const char *s = "Authorization: Bearer x postgres://u:p@h \"password\": \"q";
		char buf[128];

		for (i = 0; i <= strlen(s); i++) {
			memcpy(buf, s, i);
			buf[i] = '\0';
			out = redact__text(buf, NULL);
			assert_non_null(out);
			free(out);
		}
	}

	/* 2 MiB of mixed text: linear, and every secret found */
	big = malloc(len + 1);
	assert_non_null(big);
	for (i = 0; i + 32 <= len; i += 32)
		memcpy(big + i,
		       i % 64 ? "password=hunter2 plain words...\n"
			      : "some ordinary log line text ...\n",
		       32);
	big[i] = '\0';
	out = redact__text(big, &n);
	assert_non_null(out);
	assert_int_equal(n, len / 64);
	assert_null(strstr(out, "hunter2"));
	free(out);
	free(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_secrets),	    cmocka_unit_test(test_plain_text_untouched),
	    cmocka_unit_test(test_json_stays_json), cmocka_unit_test(test_has_secret),
	    cmocka_unit_test(test_edges),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
