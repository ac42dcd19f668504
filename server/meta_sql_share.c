/*
 * The SQL backend's shared folders: sharing a folder, invitations,
 * leaving, removing members, and listing them (invariant 4 of
 * meta_sql.h).
 *
 * A shared folder is a namespace of its own.  Each member has a MOUNT node
 * for it in their root namespace, and members.mount_node points at it; the
 * namespace's journal is the same for all members.  Shared folders do not
 * nest: only a folder of a root namespace can be shared.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cloudfs/clock.h"
#include "meta_sql.h"

/* Member of ns, and ns is a shared folder (not somebody's root). */
static enum cfs_err shared_member(struct sq_conn *c, const struct meta_user *u,
				  int64_t ns, int64_t *owner,
				  struct cfs_error *err)
{
	struct db_stmt *st;
	enum cfs_err rc;
	bool row;

	rc = sq_member(c, u->id, ns, err);
	if (rc)
		return rc;
	st = db_stmt(c->db,
		     "SELECT shared, owner FROM namespaces WHERE id = ?1", err,
		     "i", ns);
	rc = st ? db_step(c->db, st, &row, err) : err->code;
	if (rc)
		return rc;
	if (!row || db_col_int64(c->db, st, 0) == 0)
		return cfs_fail(
			err, CFS_ERR_FORBIDDEN,
			"namespace %lld is a root namespace, not a shared folder",
			(long long)ns);
	if (owner)
		*owner = db_col_int64(c->db, st, 1);
	return CFS_OK;
}

/* The MOUNT node of shared ns in user's root; NOT_FOUND if not a member. */
static enum cfs_err mount_of(struct sq_conn *c, const struct meta_user *user,
			     int64_t ns, struct sq_node *n,
			     struct cfs_error *err)
{
	struct db_stmt *st = db_stmt(c->db,
				     "SELECT mount_node FROM members"
				     " WHERE ns = ?1 AND user_id = ?2",
				     err, "ii", ns, user->id);
	enum cfs_err rc;
	bool row;

	rc = st ? db_step(c->db, st, &row, err) : err->code;
	if (rc)
		return rc;
	if (!row)
		return cfs_fail(err, CFS_ERR_NOT_FOUND,
				"'%s' is not a member of namespace %lld",
				user->name, (long long)ns);
	return sq_node_get(c, user->root_ns, db_col_int64(c->db, st, 0), n,
			   err);
}

enum cfs_err sq_unmount(struct sq_conn *c, int64_t user, int64_t ns,
			struct cfs_error *err)
{
	enum cfs_err rc;

	rc = db_exec(c->db,
		     "DELETE FROM members WHERE ns = ?1 AND user_id = ?2", err,
		     "ii", ns, user);
	/* A folder whose owner leaves passes to its oldest member. */
	if (rc == CFS_OK)
		rc = db_exec(c->db,
			     "UPDATE namespaces SET owner = (SELECT user_id"
			     " FROM members WHERE ns = ?1"
			     " ORDER BY joined, user_id LIMIT 1)"
			     " WHERE id = ?1 AND owner = ?2",
			     err, "ii", ns, user);
	/* The user's long polls on ns must hear that it is gone. */
	if (rc == CFS_OK)
		sq_changed(c, ns);
	return rc;
}

/*
 * A LINK below folder whose file lies outside it goes to the shared folder
 * as a file of its own, with the content the file has now: a namespace
 * holds the nodes its links name (invariant 6), and another namespace's
 * node cannot be shared by name alone.  The file keeps its other names.
 */
static enum cfs_err link_copy(struct sq_conn *c, int64_t ns, int64_t folder,
			      struct sq_node *n, struct cfs_error *err)
{
	struct sq_node to;
	bool within = false;
	enum cfs_err rc;

	if (n->kind != CFS_KIND_LINK)
		return CFS_OK;
	rc = sq_node_get(c, ns, n->link_of, &to, err);
	if (rc)
		return rc;
	rc = sq_is_within(c, ns, to.parent, folder, &within, err);
	if (rc == CFS_OK && !within) {
		to.node = n->node;
		to.parent = n->parent;
		memcpy(to.name, n->name, sizeof(to.name));
		sq_node_release(n);
		*n = to;
		return CFS_OK;
	}
	sq_node_release(&to);
	return rc;
}

