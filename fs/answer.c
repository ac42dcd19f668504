/*
 * The answer to one queued operation (include/fs/answer.h).  Outcomes:
 *
 *	committed                   confirmed
 *	conflict, newer version     the local content becomes a conflicted
 *	                            copy (files, symlinks); other operations
 *	                            are refused (the other side's edit wins)
 *	conflict, nothing there     the file is created anew (its delete
 *	                            elsewhere does not undo a local edit)
 *	not_found, creating         its folders are created again first
 *	not_found, deleting         already gone: confirmed
 *	not_found, linking          waits for its file, or for the folders
 *	                            on its way (created again first, as
 *	                            for a create); with both there, the
 *	                            file is gone: refused
 *	cross_namespace             a folder on its way became a shared
 *	                            folder: once the listing shows it,
 *	                            the mirror moves the operation into
 *	                            that namespace (cache/mirror.c,
 *	                            invariant 10), and it goes there
 *	need_blocks, storage_full,  tried again later, after a backoff, for
 *	5xx, network                as long as it takes
 *	anything else               refused, and logged
 *
 * No change is given up in silence: an operation that failed keeps why in
 * the queue (queue_failing), and `cloudfs status` names it.  An answer the
 * mirror cannot record is such a failure of that operation alone; the
 * others of the batch are settled all the same.
 */
#include <limits.h>
#include <stdio.h>

#include "cache/local.h"
#include "cache/refused.h"
#include "cloudfs/log.h"
#include "fs/answer.h"
#include "fs/fs.h"

/*
 * op crosses into a shared folder: one on its way was shared since it was
 * queued.  Until the mirror is listed up to head, which shows the folder
 * and re-addresses op (cache/mirror.c, invariant 10), op waits without
 * counting a try.  Listed and still across, it is a rename over the
 * folder's edge, which no namespace can do: the entry stays where the
 * server has it, with its bytes.  Anything else is tried again, named.
 */
static enum cfs_err wait_for_share(struct cfs_sql *db,
				   const struct queued_op *op, int64_t head,
				   struct mirror_changes *ch, bool *retry,
				   struct cfs_error *err)
{
	struct mirror_ns m;
	int64_t ns = op->ns;
	bool found = false, moved = false;
	enum cfs_err rc = mirror_ns_get(db, op->ns, &m, err);

	*retry = true;
	if (rc == CFS_OK && m.cursor < head)
		return CFS_OK;
	if (rc && rc != CFS_ERR_NOT_FOUND)
		return rc;
	/* The listing that showed the share may have re-addressed op
	 * since this batch was read: then it goes again as it is now. */
	rc = cfs_sql_int64(db,
			   cfs_sql_stmt(db, "SELECT ns FROM ops WHERE seq = ?1",
					err, "i", op->seq),
			   &ns, &found, err);
	if (rc || !found || ns != op->ns)
		return rc;
	rc = queue_after_share_move(db, op, &moved, err);
	if (rc || moved) {
		if (moved)
			cfs_log_info(
				"'%s' is in a folder shared since, whose move waits behind it: it goes after that move",
				op->path);
		return rc;
	}
	if (op->type == QUEUE_MOVE) {
		*retry = false;
		cfs_log_warn(
			"cannot move '%s' to '%s': one of them is in a folder shared since; it stays where the server has it",
			op->path, op->to);
		return queue_refuse(db, op, ch, err);
	}
	/* A link never crosses a namespace: the file keeps its other
	 * names, this one goes. */
	if (op->type == QUEUE_LINK) {
		*retry = false;
		cfs_log_warn(
			"cannot link '%s' to '%s': one of them is in a folder shared since; the name '%s' goes",
			op->path, op->to, op->to);
		return queue_refuse(db, op, ch, err);
	}
	return queue_retry(
		db, op,
		"a folder on its way is a shared folder now: waiting to send it there",
		err);
}

/*
 * A file the server refused for good: before the mount gives it up (the
 * entry goes back to the server's state), its content is kept under the
 * cache directory (cache/refused.h), and status says so.  Content that
 * cannot be kept leaves the change queued and named in status.  Blocks
 * not in the cache were the server's own (a chmod of an evicted file):
 * nothing is lost with them.
 */
static enum cfs_err refuse_file(struct fs *fs, struct cfs_sql *db,
				const struct queued_op *op, const char *why,
				struct mirror_changes *ch, bool *retry,
				struct cfs_error *err)
{
	char saved[PATH_MAX], msg[sizeof(err->msg)];
	struct cfs_error kept;
	enum cfs_err rc = refused_keep(fs->cache, op->ns, op->path, op->size,
				       &op->blocks, saved, &kept);

