/*
 * The blocks of a batch (fs/upload_state.h): which of them the server
 * needs, the changes whose blocks the cache lost, the announce of
 * streaming sync, and the uploads themselves, several at once, small
 * blocks together; and how far the largest file of the batch has gone.
 */
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache/blockcache.h"
#include "cache/local.h"
#include "cloudfs/log.h"
#include "cloudfs/proto.h"
#include "fs/fs.h"
#include "fs/invalidate.h"
#include "fs/upload_state.h"

#define PARALLEL    4
/* Blocks up to this size go up together (POST /block/batch), so that a
 * tree of small files costs the server a request and a transaction per
 * batch instead of per file; larger ones gain nothing from company and
 * go alone, in parallel. */
#define SMALL_BLOCK (1024 * 1024)

/* The size of block i of op (the last one may be short). */
static uint64_t block_len(const struct queued_op *op, size_t i)
{
	uint64_t at = (uint64_t)i * CFS_BLOCK_SIZE;

	return op->size - at < CFS_BLOCK_SIZE ? op->size - at : CFS_BLOCK_SIZE;
}

static bool listed(const struct cfs_blocklist *l, const struct cfs_block_id *id)
{
	for (size_t k = 0; k < l->n; k++)
		if (cfs_block_id_equal(&l->ids[k], id))
			return true;
	return false;
}

/* Counts as sent the blocks of the largest file that are id (uploaded),
 * or with id NULL, those the server holds already (not in needed). */
void upload_blocks_progress(struct uploader *u, const struct cfs_block_id *id,
			    const struct cfs_blocklist *needed)
{
	const struct queued_op *op = u->current;
	uint64_t sent = 0;

	for (size_t i = 0; op && i < op->blocks.n; i++) {
		const struct cfs_block_id *b = &op->blocks.ids[i];

		if (id ? cfs_block_id_equal(id, b) : !listed(needed, b))
			sent += block_len(op, i);
	}
	__atomic_add_fetch(&u->current_sent, sent, __ATOMIC_RELAXED);
}

/* Which of ids the server needs from us, asked in slices. */
enum cfs_err upload_blocks_needed(struct uploader *u,
				  const struct cfs_blocklist *ids,
				  struct cfs_blocklist *needed,
				  struct cfs_error *err)
{
	enum cfs_err rc = CFS_OK;

	*needed = (struct cfs_blocklist){ 0 };
	if (ids->n && !(needed->ids = malloc(ids->n * sizeof(ids->ids[0]))))
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	for (size_t at = 0; rc == CFS_OK && at < ids->n;
	     at += CFS_MAX_NEED_BLOCKS) {
		size_t k = ids->n - at < CFS_MAX_NEED_BLOCKS
				   ? ids->n - at
				   : CFS_MAX_NEED_BLOCKS;
		unsigned max_s;
		const bool *stop = uploader_bounds(u, &max_s);

		rc = remote_need_blocks(u->conn, &ids->ids[at], k, max_s, stop,
					needed, err);
	}
	return rc;
}

/* One block to upload; the first of a transfer holds it (x), and how
 * many blocks from it on the transfer carries (n: 1 for a PUT). */
struct put {
	struct cfs_block_id id;
	int fd;
	uint64_t len;
	struct remote_xfer *x;
	size_t n;
};

/* Opens p's block in the cache (once), for its length. */
static enum cfs_err put_open(struct uploader *u, struct put *p,
			     struct cfs_error *err)
{
	char hex[CFS_BLOCK_ID_HEX_LEN + 1];
	struct stat st;

	if (p->fd >= 0)
		return CFS_OK;
	cfs_block_id_to_hex(&p->id, hex);
	p->fd = blockcache_open(u->fs->cache, &p->id);
	if (p->fd < 0 || fstat(p->fd, &st))
		return cfs_fail(
			err, CFS_ERR_INTERNAL,
			"block %s of a pending commit is missing from '%s'",
			hex, u->fs->cache->path);
	p->len = (uint64_t)st.st_size;
	return CFS_OK;
}

/*
 * Starts the transfer of puts[0] and, when it is small, of the small ones
 * after it that fit with it in one batch (at most n in all): *taken says
 * how many it carries.  A block opened to find it too large for the
 * batch stays open for the next transfer.
 */
