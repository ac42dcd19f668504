/*
 * The block endpoints: "which do you need", download and upload.
 *
 * An upload is written to a temporary file and hashed as it streams in;
 * only a body whose SHA-256 is the id in the path, at most 4 MiB long, is
 * stored.  A block the server holds already is read and hashed in full
 * like any other, so neither the answer nor its timing tells the caller
 * what others have stored (Dropship).
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

enum cfs_err api_block_get(struct api_req *req, struct api_resp *resp,
			   struct cfs_error *err)
{
	struct meta *m = req->ctx->meta;
	struct blockstore *bs = req->ctx->blocks;
	char hex[CFS_BLOCK_ID_HEX_LEN + 1];
	struct timespec start;
	enum cfs_err rc;
	int e;

	rc = m->ops->block_readable(m, req->user, &req->block, err);
	if (rc)
		return rc;
	clock_gettime(CLOCK_MONOTONIC, &start);
	e = bs->ops->open(bs, &req->block, &resp->fd, &resp->size);
	metrics_store_time(METRICS_STORE_OPEN, &start);
	if (e == 0)
		return CFS_OK;
	cfs_block_id_to_hex(&req->block, hex);
	cfs_log_error("block %s is indexed but cannot be opened: %s", hex,
		      strerror(-e));
	return cfs_fail(err, CFS_ERR_INTERNAL, "cannot read block %s", hex);
}

/* The upload failed: remember why, and free its disk space at once (on a
 * full disk every byte counts). */
static void upload_fail(struct api_req *req, enum cfs_err code, const char *msg,
			int errnum)
{
	struct api_upload *up = &req->upload;

	if (up->failed)
		return;
	if (errnum == ENOSPC || errnum == EDQUOT)
		code = CFS_ERR_STORAGE_FULL;
	up->failed = code;
	if (errnum)
		cfs_fail(&up->err, code, "%s: %s", msg, strerror(errnum));
	else
		cfs_fail(&up->err, code, "%s", msg);
	api_upload_release(req);
}

void api_upload_begin(struct api_req *req)
{
	struct api_upload *up = &req->upload;
	struct blockstore *bs = req->ctx->blocks;
	int e;

	up->tmp.fd = -1;
	up->hash = cfs_sha256_new();
	e = up->hash ? bs->ops->tmp_create(bs, &up->tmp) : -ENOMEM;
	if (e)
		upload_fail(req, CFS_ERR_INTERNAL,
			    "cannot create a temporary file for the upload",
			    -e);
}

void api_upload_data(struct api_req *req, const char *data, size_t len)
{
	struct api_upload *up = &req->upload;

	if (up->failed)
		return;
	if (len > CFS_BLOCK_SIZE - up->size) {
		upload_fail(req, CFS_ERR_TOO_LARGE,
			    "body is larger than a block (4194304 bytes)", 0);
		return;
	}
	if (cfs_sha256_update(up->hash, data, len)) {
		upload_fail(req, CFS_ERR_INTERNAL, "cannot hash the upload",
			    ENOMEM);
		return;
	}
	up->size += len;
	while (len) {
		ssize_t n = write(up->tmp.fd, data, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			upload_fail(req, CFS_ERR_INTERNAL,
				    "cannot write the upload", errno);
			return;
		}
		data += n;
		len -= (size_t)n;
	}
}

void api_upload_release(struct api_req *req)
{
	struct api_upload *up = &req->upload;
	struct blockstore *bs = req->ctx->blocks;

	if (up->tmp.fd >= 0)
		bs->ops->tmp_discard(bs, &up->tmp);
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

enum cfs_err api_block_put(struct api_req *req, struct api_resp *resp,
			   struct cfs_error *err)
{
	struct api_upload *up = &req->upload;
	struct meta *m = req->ctx->meta;
	struct blockstore *bs = req->ctx->blocks;
	char want[CFS_BLOCK_ID_HEX_LEN + 1];
	struct cfs_block_id id;
	struct timespec start;
	enum cfs_err rc;
	int e;

	cfs_block_id_to_hex(&req->block, want);
	rc = check_upload(req, &id, want, err);
	if (rc) {
		api_upload_release(req);
		return rc;
	}
	pthread_rwlock_rdlock(req->ctx->uploads);
	clock_gettime(CLOCK_MONOTONIC, &start);
	e = bs->ops->tmp_store(bs, &up->tmp, &id);
	metrics_store_time(METRICS_STORE_WRITE, &start);
	rc = e ? cfs_fail(err,
			  e == -ENOSPC ? CFS_ERR_STORAGE_FULL
				       : CFS_ERR_INTERNAL,
			  "cannot store block %s: %s", want, strerror(-e))
	       : m->ops->block_added(m, req->user, &id, (uint32_t)up->size,
				     err);
	pthread_rwlock_unlock(req->ctx->uploads);
	if (rc)
		return rc;
	metrics_block_uploaded(up->size);
	return api_reply(resp,
			 json_pack("{s:s, s:I}", "block", want, "size",
				   (json_int_t)up->size),
			 err);
}
