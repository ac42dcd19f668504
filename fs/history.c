/*
 * History and restore through the server's journal (fs/history.h).
 *
 * A restore is a commit like any other, made straight to the server: the
 * mount sees it come back through its listing, and a change of its own
 * still queued for that path becomes a conflicted copy, as one from
 * another device would.  Nothing is overwritten without a version to go
 * back to: the state replaced is a version too.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/mirror.h"
#include "cloudfs/json.h"
#include "cloudfs/platform.h"
#include "cloudfs/proto.h"
#include "fs/fs.h"
#include "fs/history.h"
#include "fs/upload.h" /* UPLOAD_BATCH_MAX */

static json_t *failure(const char *msg)
{
	return json_pack("{s:s}", "error", msg);
}

/* Where the request's target is in the protocol: ino itself, or the name
 * in folder ino (a path that is not there now). */
static enum cfs_err locate(struct fs *fs, json_t *req, int64_t *ns, char **path,
			   struct cfs_error *err)
{
	uint64_t ino =
		(uint64_t)json_integer_value(json_object_get(req, "ino"));
	const char *name = json_string_value(json_object_get(req, "name"));
	struct cfs_sql *db = cache_db(fs->cache, err);
	struct mirror_entry e;
	enum cfs_err rc = db ? mirror_get(db, ino, &e, err) : err->code;

	if (rc == CFS_OK) {
		rc = mirror_address(db, &e, name, ns, path, err);
		mirror_entry_release(&e);
	}
	if (db)
		cache_db_release(fs->cache, db);
	if (rc == CFS_OK && !**path)
		rc = cfs_fail(err, CFS_ERR_BAD_PATH,
			      "a namespace's root has no history of its own");
	return rc;
}

/* The versions of path in ns, newest first. */
static enum cfs_err versions_of(struct fs *fs, int64_t ns, const char *path,
				struct remote_version **list, size_t *n,
				struct cfs_error *err)
{
	struct remote_conn *c = remote_conn_new(fs->remote);
	enum cfs_err rc =
		c ? fs->remote->ops->history(c, ns, path, list, n, err)
		  : cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");

	remote_conn_free(c);
	return rc;
}

/* A version of path as `cloudfs history` shows it: as the protocol
 * gives it. */
