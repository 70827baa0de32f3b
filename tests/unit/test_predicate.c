// SPDX-License-Identifier: MIT
/* predicate__parse / predicate__eval: the "fail_when" mini-language. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "heal/config.h"

static struct heal_predicate parse_ok(const char *s)
{
	struct heal_predicate p = { .op = HEAL_OP_NONE, .arg = -1, .value = -42 };
	const char *why = "unset";
	int err = predicate__parse(s, &p, &why);

	if (err)
		fail_msg("predicate__parse(\"%s\") = %d: %s", s, err, why ? why : "(null)");
	assert_null(why);
	return p;
}

static void assert_parse_fails(const char *s, const char *want_why)
{
	struct heal_predicate p = { .op = HEAL_OP_GE, .arg = 7, .value = 99 };
	const char *why = NULL;
	int err = predicate__parse(s, &p, &why);

	if (err != -EINVAL)
		fail_msg("predicate__parse(\"%s\") = %d, want -EINVAL", s, err);
	assert_non_null(why);
	if (strcmp(why, want_why) != 0)
		fail_msg("predicate__parse(\"%s\"): why \"%s\", want \"%s\"", s, why, want_why);
	/* A failed parse must leave the output alone. */
	assert_int_equal(p.op, HEAL_OP_GE);
	assert_int_equal(p.arg, 7);
	assert_int_equal(p.value, 99);
}

static void test_operators(void **state)
{
	static const struct {
		const char *s;
		enum heal_pred_op op;
	} cases[] = {
		{ "ret >= 500", HEAL_OP_GE }, { "ret > 500", HEAL_OP_GT },
		{ "ret <= 500", HEAL_OP_LE }, { "ret < 500", HEAL_OP_LT },
		{ "ret == 500", HEAL_OP_EQ }, { "ret != 500", HEAL_OP_NE },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct heal_predicate p = parse_ok(cases[i].s);

		assert_int_equal(p.op, cases[i].op);
		assert_int_equal(p.arg, 0);
		assert_int_equal(p.value, 500);
	}
}

static void test_whitespace_variants(void **state)
{
	static const char *const same[] = {
		"ret>=500", "ret >=500", "ret>= 500", "  ret  >=  500  ", "\tret\t>=\t500\n",
	};

	for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
		struct heal_predicate p = parse_ok(same[i]);

		assert_int_equal(p.op, HEAL_OP_GE);
		assert_int_equal(p.arg, 0);
		assert_int_equal(p.value, 500);
	}
}

static void test_values(void **state)
{
	assert_int_equal(parse_ok("ret < 0").value, 0);
	assert_int_equal(parse_ok("ret < -1").value, -1);
	assert_int_equal(parse_ok("ret<-1").value, -1);
	assert_int_equal(parse_ok("ret != +7").value, 7);
	assert_int_equal(parse_ok("ret == 0x10").value, 16);
	assert_int_equal(parse_ok("ret == 0XfF").value, 255);
	assert_int_equal(parse_ok("ret == -0x10").value, -16);
	/* Leading zeros are decimal, never octal. */
	assert_int_equal(parse_ok("ret == 010").value, 10);
	assert_true(parse_ok("ret == 9223372036854775807").value == INT64_MAX);
	assert_true(parse_ok("ret == -9223372036854775808").value == INT64_MIN);
	assert_true(parse_ok("ret == 0x7fffffffffffffff").value == INT64_MAX);
}

static void test_args(void **state)
{
	struct heal_predicate p = parse_ok("arg1 >= 500");

	assert_int_equal(p.arg, 1);
	assert_int_equal(p.op, HEAL_OP_GE);
	p = parse_ok("arg12!=0");
	assert_int_equal(p.arg, 12);
	assert_int_equal(p.op, HEAL_OP_NE);
	assert_int_equal(p.value, 0);
}

