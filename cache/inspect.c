/* What the cache holds (cache/inspect.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/inspect.h"
#include "cache/local.h"
#include "cache/rows.h"
#include "cache/upkeep.h"

/* Whether ino or a folder above it is pinned. */
static enum cfs_err pinned(struct cfs_sql *db, const struct mirror_entry *e,
			   bool *out, struct cfs_error *err)
{
	struct mirror_entry cur = { .ino = e->ino,
				    .ns = e->ns,
				    .parent = e->parent };
	enum cfs_err rc = CFS_OK;

	*out = false;
	for (int depth = 0; rc == CFS_OK && !*out && depth < CFS_PATH_MAX / 2;
	     depth++) {
		int64_t one;
		uint64_t up;

		rc = cfs_sql_int64(db,
				   cfs_sql_stmt(db,
						"SELECT 1 FROM pins"
						" WHERE ino = ?1",
						err, "i", (int64_t)cur.ino),
				   &one, out, err);
		if (rc || *out || cur.ino == MIRROR_ROOT_INO)
			break;
		rc = mirror_parent(db, &cur, &up, err);
		mirror_entry_release(&cur);
		if (rc == CFS_OK)
			rc = mirror_get(db, up, &cur, err);
	}
	mirror_entry_release(&cur);
	return rc == CFS_ERR_NOT_FOUND ? CFS_OK : rc;
}

enum cfs_err inspect_entry_state(struct cfs_sql *db,
				 const struct mirror_entry *e,
				 struct inspect_entry_state *s,
				 struct cfs_error *err)
{
	int64_t v;
	bool found;
	enum cfs_err rc;

	*s = (struct inspect_entry_state){ .pending = e->pending > 0 };
	rc = cfs_sql_int64(
		db,
		cfs_sql_stmt(db, "SELECT 1 FROM conflicts WHERE ino = ?1", err,
			     "i", (int64_t)e->ino),
		&v, &s->conflict, err);
	if (rc == CFS_OK)
		rc = pinned(db, e, &s->pinned, err);
	if (e->kind != CFS_KIND_FILE)
		return rc;
	s->bytes = e->size;
	s->blocks = e->blocks.n;
	for (size_t i = 0; rc == CFS_OK && i < e->blocks.n; i++) {
		rc = cfs_sql_int64(
			db,
			cfs_sql_stmt(db,
				     "SELECT size FROM blocks WHERE id = ?1",
				     err, "b", e->blocks.ids[i].b,
				     (size_t)CFS_BLOCK_ID_LEN),
			&v, &found, err);
		if (rc == CFS_OK && found) {
			s->cached_blocks++;
			s->cached_bytes += (uint64_t)v;
		}
	}
	return rc;
}

const char *inspect_sync_word(const struct inspect_entry_state *s)
{
	if (s->pending)
		return s->uploading ? "uploading" : "pending";
	return s->conflict ? "conflict" : "synced";
}

const char *inspect_local_word(const struct inspect_entry_state *s,
			       enum cfs_kind kind)
{
	if (s->pinned)
		return "pinned";
	if (kind != CFS_KIND_FILE)
		return "";
	if (s->cached_blocks == s->blocks)
		return "cached";
	return s->cached_blocks ? "partial" : "online-only";
}

/* Two numbers of one row. */
static enum cfs_err two(struct cfs_sql *db, sqlite3_stmt *st, uint64_t *a,
			uint64_t *b, struct cfs_error *err)
{
	bool row = false;
	enum cfs_err rc = st ? cfs_sql_step(db, st, &row, err) : err->code;

	if (rc == CFS_OK && row) {
		*a = (uint64_t)sqlite3_column_int64(st, 0);
		*b = (uint64_t)sqlite3_column_int64(st, 1);
	}
	if (st)
		sqlite3_reset(st);
	return rc;
}

/* Files: how many, how many wholly or partly local, pinned bytes. */
static enum cfs_err file_totals(struct cfs_sql *db, struct inspect_usage *u,
				struct cfs_error *err)
{
	sqlite3_stmt *st = cfs_sql_stmt(
		db, "SELECT " ROWS_ENTRY_COLS " FROM entries WHERE kind = ?1",
		err, "i", (int64_t)CFS_KIND_FILE);
	struct mirror_entry e;
	enum cfs_err rc;

