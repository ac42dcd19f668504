/*
 * The SQL backend's commits: the journal operations of a batch.
 *
 * Each operation first checks everything it depends on (paths, base JIDs,
 * blocks) and only then writes, so a refused operation leaves nothing
 * behind and needs no savepoint.  An operation returns CFS_OK with its
 * result's status set, or an error code with the result's message set
 * (the operation failed); store failures (INTERNAL, STORAGE_FULL) abort the
 * whole batch.  Commits that arrive together share one transaction (group
 * commit, at the end of this file).
 */
#include <assert.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cloudfs/log.h"
#include "cloudfs/path.h"
#include "meta_sql.h"
#include "server/metrics.h"

static bool fatal(enum cfs_err rc)
{
	return rc == CFS_ERR_INTERNAL || rc == CFS_ERR_STORAGE_FULL;
}

static enum cfs_err committed(struct meta_op_result *res,
			      const struct sq_node *n)
{
	res->status = META_COMMITTED;
	res->jid = n->jid;
	res->node = n->node;
	return CFS_OK;
}

static enum cfs_err conflict(struct meta_op_result *res, int64_t current,
			     const char *path)
{
	res->status = META_CONFLICT;
	res->jid = current;
	if (current)
		cfs_fail(&res->err, CFS_ERR_CONFLICT,
			 "'%s' is at JID %lld, not the base JID given", path,
			 (long long)current);
	else
		cfs_fail(&res->err, CFS_ERR_CONFLICT,
			 "'%s' does not exist any more", path);
	return CFS_OK;
}

/* Fills the parts of a new node that every creating operation shares. */
static enum cfs_err new_node(struct sq_conn *c, int64_t ns,
			     const struct sq_resolved *r, struct sq_node *n,
			     struct cfs_error *err)
{
	memset(n, 0, sizeof(*n));
	n->parent = r->parent;
	memcpy(n->name, r->name, sizeof(n->name));
	return sq_node_alloc(c, ns, &n->node, err);
}

/*
 * The blocks of a file operation: those the user could not read go to
 * res->need; when all are readable, their sizes must add up to op->size.
 */
static enum cfs_err check_blocks(struct sq_conn *c, int64_t ns, int64_t user,
				 const struct meta_op *op,
				 struct meta_op_result *res,
				 struct cfs_error *err)
{
	const struct cfs_blocklist *bl = &op->blocks;
	enum cfs_err rc = CFS_OK;

	for (size_t i = 0; rc == CFS_OK && i < bl->n; i++) {
		uint32_t size = 0;
		bool ok = false;

		rc = sq_block_available(c, user, &bl->ids[i], &ok, &size, err);
		if (rc)
			break;
		if (!ok) {
			if (!res->need.ids &&
			    !(res->need.ids =
				      malloc(bl->n * sizeof(bl->ids[0]))))
				return cfs_fail(err, CFS_ERR_INTERNAL,
						"out of memory");
			res->need.ids[res->need.n++] = bl->ids[i];
		} else if (size != cfs_block_len(op->size, i)) {
			return cfs_fail(
				err, CFS_ERR_BAD_FIELD,
				"'%s': block %zu holds %u bytes where a file of %llu bytes needs %u",
				op->path, i, size, (unsigned long long)op->size,
				cfs_block_len(op->size, i));
		}
	}
	if (rc == CFS_OK && res->need.n) {
		res->status = META_NEED_BLOCKS;
		/* Streaming sync: the other members may fetch these as they
		 * land, while the committer is still sending them. */
		rc = sq_pending_record(c, ns, user, op, &res->need, err);
	}
	return rc;
}

/* Whether n has the times op sets: a ctime not said is the commit's,
 * which matches any. */
static bool same_times(const struct sq_node *n, const struct meta_op *op)
{
	return n->atime_ns == op->atime_ns && n->mtime_ns == op->mtime_ns &&
	       (!op->ctime_said || n->ctime_ns == op->ctime_ns);
}

static bool same_content(const struct sq_node *n, const struct meta_op *op,
			 enum cfs_kind kind)
{
	if (n->kind != kind || n->mode != op->mode)
		return false;
	if (cfs_kind_has_target(kind))
		return n->target && strcmp(n->target, op->target) == 0;
	if (kind != CFS_KIND_FILE)
		return true;
	return n->size == op->size &&
	       cfs_blocklist_equal(&n->blocks, &op->blocks);
}

