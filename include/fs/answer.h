/*
 * What the server's answer to one queued operation makes of it (the
 * outcomes are listed in fs/answer.c): confirmed, kept as a conflicted
 * copy, created anew, tried again, or refused.  Each function runs under
 * fs->apply_lock, on the uploader's connection db, and adds what the
 * mirror changed to ch.
 */
#ifndef FS_ANSWER_H
#define FS_ANSWER_H

#include <stdbool.h>
#include <stdint.h>

#include "cache/local.h"
#include "cloudfs/error.h"
#include "fs/remote.h"

struct fs;

/* Settles op by its answer r, of a batch answered at head; *retry when
 * it must wait for another round. */
enum cfs_err answer_settle(struct fs *fs, struct cfs_sql *db,
			   const struct queued_op *op,
			   const struct remote_result *r, int64_t head,
			   struct mirror_changes *ch, bool *retry,
			   struct cfs_error *err);

/* The answer to op could not be recorded (err says why): op stays
 * queued, in doubt, and is sent again (*retry). */
enum cfs_err answer_unrecorded(struct cfs_sql *db, const struct queued_op *op,
			       bool *retry, struct cfs_error *err);

#endif