/* Copies the subtree below folder (of ns) into the new namespace shared,
 * parents first, then drops it from ns. */
static enum cfs_err move_subtree(struct sq_conn *c, const struct meta_user *u,
				 int64_t ns, int64_t folder, int64_t shared,
				 struct cfs_error *err)
{
	int64_t *ids;
	size_t n;
	enum cfs_err rc;

	rc = sq_descendants(c, ns, folder, &ids, &n, err);
	for (size_t i = 0; rc == CFS_OK && i < n; i++) {
		struct sq_node node;

		rc = sq_node_get(c, ns, ids[i], &node, err);
		if (rc)
			break;
		rc = link_copy(c, ns, folder, &node, err);
		if (rc)
			break;
		if (node.parent == folder)
			node.parent = 0;
		rc = sq_journal_put(c, shared, u->id, &node, err);
		sq_node_release(&node);
	}
	free(ids);
	if (rc == CFS_OK)
		rc = sq_subtree_drop(c, u, ns, folder, err);
	return rc;
}

static enum cfs_err share_folder(struct sq_conn *c, const struct meta_user *u,
				 int64_t ns, struct sq_node *folder,
				 int64_t *shared, struct cfs_error *err)
{
	int64_t *mounts;
	size_t n_mounts;
	enum cfs_err rc;
	bool found;

	rc = sq_subtree_mounts(c, ns, folder->node, &mounts, &n_mounts, err);
	free(mounts);
	if (rc)
		return rc;
	if (n_mounts)
		return cfs_fail(
			err, CFS_ERR_FORBIDDEN,
			"cannot share '%s': it holds a shared folder, and shared folders do not nest",
			folder->name);
	/* Node ids are kept, so the new namespace starts numbering where
	 * the old one stands. */
	rc = db_int64(c->db,
		      db_stmt(c->db,
			      "INSERT INTO namespaces(shared, owner, created,"
			      " next_node) SELECT 1, ?1, ?2, next_node"
			      " FROM namespaces WHERE id = ?3 RETURNING id",
			      err, "iii", u->id, (int64_t)time(NULL), ns),
		      shared, &found, err);
	if (rc)
		return rc;
	rc = move_subtree(c, u, ns, folder->node, *shared, err);
	if (rc)
		return rc;
	sq_node_release(folder);
	folder->kind = CFS_KIND_MOUNT;
	folder->size = 0;
	folder->mount_ns = *shared;
	rc = sq_journal_put(c, ns, u->id, folder, err);
	if (rc == CFS_OK)
		rc = db_exec(c->db,
			     "INSERT INTO members(ns, user_id, mount_node,"
			     " joined) VALUES (?1, ?2, ?3, ?4)",
			     err, "iiii", *shared, u->id, folder->node,
			     (int64_t)time(NULL));
	if (rc == CFS_OK)
		sq_changed(c, *shared);
	return rc;
}

/* The arguments of the shared-folder entry points, for sq_run(). */
struct share_args {
	const struct meta_user *user;
	int64_t ns;
	const char *name; /* the path, the invitee or the member */
	int64_t *shared;
	bool *created;
	meta_member_fn fn;
	void *arg;
};

static enum cfs_err do_share(struct sq_conn *c, void *arg,
			     struct cfs_error *err)
{
	struct share_args *a = arg;
	struct sq_resolved r = { 0 };
	enum cfs_err rc = sq_member(c, a->user->id, a->ns, err);

	if (rc == CFS_OK && a->ns != a->user->root_ns)
		rc = cfs_fail(
			err, CFS_ERR_FORBIDDEN,
			"namespace %lld is a shared folder, and shared folders do not nest",
			(long long)a->ns);
	if (rc == CFS_OK)
		rc = sq_resolve(c, a->ns, a->name, &r, err);
	if (rc == CFS_OK && !r.exists)
		rc = cfs_fail(err, CFS_ERR_NOT_FOUND, "'%s' does not exist",
			      a->name);
	if (rc == CFS_OK && r.node.kind == CFS_KIND_MOUNT) {
		*a->shared = r.node.mount_ns;
	} else if (rc == CFS_OK && r.node.kind != CFS_KIND_DIR) {
		rc = cfs_fail(err, CFS_ERR_NOT_DIR, "'%s' is not a directory",
			      a->name);
	} else if (rc == CFS_OK) {
		rc = share_folder(c, a->user, a->ns, &r.node, a->shared, err);
		*a->created = rc == CFS_OK;
	}
	sq_node_release(&r.node);
	return rc;
}

