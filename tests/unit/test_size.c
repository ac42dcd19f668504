/* Byte counts (lib/size.c). */
#include <string.h>

#include "check.h"
#include "cloudfs/size.h"

static uint64_t parsed(const char *s)
{
	uint64_t v = 12345;

	return cfs_size_parse(s, &v) ? v : UINT64_MAX;
}

static void test_sizes_parse_with_binary_suffixes(void)
{
	CHECK(parsed("0") == 0);
	CHECK(parsed("4096") == 4096);
	CHECK(parsed("64K") == 64 << 10);
	CHECK(parsed("512M") == 512ULL << 20);
	CHECK(parsed("10G") == 10ULL << 30);
	CHECK(parsed("2GiB") == 2ULL << 30);
	CHECK(parsed("1t") == 1ULL << 40);
}

static void test_malformed_sizes_are_refused(void)
{
	CHECK(parsed("") == UINT64_MAX);
	CHECK(parsed("-1") == UINT64_MAX);
	CHECK(parsed("1.5G") == UINT64_MAX);
	CHECK(parsed("10X") == UINT64_MAX);
	CHECK(parsed("10GG") == UINT64_MAX);
	CHECK(parsed("99999999999999999999") == UINT64_MAX);
	CHECK(parsed("20000000000T") == UINT64_MAX);
}

static void test_sizes_format_for_people(void)
{
	char out[32];

	cfs_size_format(0, out, sizeof(out));
	CHECK(strcmp(out, "0 B") == 0);
	cfs_size_format(1023, out, sizeof(out));
	CHECK(strcmp(out, "1023 B") == 0);
	cfs_size_format(4 << 20, out, sizeof(out));
	CHECK(strcmp(out, "4.0 MiB") == 0);
	cfs_size_format(3ULL << 29, out, sizeof(out));
	CHECK(strcmp(out, "1.5 GiB") == 0);
}

int main(void)
{
	RUN(test_sizes_parse_with_binary_suffixes);
	RUN(test_malformed_sizes_are_refused);
	RUN(test_sizes_format_for_people);
	return CHECK_DONE();
}
