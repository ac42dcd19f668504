/* Byte counts as people write and read them (cloudfs/size.h). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include "cloudfs/size.h"

bool cfs_size_parse(const char *s, uint64_t *out)
{
	static const char units[] = "KMGT";
	unsigned long long v;
	char *end;
	int shift = 0;

	if (!s || !isdigit((unsigned char)*s))
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return false;
	if (*end) {
		const char *u = index(units, toupper((unsigned char)*end));

		if (!u || !*u)
			return false;
		shift = 10 * (int)(u - units + 1);
		end++;
		if (strcasecmp(end, "") && strcasecmp(end, "iB") &&
		    strcasecmp(end, "B"))
			return false;
	}
	if (shift && v > (UINT64_MAX >> shift))
		return false;
	*out = (uint64_t)v << shift;
	return true;
}

void cfs_size_format(uint64_t n, char *out, size_t len)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB" };
	double v = (double)n;
	int u = -1;

	if (n < 1024) {
		snprintf(out, len, "%llu B", (unsigned long long)n);
		return;
	}
	while (v >= 1024 && u < 3) {
		v /= 1024;
		u++;
	}
	snprintf(out, len, "%.1f %s", v, units[u]);
}
