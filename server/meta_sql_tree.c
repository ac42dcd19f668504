/*
 * The SQL backend's tree: reading nodes, resolving paths, appending to
 * the journal (invariants 1-3 of meta_sql.h), and the read side of the
 * protocol (namespaces, heads, listings).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cloudfs/path.h"
#include "meta_sql.h"

struct meta_entry sq_entry_of(const struct sq_node *n, const char *path)
{
	return (struct meta_entry){
		.node = n->node,
		.parent = n->parent,
		.jid = n->jid,
		.kind = n->kind,
		.name = n->name,
		.path = path,
		.size = n->size,
		.atime_ns = n->atime_ns,
		.mtime_ns = n->mtime_ns,
		.ctime_ns = n->ctime_ns,
		.mode = n->mode,
		.blocks = n->blocks,
		.target = n->target,
		.mount_ns = n->mount_ns,
		.link_of = n->kind == CFS_KIND_LINK ? n->link_of : 0,
	};
}

void sq_node_release(struct sq_node *n)
{
	cfs_blocklist_release(&n->blocks);
	free(n->target);
	n->target = NULL;
}

enum cfs_err sq_node_from_row(struct sq_conn *c, struct db_stmt *st,
			      struct sq_node *n, struct cfs_error *err)
{
	size_t blocks_len;
	const void *blocks = db_col_blob(c->db, st, 7, &blocks_len);
	const char *target = db_col_text(c->db, st, 8);

	*n = (struct sq_node){
		.node = db_col_int64(c->db, st, 0),
		.parent = db_col_int64(c->db, st, 1),
		.kind = (enum cfs_kind)db_col_int64(c->db, st, 3),
		.size = (uint64_t)db_col_int64(c->db, st, 4),
		.mtime_ns = db_col_int64(c->db, st, 5),
		.mode = (uint32_t)db_col_int64(c->db, st, 6),
		.mount_ns = db_col_int64(c->db, st, 9),
		.jid = db_col_int64(c->db, st, 10),
		.atime_ns = db_col_int64(c->db, st, 11),
		.ctime_ns = db_col_int64(c->db, st, 12),
		.link_of = db_col_int64(c->db, st, 13),
	};
	snprintf(n->name, sizeof(n->name), "%s", db_col_text(c->db, st, 2));
	if (cfs_blocklist_from_raw(blocks, blocks_len, &n->blocks))
		return cfs_fail(err, CFS_ERR_INTERNAL,
				"node %lld has a corrupt block list",
				(long long)n->node);
	if (target && !(n->target = strdup(target))) {
		sq_node_release(n);
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	}
	return CFS_OK;
}

/* Steps a statement that selects SQ_NODE_COLS: NOT_FOUND when no row. */
static enum cfs_err node_step(struct sq_conn *c, struct db_stmt *st,
			      struct sq_node *n, struct cfs_error *err)
{
	enum cfs_err rc;
	bool row;

	if (!st)
		return err->code;
	rc = db_step(c->db, st, &row, err);
	if (rc)
		return rc;
	if (!row)
		return CFS_ERR_NOT_FOUND; /* callers word the message */
	return sq_node_from_row(c, st, n, err);
}

enum cfs_err sq_node_get(struct sq_conn *c, int64_t ns, int64_t node,
			 struct sq_node *n, struct cfs_error *err)
{
	enum cfs_err rc = node_step(c,
				    db_stmt(c->db,
					    "SELECT " SQ_NODE_COLS " FROM nodes"
					    " WHERE ns = ?1 AND node = ?2",
					    err, "ii", ns, node),
				    n, err);

	if (rc == CFS_ERR_NOT_FOUND)
		cfs_fail(err, rc, "no node %lld in namespace %lld",
			 (long long)node, (long long)ns);
	return rc;
}

enum cfs_err sq_child_get(struct sq_conn *c, int64_t ns, int64_t parent,
			  const char *name, size_t len, struct sq_node *n,
			  struct cfs_error *err)
{
	enum cfs_err rc = node_step(
		c,
		db_stmt(c->db,
			"SELECT " SQ_NODE_COLS " FROM nodes WHERE ns = ?1"
			" AND parent = ?2 AND name = ?3 AND kind != 0",
			err, "iis", ns, parent, name, len),
		n, err);

