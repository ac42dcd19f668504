/*
 * The mirror (cache/mirror.h) and the rows beneath it (cache/rows.h).
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
 *     listed, its operations wait (fs/upload.c).
 * 11. A page is applied folders first: a folder's last change may come
 *     after (by JID) the entries it holds now, and an entry is placed by
 *     its folder.  Across pages that cannot be helped: an entry may wait
 *     a page for its folder (an orphan, invisible until then).  A folder
 *     the server moved takes the queued operations under it along to its
 *     new path, at once, or, when its new folder is such a page away, as
 *     soon as the path is known (table repaths).
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache/pending.h"
#include "cache/rows.h"
#include "cloudfs/clock.h"

void mirror_entry_release(struct mirror_entry *e)
{
	cfs_blocklist_release(&e->blocks);
	free(e->target);
	e->target = NULL;
}

static enum cfs_err entry_from_row(sqlite3_stmt *st, struct mirror_entry *e,
				   struct cfs_error *err)
{
	const char *target = (const char *)sqlite3_column_text(st, 10);

	*e = (struct mirror_entry){
		.ino = (uint64_t)sqlite3_column_int64(st, 0),
		.ns = sqlite3_column_int64(st, 1),
		.node = sqlite3_column_int64(st, 2),
		.parent = sqlite3_column_int64(st, 3),
		.kind = (enum cfs_kind)sqlite3_column_int(st, 5),
		.size = (uint64_t)sqlite3_column_int64(st, 6),
		.mtime_ns = sqlite3_column_int64(st, 7),
		.mode = (uint32_t)sqlite3_column_int(st, 8),
		.mount_ns = sqlite3_column_int64(st, 11),
		.jid = sqlite3_column_int64(st, 12),
		.pending = sqlite3_column_int64(st, 13),
		.atime_ns = sqlite3_column_int64(st, 14),
		.ctime_ns = sqlite3_column_int64(st, 15),
		.link_of = sqlite3_column_int64(st, 16),
	};
	snprintf(e->name, sizeof(e->name), "%s",
		 (const char *)sqlite3_column_text(st, 4));
	if (cfs_blocklist_from_raw(sqlite3_column_blob(st, 9),
				   (size_t)sqlite3_column_bytes(st, 9),
				   &e->blocks))
		return cfs_fail(err, CFS_ERR_INTERNAL,
				"inode %llu has a corrupt block list",
				(unsigned long long)e->ino);
	if (target && !(e->target = strdup(target))) {
		mirror_entry_release(e);
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	}
	return CFS_OK;
}

enum cfs_err rows_step(struct cfs_sql *db, sqlite3_stmt *st,
		       struct mirror_entry *e, struct cfs_error *err)
{
	enum cfs_err rc;
	bool row;

	if (!st)
		return err->code;
	rc = cfs_sql_step(db, st, &row, err);
	if (rc)
		return rc;
	return row ? entry_from_row(st, e, err) : CFS_ERR_NOT_FOUND;
}

enum cfs_err rows_one(struct cfs_sql *db, sqlite3_stmt *st,
		      struct mirror_entry *e, struct cfs_error *err)
{
	enum cfs_err rc = rows_step(db, st, e, err);

	if (st)
		sqlite3_reset(st);
	return rc;
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

enum cfs_err rows_by_node(struct cfs_sql *db, int64_t ns, int64_t node,
			  struct mirror_entry *e, struct cfs_error *err)
{
	return rows_one(db,
			cfs_sql_stmt(db,
				     "SELECT " ROWS_ENTRY_COLS " FROM entries"
				     " WHERE ns = ?1 AND node = ?2",
				     err, "ii", ns, node),
			e, err);
}

enum cfs_err rows_child(struct cfs_sql *db, const struct mirror_entry *dir,
			const char *name, struct mirror_entry *e, bool *found,
			struct cfs_error *err)
{
	enum cfs_err rc = mirror_lookup(db, dir, name, e, err);

	*found = rc == CFS_OK;
	return rc == CFS_ERR_NOT_FOUND ? CFS_OK : rc;
}

enum cfs_err rows_by_ino(struct cfs_sql *db, uint64_t ino,
			 struct mirror_entry *e, struct cfs_error *err)
{
	return rows_one(db,
			cfs_sql_stmt(db,
				     "SELECT " ROWS_ENTRY_COLS
				     " FROM entries WHERE ino = ?1",
				     err, "i", (int64_t)ino),
			e, err);
}

/* Where the children of directory entry dir live: (ns, parent node). */
static bool dir_key(const struct mirror_entry *dir, int64_t *ns, int64_t *node)
{
	if (dir->kind == CFS_KIND_MOUNT) {
		*ns = dir->mount_ns;
		*node = 0;
		return true;
	}
	*ns = dir->ns;
	*node = dir->node;
	return dir->kind == CFS_KIND_DIR;
}

