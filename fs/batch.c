/*
 * One batch (fs/upload_state.h): the operations of one namespace, in
 * queue order (cache/local.c's invariant 5).  Blocks go up before the
 * commit that lists them, so a batch is normally committed whole at the
 * first try; a "need_blocks" answer (a race) only makes the operation
 * wait for the next round.  What each answer makes of its operation:
 * fs/answer.c.
 *
 * The operations of a namespace the mirror has not listed yet wait: their
 * bases are known only then (a shared folder's: cache/mirror.c,
 * invariant 10).
 */
#include <assert.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cache/local.h"
#include "cloudfs/log.h"
#include "fs/answer.h"
#include "fs/collapse.h"
#include "fs/doubt.h"
#include "fs/fs.h"
#include "fs/invalidate.h"
#include "fs/upload_state.h"

/* The distinct blocks of the batch's files. */
static enum cfs_err batch_block_ids(const struct queued_op *ops, size_t n,
				    struct cfs_blocklist *all,
				    struct cfs_error *err)
{
	size_t cap = 0;

	*all = (struct cfs_blocklist){ 0 };
	for (size_t i = 0; i < n; i++)
		cap += ops[i].blocks.n;
	if (!cap)
		return CFS_OK;
	all->ids = malloc(cap * sizeof(all->ids[0]));
	if (!all->ids)
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	for (size_t i = 0; i < n; i++) {
		for (size_t b = 0; b < ops[i].blocks.n; b++) {
			bool seen = false;

			/* Batches are small; files share blocks rarely. */
			for (size_t k = 0; k < all->n && !seen; k++)
				seen = cfs_block_id_equal(
					&all->ids[k], &ops[i].blocks.ids[b]);
			if (!seen)
				all->ids[all->n++] = ops[i].blocks.ids[b];
		}
	}
	return CFS_OK;
}

/*
 * Whether ops[i], a create answered conflict, found in its way an entry
 * that a move or delete before it in the batch, which goes again (again
 * set), was to take away: the server judged it without that change, and
 * it was a conflict with the user's own (share-elsewhere seed 623: a
 * symlink made where another was moved from into a folder shared
 * meanwhile became a conflicted copy of itself).
 */
static bool behind_own_change(const struct queued_op *ops, const bool *again,
			      size_t i, const struct remote_result *r)
{
	bool creates = ops[i].type == QUEUE_FILE || ops[i].type == QUEUE_DIR ||
		       ops[i].type == QUEUE_SYMLINK ||
		       ops[i].type == QUEUE_SPECIAL;

	if (!creates || r->status != REMOTE_CONFLICT)
		return false;
	for (size_t k = 0; k < i; k++)
		if (again[k] &&
		    (ops[k].type == QUEUE_MOVE ||
		     ops[k].type == QUEUE_DELETE) &&
		    strcmp(ops[k].path, ops[i].path) == 0)
			return true;
	return false;
}

/* Commits the batch (its run c as one delete) and settles every answer,
 * under fs->apply_lock. */