static json_t *version_json(const struct remote_version *v, const char *path)
{
	const struct mirror_entry *e = &v->e;
	json_t *o =
		json_pack("{s:I, s:I, s:s, s:s, s:s, s:I, s:I, s:s?}", "node",
			  (json_int_t)e->node, "parent", (json_int_t)e->parent,
			  "name", e->name, "path", path, "kind",
			  cfs_kind_name(e->kind), "jid", (json_int_t)e->jid,
			  "at", (json_int_t)v->at, "author", v->author);
	int rc = 0;

	if (!o)
		return NULL;
	if (v->before)
		rc |= json_object_set_new(o, "before", json_integer(v->before));
	if (e->kind != CFS_KIND_DELETED) {
		rc |= json_object_set_new(o, "size",
					  json_integer((json_int_t)e->size));
		rc |= json_object_set_new(o, "atime_ns",
					  json_integer(e->atime_ns));
		rc |= json_object_set_new(o, "mtime_ns",
					  json_integer(e->mtime_ns));
		rc |= json_object_set_new(o, "ctime_ns",
					  json_integer(e->ctime_ns));
		rc |= json_object_set_new(o, "mode", json_integer(e->mode));
	}
	if (e->kind == CFS_KIND_MOUNT)
		rc |= json_object_set_new(o, "ns", json_integer(e->mount_ns));
	if (e->kind == CFS_KIND_FILE)
		rc |= json_object_set_new(
			o, "blocks",
			cfs_json_block_ids(e->blocks.ids, e->blocks.n));
	if (e->target)
		rc |= json_object_set_new(o, "target", json_string(e->target));
	if (rc) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *do_history(struct fs *fs, json_t *req)
{
	struct remote_version *list = NULL;
	struct cfs_error err;
	char *path = NULL;
	json_t *a = NULL, *arr;
	size_t n = 0;
	int64_t ns;

	if (locate(fs, req, &ns, &path, &err) == CFS_OK &&
	    versions_of(fs, ns, path, &list, &n, &err) == CFS_OK &&
	    (arr = json_array())) {
		for (size_t i = 0; i < n; i++)
			json_array_append_new(arr,
					      version_json(&list[i], path));
		a = json_pack("{s:I, s:s, s:o}", "ns", (json_int_t)ns, "path",
			      path, "versions", arr);
		if (!a)
			cfs_fail(&err, CFS_ERR_INTERNAL, "out of memory");
	}
	remote_versions_free(list, n);
	free(path);
	return a ? a : failure(err.msg);
}

static int64_t num(json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

/*
 * The version to bring back: the one at JID jid, else the newest at or
 * before unix second at, else the newest before the current one that is
 * not a delete (for a path deleted, its last live one).  *as_of: the JID of the
 * namespace state a folder comes back with (-1: the state at unix second at).
 */
static const struct remote_version *choose(const struct remote_version *list,
					   size_t n, int64_t jid, int64_t at,
					   int64_t *as_of,
					   struct cfs_error *err)
{
	const struct remote_version *v = NULL;

	for (size_t i = 0; i < n && !v; i++)
		if (jid	 ? list[i].e.jid == jid
		    : at ? list[i].at <= at
			 : i >= 1 && list[i].e.kind != CFS_KIND_DELETED)
			v = &list[i];
	if (!v) {
		cfs_fail(err, CFS_ERR_NOT_FOUND, "%s",
			 jid  ? "no version with that JID"
			 : at ? "no version at or before that time"
			      : "no earlier version");
		return NULL;
	}
	if (v->e.kind == CFS_KIND_DELETED) {
		cfs_fail(err, CFS_ERR_NOT_FOUND,
			 "it was deleted then: choose a version before");
		return NULL;
	}
	*as_of = jid ? jid : at ? -1 : list[0].before;
	if (!jid && !at && v->e.kind == CFS_KIND_DIR &&
	    list[0].e.kind != CFS_KIND_DELETED) {
		cfs_fail(
			err, CFS_ERR_EXISTS,
			"the folder is there: give --at or --jid to bring back its contents of then");
		return NULL;
	}
	return v;
}

/* The commit operation that writes entry e at path (false for a mount:
 * a shared folder comes back by sharing, not by restore; and for a
 * device without its device).  Its times: e's mtime for atime too, and
 * the server's now for ctime. */
static bool op_of(const struct mirror_entry *e, const char *path,
		  struct queued_op *op)
{
	memset(op, 0, sizeof(*op));
	op->ns = e->ns;
	op->kind = e->kind;
	op->base_jid = -1;
	op->mode = e->mode;
	op->atime_ns = op->mtime_ns = e->mtime_ns;
	if (e->kind == CFS_KIND_FILE)
		op->type = QUEUE_FILE;
	else if (e->kind == CFS_KIND_SYMLINK)
		op->type = QUEUE_SYMLINK;
	else if (e->kind == CFS_KIND_DIR)
		op->type = QUEUE_DIR;
	else if (cfs_kind_is_special(e->kind) &&
		 (!cfs_kind_has_target(e->kind) || e->target))
		op->type = QUEUE_SPECIAL;
	else
		return false;
	op->size = e->kind == CFS_KIND_FILE ? e->size : 0;
	if (e->kind == CFS_KIND_FILE && e->blocks.n) {
		op->blocks.ids = malloc(e->blocks.n * sizeof(*op->blocks.ids));
		if (!op->blocks.ids)
			return false;
		memcpy(op->blocks.ids, e->blocks.ids,
		       e->blocks.n * sizeof(*op->blocks.ids));
		op->blocks.n = e->blocks.n;
	}
	op->path = strdup(path);
	if (cfs_kind_has_target(e->kind) && e->target)
		op->target = strdup(e->target);
	if (!op->path || (cfs_kind_has_target(e->kind) && !op->target)) {
		queued_op_release(op);
		return false;
	}
	return true;
}

/* Operations being made, in order. */
struct op_list {
	struct queued_op *ops;
	size_t n, cap;
};

static void op_list_release(struct op_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		queued_op_release(&l->ops[i]);
	free(l->ops);
	*l = (struct op_list){ 0 };
}

/* Appends the operation writing e at path; false when out of memory
 * (an entry that makes none is skipped). */
static bool op_list_add(struct op_list *l, const struct mirror_entry *e,
			const char *path)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 16;
		struct queued_op *ops = realloc(l->ops, cap * sizeof(*ops));

		if (!ops)
			return false;
		l->ops = ops;
		l->cap = cap;
	}
	l->n += op_of(e, path, &l->ops[l->n]);
	return true;
}