static void test_garbage(void **state)
{
	assert_parse_fails("", "expected ret or argN on the left");
	assert_parse_fails("   ", "expected ret or argN on the left");
	assert_parse_fails("foo >= 5", "expected ret or argN on the left");
	assert_parse_fails("retval >= 5", "expected ret or argN on the left");
	assert_parse_fails("RET >= 5", "expected ret or argN on the left");
	assert_parse_fails("5 <= ret", "expected ret or argN on the left");
	assert_parse_fails("arg >= 5", "expected ret or argN on the left");
	assert_parse_fails("arg0 >= 5", "argument index must be 1..12");
	assert_parse_fails("arg13 >= 5", "argument index must be 1..12");
	assert_parse_fails("arg99999999999 >= 5", "argument index must be 1..12");
	assert_parse_fails("ret >> 5", "expected one of >= > <= < == !=");
	assert_parse_fails("ret = 5", "expected one of >= > <= < == !=");
	assert_parse_fails("ret => 5", "expected one of >= > <= < == !=");
	assert_parse_fails("ret === 5", "expected one of >= > <= < == !=");
	assert_parse_fails("ret 5", "expected one of >= > <= < == !=");
	assert_parse_fails("ret", "expected one of >= > <= < == !=");
	assert_parse_fails("ret >=", "expected an integer on the right");
	assert_parse_fails("ret >= abc", "expected an integer on the right");
	assert_parse_fails("ret >= - 5", "expected an integer on the right");
	assert_parse_fails("ret >= --5", "expected an integer on the right");
	assert_parse_fails("ret >= 5.5", "unexpected text after the integer");
	assert_parse_fails("ret >= 5 6", "unexpected text after the integer");
	assert_parse_fails("ret >= 500abc", "unexpected text after the integer");
	assert_parse_fails("ret >= 0x", "unexpected text after the integer");
	assert_parse_fails("ret >= 0xfg", "unexpected text after the integer");
	assert_parse_fails("ret >= 9223372036854775808", "integer out of range");
	assert_parse_fails("ret >= -9223372036854775809", "integer out of range");
	assert_parse_fails("ret >= 0x8000000000000000", "integer out of range");
	assert_parse_fails("ret >= 99999999999999999999999", "integer out of range");
}

static void test_null_arguments(void **state)
{
	struct heal_predicate p;
	const char *why = NULL;

	assert_int_equal(predicate__parse(NULL, &p, &why), -EINVAL);
	assert_non_null(why);
	assert_int_equal(predicate__parse("ret < 0", NULL, &why), -EINVAL);
	/* why is optional. */
	assert_int_equal(predicate__parse("ret < 0", &p, NULL), 0);
	assert_int_equal(predicate__parse("ret <", &p, NULL), -EINVAL);
}

static void test_eval_boundaries(void **state)
{
	struct heal_predicate p;

	p = parse_ok("ret >= 500");
	assert_false(predicate__eval(&p, 499));
	assert_true(predicate__eval(&p, 500));
	assert_true(predicate__eval(&p, 501));

	p = parse_ok("ret > 500");
	assert_false(predicate__eval(&p, 500));
	assert_true(predicate__eval(&p, 501));

	p = parse_ok("ret <= -1");
	assert_true(predicate__eval(&p, -1));
	assert_true(predicate__eval(&p, INT64_MIN));
	assert_false(predicate__eval(&p, 0));

	p = parse_ok("ret < 0");
	assert_true(predicate__eval(&p, -1));
	assert_false(predicate__eval(&p, 0));
	assert_false(predicate__eval(&p, INT64_MAX));

	p = parse_ok("ret == 0x10");
	assert_true(predicate__eval(&p, 16));
	assert_false(predicate__eval(&p, 15));
	assert_false(predicate__eval(&p, 17));

	p = parse_ok("ret != 0");
	assert_true(predicate__eval(&p, -1));
	assert_false(predicate__eval(&p, 0));
	assert_true(predicate__eval(&p, 1));

	p = parse_ok("ret >= -9223372036854775808");
	assert_true(predicate__eval(&p, INT64_MIN));
	assert_true(predicate__eval(&p, INT64_MAX));

	p = parse_ok("ret < -9223372036854775808");
	assert_false(predicate__eval(&p, INT64_MIN));

	p = parse_ok("ret > 9223372036854775807");
	assert_false(predicate__eval(&p, INT64_MAX));
}

static void test_eval_none_is_true(void **state)
{
	struct heal_predicate p = { .op = HEAL_OP_NONE, .arg = 0, .value = 123 };

	assert_true(predicate__eval(&p, 0));
	assert_true(predicate__eval(&p, INT64_MIN));
	assert_true(predicate__eval(&p, INT64_MAX));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_operators),	cmocka_unit_test(test_whitespace_variants),
		cmocka_unit_test(test_values),		cmocka_unit_test(test_args),
		cmocka_unit_test(test_garbage),		cmocka_unit_test(test_null_arguments),
		cmocka_unit_test(test_eval_boundaries), cmocka_unit_test(test_eval_none_is_true),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
