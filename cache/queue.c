/*
 * The queue of operations for the server (cache/local.h): reading it in
 * batches, and settling each operation's fate as the server answered.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cache/pending.h"
#include "cache/rows.h"

void queued_op_release(struct queued_op *op)
{
	free(op->path);
	free(op->to);
	free(op->target);
	cfs_blocklist_release(&op->blocks);
	memset(op, 0, sizeof(*op));
}

enum cfs_err queue_length(struct cfs_sql *db, int64_t *n, struct cfs_error *err)
{
	bool found;

	return cfs_sql_int64(
		db, cfs_sql_stmt(db, "SELECT COUNT(*) FROM ops", err, ""), n,
		&found, err);
}

/* Sets the sent mark of the ops whose recorded[i] is true (all when
 * recorded is NULL) to sent. */
static enum cfs_err mark_sent(struct cfs_sql *db, const struct queued_op *ops,
			      const bool *recorded, size_t n, bool sent,
			      struct cfs_error *err)
{
	enum cfs_err rc = cfs_sql_begin(db, true, err);

	for (size_t i = 0; rc == CFS_OK && i < n; i++)
		if (!recorded || recorded[i])
			rc = cfs_sql_exec(
				db, "UPDATE ops SET sent = ?2 WHERE seq = ?1",
				err, "ii", ops[i].seq, (int64_t)sent);
	return cfs_sql_end(db, rc, err);
}

enum cfs_err queue_sent(struct cfs_sql *db, const struct queued_op *ops,
			size_t n, struct cfs_error *err)
{
	return mark_sent(db, ops, NULL, n, true, err);
}

enum cfs_err queue_answered(struct cfs_sql *db, const struct queued_op *ops,
			    const bool *recorded, size_t n,
			    struct cfs_error *err)
{
	return mark_sent(db, ops, recorded, n, false, err);
}

enum cfs_err queue_in_doubt(struct cfs_sql *db, bool *any,
			    struct cfs_error *err)
{
	int64_t n = 0;
	bool found;
	enum cfs_err rc = cfs_sql_int64(
		db,
		cfs_sql_stmt(db, "SELECT EXISTS(SELECT 1 FROM ops WHERE sent)",
			     err, ""),
		&n, &found, err);

	*any = n != 0;
	return rc;
}

enum cfs_err queue_first_seq(struct cfs_sql *db, int64_t *seq,
			     struct cfs_error *err)
{
	bool found;

	return cfs_sql_int64(
		db,
		cfs_sql_stmt(db, "SELECT COALESCE(MIN(seq), 0) FROM ops", err,
			     ""),
		seq, &found, err);
}

enum cfs_err queue_length_under(struct cfs_sql *db, int64_t ns,
				const char *path, int64_t *n,
				struct cfs_error *err)
{
	bool found;

	return cfs_sql_int64(
		db,
		cfs_sql_stmt(
			db,
			"SELECT COUNT(*) FROM ops WHERE ns = ?1"
			" AND (path = ?2 OR to_path = ?2"
			" OR substr(path, 1, length(?2) + 1) = ?2 || '/'"
			" OR substr(to_path, 1, length(?2) + 1) = ?2 || '/')",
			err, "it", ns, path),
		n, &found, err);
}

static enum cfs_err op_from_row(sqlite3_stmt *st, struct queued_op *op,
				struct cfs_error *err)
{
	const char *to = (const char *)sqlite3_column_text(st, 6);
	const char *target = (const char *)sqlite3_column_text(st, 11);

	*op = (struct queued_op){
		.seq = sqlite3_column_int64(st, 0),
		.ino = (uint64_t)sqlite3_column_int64(st, 1),
		.ns = sqlite3_column_int64(st, 2),
		.type = (enum queue_type)sqlite3_column_int(st, 3),
		.kind = (enum cfs_kind)sqlite3_column_int(st, 4),
		.size = (uint64_t)sqlite3_column_int64(st, 7),
		.mtime_ns = sqlite3_column_int64(st, 8),
		.mode = (uint32_t)sqlite3_column_int(st, 9),
		.replace = sqlite3_column_int(st, 12) != 0,
		.tries = (unsigned)sqlite3_column_int(st, 13),
		.base_jid = sqlite3_column_int64(st, 14),
		.node = sqlite3_column_int64(st, 15),
		.atime_ns = sqlite3_column_int64(st, 16),
		.ctime_ns = sqlite3_column_int64(st, 17),
	};
	op->path = strdup((const char *)sqlite3_column_text(st, 5));
	op->to = to ? strdup(to) : NULL;
	op->target = target ? strdup(target) : NULL;
	if (!op->path || (to && !op->to) || (target && !op->target) ||
	    cfs_blocklist_from_raw(sqlite3_column_blob(st, 10),
				   (size_t)sqlite3_column_bytes(st, 10),
				   &op->blocks)) {
		queued_op_release(op);
		return cfs_fail(err, CFS_ERR_INTERNAL,
				"out of memory or a corrupt queued operation");
	}
	/* Invariant 4: files (and the other leaves) carry their base;
	 * folders and moves do not need one. */
	if (op->kind != CFS_KIND_FILE && op->kind != CFS_KIND_SYMLINK &&
	    !cfs_kind_is_special(op->kind))
		op->base_jid = -1;
	if (op->type == QUEUE_MOVE)
		op->base_jid = -1;
	return CFS_OK;
}

/* The inodes a batch holds, hashed (invariant 5): a batch that carries a
 * tree's deletes holds many.  Open addressing; 0 is no inode. */
struct batch_inos {
	uint64_t *slot;
	size_t n, cap; /* cap a power of two, at least twice n */
};

static size_t batch_inos_home(uint64_t ino, size_t cap)
{
	return (size_t)((ino * 0x9E3779B97F4A7C15ull) >> 17) & (cap - 1);
}

static void batch_inos_put(uint64_t *slot, size_t cap, uint64_t ino)
{
	size_t i = batch_inos_home(ino, cap);

	while (slot[i] && slot[i] != ino)
		i = (i + 1) & (cap - 1);
	slot[i] = ino;
}