/* A namespace's entries as listed (the newest state of each node), with
 * their paths when the listing gives them. */
struct listing {
	struct mirror_entry *e;
	char **paths;
	size_t n, cap;
};

static void listing_release(struct listing *l)
{
	for (size_t i = 0; i < l->n; i++) {
		mirror_entry_release(&l->e[i]);
		free(l->paths[i]);
	}
	free(l->e);
	free(l->paths);
	*l = (struct listing){ 0 };
}

/* Takes page's entries over into l. */
static enum cfs_err listing_take(struct listing *l, struct remote_page *page,
				 struct cfs_error *err)
{
	if (l->n + page->n > l->cap) {
		size_t cap = 2 * (l->n + page->n) + 16;
		struct mirror_entry *e = realloc(l->e, cap * sizeof(*e));
		char **paths =
			e ? realloc(l->paths, cap * sizeof(*paths)) : NULL;

		if (e)
			l->e = e;
		if (paths)
			l->paths = paths;
		if (!paths)
			return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
		l->cap = cap;
	}
	for (size_t i = 0; i < page->n; i++) {
		l->e[l->n] = page->entries[i];
		l->e[l->n].ino = l->n;
		l->paths[l->n++] = page->paths[i];
	}
	/* Theirs now: the page lets go of them without freeing. */
	free(page->entries);
	free(page->paths);
	memset(page, 0, sizeof(*page));
	return CFS_OK;
}

/* Orders entries by node, then by their place in the listing (which
 * listed() keeps in ino, unused for a listing's entries): the last of a
 * node is its newest state. */
static int by_node(const void *a, const void *b)
{
	const struct mirror_entry *x = a, *y = b;

	if (x->node != y->node)
		return x->node < y->node ? -1 : 1;
	return x->ino < y->ino ? -1 : x->ino > y->ino;
}

/*
 * Lists namespace ns from cursor 0 (as_of >= 0: as of that JID; -1: as of
 * unix second at; with neither, live: as_of -2) page by page into l.
 */
static enum cfs_err listed(struct fs *fs, int64_t ns, int64_t as_of, int64_t at,
			   struct listing *l, struct cfs_error *err)
{
	struct remote_conn *c = remote_conn_new(fs->remote);
	struct remote_list_req req = { .ns = ns,
				       .limit = 1000,
				       .as_of_jid = as_of >= 0,
				       .as_of = as_of,
				       .at = as_of == -1 ? at : 0 };
	enum cfs_err rc =
		c ? CFS_OK : cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	bool more = true;

	*l = (struct listing){ 0 };
	while (rc == CFS_OK && more) {
		struct remote_page page;

		rc = remote_list(c, &req, NULL, &page, err);
		if (rc)
			break;
		req.cursor = page.cursor;
		more = page.more;
		rc = listing_take(l, &page, err);
		remote_page_release(&page);
	}
	remote_conn_free(c);
	if (rc)
		listing_release(l);
	return rc;
}

