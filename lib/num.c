/* Numbers as the protocol writes them (cloudfs/num.h). */
#include <errno.h>
#include <stdbool.h>

#include "cloudfs/num.h"

int cfs_num_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
	bool neg = s[0] == '-' && min < 0;
	/* The magnitude may reach 2^63 for INT64_MIN. */
	uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	uint64_t v = 0;
	bool over = false;
	const char *p = s + neg;

	if (!*p)
		return -EINVAL;
	for (; *p; p++) {
		unsigned d = (unsigned)(*p - '0');

		if (d > 9)
			return -EINVAL;
		/* Keep reading past an overflow: "1x" after 30 digits is
		 * still malformed rather than out of range. */
		if (v > (limit - d) / 10)
			over = true;
		else
			v = v * 10 + d;
	}
	if (over)
		return -ERANGE;
	if (neg) {
		int64_t n =
			v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;

		if (n < min || n > max)
			return -ERANGE;
		*out = n;
		return 0;
	}
	if ((int64_t)v < min || (int64_t)v > max)
		return -ERANGE;
	*out = (int64_t)v;
	return 0;
}