/* A new version of a file, symlink or special file. */
static enum cfs_err op_put_leaf(struct sq_conn *c, const struct meta_user *u,
				int64_t ns, const struct meta_op *op,
				enum cfs_kind kind, struct meta_op_result *res,
				struct cfs_error *err)
{
	struct sq_resolved r;
	struct sq_node n = { 0 };
	enum cfs_err rc;

	rc = sq_resolve(c, ns, op->path, &r, err);
	if (rc)
		return rc;
	/* A write through any name of a file is a version of the one node
	 * (invariant 6): its JID is the base, its row the new version. */
	if (r.exists)
		rc = sq_node_follow(c, ns, &r.node, err);
	if (rc) {
		sq_node_release(&r.node);
		return rc;
	}
	if (r.exists) {
		n = r.node;
		if (n.kind == CFS_KIND_DIR || n.kind == CFS_KIND_MOUNT) {
			rc = cfs_fail(err, CFS_ERR_IS_DIR, "'%s' is a %s",
				      op->path,
				      n.kind == CFS_KIND_DIR ? "directory"
							     : "shared folder");
			goto out;
		}
		/*
		 * The content is there already: a retry of a commit whose
		 * answer was lost, or the same edit made twice.  Neither is
		 * a conflict, and neither may add a second version.
		 */
		if (same_content(&n, op, kind) &&
		    (same_times(&n, op) || n.jid != op->base_jid)) {
			rc = committed(res, &n);
			goto out;
		}
		if (n.jid != op->base_jid) {
			rc = conflict(res, n.jid, op->path);
			goto out;
		}
	} else if (op->base_jid != 0) {
		return conflict(res, 0, op->path);
	}
	if (kind == CFS_KIND_FILE) {
		rc = check_blocks(c, ns, u->id, op, res, err);
		if (rc || res->status == META_NEED_BLOCKS)
			goto out;
	}
	if (!r.exists) {
		rc = new_node(c, ns, &r, &n, err);
		if (rc)
			return rc;
	}
	sq_node_release(&n);
	n.kind = kind;
	n.size = kind == CFS_KIND_SYMLINK ? strlen(op->target)
		 : kind == CFS_KIND_FILE  ? op->size
					  : 0;
	n.atime_ns = op->atime_ns;
	n.mtime_ns = op->mtime_ns;
	n.ctime_ns = op->ctime_ns;
	n.mode = op->mode;
	n.mount_ns = 0;
	if (kind == CFS_KIND_FILE && op->blocks.n) {
		n.blocks.ids = malloc(op->blocks.n * sizeof(op->blocks.ids[0]));
		if (!n.blocks.ids)
			return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
		memcpy(n.blocks.ids, op->blocks.ids,
		       op->blocks.n * sizeof(op->blocks.ids[0]));
		n.blocks.n = op->blocks.n;
	}
	if (cfs_kind_has_target(kind) && !(n.target = strdup(op->target)))
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	rc = sq_journal_put(c, ns, u->id, &n, err);
	if (rc == CFS_OK && kind == CFS_KIND_FILE)
		rc = sq_pending_drop(c, ns, u->id, op->path, err);
	if (rc == CFS_OK)
		committed(res, &n);
out:
	sq_node_release(&n);
	return rc;
}

/*
 * A file operation sent only to publish its pending list before its
 * blocks go up (streaming sync), by a client that asked /block/need
 * first.  Whatever the tree holds, nothing is applied: the operation
 * goes again, in its batch's order, once its blocks are there.  So the
 * path need not exist yet (its folders may come earlier in that batch).
 */
static enum cfs_err op_announce(struct sq_conn *c, const struct meta_user *u,
				int64_t ns, const struct meta_op *op,
				struct meta_op_result *res,
				struct cfs_error *err)
{
	enum cfs_err rc = check_blocks(c, ns, u->id, op, res, err);

	if (rc == CFS_OK)
		res->status = META_NEED_BLOCKS;
	return rc;
}

/* Creates a directory, or updates the mode and times of one (op "dir"). */
static enum cfs_err op_dir(struct sq_conn *c, const struct meta_user *u,
			   int64_t ns, const struct meta_op *op,
			   struct meta_op_result *res, struct cfs_error *err)
{
	struct sq_resolved r;
	struct sq_node n;
	enum cfs_err rc;

