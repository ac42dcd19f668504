/*
 * The block endpoints: "which do you need", download and upload.
 *
 * An upload streams into the block store's writer and is hashed as it
 * comes; only a body whose SHA-256 is the id in the path, at most 4 MiB
 * long, is stored (write_finish).  A block the server holds already is
 * read and hashed in full like any other, so neither the answer nor its
 * timing tells the caller what others have stored (Dropship).
 */
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cloudfs/json.h"
#include "cloudfs/log.h"
#include "cloudfs/proto.h"
#include "server/api.h"
#include "server/metrics.h"

enum cfs_err api_blocks_need(struct api_req *req, struct api_resp *resp,
			     struct cfs_error *err)
{
	struct meta *m = req->ctx->meta;
	struct cfs_blocklist ids, needed;
	enum cfs_err rc;

	rc = cfs_json_blocklist(req->body, "blocks", CFS_MAX_NEED_BLOCKS, &ids,
				err);
	if (rc)
		return rc;
	rc = m->ops->blocks_needed(m, req->user, &ids, &needed, err);
	cfs_blocklist_release(&ids);
	if (rc)
		return rc;
	rc = api_reply(resp,
		       json_pack("{s:o}", "needed",
				 cfs_json_block_ids(needed.ids, needed.n)),
		       err);
	cfs_blocklist_release(&needed);
	return rc;
}

/*
 * The block store failed with rc (*err says how) at what, about block
 * hex: the details (paths, endpoint, status) go to the log, and *err is
 * rewritten for the client, who learns what failed and whether a retry
 * may help, not how the server stores its blocks.
 */
static enum cfs_err store_failed(enum cfs_err rc, const char *what,
				 const char *hex, struct cfs_error *err)
{
	const char *why = "the block store failed";

	cfs_log_error("%s block %s: %s", what, hex, err->msg);
	if (rc == CFS_ERR_UNAVAILABLE)
		why = "the block store is unavailable";
	else if (rc == CFS_ERR_STORAGE_FULL)
		why = "the block store is full";
	else
		rc = CFS_ERR_INTERNAL;
	return cfs_fail(err, rc, "%s block %s: %s", what, hex, why);
}

enum cfs_err api_block_get(struct api_req *req, struct api_resp *resp,
			   struct cfs_error *err)
{
	struct meta *m = req->ctx->meta;
	struct blockstore *bs = req->ctx->blocks;
	char hex[CFS_BLOCK_ID_HEX_LEN + 1];
	struct timespec start;
	enum cfs_err rc;

	rc = m->ops->block_readable(m, req->user, &req->block, err);
	if (rc)
		return rc;
	clock_gettime(CLOCK_MONOTONIC, &start);
	rc = bs->ops->read_open(bs, &req->block, &resp->reader, &resp->size,
				err);
	metrics_store_time(METRICS_STORE_OPEN, &start);
	if (rc == CFS_OK)
		return CFS_OK;
	/* The index lists it, so the store must have it: a lost block is
	 * the server's failure (500), not the caller's. */
	cfs_block_id_to_hex(&req->block, hex);
	return store_failed(rc, "cannot read", hex, err);
}

/* The upload failed (up->err says why): remember it, and free what the
 * store kept of it at once (on a full disk every byte counts). */
static void upload_failed(struct api_req *req, enum cfs_err code)
{
	req->upload.failed = code;
	api_upload_release(req);
}

void api_upload_begin(struct api_req *req)
{
	struct api_upload *up = &req->upload;
	struct blockstore *bs = req->ctx->blocks;
	char hex[CFS_BLOCK_ID_HEX_LEN + 1];
	enum cfs_err rc;

	up->hash = cfs_sha256_new();
	if (!up->hash) {
		upload_failed(req, cfs_fail(&up->err, CFS_ERR_INTERNAL,
					    "out of memory"));
		return;
	}
	rc = bs->ops->write_begin(bs, &up->writer, &up->err);
	if (rc) {
		up->writer = NULL;
		cfs_block_id_to_hex(&req->block, hex);
		upload_failed(req, store_failed(rc, "cannot start to store",
						hex, &up->err));
	}
}