	if (rc == CFS_ERR_NOT_FOUND)
		cfs_fail(err, rc, "no entry '%.*s'", (int)len, name);
	return rc;
}

/* Runs an UPDATE ... RETURNING on namespace ns's row for one number. */
static enum cfs_err ns_counter(struct sq_conn *c, const char *sql, int64_t ns,
			       int64_t *out, struct cfs_error *err)
{
	bool found;
	enum cfs_err rc = db_int64(c->db, db_stmt(c->db, sql, err, "i", ns),
				   out, &found, err);

	if (rc == CFS_OK && !found)
		rc = cfs_fail(err, CFS_ERR_INTERNAL, "no namespace %lld",
			      (long long)ns);
	return rc;
}

enum cfs_err sq_node_alloc(struct sq_conn *c, int64_t ns, int64_t *node,
			   struct cfs_error *err)
{
	return ns_counter(c,
			  "UPDATE namespaces SET next_node = next_node + 1"
			  " WHERE id = ?1 RETURNING next_node - 1",
			  ns, node, err);
}

/* Invariant 1: the JID comes from the head, inside the transaction. */
static enum cfs_err next_jid(struct sq_conn *c, int64_t ns, int64_t *jid,
			     struct cfs_error *err)
{
	return ns_counter(c,
			  "UPDATE namespaces SET head = head + 1 WHERE id = ?1"
			  " RETURNING head",
			  ns, jid, err);
}

/* The journal row of n's new state, with a new JID (n->jid). */
static enum cfs_err journal_append(struct sq_conn *c, int64_t ns,
				   int64_t author, struct sq_node *n,
				   struct cfs_error *err)
{
	enum cfs_err rc = next_jid(c, ns, &n->jid, err);

	if (rc == CFS_OK)
		rc = db_exec(c->db,
			     "INSERT INTO journal(ns, jid, node, parent, name,"
			     " kind, size, mtime_ns, mode, blocks, target,"
			     " mount_ns, author, at, atime_ns, ctime_ns,"
			     " link_of) VALUES"
			     " (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11,"
			     " ?12, ?13, ?14, ?15, ?16, ?17)",
			     err, "iiiitiiiibtIiiiiI", ns, n->jid, n->node,
			     n->parent, n->name, (int64_t)n->kind,
			     (int64_t)n->size, n->mtime_ns, (int64_t)n->mode,
			     (const void *)n->blocks.ids,
			     n->blocks.n * CFS_BLOCK_ID_LEN, n->target,
			     n->mount_ns, author, (int64_t)time(NULL),
			     n->atime_ns, n->ctime_ns, n->link_of);
	return rc;
}

enum cfs_err sq_journal_put(struct sq_conn *c, int64_t ns, int64_t author,
			    struct sq_node *n, struct cfs_error *err)
{
	size_t blocks_len = n->blocks.n * CFS_BLOCK_ID_LEN;
	enum cfs_err rc = journal_append(c, ns, author, n, err);

	/* An upsert by key only: a clash on (ns, parent, name) must fail,
	 * never silently replace another node. */
	if (rc == CFS_OK)
		rc = db_exec(
			c->db,
			"INSERT INTO nodes(ns, node, parent, name, kind,"
			" size, mtime_ns, mode, blocks, target, mount_ns,"
			" jid, atime_ns, ctime_ns, link_of) VALUES (?1, ?2,"
			" ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14,"
			" ?15)"
			" ON CONFLICT(ns, node) DO"
			" UPDATE SET parent = excluded.parent,"
			" name = excluded.name, kind = excluded.kind,"
			" size = excluded.size,"
			" mtime_ns = excluded.mtime_ns,"
			" mode = excluded.mode, blocks = excluded.blocks,"
			" target = excluded.target,"
			" mount_ns = excluded.mount_ns, jid = excluded.jid,"
			" atime_ns = excluded.atime_ns,"
			" ctime_ns = excluded.ctime_ns,"
			" link_of = excluded.link_of",
			err, "iiitiiiibtIiiiI", ns, n->node, n->parent, n->name,
			(int64_t)n->kind, (int64_t)n->size, n->mtime_ns,
			(int64_t)n->mode, (const void *)n->blocks.ids,
			blocks_len, n->target, n->mount_ns, n->jid, n->atime_ns,
			n->ctime_ns, n->link_of);
	for (size_t i = 0; rc == CFS_OK && i < n->blocks.n; i++)
		rc = db_exec(c->db,
			     "INSERT INTO block_refs(id, ns) VALUES (?1, ?2)"
			     " ON CONFLICT DO NOTHING",
			     err, "bi", n->blocks.ids[i].b,
			     (size_t)CFS_BLOCK_ID_LEN, ns);
	if (rc == CFS_OK)
		sq_changed(c, ns);
	return rc;
}