static bool batch_inos_has(const struct batch_inos *s, uint64_t ino)
{
	size_t i = s->cap ? batch_inos_home(ino, s->cap) : 0;

	while (s->cap && s->slot[i]) {
		if (s->slot[i] == ino)
			return true;
		i = (i + 1) & (s->cap - 1);
	}
	return false;
}

static enum cfs_err batch_inos_add(struct batch_inos *s, uint64_t ino,
				   struct cfs_error *err)
{
	assert(ino != 0);
	if (2 * (s->n + 1) > s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 2048;
		uint64_t *slot = calloc(cap, sizeof(*slot));

		if (!slot)
			return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
		for (size_t i = 0; i < s->cap; i++)
			if (s->slot[i])
				batch_inos_put(slot, cap, s->slot[i]);
		free(s->slot);
		s->slot = slot;
		s->cap = cap;
	}
	batch_inos_put(s->slot, s->cap, ino);
	s->n++;
	return CFS_OK;
}

/* How much of scope (len bytes, a path) is path or a folder above it and
 * a folder above or at scope: 0 when only the namespace's root is. */
static size_t common_folder(const char *scope, size_t len, const char *path)
{
	size_t m = 0;

	while (m < len && path[m] && scope[m] == path[m])
		m++;
	while (m > 0 && !((m == len || scope[m] == '/') &&
			  (path[m] == '\0' || path[m] == '/')))
		m--;
	return m;
}

/*
 * The ord of the last folder's delete, within most rows after op last,
 * that ends a run of deletes of its namespace under that folder from last
 * on: the run a tree's delete may carry past a batch's max (fs/collapse.c
 * decides whether it does).  0: none.  It reads a few columns of each
 * row, so that deletes that no folder's delete ends (rm of a folder's
 * files, the folder kept) are read in full in no batch but the one that
 * sends them.
 */
static enum cfs_err run_end(struct cfs_sql *db, const struct queued_op *last,
			    size_t most, int64_t *end, struct cfs_error *err)
{
	sqlite3_stmt *st =
		cfs_sql_stmt(db,
			     "SELECT ord, ns, type, kind, path FROM ops"
			     " WHERE ord > (SELECT ord FROM ops WHERE seq = ?1)"
			     " ORDER BY ord",
			     err, "i", last->seq);
	enum cfs_err rc = st ? CFS_OK : err->code;
	size_t len = strlen(last->path), seen = 0;
	bool row = last->type == QUEUE_DELETE;

	*end = 0;
	while (rc == CFS_OK && row && seen++ < most &&
	       (rc = cfs_sql_step(db, st, &row, err)) == CFS_OK && row) {
		const char *path = (const char *)sqlite3_column_text(st, 4);

		if (sqlite3_column_int64(st, 1) != last->ns ||
		    sqlite3_column_int(st, 2) != QUEUE_DELETE)
			break;
		len = common_folder(last->path, len, path);
		if (len == 0)
			break;
		if (sqlite3_column_int(st, 3) == CFS_KIND_DIR &&
		    path[len] == '\0')
			*end = sqlite3_column_int64(st, 0);
	}
	if (st)
		sqlite3_reset(st);
	return rc;
}

/* Room in *ops for one more of the batch's n. */
static enum cfs_err batch_room(struct queued_op **ops, size_t n, size_t *cap,
			       struct cfs_error *err)
{
	struct queued_op *more;

	if (n < *cap)
		return CFS_OK;
	more = realloc(*ops, 2 * *cap * sizeof(**ops));
	if (!more)
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	*ops = more;
	*cap *= 2;
	return CFS_OK;
}

enum cfs_err queue_batch(struct cfs_sql *db, size_t max, size_t reach,
			 struct queued_op **ops, size_t *n,
			 struct cfs_error *err)
{
	size_t most = reach > max ? reach : max, cap = max ? max : 1;
	sqlite3_stmt *st = cfs_sql_stmt(
		db,
		"SELECT o.seq, o.ino, o.ns, o.type, o.kind, o.path, o.to_path,"
		" o.size, o.mtime_ns, o.mode, o.blocks, o.target, o.replace,"
		" o.tries, e.jid, e.node, o.atime_ns, o.ctime_ns, o.ord"
		" FROM ops o JOIN entries e"
		" ON e.ino = o.ino"
		" ORDER BY o.ord",
		err, "");
	enum cfs_err rc = st ? CFS_OK : err->code;
	struct batch_inos inos = { 0 };
	int64_t end = 0;
	bool row = true;

	*n = 0;
	*ops = malloc(cap * sizeof(**ops));
	if (!*ops)
		rc = cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	while (rc == CFS_OK && *n < most &&
	       (rc = cfs_sql_step(db, st, &row, err)) == CFS_OK && row) {
		uint64_t ino = (uint64_t)sqlite3_column_int64(st, 1);

		if (*n > 0 && sqlite3_column_int64(st, 2) != (*ops)[0].ns)
			break;
		if (*n == max && max > 0)
			rc = run_end(db, &(*ops)[max - 1], most - max, &end,
				     err);
		if (rc || (*n >= max && sqlite3_column_int64(st, 18) > end))
			break;
		if (batch_inos_has(&inos, ino))
			break; /* invariant 5 */
		rc = batch_inos_add(&inos, ino, err);
		if (rc == CFS_OK)
			rc = batch_room(ops, *n, &cap, err);
		if (rc == CFS_OK)
			rc = op_from_row(st, &(*ops)[*n], err);
		if (rc == CFS_OK)
			(*n)++;
	}
	if (st)
		sqlite3_reset(st);
	free(inos.slot);
	if (rc) {
		for (size_t i = 0; i < *n; i++)
			queued_op_release(&(*ops)[i]);
		free(*ops);
		*ops = NULL;
		*n = 0;
	}
	return rc;
}

static enum cfs_err dequeue(struct cfs_sql *db, const struct queued_op *op,
			    struct cfs_error *err)
{
	return cfs_sql_exec(db, "DELETE FROM ops WHERE seq = ?1", err, "i",
			    op->seq);
}

static enum cfs_err refuse(struct cfs_sql *db, const struct queued_op *op,
			   struct mirror_changes *ch, struct cfs_error *err)
{
	enum cfs_err rc = dequeue(db, op, err);