	rc = sq_resolve(c, ns, op->path, &r, err);
	if (rc)
		return rc;
	if (r.exists) {
		n = r.node;
		if (n.kind != CFS_KIND_DIR) {
			sq_node_release(&n);
			return cfs_fail(err, CFS_ERR_EXISTS,
					"'%s' exists and is not a directory",
					op->path);
		}
		if (n.mode == op->mode && same_times(&n, op))
			return committed(res, &n);
	} else {
		rc = new_node(c, ns, &r, &n, err);
		if (rc)
			return rc;
		n.kind = CFS_KIND_DIR;
	}
	n.mode = op->mode;
	n.atime_ns = op->atime_ns;
	n.mtime_ns = op->mtime_ns;
	n.ctime_ns = op->ctime_ns;
	rc = sq_journal_put(c, ns, u->id, &n, err);
	if (rc == CFS_OK)
		committed(res, &n);
	return rc;
}

static enum cfs_err has_children(struct sq_conn *c, int64_t ns, int64_t node,
				 bool *yes, struct cfs_error *err)
{
	struct db_stmt *st = db_stmt(c->db,
				     "SELECT 1 FROM nodes WHERE ns = ?1"
				     " AND parent = ?2 AND kind != 0 LIMIT 1",
				     err, "ii", ns, node);

	return st ? db_step(c->db, st, yes, err) : err->code;
}

/* Turns n into its own tombstone and appends it. */
/*
 * Resolves op->path for a delete or a move: it must exist, and be at
 * op->base_jid when one is given.  CFS_ERR_CONFLICT when it is not, with
 * res set (nothing held); otherwise *r holds the node on CFS_OK.
 */
static enum cfs_err resolve_base(struct sq_conn *c, int64_t ns,
				 const struct meta_op *op,
				 struct sq_resolved *r,
				 struct meta_op_result *res,
				 struct cfs_error *err)
{
	enum cfs_err rc = sq_resolve(c, ns, op->path, r, err);

	if (rc)
		return rc;
	if (!r->exists)
		return cfs_fail(err, CFS_ERR_NOT_FOUND, "'%s' does not exist",
				op->path);
	if (op->base_jid >= 0 && op->base_jid != r->node.jid) {
		sq_node_release(&r->node);
		conflict(res, r->node.jid, op->path);
		return CFS_ERR_CONFLICT;
	}
	return CFS_OK;
}

/*
 * Whether deleted node n of ns was shared away rather than deleted: a
 * folder above it is a shared folder's mount now, whose namespace holds
 * n (a share keeps node ids, and the new namespace numbers its own nodes
 * from where ns stood: invariant 2 and share_folder()).
 */
static enum cfs_err shared_away(struct sq_conn *c, int64_t ns,
				const struct sq_node *n, bool *away,
				struct cfs_error *err)
{
	struct sq_node up = { .parent = n->parent };
	enum cfs_err rc = CFS_OK;

	*away = false;
	for (size_t depth = 0;
	     rc == CFS_OK && up.parent != 0 && up.kind != CFS_KIND_MOUNT &&
	     depth < CFS_PATH_MAX;
	     depth++) {
		rc = sq_node_get(c, ns, up.parent, &up, err);
		if (rc == CFS_OK)
			sq_node_release(&up);
	}
	if (rc == CFS_OK && up.kind == CFS_KIND_MOUNT) {
		struct sq_node there;

		rc = sq_node_get(c, up.mount_ns, n->node, &there, err);
		*away = rc == CFS_OK;
		if (rc == CFS_OK)
			sq_node_release(&there);
	}
	return rc == CFS_ERR_NOT_FOUND ? CFS_OK : rc;
}

/*
 * op's path is gone, or holds another node than op->node: when op->node
 * is deleted, this is a retry of a delete whose answer was lost (a client
 * cut off, a server restarted), and *gone says so, res committed at the
 * node's tombstone with nothing changed.  A node a share moved away is
 * not gone: it lives on in the shared folder, where the client's listing
 * re-addresses the delete.
 */
static enum cfs_err deleted_already(struct sq_conn *c, int64_t ns,
				    const struct meta_op *op, bool *gone,
				    struct meta_op_result *res,
				    struct cfs_error *err)
{
	struct sq_node n;
	struct cfs_error why;
	bool away = false;
	enum cfs_err rc = sq_node_get(c, ns, op->node, &n, &why);

	*gone = false;
	if (rc == CFS_ERR_NOT_FOUND)
		return CFS_OK;
	if (rc) {
		*err = why;
		return rc;
	}
	if (n.kind == CFS_KIND_DELETED)
		rc = shared_away(c, ns, &n, &away, &why);
	*gone = rc == CFS_OK && n.kind == CFS_KIND_DELETED && !away;
	if (*gone)
		committed(res, &n);
	sq_node_release(&n);
	if (rc)
		*err = why;
	return rc;
}

