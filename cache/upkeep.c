/* Eviction, verification and garbage collection (cache/upkeep.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache/blockcache.h"
#include "cache/rows.h"
#include "cache/upkeep.h"
#include "cloudfs/blockset.h"
#include "cloudfs/cmdtable.h"

/* Adds the block lists (first column) of the rows st selects. */
static enum cfs_err blockset_fill(struct cfs_sql *db, sqlite3_stmt *st,
				  struct cfs_blockset *s, struct cfs_error *err)
{
	enum cfs_err rc = st ? CFS_OK : err->code;
	bool row = true;

	while (rc == CFS_OK &&
	       (rc = cfs_sql_step(db, st, &row, err)) == CFS_OK && row)
		rc = cfs_blockset_add_raw(s, sqlite3_column_blob(st, 0),
					  (size_t)sqlite3_column_bytes(st, 0),
					  err);
	if (st)
		sqlite3_reset(st);
	return rc;
}

/* The blocks of the files at or below entry ino. */
static enum cfs_err blocks_below(struct cfs_sql *db, uint64_t ino,
				 struct cfs_blockset *s, struct cfs_error *err)
{
	struct mirror_entry e;
	int64_t ns, node;
	enum cfs_err rc = rows_by_ino(db, ino, &e, err);

	if (rc == CFS_ERR_NOT_FOUND)
		return CFS_OK; /* gone: nothing to keep */
	if (rc)
		return rc;
	if (e.kind == CFS_KIND_FILE) {
		rc = cfs_blockset_add_raw(s, e.blocks.ids,
					  e.blocks.n * CFS_BLOCK_ID_LEN, err);
	} else if (rows_dir_key(&e, &ns, &node, err) == CFS_OK) {
		rc = blockset_fill(db,
				   cfs_sql_stmt(db,
						ROWS_SUBTREE_CTE
						"SELECT e.blocks FROM entries e"
						" JOIN sub ON e.ns = ?1"
						" AND e.node = sub.node"
						" WHERE e.kind = 1"
						" AND e.blocks IS NOT NULL",
						err, "ii", ns, node),
				   s, err);
	}
	mirror_entry_release(&e);
	return rc;
}

/* The pinned inodes (few). */
static enum cfs_err pinned_inos(struct cfs_sql *db, uint64_t **pins, size_t *n,
				struct cfs_error *err)
{
	sqlite3_stmt *st = cfs_sql_stmt(db, "SELECT ino FROM pins", err, "");
	enum cfs_err rc = st ? CFS_OK : err->code;
	size_t cap = 0;
	bool row = true;

	*pins = NULL;
	*n = 0;
	while (rc == CFS_OK &&
	       (rc = cfs_sql_step(db, st, &row, err)) == CFS_OK && row) {
		if (*n == cap) {
			void *p = realloc(*pins,
					  (cap = 2 * cap + 8) * sizeof(**pins));

			if (!p) {
				rc = cfs_fail(err, CFS_ERR_INTERNAL,
					      "out of memory");
				break;
			}
			*pins = p;
		}
		(*pins)[(*n)++] = (uint64_t)sqlite3_column_int64(st, 0);
	}
	if (st)
		sqlite3_reset(st);
	return rc;
}

/* Blocks eviction keeps: queued, of local changes, pinned. */
static enum cfs_err kept_blocks(struct cfs_sql *db, struct cfs_blockset *s,
				struct cfs_error *err)
{
	uint64_t *pins = NULL;
	size_t n = 0;
	enum cfs_err rc = blockset_fill(
		db,
		cfs_sql_stmt(db,
			     "SELECT blocks FROM ops WHERE blocks IS NOT NULL",
			     err, ""),
		s, err);

	if (rc == CFS_OK)
		rc = blockset_fill(db,
				   cfs_sql_stmt(db,
						"SELECT blocks FROM entries"
						" WHERE pending > 0"
						" AND blocks IS NOT NULL",
						err, ""),
				   s, err);
	if (rc == CFS_OK)
		rc = pinned_inos(db, &pins, &n, err);
	for (size_t i = 0; rc == CFS_OK && i < n; i++)
		rc = blocks_below(db, pins[i], s, err);
	free(pins);
	if (rc == CFS_OK)
		cfs_blockset_seal(s);
	return rc;
}

