/*
 * History from the journal (meta_ops.history and list_as_of): the
 * versions of one node, and a namespace as it was at a JID.  Both read
 * the rows garbage collection kept (meta_sql_gc.c); a state older
 * than its horizon is refused rather than shown with holes.
 */
#include <stdlib.h>
#include <string.h>

#include "meta_sql.h"

/* Where path is: its parent folder and name (the folders must exist). */
static enum cfs_err place_of(struct sq_conn *c, int64_t ns, const char *path,
			     struct sq_resolved *r, struct cfs_error *err)
{
	enum cfs_err rc = sq_resolve(c, ns, path, r, err);

	if (rc == CFS_OK && r->exists)
		sq_node_release(&r->node);
	return rc;
}

/* Whether node lies below folder, by the parents nodes keeps (a deleted
 * node keeps the parent it had). */
static enum cfs_err is_below(struct sq_conn *c, int64_t ns, int64_t node,
			     int64_t folder, bool *below, struct cfs_error *err)
{
	enum cfs_err rc = CFS_OK;
	bool found = true;

	*below = false;
	for (int depth = 0; rc == CFS_OK && found && node != 0 && !*below &&
			    depth < CFS_PATH_MAX / 2;
	     depth++) {
		rc = db_int64(c->db,
			      db_stmt(c->db,
				      "SELECT parent FROM nodes"
				      " WHERE ns = ?1 AND node = ?2",
				      err, "ii", ns, node),
			      &node, &found, err);
		*below = rc == CFS_OK && found && node == folder;
	}
	return rc;
}

/*
 * A folder's delete deletes its descendants first, each with a row
 * (sq_subtree_drop), in one transaction: the JID before the first of
 * them is the last state with the folder whole.
 */
static enum cfs_err before_delete(struct sq_conn *c, int64_t ns, int64_t folder,
				  int64_t jid, int64_t *before,
				  struct cfs_error *err)
{
	bool below = true;
	enum cfs_err rc = CFS_OK;

	*before = jid - 1;
	while (rc == CFS_OK && below && *before > 0) {
		struct db_stmt *st =
			db_stmt(c->db,
				"SELECT kind, node FROM journal WHERE ns = ?1"
				" AND jid = ?2",
				err, "ii", ns, *before);
		int64_t node = 0;
		bool row = false;

		rc = st ? db_step(c->db, st, &row, err) : err->code;
		below = rc == CFS_OK && row &&
			db_col_int64(c->db, st, 0) == CFS_KIND_DELETED;
		if (below)
			node = db_col_int64(c->db, st, 1);
		if (st)
			db_reset(c->db, st);
		if (below)
			rc = is_below(c, ns, node, folder, &below, err);
		if (rc == CFS_OK && below)
			--*before;
	}
	return rc;
}

struct history_args {
	const struct meta_user *user;
	int64_t ns;
	const char *path;
	meta_entry_fn fn;
	void *arg;
};

static enum cfs_err history_rows(struct sq_conn *c, void *arg,
				 struct cfs_error *err)
{
	struct history_args *a = arg;
	struct sq_resolved r;
	enum cfs_err rc = sq_member(c, a->user->id, a->ns, err);
	struct db_stmt *st;
	bool row = true, any = false;

	if (rc == CFS_OK)
		rc = place_of(c, a->ns, a->path, &r, err);
	if (rc)
		return rc;
	/* Every node that is there now or was deleted there: a file deleted
	 * and written anew has one history.  A hard link's name has the
	 * versions of the node it names (the content, which a restore puts
	 * back through that name), not rows of its own but its delete. */
	st = db_stmt(c->db,
		     "SELECT " SQ_NODE_COLS ", at, (SELECT name FROM users"
		     " WHERE id = author) FROM journal WHERE ns = ?1"
		     " AND kind != 9 AND (node IN (SELECT node FROM nodes"
		     " WHERE ns = ?1 AND parent = ?2 AND name = ?3)"
		     " OR node IN (SELECT link_of FROM nodes WHERE ns = ?1"
		     " AND parent = ?2 AND name = ?3 AND link_of IS NOT NULL))"
		     " ORDER BY jid DESC",
		     err, "iit", a->ns, r.parent, r.name);
	rc = st ? CFS_OK : err->code;
	while (rc == CFS_OK && (rc = db_step(c->db, st, &row, err)) == CFS_OK &&
	       row) {
		struct sq_node n;
		struct meta_entry e;
		const char *author = db_col_text(c->db, st, 15);

		rc = sq_node_from_row(c, st, &n, err);
		if (rc)
			break;
		e = sq_entry_of(&n, a->path);
		e.at = db_col_int64(c->db, st, 14);
		e.author = author ? author : "";
		if (n.kind == CFS_KIND_DELETED)
			rc = before_delete(c, a->ns, n.node, n.jid, &e.before,
					   err);
		if (rc == CFS_OK)
			rc = a->fn(a->arg, &e, err);
		sq_node_release(&n);
		any = true;
	}
	if (st)
		db_reset(c->db, st);
	if (rc == CFS_OK && !any)
		rc = cfs_fail(err, CFS_ERR_NOT_FOUND,
			      "nothing was ever at '%s'", a->path);
	return rc;
}

