/*
 * fuzz_listing: what the mount makes of the server's answers: listing
 * pages checked by the remote (fs/remote_curl.c) and applied to the
 * mirror (fs/sync.c), error bodies (fs/remote_curl.c), and the history
 * and past listings a restore is built from (fs/history.c).  The static
 * functions are reached by including the three files, so that none needs
 * to change for this harness.
 *
 * Feeds: byte 0 picks the answer, the rest is its body:
 *   0  a page of GET /meta/ns/1/list, applied from the mirror's cursor;
 *      and the same body as a long poll's answer, its pending lists read
 *   1  the body of an HTTP error answer (byte 1: its status)
 *   2  {"versions": [...], "jid": J, "at": T}: a history, and the version
 *      a restore would choose from it, made a commit operation
 *   3  {"state": {...}, "top": N}: a listing as of then (entries by
 *      node), and the commit operations that bring back folder N's
 *      contents
 * Checks: landed blocks of pending lists are all checked (a namespace,
 * a size of a block, never more than a poll may carry) and the pending
 * cursor never goes back, or the answer is refused whole as unreachable;
 * a page is applied whole or not at all (the mirror's cursor is
 * the page's after it, and unchanged after a refusal, which is always
 * "unreachable"); an error answer is never a success and its message
 * names the request; the version chosen is one of the history's, and its
 * operation is a file, dir or symlink at the path asked; the operations
 * of a folder's contents all lie below it.
 */
#include "../fs/sync.c"

#include "../fs/history.c"

#include "../fs/remote_curl.c"

#include "fuzz_util.h"
#include "mount_env.h"

static int64_t mirror_cursor(struct fs *fs, int64_t ns)
{
	struct cfs_error err;
	struct cfs_sql *db = cache_db(fs->cache, &err);
	struct mirror_ns m = { .cursor = -1 };

	FUZZ_CHECK(db, "no database: %s", err.msg);
	FUZZ_CHECK(mirror_ns_get(db, ns, &m, &err) == CFS_OK,
		   "the mirror forgot namespace %lld", (long long)ns);
	cache_db_release(fs->cache, db);
	return m.cursor;
}

static void listing_page(json_t *answer)
{
	struct fs *fs = mount_env_get(500);
	const bool stop = false;
	struct cfs_error err = { 0 };
	int64_t before = mirror_cursor(fs, MOUNT_ENV_ROOT_NS), cursor = before;
	struct remote_page page;
	size_t count = 0;
	enum cfs_err rc;

	rc = parse_page(answer, MOUNT_ENV_ROOT_NS, before, &page, &err);
	if (rc == CFS_OK) {
		rc = apply_page(fs, MOUNT_ENV_ROOT_NS, &page, &count, &stop,
				&err);
		cursor = page.cursor;
		remote_page_release(&page);
	}
	if (rc) {
		FUZZ_CHECK(err.code == rc && err.msg[0],
			   "a refused page without its error");
		FUZZ_CHECK(rc == CFS_ERR_UNREACHABLE,
			   "a refused page is not 'unreachable': %s", err.msg);
		FUZZ_CHECK(mirror_cursor(fs, MOUNT_ENV_ROOT_NS) == before,
			   "a refused page moved the cursor");
		return;
	}
	FUZZ_CHECK(cursor >= before, "the cursor went back from %lld to %lld",
		   (long long)before, (long long)cursor);
	FUZZ_CHECK(mirror_cursor(fs, MOUNT_ENV_ROOT_NS) == cursor,
		   "the mirror is at %lld, the page at %lld",
		   (long long)mirror_cursor(fs, MOUNT_ENV_ROOT_NS),
		   (long long)cursor);
}

static void error_answer(const uint8_t *data, size_t size)
{
	static const long statuses[] = { 400, 401, 404, 409, 413, 500,
					 502, 503, 201, 302, 0,	  599 };
	struct cfs_error err = { 0 };
	long status;
	enum cfs_err rc;

	if (!size)
		return;
	status = statuses[data[0] % (sizeof(statuses) / sizeof(statuses[0]))];
	rc = http_error("GET /x", status, (const char *)data + 1, size - 1,
			&err);
	FUZZ_CHECK(rc != CFS_OK, "an HTTP %ld error answer is a success",
		   status);
	FUZZ_CHECK(err.code == rc && strncmp(err.msg, "GET /x: ", 8) == 0,
		   "the error does not name the request: '%s'", err.msg);
}

static void check_op(const struct queued_op *op, const char *path, bool below)
{
	const char *at = op->path;

	FUZZ_CHECK(op->type == QUEUE_FILE || op->type == QUEUE_DIR ||
			   op->type == QUEUE_SYMLINK ||
			   (op->type == QUEUE_SPECIAL &&
			    cfs_kind_is_special(op->kind)),
		   "an operation of type %d", (int)op->type);
	FUZZ_CHECK(!cfs_kind_has_target(op->kind) || op->target,
		   "a '%s' operation without its target",
		   cfs_kind_name(op->kind));
	FUZZ_CHECK(at && (below ? strncmp(at, path, strlen(path)) == 0 &&
					  at[strlen(path)] == '/'
				: strcmp(at, path) == 0),
		   "an operation at '%s', not %s '%s'", at ? at : "(none)",
		   below ? "below" : "at", path);
}