	if (rc == CFS_OK)
		rc = cfs_sql_exec(
			db, "UPDATE shadow SET refused = 1 WHERE ino = ?1", err,
			"i", (int64_t)op->ino);
	return rc ? rc : pending_done(db, op->ino, ch, err);
}

/*
 * Entry e takes node, which the server gave op.  Another entry may still
 * hold it: one removed here whose removal the server has applied, or the
 * listed copy of a node another device created at the same place (the
 * server answers a create of content or a folder it has with that node).
 * With no local changes of its own, that entry is the server's state of
 * e's node and goes, its children becoming e's; with changes, the two
 * cannot be told apart and op waits, failing loudly (queue_failing).
 */
static enum cfs_err take_node(struct cfs_sql *db, const struct mirror_entry *e,
			      int64_t node, struct mirror_changes *ch,
			      struct cfs_error *err)
{
	struct mirror_entry other, gone;
	enum cfs_err rc = rows_by_node(db, e->ns, node, &other, err);

	if (rc == CFS_ERR_NOT_FOUND)
		return rows_set_node(db, e, node, err);
	if (rc)
		return rc;
	if (other.pending > 0)
		rc = cfs_fail(
			err, CFS_ERR_CONFLICT,
			"the server gave '%s' the node of '%s' (inode %llu), which has changes of its own",
			e->name, other.name, (unsigned long long)other.ino);
	gone = other;
	gone.kind = CFS_KIND_DELETED;
	if (rc == CFS_OK)
		rc = rows_note_change(db, &other, &gone, ch, err);
	if (rc == CFS_OK)
		rc = rows_delete(db, other.ino, err);
	if (rc == CFS_OK)
		rc = rows_set_node(db, e, node, err);
	mirror_entry_release(&other);
	return rc;
}

/*
 * The server's state of op's node holds op's bytes at jid now: its shadow
 * (kept while more changes wait) says so, not the older state a listing
 * gave.  A share that moves the node before the mount lists it again
 * finds its JID by these bytes (cache/mirror.c, invariant 10): without
 * them the next change was sent on no base, a conflict with itself
 * (harness seed 519: a second mount's queue under a folder the first
 * one shared).
 */
static enum cfs_err shadow_committed(struct cfs_sql *db,
				     const struct queued_op *op, int64_t jid,
				     struct cfs_error *err)
{
	return cfs_sql_exec(
		db,
		"UPDATE shadow SET kind = ?2, size = ?3, mtime_ns = ?4,"
		" mode = ?5, blocks = ?6, target = ?7, jid = ?8,"
		" atime_ns = ?9, ctime_ns = ?10"
		" WHERE ino = ?1 AND jid < ?8",
		err, "iiiiibtiii", (int64_t)op->ino, (int64_t)op->kind,
		(int64_t)op->size, op->mtime_ns, (int64_t)op->mode,
		(const void *)op->blocks.ids, op->blocks.n * CFS_BLOCK_ID_LEN,
		op->target, jid, op->atime_ns, op->ctime_ns);
}

/*
 * Move op is applied (before its dequeue): an operation queued before it
 * and not applied yet (left behind in its batch, sent again later: its
 * blocks were missing, say) names what op moved by the path op moved it
 * from, which the server no longer has: from now on it is op's to.
 */
static enum cfs_err repath_passed(struct cfs_sql *db,
				  const struct queued_op *op,
				  struct cfs_error *err)
{
	static const char *const sql[] = {
		"UPDATE ops SET path = ?3 || substr(path, length(?2) + 1)"
		" WHERE ns = ?1 AND ord < (SELECT ord FROM ops WHERE seq = ?4)"
		" AND (path = ?2 OR substr(path, 1, length(?2) + 1) = ?2 || '/')",
		"UPDATE ops SET to_path = ?3 || substr(to_path, length(?2) + 1)"
		" WHERE ns = ?1 AND ord < (SELECT ord FROM ops WHERE seq = ?4)"
		" AND (to_path = ?2"
		" OR substr(to_path, 1, length(?2) + 1) = ?2 || '/')",
	};
	enum cfs_err rc = CFS_OK;

	for (size_t i = 0; rc == CFS_OK && i < 2; i++)
		rc = cfs_sql_exec(db, sql[i], err, "itti", op->ns, op->path,
				  op->to, op->seq);
	return rc;
}

static enum cfs_err confirm(struct cfs_sql *db, const struct queued_op *op,
			    int64_t node, int64_t jid, int64_t prev_jid,
			    struct mirror_changes *ch, struct cfs_error *err)
{
	struct mirror_entry e;
	enum cfs_err rc =
		op->type == QUEUE_MOVE ? repath_passed(db, op, err) : CFS_OK;

	if (rc == CFS_OK)
		rc = dequeue(db, op, err);

