/*
 * The long-poll endpoint: answers as soon as any watched namespace moves
 * past its cursor, or with no change once the timeout passes.  A waiting
 * request is registered with the long-poll registry and its connection is
 * suspended, so it holds no thread.
 *
 * The registry is joined before the heads are read: a commit that lands
 * after the read wakes the waiter, and one that landed before it is seen
 * by the read, so no commit can slip between the two.
 *
 * A token may be revoked while its poll waits, by another process
 * (cloudfsd revoke) that the server hears nothing from.  So every wake-up
 * asks the store again whether the token is live before it answers, and a
 * waiter is registered for at most RECHECK_MS at a time: when that slice
 * ends before the poll's own deadline, the token is checked, the heads
 * are read again and the waiter parks for another slice.  A revoked
 * token's poll ends with 401 within RECHECK_MS; a live one costs the
 * store two small reads every RECHECK_MS.
 *
 * A poll that gives a pending cursor (streaming sync) also ends when
 * blocks of a pending list of a watched namespace land past it: a
 * landing wakes the namespace's waiters as a commit does, and the same
 * read that takes the heads asks the store for them (meta_ops.pending,
 * which shows members only).
 */
#include <stdlib.h>

#include "cloudfs/json.h"
#include "cloudfs/proto.h"
#include "server/api.h"

#define RECHECK_MS 5000

struct poll_state {
	struct longpoll *lp;
	struct longpoll_waiter waiter;
	uint64_t deadline_ms; /* the poll's own, from its timeout */
	uint64_t slice_ms;    /* the waiter's: at most RECHECK_MS ahead */
	size_t n;
	int64_t *ns;
	int64_t *cursors;
	int64_t *heads;
	int64_t pending_after; /* the caller's pending cursor; -1: none */
	int64_t pending_cursor;
	json_t *pending; /* the pending lists of the last read */
};

static void poll_state_free(void *arg)
{
	struct poll_state *st = arg;

	longpoll_cancel(st->lp, &st->waiter);
	free(st->ns);
	free(st->cursors);
	free(st->heads);
	json_decref(st->pending);
	free(st);
}

static enum cfs_err parse_cursors(json_t *arr, struct poll_state *st,
				  struct cfs_error *err)
{
	json_t *o;
	size_t i;

	st->n = json_array_size(arr);
	st->ns = calloc(st->n ? st->n : 1, sizeof(*st->ns));
	st->cursors = calloc(st->n ? st->n : 1, sizeof(*st->cursors));
	st->heads = calloc(st->n ? st->n : 1, sizeof(*st->heads));
	if (!st->ns || !st->cursors || !st->heads)
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	if (st->n == 0)
		return cfs_fail(
			err, CFS_ERR_BAD_FIELD,
			"field 'cursors' must name at least one namespace");
	json_array_foreach(arr, i, o)
	{
		enum cfs_err rc = CFS_ERR_BAD_FIELD;

		if (!json_is_object(o))
			cfs_fail(err, rc, "must be an object");
		else if ((rc = cfs_json_int(o, "ns", 1, INT64_MAX, &st->ns[i],
					    err)) == CFS_OK)
			rc = cfs_json_int(o, "cursor", 0, INT64_MAX,
					  &st->cursors[i], err);
		for (size_t j = 0; rc == CFS_OK && j < i; j++)
			if (st->ns[j] == st->ns[i])
				rc = cfs_fail(err, CFS_ERR_BAD_FIELD,
					      "namespace %lld is listed twice",
					      (long long)st->ns[i]);
		if (rc) {
			cfs_error_prefix(err, "cursor %zu", i);
			return rc;
		}
	}
	return CFS_OK;
}

/* Adds a landed block to the answer's pending lists: one object per
 * list, whose blocks come together (meta_ops.pending). */
static enum cfs_err add_pending(void *arg, const struct meta_pending *p,
				struct cfs_error *err)
{
	json_t *lists = arg, *last, *blocks;
	char hex[CFS_BLOCK_ID_HEX_LEN + 1];

	last = json_array_get(lists, json_array_size(lists) - 1);
	if (!last ||
	    json_integer_value(json_object_get(last, "list")) != p->list) {
		last = json_pack("{s:I, s:I, s:s, s:I, s:[]}", "list",
				 (json_int_t)p->list, "ns", (json_int_t)p->ns,
				 "path", p->path, "expires",
				 (json_int_t)p->expires, "blocks");
		if (!last || json_array_append_new(lists, last))
			return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	}
	blocks = json_object_get(last, "blocks");
	cfs_block_id_to_hex(&p->id, hex);
	if (json_array_append_new(blocks,
				  json_pack("{s:s, s:I}", "id", hex, "size",
					    (json_int_t)p->size)))
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	return CFS_OK;
}

/* Reads the heads, and the landed pending blocks when the caller asked;
 * *moved tells whether any namespace passed its cursor or stopped being
 * readable, or blocks landed. */
static enum cfs_err read_heads(struct api_req *req, struct poll_state *st,
			       bool *moved, struct cfs_error *err)
{
	struct meta *m = req->ctx->meta;
	enum cfs_err rc;

	rc = m->ops->heads(m, req->user, st->ns, st->heads, st->n, err);
	*moved = false;
	for (size_t i = 0; rc == CFS_OK && i < st->n; i++)
		*moved |= st->heads[i] != st->cursors[i];
	if (rc || st->pending_after < 0)
		return rc;
	json_decref(st->pending);
	if (!(st->pending = json_array()))
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	rc = m->ops->pending(m, req->user, st->ns, st->n, st->pending_after,
			     add_pending, st->pending, &st->pending_cursor,
			     err);
	*moved |= json_array_size(st->pending) > 0;
	return rc;
}

