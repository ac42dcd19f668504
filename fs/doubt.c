/*
 * Operations in doubt (include/fs/doubt.h).
 */
#include <assert.h>
#include <pthread.h>

#include "cache/cache.h"
#include "cache/local.h"
#include "cloudfs/log.h"
#include "cloudfs/mutex.h"
#include "fs/doubt.h"
#include "fs/fs.h"

/* Tells the listings whether an operation is in doubt (fs/fs.h); they
 * go on once none is.  fs->apply_lock held. */
void doubt_set(struct fs *fs, bool any)
{
	assert(cfs_mutex_locked(&fs->apply_lock));
	fs->in_doubt = any;
	if (!any)
		pthread_cond_broadcast(&fs->doubt_over);
}

/*
 * Marks the batch in doubt and makes the queue durable, then sends it: if
 * the answer is lost, this mount or the next knows which operations the
 * server may have applied, and sends them again with their seq, which
 * the server answers as it did (cloudfs-protocol(7)).  Each other change
 * made only in the mirror (a rename, a delete) is durable by then too,
 * since every change wakes the uploader.  *keep_from: the lowest seq
 * still queued.
 */
enum cfs_err doubt_mark(struct fs *fs, const struct queued_op *ops, size_t n,
			int64_t *keep_from, struct cfs_error *err)
{
	struct cfs_sql *db = cache_db(fs->cache, err);
	enum cfs_err rc = db ? queue_sent(db, ops, n, err) : err->code;

	if (rc == CFS_OK)
		rc = queue_first_seq(db, keep_from, err);
	if (db)
		cache_db_release(fs->cache, db);
	if (rc == CFS_OK)
		rc = cache_sync(fs->cache, err);
	if (rc == CFS_OK) {
		pthread_mutex_lock(&fs->apply_lock);
		fs->in_doubt = true;
		pthread_mutex_unlock(&fs->apply_lock);
	}
	return rc;
}

/*
 * The operations whose answers were recorded (recorded[i]) are no longer in
 * doubt; the others of the batch, whose answers were lost or could not be
 * recorded, stay so until a later answer.  fs->apply_lock held.
 */
void doubt_clear(struct fs *fs, struct cfs_sql *db, const struct queued_op *ops,
		 const bool *recorded, size_t n)
{
	struct cfs_error err;
	bool any = true;

	if (queue_answered(db, ops, recorded, n, &err) ||
	    queue_in_doubt(db, &any, &err))
		cfs_log_error(
			"cannot record which changes the server answered: %s",
			err.msg);
	doubt_set(fs, any);
}