	if (rc == CFS_OK)
		rc = rows_by_ino(db, op->ino, &e, err);
	if (rc == CFS_ERR_NOT_FOUND)
		return CFS_OK;
	if (rc)
		return rc;
	/* Nothing was at op's path (no JID): deleted elsewhere, or moved
	 * along with a folder above it that the listing has not told yet.
	 * No delete, then: as for a refused change, the entry shows the
	 * server's state as the mirror knows it, and the listing tells
	 * which (dropped, the node would never show again, since the
	 * cursor is past its rows). */
	if (op->type == QUEUE_DELETE && jid == 0 && e.node > 0 && !e.mount_ns) {
		mirror_entry_release(&e);
		return refuse(db, op, ch, err);
	}
	if (op->type == QUEUE_DELETE) {
		/* Invariant 3: the server dropped it; so do we, but for a
		 * tombstone at the delete's JID until the listing passes it
		 * (mirror.c's invariant 9). */
		if (e.mount_ns)
			rc = rows_forget_ns(db, e.mount_ns, err);
		if (rc == CFS_OK && e.kind == CFS_KIND_DELETED && jid > 0)
			rc = rows_tombstone(db, e.ino, jid, err);
		else if (rc == CFS_OK && e.kind == CFS_KIND_DELETED)
			rc = rows_delete(db, e.ino, err);
		else if (rc == CFS_OK)
			rc = pending_done(db, e.ino, ch, err);
		mirror_entry_release(&e);
		return rc;
	}
	/* Invariant 2: the server named the node.  A node other than the
	 * one an entry the server has is bound to means that one went
	 * elsewhere, and op made a new one at its old path: the listing
	 * brings both, so nothing of op is recorded on the entry. */
	if (op->type != QUEUE_MOVE && node > 0 && e.node > 0 &&
	    e.node != node) {
		mirror_entry_release(&e);
		return pending_done(db, op->ino, ch, err);
	}
	if (op->type != QUEUE_MOVE && node > 0 && e.node != node)
		rc = take_node(db, &e, node, ch, err);
	/* A move from a newer state than ours leaves our JID: the listing
	 * brings that state. */
	if (rc == CFS_OK && jid > e.jid &&
	    !(op->type == QUEUE_MOVE && prev_jid > e.jid))
		rc = cfs_sql_exec(db,
				  "UPDATE entries SET jid = ?2 WHERE ino = ?1",
				  err, "ii", (int64_t)e.ino, jid);
	/* That state, listed (the shadow at prev_jid: a folder shared
	 * meanwhile, say), is now at the entry's place, at jid, when op was
	 * its last change: settled, the entry shows it there, not back at
	 * the place op moved it from until the next listing. */
	if (rc == CFS_OK && op->type == QUEUE_MOVE && prev_jid > e.jid &&
	    jid > prev_jid && e.pending == 1)
		rc = cfs_sql_exec(db,
				  "UPDATE shadow SET parent = ?2, name = ?3,"
				  " jid = ?4 WHERE ino = ?1 AND jid = ?5",
				  err, "iitii", (int64_t)e.ino, e.parent,
				  e.name, jid, prev_jid);
	mirror_entry_release(&e);
	if (rc == CFS_OK && op->type != QUEUE_MOVE)
		rc = shadow_committed(db, op, jid, err);
	return rc ? rc : pending_done(db, op->ino, ch, err);
}

enum cfs_err queue_confirm(struct cfs_sql *db, const struct queued_op *op,
			   int64_t node, int64_t jid, int64_t prev_jid,
			   struct mirror_changes *ch, struct cfs_error *err)
{
	enum cfs_err rc = cfs_sql_begin(db, true, err);

	if (rc == CFS_OK)
		rc = confirm(db, op, node, jid, prev_jid, ch, err);
	return cfs_sql_end(db, rc, err);
}

enum cfs_err queue_confirm_deletes(struct cfs_sql *db,
				   const struct queued_op *ops, size_t n,
				   int64_t jid, struct mirror_changes *ch,
				   struct cfs_error *err)
{
	enum cfs_err rc = cfs_sql_begin(db, true, err);

	for (size_t i = 0; rc == CFS_OK && i < n; i++) {
		assert(ops[i].type == QUEUE_DELETE);
		rc = confirm(db, &ops[i], 0, jid, 0, ch, err);
	}
	return cfs_sql_end(db, rc, err);
}

static int ino_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Walks the mirror under folder dir (ns, node): *covers when each entry
 * there is in inos (sorted, n) or a tombstone, and all n are there;
 * *newest: the newest JID of those n. */
static enum cfs_err walk_under(struct cfs_sql *db, int64_t ns, int64_t node,
			       const uint64_t *inos, size_t n, bool *covers,
			       int64_t *newest, struct cfs_error *err)
{
	sqlite3_stmt *st = cfs_sql_stmt(
		db,
		"WITH RECURSIVE sub(ino, node) AS ("
		" SELECT ino, node FROM entries WHERE ns = ?1 AND parent = ?2"
		" UNION ALL SELECT e.ino, e.node FROM entries e JOIN sub"
		" ON e.ns = ?1 AND e.parent = sub.node)"
		" SELECT e.ino, e.kind, e.pending, e.jid FROM sub"
		" JOIN entries e ON e.ino = sub.ino",
		err, "ii", ns, node);
	enum cfs_err rc = st ? CFS_OK : err->code;
	size_t seen = 0;
	bool row = true;

	*covers = true;
	while (rc == CFS_OK && *covers &&
	       (rc = cfs_sql_step(db, st, &row, err)) == CFS_OK && row) {
		uint64_t ino = (uint64_t)sqlite3_column_int64(st, 0);
		bool deleted = sqlite3_column_int(st, 1) == CFS_KIND_DELETED;
		int64_t jid = sqlite3_column_int64(st, 3);

		if (deleted && sqlite3_column_int64(st, 2) == 0)
			continue; /* the server has applied its delete */
		*covers = deleted && bsearch(&ino, inos, n, sizeof(*inos),
					     ino_cmp) != NULL;
		seen++;
		if (jid > *newest)
			*newest = jid;
	}
	if (st)
		sqlite3_reset(st);
	if (rc == CFS_OK && seen != n)
		*covers = false;
	return rc;
}

enum cfs_err queue_deletes_cover(struct cfs_sql *db,
				 const struct queued_op *ops, size_t n,
				 int64_t *since, struct cfs_error *err)
{
	const struct queued_op *dir = &ops[n - 1];
	uint64_t *inos = calloc(n, sizeof(*inos));
	struct mirror_entry e;
	struct mirror_ns m;
	int64_t newest = 0;
	bool covers = false;
	enum cfs_err rc;

	*since = 0;
	if (!inos)
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	for (size_t i = 0; i + 1 < n; i++)
		inos[i] = ops[i].ino;
	qsort(inos, n - 1, sizeof(*inos), ino_cmp);
	/* One read: the cursor and the entries as one listing left them. */
	rc = cfs_sql_begin(db, false, err);
	if (rc == CFS_OK)
		rc = mirror_ns_get(db, dir->ns, &m, err);
	if (rc == CFS_OK)
		rc = rows_by_ino(db, dir->ino, &e, err);
	if (rc == CFS_OK) {
		newest = e.jid;
		if (e.kind == CFS_KIND_DELETED && e.node > 0 && m.listed)
			rc = walk_under(db, e.ns, e.node, inos, n - 1, &covers,
					&newest, err);
		mirror_entry_release(&e);
	}
	rc = cfs_sql_end(db, rc, err);
	free(inos);
	if (rc == CFS_ERR_NOT_FOUND)
		return CFS_OK;
	if (rc == CFS_OK && covers && newest <= m.cursor)
		*since = m.cursor;
	return rc;
}

