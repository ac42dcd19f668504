/*
 * Protocol error codes, shared by the server (which answers with them) and
 * the clients (which read them back).  Each code has a stable name that goes
 * on the wire, an HTTP status, and a local errno the FUSE driver maps it to.
 * The table lives in lib/error.c; man/cloudfs-protocol.7 documents it.
 */
#ifndef CLOUDFS_ERROR_H
#define CLOUDFS_ERROR_H

#include <stddef.h>

/* The HTTP status of each code is in the comment. */
enum cfs_err {
	CFS_OK = 0,
	CFS_ERR_BAD_JSON,      /* 400 the body is not a JSON object */
	CFS_ERR_BAD_FIELD,     /* 400 a field is missing, mistyped, too big */
	CFS_ERR_BAD_PATH,      /* 400 a path or name breaks the rules */
	CFS_ERR_BAD_CURSOR,    /* 400 a cursor is beyond the head */
	CFS_ERR_BAD_BLOCK,     /* 400 a block id is malformed, a body empty */
	CFS_ERR_HASH_MISMATCH, /* 400 uploaded bytes do not hash to the id */
	CFS_ERR_UNAUTHORIZED,  /* 401 token missing, unknown or revoked */
	CFS_ERR_FORBIDDEN,    /* 403 the object is not the caller's to change */
	CFS_ERR_NOT_FOUND,    /* 404 no such route, namespace, path, block */
	CFS_ERR_METHOD,	      /* 405 the route takes other methods */
	CFS_ERR_CONFLICT,     /* 409 the base JID is not the current one */
	CFS_ERR_EXISTS,	      /* 409 the target name is taken */
	CFS_ERR_NOT_EMPTY,    /* 409 the directory has entries */
	CFS_ERR_NOT_DIR,      /* 409 a path component is not a directory */
	CFS_ERR_IS_DIR,	      /* 409 a file operation names a directory */
	CFS_ERR_CROSS_NS,     /* 409 the operation crosses a namespace */
	CFS_ERR_TOO_LARGE,    /* 413 a body, block or batch is over its cap */
	CFS_ERR_INTERNAL,     /* 500 the server failed; nothing changed */
	CFS_ERR_UNAVAILABLE,  /* 503 the server is stopping */
	CFS_ERR_STORAGE_FULL, /* 507 the server's disk is full */
	/* Client side only, never on the wire: the server could not be
	 * reached, or answered something that is not the protocol. */
	CFS_ERR_UNREACHABLE,
	/* Client side only: a name or a path longer than the server takes
	 * (which it refuses as bad_path). */
	CFS_ERR_TOO_LONG,
	/* Client side only: an inode the kernel names is no longer in the
	 * mirror (replaced or removed since the kernel looked it up). */
	CFS_ERR_STALE,
	CFS_ERR__COUNT
};

/* Wire name of a code ("conflict"); never NULL. */
const char *cfs_err_name(enum cfs_err code);

/* HTTP status that carries a code. */
unsigned cfs_err_http_status(enum cfs_err code);

/* Code for a wire name; CFS_ERR_INTERNAL for names this build does not know. */
enum cfs_err cfs_err_from_name(const char *name);

/* Positive errno that a local file operation reports for a code. */
int cfs_err_errno(enum cfs_err code);

/*
 * An error with its message.  The message starts with the problem, in lower
 * case, and names the object ("field 'path' must be a string").
 */
struct cfs_error {
	enum cfs_err code;
	char msg[512];
};

/* Sets *err (unless NULL) and returns code: "return cfs_fail(err, ...)". */
enum cfs_err cfs_fail(struct cfs_error *err, enum cfs_err code, const char *fmt,
		      ...) __attribute__((format(printf, 3, 4)));

/* Prepends "PREFIX: " to err's message, for context ("op 3: ..."). */
void cfs_error_prefix(struct cfs_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