	if (rc == CFS_OK) {
		cfs_log_warn(
			"the server refused file '%s': %s; its content is kept in '%s'",
			op->path, why, saved);
	} else if (rc == CFS_ERR_NOT_FOUND) {
		cfs_log_warn("the server refused file '%s': %s", op->path, why);
	} else {
		cfs_log_error(
			"the server refused file '%s' (%s) and its content cannot be kept (%s): the change stays queued",
			op->path, why, kept.msg);
		if (snprintf(
			    msg, sizeof(msg),
			    "refused by the server (%s); its content cannot be kept: %s",
			    why, kept.msg) >= (int)sizeof(msg))
			msg[sizeof(msg) - 1] = '\0'; /* cut: still says why */
		*retry = true;
		return queue_retry(db, op, msg, err);
	}
	return queue_refuse(db, op, ch, err);
}

/* Settles one operation by its answer r, of a batch answered at head;
 * *retry when it must wait for another round (the batch's other answers
 * count all the same). */
enum cfs_err answer_settle(struct fs *fs, struct cfs_sql *db,
			   const struct queued_op *op,
			   const struct remote_result *r, int64_t head,
			   struct mirror_changes *ch, bool *retry,
			   struct cfs_error *err)
{
	bool leaf = op->type == QUEUE_FILE || op->type == QUEUE_SYMLINK ||
		    op->type == QUEUE_SPECIAL;
	bool creates = leaf || op->type == QUEUE_DIR;
	char copy[CFS_NAME_MAX + 1];
	enum cfs_err rc;

	*retry = false;
	if (r->status == REMOTE_COMMITTED)
		return queue_confirm(db, op, r->node, r->jid, r->prev_jid, ch,
				     err);
	if (r->status == REMOTE_NEED_BLOCKS) {
		*retry = true;
		return queue_retry(
			db, op,
			"the server still lacks blocks it was sent: sending them again",
			err);
	}
	if (r->status == REMOTE_CONFLICT && creates && r->jid == 0) {
		*retry = true;
		return queue_rebase(db, op, ch, err);
	}
	if (r->status == REMOTE_CONFLICT && leaf) {
		rc = queue_conflicted_copy(db, op, copy, ch, err);
		if (rc == CFS_OK)
			cfs_log_warn(
				"conflict: '%s' changed elsewhere; the local version is kept as '%s'",
				op->path, copy);
		return rc;
	}
	if (r->code == CFS_ERR_NOT_FOUND && creates) {
		*retry = true;
		return queue_recreate_parents(db, op, head, err);
	}
	if (r->code == CFS_ERR_NOT_FOUND &&
	    (op->type == QUEUE_DELETE || op->type == QUEUE_MOVE)) {
		rc = queue_wait_listing(db, op, head, retry, err);
		if (rc || *retry)
			return rc;
	}
	if (r->code == CFS_ERR_NOT_FOUND && op->type == QUEUE_DELETE)
		return queue_confirm(db, op, 0, 0, 0, ch, err);
	if (r->code == CFS_ERR_NOT_FOUND && op->type == QUEUE_LINK) {
		rc = local_link_waits(db, op, retry, err);
		if (rc == CFS_OK && *retry)
			return queue_retry(
				db, op,
				"the file it names is not on the server yet",
				err);
		if (rc == CFS_OK)
			rc = queue_link_folders(db, op, head, retry, err);
		if (rc || *retry)
			return rc;
	}
	if (r->code == CFS_ERR_CROSS_NS)
		return wait_for_share(db, op, head, ch, retry, err);
	if (r->code == CFS_ERR_STORAGE_FULL || r->code == CFS_ERR_INTERNAL ||
	    r->code == CFS_ERR_UNAVAILABLE) {
		*retry = true;
		return queue_retry(db, op,
				   r->has_message ? r->message
						  : cfs_err_name(r->code),
				   err);
	}
	if (op->type == QUEUE_FILE)
		return refuse_file(fs, db, op, r->message, ch, retry, err);
	cfs_log_warn("the server refused %s '%s'%s%s: %s", remote_op_name(op),
		     op->path, op->to ? " to " : "", op->to ? op->to : "",
		     r->message);
	return queue_refuse(db, op, ch, err);
}

/*
 * The answer to op could not be recorded (err says why): op stays queued,
 * in doubt, with why, and is sent again; the rest of the batch goes on.
 * An error in recording that too is the caller's.
 */
enum cfs_err answer_unrecorded(struct cfs_sql *db, const struct queued_op *op,
			       bool *retry, struct cfs_error *err)
{
	char why[sizeof(err->msg) + 64];

	snprintf(why, sizeof(why), "cannot record the server's answer: %s",
		 err->msg);
	cfs_log_error("%s '%s'%s%s: %s", remote_op_name(op), op->path,
		      op->to ? " to " : "", op->to ? op->to : "", why);
	*retry = true;
	return queue_retry(db, op, why, err);
}
