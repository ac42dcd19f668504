/*
 * A tree's deletes sent as one recursive delete (fs/collapse.c), for the
 * files of the uploader (fs/upload_state.h).
 */
#ifndef FS_COLLAPSE_H
#define FS_COLLAPSE_H

#include <stddef.h>
#include <stdint.h>

#include "fs/upload_state.h"

/* Deletes ops[first .. first + n) of a batch sent as one (fs/collapse.c):
 * n < 2 is none. */
struct collapse {
	size_t first, n;
	int64_t since; /* the JID they are unchanged since */
};

/*
 * The run of the batch's *n ops (read up to UPLOAD_BATCH_REACH) that one
 * delete sends, checked against the mirror: the batch ends with it, or it
 * is none and the batch keeps at most UPLOAD_BATCH_MAX ops.
 */
struct collapse collapse_batch(struct uploader *u, struct queued_op *ops,
			       size_t *n);
/* Settles the answer r to run c's n ops, all applied or none. */
enum cfs_err collapse_settle(struct uploader *u, struct cfs_sql *db,
			     const struct queued_op *ops, size_t n,
			     const struct remote_result *r,
			     struct mirror_changes *ch, struct cfs_error *err);

#endif