	while ((rc = rows_step(db, st, &e, err)) == CFS_OK) {
		struct inspect_entry_state s;

		rc = inspect_entry_state(db, &e, &s, err);
		mirror_entry_release(&e);
		if (rc)
			break;
		u->files++;
		u->files_cached += s.cached_blocks == s.blocks;
		u->files_partial +=
			s.cached_blocks && s.cached_blocks < s.blocks;
		if (s.pinned)
			u->pinned_bytes += s.bytes;
	}
	if (st)
		sqlite3_reset(st);
	return rc == CFS_ERR_NOT_FOUND ? CFS_OK : rc;
}

enum cfs_err inspect_usage(struct cache *c, struct cfs_sql *db,
			   struct inspect_usage *u, struct cfs_error *err)
{
	int64_t limit = 0;
	bool found;
	uint64_t unused;
	struct upkeep_size size;
	enum cfs_err rc;

	/* Blocks and bytes being written measured together, before the read
	 * transaction: the measure waits for the upkeep lock. */
	rc = upkeep_measure(c, &size, err);
	*u = (struct inspect_usage){ .blocks = size.blocks,
				     .bytes = size.bytes,
				     .dirty_bytes = size.staged };
	if (rc == CFS_OK)
		rc = cfs_sql_begin(db, false, err);
	if (rc == CFS_OK)
		rc = two(db,
			 cfs_sql_stmt(db,
				      "SELECT COUNT(*), COALESCE(SUM(CASE type"
				      " WHEN ?1 THEN size ELSE 0 END), 0)"
				      " FROM ops",
				      err, "i", (int64_t)QUEUE_FILE),
			 &u->pending_ops, &u->pending_bytes, err);
	if (rc == CFS_OK)
		rc = two(db,
			 cfs_sql_stmt(db,
				      "SELECT COUNT(*), 0 FROM conflicts c"
				      " JOIN entries e ON e.ino = c.ino"
				      " WHERE e.kind != 0",
				      err, ""),
			 &u->conflicts, &unused, err);
	if (rc == CFS_OK)
		rc = cfs_sql_int64(db,
				   cfs_sql_stmt(db,
						"SELECT value FROM info"
						" WHERE key = 'cache_size'",
						err, ""),
				   &limit, &found, err);
	u->limit = (uint64_t)limit;
	return cfs_sql_end(db, rc, err);
}

enum cfs_err inspect_file_usage(struct cfs_sql *db, struct inspect_usage *u,
				struct cfs_error *err)
{
	enum cfs_err rc = cfs_sql_begin(db, false, err);

	if (rc == CFS_OK)
		rc = file_totals(db, u, err);
	return cfs_sql_end(db, rc, err);
}

enum cfs_err inspect_pin(struct cfs_sql *db, uint64_t ino, bool pin,
			 struct cfs_error *err)
{
	if (pin)
		return cfs_sql_exec(db,
				    "INSERT OR IGNORE INTO pins VALUES (?1)",
				    err, "i", (int64_t)ino);
	return cfs_sql_exec(db, "DELETE FROM pins WHERE ino = ?1", err, "i",
			    (int64_t)ino);
}

enum cfs_err inspect_set_limit(struct cfs_sql *db, uint64_t limit,
			       struct cfs_error *err)
{
	return cfs_sql_exec(db,
			    "INSERT OR REPLACE INTO info VALUES"
			    " ('cache_size', ?1)",
			    err, "i", (int64_t)limit);
}

json_t *inspect_stat_json(struct cache *c, struct cfs_error *err)
{
	struct cfs_sql *db = cache_db(c, err);
	struct inspect_usage u;
	enum cfs_err rc = db ? inspect_usage(c, db, &u, err) : err->code;
	json_t *o;

	if (rc == CFS_OK)
		rc = inspect_file_usage(db, &u, err);
	if (rc == CFS_OK)
		rc = upkeep_kept_bytes(db, &u.kept_bytes, err);
	if (db)
		cache_db_release(c, db);
	if (rc)
		return NULL;
	o = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I,"
		      " s:I, s:I}",
		      "bytes", (json_int_t)u.bytes, "kept_bytes",
		      (json_int_t)u.kept_bytes, "limit", (json_int_t)u.limit,
		      "blocks", (json_int_t)u.blocks, "files",
		      (json_int_t)u.files, "files_cached",
		      (json_int_t)u.files_cached, "files_partial",
		      (json_int_t)u.files_partial, "pinned_bytes",
		      (json_int_t)u.pinned_bytes, "dirty_bytes",
		      (json_int_t)u.dirty_bytes, "pending_ops",
		      (json_int_t)u.pending_ops, "pending_bytes",
		      (json_int_t)u.pending_bytes, "conflicts",
		      (json_int_t)u.conflicts);
	if (!o)
		cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	return o;
}