static void restore_version(json_t *answer)
{
	int64_t jid = json_integer_value(json_object_get(answer, "jid"));
	int64_t at = json_integer_value(json_object_get(answer, "at"));
	const struct remote_version *v;
	struct remote_version *versions = NULL;
	struct cfs_error err = { 0 };
	struct queued_op op;
	int64_t as_of = 0;
	size_t n = 0;

	if (parse_history(answer, MOUNT_ENV_ROOT_NS, &versions, &n, &err)) {
		FUZZ_CHECK(err.code == CFS_ERR_UNREACHABLE && err.msg[0],
			   "a refused history is not 'unreachable'");
		return;
	}
	v = choose(versions, n, jid, at, &as_of, &err);
	if (!v) {
		FUZZ_CHECK(err.code != CFS_OK && err.msg[0],
			   "no version, and no reason");
	} else {
		FUZZ_CHECK(v >= versions && v < versions + n,
			   "the version chosen is not in the history");
		if (op_of(&v->e, "a/b", &op)) {
			check_op(&op, "a/b", false);
			queued_op_release(&op);
		}
	}
	remote_versions_free(versions, n);
}

static void restore_folder(json_t *answer)
{
	int64_t top = json_integer_value(json_object_get(answer, "top"));
	json_t *state = json_object_get(answer, "state");
	struct cfs_error err = { 0 };
	struct op_list ops = { 0 };
	struct listing l = { 0 };
	const char *key;
	json_t *e;

	if (!json_is_object(state))
		return;
	/* The entries of a listing as of then, checked one by one as the
	 * remote checks a page's. */
	json_object_foreach(state, key, e)
	{
		struct mirror_entry one;
		char *path = NULL;
		struct remote_page page = { .entries = &one,
					    .paths = &path,
					    .n = 1 };

		if (parse_entry(e, MOUNT_ENV_ROOT_NS, INT64_MAX, &one, &err))
			continue;
		if (!(page.entries = malloc(sizeof(one))) ||
		    !(page.paths = calloc(1, sizeof(char *))))
			FUZZ_CHECK(false, "out of memory");
		page.entries[0] = one;
		FUZZ_CHECK(listing_take(&l, &page, &err) == CFS_OK,
			   "out of memory");
	}
	if (l.n)
		qsort(l.e, l.n, sizeof(*l.e), by_node);
	if (subtree_ops(&l, top, "a/b", &ops, &err) == CFS_OK)
		for (size_t i = 0; i < ops.n; i++)
			check_op(&ops.ops[i], "a/b", true);
	op_list_release(&ops);
	listing_release(&l);
}

/* The pending part of a long poll's answer (streaming sync). */
static void pending_answer(json_t *answer)
{
	struct remote_pending p = { .cursor = 7 };
	struct cfs_error err = { 0 };
	enum cfs_err rc = parse_pending(answer, &p, &err);

	if (rc) {
		FUZZ_CHECK(rc == CFS_ERR_UNREACHABLE || rc == CFS_ERR_INTERNAL,
			   "a bad pending list was refused as %s",
			   cfs_err_name(rc));
		FUZZ_CHECK(p.n == 0 && !p.landed,
			   "a refused answer left %zu landed blocks", p.n);
		FUZZ_CHECK(strstr(err.msg, "/meta/longpoll") ||
				   rc == CFS_ERR_INTERNAL,
			   "the refusal does not name the request: %s",
			   err.msg);
		return;
	}
	FUZZ_CHECK(p.cursor >= 7, "the pending cursor went back to %lld",
		   (long long)p.cursor);
	FUZZ_CHECK(p.n <= CFS_PENDING_MAX_BLOCKS, "%zu landed blocks", p.n);
	for (size_t i = 0; i < p.n; i++)
		FUZZ_CHECK(p.landed[i].ns >= 1 && p.landed[i].size >= 1 &&
				   p.landed[i].size <= CFS_BLOCK_SIZE,
			   "landed block %zu: namespace %lld, %u bytes", i,
			   (long long)p.landed[i].ns, p.landed[i].size);
	remote_pending_release(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *answer;

	if (size < 1)
		return 0;
	if (data[0] % 4 == 1) {
		error_answer(data + 1, size - 1);
		return 0;
	}
	/* As the remote takes an answer: a JSON object, or nothing. */
	answer = json_loadb((const char *)data + 1, size - 1, 0, NULL);
	if (!json_is_object(answer)) {
		json_decref(answer);
		return 0;
	}
	switch (data[0] % 4) {
	case 0:
		listing_page(answer);
		pending_answer(answer);
		break;
	case 2:
		restore_version(answer);
		break;
	case 3:
		restore_folder(answer);
		break;
	}
	json_decref(answer);
	return 0;
}