enum cfs_err sq_node_follow(struct sq_conn *c, int64_t ns, struct sq_node *n,
			    struct cfs_error *err)
{
	struct sq_node to;
	enum cfs_err rc;

	if (n->kind != CFS_KIND_LINK)
		return CFS_OK;
	rc = sq_node_get(c, ns, n->link_of, &to, err);
	if (rc == CFS_OK &&
	    (to.kind == CFS_KIND_DELETED || to.kind == CFS_KIND_DIR ||
	     to.kind == CFS_KIND_MOUNT || to.kind == CFS_KIND_LINK)) {
		sq_node_release(&to);
		rc = cfs_fail(err, CFS_ERR_INTERNAL,
			      "link %lld of namespace %lld names node %lld,"
			      " which is not a file",
			      (long long)n->node, (long long)ns,
			      (long long)n->link_of);
	}
	if (rc == CFS_ERR_NOT_FOUND)
		rc = cfs_fail(err, CFS_ERR_INTERNAL,
			      "link %lld of namespace %lld names no node",
			      (long long)n->node, (long long)ns);
	if (rc)
		return rc;
	sq_node_release(n);
	*n = to;
	return CFS_OK;
}

enum cfs_err sq_is_within(struct sq_conn *c, int64_t ns, int64_t dir,
			  int64_t node, bool *within, struct cfs_error *err)
{
	*within = false;
	while (dir != 0 && !*within) {
		struct sq_node n;
		enum cfs_err rc;

		if (dir == node) {
			*within = true;
			break;
		}
		rc = sq_node_get(c, ns, dir, &n, err);
		if (rc)
			return rc;
		dir = n.parent;
		sq_node_release(&n);
	}
	return CFS_OK;
}

static enum cfs_err collect_ids(struct sq_conn *c, struct db_stmt *st,
				int64_t **ids, size_t *n,
				struct cfs_error *err);

/*
 * The first LINK node of n that does not lie below keep_out (0: any),
 * in *link; *found says whether there is one.  The ids first, from the
 * index alone: asked for whole rows, SQLite walks the namespace in node
 * order instead, on every delete of a file.
 */
static enum cfs_err other_name(struct sq_conn *c, int64_t ns,
			       const struct sq_node *n, int64_t keep_out,
			       struct sq_node *link, bool *found,
			       struct cfs_error *err)
{
	int64_t *ids;
	size_t n_ids;
	enum cfs_err rc = collect_ids(
		c,
		db_stmt(c->db,
			"SELECT node FROM nodes WHERE ns = ?1 AND kind = 9"
			" AND link_of = ?2 ORDER BY node",
			err, "ii", ns, n->node),
		&ids, &n_ids, err);

	*found = false;
	for (size_t i = 0; rc == CFS_OK && !*found && i < n_ids; i++) {
		bool below = false;

		rc = sq_node_get(c, ns, ids[i], link, err);
		if (rc)
			break;
		if (keep_out)
			rc = sq_is_within(c, ns, link->parent, keep_out, &below,
					  err);
		if (rc == CFS_OK && !below)
			*found = true;
		else
			sq_node_release(link);
	}
	free(ids);
	return rc;
}

enum cfs_err sq_name_drop(struct sq_conn *c, int64_t author, int64_t ns,
			  struct sq_node *n, int64_t keep_out, int64_t *gone,
			  struct cfs_error *err)
{
	struct sq_node link;
	bool found = false;
	enum cfs_err rc;

