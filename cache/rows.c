/*
 * The rows beneath the mirror (cache/rows.h): an entry read from its row
 * or written to it, its shadow (the server's state while it has local
 * changes), a namespace forgotten or followed, and the notes of what the
 * kernel must drop.  The invariants they keep: cache/mirror.c.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/rows.h"

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

enum cfs_err rows_path(struct cfs_sql *db, const struct mirror_entry *e,
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

enum cfs_err rows_ns_path(struct cfs_sql *db, const struct mirror_entry *e,
			  char **path, struct cfs_error *err)
{
	return rows_path(db, e, true, path, err);
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

	assert(cfs_sql_in_transaction(db));
	rc = cfs_sql_exec(db, "DELETE FROM entries WHERE ns = ?1", err, "i",
			  ns);
	if (rc == CFS_OK)
		rc = cfs_sql_exec(db, "DELETE FROM namespaces WHERE ns = ?1",
				  err, "i", ns);
	return rc;
}

/* Whether entry e may be some entry's parent: a folder, or an entry
 * removed here that may have been one. */
static bool may_hold_children(const struct mirror_entry *e)
{
	return e->kind == CFS_KIND_DIR || e->kind == CFS_KIND_MOUNT ||
	       e->kind == CFS_KIND_DELETED;
}

enum cfs_err rows_set_node(struct cfs_sql *db, const struct mirror_entry *e,
			   int64_t node, struct cfs_error *err)
{
	/* Hard links never name a folder, and only a folder has children:
	 * each search below that cannot match is skipped, the shadow's a
	 * scan of its every row (no index) at each confirmed create. */
	bool children = may_hold_children(e);
	bool links = e->kind != CFS_KIND_DIR && e->kind != CFS_KIND_MOUNT;
	enum cfs_err rc;

	assert(cfs_sql_in_transaction(db));
	rc = cfs_sql_exec(db, "UPDATE entries SET node = ?2 WHERE ino = ?1",
			  err, "ii", (int64_t)e->ino, node);
	if (rc == CFS_OK && children)
		rc = cfs_sql_exec(db,
				  "UPDATE entries SET parent = ?3"
				  " WHERE ns = ?1 AND parent = ?2",
				  err, "iii", e->ns, e->node, node);
	/* The node's further names name it by its new id too. */
	if (rc == CFS_OK && links)
		rc = cfs_sql_exec(
			db,
			"UPDATE entries SET link_of = ?3"
			" WHERE ns = ?1 AND link_of = ?2 AND kind = 9",
			err, "iii", e->ns, e->node, node);
	if (rc == CFS_OK && links)
		rc = cfs_sql_exec(
			db,
			"UPDATE shadow SET link_of = ?3 WHERE link_of = ?2"
			" AND EXISTS (SELECT 1 FROM entries e"
			" WHERE e.ino = shadow.ino AND e.ns = ?1)",
			err, "iii", e->ns, e->node, node);
	/* Checked row by row: "ino IN (SELECT ... WHERE ns = ?1)" listed
	 * every entry of the namespace at each confirmed create. */
	if (rc == CFS_OK && children)
		rc = cfs_sql_exec(
			db,
			"UPDATE shadow SET parent = ?3 WHERE parent = ?2"
			" AND EXISTS (SELECT 1 FROM entries e"
			" WHERE e.ino = shadow.ino AND e.ns = ?1)",
			err, "iii", e->ns, e->node, node);
	return rc;
}

/* Inserts e as row ino (the next row when 0) with pending changes. */
static enum cfs_err insert(struct cfs_sql *db, int64_t ino,
			   const struct mirror_entry *e, int64_t pending,
			   struct cfs_error *err)
{
	return cfs_sql_exec(
		db,
		"INSERT INTO entries(ino, ns, node, parent, name, kind, size,"
		" mtime_ns, mode, blocks, target, mount_ns, jid, atime_ns,"
		" ctime_ns, link_of, pending) VALUES (?1, ?2, ?3, ?4, ?5, ?6,"
		" ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
		err, "IiiitiiiibtIiiiii", ino, e->ns, e->node, e->parent,
		e->name, (int64_t)e->kind, (int64_t)e->size, e->mtime_ns,
		(int64_t)e->mode, (const void *)e->blocks.ids,
		e->blocks.n * CFS_BLOCK_ID_LEN, e->target, e->mount_ns, e->jid,
		e->atime_ns, e->ctime_ns, e->link_of, pending);
}

enum cfs_err rows_write(struct cfs_sql *db, uint64_t *ino,
			const struct mirror_entry *e, struct cfs_error *err)
{
	size_t blocks_len = e->blocks.n * CFS_BLOCK_ID_LEN;
	enum cfs_err rc;

	assert(cfs_sql_in_transaction(db));
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
	rc = insert(db, 0, e, 0, err);
	if (rc == CFS_OK)
		*ino = (uint64_t)sqlite3_last_insert_rowid(db->db);
	return rc;
}

/* The inode number the next entry gets: past every one ever given, as
 * AUTOINCREMENT picks it (inode numbers are never reused). */
static enum cfs_err next_ino(struct cfs_sql *db, int64_t *ino,
			     struct cfs_error *err)
{
	bool found;

	return cfs_sql_int64(
		db,
		cfs_sql_stmt(
			db,
			"SELECT MAX(COALESCE((SELECT seq FROM"
			" sqlite_sequence WHERE name = 'entries'), 0),"
			" COALESCE((SELECT MAX(ino) FROM entries), 0)) + 1",
			err, ""),
		ino, &found, err);
}

enum cfs_err rows_insert_new(struct cfs_sql *db, struct mirror_entry *e,
			     struct cfs_error *err)
{
	int64_t ino = 0;
	enum cfs_err rc = next_ino(db, &ino, err);

	assert(cfs_sql_in_transaction(db));
	/* Its node id known before the row is written, the row is written
	 * once: a second write of it cost a statement per create. */
	e->ino = (uint64_t)ino;
	e->node = -ino;
	return rc ? rc : insert(db, ino, e, e->pending, err);
}

enum cfs_err rows_delete(struct cfs_sql *db, uint64_t ino,
			 struct cfs_error *err)
{
	enum cfs_err rc = cfs_sql_exec(db, "DELETE FROM entries WHERE ino = ?1",
				       err, "i", (int64_t)ino);

	assert(cfs_sql_in_transaction(db));
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

	assert(cfs_sql_in_transaction(db) && jid > 0);
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
	assert(cfs_sql_in_transaction(db));
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
	assert(cfs_sql_in_transaction(db));
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

	assert(cfs_sql_in_transaction(db));
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