enum cfs_err sq_share(struct meta *m, const struct meta_user *user, int64_t ns,
		      const char *path, int64_t *shared, bool *created,
		      struct cfs_error *err)
{
	struct share_args a = { .user = user,
				.ns = ns,
				.name = path,
				.shared = shared,
				.created = created };

	*created = false;
	return sq_run(m, true, do_share, &a, err);
}

/*
 * A name for a new mount in the root of ns: name itself, else "name (2)",
 * "name (3)" and so on, shortened on a character boundary to fit.
 */
static enum cfs_err free_name(struct sq_conn *c, int64_t ns, const char *name,
			      char out[CFS_NAME_MAX + 1], struct cfs_error *err)
{
	for (int i = 1; i <= 1000; i++) {
		char suffix[16] = "";
		size_t keep = strlen(name);
		struct sq_node n;
		enum cfs_err rc;

		if (i > 1)
			snprintf(suffix, sizeof(suffix), " (%d)", i);
		while (keep + strlen(suffix) > CFS_NAME_MAX ||
		       (keep && ((unsigned char)name[keep] & 0xc0) == 0x80))
			keep--;
		snprintf(out, CFS_NAME_MAX + 1, "%.*s%s", (int)keep, name,
			 suffix);
		rc = sq_child_get(c, ns, 0, out, strlen(out), &n, err);
		if (rc == CFS_ERR_NOT_FOUND)
			return CFS_OK;
		if (rc)
			return rc;
		sq_node_release(&n);
	}
	return cfs_fail(err, CFS_ERR_EXISTS,
			"no free name for '%s' in the invitee's root", name);
}

static enum cfs_err mount_for(struct sq_conn *c, const struct meta_user *u,
			      const struct meta_user *invitee, int64_t ns,
			      struct cfs_error *err)
{
	struct sq_node mine, n = { 0 };
	enum cfs_err rc;

	rc = mount_of(c, u, ns, &mine, err);
	if (rc)
		return rc;
	rc = free_name(c, invitee->root_ns, mine.name, n.name, err);
	sq_node_release(&mine);
	if (rc == CFS_OK)
		rc = sq_node_alloc(c, invitee->root_ns, &n.node, err);
	if (rc)
		return rc;
	n.kind = CFS_KIND_MOUNT;
	n.mode = 0755;
	n.atime_ns = n.mtime_ns = n.ctime_ns = cfs_now_ns();
	n.mount_ns = ns;
	rc = sq_journal_put(c, invitee->root_ns, u->id, &n, err);
	if (rc == CFS_OK)
		rc = db_exec(c->db,
			     "INSERT INTO members(ns, user_id, mount_node,"
			     " joined) VALUES (?1, ?2, ?3, ?4)",
			     err, "iiii", ns, invitee->id, n.node,
			     (int64_t)time(NULL));
	return rc;
}

static enum cfs_err do_invite(struct sq_conn *c, void *arg,
			      struct cfs_error *err)
{
	struct share_args *a = arg;
	struct meta_user other;
	enum cfs_err rc = shared_member(c, a->user, a->ns, NULL, err);

	if (rc == CFS_OK)
		rc = sq_user_by_name(c, a->name, &other, err);
	if (rc)
		return rc;
	rc = sq_member(c, other.id, a->ns, err);
	if (rc == CFS_OK)
		return cfs_fail(err, CFS_ERR_EXISTS,
				"'%s' is a member of namespace %lld already",
				a->name, (long long)a->ns);
	return rc == CFS_ERR_NOT_FOUND
		       ? mount_for(c, a->user, &other, a->ns, err)
		       : rc;
}