enum cfs_err queue_refuse(struct cfs_sql *db, const struct queued_op *op,
			  struct mirror_changes *ch, struct cfs_error *err)
{
	enum cfs_err rc = cfs_sql_begin(db, true, err);

	if (rc == CFS_OK)
		rc = refuse(db, op, ch, err);
	return cfs_sql_end(db, rc, err);
}

/*
 * "NAME (HOST's conflicted copy YYYY-MM-DD).EXT", as Dropbox names them,
 * HOST this machine's name (at most 32 bytes; left out when it has none)
 * so that the copies of several machines tell whose they are; " N" before
 * ")" from the second try.  The extension is what follows the last '.'
 * (not a leading one).
 */
static void conflicted_name(const char *name, int n, char out[CFS_NAME_MAX + 1])
{
	const char *dot = strrchr(name, '.');
	char day[16], tag[96], host[33] = "", whose[40] = "", count[16] = "";
	time_t now = time(NULL);
	struct tm tm;
	size_t base, room;

	if (!dot || dot == name)
		dot = name + strlen(name);
	gmtime_r(&now, &tm);
	strftime(day, sizeof(day), "%Y-%m-%d", &tm);
	if (gethostname(host, sizeof(host) - 1) == 0 && host[0] &&
	    !strchr(host, '/'))
		snprintf(whose, sizeof(whose), "%s's ", host);
	if (n > 1)
		snprintf(count, sizeof(count), " %d", n);
	snprintf(tag, sizeof(tag), " (%sconflicted copy %s%s)", whose, day,
		 count);
	base = (size_t)(dot - name);
	room = CFS_NAME_MAX - strlen(tag) - strlen(dot);
	if (base > room)
		base = room;
	while (base && ((unsigned char)name[base] & 0xc0) == 0x80)
		base--; /* not in the middle of a character */
	if (snprintf(out, CFS_NAME_MAX + 1, "%.*s%s%s", (int)base, name, tag,
		     dot) > CFS_NAME_MAX)
		out[CFS_NAME_MAX] = '\0'; /* cannot happen: room was made */
}

static enum cfs_err copy_of(struct cfs_sql *db, const struct queued_op *op,
			    char copy[CFS_NAME_MAX + 1],
			    struct mirror_changes *ch, struct cfs_error *err)
{
	struct mirror_entry e, dir, c = { 0 }, taken;
	uint64_t dir_ino;
	bool found = true;
	enum cfs_err rc = rows_by_ino(db, op->ino, &e, err);

	if (rc)
		return rc;
	rc = mirror_parent(db, &e, &dir_ino, err);
	if (rc == CFS_OK)
		rc = mirror_get(db, dir_ino, &dir, err);
	for (int n = 1; rc == CFS_OK && found && n < 100; n++) {
		conflicted_name(e.name, n, copy);
		rc = rows_child(db, &dir, copy, &taken, &found, err);
		if (found)
			mirror_entry_release(&taken);
	}
	if (rc == CFS_OK && found)
		rc = cfs_fail(err, CFS_ERR_EXISTS,
			      "no free name for a conflicted copy of '%s'",
			      e.name);
	if (rc == CFS_OK) {
		c = (struct mirror_entry){
			.ns = e.ns,
			.parent = e.parent,
			.kind = op->kind,
			.size = op->size,
			.atime_ns = op->atime_ns,
			.mtime_ns = op->mtime_ns,
			.ctime_ns = op->ctime_ns,
			.mode = op->mode,
			.blocks = op->blocks,
			.target = op->target,
			.pending = 1, /* its state's, passed to it below */
		};
		snprintf(c.name, sizeof(c.name), "%s", copy);
		rc = pending_insert_new(db, &c, err);
	}
	if (rc == CFS_OK)
		rc = cfs_sql_exec(db,
				  "INSERT OR REPLACE INTO conflicts(ino,"
				  " original, made) VALUES (?1, ?2, ?3)",
				  err, "iti", (int64_t)c.ino, e.name,
				  (int64_t)time(NULL));
	if (rc == CFS_OK)
		rc = pending_pass_state(db, &c, err);
	if (rc == CFS_OK)
		rc = refuse(db, op, ch, err);
	if (rc == CFS_OK)
		rc = rows_note_children(ch, dir_ino, err);
	if (dir_ino && rc != CFS_ERR_NOT_FOUND)
		mirror_entry_release(&dir);
	mirror_entry_release(&e);
	return rc;
}

enum cfs_err queue_conflicted_copy(struct cfs_sql *db,
				   const struct queued_op *op,
				   char copy[CFS_NAME_MAX + 1],
				   struct mirror_changes *ch,
				   struct cfs_error *err)
{
	enum cfs_err rc = cfs_sql_begin(db, true, err);

	if (rc == CFS_OK)
		rc = copy_of(db, op, copy, ch, err);
	return cfs_sql_end(db, rc, err);
}

/*
 * Entry ino, which the server has no longer at its place, leaves its node
 * (invariant 2).  A newer state of that node the mirror already listed
 * (its shadow: moved elsewhere) becomes an entry of its own, or nothing
 * would ever show it.
 */
static enum cfs_err leave_node(struct cfs_sql *db, uint64_t ino,
			       struct mirror_changes *ch, struct cfs_error *err)
{
	struct mirror_entry e, s = { 0 }, gone;
	uint64_t moved = 0, dir_ino = 0;
	bool elsewhere = false;
	enum cfs_err rc = rows_by_ino(db, ino, &e, err);

