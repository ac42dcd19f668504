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

/* GET /meta/ns/NS/history?path=P: the versions, newest first. */
static json_t *versions_of(struct fs *fs, int64_t ns, const char *path,
			   struct cfs_error *err)
{
	char *q = remote_curl_escape(path);
	char *url = NULL;
	json_t *a = NULL;

	if (q && asprintf(&url, "/meta/ns/%lld/history?path=%s", (long long)ns,
			  q) > 0)
		a = remote_curl_ask(fs->remote, "GET", url, NULL, err);
	else
		cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	free(q);
	free(url);
	return a;
}

static json_t *do_history(struct fs *fs, json_t *req)
{
	struct cfs_error err;
	char *path = NULL;
	int64_t ns;
	json_t *a = NULL;

	if (locate(fs, req, &ns, &path, &err) == CFS_OK)
		a = versions_of(fs, ns, path, &err);
	free(path);
	return a ? a : failure(err.msg);
}

static int64_t num(json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

/* A version's kind; "" when the server's answer has none (it is then
 * no kind that can be restored, not a crash). */
static const char *kind_of(json_t *v)
{
	const char *kind = json_string_value(json_object_get(v, "kind"));

	return kind ? kind : "";
}

static bool is_deleted(json_t *v)
{
	return strcmp(kind_of(v), "deleted") == 0;
}

/*
 * The version to bring back: the one at JID jid, else the newest at or
 * before unix second at, else the newest before the current one that is
 * not a delete (for a path deleted, its last live one).  *as_of: the JID of the
 * namespace state a folder comes back with (-1: the state at unix second at).
 */
static json_t *choose(json_t *versions, int64_t jid, int64_t at, int64_t *as_of,
		      struct cfs_error *err)
{
	json_t *newest = json_array_get(versions, 0), *v = NULL, *w;
	size_t i;

	json_array_foreach(versions, i, w)
	{
		if (jid	 ? num(w, "jid") == jid
		    : at ? num(w, "at") <= at
			 : i >= 1 && !is_deleted(w)) {
			v = w;
			break;
		}
	}
	if (!v) {
		cfs_fail(err, CFS_ERR_NOT_FOUND, "%s",
			 jid  ? "no version with that JID"
			 : at ? "no version at or before that time"
			      : "no earlier version");
		return NULL;
	}
	if (is_deleted(v)) {
		cfs_fail(err, CFS_ERR_NOT_FOUND,
			 "it was deleted then: choose a version before");
		return NULL;
	}
	*as_of = jid ? jid : at ? -1 : num(newest, "before");
	if (!jid && !at && strcmp(kind_of(v), "dir") == 0 &&
	    !is_deleted(newest)) {
		cfs_fail(
			err, CFS_ERR_EXISTS,
			"the folder is there: give --at or --jid to bring back its contents of then");
		return NULL;
	}
	return v;
}

/* The commit operation that writes version v at path (NULL for a mount:
 * a shared folder comes back by sharing, not by restore). */
static json_t *op_of(json_t *v, const char *path)
{
	const char *kind = kind_of(v);
	json_t *mtime = json_object_get(v, "mtime_ns");
	enum cfs_kind k;

	if (strcmp(kind, "file") == 0)
		return json_pack("{s:s, s:s, s:O, s:O, s:O, s:O}", "op", "file",
				 "path", path, "size",
				 json_object_get(v, "size"), "blocks",
				 json_object_get(v, "blocks"), "mode",
				 json_object_get(v, "mode"), "mtime_ns", mtime);
	if (strcmp(kind, "symlink") == 0)
		return json_pack("{s:s, s:s, s:O, s:O}", "op", "symlink",
				 "path", path, "target",
				 json_object_get(v, "target"), "mtime_ns",
				 mtime);
	/* A device's version without its device is none to restore. */
	if (cfs_kind_from_name(kind, &k) && cfs_kind_is_special(k) &&
	    (!cfs_kind_has_target(k) ||
	     json_is_string(json_object_get(v, "target"))))
		return json_pack("{s:s, s:s, s:O, s:O, s:O*}", "op", kind,
				 "path", path, "mode",
				 json_object_get(v, "mode"), "mtime_ns", mtime,
				 "target", json_object_get(v, "target"));
	if (strcmp(kind, "dir") == 0)
		return json_pack("{s:s, s:s, s:O, s:O}", "op", "dir", "path",
				 path, "mode", json_object_get(v, "mode"),
				 "mtime_ns", mtime);
	return NULL;
}

/*
 * Lists namespace ns (query: more arguments of the listing, "" for none)
 * page by page into a new object: each entry under the key keyed() makes
 * of it, replacing one listed before; NULL with err set on a failure.
 */
static json_t *listed(struct fs *fs, int64_t ns, const char *query,
		      const char *(*keyed)(json_t *e, char buf[24]),
		      struct cfs_error *err)
{
	json_t *all = json_object(), *page = NULL;
	int64_t cursor = 0;
	bool more = all != NULL;

	if (!all)
		cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	while (more) {
		char url[192], buf[24];
		json_t *e;
		size_t i;

		snprintf(url, sizeof(url),
			 "/meta/ns/%lld/list?cursor=%lld&limit=1000%s",
			 (long long)ns, (long long)cursor, query);
		page = remote_curl_ask(fs->remote, "GET", url, NULL, err);
		if (!page) {
			json_decref(all);
			return NULL;
		}
		json_array_foreach(json_object_get(page, "entries"), i, e)
			json_object_set(all, keyed(e, buf), e);
		cursor = num(page, "cursor");
		more = json_is_true(json_object_get(page, "more"));
		json_decref(page);
	}
	return all;
}

static const char *by_node(json_t *e, char buf[24])
{
	snprintf(buf, 24, "%lld", (long long)num(e, "node"));
	return buf;
}

static const char *by_path(json_t *e, char buf[24])
{
	(void)buf;
	return json_string_value(json_object_get(e, "path"));
}

/* Every entry of namespace ns as of JID as_of (-1: at unix second at),
 * by node ("%lld" keys). */
static json_t *state_then(struct fs *fs, int64_t ns, int64_t as_of, int64_t at,
			  struct cfs_error *err)
{
	char query[48];

	snprintf(query, sizeof(query), "&%s=%lld", as_of >= 0 ? "as_of" : "at",
		 (long long)(as_of >= 0 ? as_of : at));
	return listed(fs, ns, query, by_node, err);
}

/* The depth of e below folder top in state, 0 when it is not below it
 * (or was cut off from it: inside a folder deleted by then). */
static size_t depth_below(json_t *state, json_t *e, int64_t top)
{
	size_t depth = 1;

	for (; depth <= CFS_PATH_MAX / 2; depth++) {
		int64_t parent = num(e, "parent");
		char key[24];

		if (parent == top)
			return depth;
		if (parent == 0)
			return 0;
		snprintf(key, sizeof(key), "%lld", (long long)parent);
		if (!(e = json_object_get(state, key)))
			return 0;
	}
	return 0;
}

/* e's path below folder top (at path base) in state. */
static char *path_below(json_t *state, json_t *e, int64_t top, const char *base)
{
	const char *name = json_string_value(json_object_get(e, "name"));
	char key[24], *up, *path = NULL;

	if (num(e, "parent") == top)
		return asprintf(&path, "%s/%s", base, name) > 0 ? path : NULL;
	snprintf(key, sizeof(key), "%lld", (long long)num(e, "parent"));
	up = path_below(state, json_object_get(state, key), top, base);
	if (up && asprintf(&path, "%s/%s", up, name) < 0)
		path = NULL;
	free(up);
	return path;
}

/* Appends to ops what folder top (now at base) held in state, parents
 * before their children. */
static enum cfs_err subtree_ops(json_t *state, int64_t top, const char *base,
				json_t *ops, struct cfs_error *err)
{
	size_t most = 0;
	const char *key;
	json_t *e;

	json_object_foreach(state, key, e)
	{
		size_t d = depth_below(state, e, top);

		most = d > most ? d : most;
	}
	for (size_t d = 1; d <= most; d++) {
		json_object_foreach(state, key, e)
		{
			char *path;
			json_t *op;

			if (depth_below(state, e, top) != d)
				continue;
			path = path_below(state, e, top, base);
			op = path ? op_of(e, path) : NULL;
			free(path);
			if (op && json_array_append_new(ops, op))
				return cfs_fail(err, CFS_ERR_INTERNAL,
						"out of memory");
		}
	}
	return CFS_OK;
}

/* Each file and symlink of ops edits what is at its path now: a new
 * version of it, never a conflict with it. */
static enum cfs_err base_on_now(struct fs *fs, int64_t ns, json_t *ops,
				struct cfs_error *err)
{
	json_t *now = listed(fs, ns, "", by_path, err), *op;
	size_t i;

	if (!now)
		return err->code;
	json_array_foreach(ops, i, op)
	{
		json_t *e = json_object_get(
			now, json_string_value(json_object_get(op, "path")));

		if (e && !is_deleted(e) &&
		    strcmp(json_string_value(json_object_get(op, "op")),
			   "dir") != 0)
			json_object_set(op, "base_jid",
					json_object_get(e, "jid"));
	}
	json_decref(now);
	return CFS_OK;
}

/* Commits ops to ns in batches; each must be committed. */
static enum cfs_err commit_all(struct fs *fs, int64_t ns, json_t *ops,
			       struct cfs_error *err)
{
	size_t n = json_array_size(ops);
	char url[64];

	snprintf(url, sizeof(url), "/meta/ns/%lld/commit", (long long)ns);
	for (size_t at = 0, k = 0; at < n; at = k) {
		json_t *batch = json_array(), *a, *r;
		size_t i, bytes = 0;

		/* As many as one commit body holds (one at least). */
		for (k = at; batch && k < n && k < at + UPLOAD_BATCH_MAX; k++) {
			json_t *op = json_array_get(ops, k);

			bytes += json_dumpb(op, NULL, 0, JSON_COMPACT) + 1;
			if (k > at && bytes > CFS_MAX_COMMIT_BODY - 1024)
				break;
			json_array_append(batch, op);
		}
		a = batch ? remote_curl_ask(fs->remote, "POST", url,
					    json_pack("{s:o}", "ops", batch),
					    err)
			  : NULL;
		if (!a)
			return batch ? err->code
				     : cfs_fail(err, CFS_ERR_INTERNAL,
						"out of memory");
		json_array_foreach(json_object_get(a, "results"), i, r)
		{
			const char *status =
				json_string_value(json_object_get(r, "status"));
			json_t *op = json_array_get(ops, at + i);

			if (status && strcmp(status, "committed") == 0)
				continue;
			cfs_fail(
				err, CFS_ERR_INTERNAL,
				"cannot restore '%s': %s%s",
				json_string_value(json_object_get(op, "path")),
				status ? status : "?",
				status && strcmp(status, "need_blocks") == 0
					? " (its bytes are older than the server's retention)"
					: "");
			json_decref(a);
			return err->code;
		}
		json_decref(a);
	}
	return CFS_OK;
}

static bool is_dir(json_t *v)
{
	return strcmp(kind_of(v), "dir") == 0;
}

/* The operations that bring back version v at path (in ns), a folder with
 * what it held then; NULL with err set when they cannot be made. */
static json_t *restore_ops(struct fs *fs, int64_t ns, const char *path,
			   json_t *v, json_t *newest, int64_t as_of, int64_t at,
			   struct cfs_error *err)
{
	json_t *ops = json_array(), *first = op_of(v, path), *state = NULL;
	enum cfs_err rc = CFS_OK;

	if (!first)
		rc = cfs_fail(
			err, CFS_ERR_FORBIDDEN,
			"'%s' was a shared folder: share it again instead",
			path);
	else if (!ops || json_array_append_new(ops, first))
		rc = cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	if (rc == CFS_OK && is_dir(v)) {
		state = state_then(fs, ns, as_of, at, err);
		rc = state ? subtree_ops(state, num(v, "node"), path, ops, err)
			   : err->code;
	}
	json_decref(state);
	/* A file's base is in its history already (its newest version, the
	 * node there now); a folder's contents need the listing of now. */
	if (rc == CFS_OK && is_dir(v))
		rc = base_on_now(fs, ns, ops, err);
	else if (rc == CFS_OK && !is_deleted(newest))
		json_object_set(first, "base_jid",
				json_object_get(newest, "jid"));
	if (rc) {
		json_decref(ops);
		return NULL;
	}
	return ops;
}

static json_t *do_restore(struct fs *fs, json_t *req)
{
	int64_t jid = num(req, "jid"), at = num(req, "at"), ns, as_of = 0;
	json_t *versions = NULL, *v = NULL, *ops = NULL, *out = NULL;
	struct cfs_error err;
	char *path = NULL;

	if (locate(fs, req, &ns, &path, &err) == CFS_OK &&
	    (versions = versions_of(fs, ns, path, &err)) &&
	    (v = choose(json_object_get(versions, "versions"), jid, at, &as_of,
			&err)) &&
	    (ops = restore_ops(
		     fs, ns, path, v,
		     json_array_get(json_object_get(versions, "versions"), 0),
		     as_of, at, &err)) &&
	    commit_all(fs, ns, ops, &err) == CFS_OK)
		out = json_pack("{s:s, s:I, s:O, s:I}", "path", path, "ns",
				(json_int_t)ns, "jid",
				json_object_get(v, "jid"), "restored",
				(json_int_t)json_array_size(ops));
	else
		out = failure(err.msg);
	json_decref(ops);
	json_decref(versions);
	free(path);
	return out;
}

json_t *history_answer(struct fs *fs, const char *cmd, json_t *req)
{
	if (strcmp(cmd, "history") == 0)
		return do_history(fs, req);
	if (strcmp(cmd, "restore") == 0)
		return do_restore(fs, req);
	return NULL;
}