/*
 * The newest JID of n and of everything live in it, in *newest: what a
 * delete "unchanged_since" a JID compares.  A node created, written,
 * renamed or moved in after that JID has a newer one; one deleted or
 * moved out is no longer there to be deleted.
 */
static enum cfs_err newest_within(struct sq_conn *c, int64_t ns,
				  const struct sq_node *n, int64_t *newest,
				  struct cfs_error *err)
{
	int64_t below = 0;
	bool found;
	enum cfs_err rc = CFS_OK;

	if (n->kind == CFS_KIND_DIR)
		rc = db_int64(c->db,
			      db_stmt(c->db,
				      SQ_SUBTREE_CTE
				      "SELECT COALESCE(MAX(n.jid), 0)"
				      " FROM nodes n JOIN sub ON n.ns = ?1"
				      " AND n.node = sub.node",
				      err, "ii", ns, n->node),
			      &below, &found, err);
	*newest = below > n->jid ? below : n->jid;
	return rc;
}

/*
 * Deletes a file, a symlink, a directory (recursive: with everything in
 * it, as one row), or a shared folder's mount (which leaves the folder).
 * With unchanged_since, only what the client has seen: a conflict when
 * anything in it changed after that JID.
 */
static enum cfs_err op_delete(struct sq_conn *c, const struct meta_user *u,
			      int64_t ns, const struct meta_op *op,
			      struct meta_op_result *res, struct cfs_error *err)
{
	struct sq_resolved r;
	enum cfs_err rc;
	bool full = false;
	int64_t gone = 0;

	rc = resolve_base(c, ns, op, &r, res, err);
	if ((rc == CFS_ERR_NOT_FOUND || rc == CFS_ERR_CONFLICT) && op->node) {
		bool gone;
		enum cfs_err got = deleted_already(c, ns, op, &gone, res, err);

		if (got || gone)
			return got;
	}
	if (rc)
		return rc == CFS_ERR_CONFLICT ? CFS_OK : rc;
	if (op->unchanged_since > 0) {
		int64_t newest = 0;

		rc = newest_within(c, ns, &r.node, &newest, err);
		if (rc == CFS_OK && newest > op->unchanged_since) {
			res->status = META_CONFLICT;
			res->jid = newest;
			cfs_fail(&res->err, CFS_ERR_CONFLICT,
				 "'%s' changed after JID %lld (something in it"
				 " is at JID %lld)",
				 op->path, (long long)op->unchanged_since,
				 (long long)newest);
			sq_node_release(&r.node);
			return CFS_OK;
		}
		if (rc) {
			sq_node_release(&r.node);
			return rc;
		}
	}
	if (r.node.kind == CFS_KIND_DIR) {
		rc = has_children(c, ns, r.node.node, &full, err);
		if (rc == CFS_OK && full && !op->recursive)
			rc = cfs_fail(err, CFS_ERR_NOT_EMPTY,
				      "'%s' is a directory that is not empty",
				      op->path);
		if (rc == CFS_OK && full)
			rc = sq_subtree_drop(c, u, ns, r.node.node, err);
	} else if (r.node.kind == CFS_KIND_MOUNT) {
		rc = sq_unmount(c, u->id, r.node.mount_ns, err);
	} else {
		rc = sq_name_drop(c, u->id, ns, &r.node, 0, &gone, err);
	}
	if (rc == CFS_OK && !gone)
		rc = sq_tombstone(c, u->id, ns, &r.node, err);
	if (rc == CFS_OK)
		committed(res, &r.node);
	/* The node lives on at another name: what op deleted is the name,
	 * at the JID before the node's move there, so that a client that
	 * keeps the node's delete until its cursor passes it (as
	 * cache/mirror.c does) takes the move for news. */
	if (rc == CFS_OK && gone)
		res->jid = gone;
	sq_node_release(&r.node);
	return rc;
}

/* The node that holds n's content (invariant 6 of meta_sql.h). */
static int64_t content_of(const struct sq_node *n)
{
	return n->kind == CFS_KIND_LINK ? n->link_of : n->node;
}

/* Checks that src may replace the existing dst of a move (op "move"). */
static enum cfs_err check_replace(struct sq_conn *c, int64_t ns,
				  const struct meta_op *op,
				  const struct sq_node *src,
				  const struct sq_node *dst,
				  struct cfs_error *err)
{
	bool full = false;
	enum cfs_err rc;

