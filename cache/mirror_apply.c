/*
 * A listed page applied to the mirror (mirror_apply): each entry in the
 * order its folders need, onto a clean row, a shadow, or a new row; then
 * the repaths, tombstones and unnamed entries it settles, and the cursor.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "cache/ino_set.h"
#include "cache/repath.h"
#include "cache/rows.h"

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
		rc = repath_resolve(db, err);
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