	*gone = 0;
	if (n->kind == CFS_KIND_DELETED || n->kind == CFS_KIND_DIR ||
	    n->kind == CFS_KIND_MOUNT || n->kind == CFS_KIND_LINK)
		return CFS_OK;
	rc = other_name(c, ns, n, keep_out, &link, &found, err);
	if (rc || !found)
		return rc;
	/* The link's delete first, so that no two live nodes ever hold one
	 * name (invariant 3), in the journal as in nodes. */
	n->parent = link.parent;
	memcpy(n->name, link.name, sizeof(n->name));
	rc = sq_tombstone(c, author, ns, &link, err);
	*gone = link.jid;
	sq_node_release(&link);
	if (rc == CFS_OK)
		rc = sq_journal_put(c, ns, author, n, err);
	return rc;
}

enum cfs_err sq_node_path(struct sq_conn *c, int64_t ns, int64_t node,
			  char **path, struct cfs_error *err)
{
	/* Names are collected leaf first, then joined root first. */
	char *names[CFS_PATH_MAX / 2 + 1];
	size_t depth = 0, len = 0;
	enum cfs_err rc = CFS_OK;

	*path = NULL;
	while (node != 0 && rc == CFS_OK) {
		struct db_stmt *st = db_stmt(c->db,
					     "SELECT parent, name FROM nodes"
					     " WHERE ns = ?1 AND node = ?2",
					     err, "ii", ns, node);
		bool row;

		rc = st ? db_step(c->db, st, &row, err) : err->code;
		if (rc)
			break;
		if (!row || depth == sizeof(names) / sizeof(names[0])) {
			rc = cfs_fail(err, CFS_ERR_INTERNAL,
				      "node %lld of namespace %lld has no path",
				      (long long)node, (long long)ns);
			break;
		}
		node = db_col_int64(c->db, st, 0);
		names[depth] = strdup(db_col_text(c->db, st, 1));
		if (!names[depth]) {
			rc = cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
			break;
		}
		len += strlen(names[depth++]) + 1;
	}
	if (rc == CFS_OK && !(*path = malloc(len + 1)))
		rc = cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	if (rc == CFS_OK) {
		char *p = *path;

		for (size_t i = depth; i-- > 0;) {
			size_t n = strlen(names[i]);

			if (p != *path)
				*p++ = '/';
			memcpy(p, names[i], n);
			p += n;
		}
		*p = '\0';
	}
	for (size_t i = 0; i < depth; i++)
		free(names[i]);
	return rc;
}

enum cfs_err sq_resolve(struct sq_conn *c, int64_t ns, const char *path,
			struct sq_resolved *r, struct cfs_error *err)
{
	struct cfs_path_iter it = cfs_path_iter_init(path);
	enum cfs_err rc;

	memset(r, 0, sizeof(*r));
	cfs_path_next(&it);
	for (;;) {
		int upto = (int)(it.name + it.len - path);
		struct sq_node n;

		rc = sq_child_get(c, ns, r->parent, it.name, it.len, &n, err);
		if (!it.rest) {
			snprintf(r->name, sizeof(r->name), "%.*s", (int)it.len,
				 it.name);
			if (rc == CFS_OK) {
				r->exists = true;
				r->node = n;
			}
			return rc == CFS_ERR_NOT_FOUND ? CFS_OK : rc;
		}
		if (rc == CFS_ERR_NOT_FOUND)
			return cfs_fail(err, rc, "'%.*s' does not exist", upto,
					path);
		if (rc)
			return rc;
		sq_node_release(&n);
		if (n.kind == CFS_KIND_MOUNT)
			return cfs_fail(
				err, CFS_ERR_CROSS_NS,
				"'%.*s' is a shared folder: address it in namespace %lld",
				upto, path, (long long)n.mount_ns);
		if (n.kind != CFS_KIND_DIR)
			return cfs_fail(err, CFS_ERR_NOT_DIR,
					"'%.*s' is not a directory", upto,
					path);
		r->parent = n.node;
		cfs_path_next(&it);
	}
}