	if (!op->replace)
		return cfs_fail(err, CFS_ERR_EXISTS, "'%s' exists", op->to);
	if (src->kind == CFS_KIND_MOUNT || dst->kind == CFS_KIND_MOUNT)
		return cfs_fail(
			err, CFS_ERR_EXISTS,
			"'%s' exists and a shared folder is never replaced",
			op->to);
	if (src->kind != CFS_KIND_DIR)
		return dst->kind == CFS_KIND_DIR
			       ? cfs_fail(err, CFS_ERR_IS_DIR,
					  "'%s' is a directory", op->to)
			       : CFS_OK;
	if (dst->kind != CFS_KIND_DIR)
		return cfs_fail(err, CFS_ERR_NOT_DIR, "'%s' is not a directory",
				op->to);
	rc = has_children(c, ns, dst->node, &full, err);
	if (rc == CFS_OK && full)
		rc = cfs_fail(err, CFS_ERR_NOT_EMPTY,
			      "'%s' is a directory that is not empty", op->to);
	return rc;
}

/*
 * op's source is gone; when its node is at op->to, this is a retry of a
 * move whose answer was lost (a client cut off, a server restarted), and
 * it is committed as it stands.  Otherwise op->path's NOT_FOUND holds.
 */
static enum cfs_err moved_already(struct sq_conn *c, int64_t ns,
				  const struct meta_op *op,
				  struct meta_op_result *res,
				  struct cfs_error *err)
{
	struct sq_resolved dst = { 0 };
	struct cfs_error why;
	enum cfs_err rc = sq_resolve(c, ns, op->to, &dst, &why);
	bool there = rc == CFS_OK && dst.exists;

	if (rc == CFS_ERR_INTERNAL) {
		*err = why;
		return rc;
	}
	rc = there && dst.node.node == op->node ? committed(res, &dst.node)
						: CFS_ERR_NOT_FOUND;
	if (there)
		sq_node_release(&dst.node);
	return rc;
}

/* Moves or renames within the namespace: one row for the moved node (and
 * one for a replaced target). */
static enum cfs_err op_move(struct sq_conn *c, const struct meta_user *u,
			    int64_t ns, const struct meta_op *op,
			    struct meta_op_result *res, struct cfs_error *err)
{
	struct sq_resolved src, dst = { 0 };
	enum cfs_err rc;
	bool within = false;
	int64_t gone = 0;

	rc = resolve_base(c, ns, op, &src, res, err);
	if (rc == CFS_ERR_NOT_FOUND && op->node)
		return moved_already(c, ns, op, res, err);
	if (rc)
		return rc == CFS_ERR_CONFLICT ? CFS_OK : rc;
	rc = sq_resolve(c, ns, op->to, &dst, err);
	if (rc)
		goto out;
	/* Two names of one file: rename(2) does nothing (POSIX). */
	if (dst.exists && content_of(&dst.node) == content_of(&src.node)) {
		rc = committed(res, &src.node);
		goto out;
	}
	rc = sq_is_within(c, ns, dst.parent, src.node.node, &within, err);
	if (rc == CFS_OK && within)
		rc = cfs_fail(err, CFS_ERR_BAD_FIELD,
			      "cannot move '%s' into itself ('%s')", op->path,
			      op->to);
	if (rc == CFS_OK && dst.exists)
		rc = check_replace(c, ns, op, &src.node, &dst.node, err);
	if (rc == CFS_OK && dst.exists)
		rc = sq_name_drop(c, u->id, ns, &dst.node, 0, &gone, err);
	if (rc == CFS_OK && dst.exists && !gone)
		rc = sq_tombstone(c, u->id, ns, &dst.node, err);
	if (rc)
		goto out;
	res->prev_jid = src.node.jid;
	src.node.parent = dst.parent;
	memcpy(src.node.name, dst.name, sizeof(src.node.name));
	src.node.ctime_ns = op->ctime_ns; /* a rename changes it (POSIX) */
	rc = sq_journal_put(c, ns, u->id, &src.node, err);
	if (rc == CFS_OK)
		committed(res, &src.node);
out:
	sq_node_release(&src.node);
	sq_node_release(&dst.node);
	return rc;
}

/*
 * A further name, op->to, of the file, symlink or special file at
 * op->path (a hard link): one row, the new LINK node's.  A directory has
 * one name (FORBIDDEN, link(2)'s EPERM); op->to in another namespace is
 * CROSS_NS (EXDEV), as a move there is.
 */
static enum cfs_err op_link(struct sq_conn *c, const struct meta_user *u,
			    int64_t ns, const struct meta_op *op,
			    struct meta_op_result *res, struct cfs_error *err)
{
	struct sq_resolved src, dst = { 0 };
	struct sq_node n;
	enum cfs_err rc;

