/*
 * The mirror (cache/mirror.h): what the mount reads of it (entries by
 * inode and by name, folders' listings, paths, namespaces), and the
 * invariants that every file of it keeps.  The rest is in files of its own:
 *
 *	cache/rows.c          the rows beneath it (cache/rows.h): reads,
 *	                      writes, shadows, what the kernel must drop
 *	cache/rows_settle.c   a clean row given the server's state, and what
 *	                      a folder takes with it (invariant 4)
 *	cache/rows_share.c    a folder's subtree and queue moved into the
 *	                      namespace it was shared as (invariant 10)
 *	cache/repath.c        queued operations taken along by a folder the
 *	                      server moved (invariant 11)
 *	cache/mirror_apply.c  a listed page applied (mirror_apply)
 *	cache/ino_set.c       sets of inodes, for the rare subtree walks
 *
 * Invariants:
 *  1. entries holds at most one row per (ns, node); its ino is assigned at
 *     insertion (AUTOINCREMENT: never reused) and kept while the node
 *     lives, through renames and new versions.
 *  2. The root entry is ino 1: node 0 of the root namespace, parent -1;
 *     the server keeps no row for it, so its times are the mirror's birth.
 *  3. namespaces has a row per namespace followed: the root one (mount_ino
 *     1) and one per MOUNT entry of the root namespace (mount_ino: that
 *     entry).  Forgetting a namespace deletes its rows from both tables.
 *  4. A deleted directory's row is removed with its whole subtree, since
 *     the server sends one row for the directory alone; entries of the
 *     subtree with local changes are kept, with the folders that lead to
 *     them, as entries the server does not have (cache/local.c), but for
 *     a leaf only moved in, which keeps its node (the server has it where
 *     it came from).  A kept folder goes once it holds nothing and has
 *     nothing queued: nothing would ever create it on the server.
 *  5. While a listing is paged, a name may briefly be held by two rows of
 *     one directory (the server's order is by JID, not by name); lookups
 *     take the newer.  The mirror converges once listed up to a head.
 *  6. A node whose kind changes (a file replaced by a symlink, a folder
 *     shared and turned into a mount) gets a new inode: the kernel cannot
 *     change an inode's type, nor drop a folder's cached subtree otherwise.
 *  7. An entry with local changes not yet confirmed (pending > 0) shows its
 *     local state; what the server says of it goes to its shadow row, and
 *     comes to the entry once the changes are settled (cache/local.c).
 *  8. A row's JID never goes back: a listed state older than the one the
 *     entry has (the uploader records what it committed) is stale.
 *  9. So that this holds for a node this mount deleted too, its row stays
 *     as a tombstone (kind DELETED, pending 0, at the delete's JID) until
 *     the namespace's cursor reaches that JID: a page listed before the
 *     delete and applied after it cannot bring the node back.
 * 10. A folder of the root namespace that becomes a MOUNT of the same node
 *     was shared (here, by another mount, or through the API): the server
 *     moved its subtree into the shared namespace with its node ids but
 *     new JIDs.  Its subtree moves along, so the folder never shows empty
 *     while the shared namespace is listed, and so do the queued
 *     operations under it, re-addressed within the shared namespace: a
 *     change is never lost to a share.  A queued move of a leaf into the
 *     folder or out of it, which no namespace can do, becomes a create
 *     at its target and a delete of the original.  A moved entry the
 *     server has (node > 0) forgets its JID (0), since the old namespace's
 *     means nothing in the new one: the listing gives it a new one, and
 *     the first complete listing drops a moved entry without local
 *     changes it did not name.  For an entry with local changes, the
 *     first listed state of its node with the bytes of its shadow (the
 *     state its changes are based on) gives its JID back, so its commit
 *     is not a conflict with itself.  Until the shared namespace is
 *     listed, its operations wait (fs/batch.c).
 * 11. A page is applied folders first: a folder's last change may come
 *     after (by JID) the entries it holds now, and an entry is placed by
 *     its folder.  Across pages that cannot be helped: an entry may wait
 *     a page for its folder (an orphan, invisible until then).  A folder
 *     the server moved takes the queued operations under it along to its
 *     new path, at once, or, when its new folder is such a page away, as
 *     soon as the path is known (table repaths).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache/rows.h"
#include "cloudfs/clock.h"

void mirror_entry_release(struct mirror_entry *e)
{
	cfs_blocklist_release(&e->blocks);
	free(e->target);
	e->target = NULL;
}

enum cfs_err mirror_get(struct cfs_sql *db, uint64_t ino,
			struct mirror_entry *e, struct cfs_error *err)
{
	enum cfs_err rc = rows_one(
		db,
		cfs_sql_stmt(db,
			     "SELECT " ROWS_ENTRY_COLS
			     " FROM entries WHERE ino = ?1 AND kind != 0",
			     err, "i", (int64_t)ino),
		e, err);

	if (rc == CFS_ERR_NOT_FOUND)
		cfs_fail(err, rc, "no inode %llu", (unsigned long long)ino);
	return rc;
}

enum cfs_err mirror_lookup(struct cfs_sql *db, const struct mirror_entry *dir,
			   const char *name, struct mirror_entry *e,
			   struct cfs_error *err)
{
	int64_t ns, node;
	enum cfs_err rc = rows_dir_key(dir, &ns, &node, err);

	if (rc)
		return rc;
	rc = rows_one(db,
		      cfs_sql_stmt(db,
				   "SELECT " ROWS_ENTRY_COLS " FROM entries"
				   " WHERE ns = ?1 AND parent = ?2"
				   " AND name = ?3 AND kind != 0"
				   " ORDER BY jid DESC LIMIT 1",
				   err, "iit", ns, node, name),
		      e, err);
	if (rc == CFS_ERR_NOT_FOUND)
		cfs_fail(err, rc, "no entry '%s' in inode %llu", name,
			 (unsigned long long)dir->ino);
	return rc;
}

_Static_assert(CFS_KIND_DIR == 2 && CFS_KIND_MOUNT == 4 && CFS_KIND_LINK == 9,
	       "the indexes entries_subdirs and entries_links (cache/cache.c)"
	       " name these kinds");

enum cfs_err mirror_subdirs(struct cfs_sql *db, const struct mirror_entry *dir,
			    int64_t *n, struct cfs_error *err)
{
	int64_t ns, node;
	bool found;
	enum cfs_err rc = rows_dir_key(dir, &ns, &node, err);

	*n = 0;
	return rc ? rc
		  /* Literal kinds, so that the partial index entries_subdirs
		   * answers (cache/cache.c). */
		  : cfs_sql_int64(db,
				  cfs_sql_stmt(db,
					       "SELECT COUNT(*) FROM entries"
					       " WHERE ns = ?1 AND parent = ?2"
					       " AND kind IN (2, 4)",
					       err, "ii", ns, node),
				  n, &found, err);
}

