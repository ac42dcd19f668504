/*
 * fuzz_args: the values people type on command lines and in mount
 * options: sizes (cfs_size_parse: cache_size=, cache_min_free=), times
 * (cfs_time_parse: -o at=, cloudfs restore --at) and durations
 * (gc_duration_parse: cloudfsd --retention, --gc-every).
 *
 * Feeds: the input, up to its first NUL, as one argument to each parser.
 * Checks: a size is accepted exactly when it is decimal digits with an
 * optional K, M, G or T (then nothing, "B" or "iB", any case) and fits in
 * 64 bits, and its value is the digits times the unit; cfs_size_format()
 * writes "N B" below 1 KiB and a short text otherwise; "@N" is a time
 * exactly when N is digits alone, above 0, within 64 bits, and is then N;
 * any accepted time is after the epoch; a duration is accepted exactly
 * when it is digits with an optional s, m, h or d unit that fits, and is
 * then their product.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cloudfs/clock.h"
#include "cloudfs/log.h"
#include "cloudfs/size.h"
#include "fuzz_util.h"
#include "server/gc.h"

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Digits at s (at least one), to *v; false on overflow of max. */
static bool digits(const char **s, unsigned __int128 max, unsigned __int128 *v)
{
	const char *p = *s;

	*v = 0;
	if (!is_digit(*p))
		return false;
	for (; is_digit(*p); p++) {
		*v = *v * 10 + (unsigned)(*p - '0');
		if (*v > max)
			return false;
	}
	*s = p;
	return true;
}

static bool size_reference(const char *s, uint64_t *out)
{
	static const char units[] = "KMGT";
	unsigned __int128 v;
	const char *u;
	int shift = 0;

	if (!digits(&s, UINT64_MAX, &v))
		return false;
	if (*s) {
		char c = *s >= 'a' && *s <= 'z' ? (char)(*s - 32) : *s;

		u = strchr(units, c);
		if (!u || !c)
			return false;
		shift = 10 * (int)(u - units + 1);
		s++;
		if (*s && strcasecmp(s, "B") && strcasecmp(s, "iB"))
			return false;
	}
	v <<= shift;
	if (v > UINT64_MAX)
		return false;
	*out = (uint64_t)v;
	return true;
}

static void check_size(const char *s)
{
	uint64_t got = 0, want = 0;
	bool ok = cfs_size_parse(s, &got);
	char text[32];

	FUZZ_CHECK(ok == size_reference(s, &want), "size '%s' parses: %d", s,
		   ok);
	FUZZ_CHECK(!ok || got == want, "size '%s' is %llu, not %llu", s,
		   (unsigned long long)got, (unsigned long long)want);
	if (!ok)
		return;
	cfs_size_format(got, text, sizeof(text));
	if (got < 1024) {
		char plain[32];

		snprintf(plain, sizeof(plain), "%llu B",
			 (unsigned long long)got);
		FUZZ_CHECK(strcmp(text, plain) == 0, "%llu is written '%s'",
			   (unsigned long long)got, text);
	} else {
		FUZZ_CHECK(strlen(text) >= 7 && strlen(text) <= 14 &&
				   strstr(text, "iB"),
			   "%llu is written '%s'", (unsigned long long)got,
			   text);
	}
}

static void check_time(const char *s)
{
	unsigned __int128 v;
	const char *p = s + 1;
	int64_t at = 0;
	bool ok = cfs_time_parse(s, &at), want;

	FUZZ_CHECK(!ok || at > 0, "time '%s' is %lld", s, (long long)at);
	if (s[0] != '@')
		return;
	want = digits(&p, INT64_MAX, &v) && !*p && v > 0;
	FUZZ_CHECK(ok == want, "time '%s' parses: %d", s, ok);
	FUZZ_CHECK(!ok || (unsigned __int128)at == v, "time '%s' is %lld", s,
		   (long long)at);
}

static void check_duration(const char *s)
{
	static const char units[] = "smhd";
	static const int64_t seconds[] = { 1, 60, 3600, 86400 };
	unsigned __int128 v;
	const char *p = s;
	int64_t got = -1;
	bool ok = gc_duration_parse(s, &got), want;

	want = digits(&p, INT64_MAX, &v);
	if (want && *p) {
		const char *u = strchr(units, *p);

		want = u && *u && !p[1];
		if (want)
			v *= (unsigned __int128)seconds[u - units];
		want = want && v <= INT64_MAX;
	}
	FUZZ_CHECK(ok == want, "duration '%s' parses: %d", s, ok);
	FUZZ_CHECK(!ok || (unsigned __int128)got == v, "duration '%s' is %lld",
		   s, (long long)got);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	setenv("TZ", "UTC", 1);
	cfs_log_init("fuzz_args", CFS_LOG_ERROR);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_strndup(data, size);

	check_size(s);
	check_time(s);
	check_duration(s);
	free(s);
	return 0;
}
