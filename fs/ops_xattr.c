/*
 * Extended attributes: what the mount says of an entry, read-only.
 *
 *	user.cloudfs.status  "SYNC LOCAL": SYNC is synced, pending,
 *	                     uploading or conflict; LOCAL (files, or anything
 *pinned) is cached, partial, online-only or pinned user.cloudfs.blocks  a
 *file's blocks, one "ID cached|remote" a line user.cloudfs.cache   the cache
 *directory (where `cloudfs` finds the mount's control socket)
 *
 * They are not listed, so that cp -a and rsync -X do not copy them onto
 * other files; setting or removing them is EPERM.  No other attribute is
 * stored: ENOTSUP, which copying tools take as "not supported here".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "cache/blockcache.h"
#include "cache/inspect.h"
#include "cloudfs/buf.h"
#include "cloudfs/platform.h"
#include "fs/ops.h"
#include "fs/upload.h"

#define XATTR_PREFIX "user.cloudfs."
#define XATTR_MAX    65536 /* the kernel's limit on a value */

/* Appends text; E2BIG past what a value may hold. */
static int put(struct cfs_buf *b, const char *text)
{
	int e = cfs_buf_append(b, text, strlen(text));

	return e == -EFBIG ? E2BIG : -e;
}

/* The value of attribute name of e into b; platform_no_xattr (ENODATA on
 * Linux) when e has none. */
static int value_of(struct fs *fs, struct cfs_sql *db,
		    const struct mirror_entry *e, const char *name,
		    struct cfs_buf *b)
{
	struct inspect_entry_state s;
	struct cfs_error err;
	enum cfs_err rc;

	if (strcmp(name, XATTR_PREFIX "cache") == 0)
		return put(b, fs->cache->path);
	if (strcmp(name, XATTR_PREFIX "status") != 0 &&
	    (strcmp(name, XATTR_PREFIX "blocks") != 0 ||
	     e->kind != CFS_KIND_FILE))
		return platform_no_xattr;
	rc = inspect_entry_state(db, e, &s, &err);
	if (rc)
		return ops_errno(rc, &err);
	s.uploading = s.pending && uploader_sends(fs->upload, e->ino);
	if (strcmp(name, XATTR_PREFIX "status") == 0) {
		const char *local = inspect_local_word(&s, e->kind);
		int eno = put(b, inspect_sync_word(&s));

		if (!eno && *local)
			eno = put(b, " ");
		return eno || !*local ? eno : put(b, local);
	}
	for (size_t i = 0; i < e->blocks.n; i++) {
		char line[CFS_BLOCK_ID_HEX_LEN + 16];
		int fd = blockcache_open(fs->cache, &e->blocks.ids[i]), eno;

		cfs_block_id_to_hex(&e->blocks.ids[i], line);
		strcat(line, fd >= 0 ? " cached\n" : " remote\n");
		if (fd >= 0)
			close(fd);
		if ((eno = put(b, line)))
			return eno;
	}
	return 0;
}

void ops_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct fs *fs = ops_fs(req);
	struct cfs_buf b;
	struct mirror_entry e;
	struct cfs_sql *db;
	/* No other name is kept: ENOTSUP, not ENODATA, since ls -l, cp and
	 * rsync then stop asking this file system for security.* and
	 * system.* names, each a round trip per file (issue 19). */
	int eno = strncmp(name, XATTR_PREFIX, strlen(XATTR_PREFIX)) == 0
			  ? ops_get(fs, ino, &db, &e)
			  : ENOTSUP;

	cfs_buf_init(&b, XATTR_MAX);
	if (!eno) {
		eno = value_of(fs, db, &e, name, &b);
		cache_db_release(fs->cache, db);
		mirror_entry_release(&e);
	}
	if (eno)
		fuse_reply_err(req, eno);
	else if (size == 0)
		fuse_reply_xattr(req, b.len);
	else if (size < b.len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, b.len ? b.data : "", b.len);
	cfs_buf_release(&b);
}

void ops_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	(void)ino;
	if (size == 0)
		fuse_reply_xattr(req, 0);
	else
		fuse_reply_buf(req, NULL, 0);
}

void ops_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		  const char *value, size_t size, int flags)
{
	(void)ino, (void)value, (void)size, (void)flags;
	fuse_reply_err(req, strncmp(name, XATTR_PREFIX, strlen(XATTR_PREFIX))
				    ? ENOTSUP
				    : EPERM);
}

void ops_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	(void)ino;
	fuse_reply_err(req, strncmp(name, XATTR_PREFIX, strlen(XATTR_PREFIX))
				    ? ENOTSUP
				    : EPERM);
}
