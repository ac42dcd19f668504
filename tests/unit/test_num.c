/* Numbers from requests (lib/num.c); strtoll() is the reference where it
 * is right. */
#include <errno.h>

#include "check.h"
#include "cloudfs/num.h"

static int parsed(const char *s, int64_t min, int64_t max, int64_t *v)
{
	*v = 12345;
	return cfs_num_parse_i64(s, min, max, v);
}

static void test_decimal_digits_parse_up_to_the_bounds(void)
{
	int64_t v;

	CHECK(parsed("0", 0, INT64_MAX, &v) == 0 && v == 0);
	CHECK(parsed("42", 0, INT64_MAX, &v) == 0 && v == 42);
	CHECK(parsed("007", 0, INT64_MAX, &v) == 0 && v == 7);
	CHECK(parsed("9223372036854775807", 0, INT64_MAX, &v) == 0 &&
	      v == INT64_MAX);
	CHECK(parsed("-9223372036854775808", INT64_MIN, 0, &v) == 0 &&
	      v == INT64_MIN);
	CHECK(parsed("-1", -1, 1, &v) == 0 && v == -1);
	CHECK(parsed("1000", 1, 1000, &v) == 0 && v == 1000);
}

static void test_overflow_and_bounds_are_out_of_range(void)
{
	int64_t v;

	CHECK(parsed("9223372036854775808", 0, INT64_MAX, &v) == -ERANGE);
	CHECK(parsed("99999999999999999999", 0, INT64_MAX, &v) == -ERANGE);
	CHECK(parsed("18446744073709551616", 0, INT64_MAX, &v) == -ERANGE);
	CHECK(parsed("-9223372036854775809", INT64_MIN, 0, &v) == -ERANGE);
	CHECK(parsed("1001", 1, 1000, &v) == -ERANGE);
	CHECK(parsed("0", 1, 1000, &v) == -ERANGE);
	CHECK(parsed("-5", -4, 4, &v) == -ERANGE);
	CHECK(v == 12345); /* untouched on failure */
}

static void test_anything_but_digits_is_malformed(void)
{
	static const char *const bad[] = {
		"",    " 5",
		"5 ",  "+5",
		"-5",  "-",
		"5x",  "0x10",
		"1e3", "1.0",
		"5\n", "٣",
		"--1", "99999999999999999999x",
	};
	int64_t v;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(parsed(bad[i], 0, INT64_MAX, &v) == -EINVAL);
	CHECK(parsed("-", INT64_MIN, 0, &v) == -EINVAL);
	CHECK(parsed("--1", INT64_MIN, 0, &v) == -EINVAL);
	CHECK(v == 12345);
}

int main(void)
{
	RUN(test_decimal_digits_parse_up_to_the_bounds);
	RUN(test_overflow_and_bounds_are_out_of_range);
	RUN(test_anything_but_digits_is_malformed);
	return CHECK_DONE();
}
