/* Naming rules for names and paths (cloudfs/path.h). */
#include <string.h>

#include "cloudfs/path.h"

bool cfs_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + len;

	while (p < end) {
		unsigned c = *p++;
		unsigned need, min;
		unsigned long cp;

		if (c < 0x80)
			continue;
		if (c >= 0xc2 && c <= 0xdf) {
			need = 1, min = 0x80, cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			need = 2, min = 0x800, cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3, min = 0x10000, cp = c & 0x07;
		} else {
			return false; /* stray continuation, 0xc0/0xc1, > 0xf4
				       */
		}
		if ((size_t)(end - p) < need)
			return false;
		while (need--) {
			if ((*p & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (*p++ & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
	}
	return true;
}

enum cfs_err cfs_name_check(const char *name, size_t len, const char *what,
			    struct cfs_error *err)
{
	if (len == 0)
		return cfs_fail(err, CFS_ERR_BAD_PATH, "%s has an empty name",
				what);
	if (len > CFS_NAME_MAX)
		return cfs_fail(err, CFS_ERR_BAD_PATH,
				"%s has a name of %zu bytes (the limit is %d)",
				what, len, CFS_NAME_MAX);
	if (memchr(name, '\0', len))
		return cfs_fail(err, CFS_ERR_BAD_PATH,
				"%s has a name containing a NUL byte", what);
	if (memchr(name, '/', len))
		return cfs_fail(err, CFS_ERR_BAD_PATH,
				"%s has a name containing '/'", what);
	if ((len == 1 && name[0] == '.') ||
	    (len == 2 && name[0] == '.' && name[1] == '.'))
		return cfs_fail(err, CFS_ERR_BAD_PATH,
				"%s may not use '%.*s' as a name", what,
				(int)len, name);
	if (!cfs_utf8_valid(name, len))
		return cfs_fail(err, CFS_ERR_BAD_PATH,
				"%s has a name that is not valid UTF-8", what);
	return CFS_OK;
}

enum cfs_err cfs_path_check(const char *path, size_t len, bool allow_root,
			    const char *what, struct cfs_error *err)
{
	const char *p = path, *end = path + len;

	if (len == 0)
		return allow_root ? CFS_OK
				  : cfs_fail(err, CFS_ERR_BAD_PATH,
					     "%s is empty (the root)", what);
	if (len > CFS_PATH_MAX)
		return cfs_fail(err, CFS_ERR_BAD_PATH,
				"%s is %zu bytes long (the limit is %d)", what,
				len, CFS_PATH_MAX);
	if (path[0] == '/')
		return cfs_fail(
			err, CFS_ERR_BAD_PATH,
			"%s starts with '/' (paths are relative to the namespace root)",
			what);
	for (;;) {
		const char *slash = memchr(p, '/', (size_t)(end - p));
		const char *stop = slash ? slash : end;
		enum cfs_err rc;

		rc = cfs_name_check(p, (size_t)(stop - p), what, err);
		if (rc)
			return rc;
		if (!slash)
			return CFS_OK;
		p = slash + 1;
	}
}

struct cfs_path_iter cfs_path_iter_init(const char *path)
{
	return (struct cfs_path_iter){ .rest = path };
}

bool cfs_path_next(struct cfs_path_iter *it)
{
	const char *slash;

	if (!it->rest || !*it->rest)
		return false;
	slash = strchr(it->rest, '/');
	it->name = it->rest;
	it->len = slash ? (size_t)(slash - it->rest) : strlen(it->rest);
	it->rest = slash ? slash + 1 : NULL;
	return true;
}

const char *cfs_path_basename(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}