/* The newest state of node in state (sorted by by_node), or NULL. */
static const struct mirror_entry *state_get(const struct listing *state,
					    int64_t node)
{
	size_t lo = 0, hi = state->n;

	/* The last of node's run. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (state->e[mid].node <= node)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo && state->e[lo - 1].node == node ? &state->e[lo - 1] : NULL;
}

/* The depth of e below folder top in state, 0 when it is not below it
 * (or was cut off from it: inside a folder deleted by then). */
static size_t depth_below(const struct listing *state,
			  const struct mirror_entry *e, int64_t top)
{
	size_t depth = 1;

	for (; depth <= CFS_PATH_MAX / 2; depth++) {
		if (e->parent == top)
			return depth;
		if (e->parent == 0)
			return 0;
		if (!(e = state_get(state, e->parent)))
			return 0;
	}
	return 0;
}

/* e's path below folder top (at path base) in state. */
static char *path_below(const struct listing *state,
			const struct mirror_entry *e, int64_t top,
			const char *base)
{
	char *up, *path = NULL;

	if (e->parent == top)
		return asprintf(&path, "%s/%s", base, e->name) > 0 ? path
								   : NULL;
	up = path_below(state, state_get(state, e->parent), top, base);
	if (up && asprintf(&path, "%s/%s", up, e->name) < 0)
		path = NULL;
	free(up);
	return path;
}

/* Whether entry i of state (sorted by by_node) is its node's newest. */
static bool newest(const struct listing *state, size_t i)
{
	return i + 1 == state->n || state->e[i + 1].node != state->e[i].node;
}

/* Appends to ops what folder top (now at base) held in state (sorted by
 * by_node), parents before their children. */
static enum cfs_err subtree_ops(const struct listing *state, int64_t top,
				const char *base, struct op_list *ops,
				struct cfs_error *err)
{
	size_t most = 0;

	for (size_t i = 0; i < state->n; i++) {
		size_t d = newest(state, i)
				   ? depth_below(state, &state->e[i], top)
				   : 0;

		most = d > most ? d : most;
	}
	for (size_t d = 1; d <= most; d++) {
		for (size_t i = 0; i < state->n; i++) {
			const struct mirror_entry *e = &state->e[i];
			char *path;
			bool ok;

			if (!newest(state, i) ||
			    depth_below(state, e, top) != d)
				continue;
			path = path_below(state, e, top, base);
			ok = !path || op_list_add(ops, e, path);
			free(path);
			if (!ok)
				return cfs_fail(err, CFS_ERR_INTERNAL,
						"out of memory");
		}
	}
	return CFS_OK;
}

/* A path of a listing and where its entry is, for a search by path. */
struct at_path {
	const char *path;
	size_t i;
};

static int by_path(const void *a, const void *b)
{
	const struct at_path *x = a, *y = b;
	int c = strcmp(x->path, y->path);

	return c ? c : x->i < y->i ? -1 : x->i > y->i;
}

/* Each file and symlink of ops edits what is at its path now: a new
 * version of it, never a conflict with it. */
static enum cfs_err base_on_now(struct fs *fs, int64_t ns, struct op_list *ops,
				struct cfs_error *err)
{
	struct listing now;
	struct at_path *index;
	size_t n = 0;
	enum cfs_err rc = listed(fs, ns, -2, 0, &now, err);

	if (rc)
		return rc;
	if (!(index = calloc(now.n + 1, sizeof(*index)))) {
		listing_release(&now);
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	}
	for (size_t i = 0; i < now.n; i++)
		if (now.paths[i])
			index[n++] = (struct at_path){ now.paths[i], i };
	qsort(index, n, sizeof(*index), by_path);
	for (size_t k = 0; k < ops->n; k++) {
		struct queued_op *op = &ops->ops[k];
		size_t lo = 0, hi = n;

		if (op->type == QUEUE_DIR)
			continue;
		/* The last listed at its path: the newest state there. */
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;

			if (strcmp(index[mid].path, op->path) <= 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo && strcmp(index[lo - 1].path, op->path) == 0 &&
		    now.e[index[lo - 1].i].kind != CFS_KIND_DELETED)
			op->base_jid = now.e[index[lo - 1].i].jid;
	}
	free(index);
	listing_release(&now);
	return CFS_OK;
}

/* Commits ops to ns in batches; each must be committed. */
static enum cfs_err commit_all(struct fs *fs, int64_t ns,
			       const struct op_list *ops, struct cfs_error *err)
{
	struct remote_conn *c = remote_conn_new(fs->remote);
	enum cfs_err rc =
		c ? CFS_OK : cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");

	for (size_t at = 0, k = 0; rc == CFS_OK && at < ops->n; at += k) {
		struct remote_commit a = { 0 };
		struct remote_commit_req req = { .ns = ns,
						 .ops = &ops->ops[at] };

		k = ops->n - at < UPLOAD_BATCH_MAX ? ops->n - at
						   : UPLOAD_BATCH_MAX;
		k = remote_commit_fit(&ops->ops[at], k);
		req.n = k;
		rc = remote_commit(c, &req, 0, NULL, &a, err);
		for (size_t i = 0; rc == CFS_OK && i < k; i++) {
			enum remote_status st = a.results[i].status;

			if (st == REMOTE_COMMITTED)
				continue;
			rc = cfs_fail(
				err, CFS_ERR_INTERNAL,
				"cannot restore '%s': %s%s",
				ops->ops[at + i].path, remote_status_name(st),
				st == REMOTE_NEED_BLOCKS
					? " (its bytes are older than the server's retention)"
					: "");
		}
		remote_commit_release(&a);
	}
	remote_conn_free(c);
	return rc;
}

/* The operations that bring back version v at path (in ns), a folder with
 * what it held then. */
static enum cfs_err restore_ops(struct fs *fs, int64_t ns, const char *path,
				const struct remote_version *v,
				const struct remote_version *newest_v,
				int64_t as_of, int64_t at, struct op_list *ops,
				struct cfs_error *err)
{
	bool dir = v->e.kind == CFS_KIND_DIR;
	struct listing state;
	enum cfs_err rc = CFS_OK;

	*ops = (struct op_list){ 0 };
	if (!op_list_add(ops, &v->e, path))
		rc = cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	else if (ops->n == 0)
		rc = cfs_fail(
			err, CFS_ERR_FORBIDDEN,
			"'%s' was a shared folder: share it again instead",
			path);
	if (rc == CFS_OK && dir) {
		rc = listed(fs, ns, as_of, at, &state, err);
		if (rc == CFS_OK) {
			if (state.n)
				qsort(state.e, state.n, sizeof(*state.e),
				      by_node);
			rc = subtree_ops(&state, v->e.node, path, ops, err);
			listing_release(&state);
		}
	}
	/* A file's base is in its history already (its newest version, the
	 * node there now); a folder's contents need the listing of now. */
	if (rc == CFS_OK && dir)
		rc = base_on_now(fs, ns, ops, err);
	else if (rc == CFS_OK && newest_v->e.kind != CFS_KIND_DELETED)
		ops->ops[0].base_jid = newest_v->e.jid;
	if (rc)
		op_list_release(ops);
	return rc;
}

static json_t *do_restore(struct fs *fs, json_t *req)
{
	int64_t jid = num(req, "jid"), at = num(req, "at"), ns, as_of = 0;
	const struct remote_version *v = NULL;
	struct remote_version *versions = NULL;
	struct op_list ops = { 0 };
	struct cfs_error err;
	char *path = NULL;
	json_t *out = NULL;
	size_t n = 0;

	if (locate(fs, req, &ns, &path, &err) == CFS_OK &&
	    versions_of(fs, ns, path, &versions, &n, &err) == CFS_OK &&
	    (v = choose(versions, n, jid, at, &as_of, &err)) &&
	    restore_ops(fs, ns, path, v, &versions[0], as_of, at, &ops, &err) ==
		    CFS_OK &&
	    commit_all(fs, ns, &ops, &err) == CFS_OK)
		out = json_pack("{s:s, s:I, s:I, s:I}", "path", path, "ns",
				(json_int_t)ns, "jid", (json_int_t)v->e.jid,
				"restored", (json_int_t)ops.n);
	else
		out = failure(err.msg);
	op_list_release(&ops);
	remote_versions_free(versions, n);
	free(path);
	return out;
}

json_t *history_list_answer(struct fs *fs, const char *cmd, json_t *req)
{
	(void)cmd;
	return do_history(fs, req);
}

json_t *history_restore_answer(struct fs *fs, const char *cmd, json_t *req)
{
	(void)cmd;
	return do_restore(fs, req);
}