	rc = resolve_base(c, ns, op, &src, res, err);
	if (rc)
		return rc == CFS_ERR_CONFLICT ? CFS_OK : rc;
	rc = sq_node_follow(c, ns, &src.node, err);
	if (rc == CFS_OK &&
	    (src.node.kind == CFS_KIND_DIR || src.node.kind == CFS_KIND_MOUNT))
		rc = cfs_fail(err, CFS_ERR_FORBIDDEN,
			      "cannot link '%s': a %s has one name", op->path,
			      src.node.kind == CFS_KIND_DIR ? "directory"
							    : "shared folder");
	if (rc == CFS_OK)
		rc = sq_resolve(c, ns, op->to, &dst, err);
	if (rc)
		goto out;
	if (dst.exists) {
		/* The link is there already: a retry whose answer was lost. */
		if (dst.node.kind == CFS_KIND_LINK &&
		    dst.node.link_of == src.node.node)
			rc = committed(res, &dst.node);
		else
			rc = cfs_fail(err, CFS_ERR_EXISTS, "'%s' exists",
				      op->to);
		goto out;
	}
	rc = new_node(c, ns, &dst, &n, err);
	if (rc)
		goto out;
	n.kind = CFS_KIND_LINK;
	n.link_of = src.node.node;
	n.atime_ns = n.mtime_ns = n.ctime_ns = op->ctime_ns;
	rc = sq_journal_put(c, ns, u->id, &n, err);
	if (rc == CFS_OK)
		committed(res, &n);
out:
	sq_node_release(&src.node);
	sq_node_release(&dst.node);
	return rc;
}

static enum cfs_err apply(struct sq_conn *c, const struct meta_user *u,
			  int64_t ns, const struct meta_op *op,
			  struct meta_op_result *res)
{
	struct cfs_error *err = &res->err;

	switch (op->type) {
	case META_OP_FILE:
		if (op->announce)
			return op_announce(c, u, ns, op, res, err);
		return op_put_leaf(c, u, ns, op, CFS_KIND_FILE, res, err);
	case META_OP_SYMLINK:
		return op_put_leaf(c, u, ns, op, CFS_KIND_SYMLINK, res, err);
	case META_OP_SPECIAL:
		return op_put_leaf(c, u, ns, op, op->kind, res, err);
	case META_OP_DIR:
		return op_dir(c, u, ns, op, res, err);
	case META_OP_DELETE:
		return op_delete(c, u, ns, op, res, err);
	case META_OP_MOVE:
		return op_move(c, u, ns, op, res, err);
	case META_OP_LINK:
		return op_link(c, u, ns, op, res, err);
	}
	return cfs_fail(err, CFS_ERR_INTERNAL, "unknown operation %d",
			(int)op->type);
}

struct commit_args {
	const struct meta_user *user;
	int64_t ns;
	const struct meta_sender *from;
	const struct meta_op *ops;
	struct meta_op_result *res;
	size_t n;
	int64_t *head;
};

/* Lets go of the answers the sender will never ask for again. */
static enum cfs_err answers_prune(struct sq_conn *c,
				  const struct commit_args *a,
				  struct cfs_error *err)
{
	return db_exec(c->db,
		       "DELETE FROM answers WHERE user_id = ?1"
		       " AND client = ?2 AND seq < ?3",
		       err, "iti", a->user->id, a->from->client,
		       a->from->keep_from);
}

/* The answer op had when it was committed before in this namespace
 * (*found). */
static enum cfs_err answer_get(struct sq_conn *c, const struct commit_args *a,
			       const struct meta_op *op,
			       struct meta_op_result *res, bool *found,
			       struct cfs_error *err)
{
	struct db_stmt *st = db_stmt(
		c->db,
		"SELECT jid, node, prev_jid FROM answers WHERE user_id = ?1"
		" AND client = ?2 AND seq = ?3 AND ns IN (?4, 0)",
		err, "itii", a->user->id, a->from->client, op->seq, a->ns);
	enum cfs_err rc = st ? db_step(c->db, st, found, err) : err->code;

	if (rc == CFS_OK && *found) {
		res->status = META_COMMITTED;
		res->jid = db_col_int64(c->db, st, 0);
		res->node = db_col_int64(c->db, st, 1);
		res->prev_jid = db_col_int64(c->db, st, 2);
	}
	return rc;
}

