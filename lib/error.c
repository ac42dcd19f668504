/* The table of protocol error codes declared in cloudfs/error.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cloudfs/error.h"

static const struct {
	const char *name;
	unsigned http;
	int errnum;
} codes[CFS_ERR__COUNT] = {
	[CFS_OK] = { "ok", 200, 0 },
	[CFS_ERR_BAD_JSON] = { "bad_json", 400, EIO },
	[CFS_ERR_BAD_FIELD] = { "bad_field", 400, EINVAL },
	[CFS_ERR_BAD_PATH] = { "bad_path", 400, EINVAL },
	[CFS_ERR_BAD_CURSOR] = { "bad_cursor", 400, EIO },
	[CFS_ERR_BAD_BLOCK] = { "bad_block", 400, EIO },
	[CFS_ERR_HASH_MISMATCH] = { "hash_mismatch", 400, EIO },
	[CFS_ERR_UNAUTHORIZED] = { "unauthorized", 401, EACCES },
	[CFS_ERR_FORBIDDEN] = { "forbidden", 403, EPERM },
	[CFS_ERR_NOT_FOUND] = { "not_found", 404, ENOENT },
	[CFS_ERR_METHOD] = { "method_not_allowed", 405, EIO },
	[CFS_ERR_CONFLICT] = { "conflict", 409, EAGAIN },
	[CFS_ERR_EXISTS] = { "exists", 409, EEXIST },
	[CFS_ERR_NOT_EMPTY] = { "not_empty", 409, ENOTEMPTY },
	[CFS_ERR_NOT_DIR] = { "not_a_directory", 409, ENOTDIR },
	[CFS_ERR_IS_DIR] = { "is_a_directory", 409, EISDIR },
	[CFS_ERR_CROSS_NS] = { "cross_namespace", 409, EXDEV },
	[CFS_ERR_TOO_LARGE] = { "too_large", 413, EFBIG },
	[CFS_ERR_INTERNAL] = { "internal", 500, EIO },
	[CFS_ERR_UNAVAILABLE] = { "unavailable", 503, EAGAIN },
	[CFS_ERR_STORAGE_FULL] = { "storage_full", 507, ENOSPC },
	[CFS_ERR_UNREACHABLE] = { "unreachable", 502, EIO },
	[CFS_ERR_TOO_LONG] = { "too_long", 400, ENAMETOOLONG },
	[CFS_ERR_STALE] = { "stale", 404, ESTALE },
};

static enum cfs_err clamp(enum cfs_err code)
{
	return (unsigned)code < CFS_ERR__COUNT ? code : CFS_ERR_INTERNAL;
}

const char *cfs_err_name(enum cfs_err code)
{
	return codes[clamp(code)].name;
}

unsigned cfs_err_http_status(enum cfs_err code)
{
	return codes[clamp(code)].http;
}

int cfs_err_errno(enum cfs_err code)
{
	return codes[clamp(code)].errnum;
}

enum cfs_err cfs_err_from_name(const char *name)
{
	for (int i = 0; i < CFS_ERR__COUNT; i++)
		if (strcmp(codes[i].name, name) == 0)
			return (enum cfs_err)i;
	return CFS_ERR_INTERNAL;
}

enum cfs_err cfs_fail(struct cfs_error *err, enum cfs_err code, const char *fmt,
		      ...)
{
	if (err) {
		va_list ap;

		err->code = code;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
	}
	return code;
}

void cfs_error_prefix(struct cfs_error *err, const char *fmt, ...)
{
	char prefix[128], joined[sizeof(prefix) + 2 + sizeof(err->msg)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	snprintf(joined, sizeof(joined), "%s: %s", prefix, err->msg);
	/* A message too long for err->msg loses its end, not its start. */
	memcpy(err->msg, joined, sizeof(err->msg) - 1);
	err->msg[sizeof(err->msg) - 1] = '\0';
}
