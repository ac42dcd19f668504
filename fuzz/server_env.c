/* The server the endpoint harnesses drive (server_env.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cloudfs/log.h"
#include "cloudfs/path.h"
#include "cloudfs/proto.h"
#include "fuzz_util.h"
#include "server/http.h"
#include "server_env.h"

#define QUERY_MAX 16

/* "hello", the one block the seeded tree holds (file "h"). */
#define HELLO "hello"

static struct {
	size_t n;
	char *key[QUERY_MAX], *value[QUERY_MAX];
} query;

/* The HTTP layer's http_query(), over the arguments set last. */
const char *http_query(struct api_req *req, const char *key)
{
	(void)req;
	for (size_t i = 0; i < query.n; i++)
		if (strcmp(query.key[i], key) == 0)
			return query.value[i];
	return NULL;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes %XX in place, as libmicrohttpd does for query arguments. */
static void unescape(char *s)
{
	char *w = s;

	for (char *r = s; *r; r++) {
		if (r[0] == '%' && hex_digit(r[1]) >= 0 &&
		    hex_digit(r[2]) >= 0) {
			*w++ = (char)(hex_digit(r[1]) * 16 + hex_digit(r[2]));
			r += 2;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
}

void server_env_set_query(struct api_req *req, const char *q)
{
	char *copy, *save = NULL;

	for (size_t i = 0; i < query.n; i++) {
		free(query.key[i]);
		free(query.value[i]);
	}
	query.n = 0;
	req->http = &query;
	if (!q)
		return;
	copy = strdup(q);
	FUZZ_CHECK(copy, "out of memory");
	for (char *arg = strtok_r(copy, "&", &save); arg && query.n < QUERY_MAX;
	     arg = strtok_r(NULL, "&", &save)) {
		char *eq = strchr(arg, '=');

		if (eq)
			*eq = '\0';
		query.key[query.n] = strdup(arg);
		query.value[query.n] = strdup(eq ? eq + 1 : "");
		FUZZ_CHECK(query.key[query.n] && query.value[query.n],
			   "out of memory");
		unescape(query.key[query.n]);
		unescape(query.value[query.n]);
		query.n++;
	}
	free(copy);
}

/* The checking proxy in front of the real store. */

static struct meta *real;

static void check_user(const struct meta_user *user)
{
	FUZZ_CHECK(user && user->id > 0 && user->root_ns > 0,
		   "a call without its user");
}

static void check_path(const char *path, bool allow_root, const char *what)
{
	struct cfs_error err;

	FUZZ_CHECK(path, "%s is NULL", what);
	FUZZ_CHECK(cfs_path_check(path, strlen(path), allow_root, what, &err) ==
			   CFS_OK,
		   "an unchecked path reaches the store: %s", err.msg);
}

static void check_user_name(const char *name)
{
	struct cfs_error err;

	FUZZ_CHECK(name && meta_user_name_check(name, strlen(name), &err) ==
				   CFS_OK,
		   "an unchecked user name reaches the store");
}

/* Whether a call that failed said why. */
static enum cfs_err said(enum cfs_err rc, const struct cfs_error *err)
{
	FUZZ_CHECK(!rc || (err->code == rc && err->msg[0]),
		   "the store failed (%s) without a message", cfs_err_name(rc));
	return rc;
}

static bool listed(const struct cfs_blocklist *bl,
		   const struct cfs_block_id *id)
{
	for (size_t i = 0; i < bl->n; i++)
		if (cfs_block_id_equal(&bl->ids[i], id))
			return true;
	return false;
}

static void check_op(const struct meta_op *op)
{
	check_path(op->path, false, "an operation's path");
	FUZZ_CHECK((op->mode & ~(uint32_t)CFS_MODE_MASK) == 0,
		   "mode %o reaches the store", op->mode);
	FUZZ_CHECK(op->base_jid >= -1 && op->node >= 0 && op->seq >= 0,
		   "base_jid %lld, node %lld, seq %lld reach the store",
		   (long long)op->base_jid, (long long)op->node,
		   (long long)op->seq);
	switch (op->type) {
	case META_OP_FILE:
		FUZZ_CHECK(op->size <= CFS_MAX_FILE_SIZE &&
				   op->blocks.n == cfs_block_count(op->size),
			   "a file of %llu bytes with %zu blocks",
			   (unsigned long long)op->size, op->blocks.n);
		break;
	case META_OP_SYMLINK:
		FUZZ_CHECK(op->target && strlen(op->target) >= 1 &&
				   strlen(op->target) <= CFS_MAX_SYMLINK_TARGET,
			   "a bad symlink target reaches the store");
		break;
	case META_OP_SPECIAL: {
		uint32_t major, minor;

		FUZZ_CHECK(cfs_kind_is_special(op->kind),
			   "a special operation of kind %d", op->kind);
		FUZZ_CHECK(!cfs_kind_has_target(op->kind) ||
				   cfs_device_parse(op->target, &major, &minor),
			   "a bad device target reaches the store");
		break;
	}
	case META_OP_MOVE:
		check_path(op->to, false, "a move's target");
		break;
	case META_OP_LINK:
		check_path(op->to, false, "a link's new name");
		break;
	case META_OP_DIR:
	case META_OP_DELETE:
		break;
	default:
		FUZZ_CHECK(false, "operation type %d", op->type);
	}
}

static void check_result(const struct meta_op *op,
			 const struct meta_op_result *r, int64_t head)
{
	switch (r->status) {
	case META_COMMITTED:
		FUZZ_CHECK(r->jid >= 1 && r->jid <= head && r->node >= 1,
			   "committed at JID %lld (head %lld), node %lld",
			   (long long)r->jid, (long long)head,
			   (long long)r->node);
		break;
	case META_NEED_BLOCKS:
		FUZZ_CHECK(op->type == META_OP_FILE && r->need.n >= 1,
			   "need_blocks for no block");
		for (size_t i = 0; i < r->need.n; i++)
			FUZZ_CHECK(listed(&op->blocks, &r->need.ids[i]),
				   "need_blocks names a block not in the file");
		break;
	case META_CONFLICT:
		break;
	case META_FAILED:
		FUZZ_CHECK(r->err.code != CFS_OK && r->err.msg[0],
			   "a failed operation without its error");
		break;
	default:
		FUZZ_CHECK(false, "result status %d", r->status);
	}
}

static void p_close(struct meta *m)
{
	(void)m;
}

static enum cfs_err p_user_add(struct meta *m, const char *name,
			       struct meta_user *out, struct cfs_error *err)
{
	(void)m;
	return said(real->ops->user_add(real, name, out, err), err);
}

static enum cfs_err p_user_get(struct meta *m, const char *name,
			       struct meta_user *out, struct cfs_error *err)
{
	(void)m;
	return said(real->ops->user_get(real, name, out, err), err);
}

static enum cfs_err p_token_add(struct meta *m, int64_t user,
				const uint8_t hash[META_TOKEN_HASH_LEN],
				struct cfs_error *err)
{
	(void)m;
	return said(real->ops->token_add(real, user, hash, err), err);
}

static enum cfs_err p_token_revoke(struct meta *m,
				   const uint8_t hash[META_TOKEN_HASH_LEN],
				   struct cfs_error *err)
{
	(void)m;
	return said(real->ops->token_revoke(real, hash, err), err);
}

static enum cfs_err p_auth(struct meta *m,
			   const uint8_t hash[META_TOKEN_HASH_LEN],
			   struct meta_user *out, struct cfs_error *err)
{
	(void)m;
	return said(real->ops->auth(real, hash, out, err), err);
}

static enum cfs_err p_namespaces(struct meta *m, const struct meta_user *user,
				 meta_ns_fn fn, void *arg,
				 struct cfs_error *err)
{
	(void)m;
	check_user(user);
	return said(real->ops->namespaces(real, user, fn, arg, err), err);
}

static enum cfs_err p_heads(struct meta *m, const struct meta_user *user,
			    const int64_t *ns, int64_t *heads, size_t n,
			    struct cfs_error *err)
{
	enum cfs_err rc;

	(void)m;
	check_user(user);
	FUZZ_CHECK(n >= 1 && n <= CFS_LONGPOLL_MAX_NS, "heads of %zu", n);
	for (size_t i = 0; i < n; i++) {
		FUZZ_CHECK(ns[i] >= 1, "namespace %lld", (long long)ns[i]);
		for (size_t j = 0; j < i; j++)
			FUZZ_CHECK(ns[i] != ns[j], "namespace %lld twice",
				   (long long)ns[i]);
	}
	rc = said(real->ops->heads(real, user, ns, heads, n, err), err);
	for (size_t i = 0; !rc && i < n; i++)
		FUZZ_CHECK(heads[i] >= -1, "head %lld", (long long)heads[i]);
	return rc;
}

/* Counts the entries of a listing on their way to the handler. */
struct counted {
	meta_entry_fn fn;
	void *arg;
	unsigned n;
};

static enum cfs_err count_entry(void *arg, const struct meta_entry *e,
				struct cfs_error *err)
{
	struct counted *c = arg;
	struct cfs_error e2;

	FUZZ_CHECK(e->node >= 1 && e->jid >= 1, "entry node %lld JID %lld",
		   (long long)e->node, (long long)e->jid);
	FUZZ_CHECK(e->name && cfs_name_check(e->name, strlen(e->name), "entry",
					     &e2) == CFS_OK,
		   "the store lists a bad name");
	FUZZ_CHECK(e->kind != CFS_KIND_FILE ||
			   e->blocks.n == cfs_block_count(e->size),
		   "the store lists a file of %llu bytes with %zu blocks",
		   (unsigned long long)e->size, e->blocks.n);
	c->n++;
	return c->fn(c->arg, e, err);
}

static enum cfs_err p_list(struct meta *m, const struct meta_user *user,
			   int64_t ns, int64_t cursor, unsigned limit,
			   meta_entry_fn fn, void *arg, struct meta_page *page,
			   struct cfs_error *err)
{
	struct counted c = { fn, arg, 0 };
	enum cfs_err rc;

	(void)m;
	check_user(user);
	FUZZ_CHECK(cursor >= 0 && limit >= 1 && limit <= CFS_LIST_MAX_LIMIT,
		   "list from %lld, %u at most", (long long)cursor, limit);
	rc = said(real->ops->list(real, user, ns, cursor, limit, count_entry,
				  &c, page, err),
		  err);
	FUZZ_CHECK(rc || c.n <= limit, "%u entries, limit %u", c.n, limit);
	return rc;
}

static enum cfs_err p_list_as_of(struct meta *m, const struct meta_user *user,
				 int64_t ns, int64_t as_of, int64_t at,
				 int64_t cursor, unsigned limit,
				 meta_entry_fn fn, void *arg,
				 struct meta_page *page, struct cfs_error *err)
{
	struct counted c = { fn, arg, 0 };
	enum cfs_err rc;

	(void)m;
	check_user(user);
	FUZZ_CHECK(cursor >= 0 && limit >= 1 && limit <= CFS_LIST_MAX_LIMIT,
		   "list from %lld, %u at most", (long long)cursor, limit);
	FUZZ_CHECK((as_of >= 0) != (at > 0), "as_of %lld and at %lld",
		   (long long)as_of, (long long)at);
	rc = said(real->ops->list_as_of(real, user, ns, as_of, at, cursor,
					limit, count_entry, &c, page, err),
		  err);
	FUZZ_CHECK(rc || c.n <= limit, "%u entries, limit %u", c.n, limit);
	return rc;
}

static enum cfs_err p_commit(struct meta *m, const struct meta_user *user,
			     int64_t ns, const struct meta_sender *from,
			     const struct meta_op *ops,
			     struct meta_op_result *res, size_t n,
			     int64_t *head, struct cfs_error *err)
{
	enum cfs_err rc;

	(void)m;
	check_user(user);
	FUZZ_CHECK(n <= CFS_MAX_BATCH_OPS, "a batch of %zu", n);
	FUZZ_CHECK(!from->client || (strlen(from->client) >= 1 &&
				     strlen(from->client) <= META_CLIENT_MAX),
		   "client id '%s'", from->client);
	FUZZ_CHECK(from->keep_from >= 0, "keep_from %lld",
		   (long long)from->keep_from);
	for (size_t i = 0; i < n; i++)
		check_op(&ops[i]);
	rc = said(
		real->ops->commit(real, user, ns, from, ops, res, n, head, err),
		err);
	for (size_t i = 0; !rc && i < n; i++)
		check_result(&ops[i], &res[i], *head);
	return rc;
}

static enum cfs_err p_blocks_needed(struct meta *m,
				    const struct meta_user *user,
				    const struct cfs_blocklist *ids,
				    struct cfs_blocklist *needed,
				    struct cfs_error *err)
{
	enum cfs_err rc;

	(void)m;
	check_user(user);
	FUZZ_CHECK(ids->n <= CFS_MAX_NEED_BLOCKS, "%zu ids", ids->n);
	rc = said(real->ops->blocks_needed(real, user, ids, needed, err), err);
	for (size_t i = 0; !rc && i < needed->n; i++)
		FUZZ_CHECK(listed(ids, &needed->ids[i]),
			   "a block needed that was not asked about");
	return rc;
}

static enum cfs_err p_blocks_added(struct meta *m, const struct meta_user *user,
				   const struct cfs_block_id *ids,
				   const uint32_t *sizes, size_t n,
				   meta_store_fn store, void *store_arg,
				   struct cfs_error *err)
{
	(void)m;
	check_user(user);
	FUZZ_CHECK(n >= 1 && n <= CFS_MAX_BATCH_BLOCKS, "%zu blocks", n);
	for (size_t i = 0; i < n; i++)
		FUZZ_CHECK(sizes[i] >= 1 && sizes[i] <= CFS_BLOCK_SIZE,
			   "a block of %u bytes", sizes[i]);
	return said(real->ops->blocks_added(real, user, ids, sizes, n, store,
					    store_arg, err),
		    err);
}

static enum cfs_err p_block_readable(struct meta *m,
				     const struct meta_user *user,
				     const struct cfs_block_id *id,
				     struct cfs_error *err)
{
	(void)m;
	check_user(user);
	return said(real->ops->block_readable(real, user, id, err), err);
}

static enum cfs_err p_share(struct meta *m, const struct meta_user *user,
			    int64_t ns, const char *path, int64_t *shared,
			    bool *created, struct cfs_error *err)
{
	(void)m;
	check_user(user);
	check_path(path, false, "a shared folder's path");
	return said(
		real->ops->share(real, user, ns, path, shared, created, err),
		err);
}

static enum cfs_err p_invite(struct meta *m, const struct meta_user *user,
			     int64_t ns, const char *invitee,
			     struct cfs_error *err)
{
	(void)m;
	check_user(user);
	check_user_name(invitee);
	return said(real->ops->invite(real, user, ns, invitee, err), err);
}

static enum cfs_err p_leave(struct meta *m, const struct meta_user *user,
			    int64_t ns, struct cfs_error *err)
{
	(void)m;
	check_user(user);
	return said(real->ops->leave(real, user, ns, err), err);
}

static enum cfs_err p_remove_member(struct meta *m,
				    const struct meta_user *user, int64_t ns,
				    const char *member, struct cfs_error *err)
{
	(void)m;
	check_user(user);
	check_user_name(member);
	return said(real->ops->remove_member(real, user, ns, member, err), err);
}

static enum cfs_err p_members(struct meta *m, const struct meta_user *user,
			      int64_t ns, meta_member_fn fn, void *arg,
			      struct cfs_error *err)
{
	(void)m;
	check_user(user);
	return said(real->ops->members(real, user, ns, fn, arg, err), err);
}

static enum cfs_err p_history(struct meta *m, const struct meta_user *user,
			      int64_t ns, const char *path, meta_entry_fn fn,
			      void *arg, struct cfs_error *err)
{
	(void)m;
	check_user(user);
	check_path(path, false, "a history's path");
	return said(real->ops->history(real, user, ns, path, fn, arg, err),
		    err);
}

static enum cfs_err p_gc(struct meta *m, int64_t before, meta_block_fn fn,
			 void *arg, struct meta_gc_tally *t,
			 struct cfs_error *err)
{
	(void)m;
	return said(real->ops->gc(real, before, fn, arg, t, err), err);
}

static enum cfs_err p_pending(struct meta *m, const struct meta_user *user,
			      const int64_t *ns, size_t n, int64_t after,
			      meta_pending_fn fn, void *arg, int64_t *cursor,
			      struct cfs_error *err)
{
	(void)m;
	check_user(user);
	return said(real->ops->pending(real, user, ns, n, after, fn, arg,
				       cursor, err),
		    err);
}

static const struct meta_ops proxy_ops = {
	.close = p_close,
	.user_add = p_user_add,
	.user_get = p_user_get,
	.token_add = p_token_add,
	.token_revoke = p_token_revoke,
	.auth = p_auth,
	.namespaces = p_namespaces,
	.heads = p_heads,
	.list = p_list,
	.commit = p_commit,
	.blocks_needed = p_blocks_needed,
	.blocks_added = p_blocks_added,
	.block_readable = p_block_readable,
	.share = p_share,
	.invite = p_invite,
	.leave = p_leave,
	.remove_member = p_remove_member,
	.members = p_members,
	.history = p_history,
	.list_as_of = p_list_as_of,
	.gc = p_gc,
	.pending = p_pending,
};

static struct meta proxy = { .ops = &proxy_ops };

/* Setting up. */

static void notify(void *arg, int64_t ns)
{
	longpoll_notify(arg, ns);
}

static void must(enum cfs_err rc, const struct cfs_error *err, const char *what)
{
	FUZZ_CHECK(rc == CFS_OK, "cannot %s: %s", what, err->msg);
}

/* Stores "hello" as uploaded by the user, as PUT /block/ID does. */
static void upload_hello(struct server_env *env, struct cfs_block_id *id)
{
	struct blockstore *bs = env->ctx.blocks;
	struct blockstore_writer *w;
	struct cfs_error err;

	must(bs->ops->write_begin(bs, &w, &err), &err, "start an upload");
	must(bs->ops->write(w, HELLO, strlen(HELLO), &err), &err,
	     "write a block");
	FUZZ_CHECK(cfs_sha256(HELLO, strlen(HELLO), id) == 0, "no SHA-256");
	must(bs->ops->write_finish(w, id, &err), &err, "store a block");
	must(real->ops->blocks_added(real, &env->user, id,
				     &(uint32_t){ strlen(HELLO) }, 1, NULL,
				     NULL, &err),
	     &err, "record a block");
}

/* The tree every run starts from: d/ (shared with "other"), d/f (empty),
 * h ("hello"), l -> d/f. */
static void seed(struct server_env *env)
{
	struct meta_op ops[4] = {
		{ .type = META_OP_DIR, .path = "d", .mode = 0755 },
		{ .type = META_OP_FILE, .path = "d/f", .mode = 0644 },
		{ .type = META_OP_FILE, .path = "h", .mode = 0644, .size = 5 },
		{ .type = META_OP_SYMLINK,
		  .path = "l",
		  .target = "d/f",
		  .mode = 0777 },
	};
	struct meta_op_result res[4] = { 0 };
	struct meta_sender from = { 0 };
	struct cfs_block_id id;
	struct cfs_error err;
	int64_t head;
	bool created;

	must(real->ops->user_add(real, "fuzz", &env->user, &err), &err,
	     "add a user");
	must(real->ops->user_add(real, "other", &env->other, &err), &err,
	     "add a user");
	env->other_ns = env->other.root_ns;
	upload_hello(env, &id);
	ops[2].blocks = (struct cfs_blocklist){ .n = 1, .ids = &id };
	must(real->ops->commit(real, &env->user, env->user.root_ns, &from, ops,
			       res, 4, &head, &err),
	     &err, "commit the seed tree");
	for (size_t i = 0; i < 4; i++) {
		FUZZ_CHECK(res[i].status == META_COMMITTED,
			   "seed operation %zu: %s", i, res[i].err.msg);
		meta_op_result_release(&res[i]);
	}
	must(real->ops->share(real, &env->user, env->user.root_ns, "d",
			      &env->shared_ns, &created, &err),
	     &err, "share d");
	must(real->ops->invite(real, &env->user, env->shared_ns, "other", &err),
	     &err, "invite other");
}

static void open_store(struct server_env *env, const char *dir)
{
	struct cfs_error err;

	must(meta_sqlite_open(dir, notify, env->ctx.longpoll, &real, &err),
	     &err, "open the metadata store");
	must(blockstore_dir_open(dir, &env->ctx.blocks, &err), &err,
	     "open the block store");
	seed(env);
}

static void close_store(struct server_env *env)
{
	env->ctx.blocks->ops->close(env->ctx.blocks);
	real->ops->close(real);
	real = NULL;
}

struct server_env *server_env_get(unsigned every)
{
	static pthread_rwlock_t uploads = PTHREAD_RWLOCK_INITIALIZER;
	static struct server_env env;
	static const char *dir;
	static unsigned calls;

	if (!dir) {
		cfs_log_init("fuzz", CFS_LOG_ERROR);
		dir = fuzz_tmpdir("server");
		env.ctx.meta = &proxy;
		env.ctx.uploads = &uploads;
		env.ctx.longpoll = longpoll_new();
		FUZZ_CHECK(env.ctx.longpoll, "no long-poll registry");
		open_store(&env, dir);
	} else if (every && ++calls % every == 0) {
		close_store(&env);
		fuzz_empty_dir(dir);
		open_store(&env, dir);
	}
	return &env;
}

void server_env_check_answer(enum cfs_err rc, const struct cfs_error *err,
			     const struct api_resp *resp)
{
	char *text;

	if (rc) {
		FUZZ_CHECK(rc > CFS_OK && rc < CFS_ERR_UNREACHABLE,
			   "error code %d on the wire", rc);
		FUZZ_CHECK(err->code == rc && err->msg[0],
			   "error %s without its message", cfs_err_name(rc));
		FUZZ_CHECK(cfs_err_http_status(rc) >= 400,
			   "error %s answered %u", cfs_err_name(rc),
			   cfs_err_http_status(rc));
		return;
	}
	if (resp->park || resp->reader)
		return;
	if (resp->text) /* GET /metrics */
		return;
	FUZZ_CHECK(json_is_object(resp->json), "a success without a body");
	text = json_dumps(resp->json, JSON_COMPACT);
	FUZZ_CHECK(text, "the answer cannot be written out");
	free(text);
}

void server_env_release(struct api_req *req, struct api_resp *resp)
{
	if (req->state_free)
		req->state_free(req->state);
	req->state_free = NULL;
	req->state = NULL;
	if (resp->reader)
		resp->reader->bs->ops->read_close(resp->reader);
	resp->reader = NULL;
	json_decref(resp->json);
	resp->json = NULL;
	free(resp->text);
	resp->text = NULL;
	json_decref(req->body);
	req->body = NULL;
}