static enum cfs_err batch_commit(struct uploader *u, struct queued_op *ops,
				 size_t n, const struct collapse *c,
				 bool *retry_any, struct cfs_error *err)
{
	struct fs *fs = u->fs;
	struct mirror_changes ch = { 0 };
	struct remote_commit answer = { 0 };
	struct remote_commit_req req = {
		.ns = ops[0].ns, .ops = ops, .n = n, .client = fs->client
	};
	bool *recorded = calloc(n, sizeof(*recorded));
	bool *again = calloc(n, sizeof(*again));
	struct queued_op *sent = NULL;
	struct cfs_error end_err;
	bool outer = false;
	struct cfs_sql *db;
	const bool *stop;
	unsigned max_s;
	enum cfs_err rc = CFS_OK;

	assert(c->n < 2 || c->first + c->n == n);
	if (c->n > 1 && (sent = calloc(c->first + 1, sizeof(*sent)))) {
		/* Borrowed: released with the batch. */
		memcpy(sent, ops, (c->first + 1) * sizeof(*sent));
		sent[c->first] = ops[n - 1];
		sent[c->first].unchanged_since = c->since;
		req.ops = sent;
		req.n = c->first + 1;
	}
	rc = doubt_mark(fs, ops, n, &req.keep_from, err);
	if (!recorded || !again || (c->n > 1 && !sent)) {
		free(recorded);
		free(again);
		free(sent);
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	}
	pthread_mutex_lock(&fs->apply_lock);
	stop = uploader_bounds(u, &max_s);
	if (rc == CFS_OK)
		rc = remote_commit(u->conn, &req, max_s, stop, &answer, err);
	if (rc == CFS_OK)
		uploader_count(&u->counts.commits, 1);
	db = rc ? NULL : cache_db(fs->cache, err);
	if (rc == CFS_OK && !db)
		rc = err->code;
	/* One transaction records the answers, each in a savepoint of its
	 * own (cfs_sql_begin()): one commit for the batch, not one for each
	 * of its small files. */
	if (rc == CFS_OK)
		rc = cfs_sql_begin(db, true, err);
	outer = rc == CFS_OK;
	for (size_t i = 0; rc == CFS_OK && i < n; i++) {
		bool retry = false;

		if (sent && i == c->first) {
			rc = collapse_settle(u, db, &ops[i], c->n,
					     &answer.results[i], &ch, err);
			for (size_t k = i; k < n; k++)
				recorded[k] = rc == CFS_OK;
			if (rc && rc != CFS_ERR_UNREACHABLE)
				rc = answer_unrecorded(db, &ops[n - 1], &retry,
						       err);
			*retry_any |= retry;
			break;
		}
		if (behind_own_change(ops, again, i, &answer.results[i])) {
			retry = true;
			rc = queue_retry(
				db, &ops[i],
				"what is in its way goes first: waiting for it",
				err);
		} else {
			rc = answer_settle(fs, db, &ops[i], &answer.results[i],
					   answer.head, &ch, &retry, err);
		}
		again[i] = retry;
		recorded[i] = rc == CFS_OK;
		/* Quiet, a change that waits (for a listing, for blocks)
		 * looks like one that is stuck. */
		if (rc == CFS_OK && retry)
			cfs_log_info("%s '%s'%s%s goes again: %s",
				     remote_op_name(&ops[i]), ops[i].path,
				     ops[i].to ? " to " : "",
				     ops[i].to ? ops[i].to : "",
				     answer.results[i].message);
		if (rc == CFS_OK &&
		    answer.results[i].status == REMOTE_COMMITTED)
			uploader_count(&u->counts.committed, 1);
		if (rc && rc != CFS_ERR_UNREACHABLE)
			rc = answer_unrecorded(db, &ops[i], &retry, err);
		*retry_any |= retry;
	}
	/* What was recorded is committed, whatever stopped the loop (a
	 * savepoint undid its own op); not committed, none was, and each op
	 * stays in doubt, sent again with its seq. */
	if (outer && cfs_sql_end(db, CFS_OK, &end_err)) {
		memset(recorded, 0, n * sizeof(*recorded));
		*retry_any = true;
		if (rc == CFS_OK) {
			*err = end_err;
			rc = end_err.code;
		}
	}
	if (db) {
		doubt_clear(fs, db, ops, recorded, n);
		cache_db_release(fs->cache, db);
	}
	pthread_mutex_unlock(&fs->apply_lock);
	fs_invalidate(fs, &ch);
	mirror_changes_release(&ch);
	remote_commit_release(&answer);
	free(recorded);
	free(again);
	free(sent);
	return rc;
}

/*
 * The batch failed as a whole for a reason other than an unreachable
 * server (which status says once): a full disk, a block the server
 * refuses.  Each operation keeps why, so that status names it.
 */
static void batch_failed(struct uploader *u, const struct queued_op *ops,
			 size_t n, const struct cfs_error *why)
{
	struct cfs_error err;
	struct cfs_sql *db = cache_db(u->fs->cache, &err);

	pthread_mutex_lock(&u->fs->apply_lock);
	for (size_t i = 0; db && i < n; i++)
		if (queue_retry(db, &ops[i], why->msg, &err))
			cfs_log_error("cannot record why '%s' failed: %s",
				      ops[i].path, err.msg);
	pthread_mutex_unlock(&u->fs->apply_lock);
	if (db)
		cache_db_release(u->fs->cache, db);
}

