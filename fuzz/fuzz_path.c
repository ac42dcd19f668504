/*
 * fuzz_path: names and paths (lib/path.c), which every request, listing
 * and command line goes through.
 *
 * Feeds: the input as one candidate path (any bytes, NULs included).
 * Checks: cfs_utf8_valid() agrees with a decoder written here from the
 * Unicode table of well-formed sequences; cfs_name_check() accepts exactly
 * what path.h says a name is; cfs_path_check() accepts exactly the names
 * joined by single '/' within CFS_PATH_MAX, and iterating an accepted
 * path gives back names that rebuild it byte for byte, the last being
 * cfs_path_basename(); every refusal is CFS_ERR_BAD_PATH with a message.
 */
#include <stdlib.h>
#include <string.h>

#include "cloudfs/path.h"
#include "fuzz_util.h"

/* Unicode 15, table 3-7: the well-formed UTF-8 byte sequences. */
static bool utf8_reference(const uint8_t *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint8_t b = s[i];
		size_t k;
		uint8_t lo = 0x80, hi = 0xbf;

		if (b <= 0x7f) {
			i++;
			continue;
		}
		if (b >= 0xc2 && b <= 0xdf)
			k = 1;
		else if (b >= 0xe0 && b <= 0xef)
			k = 2;
		else if (b >= 0xf0 && b <= 0xf4)
			k = 3;
		else
			return false;
		if (b == 0xe0)
			lo = 0xa0;
		else if (b == 0xed)
			hi = 0x9f;
		else if (b == 0xf0)
			lo = 0x90;
		else if (b == 0xf4)
			hi = 0x8f;
		if (n - i <= k)
			return false;
		if (s[i + 1] < lo || s[i + 1] > hi)
			return false;
		for (size_t j = 2; j <= k; j++)
			if (s[i + j] < 0x80 || s[i + j] > 0xbf)
				return false;
		i += k + 1;
	}
	return true;
}

static bool name_reference(const uint8_t *s, size_t n)
{
	return n >= 1 && n <= CFS_NAME_MAX && !memchr(s, '\0', n) &&
	       !memchr(s, '/', n) && !(n == 1 && s[0] == '.') &&
	       !(n == 2 && s[0] == '.' && s[1] == '.') && utf8_reference(s, n);
}

static bool path_reference(const uint8_t *s, size_t n, bool allow_root)
{
	size_t start = 0;

	if (n == 0)
		return allow_root;
	if (n > CFS_PATH_MAX)
		return false;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && s[i] != '/')
			continue;
		if (!name_reference(s + start, i - start))
			return false;
		start = i + 1;
	}
	return true;
}

static void check_refusal(enum cfs_err rc, const struct cfs_error *err)
{
	FUZZ_CHECK(rc == CFS_ERR_BAD_PATH, "refused with code %d", rc);
	FUZZ_CHECK(err->code == rc && err->msg[0], "refusal without message");
}

/* Iterating an accepted path rebuilds it. */
static void check_iteration(const char *path, size_t len)
{
	struct cfs_path_iter it = cfs_path_iter_init(path);
	char *again = malloc(len + 1);
	const char *last = NULL;
	size_t at = 0, names = 0;

	FUZZ_CHECK(again, "out of memory");
	while (cfs_path_next(&it)) {
		struct cfs_error err;

		FUZZ_CHECK(cfs_name_check(it.name, it.len, "name", &err) ==
				   CFS_OK,
			   "name %zu of an accepted path is refused: %s", names,
			   err.msg);
		FUZZ_CHECK(at + (at ? 1 : 0) + it.len <= len,
			   "the names are longer than the path");
		if (at)
			again[at++] = '/';
		memcpy(again + at, it.name, it.len);
		at += it.len;
		last = it.name;
		names++;
	}
	FUZZ_CHECK(at == len && memcmp(again, path, len) == 0,
		   "the names do not rebuild the path");
	FUZZ_CHECK(len == 0 ||
			   (last && strcmp(cfs_path_basename(path), last) == 0),
		   "basename is not the last name");
	free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_strndup(data, size);
	struct cfs_error err = { 0 };
	enum cfs_err rc;
	bool want;

	FUZZ_CHECK(cfs_utf8_valid(s, size) == utf8_reference(data, size),
		   "cfs_utf8_valid says %d", cfs_utf8_valid(s, size));

	rc = cfs_name_check(s, size, "input", &err);
	want = name_reference(data, size);
	FUZZ_CHECK((rc == CFS_OK) == want, "name check says %d: %s", rc,
		   rc ? err.msg : "");
	if (rc)
		check_refusal(rc, &err);

	for (int allow_root = 0; allow_root < 2; allow_root++) {
		rc = cfs_path_check(s, size, allow_root, "input", &err);
		want = path_reference(data, size, allow_root);
		FUZZ_CHECK((rc == CFS_OK) == want, "path check says %d: %s", rc,
			   rc ? err.msg : "");
		if (rc)
			check_refusal(rc, &err);
		else
			check_iteration(s, size);
	}
	free(s);
	return 0;
}