/* Drops block id: its row, then its file. */
static enum cfs_err drop(struct cache *c, struct cfs_sql *db,
			 const struct cfs_block_id *id, struct cfs_error *err)
{
	enum cfs_err rc =
		cfs_sql_exec(db, "DELETE FROM blocks WHERE id = ?1", err, "b",
			     id->b, (size_t)CFS_BLOCK_ID_LEN);
	int e = rc ? 0 : blockcache_remove(c, id);
	char hex[CFS_BLOCK_ID_HEX_LEN + 1];

	if (rc || e == 0 || e == -ENOENT)
		return rc;
	cfs_block_id_to_hex(id, hex);
	return cfs_fail(err, CFS_ERR_INTERNAL,
			"cannot remove block %s from '%s': %s", hex, c->path,
			strerror(-e));
}

/* The indexed blocks, in the order eviction takes them, with sizes. */
static enum cfs_err candidates(struct cfs_sql *db, struct cfs_blockset *ids,
			       uint64_t **sizes, uint64_t *total,
			       struct cfs_error *err)
{
	sqlite3_stmt *st = cfs_sql_stmt(
		db, "SELECT id, size FROM blocks ORDER BY used, stored", err,
		"");
	enum cfs_err rc = st ? CFS_OK : err->code;
	size_t cap = 0;
	bool row = true;

	*sizes = NULL;
	*total = 0;
	while (rc == CFS_OK &&
	       (rc = cfs_sql_step(db, st, &row, err)) == CFS_OK && row) {
		if (sqlite3_column_bytes(st, 0) != CFS_BLOCK_ID_LEN)
			continue;
		if (ids->n == cap) {
			void *p = realloc(*sizes, (cap = 2 * cap + 64) *
							  sizeof(**sizes));

			if (!p) {
				rc = cfs_fail(err, CFS_ERR_INTERNAL,
					      "out of memory");
				break;
			}
			*sizes = p;
		}
		rc = cfs_blockset_add_raw(ids, sqlite3_column_blob(st, 0),
					  CFS_BLOCK_ID_LEN, err);
		if (rc == CFS_OK) {
			(*sizes)[ids->n - 1] =
				(uint64_t)sqlite3_column_int64(st, 1);
			*total += (*sizes)[ids->n - 1];
		}
	}
	if (st)
		sqlite3_reset(st);
	return rc;
}

/* Blocks some file, shadow or queued operation lists: those the unlisted
 * sweep keeps. */
static enum cfs_err listed_blocks(struct cfs_sql *db, struct cfs_blockset *s,
				  struct cfs_error *err)
{
	static const char *const sql[] = {
		"SELECT blocks FROM entries WHERE blocks IS NOT NULL",
		"SELECT blocks FROM shadow WHERE blocks IS NOT NULL",
		"SELECT blocks FROM ops WHERE blocks IS NOT NULL",
	};
	enum cfs_err rc = CFS_OK;

	for (size_t i = 0; rc == CFS_OK && i < 3; i++)
		rc = blockset_fill(db, cfs_sql_stmt(db, sql[i], err, ""), s,
				   err);
	if (rc == CFS_OK)
		cfs_blockset_seal(s);
	return rc;
}

void upkeep_streamed_keep(struct cache *c, const struct cfs_block_id *id,
			  int64_t until)
{
	int64_t now = (int64_t)time(NULL);
	size_t k = 0, soonest = 0;

	pthread_mutex_lock(&c->streamed_lock);
	for (size_t i = 0; i < c->n_streamed; i++)
		if (c->streamed[i].until > now &&
		    !cfs_block_id_equal(&c->streamed[i].id, id))
			c->streamed[k++] = c->streamed[i];
	c->n_streamed = k;
	if (!c->streamed &&
	    !(c->streamed = calloc(CACHE_STREAMED_MAX, sizeof(*c->streamed))))
		goto out; /* only the sweep may come early */
	if (k == CACHE_STREAMED_MAX) {
		for (size_t i = 1; i < k; i++)
			if (c->streamed[i].until < c->streamed[soonest].until)
				soonest = i;
		c->streamed[soonest] = c->streamed[--c->n_streamed];
	}
	c->streamed[c->n_streamed++] =
		(struct cache_streamed){ .id = *id, .until = until };
out:
	pthread_mutex_unlock(&c->streamed_lock);
}