static enum cfs_err put_start(struct uploader *u, struct remote_xfers *set,
			      struct put *puts, size_t n, size_t *taken,
			      struct cfs_error *err)
{
	const struct remote_ops *ops = u->fs->remote->ops;
	struct cfs_block_id ids[CFS_MAX_BATCH_BLOCKS];
	int fds[CFS_MAX_BATCH_BLOCKS];
	uint64_t lens[CFS_MAX_BATCH_BLOCKS], bytes;
	size_t k = 1;
	enum cfs_err rc = put_open(u, &puts[0], err);

	*taken = 0;
	if (rc)
		return rc;
	bytes = puts[0].len;
	if (!u->no_batch && puts[0].len <= SMALL_BLOCK) {
		while (k < n && k < CFS_MAX_BATCH_BLOCKS) {
			rc = put_open(u, &puts[k], err);
			if (rc)
				return rc;
			if (puts[k].len > SMALL_BLOCK ||
			    bytes + puts[k].len > CFS_BLOCK_SIZE)
				break;
			bytes += puts[k++].len;
		}
	}
	if (k == 1) {
		puts[0].x = ops->put(set, &puts[0].id, puts[0].fd, puts[0].len,
				     &puts[0]);
	} else {
		for (size_t i = 0; i < k; i++) {
			ids[i] = puts[i].id;
			fds[i] = puts[i].fd;
			lens[i] = puts[i].len;
		}
		puts[0].x = ops->put_batch(set, ids, fds, lens, k, &puts[0]);
	}
	if (!puts[0].x)
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	puts[0].n = k;
	*taken = k;
	return CFS_OK;
}

static void put_end(struct uploader *u, struct remote_xfers *set, struct put *p)
{
	if (p->x)
		u->fs->remote->ops->xfer_end(set, p->x);
	p->x = NULL;
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
}

/* The state of upload_blocks_send() that put_done() sees. */
struct puts {
	struct uploader *u;
	struct remote_xfers *set;
	size_t running, done;
	enum cfs_err rc;
	struct cfs_error *err;
};

static void put_done(void *arg, struct remote_xfer *x, void *tag,
		     enum cfs_err rc, const struct cfs_error *e)
{
	struct puts *s = arg;
	struct put *p = tag;
	size_t n = p->n;

	(void)x;
	if (rc == CFS_ERR_NOT_FOUND && n > 1) {
		/* Refused as a batch: the next round sends them one by one
		 * (a retry, as for any upload that failed). */
		cfs_log_warn("POST /block/batch of %zu blocks: %s; sending "
			     "blocks one by one from now on",
			     n, e->msg);
		s->u->no_batch = true;
		rc = CFS_ERR_UNREACHABLE;
	}
	if (s->rc == CFS_OK && rc) {
		*s->err = *e;
		cfs_error_prefix(s->err,
				 n > 1 ? "POST /block/batch" : "PUT /block");
		s->err->code = rc;
		s->rc = rc;
	}
	for (size_t i = 0; i < n; i++) {
		if (rc == CFS_OK) {
			uploader_count(&s->u->counts.blocks, 1);
			uploader_count(&s->u->counts.bytes, p[i].len);
			upload_blocks_progress(s->u, &p[i].id, NULL);
		}
		put_end(s->u, s->set, &p[i]);
	}
	s->running--;
	s->done += n;
}

/*
 * The server needs blocks the cache has lost (removed as corrupt by
 * cloudfs cache verify, or by hand): the changes that hold them can never
 * be sent.  They are dropped, loudly, rather than retried forever in
 * front of every other change; *dropped counts them.
 */