void api_upload_data(struct api_req *req, const char *data, size_t len)
{
	struct api_upload *up = &req->upload;
	struct blockstore *bs = req->ctx->blocks;
	char hex[CFS_BLOCK_ID_HEX_LEN + 1];
	enum cfs_err rc;

	if (up->failed)
		return;
	if (len > CFS_BLOCK_SIZE - up->size) {
		upload_failed(
			req,
			cfs_fail(
				&up->err, CFS_ERR_TOO_LARGE,
				"body is larger than a block (4194304 bytes)"));
		return;
	}
	if (cfs_sha256_update(up->hash, data, len)) {
		upload_failed(req, cfs_fail(&up->err, CFS_ERR_INTERNAL,
					    "cannot hash the upload: %s",
					    strerror(ENOMEM)));
		return;
	}
	up->size += len;
	rc = bs->ops->write(up->writer, data, len, &up->err);
	if (rc) {
		cfs_block_id_to_hex(&req->block, hex);
		upload_failed(req,
			      store_failed(rc, "cannot store", hex, &up->err));
	}
}

void api_upload_release(struct api_req *req)
{
	struct api_upload *up = &req->upload;
	struct blockstore *bs = req->ctx->blocks;

	if (up->writer)
		bs->ops->write_abort(up->writer);
	up->writer = NULL;
	cfs_sha256_free(up->hash);
	up->hash = NULL;
}

/* The finished upload: not failed, not empty, hashing to want. */
static enum cfs_err check_upload(struct api_req *req, struct cfs_block_id *id,
				 const char *want, struct cfs_error *err)
{
	struct api_upload *up = &req->upload;
	char got[CFS_BLOCK_ID_HEX_LEN + 1];

	if (up->failed) {
		*err = up->err;
		return up->failed;
	}
	if (up->size == 0)
		return cfs_fail(
			err, CFS_ERR_BAD_BLOCK,
			"body of block %s is empty (a block holds 1 to 4194304 bytes)",
			want);
	if (cfs_sha256_final(up->hash, id))
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	if (!cfs_block_id_equal(id, &req->block)) {
		cfs_block_id_to_hex(id, got);
		return cfs_fail(err, CFS_ERR_HASH_MISMATCH,
				"body hashes to %s, not to %s", got, want);
	}
	return CFS_OK;
}

/* Stores a checked PUT's bytes (meta_store_fn): finishes its writer,
 * which that consumes (a writer left when this never ran is aborted with
 * the request, api_upload_release). */
static enum cfs_err put_store(void *arg, size_t *stored, struct cfs_error *err)
{
	struct api_req *req = arg;
	struct blockstore *bs = req->ctx->blocks;
	struct blockstore_writer *w = req->upload.writer;
	char hex[CFS_BLOCK_ID_HEX_LEN + 1];
	struct timespec start;
	enum cfs_err rc;

	clock_gettime(CLOCK_MONOTONIC, &start);
	req->upload.writer = NULL;
	rc = bs->ops->write_finish(w, &req->block, err);
	metrics_store_time(METRICS_STORE_WRITE, &start);
	*stored = rc == CFS_OK;
	if (rc) {
		cfs_block_id_to_hex(&req->block, hex);
		rc = store_failed(rc, "cannot store", hex, err);
	}
	return rc;
}

enum cfs_err api_block_put(struct api_req *req, struct api_resp *resp,
			   struct cfs_error *err)
{
	struct api_upload *up = &req->upload;
	struct meta *m = req->ctx->meta;
	char want[CFS_BLOCK_ID_HEX_LEN + 1];
	struct cfs_block_id id;
	enum cfs_err rc;

	cfs_block_id_to_hex(&req->block, want);
	rc = check_upload(req, &id, want, err);
	if (rc) {
		api_upload_release(req);
		return rc;
	}
	pthread_rwlock_rdlock(req->ctx->uploads);
	rc = m->ops->blocks_added(m, req->user, &id,
				  &(uint32_t){ (uint32_t)up->size }, 1,
				  put_store, req, err);
	pthread_rwlock_unlock(req->ctx->uploads);
	if (rc)
		return rc;
	metrics_block_uploaded(up->size);
	return api_reply(resp,
			 json_pack("{s:s, s:I}", "block", want, "size",
				   (json_int_t)up->size),
			 err);
}

/* One block of a batch upload, as its header line gave it. */
struct batch_block {
	struct cfs_block_id id;
	const char *data;
	uint32_t size;
};

/*
 * The header line of block i at body[*at] ("ID SIZE\n", SIZE 1 to 4194304
 * in decimal without a leading zero) into *b, its bytes included; *at
 * moves past them.  BAD_REQUEST or BAD_BLOCK, naming the block, when the
 * framing is wrong.
 */
static enum cfs_err batch_header(const char *body, size_t len, size_t *at,
				 size_t i, struct batch_block *b,
				 struct cfs_error *err)
{
	const char *p = body + *at, *end = body + len, *nl;
	size_t size = 0, digits;

