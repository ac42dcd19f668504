/* Naming rules (lib/path.c). */
#include <string.h>

#include "check.h"
#include "cloudfs/path.h"

static bool name_ok(const char *s, size_t len)
{
	struct cfs_error err;

	return cfs_name_check(s, len, "name", &err) == CFS_OK;
}

static bool path_ok(const char *s)
{
	struct cfs_error err;

	return cfs_path_check(s, strlen(s), false, "path", &err) == CFS_OK;
}

static void test_utf8_validation_refuses_every_malformed_form(void)
{
	CHECK(cfs_utf8_valid("plain", 5));
	CHECK(cfs_utf8_valid("\xc3\xa9t\xc3\xa9", 6)); /* été */
	CHECK(cfs_utf8_valid("\xe2\x82\xac", 3));      /* € */
	CHECK(cfs_utf8_valid("\xf0\x9f\x93\xb7", 4));  /* 📷 */
	CHECK(cfs_utf8_valid("\xf4\x8f\xbf\xbf", 4));  /* U+10FFFF */
	CHECK(!cfs_utf8_valid("\x80", 1));	       /* stray continuation */
	CHECK(!cfs_utf8_valid("\xc0\xaf", 2));	       /* overlong '/' */
	CHECK(!cfs_utf8_valid("\xe0\x80\xaf", 3));     /* overlong '/' */
	CHECK(!cfs_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
	CHECK(!cfs_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
	CHECK(!cfs_utf8_valid("\xe2\x82", 2));	       /* truncated */
	CHECK(!cfs_utf8_valid("\xff", 1));
}

static void test_names_follow_the_rules(void)
{
	char long_name[257];

	CHECK(name_ok("a", 1));
	CHECK(name_ok("...", 3));
	CHECK(name_ok(".hidden", 7));
	CHECK(!name_ok("", 0));
	CHECK(!name_ok(".", 1));
	CHECK(!name_ok("..", 2));
	CHECK(!name_ok("a/b", 3));
	CHECK(!name_ok("a\0b", 3));
	CHECK(!name_ok("\xc0\xaf", 2));
	memset(long_name, 'x', sizeof(long_name));
	CHECK(name_ok(long_name, 255));
	CHECK(!name_ok(long_name, 256));
}

static void test_paths_follow_the_rules(void)
{
	static char long_path[4200];
	struct cfs_error err;

	CHECK(path_ok("a"));
	CHECK(path_ok("a/b/c.txt"));
	CHECK(!path_ok(""));
	CHECK(cfs_path_check("", 0, true, "path", &err) == CFS_OK);
	CHECK(!path_ok("/a"));
	CHECK(!path_ok("a/"));
	CHECK(!path_ok("a//b"));
	CHECK(!path_ok("a/../b"));
	CHECK(!path_ok("./a"));
	/* 4096 bytes of "x/x/...x" pass, one more byte does not. */
	for (size_t i = 0; i < 4096; i++)
		long_path[i] = i % 2 ? '/' : 'x';
	long_path[4095] = 'x';
	CHECK(cfs_path_check(long_path, 4096, false, "path", &err) == CFS_OK);
	long_path[4096] = 'x';
	CHECK(cfs_path_check(long_path, 4097, false, "path", &err) ==
	      CFS_ERR_BAD_PATH);
}

static void test_errors_name_the_checked_thing(void)
{
	struct cfs_error err;

	CHECK(cfs_path_check("a//b", 4, false, "field 'to'", &err) ==
	      CFS_ERR_BAD_PATH);
	CHECK(err.code == CFS_ERR_BAD_PATH);
	CHECK(strstr(err.msg, "field 'to'") != NULL);
	CHECK(strstr(err.msg, "empty name") != NULL);
}

static void test_iteration_yields_each_name_then_stops(void)
{
	struct cfs_path_iter it = cfs_path_iter_init("ab/c/def");

	CHECK(cfs_path_next(&it) && it.len == 2 && !memcmp(it.name, "ab", 2));
	CHECK(cfs_path_next(&it) && it.len == 1 && !memcmp(it.name, "c", 1));
	CHECK(cfs_path_next(&it) && it.len == 3 && !memcmp(it.name, "def", 3));
	CHECK(!it.rest);
	CHECK(!cfs_path_next(&it));
	it = cfs_path_iter_init("");
	CHECK(!cfs_path_next(&it));
	CHECK(strcmp(cfs_path_basename("a/b/c"), "c") == 0);
	CHECK(strcmp(cfs_path_basename("c"), "c") == 0);
}

int main(void)
{
	RUN(test_utf8_validation_refuses_every_malformed_form);
	RUN(test_names_follow_the_rules);
	RUN(test_paths_follow_the_rules);
	RUN(test_errors_name_the_checked_thing);
	RUN(test_iteration_yields_each_name_then_stops);
	return CHECK_DONE();
}