enum cfs_err upload_blocks_drop_lost(struct uploader *u,
				     const struct queued_op *ops, size_t n,
				     const struct cfs_blocklist *needed,
				     size_t *dropped, struct cfs_error *err)
{
	struct fs *fs = u->fs;
	struct mirror_changes ch = { 0 };
	struct cfs_sql *db = NULL;
	enum cfs_err rc = CFS_OK;

	*dropped = 0;
	for (size_t b = 0; rc == CFS_OK && b < needed->n; b++) {
		char hex[CFS_BLOCK_ID_HEX_LEN + 1];
		int fd = blockcache_open(fs->cache, &needed->ids[b]);

		if (fd >= 0) {
			close(fd);
			continue;
		}
		cfs_block_id_to_hex(&needed->ids[b], hex);
		if (!db && !(db = cache_db(fs->cache, err)))
			return err->code;
		for (size_t i = 0; rc == CFS_OK && i < n; i++) {
			bool holds = false;

			for (size_t k = 0; k < ops[i].blocks.n && !holds; k++)
				holds = cfs_block_id_equal(
					&ops[i].blocks.ids[k], &needed->ids[b]);
			if (!holds)
				continue;
			cfs_log_error(
				"the new content of '%s' is lost: its block %s is gone from the cache '%s' (removed as corrupt?); the file stays as the server has it",
				ops[i].path, hex, fs->cache->path);
			pthread_mutex_lock(&fs->apply_lock);
			rc = queue_refuse(db, &ops[i], &ch, err);
			pthread_mutex_unlock(&fs->apply_lock);
			*dropped += rc == CFS_OK;
		}
	}
	if (db)
		cache_db_release(fs->cache, db);
	fs_invalidate(fs, &ch);
	mirror_changes_release(&ch);
	return rc;
}

/* Uploads blocks ids, PARALLEL at a time, over reused connections. */
enum cfs_err upload_blocks_send(struct uploader *u,
				const struct cfs_blocklist *ids,
				struct cfs_error *err)
{
	const struct remote_ops *ops = u->fs->remote->ops;
	struct put *puts = calloc(ids->n ? ids->n : 1, sizeof(*puts));
	struct puts s = { .u = u,
			  .set = ops->xfers_new(u->fs->remote),
			  .err = err };
	size_t next = 0;

	if (!puts || !s.set)
		s.rc = cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	for (size_t i = 0; puts && i < ids->n; i++) {
		puts[i].id = ids->ids[i];
		puts[i].fd = -1;
	}
	while (s.rc == CFS_OK && s.done < ids->n) {
		while (s.rc == CFS_OK && s.running < PARALLEL &&
		       next < ids->n) {
			size_t taken;

			s.rc = put_start(u, s.set, &puts[next], ids->n - next,
					 &taken, err);
			next += taken;
			s.running += s.rc == CFS_OK;
		}
		if (s.rc)
			break;
		ops->xfers_step(s.set, put_done, &s);
		if (s.rc == CFS_OK && s.done < ids->n && uploader_cut_short(u))
			s.rc = cfs_fail(err, CFS_ERR_UNREACHABLE,
					"PUT /block: stopped");
		if (s.rc == CFS_OK && s.done < ids->n)
			ops->xfers_wait(s.set, 200);
	}
	for (size_t i = 0; puts && i < ids->n; i++)
		put_end(u, s.set, &puts[i]);
	free(puts);
	if (s.set)
		ops->xfers_free(s.set);
	return s.rc;
}

/*
 * Streaming sync: before the blocks go up, announces the files of more
 * than one block that need some of them (POST /meta/ns/NS/announce in
 * cloudfs-protocol(7)), so that the other mounts of their namespace fetch
 * those blocks as they land.  The server applies none of them, so the
 * batch's order holds; a single block is sent in one request anyway, and
 * little is gained by announcing it.  Best effort: a failure costs the
 * others the head start, nothing else.
 */
void upload_blocks_announce(struct uploader *u, const struct queued_op *ops,
			    size_t n, const struct cfs_blocklist *needed)
{
	struct queued_op *files = calloc(n, sizeof(*files));
	struct remote_commit answer = { 0 };
	struct remote_commit_req req = { .ns = ops[0].ns, .announce = true };
	struct cfs_error err;
	const bool *stop;
	unsigned max_s;

	for (size_t i = 0; files && i < n; i++) {
		bool needs = false;

		if (ops[i].type != QUEUE_FILE || ops[i].blocks.n < 2)
			continue;
		for (size_t k = 0; !needs && k < ops[i].blocks.n; k++)
			needs = listed(needed, &ops[i].blocks.ids[k]);
		if (needs)
			files[req.n++] = ops[i]; /* borrowed, not released */
	}
	req.ops = files;
	stop = uploader_bounds(u, &max_s);
	if (req.n &&
	    remote_commit(u->conn, &req, max_s, stop, &answer, &err) == CFS_OK)
		remote_commit_release(&answer);
	else if (req.n)
		cfs_log_info(
			"cannot announce '%s' and %zu more for streaming: %s",
			files[0].path, req.n - 1, err.msg);
	free(files);
}