enum cfs_err sq_invite(struct meta *m, const struct meta_user *user, int64_t ns,
		       const char *invitee, struct cfs_error *err)
{
	struct share_args a = { .user = user, .ns = ns, .name = invitee };

	return sq_run(m, true, do_invite, &a, err);
}

/* Removes member's mount (a row in their root) and membership. */
static enum cfs_err unmount_member(struct sq_conn *c,
				   const struct meta_user *author,
				   const struct meta_user *member, int64_t ns,
				   struct cfs_error *err)
{
	struct sq_node n;
	enum cfs_err rc;

	rc = mount_of(c, member, ns, &n, err);
	if (rc)
		return rc;
	sq_node_release(&n);
	n.kind = CFS_KIND_DELETED;
	n.mount_ns = 0;
	rc = sq_journal_put(c, member->root_ns, author->id, &n, err);
	if (rc == CFS_OK)
		rc = sq_unmount(c, member->id, ns, err);
	return rc;
}

static enum cfs_err do_leave(struct sq_conn *c, void *arg,
			     struct cfs_error *err)
{
	struct share_args *a = arg;
	enum cfs_err rc = shared_member(c, a->user, a->ns, NULL, err);

	return rc ? rc : unmount_member(c, a->user, a->user, a->ns, err);
}

enum cfs_err sq_leave(struct meta *m, const struct meta_user *user, int64_t ns,
		      struct cfs_error *err)
{
	struct share_args a = { .user = user, .ns = ns };

	return sq_run(m, true, do_leave, &a, err);
}

static enum cfs_err do_remove(struct sq_conn *c, void *arg,
			      struct cfs_error *err)
{
	struct share_args *a = arg;
	struct meta_user other;
	int64_t owner = 0;
	enum cfs_err rc = shared_member(c, a->user, a->ns, &owner, err);

	if (rc == CFS_OK && owner != a->user->id)
		rc = cfs_fail(
			err, CFS_ERR_FORBIDDEN,
			"only the owner of namespace %lld can remove members",
			(long long)a->ns);
	if (rc == CFS_OK)
		rc = sq_user_by_name(c, a->name, &other, err);
	if (rc == CFS_OK && other.id == a->user->id)
		rc = cfs_fail(err, CFS_ERR_BAD_FIELD,
			      "to remove yourself, leave the shared folder");
	return rc ? rc : unmount_member(c, a->user, &other, a->ns, err);
}

enum cfs_err sq_remove_member(struct meta *m, const struct meta_user *user,
			      int64_t ns, const char *member,
			      struct cfs_error *err)
{
	struct share_args a = { .user = user, .ns = ns, .name = member };

	return sq_run(m, true, do_remove, &a, err);
}

static enum cfs_err list_members(struct sq_conn *c, void *arg,
				 struct cfs_error *err)
{
	struct share_args *a = arg;
	struct db_stmt *st = NULL;
	enum cfs_err rc = sq_member(c, a->user->id, a->ns, err);
	bool row = true;

	if (rc == CFS_OK &&
	    !(st = db_stmt(c->db,
			   "SELECT u.name, CASE WHEN n.owner = u.id THEN 1"
			   " ELSE 0 END FROM members m"
			   " JOIN users u ON u.id = m.user_id"
			   " JOIN namespaces n ON n.id = m.ns"
			   " WHERE m.ns = ?1 ORDER BY m.joined, u.name",
			   err, "i", a->ns)))
		rc = err->code;
	while (rc == CFS_OK && (rc = db_step(c->db, st, &row, err)) == CFS_OK &&
	       row) {
		struct meta_member mm = {
			.user = db_col_text(c->db, st, 0),
			.owner = db_col_int64(c->db, st, 1) != 0,
		};

		rc = a->fn(a->arg, &mm, err);
	}
	return rc;
}

enum cfs_err sq_members(struct meta *m, const struct meta_user *user,
			int64_t ns, meta_member_fn fn, void *arg,
			struct cfs_error *err)
{
	struct share_args a = { .user = user, .ns = ns, .fn = fn, .arg = arg };

	return sq_run(m, false, list_members, &a, err);
}