/* Collects the first column of every row of st into a new array. */
static enum cfs_err collect_ids(struct sq_conn *c, struct db_stmt *st,
				int64_t **ids, size_t *n, struct cfs_error *err)
{
	size_t cap = 0;
	enum cfs_err rc = st ? CFS_OK : err->code;
	bool row = true;

	*ids = NULL;
	*n = 0;
	while (rc == CFS_OK && (rc = db_step(c->db, st, &row, err)) == CFS_OK &&
	       row) {
		if (*n == cap) {
			int64_t *p;

			cap = cap ? 2 * cap : 64;
			p = realloc(*ids, cap * sizeof(**ids));
			if (!p) {
				rc = cfs_fail(err, CFS_ERR_INTERNAL,
					      "out of memory");
				break;
			}
			*ids = p;
		}
		(*ids)[(*n)++] = db_col_int64(c->db, st, 0);
	}
	if (rc) {
		free(*ids);
		*ids = NULL;
		*n = 0;
	}
	return rc;
}

enum cfs_err sq_descendants(struct sq_conn *c, int64_t ns, int64_t node,
			    int64_t **ids, size_t *n, struct cfs_error *err)
{
	return collect_ids(c,
			   db_stmt(c->db,
				   SQ_SUBTREE_CTE
				   "SELECT node FROM sub ORDER BY depth, node",
				   err, "ii", ns, node),
			   ids, n, err);
}

enum cfs_err sq_subtree_mounts(struct sq_conn *c, int64_t ns, int64_t node,
			       int64_t **mounts, size_t *n,
			       struct cfs_error *err)
{
	return collect_ids(c,
			   db_stmt(c->db,
				   SQ_SUBTREE_CTE
				   "SELECT n.mount_ns FROM nodes n JOIN sub"
				   " ON n.ns = ?1 AND n.node = sub.node"
				   " WHERE n.kind = 4",
				   err, "ii", ns, node),
			   mounts, n, err);
}

/*
 * The nodes below node that have names outside it take one of those
 * (invariant 6), before the subtree goes: a file lives while it has a
 * name.  First, so that the last state with the folder whole
 * (meta_sql_history.c, before_delete) is the one just before its
 * descendants' delete rows.
 */
static enum cfs_err keep_linked(struct sq_conn *c, int64_t author, int64_t ns,
				int64_t node, struct cfs_error *err)
{
	int64_t *ids;
	size_t n;
	enum cfs_err rc = collect_ids(
		c,
		db_stmt(c->db,
			SQ_SUBTREE_CTE "SELECT n.node FROM nodes n JOIN sub"
				       " ON n.ns = ?1 AND n.node = sub.node"
				       " WHERE n.kind NOT IN (0, 2, 4, 9)"
				       " AND EXISTS (SELECT 1 FROM nodes l"
				       " WHERE l.ns = ?1 AND l.kind = 9"
				       " AND l.link_of = n.node)",
			err, "ii", ns, node),
		&ids, &n, err);

	for (size_t i = 0; rc == CFS_OK && i < n; i++) {
		struct sq_node f;
		int64_t gone;

		rc = sq_node_get(c, ns, ids[i], &f, err);
		if (rc)
			break;
		rc = sq_name_drop(c, author, ns, &f, node, &gone, err);
		sq_node_release(&f);
	}
	free(ids);
	return rc;
}

enum cfs_err sq_subtree_drop(struct sq_conn *c, const struct meta_user *user,
			     int64_t ns, int64_t node, struct cfs_error *err)
{
	int64_t *mounts = NULL, *ids = NULL;
	size_t n_mounts, n = 0;
	enum cfs_err rc;

	rc = keep_linked(c, user->id, ns, node, err);
	if (rc == CFS_OK)
		rc = sq_subtree_mounts(c, ns, node, &mounts, &n_mounts, err);
	for (size_t i = 0; rc == CFS_OK && i < n_mounts; i++)
		rc = sq_unmount(c, user->id, mounts[i], err);
	free(mounts);
	if (rc == CFS_OK)
		rc = sq_descendants(c, ns, node, &ids, &n, err);
	/* A journal row each, so that a file's history ends with its delete
	 * and the versions before it are garbage once retention has passed;
	 * but not in nodes, whose rows keep their JIDs (invariant 2). */
	for (size_t i = 0; rc == CFS_OK && i < n; i++) {
		struct sq_node d;

		rc = sq_node_get(c, ns, ids[i], &d, err);
		if (rc)
			break;
		sq_node_release(&d);
		d.kind = CFS_KIND_DELETED;
		d.size = 0;
		d.mount_ns = 0;
		rc = journal_append(c, ns, user->id, &d, err);
	}
	free(ids);
	if (rc == CFS_OK)
		rc = db_exec(c->db,
			     "UPDATE nodes SET kind = 0 WHERE ns = ?1 AND node"
			     " IN (" SQ_SUBTREE_CTE "SELECT node FROM sub)",
			     err, "ii", ns, node);
	return rc;
}