bool upkeep_streamed_expire(struct cache *c)
{
	int64_t now = (int64_t)time(NULL);
	size_t k = 0, n;

	pthread_mutex_lock(&c->streamed_lock);
	n = c->n_streamed;
	for (size_t i = 0; i < n; i++)
		if (c->streamed[i].until > now)
			c->streamed[k++] = c->streamed[i];
	c->n_streamed = k;
	pthread_mutex_unlock(&c->streamed_lock);
	return k < n;
}

/* Adds the blocks upkeep_streamed_keep() still keeps to s. */
static enum cfs_err streamed_blocks(struct cache *c, struct cfs_blockset *s,
				    struct cfs_error *err)
{
	int64_t now = (int64_t)time(NULL);
	enum cfs_err rc = CFS_OK;

	pthread_mutex_lock(&c->streamed_lock);
	for (size_t i = 0; rc == CFS_OK && i < c->n_streamed; i++)
		if (c->streamed[i].until > now)
			rc = cfs_blockset_add_raw(s, c->streamed[i].id.b,
						  CFS_BLOCK_ID_LEN, err);
	pthread_mutex_unlock(&c->streamed_lock);
	return rc;
}

/*
 * Drops blocks, least recently used first, but those in kept: with under,
 * every one of the files at or below it; else until at most keep_bytes
 * are left.  unlisted: kept holds every listed block, not only the
 * blocks kept_blocks() names.
 */
static enum cfs_err evict(struct cache *c, uint64_t under, uint64_t keep_bytes,
			  bool unlisted, struct upkeep_tally *t,
			  struct cfs_error *err)
{
	struct cfs_blockset kept = { 0 }, order = { 0 }, only = { 0 };
	uint64_t *sizes = NULL, total = 0;
	struct cfs_sql *db;
	enum cfs_err rc;

	*t = (struct upkeep_tally){ 0 };
	blockcache_write_touches(c); /* least recently used by then */
	pthread_rwlock_wrlock(&c->upkeep);
	db = cache_db(c, err);
	if (!db)
		rc = err->code;
	else if (!unlisted)
		rc = kept_blocks(db, &kept, err);
	/* Before the seal that listed_blocks() ends with. */
	else if ((rc = streamed_blocks(c, &kept, err)) == CFS_OK)
		rc = listed_blocks(db, &kept, err);
	if (rc == CFS_OK && under)
		rc = blocks_below(db, under, &only, err);
	if (rc == CFS_OK)
		cfs_blockset_seal(&only);
	if (rc == CFS_OK)
		rc = candidates(db, &order, &sizes, &total, err);
	for (size_t i = 0; rc == CFS_OK && i < order.n; i++) {
		if (under ? !cfs_blockset_has(&only, &order.v[i])
			  : total <= keep_bytes)
			continue;
		if (cfs_blockset_has(&kept, &order.v[i])) {
			t->kept++;
			continue;
		}
		rc = drop(c, db, &order.v[i], err);
		if (rc == CFS_OK) {
			t->blocks++;
			t->bytes += sizes[i];
			total -= sizes[i];
		}
	}
	if (db)
		cache_db_release(c, db);
	pthread_rwlock_unlock(&c->upkeep);
	free(kept.v);
	free(order.v);
	free(only.v);
	free(sizes);
	return rc;
}

enum cfs_err upkeep_evict(struct cache *c, uint64_t under, uint64_t keep_bytes,
			  struct upkeep_tally *t, struct cfs_error *err)
{
	return evict(c, under, keep_bytes, false, t, err);
}

enum cfs_err upkeep_evict_unlisted(struct cache *c, struct upkeep_tally *t,
				   struct cfs_error *err)
{
	return evict(c, 0, 0, true, t, err);
}

