/* The two clocks cloudfs reads (cloudfs/clock.h). */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "cloudfs/clock.h"

int64_t cfs_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

uint64_t cfs_monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t cfs_elapsed_us(const struct timespec *from, const struct timespec *to)
{
	int64_t ns =
		((int64_t)to->tv_sec - (int64_t)from->tv_sec) * 1000000000 +
		((int64_t)to->tv_nsec - (int64_t)from->tv_nsec);

	return ns > 0 ? (uint64_t)ns / 1000 : 0;
}

struct timespec cfs_deadline_in_ms(unsigned long ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)(ms / 1000);
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	return ts;
}

bool cfs_time_parse(const char *s, int64_t *at)
{
	struct tm tm = { 0 };
	const char *end;
	char *num_end;
	bool utc;

	if (s[0] == '@') {
		long long v;

		/* Digits alone: strtoll() would also take spaces and a sign,
		 * and saturate on overflow. */
		if (!isdigit((unsigned char)s[1]))
			return false;
		errno = 0;
		v = strtoll(s + 1, &num_end, 10);
		if (errno || *num_end || v <= 0)
			return false;
		*at = v;
		return true;
	}
	end = strptime(s, "%Y-%m-%dT%H:%M", &tm);
	if (!end)
		end = strptime(s, "%Y-%m-%d %H:%M", &tm);
	if (end && *end == ':')
		end = strptime(end + 1, "%S", &tm);
	if (!end)
		return false;
	utc = end[0] == 'Z' && end[1] == '\0';
	if (*end && !utc)
		return false;
	tm.tm_isdst = -1;
	*at = (int64_t)(utc ? timegm(&tm) : mktime(&tm));
	return *at > 0;
}