static enum cfs_err answer_put(struct sq_conn *c, const struct commit_args *a,
			       const struct meta_op *op,
			       const struct meta_op_result *res,
			       struct cfs_error *err)
{
	return db_exec(c->db,
		       "INSERT INTO answers(user_id, client, seq, jid,"
		       " node, prev_jid, ns)"
		       " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
		       " ON CONFLICT(user_id, client, seq) DO UPDATE"
		       " SET jid = excluded.jid, node = excluded.node,"
		       " prev_jid = excluded.prev_jid, ns = excluded.ns",
		       err, "itiiiii", a->user->id, a->from->client, op->seq,
		       res->jid, res->node, res->prev_jid, a->ns);
}

/* Applies op, or answers it as before when the sender sends it again. */
static enum cfs_err apply_once(struct sq_conn *c, const struct commit_args *a,
			       const struct meta_op *op,
			       struct meta_op_result *res)
{
	bool numbered = a->from && a->from->client && op->seq > 0,
	     found = false;
	enum cfs_err rc = numbered
				  ? answer_get(c, a, op, res, &found, &res->err)
				  : CFS_OK;

	if (rc || found)
		return rc;
	rc = apply(c, a->user, a->ns, op, res);
	if (rc == CFS_OK && numbered && res->status == META_COMMITTED)
		rc = answer_put(c, a, op, res, &res->err);
	return rc;
}

static enum cfs_err apply_all(struct sq_conn *c, void *arg,
			      struct cfs_error *err)
{
	struct commit_args *a = arg;
	enum cfs_err rc = sq_member(c, a->user->id, a->ns, err);

	if (rc == CFS_OK && a->from && a->from->client)
		rc = answers_prune(c, a, err);
	for (size_t i = 0; rc == CFS_OK && i < a->n; i++) {
		struct meta_op_result *res = &a->res[i];
		enum cfs_err op_rc;

		/* What a try that collided left (sq_run) goes. */
		meta_op_result_release(res);
		memset(res, 0, sizeof(*res));
		op_rc = apply_once(c, a, &a->ops[i], res);
		if (fatal(op_rc)) {
			*err = res->err;
			rc = op_rc;
		} else if (op_rc) {
			res->status = META_FAILED;
		}
	}
	return rc ? rc : sq_ns_head(c, a->ns, a->head, err);
}

/*
 * Group commit.  Commits that arrive while another is being written wait
 * in a queue; the first waiter to find no group running leads: it takes
 * the queue (up to GROUP_MAX) and writes it in one transaction, so one
 * fsync makes them all durable, then wakes the others with their answers.
 * A commit that finds the queue empty runs at once, alone, as before: a
 * group only forms from commits that would have waited anyway.
 *
 * The queue has lanes, one per namespace modulo their number, each
 * grouped and led on its own: an engine that writes one transaction at a
 * time (SQLite) has one lane, so that everything waiting shares the next
 * fsync; one whose transactions run side by side (PostgreSQL, which also
 * flushes its log for several at once) gains nothing from serializing
 * commits of different namespaces on one connection, only from grouping
 * those that would collide on their namespace's head anyway.
 *
 * Invariants:
 *  1. A commit's answer is the one it would get alone, run in its place
 *     in the group's order: its requests' operations run in a savepoint,
 *     one request after another, so each sees the ones before it (a
 *     conflict with an earlier one is refused, JIDs follow the order),
 *     and a request that fails is rolled back to its savepoint alone.
 *  2. No one is answered before the transaction holding their commit is
 *     durable, and long polls wake after it (sq_run()).
 *  3. When the group's transaction fails as a whole (a store error, or a
 *     collision tried SQ_ATTEMPTS times), nothing of it stays, and each of
 *     its commits runs again alone: a failure is answered only to the
 *     commit it belongs to.
 *  4. A commit whose namespaces to wake do not fit in the group's
 *     (SQ_MAX_CHANGED) is rolled back out of it and runs alone after it.
 */
#define GROUP_MAX 32

struct commit_waiter {
	struct commit_args a;
	enum cfs_err rc;
	struct cfs_error err;
	bool done;     /* answered: rc, err and a.res are final */
	bool deferred; /* to run alone after the group (invariant 4) */
	struct commit_waiter *next;
};

/* The commits of the namespaces of one lane (ns % n_lanes). */
struct commit_lane {
	struct commit_waiter *head, **tail;
	bool leading; /* a group of this lane is being written */
};

struct sq_commit_queue {
	pthread_mutex_t lock; /* protects the lanes */
	pthread_cond_t answered;
	size_t n_lanes;
	struct commit_lane lane[];
};