enum cfs_err mirror_named(struct cfs_sql *db, struct mirror_entry *e,
			  struct cfs_error *err)
{
	struct mirror_entry node;
	enum cfs_err rc;

	if (e->kind != CFS_KIND_LINK)
		return CFS_OK;
	rc = rows_by_node(db, e->ns, e->link_of, &node, err);
	if (rc == CFS_OK &&
	    (node.kind == CFS_KIND_DELETED || node.kind == CFS_KIND_LINK)) {
		mirror_entry_release(&node);
		rc = CFS_ERR_NOT_FOUND;
	}
	if (rc == CFS_ERR_NOT_FOUND)
		return cfs_fail(err, rc, "'%s' names node %lld, not shown",
				e->name, (long long)e->link_of);
	if (rc == CFS_OK) {
		mirror_entry_release(e);
		*e = node;
	}
	return rc;
}

enum cfs_err mirror_names(struct cfs_sql *db, const struct mirror_entry *e,
			  int64_t *n, struct cfs_error *err)
{
	bool found;
	enum cfs_err rc;

	*n = 1;
	if (e->kind == CFS_KIND_DIR || e->kind == CFS_KIND_MOUNT)
		return CFS_OK;
	/*
	 * By the node's row as it is now, not e's node id: e may be read
	 * before the server's answer to the node's creation gave it its id
	 * (rows_set_node() renames its links' link_of with it) or before a
	 * share moved it to another namespace, and the count would miss
	 * every link.  Literal kind, so that the partial index entries_links
	 * answers.
	 */
	rc = cfs_sql_int64(db,
			   cfs_sql_stmt(db,
					"SELECT COUNT(*) FROM entries n"
					" JOIN entries l ON l.ns = n.ns"
					" AND l.link_of = n.node AND l.kind = 9"
					" WHERE n.ino = ?1",
					err, "i", (int64_t)e->ino),
			   n, &found, err);
	*n += 1;
	return rc;
}