static enum cfs_err answer(struct api_resp *resp, struct poll_state *st,
			   struct cfs_error *err)
{
	json_t *changes = json_array(), *gone = json_array();

	for (size_t i = 0; changes && gone && i < st->n; i++) {
		int rc;

		if (st->heads[i] < 0)
			rc = json_array_append_new(gone,
						   json_integer(st->ns[i]));
		else if (st->heads[i] > st->cursors[i])
			rc = json_array_append_new(
				changes,
				json_pack("{s:I, s:I}", "ns",
					  (json_int_t)st->ns[i], "head",
					  (json_int_t)st->heads[i]));
		else
			continue;
		if (rc) {
			json_decref(changes);
			changes = NULL;
		}
	}
	if (!changes || !gone) {
		json_decref(changes);
		json_decref(gone);
		return api_reply(resp, NULL, err);
	}
	if (st->pending_after < 0)
		return api_reply(resp,
				 json_pack("{s:o, s:o}", "changes", changes,
					   "gone", gone),
				 err);
	return api_reply(resp,
			 json_pack("{s:o, s:o, s:O, s:I}", "changes", changes,
				   "gone", gone, "pending", st->pending,
				   "pending_cursor",
				   (json_int_t)st->pending_cursor),
			 err);
}

/*
 * Joins the registry, then reads the heads: answers if anything moved,
 * else parks until the deadline.  A wake-up with nothing for this caller
 * (another member left a shared folder) comes back here and parks again.
 */
static enum cfs_err wait_or_answer(struct api_req *req, struct api_resp *resp,
				   struct poll_state *st, struct cfs_error *err)
{
	uint64_t now = longpoll_clock_ms();
	bool moved;
	enum cfs_err rc;

	st->slice_ms = now + RECHECK_MS < st->deadline_ms ? now + RECHECK_MS
							  : st->deadline_ms;
	if (longpoll_add(st->lp, &st->waiter, st->ns, st->n, st->slice_ms))
		return cfs_fail(err, CFS_ERR_UNAVAILABLE,
				"the server is stopping");
	rc = read_heads(req, st, &moved, err);
	if (rc || moved) {
		longpoll_cancel(st->lp, &st->waiter);
		return rc ? rc : answer(resp, st, err);
	}
	resp->park = &st->waiter;
	return CFS_OK;
}

enum cfs_err api_longpoll(struct api_req *req, struct api_resp *resp,
			  struct cfs_error *err)
{
	struct poll_state *st = calloc(1, sizeof(*st));
	int64_t timeout;
	json_t *arr;
	enum cfs_err rc;
	bool moved;

	if (!st)
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	st->lp = req->ctx->longpoll;
	req->state = st;
	req->state_free = poll_state_free;
	rc = cfs_json_array(req->body, "cursors", CFS_LONGPOLL_MAX_NS, &arr,
			    err);
	if (rc == CFS_OK)
		rc = cfs_json_int_opt(req->body, "timeout", 0,
				      CFS_LONGPOLL_MAX_S,
				      CFS_LONGPOLL_DEFAULT_S, &timeout, err);
	st->pending_after = -1;
	if (rc == CFS_OK && json_object_get(req->body, "pending"))
		rc = cfs_json_int(req->body, "pending", 0, INT64_MAX,
				  &st->pending_after, err);
	if (rc == CFS_OK)
		rc = parse_cursors(arr, st, err);
	if (rc == CFS_OK)
		rc = read_heads(req, st, &moved, err);
	for (size_t i = 0; rc == CFS_OK && i < st->n; i++) {
		if (st->heads[i] < 0)
			rc = cfs_fail(err, CFS_ERR_NOT_FOUND,
				      "no namespace %lld",
				      (long long)st->ns[i]);
		else if (st->cursors[i] > st->heads[i])
			rc = cfs_fail(
				err, CFS_ERR_BAD_CURSOR,
				"cursor %lld is beyond the head %lld of namespace %lld",
				(long long)st->cursors[i],
				(long long)st->heads[i], (long long)st->ns[i]);
	}
	if (rc || moved || timeout == 0)
		return rc ? rc : answer(resp, st, err);
	st->deadline_ms = longpoll_clock_ms() + (uint64_t)timeout * 1000;
	return wait_or_answer(req, resp, st, err);
}

/* Whether the token of the request is still live (another process may
 * have revoked it since the request began). */
static enum cfs_err recheck_token(struct api_req *req, struct cfs_error *err)
{
	struct meta *m = req->ctx->meta;
	struct meta_user now;
	enum cfs_err rc;

	rc = m->ops->auth(m, req->user->token, &now, err);
	if (rc == CFS_ERR_UNAUTHORIZED)
		cfs_fail(err, rc, "token was revoked during the long poll");
	return rc;
}

enum cfs_err api_longpoll_resume(struct api_req *req, struct api_resp *resp,
				 struct cfs_error *err)
{
	struct poll_state *st = req->state;
	uint64_t now = longpoll_clock_ms();
	bool moved;
	enum cfs_err rc;

	if (st->waiter.stopping)
		return cfs_fail(err, CFS_ERR_UNAVAILABLE,
				"the server is stopping");
	rc = recheck_token(req, err);
	if (rc)
		return rc;
	/* A slice that ended short of the deadline; a wake-up as timed out
	 * before its slice ended is the registry ending the poll early. */
	if (!st->waiter.timed_out ||
	    (now >= st->slice_ms && now < st->deadline_ms))
		return wait_or_answer(req, resp, st, err);
	rc = read_heads(req, st, &moved, err);
	return rc ? rc : answer(resp, st, err);
}