enum cfs_err sq_commit_queue_new(size_t lanes, struct sq_commit_queue **out,
				 struct cfs_error *err)
{
	struct sq_commit_queue *q =
		calloc(1, sizeof(*q) + lanes * sizeof(q->lane[0]));

	assert(lanes > 0);
	if (!q)
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->answered, NULL);
	q->n_lanes = lanes;
	for (size_t i = 0; i < lanes; i++)
		q->lane[i].tail = &q->lane[i].head;
	*out = q;
	return CFS_OK;
}

void sq_commit_queue_free(struct sq_commit_queue *q)
{
	if (!q)
		return;
	pthread_cond_destroy(&q->answered);
	pthread_mutex_destroy(&q->lock);
	free(q);
}

struct group {
	struct commit_waiter *w[GROUP_MAX];
	size_t n;
};

/* One request of a group, in its savepoint (invariants 1 and 4). */
static enum cfs_err apply_member(struct sq_conn *c, struct commit_waiter *w,
				 bool first, struct cfs_error *err)
{
	size_t n_changed = c->n_changed;
	enum cfs_err rc = db_exec(c->db, "SAVEPOINT request", err, "");

	if (rc)
		return rc;
	c->overflow = false;
	c->deferrable = !first;
	w->deferred = false;
	w->rc = apply_all(c, &w->a, &w->err);
	c->deferrable = false;
	if (w->rc && db_retryable(c->db)) {
		*err = w->err;
		return w->rc;
	}
	if (w->rc || c->overflow) {
		rc = db_exec(c->db, "ROLLBACK TO request", err, "");
		c->n_changed = n_changed;
		w->deferred = w->rc == CFS_OK;
	}
	return rc ? rc : db_exec(c->db, "RELEASE request", err, "");
}

static enum cfs_err apply_group(struct sq_conn *c, void *arg,
				struct cfs_error *err)
{
	struct group *g = arg;
	enum cfs_err rc = CFS_OK;

	for (size_t i = 0; rc == CFS_OK && i < g->n; i++)
		rc = apply_member(c, g->w[i], i == 0, err);
	return rc;
}

static void run_alone(struct meta *m, struct commit_waiter *w)
{
	w->rc = sq_run(m, true, apply_all, &w->a, &w->err);
}

static void run_group(struct meta *m, struct group *g)
{
	struct cfs_error err = { 0 };
	size_t kept = 0;

	if (g->n == 1) {
		run_alone(m, g->w[0]);
		return;
	}
	if (sq_run(m, true, apply_group, g, &err)) {
		cfs_log_warn(
			"a group of %zu commits failed (%s): each runs alone",
			g->n, err.msg);
		for (size_t i = 0; i < g->n; i++)
			run_alone(m, g->w[i]);
		return;
	}
	for (size_t i = 0; i < g->n; i++)
		if (g->w[i]->deferred)
			run_alone(m, g->w[i]);
		else
			kept++;
	if (kept > 1)
		metrics_commit_group(kept);
}

/* Leads one group: the oldest waiters of lane l (called and returns
 * with q->lock held). */
static void lead(struct meta *m, struct sq_commit_queue *q,
		 struct commit_lane *l)
{
	struct group g = { .n = 0 };

	l->leading = true;
	while (l->head && g.n < GROUP_MAX) {
		g.w[g.n++] = l->head;
		l->head = l->head->next;
	}
	if (!l->head)
		l->tail = &l->head;
	pthread_mutex_unlock(&q->lock);
	run_group(m, &g);
	pthread_mutex_lock(&q->lock);
	for (size_t i = 0; i < g.n; i++)
		g.w[i]->done = true;
	l->leading = false;
	pthread_cond_broadcast(&q->answered);
}

enum cfs_err sq_commit(struct meta *m, const struct meta_user *user, int64_t ns,
		       const struct meta_sender *from,
		       const struct meta_op *ops, struct meta_op_result *res,
		       size_t n, int64_t *head, struct cfs_error *err)
{
	struct sq_commit_queue *q = ((struct sq_meta *)m)->commits;
	struct commit_waiter w = { .a = { user, ns, from, ops, res, n, head } };
	struct commit_lane *l = &q->lane[(uint64_t)ns % q->n_lanes];

	pthread_mutex_lock(&q->lock);
	*l->tail = &w;
	l->tail = &w.next;
	while (!w.done) {
		if (!l->leading)
			lead(m, q, l);
		else
			pthread_cond_wait(&q->answered, &q->lock);
	}
	pthread_mutex_unlock(&q->lock);
	if (w.rc)
		*err = w.err;
	return w.rc;
}