enum cfs_err mirror_readdir(struct cfs_sql *db, const struct mirror_entry *dir,
			    uint64_t after, mirror_child_fn fn, void *arg,
			    struct cfs_error *err)
{
	int64_t ns, node;
	sqlite3_stmt *st;
	enum cfs_err rc = rows_dir_key(dir, &ns, &node, err);
	bool more = true;

	if (rc)
		return rc;
	st = cfs_sql_stmt(db,
			  "SELECT " ROWS_ENTRY_COLS
			  " FROM entries WHERE ns = ?1"
			  " AND parent = ?2 AND ino > ?3 AND kind != 0"
			  " ORDER BY ino",
			  err, "iii", ns, node, (int64_t)after);
	while (more && rc == CFS_OK) {
		struct mirror_entry e;

		rc = rows_step(db, st, &e, err);
		if (rc == CFS_ERR_NOT_FOUND)
			return CFS_OK;
		if (rc == CFS_OK) {
			more = fn(arg, &e);
			mirror_entry_release(&e);
		}
	}
	return rc;
}

enum cfs_err mirror_parent(struct cfs_sql *db, const struct mirror_entry *e,
			   uint64_t *ino, struct cfs_error *err)
{
	sqlite3_stmt *st;
	int64_t v;
	bool found;
	enum cfs_err rc;

	if (e->ino == MIRROR_ROOT_INO) {
		*ino = MIRROR_ROOT_INO;
		return CFS_OK;
	}
	if (e->parent == 0)
		st = cfs_sql_stmt(
			db, "SELECT mount_ino FROM namespaces WHERE ns = ?1",
			err, "i", e->ns);
	else
		st = cfs_sql_stmt(db,
				  "SELECT ino FROM entries WHERE ns = ?1"
				  " AND node = ?2",
				  err, "ii", e->ns, e->parent);
	rc = cfs_sql_int64(db, st, &v, &found, err);
	if (rc == CFS_OK && !found)
		rc = cfs_fail(err, CFS_ERR_NOT_FOUND,
			      "the parent of inode %llu is not in the mirror",
			      (unsigned long long)e->ino);
	if (rc == CFS_OK)
		*ino = (uint64_t)v;
	return rc;
}

enum cfs_err mirror_path(struct cfs_sql *db, uint64_t ino, char **path,
			 struct cfs_error *err)
{
	struct mirror_entry e;
	enum cfs_err rc;

	if (ino == MIRROR_ROOT_INO)
		return (*path = strdup("")) ? CFS_OK
					    : cfs_fail(err, CFS_ERR_INTERNAL,
						       "out of memory");
	rc = mirror_get(db, ino, &e, err);
	if (rc)
		return rc; /* e untouched: nothing to release */
	rc = rows_path(db, &e, false, path, err);
	mirror_entry_release(&e);
	return rc;
}

enum cfs_err mirror_address(struct cfs_sql *db, const struct mirror_entry *e,
			    const char *name, int64_t *ns, char **path,
			    struct cfs_error *err)
{
	char *base = NULL;
	enum cfs_err rc = CFS_OK;

	*path = NULL;
	*ns = e->ns;
	if (name && e->kind == CFS_KIND_MOUNT) {
		*ns = e->mount_ns;
		base = strdup("");
	} else if (name && e->kind != CFS_KIND_DIR) {
		return cfs_fail(err, CFS_ERR_NOT_DIR, "'%s' is not a folder",
				e->name);
	} else {
		rc = rows_ns_path(db, e, &base, err);
	}
	if (rc == CFS_OK && base && name && *base) {
		*path = malloc(strlen(base) + strlen(name) + 2);
		if (*path)
			sprintf(*path, "%s/%s", base, name);
	} else if (rc == CFS_OK && base) {
		*path = name ? strdup(name) : base;
		base = name ? base : NULL;
	}
	free(base);
	if (rc == CFS_OK && !*path)
		rc = cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	return rc;
}

