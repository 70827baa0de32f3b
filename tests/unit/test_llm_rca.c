// SPDX-License-Identifier: MIT
/* LLM RCA: what is sent (redacted, bounded) and how strictly answers are read. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "heal/llm_rca.h"

static const struct llm_rca_file files[] = {
	{ "/etc/shop/returns-schema.json", "{\"required\": [\"order_id\", \"rma_code\"]}\n", 40 },
	{ "/etc/shop/shop.json", "{\"db_password\": \"hunter2hunter2\"}\n", 34 },
	{ "/etc/shop/catalog.json", NULL, 0 },
};

static void test_prompt_redacted(void **state)
{
	cJSON *payload = cJSON_Parse("{\"target\": \"shop\", \"symbol\": \"shop_handle_return\", \"ret\": 500}");
	size_t nred = 0;
	char *p;

	(void)state;
	p = llm_rca__prompt("API_FAILURE", "shop:API_FAILURE:shop_handle_return", payload, files, 3, &nred);
	assert_non_null(p);
	assert_non_null(strstr(p, "shop_handle_return"));
	assert_non_null(strstr(p, "rma_code"));
	assert_non_null(strstr(p, "File /etc/shop/catalog.json: missing"));
	assert_null(strstr(p, "hunter2hunter2"));
	assert_true(nred >= 1);
	free(p);
	cJSON_Delete(payload);
}

static void test_prompt_bounded(void **state)
{
	size_t big = 3 * LLM_RCA_FILE_BYTES, nred;
	char *content = malloc(big + 1), *p;
	struct llm_rca_file f = { "/etc/big.json", content, big };
	cJSON *payload = cJSON_CreateObject();

	(void)state;
	memset(content, 'a', big);
	content[big] = 0;
	p = llm_rca__prompt("CRASH", "k", payload, &f, 1, &nred);
	assert_non_null(p);
	assert_true(strlen(p) < LLM_RCA_FILE_BYTES + 1024);
	assert_non_null(strstr(p, "(cut)"));
	free(p);
	free(content);
	cJSON_Delete(payload);
}

static void test_parse_good(void **state)
{
	struct llm_rca_answer a;
	char why[128];

	(void)state;
	assert_int_equal(llm_rca__parse("Here you go:\n```json\n{\"cause\": \"rma_code is required but never sent\","
					"\"confidence\": 0.8, \"risk\": 0.2, \"file\": \"/etc/shop/returns-schema.json\","
					"\"content\": \"{\\\"required\\\": [\\\"order_id\\\"]}\\n\"}\n```",
					files, 3, &a, why, sizeof(why)), 0);
	assert_string_equal(a.cause, "rma_code is required but never sent");
	assert_true(a.confidence == 0.8 && a.risk == 0.2);
	assert_string_equal(a.file, "/etc/shop/returns-schema.json");
	assert_string_equal(a.content, "{\"required\": [\"order_id\"]}\n");
	llm_rca_answer__free(&a);
	/* a diagnosis without a change is fine */
	assert_int_equal(llm_rca__parse("{\"cause\": \"disk\", \"confidence\": 0.3, \"risk\": 0.5, \"file\": null}",
					files, 3, &a, why, sizeof(why)), 0);
	assert_string_equal(a.file, "");
	assert_null(a.content);
}

static void test_parse_garbage(void **state)
{
	static const struct {
		const char *answer, *why;
	} bad[] = {
		{ "I think the schema is wrong.", "no JSON object" },
		{ "{\"cause\": \"x\", \"confidence\": 0.5", "no JSON object" },
		{ "{\"cause\": \"x\", \"confidence\": 0.5, }", "does not parse" },
		{ "{\"confidence\": 0.5, \"risk\": 0.1}", "no cause" },
		{ "{\"cause\": \"x\", \"confidence\": 1.5, \"risk\": 0.1}", "from 0 to 1" },
		{ "{\"cause\": \"x\", \"confidence\": \"high\", \"risk\": 0.1}", "from 0 to 1" },
		{ "{\"cause\": \"x\", \"confidence\": 0.5, \"risk\": 0.1, \"file\": \"/etc/passwd\", \"content\": \"\"}",
		  "not given" },
		{ "{\"cause\": \"x\", \"confidence\": 0.5, \"risk\": 0.1, \"file\": \"/etc/shop/shop.json\"}",
		  "no content" },
		{ NULL, "no JSON object" },
	};
	struct llm_rca_answer a;
	char why[128];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(llm_rca__parse(bad[i].answer, files, 3, &a, why, sizeof(why)), -EBADMSG);
		assert_non_null(strstr(why, bad[i].why));
		assert_null(a.content);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_prompt_redacted),
		cmocka_unit_test(test_prompt_bounded),
		cmocka_unit_test(test_parse_good),
		cmocka_unit_test(test_parse_garbage),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