enum cfs_err upkeep_kept_bytes(struct cfs_sql *db, uint64_t *bytes,
			       struct cfs_error *err)
{
	struct cfs_blockset kept = { 0 };
	sqlite3_stmt *st;
	enum cfs_err rc = kept_blocks(db, &kept, err);
	bool row = true;

	*bytes = 0;
	for (size_t i = 0; rc == CFS_OK && i < kept.n; i++) {
		st = cfs_sql_stmt(db, "SELECT size FROM blocks WHERE id = ?1",
				  err, "b", kept.v[i].b,
				  (size_t)CFS_BLOCK_ID_LEN);
		rc = st ? cfs_sql_step(db, st, &row, err) : err->code;
		if (rc == CFS_OK && row)
			*bytes += (uint64_t)sqlite3_column_int64(st, 0);
		if (st)
			sqlite3_reset(st);
	}
	cfs_blockset_release(&kept);
	return rc;
}

/* Under the upkeep lock: the disk bytes of the staging files. */
static uint64_t staged_bytes(struct cache *c)
{
	DIR *d = cache_opendir(c->dirty_fd);
	struct dirent *de;
	uint64_t sum = 0;
	struct stat st;

	if (!d)
		return 0;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.' &&
		    fstatat(c->dirty_fd, de->d_name, &st,
			    AT_SYMLINK_NOFOLLOW) == 0)
			sum += (uint64_t)st.st_blocks * 512;
	closedir(d);
	return sum;
}

/* Calls fn(arg, dirfd of DIR/blocks/XX, name, id) for each block file;
 * stops at the first error fn returns. */
typedef enum cfs_err (*each_block_fn)(void *arg, int dirfd, const char *name,
				      const struct cfs_block_id *id,
				      bool valid);

