/*
 * Operations in doubt: sent in a commit whose answer may be lost, so that
 * the server may have applied them.  The uploader marks a batch in doubt
 * (durably, in the queue) before it sends it, and clears each operation
 * whose answer it recorded; while any is in doubt, the listings wait
 * (fs->in_doubt, fs->doubt_over in fs/fs.h), so that none shows a node
 * before the mirror knows it.
 */
#ifndef FS_DOUBT_H
#define FS_DOUBT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/local.h"
#include "cloudfs/error.h"

struct fs;

/* Whether any operation is in doubt; the listings go on once none is.
 * fs->apply_lock held. */
void doubt_set(struct fs *fs, bool any);

/* Marks the n ops in doubt and makes the queue durable, before they are
 * sent; *keep_from: the lowest seq still queued. */
enum cfs_err doubt_mark(struct fs *fs, const struct queued_op *ops, size_t n,
			int64_t *keep_from, struct cfs_error *err);

/* The ops whose answers were recorded (recorded[i]) are no longer in
 * doubt.  fs->apply_lock held. */
void doubt_clear(struct fs *fs, struct cfs_sql *db, const struct queued_op *ops,
		 const bool *recorded, size_t n);

#endif