	if (rc)
		return rc;
	if (e.node > 0) {
		rc = rows_shadow_get(db, ino, &s, err);
		elsewhere = rc == CFS_OK && s.kind != CFS_KIND_DELETED &&
			    s.jid > e.jid;
		if (rc == CFS_ERR_NOT_FOUND)
			rc = CFS_OK;
	}
	if (rc == CFS_OK)
		rc = rows_localize(db, ino, err);
	if (rc == CFS_OK && elsewhere)
		rc = rows_write(db, &moved, &s, err);
	if (rc == CFS_OK && elsewhere)
		rc = mirror_parent(db, &s, &dir_ino, err);
	if (rc == CFS_OK && elsewhere)
		rc = rows_note(ch, 0, dir_ino, s.name, err);
	/* The server has nothing of the entry now (invariant 2). */
	gone = e;
	gone.kind = CFS_KIND_DELETED;
	gone.jid = 0;
	gone.blocks = (struct cfs_blocklist){ 0 };
	gone.target = NULL;
	if (rc == CFS_OK)
		rc = rows_shadow_put(db, ino, &gone, err);
	mirror_entry_release(&s);
	mirror_entry_release(&e);
	return rc;
}

enum cfs_err queue_rebase(struct cfs_sql *db, const struct queued_op *op,
			  struct mirror_changes *ch, struct cfs_error *err)
{
	enum cfs_err rc = cfs_sql_begin(db, true, err);

	if (rc == CFS_OK)
		rc = leave_node(db, op->ino, ch, err);
	if (rc == CFS_OK)
		rc = queue_retry(
			db, op,
			"the server no longer has it at its place: sending it anew",
			err);
	return cfs_sql_end(db, rc, err);
}

/* Queues the creation of folder entry e before ord. */
static enum cfs_err queue_before(struct cfs_sql *db,
				 const struct mirror_entry *e, double ord,
				 struct cfs_error *err)
{
	struct queued_op op = { .type = QUEUE_DIR,
				.kind = e->kind,
				.atime_ns = e->atime_ns,
				.mtime_ns = e->mtime_ns,
				.ctime_ns = e->ctime_ns,
				.mode = e->mode,
				.ino = e->ino,
				.ns = e->ns };
	enum cfs_err rc = rows_ns_path(db, e, &op.path, err);

	if (rc == CFS_OK)
		rc = pending_enqueue(db, &op, ord, err);
	if (rc == CFS_OK)
		rc = pending_mark(db, e, 1, err);
	free(op.path);
	return rc;
}

/* The ord of op, and the one of the operation queued before it (or one
 * less when none is). */
static enum cfs_err ords_around(struct cfs_sql *db, const struct queued_op *op,
				double *prev, double *ord,
				struct cfs_error *err)
{
	sqlite3_stmt *st = cfs_sql_stmt(
		db,
		"SELECT o.ord, (SELECT MAX(p.ord) FROM ops p WHERE p.ord < o.ord)"
		" FROM ops o WHERE o.seq = ?1",
		err, "i", op->seq);
	enum cfs_err rc;
	bool row = false;

	rc = st ? cfs_sql_step(db, st, &row, err) : err->code;
	if (rc == CFS_OK && !row)
		return cfs_fail(err, CFS_ERR_NOT_FOUND,
				"operation %lld is not queued",
				(long long)op->seq);
	if (rc == CFS_OK) {
		*ord = sqlite3_column_double(st, 0);
		*prev = sqlite3_column_type(st, 1) == SQLITE_NULL
				? *ord - 1
				: sqlite3_column_double(st, 1);
	}
	return rc;
}

/*
 * Queues, before op, the creation of the folders on op's way up that the
 * server does not have (node < 0: made here and not confirmed yet, or
 * left as local entries by a remote delete, invariant 2), or, when none
 * is such and every is set, of every folder on the way: op was refused
 * for a missing folder after the mirror learned all the server knew, so
 * the mirror cannot say which.  *made: how many were queued.
 */
static enum cfs_err recreate_parents(struct cfs_sql *db,
				     const struct queued_op *op, bool every,
				     size_t *made, struct cfs_error *err)
{
	uint64_t chain[CFS_PATH_MAX / 2];
	struct mirror_entry e;
	size_t depth = 0, local = 0;
	double prev = 0, ord = 0;
	enum cfs_err rc = ords_around(db, op, &prev, &ord, err);

	if (rc == CFS_OK)
		rc = rows_by_ino(db, op->ino, &e, err);
	if (rc)
		return rc;
	/* The folders from e's parent up to its namespace's root. */
	while (rc == CFS_OK && e.parent != 0 && depth < CFS_PATH_MAX / 2) {
		uint64_t up;

		rc = mirror_parent(db, &e, &up, err);
		mirror_entry_release(&e);
		if (rc == CFS_OK)
			rc = rows_by_ino(db, up, &e, err);
		if (rc == CFS_OK && (e.node < 0 || !local)) {
			if (e.node < 0 && !local)
				depth = 0; /* from now on, only those */
			local += e.node < 0;
			chain[depth++] = up;
		}
	}
	if (rc == CFS_OK)
		mirror_entry_release(&e);
	if (rc || (!local && !every))
		depth = 0;
	*made = depth;
	/* Root first, all between the previous operation and op. */
	for (size_t i = 0; rc == CFS_OK && i < depth; i++) {
		rc = rows_by_ino(db, chain[depth - 1 - i], &e, err);
		if (rc == CFS_OK)
			rc = queue_before(db, &e,
					  prev + (ord - prev) *
							  (double)(i + 1) /
							  (double)(depth + 1),
					  err);
		if (rc == CFS_OK)
			mirror_entry_release(&e);
	}
	return rc;
}

enum cfs_err queue_wait_listing(struct cfs_sql *db, const struct queued_op *op,
				int64_t head, bool *waits,
				struct cfs_error *err)
{
	struct mirror_ns m;
	enum cfs_err rc = mirror_ns_get(db, op->ns, &m, err);

	*waits = rc == CFS_OK && m.cursor < head;
	return rc == CFS_ERR_NOT_FOUND ? CFS_OK : rc;
}

/*
 * The first queued move after op, in op's namespace, of a folder on op's
 * way (at path or at to) that the server holds as a shared folder now
 * (the listing put a MOUNT in its shadow, invariant 7): *seq, 0 when
 * there is none; its ord and paths.
 */