static enum cfs_err each_block_file(struct cache *c, each_block_fn fn,
				    void *arg, struct cfs_error *err)
{
	DIR *top = cache_opendir(c->blocks_fd);
	struct dirent *de;
	enum cfs_err rc = CFS_OK;

	if (!top)
		return cfs_fail(err, CFS_ERR_INTERNAL,
				"cannot list '%s/blocks': %s", c->path,
				strerror(errno));
	while (rc == CFS_OK && (de = readdir(top))) {
		int fd;
		DIR *sub;
		struct dirent *f;

		if (de->d_name[0] == '.')
			continue;
		fd = openat(c->blocks_fd, de->d_name,
			    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		sub = fd >= 0 ? fdopendir(fd) : NULL;
		if (!sub) {
			if (fd >= 0)
				close(fd);
			continue;
		}
		while (rc == CFS_OK && (f = readdir(sub))) {
			struct cfs_block_id id;
			bool valid;

			if (f->d_name[0] == '.')
				continue;
			valid = blockcache_name_id(f->d_name, &id) &&
				strncmp(f->d_name, de->d_name, 2) == 0;
			rc = fn(arg, dirfd(sub), f->d_name, &id, valid);
		}
		closedir(sub);
	}
	closedir(top);
	return rc;
}

struct walk {
	struct cache *c;
	struct cfs_sql *db;
	upkeep_report_fn report;
	void *arg;
	struct upkeep_tally *t;
	struct cfs_error *err;
};

/* Removes a block file that must not be served, and its row. */
static enum cfs_err remove_bad(struct walk *w, int dirfd, const char *name,
			       const struct cfs_block_id *id, bool valid,
			       const char *why)
{
	enum cfs_err rc =
		valid ? cfs_sql_exec(w->db, "DELETE FROM blocks WHERE id = ?1",
				     w->err, "b", id->b,
				     (size_t)CFS_BLOCK_ID_LEN)
		      : CFS_OK;

	if (rc == CFS_OK && unlinkat(dirfd, name, 0) && errno != ENOENT)
		rc = cfs_fail(w->err, CFS_ERR_INTERNAL,
			      "cannot remove block file '%s' from '%s': %s",
			      name, w->c->path, strerror(errno));
	if (rc == CFS_OK && w->report)
		w->report(w->arg, valid ? id : NULL, why);
	return rc;
}

static enum cfs_err verify_one(void *arg, int dirfd, const char *name,
			       const struct cfs_block_id *id, bool valid)
{
	struct walk *w = arg;
	uint64_t size = 0;
	int fd = valid ? openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
		       : -1;
	struct cfs_blocklist bl = { 0 };
	int e = fd >= 0 ? cfs_blocklist_cut_fd(fd, &bl, &size) : -EINVAL;
	const char *why = NULL;

	if (fd >= 0)
		close(fd);
	w->t->blocks++;
	w->t->bytes += size;
	if (!valid)
		why = "not named for a block";
	else if (e == -ENOMEM)
		return cfs_fail(w->err, CFS_ERR_INTERNAL, "out of memory");
	else if (e)
		why = "unreadable";
	else if (bl.n > 1 || size == 0 || !cfs_block_id_equal(&bl.ids[0], id))
		why = "corrupt: its bytes do not hash to its name";
	cfs_blocklist_release(&bl);
	if (!why)
		return CFS_OK;
	w->t->bad++;
	return remove_bad(w, dirfd, name, id, valid, why);
}

enum cfs_err upkeep_verify(struct cache *c, upkeep_report_fn fn, void *arg,
			   struct upkeep_tally *t, struct cfs_error *err)
{
	struct walk w = {
		.c = c, .report = fn, .arg = arg, .t = t, .err = err
	};
	enum cfs_err rc;

	*t = (struct upkeep_tally){ 0 };
	w.db = cache_db(c, err);
	if (!w.db)
		return err->code;
	rc = each_block_file(c, verify_one, &w, err);
	cache_db_release(c, w.db);
	return rc;
}

static enum cfs_err gc_one(void *arg, int dirfd, const char *name,
			   const struct cfs_block_id *id, bool valid)
{
	struct walk *w = arg;
	int64_t one;
	bool indexed = false;
	enum cfs_err rc =
		valid ? cfs_sql_int64(w->db,
				      cfs_sql_stmt(w->db,
						   "SELECT 1 FROM blocks"
						   " WHERE id = ?1",
						   w->err, "b", id->b,
						   (size_t)CFS_BLOCK_ID_LEN),
				      &one, &indexed, w->err)
		      : CFS_OK;

	if (rc || indexed)
		return rc;
	w->t->blocks++;
	return remove_bad(w, dirfd, name, id, valid,
			  valid ? "not in the index" : "not named for a block");
}

/* Index rows whose block file is gone. */
static enum cfs_err gc_rows(struct walk *w)
{
	struct cfs_blockset rows = { 0 };
	uint64_t *sizes = NULL, total;
	enum cfs_err rc = candidates(w->db, &rows, &sizes, &total, w->err);

	for (size_t i = 0; rc == CFS_OK && i < rows.n; i++) {
		int fd = blockcache_open(w->c, &rows.v[i]);

		if (fd >= 0) {
			close(fd);
			continue;
		}
		rc = cfs_sql_exec(w->db, "DELETE FROM blocks WHERE id = ?1",
				  w->err, "b", rows.v[i].b,
				  (size_t)CFS_BLOCK_ID_LEN);
		w->t->rows += rc == CFS_OK;
	}
	free(rows.v);
	free(sizes);
	return rc;
}

enum cfs_err upkeep_gc(struct cache *c, upkeep_report_fn fn, void *arg,
		       struct upkeep_tally *t, struct cfs_error *err)
{
	struct walk w = {
		.c = c, .report = fn, .arg = arg, .t = t, .err = err
	};
	enum cfs_err rc;

	*t = (struct upkeep_tally){ 0 };
	pthread_rwlock_wrlock(&c->upkeep);
	w.db = cache_db(c, err);
	rc = w.db ? each_block_file(c, gc_one, &w, err) : err->code;
	if (rc == CFS_OK)
		rc = gc_rows(&w);
	if (rc == CFS_OK)
		rc = cfs_sql_exec(w.db,
				  "DELETE FROM pins WHERE ino NOT IN"
				  " (SELECT ino FROM entries)",
				  err, "");
	if (rc == CFS_OK)
		rc = cfs_sql_exec(w.db,
				  "DELETE FROM conflicts WHERE ino NOT IN"
				  " (SELECT ino FROM entries WHERE kind != 0)",
				  err, "");
	if (w.db)
		cache_db_release(c, w.db);
	pthread_rwlock_unlock(&c->upkeep);
	return rc;
}

enum cfs_err upkeep_measure(struct cache *c, struct upkeep_size *out,
			    struct cfs_error *err)
{
	struct cfs_sql *db;
	sqlite3_stmt *st;
	enum cfs_err rc;
	bool row = false;

	*out = (struct upkeep_size){ 0 };
	pthread_rwlock_wrlock(&c->upkeep);
	db = cache_db(c, err);
	st = db ? cfs_sql_stmt(db,
			       "SELECT COUNT(*), COALESCE(SUM(size), 0)"
			       " FROM blocks",
			       err, "")
		: NULL;
	rc = st ? cfs_sql_step(db, st, &row, err) : err->code;
	if (rc == CFS_OK && row) {
		out->blocks = (uint64_t)sqlite3_column_int64(st, 0);
		out->bytes = (uint64_t)sqlite3_column_int64(st, 1);
	}
	if (st)
		sqlite3_reset(st);
	if (db)
		cache_db_release(c, db);
	out->staged = staged_bytes(c);
	pthread_rwlock_unlock(&c->upkeep);
	return rc;
}

/* Notes a block verify or gc found bad into the JSON array arg. */
static void report_json(void *arg, const struct cfs_block_id *id,
			const char *what)
{
	char hex[CFS_BLOCK_ID_HEX_LEN + 1] = "";

	if (id)
		cfs_block_id_to_hex(id, hex);
	json_array_append_new(
		arg, json_pack("{s:s, s:s}", "block", hex, "problem", what));
}

/* What upkeep_json() runs for a command's name. */
struct upkeep_cmd {
	const char *name;
	enum cfs_err (*run)(struct cache *c, uint64_t under, uint64_t keep,
			    json_t *bad, struct upkeep_tally *t,
			    struct cfs_error *err);
};

static enum cfs_err run_evict(struct cache *c, uint64_t under, uint64_t keep,
			      json_t *bad, struct upkeep_tally *t,
			      struct cfs_error *err)
{
	(void)bad;
	return upkeep_evict(c, under, keep, t, err);
}

static enum cfs_err run_verify(struct cache *c, uint64_t under, uint64_t keep,
			       json_t *bad, struct upkeep_tally *t,
			       struct cfs_error *err)
{
	(void)under, (void)keep;
	return upkeep_verify(c, report_json, bad, t, err);
}

static enum cfs_err run_gc(struct cache *c, uint64_t under, uint64_t keep,
			   json_t *bad, struct upkeep_tally *t,
			   struct cfs_error *err)
{
	(void)under, (void)keep;
	return upkeep_gc(c, report_json, bad, t, err);
}

static const struct upkeep_cmd upkeep_cmds[] = {
	{ "evict", run_evict },
	{ "verify", run_verify },
	{ "gc", run_gc },
};

json_t *upkeep_json(struct cache *c, const char *cmd, uint64_t under,
		    uint64_t keep, struct cfs_error *err)
{
	const struct upkeep_cmd *u = CFS_CMDTABLE_FIND(upkeep_cmds, cmd);
	struct upkeep_tally t;
	json_t *bad;

	/* Whatever the caller mistyped, never remove blocks it did not ask
	 * to: an unknown name runs nothing. */
	if (!u) {
		cfs_fail(err, CFS_ERR_BAD_FIELD,
			 "unknown cache upkeep command '%s'"
			 " (evict, verify or gc)",
			 cmd ? cmd : "");
		return NULL;
	}
	if (!(bad = json_array())) {
		cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
		return NULL;
	}
	if (u->run(c, under, keep, bad, &t, err)) {
		json_decref(bad);
		return NULL;
	}
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:o}", "blocks",
			 (json_int_t)t.blocks, "bytes", (json_int_t)t.bytes,
			 "bad", (json_int_t)t.bad, "kept", (json_int_t)t.kept,
			 "rows", (json_int_t)t.rows, "problems", bad);
}