enum cfs_err sq_tombstone(struct sq_conn *c, int64_t author, int64_t ns,
			  struct sq_node *n, struct cfs_error *err)
{
	sq_node_release(n);
	n->kind = CFS_KIND_DELETED;
	n->size = 0;
	n->mount_ns = 0;
	return sq_journal_put(c, ns, author, n, err);
}

enum cfs_err sq_ns_head(struct sq_conn *c, int64_t ns, int64_t *head,
			struct cfs_error *err)
{
	bool found;
	enum cfs_err rc = db_int64(
		c->db,
		db_stmt(c->db, "SELECT head FROM namespaces WHERE id = ?1", err,
			"i", ns),
		head, &found, err);

	if (rc == CFS_OK && !found)
		rc = cfs_fail(err, CFS_ERR_NOT_FOUND, "no namespace %lld",
			      (long long)ns);
	return rc;
}

/* Namespaces, heads and listings: read-only transactions. */

struct ns_args {
	const struct meta_user *user;
	meta_ns_fn fn;
	void *arg;
	const int64_t *ns;
	int64_t *heads;
	size_t n;
};

static enum cfs_err list_namespaces(struct sq_conn *c, void *arg,
				    struct cfs_error *err)
{
	struct ns_args *a = arg;
	struct db_stmt *st =
		db_stmt(c->db,
			"SELECT m.ns, n.head, n.shared, m.mount_node, o.name"
			" FROM members m JOIN namespaces n ON n.id = m.ns"
			" LEFT JOIN users o ON o.id = n.owner"
			" WHERE m.user_id = ?1 ORDER BY n.shared, m.ns",
			err, "i", a->user->id);
	enum cfs_err rc = st ? CFS_OK : err->code;
	bool row = true;

	while (rc == CFS_OK && (rc = db_step(c->db, st, &row, err)) == CFS_OK &&
	       row) {
		struct meta_ns_info info = {
			.ns = db_col_int64(c->db, st, 0),
			.head = db_col_int64(c->db, st, 1),
			.root = db_col_int64(c->db, st, 2) == 0,
			.owner = db_col_text(c->db, st, 4),
		};
		char *path = NULL;

		if (!info.root)
			rc = sq_node_path(c, a->user->root_ns,
					  db_col_int64(c->db, st, 3), &path,
					  err);
		info.path = path ? path : "";
		if (rc == CFS_OK)
			rc = a->fn(a->arg, &info, err);
		free(path);
	}
	return rc;
}

enum cfs_err sq_namespaces(struct meta *m, const struct meta_user *user,
			   meta_ns_fn fn, void *arg, struct cfs_error *err)
{
	struct ns_args a = { .user = user, .fn = fn, .arg = arg };

	return sq_run(m, false, list_namespaces, &a, err);
}

static enum cfs_err read_heads(struct sq_conn *c, void *arg,
			       struct cfs_error *err)
{
	struct ns_args *a = arg;
	enum cfs_err rc = CFS_OK;

	for (size_t i = 0; rc == CFS_OK && i < a->n; i++) {
		struct db_stmt *st = db_stmt(c->db,
					     "SELECT n.head FROM namespaces n"
					     " JOIN members m ON m.ns = n.id"
					     " AND m.user_id = ?2"
					     " WHERE n.id = ?1",
					     err, "ii", a->ns[i], a->user->id);
		bool row;

		rc = st ? db_step(c->db, st, &row, err) : err->code;
		if (rc == CFS_OK)
			a->heads[i] = row ? db_col_int64(c->db, st, 0) : -1;
	}
	return rc;
}

enum cfs_err sq_heads(struct meta *m, const struct meta_user *user,
		      const int64_t *ns, int64_t *heads, size_t n,
		      struct cfs_error *err)
{
	struct ns_args a = { .user = user, .ns = ns, .heads = heads, .n = n };

	return sq_run(m, false, read_heads, &a, err);
}