enum cfs_err inspect_path_ino(struct cfs_sql *db, const char *path,
			      uint64_t *ino, struct cfs_error *err)
{
	struct mirror_entry dir, e;
	char *copy = strdup(path ? path : ""), *save = NULL, *name;
	enum cfs_err rc =
		copy ? mirror_get(db, MIRROR_ROOT_INO, &dir, err)
		     : cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");

	for (name = copy && rc == CFS_OK ? strtok_r(copy, "/", &save) : NULL;
	     rc == CFS_OK && name; name = strtok_r(NULL, "/", &save)) {
		rc = mirror_lookup(db, &dir, name, &e, err);
		mirror_entry_release(&dir);
		/* A hard link's name is its node's (mirror_named()). */
		if (rc == CFS_OK) {
			rc = mirror_named(db, &e, err);
			if (rc)
				mirror_entry_release(&e);
		}
		if (rc == CFS_OK)
			dir = e;
	}
	if (rc == CFS_OK) {
		*ino = dir.ino;
		mirror_entry_release(&dir);
	} else if (rc == CFS_ERR_NOT_FOUND) {
		cfs_fail(err, rc, "no '%s' in the cache's tree", path);
	}
	free(copy);
	return rc;
}

/* Whether ino is in the JSON array of inodes uploading. */
static bool in(json_t *uploading, uint64_t ino)
{
	json_t *v;
	size_t i;

	json_array_foreach(uploading, i, v)
	{
		if ((uint64_t)json_integer_value(v) == ino)
			return true;
	}
	return false;
}

struct listing {
	struct cfs_sql *db;
	json_t *entries;
	json_t *uploading;
	struct cfs_error *err;
	bool failed; /* an entry could not be added (err says why) */
};

static bool add_named(struct listing *l, const char *name,
		      const struct mirror_entry *e);

/* Appends entry e to the listing: false (err set) when it cannot.  A hard
 * link's name shows its node, as the mount does; one whose node is not
 * shown is left out. */
static bool add_entry(void *arg, const struct mirror_entry *e)
{
	struct mirror_entry node;
	struct cfs_error err;
	bool more;

	if (e->kind != CFS_KIND_LINK)
		return add_named(arg, e->name, e);
	node = *e;
	node.blocks = (struct cfs_blocklist){ 0 };
	node.target = NULL;
	if (mirror_named(((struct listing *)arg)->db, &node, &err))
		return true;
	more = add_named(arg, e->name, &node);
	mirror_entry_release(&node);
	return more;
}

static bool add_named(struct listing *l, const char *name,
		      const struct mirror_entry *e)
{
	struct inspect_entry_state s;
	json_t *o;

	if (inspect_entry_state(l->db, e, &s, l->err)) {
		l->failed = true;
		return false;
	}
	s.uploading = s.pending && in(l->uploading, e->ino);
	o = json_pack(
		"{s:s, s:s, s:I, s:I, s:I, s:I, s:b, s:s, s:s}", "name", name,
		"kind",
		e->kind == CFS_KIND_MOUNT ? "shared" : cfs_kind_name(e->kind),
		"bytes", (json_int_t)s.bytes, "cached_bytes",
		(json_int_t)s.cached_bytes, "blocks", (json_int_t)s.blocks,
		"cached_blocks", (json_int_t)s.cached_blocks, "pinned",
		s.pinned, "state", inspect_sync_word(&s), "local",
		inspect_local_word(&s, e->kind));
	if (!o || json_array_append_new(l->entries, o)) {
		cfs_fail(l->err, CFS_ERR_INTERNAL, "out of memory");
		l->failed = true;
		return false;
	}
	return true;
}

json_t *inspect_ls_json(struct cfs_sql *db, uint64_t ino, json_t *uploading,
			struct cfs_error *err)
{
	struct listing l = { .db = db,
			     .entries = json_array(),
			     .uploading = uploading,
			     .err = err };
	struct mirror_entry e;
	enum cfs_err rc =
		l.entries ? mirror_get(db, ino, &e, err)
			  : cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");

	if (rc == CFS_OK) {
		if (e.kind == CFS_KIND_FILE)
			add_entry(&l, &e);
		else
			rc = mirror_readdir(db, &e, 0, add_entry, &l, err);
		if (rc == CFS_OK && l.failed)
			rc = err->code;
		mirror_entry_release(&e);
	}
	if (rc) {
		json_decref(l.entries);
		return NULL;
	}
	return json_pack("{s:o}", "entries", l.entries);
}
