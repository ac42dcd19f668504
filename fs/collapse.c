/*
 * A tree's deletes as one (fs/collapse.h).
 *
 * A tree removed (rm -rf) queues a delete per entry, the folder's last.
 * When a folder's delete and the deletes under it are queued in one run
 * and unsent, and they are all the mirror holds under that folder, they
 * go as one recursive delete, unchanged since the namespace's cursor
 * (cloudfs-protocol(7)), the batch ending there: so it deletes nothing
 * this mount has not seen.  A file another device created or moved in
 * after the cursor makes it a conflict, and then nothing was applied: the
 * same deletes go one by one in the next batch, as they would have, and
 * what the other device made survives.  Committed, they are confirmed
 * at the folder's delete JID, the newest of the journal rows it wrote.
 */
#include <string.h>

#include "cache/local.h"
#include "cloudfs/log.h"
#include "fs/collapse.h"
#include "fs/fs.h"
#include "fs/upload.h"

/* Whether op deletes something under the folder dir deletes, and may go
 * with it: a shared folder's mount leaves that folder, and is not. */
static bool deletes_under(const struct queued_op *op,
			  const struct queued_op *dir)
{
	size_t len = strlen(dir->path);

	return op->type == QUEUE_DELETE && op->kind != CFS_KIND_MOUNT &&
	       op->node > 0 && strncmp(op->path, dir->path, len) == 0 &&
	       op->path[len] == '/';
}

/*
 * The first run of the batch's n ops that one recursive delete may send
 * (see the top): a folder's delete and the deletes before it under it,
 * the outermost such folder, unless the server refused it before.  Later
 * runs are passed over, not stopped at: a folder around them (rm -rf of
 * a tree of folders) may still enclose the first.  A run starts within
 * UPLOAD_BATCH_MAX: the request carries the ops before it and its one.
 */
static struct collapse collapse_find(struct uploader *u,
				     const struct queued_op *ops, size_t n)
{
	struct collapse c = { 0 };

	for (size_t i = 0; i < n; i++) {
		size_t j = i;
		bool refused = false;

		if (ops[i].type != QUEUE_DELETE ||
		    ops[i].kind != CFS_KIND_DIR || ops[i].node <= 0)
			continue;
		while (j > 0 && deletes_under(&ops[j - 1], &ops[i]))
			j--;
		if (j >= UPLOAD_BATCH_MAX || (c.n > 1 && j > c.first))
			continue;
		for (size_t k = j; k <= i; k++)
			refused |= ops[k].seq == u->refused_tree;
		if (j < i && !refused)
			c = (struct collapse){ .first = j, .n = i - j + 1 };
	}
	return c;
}

/* The batch's ops from keep on go in a later batch. */
static void release_from(struct queued_op *ops, size_t *n, size_t keep)
{
	for (size_t i = keep; i < *n; i++)
		queued_op_release(&ops[i]);
	if (*n > keep)
		*n = keep;
}

/* Settles a run's answer: all of its deletes were applied, or none. */
enum cfs_err collapse_settle(struct uploader *u, struct cfs_sql *db,
			     const struct queued_op *ops, size_t n,
			     const struct remote_result *r,
			     struct mirror_changes *ch, struct cfs_error *err)
{
	const struct queued_op *dir = &ops[n - 1];

	if (r->status == REMOTE_COMMITTED) {
		uploader_count(&u->counts.committed, n);
		return queue_confirm_deletes(db, ops, n, r->jid, ch, err);
	}
	u->refused_tree = dir->seq;
	cfs_log_info("'%s' was not deleted as a whole (%s): deleting the %zu"
		     " entries this mount saw one by one",
		     dir->path,
		     r->has_message ? r->message
				    : (r->status == REMOTE_CONFLICT
					       ? "it changed on the server"
					       : cfs_err_name(r->code)),
		     n);
	return CFS_OK;
}

/*
 * Checks run c of the batch against the mirror (queue_deletes_cover()):
 * when it may go as one, the batch ends with it (*n) and c->since is set;
 * otherwise c is none, and the deletes go one by one, as they may.
 */
static void collapse_plan(struct uploader *u, struct queued_op *ops, size_t *n,
			  struct collapse *c)
{
	struct cfs_error err;
	struct cfs_sql *db = cache_db(u->fs->cache, &err);
	enum cfs_err rc = db ? queue_deletes_cover(db, &ops[c->first], c->n,
						   &c->since, &err)
			     : err.code;

	if (db)
		cache_db_release(u->fs->cache, db);
	if (rc)
		cfs_log_warn("cannot tell whether '%s' may be deleted as a"
			     " whole: %s",
			     ops[c->first + c->n - 1].path, err.msg);
	if (rc || c->since == 0)
		*c = (struct collapse){ 0 };
	else
		release_from(ops, n, c->first + c->n);
}

struct collapse collapse_batch(struct uploader *u, struct queued_op *ops,
			       size_t *n)
{
	struct collapse c = collapse_find(u, ops, *n);

	if (c.n > 1)
		collapse_plan(u, ops, n, &c);
	if (c.n < 2)
		release_from(ops, n, UPLOAD_BATCH_MAX);
	return c;
}