static enum cfs_err share_move_behind(struct cfs_sql *db,
				      const struct queued_op *op, int64_t *seq,
				      double *ord, char **from, char **to,
				      struct cfs_error *err)
{
	sqlite3_stmt *st = cfs_sql_stmt(
		db,
		"SELECT m.seq, m.ord, m.path, m.to_path FROM ops m"
		" JOIN entries e ON e.ino = m.ino"
		" JOIN shadow s ON s.ino = m.ino"
		" WHERE m.ns = ?1 AND m.type = ?4 AND e.kind = ?5"
		" AND s.kind = ?6"
		" AND m.ord > (SELECT ord FROM ops WHERE seq = ?2)"
		" AND (substr(?3, 1, length(m.path) + 1) = m.path || '/'"
		" OR substr(?7, 1, length(m.path) + 1) = m.path || '/')"
		" ORDER BY m.ord LIMIT 1",
		err, "iitiiit", op->ns, op->seq, op->path, (int64_t)QUEUE_MOVE,
		(int64_t)CFS_KIND_DIR, (int64_t)CFS_KIND_MOUNT, op->to);
	enum cfs_err rc = st ? CFS_OK : err->code;
	bool row = false;

	*seq = 0;
	if (rc == CFS_OK)
		rc = cfs_sql_step(db, st, &row, err);
	if (rc == CFS_OK && row) {
		*seq = sqlite3_column_int64(st, 0);
		*ord = sqlite3_column_double(st, 1);
		*from = strdup((const char *)sqlite3_column_text(st, 2));
		*to = strdup((const char *)sqlite3_column_text(st, 3));
		if (!*from || !*to)
			rc = cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	}
	if (st)
		sqlite3_reset(st);
	return rc;
}

/*
 * Whether the operations of ns under folder from queued before its move
 * seq (at ord) may go after it instead: none of the operations between
 * names a folder around from or to, which would change the paths of
 * either, and none of those under from names to, which the move gives
 * the folder.
 */
static enum cfs_err may_follow(struct cfs_sql *db, int64_t ns, int64_t seq,
			       double ord, const char *from, const char *to,
			       bool *may, struct cfs_error *err)
{
	int64_t n = 0;
	bool found = false;
	enum cfs_err rc = cfs_sql_int64(
		db,
		cfs_sql_stmt(
			db,
			"SELECT COUNT(*) FROM ops WHERE ns = ?1 AND ord < ?4"
			" AND seq != ?5 AND ord >= (SELECT MIN(ord) FROM ops"
			" WHERE ns = ?1 AND (path = ?2"
			" OR substr(path, 1, length(?2) + 1) = ?2 || '/'"
			" OR to_path = ?2"
			" OR substr(to_path, 1, length(?2) + 1) = ?2 || '/'))"
			/* a folder around from or to */
			" AND (substr(?2, 1, length(path) + 1) = path || '/'"
			" OR substr(?2, 1, length(to_path) + 1) = to_path || '/'"
			" OR substr(?3, 1, length(path) + 1) = path || '/'"
			" OR substr(?3, 1, length(to_path) + 1) = to_path || '/'"
			/* under from, and naming to */
			" OR ((path = ?2"
			" OR substr(path, 1, length(?2) + 1) = ?2 || '/'"
			" OR to_path = ?2"
			" OR substr(to_path, 1, length(?2) + 1) = ?2 || '/')"
			" AND (path = ?3 OR to_path = ?3"
			" OR substr(path, 1, length(?3) + 1) = ?3 || '/'"
			" OR substr(to_path, 1, length(?3) + 1) = ?3 || '/')))",
			err, "ittdi", ns, from, to, ord, seq),
		&n, &found, err);

	*may = rc == CFS_OK && n == 0;
	return rc;
}

/*
 * op crosses into a folder the server holds as a shared folder now, and
 * that folder's own queued move waits behind op.  The mirror follows the
 * share only once that move is settled (cache/mirror.c, invariant 10),
 * and the move waits behind op in queue order: op would wait for good
 * (share-elsewhere seeds 357 and 386).  So the operations under the
 * folder queued before its move go right after it, in their order,
 * re-addressed to where it moves the folder (as repath_passed() would
 * once it is applied): the server moves the shared folder's mount
 * wherever it is, and they follow the share from there.
 */
static enum cfs_err after_share_move(struct cfs_sql *db,
				     const struct queued_op *op, bool *moved,
				     struct cfs_error *err)
{
	char *from = NULL, *to = NULL;
	int64_t seq = 0, *seqs = NULL;
	size_t n = 0, cap = 0;
	double ord = 0, next = 0;
	sqlite3_stmt *st;
	bool row = true, may = false;
	enum cfs_err rc =
		share_move_behind(db, op, &seq, &ord, &from, &to, err);

	*moved = false;
	if (rc == CFS_OK && seq)
		rc = may_follow(db, op->ns, seq, ord, from, to, &may, err);
	if (rc || !may)
		goto out;
	st = cfs_sql_stmt(db,
			  "SELECT seq FROM ops WHERE ns = ?1 AND ord < ?3"
			  " AND (path = ?2"
			  " OR substr(path, 1, length(?2) + 1) = ?2 || '/'"
			  " OR to_path = ?2"
			  " OR substr(to_path, 1, length(?2) + 1) = ?2 || '/')"
			  " ORDER BY ord",
			  err, "itd", op->ns, from, ord);
	rc = st ? CFS_OK : err->code;
	while (rc == CFS_OK &&
	       (rc = cfs_sql_step(db, st, &row, err)) == CFS_OK && row) {
		int64_t *more = n < cap ? seqs
					: realloc(seqs, (cap = 2 * cap + 8) *
								sizeof(*seqs));

		if (!more) {
			rc = cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
			break;
		}
		seqs = more;
		seqs[n++] = sqlite3_column_int64(st, 0);
	}
	if (st)
		sqlite3_reset(st);
	if (rc == CFS_OK)
		rc = cfs_sql_exec(
			db,
			"UPDATE ops SET path = ?3 || substr(path, length(?2) + 1)"
			" WHERE ns = ?1 AND ord < ?4"
			" AND (path = ?2"
			" OR substr(path, 1, length(?2) + 1) = ?2 || '/')",
			err, "ittd", op->ns, from, to, ord);
	if (rc == CFS_OK)
		rc = cfs_sql_exec(
			db,
			"UPDATE ops SET to_path = ?3 ||"
			" substr(to_path, length(?2) + 1)"
			" WHERE ns = ?1 AND ord < ?4"
			" AND (to_path = ?2"
			" OR substr(to_path, 1, length(?2) + 1) = ?2 || '/')",
			err, "ittd", op->ns, from, to, ord);
	/* Between the move and what comes after it (ord + 2 when none). */
	st = rc ? NULL
		: cfs_sql_stmt(db,
			       "SELECT COALESCE(MIN(ord), ?1 + 2) FROM ops"
			       " WHERE ord > ?1",
			       err, "d", ord);
	if (rc == CFS_OK)
		rc = st ? cfs_sql_step(db, st, &row, err) : err->code;
	next = rc == CFS_OK && row ? sqlite3_column_double(st, 0) : ord + 2;
	if (st)
		sqlite3_reset(st);
	for (size_t i = 0; rc == CFS_OK && i < n; i++)
		rc = cfs_sql_exec(db, "UPDATE ops SET ord = ?2 WHERE seq = ?1",
				  err, "id", seqs[i],
				  ord + (next - ord) * (double)(i + 1) /
						  (double)(n + 1));
	*moved = rc == CFS_OK && n > 0;
out:
	free(seqs);
	free(from);
	free(to);
	return rc;
}