/*
 * Paths of listed entries, remembering the last parent's path: entries in
 * JID order mostly come in runs of siblings, so most cost one join.
 */
struct path_memo {
	int64_t parent;
	char *parent_path;
};

static enum cfs_err entry_path(struct sq_conn *c, int64_t ns,
			       struct path_memo *memo, const struct sq_node *n,
			       char **path, struct cfs_error *err)
{
	enum cfs_err rc;

	if (n->parent == 0) {
		*path = strdup(n->name);
	} else {
		if (!memo->parent_path || memo->parent != n->parent) {
			free(memo->parent_path);
			memo->parent_path = NULL;
			rc = sq_node_path(c, ns, n->parent, &memo->parent_path,
					  err);
			if (rc)
				return rc;
			memo->parent = n->parent;
		}
		*path = malloc(strlen(memo->parent_path) + strlen(n->name) + 2);
		if (*path)
			sprintf(*path, "%s/%s", memo->parent_path, n->name);
	}
	return *path ? CFS_OK
		     : cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
}

static enum cfs_err list_rows(struct sq_conn *c, int64_t ns, int64_t cursor,
			      unsigned limit, meta_entry_fn fn, void *arg,
			      struct meta_page *page, struct cfs_error *err)
{
	struct db_stmt *st =
		db_stmt(c->db,
			"SELECT " SQ_NODE_COLS " FROM nodes"
			" WHERE ns = ?1 AND jid > ?2"
			" AND (?2 > 0 OR kind != 0)"
			" ORDER BY jid LIMIT ?3",
			err, "iii", ns, cursor, (int64_t)limit + 1);
	struct path_memo memo = { 0 };
	enum cfs_err rc = st ? CFS_OK : err->code;
	int64_t last = cursor;
	unsigned count = 0;
	bool row = true;

	page->more = false;
	page->bytes = 0;
	while (rc == CFS_OK && (rc = db_step(c->db, st, &row, err)) == CFS_OK &&
	       row) {
		struct sq_node n;
		char *path = NULL;

		if (count++ == limit) {
			page->more = true;
			break;
		}
		rc = sq_node_from_row(c, st, &n, err);
		if (rc)
			break;
		rc = entry_path(c, ns, &memo, &n, &path, err);
		if (rc == CFS_OK) {
			struct meta_entry e = sq_entry_of(&n, path);

			if (!meta_page_take(page, &e)) {
				page->more = true;
				free(path);
				sq_node_release(&n);
				break;
			}
			rc = fn(arg, &e, err);
			last = n.jid;
		}
		free(path);
		sq_node_release(&n);
	}
	/* A full page continues after its last row; the last page brings
	 * the caller to the head of the snapshot. */
	page->cursor = page->more ? last : page->head;
	free(memo.parent_path);
	return rc;
}

struct list_args {
	const struct meta_user *user;
	int64_t ns;
	int64_t cursor;
	unsigned limit;
	meta_entry_fn fn;
	void *arg;
	struct meta_page *page;
};

/* One read transaction: the head and the rows come from one snapshot, so
 * the cursor handed back is exact. */
static enum cfs_err list_page(struct sq_conn *c, void *arg,
			      struct cfs_error *err)
{
	struct list_args *a = arg;
	enum cfs_err rc = sq_member(c, a->user->id, a->ns, err);

	if (rc == CFS_OK)
		rc = sq_ns_head(c, a->ns, &a->page->head, err);
	if (rc == CFS_OK && (a->cursor < 0 || a->cursor > a->page->head))
		rc = cfs_fail(
			err, CFS_ERR_BAD_CURSOR,
			"cursor %lld is beyond the head %lld of namespace %lld",
			(long long)a->cursor, (long long)a->page->head,
			(long long)a->ns);
	if (rc == CFS_OK)
		rc = list_rows(c, a->ns, a->cursor, a->limit, a->fn, a->arg,
			       a->page, err);
	return rc;
}

enum cfs_err sq_list(struct meta *m, const struct meta_user *user, int64_t ns,
		     int64_t cursor, unsigned limit, meta_entry_fn fn,
		     void *arg, struct meta_page *page, struct cfs_error *err)
{
	struct list_args a = { user, ns, cursor, limit, fn, arg, page };

	return sq_run(m, false, list_page, &a, err);
}