enum cfs_err mirror_namespaces(struct cfs_sql *db, struct mirror_ns **list,
			       size_t *n, struct cfs_error *err)
{
	sqlite3_stmt *st = cfs_sql_stmt(db,
					"SELECT ns, cursor, listed FROM"
					" namespaces ORDER BY mount_ino, ns",
					err, "");
	enum cfs_err rc = st ? CFS_OK : err->code;
	size_t cap = 0;
	bool row = true;

	*list = NULL;
	*n = 0;
	while (rc == CFS_OK &&
	       (rc = cfs_sql_step(db, st, &row, err)) == CFS_OK && row) {
		if (*n == cap) {
			void *p = realloc(*list,
					  (cap = cap * 2 + 8) * sizeof(**list));

			if (!p) {
				rc = cfs_fail(err, CFS_ERR_INTERNAL,
					      "out of memory");
				break;
			}
			*list = p;
		}
		(*list)[(*n)++] = (struct mirror_ns){
			.ns = sqlite3_column_int64(st, 0),
			.cursor = sqlite3_column_int64(st, 1),
			.listed = sqlite3_column_int(st, 2) != 0,
		};
	}
	if (rc) {
		free(*list);
		*list = NULL;
		*n = 0;
	}
	return rc;
}

enum cfs_err mirror_ns_get(struct cfs_sql *db, int64_t ns, struct mirror_ns *m,
			   struct cfs_error *err)
{
	sqlite3_stmt *st = cfs_sql_stmt(db,
					"SELECT cursor, listed FROM namespaces"
					" WHERE ns = ?1",
					err, "i", ns);
	enum cfs_err rc = st ? CFS_OK : err->code;
	bool row = false;

	if (rc == CFS_OK)
		rc = cfs_sql_step(db, st, &row, err);
	if (rc == CFS_OK && row)
		*m = (struct mirror_ns){
			.ns = ns,
			.cursor = sqlite3_column_int64(st, 0),
			.listed = sqlite3_column_int(st, 1) != 0,
		};
	/* Reset: stopped at its row, it would keep its read snapshot, and a
	 * write transaction begun on this connection after another's write
	 * would fail at once ("database is locked"). */
	if (st)
		sqlite3_reset(st);
	return rc == CFS_OK && !row ? CFS_ERR_NOT_FOUND : rc;
}

enum cfs_err mirror_init_root(struct cfs_sql *db, int64_t root_ns,
			      struct cfs_error *err)
{
	enum cfs_err rc;

	rc = cfs_sql_exec(db,
			  "INSERT INTO entries(ino, ns, node, parent, name,"
			  " kind, size, atime_ns, mtime_ns, ctime_ns, mode,"
			  " jid) VALUES (1, ?1, 0, -1, '', ?2, 0, ?3, ?3, ?3,"
			  " 493, 0)",
			  err, "iii", root_ns, (int64_t)CFS_KIND_DIR,
			  (int64_t)time(NULL) * 1000000000);
	if (rc == CFS_OK)
		rc = cfs_sql_exec(db,
				  "INSERT INTO namespaces(ns, mount_ino)"
				  " VALUES (?1, 1)",
				  err, "i", root_ns);
	return rc;
}

void mirror_changes_release(struct mirror_changes *ch)
{
	for (size_t i = 0; i < ch->n; i++)
		free(ch->v[i].name);
	free(ch->v);
	*ch = (struct mirror_changes){ 0 };
}

enum cfs_err mirror_touch_dirs(struct cfs_sql *db, uint64_t a, uint64_t b,
			       struct cfs_error *err)
{
	int64_t now = cfs_now_ns();

	/* Later than before even when the clock is not: the kernel's cache
	 * of a listing is good while the folder's mtime stays the same
	 * (fs/invalidate.c). */
	return cfs_sql_exec(
		db,
		"UPDATE entries SET mtime_ns = MAX(?3, mtime_ns + 1),"
		" ctime_ns = MAX(?3, ctime_ns + 1)"
		" WHERE ino IN (?1, ?2) AND kind IN (?4, ?5)",
		err, "iiiii", (int64_t)a, (int64_t)b, now,
		(int64_t)CFS_KIND_DIR, (int64_t)CFS_KIND_MOUNT);
}

enum cfs_err mirror_forget_ns(struct cfs_sql *db, int64_t ns,
			      struct cfs_error *err)
{
	enum cfs_err rc = cfs_sql_begin(db, true, err);

	rc = rc ? rc : rows_forget_ns(db, ns, err);
	return cfs_sql_end(db, rc, err);
}
