/*
 * Names and paths, as the whole system spells them.
 *
 * A name is 1 to 255 bytes of valid UTF-8, never "." or "..", and holds no
 * '/' and no NUL.  A path names an entry relative to its namespace's root:
 * names joined by single '/', no leading or trailing '/', at most 4096
 * bytes.  The root itself is the empty path.  Names compare as bytes.
 */
#ifndef CLOUDFS_PATH_H
#define CLOUDFS_PATH_H

#include <stdbool.h>
#include <stddef.h>

#include "cloudfs/error.h"

#define CFS_NAME_MAX 255
#define CFS_PATH_MAX 4096

/* True when the len bytes at s are well-formed UTF-8 (no overlongs, no
 * surrogates, nothing above U+10FFFF). */
bool cfs_utf8_valid(const char *s, size_t len);

/*
 * Checks one name.  On failure returns CFS_ERR_BAD_PATH with a message that
 * says what is wrong; `what` names the thing checked in that message.
 */
enum cfs_err cfs_name_check(const char *name, size_t len, const char *what,
			    struct cfs_error *err);

/*
 * Checks a path (the empty path only when allow_root).  Same contract as
 * cfs_name_check.
 */
enum cfs_err cfs_path_check(const char *path, size_t len, bool allow_root,
			    const char *what, struct cfs_error *err);

/*
 * Iterates over the names of a checked path:
 *
 *	struct cfs_path_iter it = cfs_path_iter_init(path);
 *	while (cfs_path_next(&it))
 *		use(it.name, it.len);
 */
struct cfs_path_iter {
	const char *rest;
	const char *name;
	size_t len;
};

struct cfs_path_iter cfs_path_iter_init(const char *path);
bool cfs_path_next(struct cfs_path_iter *it);

/* The last name of a checked, non-root path. */
const char *cfs_path_basename(const char *path);

#endif