enum cfs_err rows_dir_key(const struct mirror_entry *dir, int64_t *ns,
			  int64_t *node, struct cfs_error *err)
{
	if (!dir_key(dir, ns, node))
		return cfs_fail(err, CFS_ERR_NOT_DIR,
				"inode %llu is not a directory",
				(unsigned long long)dir->ino);
	return CFS_OK;
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

/* Names from e up to (not including) stop_at_ns_root or the mount root,
 * joined with '/'. */
static enum cfs_err path_of(struct cfs_sql *db, const struct mirror_entry *e,
			    bool within_ns, char **path, struct cfs_error *err)
{
	char buf[CFS_PATH_MAX + 1];
	size_t start = sizeof(buf) - 1;
	struct mirror_entry cur = { .ino = e->ino,
				    .ns = e->ns,
				    .parent = e->parent };
	enum cfs_err rc = CFS_OK;

	snprintf(cur.name, sizeof(cur.name), "%s", e->name);
	buf[start] = '\0';
	for (int depth = 0; cur.ino != MIRROR_ROOT_INO; depth++) {
		size_t len = strlen(cur.name);
		uint64_t parent;

		if (len + 1 > start || depth > CFS_PATH_MAX / 2) {
			rc = cfs_fail(err, CFS_ERR_BAD_PATH,
				      "the path of inode %llu is too long",
				      (unsigned long long)e->ino);
			break;
		}
		if (start < sizeof(buf) - 1)
			buf[--start] = '/';
		start -= len;
		memcpy(buf + start, cur.name, len);
		if (within_ns && cur.parent == 0)
			break;
		rc = mirror_parent(db, &cur, &parent, err);
		mirror_entry_release(&cur);
		if (rc == CFS_OK)
			rc = mirror_get(db, parent, &cur, err);
		if (rc)
			break;
	}
	mirror_entry_release(&cur);
	*path = rc ? NULL : strdup(buf + start);
	if (rc == CFS_OK && !*path)
		rc = cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
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
	rc = path_of(db, &e, false, path, err);
	mirror_entry_release(&e);
	return rc;
}

enum cfs_err rows_ns_path(struct cfs_sql *db, const struct mirror_entry *e,
			  char **path, struct cfs_error *err)
{
	return path_of(db, e, true, path, err);
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

enum cfs_err rows_note_children(struct mirror_changes *ch, uint64_t dir,
				struct cfs_error *err)
{
	enum cfs_err rc = rows_note(ch, dir, 0, NULL, err);

	if (rc == CFS_OK)
		ch->v[ch->n - 1].children = true;
	return rc;
}

enum cfs_err rows_note(struct mirror_changes *ch, uint64_t ino, uint64_t parent,
		       const char *name, struct cfs_error *err)
{
	if (ch->n == ch->cap) {
		size_t cap = ch->cap ? 2 * ch->cap : 64;
		void *p = realloc(ch->v, cap * sizeof(ch->v[0]));

		if (!p)
			return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
		ch->v = p;
		ch->cap = cap;
	}
	ch->v[ch->n] = (struct mirror_inval){ .ino = ino, .parent = parent };
	if (name && !(ch->v[ch->n].name = strdup(name)))
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	ch->n++;
	return CFS_OK;
}

bool rows_same_content(const struct mirror_entry *a,
		       const struct mirror_entry *b)
{
	return a->kind == b->kind && a->size == b->size &&
	       a->atime_ns == b->atime_ns && a->mtime_ns == b->mtime_ns &&
	       a->ctime_ns == b->ctime_ns && a->mode == b->mode &&
	       a->mount_ns == b->mount_ns && a->link_of == b->link_of &&
	       cfs_blocklist_equal(&a->blocks, &b->blocks) &&
	       (a->target == b->target ||
		(a->target && b->target && strcmp(a->target, b->target) == 0));
}

enum cfs_err rows_note_named(struct cfs_sql *db, const struct mirror_entry *e,
			     struct mirror_changes *ch, struct cfs_error *err)
{
	int64_t ino;
	bool found = false;
	enum cfs_err rc;

	if (e->kind != CFS_KIND_LINK)
		return CFS_OK;
	rc = cfs_sql_int64(db,
			   cfs_sql_stmt(db,
					"SELECT ino FROM entries"
					" WHERE ns = ?1 AND node = ?2",
					err, "ii", e->ns, e->link_of),
			   &ino, &found, err);
	return rc || !found ? rc : rows_note(ch, (uint64_t)ino, 0, NULL, err);
}

enum cfs_err rows_note_change(struct cfs_sql *db,
			      const struct mirror_entry *old,
			      const struct mirror_entry *e,
			      struct mirror_changes *ch, struct cfs_error *err)
{
	uint64_t parent_ino = 0, to_ino = 0;
	enum cfs_err rc = mirror_parent(db, old, &parent_ino, err);
	bool placed = e->kind != old->kind || old->parent != e->parent ||
		      strcmp(old->name, e->name) != 0;
	bool named;

	if (rc == CFS_ERR_NOT_FOUND)
		rc = CFS_OK; /* an orphan: the kernel never saw it */
	if (rc == CFS_OK && parent_ino && placed)
		rc = rows_note(ch, old->ino, parent_ino, old->name, err);
	/* Its new folder lists one more. */
	if (rc == CFS_OK && e->kind != CFS_KIND_DELETED &&
	    old->parent != e->parent) {
		rc = mirror_parent(db, e, &to_ino, err);
		if (rc == CFS_OK)
			rc = rows_note_children(ch, to_ino, err);
		else if (rc == CFS_ERR_NOT_FOUND)
			rc = CFS_OK; /* not listed yet: new to the kernel */
	}
	if (rc == CFS_OK && !rows_same_content(old, e))
		rc = rows_note(ch, old->ino, 0, NULL, err);
	/* A name came or went: the node's link count changed. */
	named = old->kind != e->kind || old->link_of != e->link_of;
	if (rc == CFS_OK && named)
		rc = rows_note_named(db, old, ch, err);
	if (rc == CFS_OK && named)
		rc = rows_note_named(db, e, ch, err);
	return rc;
}

/* Invariant 3: a namespace goes with its mount. */
enum cfs_err rows_forget_ns(struct cfs_sql *db, int64_t ns,
			    struct cfs_error *err)
{
	enum cfs_err rc;

	rc = cfs_sql_exec(db, "DELETE FROM entries WHERE ns = ?1", err, "i",
			  ns);
	if (rc == CFS_OK)
		rc = cfs_sql_exec(db, "DELETE FROM namespaces WHERE ns = ?1",
				  err, "i", ns);
	return rc;
}

enum cfs_err rows_set_node(struct cfs_sql *db, uint64_t ino, int64_t ns,
			   int64_t old_node, int64_t node,
			   struct cfs_error *err)
{
	enum cfs_err rc;

	rc = cfs_sql_exec(db, "UPDATE entries SET node = ?2 WHERE ino = ?1",
			  err, "ii", (int64_t)ino, node);
	if (rc == CFS_OK)
		rc = cfs_sql_exec(db,
				  "UPDATE entries SET parent = ?3"
				  " WHERE ns = ?1 AND parent = ?2",
				  err, "iii", ns, old_node, node);
	/* The node's further names name it by its new id too. */
	if (rc == CFS_OK)
		rc = cfs_sql_exec(
			db,
			"UPDATE entries SET link_of = ?3"
			" WHERE ns = ?1 AND link_of = ?2 AND kind = 9",
			err, "iii", ns, old_node, node);
	if (rc == CFS_OK)
		rc = cfs_sql_exec(
			db,
			"UPDATE shadow SET link_of = ?3 WHERE link_of = ?2"
			" AND EXISTS (SELECT 1 FROM entries e"
			" WHERE e.ino = shadow.ino AND e.ns = ?1)",
			err, "iii", ns, old_node, node);
	/* Checked row by row: "ino IN (SELECT ... WHERE ns = ?1)" listed
	 * every entry of the namespace at each confirmed create. */
	if (rc == CFS_OK)
		rc = cfs_sql_exec(
			db,
			"UPDATE shadow SET parent = ?3 WHERE parent = ?2"
			" AND EXISTS (SELECT 1 FROM entries e"
			" WHERE e.ino = shadow.ino AND e.ns = ?1)",
			err, "iii", ns, old_node, node);
	return rc;
}

/* A small set of inode numbers, for the rare subtree walks below. */
struct ino_set {
	uint64_t *v;
	size_t n, cap;
};

static bool ino_set_has(const struct ino_set *set, uint64_t ino)
{
	for (size_t i = 0; i < set->n; i++)
		if (set->v[i] == ino)
			return true;
	return false;
}

static enum cfs_err ino_set_add(struct ino_set *set, uint64_t ino,
				struct cfs_error *err)
{
	if (set->n == set->cap) {
		void *p = realloc(set->v, (set->cap = 2 * set->cap + 16) *
						  sizeof(set->v[0]));

		if (!p)
			return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
		set->v = p;
	}
	set->v[set->n++] = ino;
	return CFS_OK;
}

/* The inodes selected by st (first column) into set. */
static enum cfs_err ino_set_fill(struct cfs_sql *db, sqlite3_stmt *st,
				 struct ino_set *set, struct cfs_error *err)
{
	enum cfs_err rc = st ? CFS_OK : err->code;
	bool row = true;

	while (rc == CFS_OK &&
	       (rc = cfs_sql_step(db, st, &row, err)) == CFS_OK && row)
		rc = ino_set_add(set, (uint64_t)sqlite3_column_int64(st, 0),
				 err);
	return rc;
}

/*
 * Invariant 4: of a deleted folder's subtree (below node top), the
 * entries to keep: those with local changes and the folders on their way
 * up to top.
 */
static enum cfs_err subtree_keep(struct cfs_sql *db, int64_t ns, int64_t top,
				 struct ino_set *keep, struct cfs_error *err)
{
	struct ino_set dirty = { 0 };
	enum cfs_err rc =
		ino_set_fill(db,
			     cfs_sql_stmt(db,
					  ROWS_SUBTREE_CTE
					  "SELECT e.ino FROM entries e JOIN sub"
					  " ON e.ns = ?1 AND e.node = sub.node"
					  " WHERE e.pending > 0",
					  err, "ii", ns, top),
			     &dirty, err);

	for (size_t i = 0; rc == CFS_OK && i < dirty.n; i++) {
		uint64_t ino = dirty.v[i];

		while (rc == CFS_OK && !ino_set_has(keep, ino)) {
			struct mirror_entry e;

			rc = ino_set_add(keep, ino, err);
			if (rc == CFS_OK)
				rc = rows_one(
					db,
					cfs_sql_stmt(db,
						     "SELECT " ROWS_ENTRY_COLS
						     " FROM entries"
						     " WHERE ino = ?1",
						     err, "i", (int64_t)ino),
					&e, err);
			if (rc)
				break;
			if (e.parent != top)
				rc = mirror_parent(db, &e, &ino, err);
			mirror_entry_release(&e);
			if (e.parent == top)
				break;
		}
	}
	free(dirty.v);
	return rc;
}

/* The folders kept of a deleted subtree are no longer on the server: they
 * take node ids of their own until they are created again. */
enum cfs_err rows_localize(struct cfs_sql *db, uint64_t ino,
			   struct cfs_error *err)
{
	struct mirror_entry e = { 0 };
	enum cfs_err rc = rows_by_ino(db, ino, &e, err);

	if (rc == CFS_OK && e.node > 0)
		rc = rows_set_node(db, ino, e.ns, e.node, -(int64_t)ino, err);
	if (rc == CFS_OK)
		rc = cfs_sql_exec(db,
				  "UPDATE entries SET jid = 0 WHERE ino = ?1",
				  err, "i", (int64_t)ino);
	mirror_entry_release(&e);
	return rc;
}

/* The subtree below node of ns: with some entries to keep, all its
 * inodes into *all (the caller sorts them out); without, it goes whole. */
static enum cfs_err subtree_all_or_drop(struct cfs_sql *db, int64_t ns,
					int64_t node, bool keep_some,
					struct ino_set *all,
					struct cfs_error *err)
{
	if (!keep_some)
		return cfs_sql_exec(
			db,
			"DELETE FROM entries WHERE ns = ?1 AND node IN"
			" (" ROWS_SUBTREE_CTE "SELECT node FROM sub)",
			err, "ii", ns, node);
	return ino_set_fill(db,
			    cfs_sql_stmt(db,
					 ROWS_SUBTREE_CTE
					 "SELECT e.ino FROM entries e JOIN sub"
					 " ON e.ns = ?1 AND e.node = sub.node",
					 err, "ii", ns, node),
			    all, err);
}

/* Invariant 4: removes the descendants of node, forgets the shared
 * namespaces mounted among them; *kept tells whether some stay.  A kept
 * leaf that was only moved in here keeps its node: the server has it
 * where it was moved from (its shadow), and there it goes back when its
 * move, which cannot be done now, is refused. */
static enum cfs_err drop_subtree(struct cfs_sql *db, int64_t ns, int64_t node,
				 bool *kept, struct cfs_error *err)
{
	struct ino_set keep = { 0 }, all = { 0 }, moved_in = { 0 };
	sqlite3_stmt *st;
	enum cfs_err rc = CFS_OK;
	bool row = true;

	/* One mount at a time: forgetting it changes what st reads. */
	while (rc == CFS_OK && row) {
		st = cfs_sql_stmt(db,
				  ROWS_SUBTREE_CTE
				  "SELECT e.mount_ns FROM entries e"
				  " JOIN sub ON e.ns = ?1"
				  " AND e.node = sub.node"
				  " WHERE e.kind = 4 LIMIT 1",
				  err, "ii", ns, node);
		rc = st ? cfs_sql_step(db, st, &row, err) : err->code;
		if (rc == CFS_OK && row)
			rc = rows_forget_ns(db, sqlite3_column_int64(st, 0),
					    err);
	}
	if (rc == CFS_OK)
		rc = subtree_keep(db, ns, node, &keep, err);
	if (rc == CFS_OK && keep.n)
		rc = ino_set_fill(
			db,
			cfs_sql_stmt(
				db,
				ROWS_SUBTREE_CTE
				"SELECT e.ino FROM entries e JOIN sub"
				" ON e.ns = ?1 AND e.node = sub.node"
				" JOIN shadow s ON s.ino = e.ino"
				" WHERE e.pending > 0 AND e.node > 0"
				" AND e.kind IN (1, 3, 5, 6, 7, 8)"
				" AND s.kind != 0 AND s.parent != ?2"
				" AND s.parent NOT IN (SELECT node FROM sub)"
				" AND NOT EXISTS (SELECT 1 FROM ops o"
				" WHERE o.ino = e.ino AND o.type != ?3)",
				err, "iii", ns, node, (int64_t)QUEUE_MOVE),
			&moved_in, err);
	*kept = keep.n > 0;
	/* Rare: local changes in a folder deleted elsewhere. */
	if (rc == CFS_OK)
		rc = subtree_all_or_drop(db, ns, node, *kept, &all, err);
	for (size_t i = 0; rc == CFS_OK && i < all.n; i++)
		rc = ino_set_has(&keep, all.v[i])
			     ? CFS_OK
			     : rows_delete(db, all.v[i], err);
	for (size_t i = 0; rc == CFS_OK && i < keep.n; i++)
		rc = ino_set_has(&moved_in, keep.v[i])
			     ? CFS_OK
			     : rows_localize(db, keep.v[i], err);
	free(keep.v);
	free(all.v);
	free(moved_in.v);
	return rc;
}

/*
 * Invariant 4: folder node of ns and those above it that were kept only
 * for what they held (local entries, node < 0, with nothing pending or
 * queued of their own) go once they hold nothing: the server has none
 * of them, and nothing queued would make it.  Kept, such a folder showed
 * for good in this mount alone.
 */
static enum cfs_err prune_kept(struct cfs_sql *db, int64_t ns, int64_t node,
			       struct mirror_changes *ch, struct cfs_error *err)
{
	enum cfs_err rc = CFS_OK;

	while (rc == CFS_OK && node < 0) {
		struct mirror_entry e, gone;
		int64_t busy = 1;
		bool found = false;

		if (rows_by_node(db, ns, node, &e, err) != CFS_OK)
			break;
		if (e.kind == CFS_KIND_DIR && e.pending == 0)
			rc = cfs_sql_int64(
				db,
				cfs_sql_stmt(
					db,
					"SELECT EXISTS(SELECT 1 FROM entries"
					" WHERE ns = ?1 AND parent = ?2)"
					" OR EXISTS(SELECT 1 FROM ops"
					" WHERE ino = ?3)",
					err, "iii", ns, node, (int64_t)e.ino),
				&busy, &found, err);
		gone = e;
		gone.kind = CFS_KIND_DELETED;
		if (rc == CFS_OK && !busy)
			rc = rows_note_change(db, &e, &gone, ch, err);
		if (rc == CFS_OK && !busy)
			rc = rows_delete(db, e.ino, err);
		node = busy ? 0 : e.parent;
		mirror_entry_release(&e);
	}
	return rc;
}

/* Moves kept entry ino of the subtree below node top into namespace ns,
 * whose root top becomes (invariant 10). */
static enum cfs_err rehome(struct cfs_sql *db, uint64_t ino, int64_t top,
			   int64_t ns, struct cfs_error *err)
{
	enum cfs_err rc;

	rc = cfs_sql_exec(db,
			  "UPDATE entries SET ns = ?2, jid = 0,"
			  " parent = CASE parent WHEN ?3 THEN 0"
			  " ELSE parent END WHERE ino = ?1",
			  err, "iii", (int64_t)ino, ns, top);
	if (rc == CFS_OK)
		rc = cfs_sql_exec(db,
				  "UPDATE shadow SET jid = 0,"
				  " parent = CASE parent WHEN ?2 THEN 0"
				  " ELSE parent END WHERE ino = ?1",
				  err, "ii", (int64_t)ino, top);
	return rc;
}

/*
 * Invariant 9: the queued operations of namespace ns under folder path
 * (both paths, for a move) now go to namespace to, relative to its root.
 * A move with one side outside the folder stays: it crosses namespaces
 * now, and the server refuses it.
 */
static enum cfs_err requeue_into(struct cfs_sql *db, int64_t ns,
				 const char *path, int64_t to,
				 struct cfs_error *err)
{
	return cfs_sql_exec(
		db,
		"UPDATE ops SET ns = ?3, path = substr(path, length(?2) + 2),"
		" to_path = substr(to_path, length(?2) + 2)"
		" WHERE ns = ?1 AND substr(path, 1, length(?2) + 1) = ?2 || '/'"
		" AND (to_path IS NULL"
		" OR substr(to_path, 1, length(?2) + 1) = ?2 || '/')",
		err, "iti", ns, path, to);
}

/* The one queued operation of entry ino in ns that crosses the edge of
 * folder path (one side under it, the other not): *seq, 0 when there is
 * none, or more than one (then nothing is split: left as it was). */
static enum cfs_err crossing_op(struct cfs_sql *db, uint64_t ino, int64_t ns,
				const char *path, int64_t *seq,
				struct cfs_error *err)
{
	sqlite3_stmt *st = cfs_sql_stmt(
		db,
		"SELECT seq, type FROM ops WHERE ino = ?1 AND ns = ?2"
		" AND to_path IS NOT NULL"
		" AND (substr(path, 1, length(?3) + 1) = ?3 || '/')"
		" != (substr(to_path, 1, length(?3) + 1) = ?3 || '/')",
		err, "iit", (int64_t)ino, ns, path);
	enum cfs_err rc = st ? CFS_OK : err->code;
	bool row = false;
	int n = 0;

	*seq = 0;
	while (rc == CFS_OK &&
	       (rc = cfs_sql_step(db, st, &row, err)) == CFS_OK && row) {
		n++;
		if (sqlite3_column_int(st, 1) == QUEUE_MOVE)
			*seq = sqlite3_column_int64(st, 0);
	}
	if (st)
		sqlite3_reset(st);
	if (n != 1)
		*seq = 0;
	return rc;
}

/* The ord of the first queued operation after ord (ord + 1 when none). */
static enum cfs_err ord_after(struct cfs_sql *db, double ord, double *next,
			      struct cfs_error *err)
{
	sqlite3_stmt *st = cfs_sql_stmt(
		db, "SELECT COALESCE(MIN(ord), ?1 + 2) FROM ops WHERE ord > ?1",
		err, "d", ord);
	enum cfs_err rc = st ? CFS_OK : err->code;
	bool row = false;

	if (rc == CFS_OK)
		rc = cfs_sql_step(db, st, &row, err);
	*next = rc == CFS_OK && row ? sqlite3_column_double(st, 0) : ord + 2;
	if (st)
		sqlite3_reset(st);
	return rc;
}

/*
 * Invariant 10, a move into the folder or out of it: leaf entry ino (a
 * file, a symlink) was moved into folder path (node top) of ns locally,
 * or out of it, and that move, still queued, would cross between ns and
 * shared namespace to, which no move can do (the server refuses it as
 * cross_namespace).  The user moved the entry: it must end there, with
 * its name, and never as a conflicted copy of its own change.  So the
 * move becomes what the server can do: the entry, as it was when moved,
 * created at its place (in to for a move in, in ns for a move out; the
 * server holds its blocks already), where it goes from now on as a new
 * entry; then, if the server has the original, its delete where the
 * server has it now (in ns for a move in, in to for a move out), based on
 * the version this mount last saw, as a removed entry of its own.
 * Another device's edit of the original since is kept: the delete is
 * then refused, and the original shows again.  All in the listing's
 * transaction: a crash leaves the queue as it was or as it is now.  A
 * folder moved in or out is left as it was (refused, it stays where the
 * server has it).
 */
static enum cfs_err split_crossing_move(struct cfs_sql *db, uint64_t ino,
					int64_t ns, const char *path,
					int64_t top, int64_t to,
					struct cfs_error *err)
{
	struct mirror_entry x, s = { 0 }, g = { 0 };
	struct queued_op del = { .type = QUEUE_DELETE };
	int64_t seq = 0, leaf_seq = 0, others = 0, k = 0, made = 0;
	uint64_t g_ino = 0;
	double ord = 0, next = 0;
	bool found = false, on_server, out = false;
	char *first = NULL, *to_path = NULL;
	sqlite3_stmt *st;
	enum cfs_err rc = rows_by_ino(db, ino, &x, err);

	if (rc)
		return rc;
	if (x.kind != CFS_KIND_FILE && x.kind != CFS_KIND_SYMLINK &&
	    !cfs_kind_is_special(x.kind)) {
		mirror_entry_release(&x);
		return CFS_OK;
	}
	rc = crossing_op(db, ino, ns, path, &seq, err);
	if (rc || !seq) {
		mirror_entry_release(&x);
		return rc;
	}
	/* Its target, relative to the namespace it lands in. */
	st = cfs_sql_stmt(
		db,
		"SELECT ord, substr(path, 1, length(?2) + 1) = ?2 || '/',"
		" CASE WHEN substr(path, 1, length(?2) + 1) = ?2 || '/'"
		" THEN to_path ELSE substr(to_path, length(?2) + 2) END"
		" FROM ops WHERE seq = ?1",
		err, "it", seq, path);
	rc = st ? CFS_OK : err->code;
	if (rc == CFS_OK)
		rc = cfs_sql_step(db, st, &found, err);
	if (rc == CFS_OK && found) {
		ord = sqlite3_column_double(st, 0);
		out = sqlite3_column_int(st, 1) != 0;
		to_path = strdup((const char *)sqlite3_column_text(st, 2));
		if (!to_path)
			rc = cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	}
	if (st)
		sqlite3_reset(st);
	if (rc || !to_path) {
		mirror_entry_release(&x);
		return rc;
	}
	/* Only leaf changes and moves before it (a link waits its turn). */
	rc = cfs_sql_int64(
		db,
		cfs_sql_stmt(db,
			     "SELECT COUNT(*) FROM ops WHERE ino = ?1"
			     " AND ns = ?2 AND ord < ?3"
			     " AND type NOT IN (?4, ?5, ?6, ?7)",
			     err, "iidiiii", (int64_t)ino, ns, ord,
			     (int64_t)QUEUE_FILE, (int64_t)QUEUE_SYMLINK,
			     (int64_t)QUEUE_SPECIAL, (int64_t)QUEUE_MOVE),
		&others, &found, err);
	if (rc == CFS_OK && others == 0)
		rc = cfs_sql_int64(
			db,
			cfs_sql_stmt(
				db,
				"SELECT seq FROM ops WHERE ino = ?1"
				" AND ns = ?2 AND ord < ?3"
				" AND type != ?4 ORDER BY ord DESC LIMIT 1",
				err, "iidi", (int64_t)ino, ns, ord,
				(int64_t)QUEUE_MOVE),
			&leaf_seq, &found, err);
	if (rc == CFS_OK && others == 0) {
		st = cfs_sql_stmt(db,
				  "SELECT path FROM ops WHERE ino = ?1"
				  " AND ns = ?2 ORDER BY ord LIMIT 1",
				  err, "ii", (int64_t)ino, ns);
		rc = st ? CFS_OK : err->code;
		if (rc == CFS_OK)
			rc = cfs_sql_step(db, st, &found, err);
		if (rc == CFS_OK && found &&
		    !(first = strdup((const char *)sqlite3_column_text(st, 0))))
			rc = cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
		if (st)
			sqlite3_reset(st);
	}
	if (rc == CFS_OK && others == 0)
		rc = cfs_sql_int64(
			db,
			cfs_sql_stmt(db,
				     "SELECT COUNT(*) FROM ops WHERE ino = ?1"
				     " AND ns = ?2 AND ord <= ?3",
				     err, "iid", (int64_t)ino, ns, ord),
			&k, &found, err);
	if (rc || others || !first)
		goto out;
	/* Moved out, the original is in to now, at first below the folder. */
	if (out && (strncmp(first, path, strlen(path)) != 0 ||
		    first[strlen(path)] != '/'))
		goto out;
	if (out)
		memmove(first, first + strlen(path) + 1,
			strlen(first + strlen(path) + 1) + 1);
	/* The server's state of the original, which its delete is based on. */
	on_server = x.node > 0;
	if (on_server) {
		rc = rows_shadow_get(db, ino, &s, err);
		if (rc == CFS_ERR_NOT_FOUND) {
			rc = CFS_OK;
			on_server = false;
		}
		on_server = on_server && s.kind != CFS_KIND_DELETED;
	}
	/* The create, in the move's turn, as the entry was then. */
	if (rc == CFS_OK && leaf_seq)
		rc = cfs_sql_exec(
			db,
			"INSERT INTO ops(ord, ino, ns, type, kind, path, size,"
			" mtime_ns, mode, blocks, target, atime_ns, ctime_ns)"
			" SELECT ?2, ino, ?3, type, kind, ?4, size, mtime_ns,"
			" mode, blocks, target, atime_ns, ctime_ns FROM ops"
			" WHERE seq = ?1",
			err, "idit", leaf_seq, ord, out ? ns : to, to_path);
	if (rc == CFS_OK && !leaf_seq) {
		struct queued_op c = {
			.ino = ino,
			.ns = out ? ns : to,
			.type = s.kind == CFS_KIND_SYMLINK    ? QUEUE_SYMLINK
				: cfs_kind_is_special(s.kind) ? QUEUE_SPECIAL
							      : QUEUE_FILE,
			.kind = s.kind,
			.path = to_path,
			.size = s.size,
			.mtime_ns = s.mtime_ns,
			.mode = s.mode,
			.blocks = s.blocks,
			.target = s.target,
			.atime_ns = x.atime_ns,
			.ctime_ns = x.ctime_ns,
		};
		/* Nothing queued changed it: the server's state it has. */
		if (!on_server)
			goto out;
		rc = pending_enqueue(db, &c, ord, err);
	}
	/* What it replaces goes; not itself, in ns for a move out. */
	made = sqlite3_last_insert_rowid(db->db);
	if (rc == CFS_OK)
		rc = cfs_sql_exec(db,
				  "DELETE FROM ops WHERE ino = ?1 AND ns = ?2"
				  " AND ord <= ?3 AND seq != ?4",
				  err, "iidi", (int64_t)ino, ns, ord, made);
	if (rc == CFS_OK)
		rc = cfs_sql_exec(db,
				  "UPDATE entries SET pending = pending - ?2"
				  " WHERE ino = ?1",
				  err, "ii", (int64_t)ino, k - 1);
	/* The entry is new in the shared namespace: the server has nothing
	 * of it there (refused, it goes; its content is kept). */
	if (rc == CFS_OK)
		rc = rows_localize(db, ino, err);
	if (rc == CFS_OK) {
		struct mirror_entry gone = x;

		gone.kind = CFS_KIND_DELETED;
		gone.jid = 0;
		gone.blocks = (struct cfs_blocklist){ 0 };
		gone.target = NULL;
		rc = rows_shadow_put(db, ino, &gone, err);
	}
	if (rc || !on_server)
		goto out;
	/* The original's delete, right after, on an entry of its own that
	 * holds the original's node and the server's state of it. */
	g = s;
	g.ino = 0;
	g.ns = out ? to : ns;
	g.node = x.node;
	g.jid = x.jid;
	g.pending = 0;
	/* In to, the folder is the root, and ns's JIDs mean nothing: the
	 * first listing of to gives the original's (invariant 10). */
	if (out) {
		g.parent = g.parent == top ? 0 : g.parent;
		g.jid = 0;
	}
	g.atime_ns = x.atime_ns;
	g.ctime_ns = x.ctime_ns;
	rc = ord_after(db, ord, &next, err);
	if (rc == CFS_OK)
		rc = rows_write(db, &g_ino, &g, err);
	g.ino = g_ino;
	del.ino = g_ino;
	del.ns = g.ns;
	del.kind = g.kind;
	del.path = first;
	if (rc == CFS_OK)
		rc = pending_enqueue(db, &del, (ord + next) / 2, err);
	if (rc == CFS_OK)
		rc = pending_mark(db, &g, 1, err);
	if (rc == CFS_OK)
		rc = cfs_sql_exec(db,
				  "UPDATE entries SET kind = 0 WHERE ino = ?1",
				  err, "i", (int64_t)g_ino);
out:
	mirror_entry_release(&s);
	mirror_entry_release(&x);
	free(first);
	free(to_path);
	return rc;
}

/*
 * Invariant 10: folder old became the mount of shared namespace e's.  Its
 * whole subtree moves along, so that the folder never shows empty while
 * the shared namespace is listed; its tombstones stay behind, since the
 * old namespace's JIDs they guard mean nothing in the new one.
 */
static enum cfs_err follow_share(struct cfs_sql *db,
				 const struct mirror_entry *old,
				 const struct mirror_entry *e,
				 struct cfs_error *err)
{
	struct ino_set all = { 0 }, moved_out = { 0 };
	char *path = NULL;
	enum cfs_err rc = rows_ns_path(db, old, &path, err);

	if (rc == CFS_OK)
		rc = ino_set_fill(db,
				  cfs_sql_stmt(db,
					       ROWS_SUBTREE_CTE
					       "SELECT e.ino FROM entries e"
					       " JOIN sub ON e.ns = ?1"
					       " AND e.node = sub.node",
					       err, "ii", old->ns, old->node),
				  &all, err);
	for (size_t i = 0; rc == CFS_OK && i < all.n; i++)
		rc = split_crossing_move(db, all.v[i], old->ns, path, old->node,
					 e->mount_ns, err);
	for (size_t i = 0; rc == CFS_OK && i < all.n; i++)
		rc = rehome(db, all.v[i], old->node, e->mount_ns, err);
	/* The entries moved out of the folder stay in old's namespace. */
	if (rc == CFS_OK)
		rc = ino_set_fill(
			db,
			cfs_sql_stmt(db,
				     "SELECT DISTINCT ino FROM ops"
				     " WHERE ns = ?1 AND type = ?3"
				     " AND substr(path, 1, length(?2) + 1)"
				     " = ?2 || '/'"
				     " AND substr(to_path, 1, length(?2) + 1)"
				     " != ?2 || '/'",
				     err, "iti", old->ns, path,
				     (int64_t)QUEUE_MOVE),
			&moved_out, err);
	for (size_t i = 0; rc == CFS_OK && i < moved_out.n; i++)
		if (!ino_set_has(&all, moved_out.v[i]))
			rc = split_crossing_move(db, moved_out.v[i], old->ns,
						 path, old->node, e->mount_ns,
						 err);
	if (rc == CFS_OK)
		rc = cfs_sql_exec(db,
				  "DELETE FROM entries WHERE ns = ?1"
				  " AND kind = 0 AND pending = 0 AND jid = 0",
				  err, "i", e->mount_ns);
	if (rc == CFS_OK)
		rc = requeue_into(db, old->ns, path, e->mount_ns, err);
	free(all.v);
	free(moved_out.v);
	free(path);
	return rc;
}

/* The files that folder node of ns holds further names of, wherever they
 * are: their link counts change when the folder goes or is shared away
 * (a link never crosses a namespace). */
static enum cfs_err note_links_within(struct cfs_sql *db, int64_t ns,
				      int64_t node, struct mirror_changes *ch,
				      struct cfs_error *err)
{
	struct ino_set set = { 0 };
	enum cfs_err rc = ino_set_fill(
		db,
		cfs_sql_stmt(db,
			     ROWS_SUBTREE_CTE
			     "SELECT n.ino FROM entries e JOIN sub"
			     " ON e.ns = ?1 AND e.node = sub.node"
			     " JOIN entries n ON n.ns = ?1"
			     " AND n.node = e.link_of WHERE e.kind = 9",
			     err, "ii", ns, node),
		&set, err);

	for (size_t i = 0; rc == CFS_OK && i < set.n; i++)
		rc = rows_note(ch, set.v[i], 0, NULL, err);
	free(set.v);
	return rc;
}

enum cfs_err rows_drop_contents(struct cfs_sql *db,
				const struct mirror_entry *old,
				const struct mirror_entry *e, bool *kept,
				struct mirror_changes *ch,
				struct cfs_error *err)
{
	enum cfs_err rc = CFS_OK;

	*kept = false;
	if (old->kind == CFS_KIND_DIR && e->kind != CFS_KIND_DIR) {
		rc = note_links_within(db, old->ns, old->node, ch, err);
		if (rc)
			return rc;
	}
	if (old->kind == CFS_KIND_DIR && e->kind == CFS_KIND_MOUNT &&
	    old->ns == e->ns && old->node == e->node && old->node > 0)
		return follow_share(db, old, e, err);
	if (old->kind == CFS_KIND_DIR && e->kind != CFS_KIND_DIR)
		rc = drop_subtree(db, old->ns, old->node, kept, err);
	if (rc == CFS_OK && *kept)
		rc = rows_localize(db, old->ino, err);
	if (rc == CFS_OK && old->kind == CFS_KIND_MOUNT &&
	    (e->kind != CFS_KIND_MOUNT || e->mount_ns != old->mount_ns))
		rc = rows_forget_ns(db, old->mount_ns, err);
	return rc;
}

enum cfs_err rows_write(struct cfs_sql *db, uint64_t *ino,
			const struct mirror_entry *e, struct cfs_error *err)
{
	size_t blocks_len = e->blocks.n * CFS_BLOCK_ID_LEN;
	enum cfs_err rc;

	if (*ino)
		return cfs_sql_exec(
			db,
			"UPDATE entries SET parent = ?2, name = ?3, kind = ?4,"
			" size = ?5, mtime_ns = ?6, mode = ?7, blocks = ?8,"
			" target = ?9, mount_ns = ?10, jid = ?11,"
			" atime_ns = ?12, ctime_ns = ?13, link_of = ?14"
			" WHERE ino = ?1",
			err, "iitiiiibtIiiii", (int64_t)*ino, e->parent,
			e->name, (int64_t)e->kind, (int64_t)e->size,
			e->mtime_ns, (int64_t)e->mode,
			(const void *)e->blocks.ids, blocks_len, e->target,
			e->mount_ns, e->jid, e->atime_ns, e->ctime_ns,
			e->link_of);
	rc = cfs_sql_exec(db,
			  "INSERT INTO entries(ns, node, parent, name, kind,"
			  " size, mtime_ns, mode, blocks, target, mount_ns,"
			  " jid, atime_ns, ctime_ns, link_of) VALUES (?1, ?2,"
			  " ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13,"
			  " ?14, ?15)",
			  err, "iiitiiiibtIiiii", e->ns, e->node, e->parent,
			  e->name, (int64_t)e->kind, (int64_t)e->size,
			  e->mtime_ns, (int64_t)e->mode,
			  (const void *)e->blocks.ids, blocks_len, e->target,
			  e->mount_ns, e->jid, e->atime_ns, e->ctime_ns,
			  e->link_of);
	if (rc == CFS_OK)
		*ino = (uint64_t)sqlite3_last_insert_rowid(db->db);
	return rc;
}

enum cfs_err rows_delete(struct cfs_sql *db, uint64_t ino,
			 struct cfs_error *err)
{
	enum cfs_err rc = cfs_sql_exec(db, "DELETE FROM entries WHERE ino = ?1",
				       err, "i", (int64_t)ino);

	return rc ? rc : rows_shadow_delete(db, ino, err);
}

enum cfs_err rows_tombstone(struct cfs_sql *db, uint64_t ino, int64_t jid,
			    struct cfs_error *err)
{
	enum cfs_err rc =
		cfs_sql_exec(db,
			     "UPDATE entries SET jid = ?2, pending = 0"
			     " WHERE ino = ?1 AND kind = 0",
			     err, "ii", (int64_t)ino, jid);

	return rc ? rc : rows_shadow_delete(db, ino, err);
}

enum cfs_err rows_shadow_get(struct cfs_sql *db, uint64_t ino,
			     struct mirror_entry *e, struct cfs_error *err)
{
	/* The entry's identity, the shadow's state. */
	return rows_one(
		db,
		cfs_sql_stmt(
			db,
			"SELECT e.ino, e.ns, e.node, s.parent, s.name, s.kind,"
			" s.size, s.mtime_ns, s.mode, s.blocks, s.target,"
			" s.mount_ns, s.jid, e.pending, s.atime_ns, s.ctime_ns,"
			" s.link_of"
			" FROM shadow s"
			" JOIN entries e ON e.ino = s.ino WHERE s.ino = ?1",
			err, "i", (int64_t)ino),
		e, err);
}

enum cfs_err rows_shadow_put(struct cfs_sql *db, uint64_t ino,
			     const struct mirror_entry *e,
			     struct cfs_error *err)
{
	/* refused stays: it belongs to the local changes, not the state. */
	return cfs_sql_exec(
		db,
		"INSERT INTO shadow(ino, parent, name, kind, size,"
		" mtime_ns, mode, blocks, target, mount_ns, jid, atime_ns,"
		" ctime_ns, link_of) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7,"
		" ?8, ?9, ?10, ?11, ?12, ?13, ?14) ON CONFLICT(ino) DO"
		" UPDATE SET"
		" parent = excluded.parent, name = excluded.name,"
		" kind = excluded.kind, size = excluded.size,"
		" mtime_ns = excluded.mtime_ns,"
		" mode = excluded.mode, blocks = excluded.blocks,"
		" target = excluded.target,"
		" mount_ns = excluded.mount_ns, jid = excluded.jid,"
		" atime_ns = excluded.atime_ns, ctime_ns = excluded.ctime_ns,"
		" link_of = excluded.link_of",
		err, "iitiiiibtIiiii", (int64_t)ino, e->parent, e->name,
		(int64_t)e->kind, (int64_t)e->size, e->mtime_ns,
		(int64_t)e->mode, (const void *)e->blocks.ids,
		e->blocks.n * CFS_BLOCK_ID_LEN, e->target, e->mount_ns, e->jid,
		e->atime_ns, e->ctime_ns, e->link_of);
}

enum cfs_err rows_shadow_delete(struct cfs_sql *db, uint64_t ino,
				struct cfs_error *err)
{
	return cfs_sql_exec(db, "DELETE FROM shadow WHERE ino = ?1", err, "i",
			    (int64_t)ino);
}

/* The mount inode of followed namespace ns (*found false: not followed). */
static enum cfs_err ns_mount_ino(struct cfs_sql *db, int64_t ns, int64_t *ino,
				 bool *found, struct cfs_error *err)
{
	return cfs_sql_int64(
		db,
		cfs_sql_stmt(db,
			     "SELECT mount_ino FROM namespaces WHERE ns = ?1",
			     err, "i", ns),
		ino, found, err);
}

/*
 * Invariant 3, against a listing that breaks it (a broken or hostile
 * server): a mount is followed only from the root namespace, and never
 * takes the row of a namespace followed through another inode, the root's
 * above all, whose tree would be forgotten with the mount.
 */
enum cfs_err rows_follow_mount(struct cfs_sql *db, uint64_t ino,
			       const struct mirror_entry *e,
			       struct cfs_error *err)
{
	int64_t at = 0;
	bool found = false;
	enum cfs_err rc = ns_mount_ino(db, e->ns, &at, &found, err);

	if (rc == CFS_OK && (!found || at != MIRROR_ROOT_INO))
		return cfs_fail(err, CFS_ERR_BAD_FIELD,
				"namespace %lld, not the root, holds a mount",
				(long long)e->ns);
	if (rc == CFS_OK)
		rc = ns_mount_ino(db, e->mount_ns, &at, &found, err);
	if (rc == CFS_OK && found && at != (int64_t)ino)
		return cfs_fail(err, CFS_ERR_BAD_FIELD,
				"namespace %lld is mounted twice",
				(long long)e->mount_ns);
	if (rc)
		return rc;
	return cfs_sql_exec(db,
			    "INSERT OR REPLACE INTO namespaces(ns, mount_ino)"
			    " VALUES (?1, ?2)",
			    err, "ii", e->mount_ns, (int64_t)ino);
}

/*
 * Queued operations name entries by path as the server will have them
 * when they arrive; a folder the server moved takes them along (its
 * entries' paths from old_path on are now new_path's).
 */
static enum cfs_err repath_queued(struct cfs_sql *db, int64_t ns,
				  const char *old_path, const char *new_path,
				  struct cfs_error *err)
{
	static const char *const sql[] = {
		"UPDATE ops SET path = ?3 || substr(path, length(?2) + 1)"
		" WHERE ns = ?1 AND (path = ?2"
		" OR substr(path, 1, length(?2) + 1) = ?2 || '/')",
		"UPDATE ops SET to_path = ?3 || substr(to_path, length(?2) + 1)"
		" WHERE ns = ?1 AND (to_path = ?2"
		" OR substr(to_path, 1, length(?2) + 1) = ?2 || '/')",
	};
	enum cfs_err rc = CFS_OK;

	for (size_t i = 0; rc == CFS_OK && i < 2; i++)
		rc = cfs_sql_exec(db, sql[i], err, "itt", ns, old_path,
				  new_path);
	return rc;
}

/*
 * The path of folder old, which the server moved to e's place, before the
 * move is written: NULL when it is not such a move, or nothing is queued
 * in its namespace to re-address, or old was not placed itself (an
 * orphan, whose move, if any, is in repaths already).
 */
static enum cfs_err moved_folder_path(struct cfs_sql *db,
				      const struct mirror_entry *old,
				      const struct mirror_entry *e, char **path,
				      struct cfs_error *err)
{
	int64_t queued = 0;
	bool found;
	enum cfs_err rc;

	*path = NULL;
	if (old->kind != CFS_KIND_DIR || e->kind != CFS_KIND_DIR ||
	    (old->parent == e->parent && strcmp(old->name, e->name) == 0))
		return CFS_OK;
	rc = cfs_sql_int64(db,
			   cfs_sql_stmt(db,
					"SELECT EXISTS (SELECT 1 FROM ops"
					" WHERE ns = ?1)",
					err, "i", old->ns),
			   &queued, &found, err);
	if (rc || !queued)
		return rc;
	rc = rows_ns_path(db, old, path, err);
	return rc == CFS_ERR_NOT_FOUND ? CFS_OK : rc;
}

/* The queued operations of ns that name folder ino by its path before
 * a move it waited for (invariant 11) now name it by to. */
static enum cfs_err repath_waited(struct cfs_sql *db, uint64_t ino, int64_t ns,
				  const char *to, struct cfs_error *err)
{
	sqlite3_stmt *st = cfs_sql_stmt(db,
					"SELECT from_path FROM repaths"
					" WHERE ino = ?1 AND ns = ?2",
					err, "ii", (int64_t)ino, ns);
	enum cfs_err rc = st ? CFS_OK : err->code;
	char *from = NULL;
	bool row = false;

	if (rc == CFS_OK)
		rc = cfs_sql_step(db, st, &row, err);
	if (rc == CFS_OK && row &&
	    !(from = strdup((const char *)sqlite3_column_text(st, 0))))
		rc = cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	if (st)
		sqlite3_reset(st);
	/* Not of ns: a share moved the folder, and its operations with it
	 * (follow_share). */
	if (rc == CFS_OK && from)
		rc = repath_queued(db, ns, from, to, err);
	free(from);
	return rc;
}

/* Invariant 11: the queued operations under the folders of repaths go
 * to the folders' paths, for those placed now; orphans wait. */
static enum cfs_err repaths_resolve(struct cfs_sql *db, struct cfs_error *err)
{
	struct ino_set all = { 0 };
	enum cfs_err rc = ino_set_fill(
		db, cfs_sql_stmt(db, "SELECT ino FROM repaths", err, ""), &all,
		err);

	for (size_t i = 0; rc == CFS_OK && i < all.n; i++) {
		struct mirror_entry e;
		char *to = NULL;

		rc = rows_by_ino(db, all.v[i], &e, err);
		if (rc == CFS_OK) {
			rc = rows_ns_path(db, &e, &to, err);
			if (rc == CFS_ERR_NOT_FOUND) {
				mirror_entry_release(&e);
				rc = CFS_OK; /* still an orphan */
				continue;
			}
			if (rc == CFS_OK)
				rc = repath_waited(db, e.ino, e.ns, to, err);
			mirror_entry_release(&e);
			free(to);
		} else if (rc == CFS_ERR_NOT_FOUND) {
			rc = CFS_OK; /* gone: nothing left to re-address */
		}
		if (rc == CFS_OK)
			rc = cfs_sql_exec(db,
					  "DELETE FROM repaths WHERE ino = ?1",
					  err, "i", (int64_t)all.v[i]);
	}
	free(all.v);
	return rc;
}

/* Folder ino of ns, whose queued operations name it by from, moved
 * (invariant 11); a move already waiting keeps its older from. */
static enum cfs_err repath_moved(struct cfs_sql *db, uint64_t ino, int64_t ns,
				 const char *from, struct cfs_error *err)
{
	enum cfs_err rc = cfs_sql_exec(db,
				       "INSERT OR IGNORE INTO repaths(ino, ns,"
				       " from_path) VALUES (?1, ?2, ?3)",
				       err, "iit", (int64_t)ino, ns, from);

	return rc ? rc : repaths_resolve(db, err);
}

enum cfs_err rows_settle(struct cfs_sql *db, const struct mirror_entry *old,
			 const struct mirror_entry *e,
			 struct mirror_changes *ch, struct cfs_error *err)
{
	bool replaced = e->kind != old->kind, kept = false;
	bool new_mount = e->kind == CFS_KIND_MOUNT &&
			 (replaced || old->mount_ns != e->mount_ns);
	uint64_t ino = replaced ? 0 : old->ino;
	char *from = NULL;
	enum cfs_err rc = rows_note_change(db, old, e, ch, err);

	if (rc == CFS_OK)
		rc = rows_drop_contents(db, old, e, &kept, ch, err);
	if (rc == CFS_OK && kept)
		return CFS_OK; /* kept for its local changes (invariant 4) */
	if (rc == CFS_OK && (replaced || e->kind == CFS_KIND_DELETED))
		rc = rows_delete(db, old->ino, err);
	if (rc == CFS_OK && e->kind == CFS_KIND_DELETED)
		rc = prune_kept(db, old->ns, old->parent, ch, err);
	if (rc || e->kind == CFS_KIND_DELETED)
		return rc;
	rc = moved_folder_path(db, old, e, &from, err);
	if (rc == CFS_OK)
		rc = rows_write(db, &ino, e, err);
	if (rc == CFS_OK && old->parent != e->parent)
		rc = prune_kept(db, old->ns, old->parent, ch, err);
	if (rc == CFS_OK && from)
		rc = repath_moved(db, ino, e->ns, from, err);
	if (rc == CFS_OK && new_mount)
		rc = rows_follow_mount(db, ino, e, err);
	free(from);
	return rc;
}

/*
 * Whether a and b hold the same bytes (kind, blocks, target).  Not their
 * mode and times: a shadow may carry the mount's own change of those
 * (cache/local.c marks an entry after a setattr changed it).
 */
static bool same_bytes(const struct mirror_entry *a,
		       const struct mirror_entry *b)
{
	return a->kind == b->kind && a->size == b->size &&
	       cfs_blocklist_equal(&a->blocks, &b->blocks) &&
	       (a->target == b->target ||
		(a->target && b->target && strcmp(a->target, b->target) == 0));
}

/* Invariant 7: a listed state of an entry with local changes. */
static enum cfs_err apply_shadow(struct cfs_sql *db,
				 const struct mirror_entry *old,
				 const struct mirror_entry *e,
				 struct cfs_error *err)
{
	struct mirror_entry s;
	bool stale, base;
	enum cfs_err rc = rows_shadow_get(db, old->ino, &s, err);

	assert(old->pending > 0);
	if (rc == CFS_ERR_NOT_FOUND)
		return rows_shadow_put(db, old->ino, e, err);
	if (rc)
		return rc;
	/* Invariant 8, against both the shadow and what the uploader
	 * recorded: a move this mount committed leaves the shadow's JID
	 * behind.  A node whose folder was shared away is listed deleted at
	 * the JID it had (the server's invariant 2), which may be that move:
	 * taken for news, its deletion wiped the state the queued changes
	 * edit, and they went to the shared namespace as a conflict with
	 * themselves (harness seed 519). */
	stale = e->jid <= s.jid || e->jid <= old->jid;
	/* Invariant 10: the state a share moved, which the changes edit. */
	base = !stale && old->node > 0 && old->jid == 0 && same_bytes(&s, e);
	mirror_entry_release(&s);
	if (stale)
		return CFS_OK;
	if (base)
		rc = cfs_sql_exec(db,
				  "UPDATE entries SET jid = ?2 WHERE ino = ?1",
				  err, "ii", (int64_t)old->ino, e->jid);
	return rc ? rc : rows_shadow_put(db, old->ino, e, err);
}

/* New entry e: its folder lists one more (unless the folder is not
 * listed yet, and so new to the kernel too). */
static enum cfs_err note_new(struct cfs_sql *db, const struct mirror_entry *e,
			     struct mirror_changes *ch, struct cfs_error *err)
{
	uint64_t dir = 0;
	enum cfs_err rc = mirror_parent(db, e, &dir, err);

	if (rc == CFS_OK)
		rc = rows_note_children(ch, dir, err);
	else if (rc == CFS_ERR_NOT_FOUND)
		rc = CFS_OK;
	return rc ? rc : rows_note_named(db, e, ch, err);
}

/* Applies one listed entry e (of namespace ns). */
static enum cfs_err apply_one(struct cfs_sql *db, const struct mirror_entry *e,
			      struct mirror_changes *ch, struct cfs_error *err)
{
	struct mirror_entry old;
	uint64_t ino = 0;
	enum cfs_err rc = rows_by_node(db, e->ns, e->node, &old, err);

	if (rc == CFS_ERR_NOT_FOUND) {
		if (e->kind == CFS_KIND_DELETED)
			return CFS_OK;
		rc = rows_write(db, &ino, e, err);
		if (rc == CFS_OK && e->kind == CFS_KIND_MOUNT)
			rc = rows_follow_mount(db, ino, e, err);
		if (rc == CFS_OK)
			rc = note_new(db, e, ch, err);
		return rc;
	}
	if (rc)
		return rc;
	if (old.pending > 0)
		rc = apply_shadow(db, &old, e, err);
	else if (e->jid > old.jid)
		rc = rows_settle(db, &old, e, ch, err);
	mirror_entry_release(&old);
	return rc;
}

struct by_node {
	int64_t node;
	size_t i;
};

static int by_node_cmp(const void *a, const void *b)
{
	const struct by_node *x = a, *y = b;

	return (x->node > y->node) - (x->node < y->node);
}

/*
 * Invariant 11: the order to apply entries in: the server's, but with
 * each entry's folder, when the page has it, hoisted before it.  A page
 * is one moment of the tree, so folders cannot form a cycle; a hostile
 * one that does is cut where the walk meets itself.
 */
static enum cfs_err apply_order(const struct mirror_entry *entries, size_t n,
				size_t **order, struct cfs_error *err)
{
	struct by_node *index = calloc(n + 1, sizeof(*index));
	size_t *out = calloc(n + 1, sizeof(*out)),
	       *chain = calloc(n + 1, sizeof(*chain));
	unsigned char *seen = calloc(n + 1, 1);
	size_t m = 0;

	*order = out;
	if (!index || !out || !chain || !seen) {
		free(index);
		free(out);
		free(chain);
		free(seen);
		*order = NULL;
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	}
	for (size_t i = 0; i < n; i++)
		index[i] = (struct by_node){ .node = entries[i].node, .i = i };
	qsort(index, n, sizeof(*index), by_node_cmp);
	for (size_t i = 0; i < n; i++) {
		size_t k = 0, j = i;

		while (!seen[j]) {
			const struct mirror_entry *e = &entries[j];
			struct by_node key = { .node = e->parent }, *up;

			seen[j] = 1;
			chain[k++] = j;
			/* A deletion needs no folder; the root is no entry. */
			up = e->kind == CFS_KIND_DELETED || e->parent == 0
				     ? NULL
				     : bsearch(&key, index, n, sizeof(*index),
					       by_node_cmp);
			if (!up)
				break;
			j = up->i;
		}
		while (k)
			out[m++] = chain[--k];
	}
	free(index);
	free(chain);
	free(seen);
	return CFS_OK;
}

/* Invariant 10: what a share moved that the first complete listing of
 * ns did not name goes, and the kernel forgets it. */
#define UNNAMED                                                    \
	" FROM entries WHERE ns = ?1 AND node > 0 AND jid = 0 AND" \
	" pending = 0 AND NOT (SELECT listed FROM namespaces WHERE ns = ?1)"

static enum cfs_err drop_unnamed(struct cfs_sql *db, int64_t ns,
				 struct mirror_changes *ch,
				 struct cfs_error *err)
{
	struct ino_set set = { 0 };
	int64_t listed = 0;
	bool found = false;
	enum cfs_err rc = cfs_sql_int64(
		db,
		cfs_sql_stmt(db, "SELECT listed FROM namespaces WHERE ns = ?1",
			     err, "i", ns),
		&listed, &found, err);

	/* Once listed, nothing is unnamed: no need to look at every entry
	 * of ns at each page. */
	if (rc || (found && listed))
		return rc;
	rc = ino_set_fill(db,
			  cfs_sql_stmt(db, "SELECT ino" UNNAMED, err, "i", ns),
			  &set, err);

	for (size_t i = 0; rc == CFS_OK && i < set.n; i++) {
		struct mirror_entry e, gone;

		rc = mirror_get(db, set.v[i], &e, err);
		if (rc == CFS_ERR_NOT_FOUND) {
			rc = CFS_OK; /* hidden: the kernel never saw it */
			continue;
		}
		if (rc)
			break;
		gone = e;
		gone.kind = CFS_KIND_DELETED;
		rc = rows_note_change(db, &e, &gone, ch, err);
		mirror_entry_release(&e);
	}
	free(set.v);
	return rc ? rc : cfs_sql_exec(db, "DELETE" UNNAMED, err, "i", ns);
}

enum cfs_err mirror_apply(struct cfs_sql *db, int64_t ns,
			  const struct mirror_entry *entries, size_t n,
			  int64_t cursor, bool complete,
			  struct mirror_changes *ch, struct cfs_error *err)
{
	size_t *order = NULL;
	enum cfs_err rc = apply_order(entries, n, &order, err);

	if (rc)
		return rc;
	rc = cfs_sql_begin(db, true, err);
	for (size_t i = 0; rc == CFS_OK && i < n; i++)
		rc = apply_one(db, &entries[order[i]], ch, err);
	free(order);
	if (rc == CFS_OK)
		rc = repaths_resolve(db, err);
	/* Invariant 9: tombstones the cursor reached have done their work. */
	if (rc == CFS_OK)
		rc = cfs_sql_exec(db,
				  "DELETE FROM entries WHERE ns = ?1 AND"
				  " kind = 0 AND pending = 0 AND jid <= ?2",
				  err, "ii", ns, cursor);
	if (rc == CFS_OK && complete)
		rc = drop_unnamed(db, ns, ch, err);
	if (rc == CFS_OK)
		rc = cfs_sql_exec(db,
				  "UPDATE namespaces SET cursor = ?2,"
				  " listed = listed OR ?3 WHERE ns = ?1",
				  err, "iii", ns, cursor, (int64_t)complete);
	return cfs_sql_end(db, rc, err);
}

enum cfs_err mirror_forget_ns(struct cfs_sql *db, int64_t ns,
			      struct cfs_error *err)
{
	enum cfs_err rc = cfs_sql_begin(db, true, err);

	rc = rc ? rc : rows_forget_ns(db, ns, err);
	return cfs_sql_end(db, rc, err);
}