enum cfs_err queue_after_share_move(struct cfs_sql *db,
				    const struct queued_op *op, bool *moved,
				    struct cfs_error *err)
{
	enum cfs_err rc = cfs_sql_begin(db, true, err);

	if (rc == CFS_OK)
		rc = after_share_move(db, op, moved, err);
	return cfs_sql_end(db, rc, err);
}

enum cfs_err queue_recreate_parents(struct cfs_sql *db,
				    const struct queued_op *op, int64_t head,
				    struct cfs_error *err)
{
	bool behind = false;
	size_t made = 0;
	enum cfs_err rc = cfs_sql_begin(db, true, err);

	if (rc == CFS_OK)
		rc = queue_wait_listing(db, op, head, &behind, err);
	/* Until the listing says where the folders went (a move takes op
	 * along), op waits without counting a try. */
	if (rc == CFS_OK && behind)
		return cfs_sql_end(db, rc, err);
	if (rc == CFS_OK)
		rc = recreate_parents(db, op, true, &made, err);
	if (rc == CFS_OK)
		rc = queue_retry(
			db, op,
			"its folder is gone on the server: creating it again",
			err);
	return cfs_sql_end(db, rc, err);
}

/*
 * A link's "not found" is about its file or about a folder on the way to
 * its new name, and the answer does not say which.  Such a folder is one
 * this mount made or keeps and the server lacks (its create, before the
 * link in their batch, went again; a delete elsewhere took it): refusing
 * the link lost its name for good while the folder was made again.  So,
 * as a create does, the link waits for the listing, then for the folders
 * on its way that the server does not have, queued first; with none, its
 * file is what is gone.
 */
enum cfs_err queue_link_folders(struct cfs_sql *db, const struct queued_op *op,
				int64_t head, bool *waits,
				struct cfs_error *err)
{
	size_t made = 0;
	enum cfs_err rc = cfs_sql_begin(db, true, err);

	assert(op->type == QUEUE_LINK);
	*waits = false;
	if (rc == CFS_OK)
		rc = queue_wait_listing(db, op, head, waits, err);
	if (rc == CFS_OK && *waits)
		return cfs_sql_end(db, rc, err);
	if (rc == CFS_OK)
		rc = recreate_parents(db, op, false, &made, err);
	/* The name, or a folder on its way, is no entry any more: nothing
	 * to create, and the link goes as before. */
	if (rc == CFS_ERR_NOT_FOUND)
		rc = CFS_OK;
	*waits = rc == CFS_OK && made > 0;
	if (*waits)
		rc = queue_retry(
			db, op,
			"a folder on its way is not on the server yet: creating it first",
			err);
	return cfs_sql_end(db, rc, err);
}

enum cfs_err queue_retry(struct cfs_sql *db, const struct queued_op *op,
			 const char *why, struct cfs_error *err)
{
	return cfs_sql_exec(db,
			    "UPDATE ops SET tries = tries + 1, error = ?2"
			    " WHERE seq = ?1",
			    err, "it", op->seq, why);
}

void queue_failures_free(struct queue_failure *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		free(v[i].path);
		free(v[i].why);
	}
	free(v);
}

enum cfs_err queue_failing(struct cfs_sql *db, size_t max,
			   struct queue_failure **v, size_t *n,
			   struct cfs_error *err)
{
	sqlite3_stmt *st = cfs_sql_stmt(
		db,
		"SELECT ino, path, tries, COALESCE(error, '') FROM ops"
		" WHERE tries > 0 ORDER BY ord LIMIT ?1",
		err, "i", (int64_t)max);
	enum cfs_err rc = st ? CFS_OK : err->code;
	uint64_t *inos = calloc(max ? max : 1, sizeof(*inos));
	bool row = true;

	*n = 0;
	*v = calloc(max ? max : 1, sizeof(**v));
	if (!*v || !inos)
		rc = cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	while (rc == CFS_OK && *n < max &&
	       (rc = cfs_sql_step(db, st, &row, err)) == CFS_OK && row) {
		struct queue_failure *f = &(*v)[*n];

		inos[*n] = (uint64_t)sqlite3_column_int64(st, 0);
		f->path = strdup((const char *)sqlite3_column_text(st, 1));
		f->tries = (unsigned)sqlite3_column_int(st, 2);
		f->why = strdup((const char *)sqlite3_column_text(st, 3));
		(*n)++;
		if (!f->path || !f->why)
			rc = cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	}
	if (st)
		sqlite3_reset(st);
	/* The path the user sees, where the mirror still has the entry. */
	for (size_t i = 0; rc == CFS_OK && i < *n; i++) {
		char *path = NULL;

		if (mirror_path(db, inos[i], &path, err) == CFS_OK) {
			free((*v)[i].path);
			(*v)[i].path = path;
		}
	}
	free(inos);
	if (rc) {
		queue_failures_free(*v, *n);
		*v = NULL;
		*n = 0;
	}
	return rc;
}