/* Frees a batch that queue_batch() read. */
static void batch_free(struct queued_op *ops, size_t n)
{
	for (size_t i = 0; i < n; i++)
		queued_op_release(&ops[i]);
	free(ops);
}

/*
 * How many of the batch's n ops fit in one commit body (at least one: the
 * largest op fits alone); the others are released and go in a later batch,
 * in the same order.  A run c sent as one delete takes the room of one op,
 * its first's (under its folder, so no shorter); the run is none when the
 * ops before it do not leave it room.
 */
static size_t fit_commit_body(struct queued_op *ops, size_t n,
			      struct collapse *c)
{
	size_t sent = c->n > 1 ? c->first + 1 : n;
	size_t k = remote_commit_fit(ops, sent);

	if (k == sent && c->n > 1)
		return n;
	*c = (struct collapse){ 0 };
	for (size_t i = k; i < n; i++)
		queued_op_release(&ops[i]);
	return k;
}

/* Sends one batch; *sent is false when there was none to send (the queue
 * empty, or its head waiting for its namespace's listing). */
enum cfs_err batch_send(struct uploader *u, bool *sent, bool *retry_any,
			struct cfs_error *err)
{
	struct cfs_blocklist all = { 0 }, needed = { 0 };
	struct queued_op *ops = NULL;
	struct cfs_sql *db = cache_db(u->fs->cache, err);
	struct mirror_ns m = { .listed = true };
	struct collapse collapse = { 0 };
	enum cfs_err rc;
	size_t n = 0, dropped = 0;

	*sent = false;
	if (!db)
		return err->code;
	rc = queue_batch(db, UPLOAD_BATCH_MAX, UPLOAD_BATCH_REACH, &ops, &n,
			 err);
	/* A namespace not followed: the server says what becomes of them. */
	if (rc == CFS_OK && n &&
	    (rc = mirror_ns_get(db, ops[0].ns, &m, err)) == CFS_ERR_NOT_FOUND)
		rc = CFS_OK;
	cache_db_release(u->fs->cache, db);
	if (rc == CFS_OK && n == 0) {
		/* Nothing left to be in doubt about. */
		pthread_mutex_lock(&u->fs->apply_lock);
		if (u->fs->in_doubt)
			doubt_set(u->fs, false);
		pthread_mutex_unlock(&u->fs->apply_lock);
	}
	if (rc || n == 0) {
		free(ops);
		return rc;
	}
	if (!m.listed) {
		/* Their bases are not known yet (see the top); the queue
		 * waits behind them, in order, while the sync thread lists
		 * the namespace, which it may not know of yet (fs/fs.h). */
		__atomic_store_n(&u->fs->relist, true, __ATOMIC_SEQ_CST);
		*retry_any = true;
		batch_free(ops, n);
		return CFS_OK;
	}
	*sent = true;
	collapse = collapse_batch(u, ops, &n);
	n = fit_commit_body(ops, n, &collapse);
	rc = uploader_note_sending(u, ops, n, err);
	if (rc == CFS_OK)
		rc = batch_block_ids(ops, n, &all, err);
	if (rc == CFS_OK)
		rc = upload_blocks_needed(u, &all, &needed, err);
	if (rc == CFS_OK)
		upload_blocks_progress(u, NULL, &needed);
	if (rc == CFS_OK && needed.n)
		rc = upload_blocks_drop_lost(u, ops, n, &needed, &dropped, err);
	if (rc == CFS_OK && needed.n && !dropped && u->fs->opt.streaming)
		upload_blocks_announce(u, ops, n, &needed);
	if (rc == CFS_OK && needed.n && !dropped)
		rc = upload_blocks_send(u, &needed, err);
	if (rc == CFS_OK && !dropped)
		rc = batch_commit(u, ops, n, &collapse, retry_any, err);
	if (rc && rc != CFS_ERR_UNREACHABLE)
		batch_failed(u, ops, n, err);
	*retry_any |= dropped > 0; /* the rest goes in the next batch */
	uploader_note_sending(u, NULL, 0, NULL);
	cfs_blocklist_release(&all);
	cfs_blocklist_release(&needed);
	batch_free(ops, n);
	return rc;
}