enum cfs_err sq_history(struct meta *m, const struct meta_user *user,
			int64_t ns, const char *path, meta_entry_fn fn,
			void *arg, struct cfs_error *err)
{
	struct history_args a = { user, ns, path, fn, arg };

	return sq_run(m, false, history_rows, &a, err);
}

struct as_of_args {
	const struct meta_user *user;
	int64_t ns, as_of, at, cursor;
	unsigned limit;
	meta_entry_fn fn;
	void *arg;
	struct meta_page *page;
};

/* The JID the namespace stood at, at unix second at (0: none yet). */
static enum cfs_err jid_at(struct sq_conn *c, int64_t ns, int64_t at,
			   int64_t *jid, struct cfs_error *err)
{
	bool found;

	return db_int64(c->db,
			db_stmt(c->db,
				"SELECT COALESCE(MAX(jid), 0)"
				" FROM journal WHERE ns = ?1"
				" AND at <= ?2",
				err, "ii", ns, at),
			jid, &found, err);
}

/* Refuses a state some of whose rows garbage collection may have taken:
 * a row after it superseded before the horizon. */
static enum cfs_err whole_at(struct sq_conn *c, int64_t ns, int64_t jid,
			     struct cfs_error *err)
{
	int64_t horizon = 0, first = 0;
	bool found;
	enum cfs_err rc = db_int64(
		c->db, db_stmt(c->db, "SELECT at FROM gc_horizon", err, ""),
		&horizon, &found, err);

	if (rc == CFS_OK && horizon > 0)
		rc = db_int64(c->db,
			      db_stmt(c->db,
				      "SELECT COALESCE(MIN(at), ?3)"
				      " FROM journal WHERE ns = ?1"
				      " AND jid > ?2",
				      err, "iii", ns, jid, horizon),
			      &first, &found, err);
	if (rc == CFS_OK && horizon > 0 && first < horizon)
		rc = cfs_fail(err, CFS_ERR_NOT_FOUND,
			      "namespace %lld at JID %lld is older than the "
			      "history the server keeps",
			      (long long)ns, (long long)jid);
	return rc;
}

static enum cfs_err as_of_rows(struct sq_conn *c, void *arg,
			       struct cfs_error *err)
{
	struct as_of_args *a = arg;
	enum cfs_err rc = sq_member(c, a->user->id, a->ns, err);
	struct db_stmt *st;
	int64_t head = 0, last;
	unsigned count = 0;
	bool row = true;

	if (rc == CFS_OK)
		rc = sq_ns_head(c, a->ns, &head, err);
	if (rc == CFS_OK && a->at > 0)
		rc = jid_at(c, a->ns, a->at, &a->as_of, err);
	if (rc == CFS_OK && (a->as_of < 0 || a->as_of > head || a->cursor < 0 ||
			     a->cursor > a->as_of))
		rc = cfs_fail(err, CFS_ERR_BAD_CURSOR,
			      "JID %lld (cursor %lld) is beyond the head %lld "
			      "of namespace %lld",
			      (long long)a->as_of, (long long)a->cursor,
			      (long long)head, (long long)a->ns);
	if (rc == CFS_OK)
		rc = whole_at(c, a->ns, a->as_of, err);
	if (rc)
		return rc;
	a->page->head = a->as_of;
	a->page->more = false;
	a->page->bytes = 0;
	last = a->cursor;
	/* Each node's newest row up to as_of, if it is not its delete. */
	st = db_stmt(c->db,
		     "SELECT " SQ_NODE_COLS " FROM journal j"
		     " WHERE ns = ?1 AND jid > ?3 AND jid <= ?2"
		     " AND kind != 0 AND NOT EXISTS (SELECT 1 FROM"
		     " journal k WHERE k.ns = ?1 AND k.node = j.node"
		     " AND k.jid > j.jid AND k.jid <= ?2)"
		     " ORDER BY jid LIMIT ?4",
		     err, "iiii", a->ns, a->as_of, a->cursor,
		     (int64_t)a->limit + 1);
	rc = st ? CFS_OK : err->code;
	while (rc == CFS_OK && (rc = db_step(c->db, st, &row, err)) == CFS_OK &&
	       row) {
		struct sq_node n;

		if (count++ == a->limit) {
			a->page->more = true;
			break;
		}
		rc = sq_node_from_row(c, st, &n, err);
		if (rc == CFS_OK) {
			struct meta_entry e = sq_entry_of(&n, NULL);

			if (!meta_page_take(a->page, &e)) {
				a->page->more = true;
				sq_node_release(&n);
				break;
			}
			rc = a->fn(a->arg, &e, err);
			last = n.jid;
		}
		sq_node_release(&n);
	}
	if (st)
		db_reset(c->db, st);
	a->page->cursor = a->page->more ? last : a->as_of;
	return rc;
}

enum cfs_err sq_list_as_of(struct meta *m, const struct meta_user *user,
			   int64_t ns, int64_t as_of, int64_t at,
			   int64_t cursor, unsigned limit, meta_entry_fn fn,
			   void *arg, struct meta_page *page,
			   struct cfs_error *err)
{
	struct as_of_args a = { user,  ns, as_of, at,  cursor,
				limit, fn, arg,	  page };

	return sq_run(m, false, as_of_rows, &a, err);
}