	nl = memchr(p, '\n',
		    (size_t)(end - p) < CFS_BATCH_HEADER_MAX
			    ? (size_t)(end - p)
			    : CFS_BATCH_HEADER_MAX);
	if (!nl || nl - p < CFS_BLOCK_ID_HEX_LEN + 2 ||
	    p[CFS_BLOCK_ID_HEX_LEN] != ' ')
		return cfs_fail(
			err, CFS_ERR_BAD_BLOCK,
			"block %zu of the batch does not start with a line 'ID SIZE'",
			i + 1);
	if (!cfs_block_id_from_hex(p, CFS_BLOCK_ID_HEX_LEN, &b->id))
		return cfs_fail(
			err, CFS_ERR_BAD_BLOCK,
			"block %zu of the batch: '%.64s' is not a block id (64 lowercase hex digits)",
			i + 1, p);
	p += CFS_BLOCK_ID_HEX_LEN + 1;
	digits = (size_t)(nl - p);
	for (size_t k = 0; k < digits && size <= CFS_BLOCK_SIZE; k++) {
		if (p[k] < '0' || p[k] > '9' || (k == 0 && p[k] == '0')) {
			size = 0;
			break;
		}
		size = size * 10 + (size_t)(p[k] - '0');
	}
	if (size == 0 || size > CFS_BLOCK_SIZE)
		return cfs_fail(
			err, CFS_ERR_BAD_BLOCK,
			"block %zu of the batch: size '%.*s' is not 1 to 4194304",
			i + 1, (int)(digits < 16 ? digits : 16), p);
	if ((size_t)(end - nl - 1) < size)
		return cfs_fail(
			err, CFS_ERR_BAD_BLOCK,
			"block %zu of the batch: the body ends %zu bytes into its %zu",
			i + 1, (size_t)(end - nl - 1), size);
	b->data = nl + 1;
	b->size = (uint32_t)size;
	*at = (size_t)(b->data - body) + size;
	return CFS_OK;
}

/* Hands the bytes of block b (checked) to a new writer of the store. */
static enum cfs_err batch_write(struct blockstore *bs,
				const struct batch_block *b,
				struct blockstore_writer **w,
				struct cfs_error *err)
{
	char hex[CFS_BLOCK_ID_HEX_LEN + 1];
	enum cfs_err rc;

	cfs_block_id_to_hex(&b->id, hex);
	rc = bs->ops->write_begin(bs, w, err);
	if (rc) {
		*w = NULL;
		return store_failed(rc, "cannot start to store", hex, err);
	}
	rc = bs->ops->write(*w, b->data, b->size, err);
	if (rc) {
		bs->ops->write_abort(*w);
		*w = NULL;
		return store_failed(rc, "cannot store", hex, err);
	}
	return CFS_OK;
}

/* What batch_store stores. */
struct batch {
	struct blockstore *bs;
	const struct batch_block *b;
	size_t n;
};

/*
 * Stores the n blocks b (checked) of a batch (meta_store_fn): all
 * written first, then finished together where the store can
 * (write_finish_many), else one by one.  *stored: how many, from the
 * first on, are stored.
 */
static enum cfs_err batch_store(void *arg, size_t *stored,
				struct cfs_error *err)
{
	const struct batch *batch = arg;
	struct blockstore *bs = batch->bs;
	const struct batch_block *b = batch->b;
	size_t n = batch->n;
	struct blockstore_writer **w = calloc(n, sizeof(*w));
	struct cfs_block_id *ids = malloc(n * sizeof(*ids));
	char hex[CFS_BLOCK_ID_HEX_LEN + 1];
	struct timespec start;
	enum cfs_err rc = CFS_OK;
	size_t k = 0;

	*stored = 0;
	if (!w || !ids)
		rc = cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	for (; rc == CFS_OK && k < n; k++) {
		ids[k] = b[k].id;
		rc = batch_write(bs, &b[k], &w[k], err);
	}
	if (rc) {
		for (size_t i = 0; w && i < n; i++)
			if (w[i])
				bs->ops->write_abort(w[i]);
		goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &start);
	if (bs->ops->write_finish_many) {
		rc = bs->ops->write_finish_many(w, ids, n, stored, err);
		if (rc) {
			cfs_block_id_to_hex(&ids[*stored < n ? *stored : 0],
					    hex);
			rc = store_failed(rc, "cannot store", hex, err);
		}
	} else {
		for (k = 0; k < n; k++) {
			if (rc) {
				bs->ops->write_abort(w[k]);
				continue;
			}
			rc = bs->ops->write_finish(w[k], &ids[k], err);
			if (rc) {
				cfs_block_id_to_hex(&ids[k], hex);
				rc = store_failed(rc, "cannot store", hex, err);
			} else {
				*stored = k + 1;
			}
		}
	}
	metrics_store_time(METRICS_STORE_WRITE, &start);
out:
	free(ids);
	free(w);
	return rc;
}

/*
 * POST /block/batch: many small blocks in one request, so that a tree of
 * small files costs a request and a metadata transaction per batch, not
 * per file.  Every block is hashed and checked before any is stored (a
 * batch with one wrong block stores none), stored like a PUT's, and all
 * are recorded in one transaction.  Should the store fail midway, those
 * stored are still recorded (the index never lacks a block the store
 * holds for an upload) and the error names the block that failed.
 */
enum cfs_err api_blocks_put(struct api_req *req, struct api_resp *resp,
			    struct cfs_error *err)
{
	struct meta *m = req->ctx->meta;
	struct blockstore *bs = req->ctx->blocks;
	struct batch_block *b = NULL;
	struct cfs_block_id *ids = NULL;
	uint32_t *sizes = NULL;
	size_t n = 0, at = 0;
	json_t *list = NULL;
	enum cfs_err rc = CFS_OK;

	if (!req->raw_len)
		return cfs_fail(err, CFS_ERR_BAD_BLOCK,
				"the batch is empty (give 1 to %d blocks)",
				CFS_MAX_BATCH_BLOCKS);
	b = calloc(CFS_MAX_BATCH_BLOCKS, sizeof(*b));
	if (!b)
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	while (rc == CFS_OK && at < req->raw_len) {
		if (n == CFS_MAX_BATCH_BLOCKS)
			rc = cfs_fail(err, CFS_ERR_TOO_LARGE,
				      "the batch holds more than %d blocks",
				      CFS_MAX_BATCH_BLOCKS);
		else
			rc = batch_header(req->raw, req->raw_len, &at, n, &b[n],
					  err);
		n += rc == CFS_OK;
	}
	for (size_t i = 0, total = 0; rc == CFS_OK && i < n; i++) {
		struct cfs_block_id got;
		char want[CFS_BLOCK_ID_HEX_LEN + 1], hex[sizeof(want)];

		total += b[i].size;
		if (total > CFS_BLOCK_SIZE) {
			rc = cfs_fail(
				err, CFS_ERR_TOO_LARGE,
				"the blocks of the batch hold more than 4194304 bytes in all");
			break;
		}
		if (cfs_sha256(b[i].data, b[i].size, &got)) {
			rc = cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
			break;
		}
		if (!cfs_block_id_equal(&got, &b[i].id)) {
			cfs_block_id_to_hex(&b[i].id, want);
			cfs_block_id_to_hex(&got, hex);
			rc = cfs_fail(
				err, CFS_ERR_HASH_MISMATCH,
				"block %zu of the batch hashes to %s, not to %s",
				i + 1, hex, want);
		}
	}
	if (rc == CFS_OK) {
		ids = malloc(n * sizeof(*ids));
		sizes = malloc(n * sizeof(*sizes));
		list = json_array();
		if (!ids || !sizes || !list)
			rc = cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	}
	if (rc == CFS_OK) {
		struct batch batch = { .bs = bs, .b = b, .n = n };

		for (size_t i = 0; i < n; i++) {
			ids[i] = b[i].id;
			sizes[i] = b[i].size;
		}
		pthread_rwlock_rdlock(req->ctx->uploads);
		rc = m->ops->blocks_added(m, req->user, ids, sizes, n,
					  batch_store, &batch, err);
		pthread_rwlock_unlock(req->ctx->uploads);
	}
	for (size_t i = 0; rc == CFS_OK && i < n; i++) {
		char hex[CFS_BLOCK_ID_HEX_LEN + 1];

		metrics_block_uploaded(b[i].size);
		cfs_block_id_to_hex(&b[i].id, hex);
		rc = api_append(list,
				json_pack("{s:s, s:I}", "block", hex, "size",
					  (json_int_t)b[i].size),
				err);
	}
	if (rc == CFS_OK) {
		rc = api_reply(resp, json_pack("{s:o}", "blocks", list), err);
		list = NULL;
	}
	json_decref(list);
	free(sizes);
	free(ids);
	free(b);
	return rc;
}
