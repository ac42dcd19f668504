/*
 * The uploader (fs/upload.h).
 *
 * One batch at a time: the operations of one namespace, in queue order
 * (cache/local.c's invariant 5).  Blocks go up before the commit that
 * lists them, so a batch is normally committed whole at the first try; a
 * "need_blocks" answer (a race) only makes the operation wait for the
 * next round.  Outcomes:
 *
 *	committed                   confirmed
 *	conflict, newer version     the local content becomes a conflicted
 *	                            copy (files, symlinks); other operations
 *	                            are refused (the other side's edit wins)
 *	conflict, nothing there     the file is created anew (its delete
 *	                            elsewhere does not undo a local edit)
 *	not_found, creating         its folders are created again first
 *	not_found, deleting         already gone: confirmed
 *	cross_namespace             a folder on its way became a shared
 *	                            folder: once the listing shows it,
 *	                            the mirror moves the operation into
 *	                            that namespace (cache/mirror.c,
 *	                            invariant 10), and it goes there
 *	need_blocks, storage_full,  tried again later, after a backoff, for
 *	5xx, network                as long as it takes
 *	anything else               refused, and logged
 *
 * No change is given up in silence: an operation that failed keeps why in
 * the queue (queue_failing), and `cloudfs status` names it.  An answer the
 * mirror cannot record is such a failure of that operation alone; the
 * others of the batch are settled all the same.
 *
 * The operations of a namespace the mirror has not listed yet wait: their
 * bases are known only then (a shared folder's, invariant 10 again).
 *
 * A tree removed (rm -rf) queues a delete per entry, the folder's last.
 * When a folder's delete and the deletes under it are queued in one run
 * and unsent, and they are all the mirror holds under that folder, they
 * go as one recursive delete, unchanged since the namespace's cursor
 * (cloudfs-protocol(7)), the batch ending there: so it deletes nothing
 * this mount has not seen.  A file another device created or moved in
 * after the cursor makes it a conflict, and then nothing was applied: the
 * same deletes go one by one in the next batch, as they would have, and
 * what the other device made survives.  Committed, they are confirmed
 * at the folder's delete JID, the newest of the journal rows it wrote.
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache/blockcache.h"
#include "cache/local.h"
#include "cache/refused.h"
#include "cloudfs/clock.h"
#include "cloudfs/log.h"
#include "cloudfs/proto.h"
#include "fs/fs.h"
#include "fs/invalidate.h"
#include "fs/session.h"
#include "fs/upload.h"

#define BATCH	       UPLOAD_BATCH_MAX
#define PARALLEL       4
/* Blocks up to this size go up together (POST /block/batch), so that a
 * tree of small files costs the server a request and a transaction per
 * batch instead of per file; larger ones gain nothing from company and
 * go alone, in parallel. */
#define SMALL_BLOCK    (1024 * 1024)
#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 30000

struct uploader {
	struct fs *fs;
	struct remote_conn *conn;
	pthread_t thread;
	pthread_mutex_t lock; /* protects what follows */
	pthread_cond_t wake;
	bool stop;
	bool woken;	/* a change was queued (uploader_wake) */
	bool retry_now; /* ends a backoff (uploader_retry_now) */
	unsigned drain_s;
	uint64_t sending[BATCH]; /* inodes of the batch under way */
	size_t n_sending;
	/* The largest file of the batch under way, for cloudfs status (a
	 * small file's progress is over before anyone looks): its path
	 * (NULL: none) and size under the lock; its bytes on the server,
	 * atomic, written by the uploader thread alone. */
	char *current_path;
	uint64_t current_size, current_sent;
	const struct queued_op *current; /* the uploader thread's own */
	uint64_t drain_until_ms;     /* the uploader's own: 0 until the drain */
	struct upload_counts counts; /* atomic, without the lock */
	/* The uploader's own: the server refused a batch upload (one older
	 * than batches): blocks go one by one from then on. */
	bool no_batch;
	/* The uploader's own: the seq of the folder's delete whose
	 * recursive form the server refused; its deletes go one by one. */
	int64_t refused_tree;
};

/* Deletes ops[first .. first + n) of a batch sent as one (see the top):
 * n < 2 is none. */
struct collapse {
	size_t first, n;
	int64_t since; /* the JID they are unchanged since */
};

static void count(uint64_t *c, uint64_t n)
{
	__atomic_add_fetch(c, n, __ATOMIC_RELAXED);
}

/* Tells uploader_sending() which inodes the batch ops holds (n 0: none),
 * and uploader_progress() which is its largest file. */
static void note_sending(struct uploader *u, const struct queued_op *ops,
			 size_t n)
{
	const struct queued_op *largest = NULL;
	char *path;

	for (size_t i = 0; i < n; i++)
		if (ops[i].type == QUEUE_FILE && ops[i].blocks.n &&
		    (!largest || ops[i].size > largest->size))
			largest = &ops[i];
	/* Without memory for the copy, status shows no progress: no more. */
	path = largest ? strdup(largest->path) : NULL;
	u->current = path ? largest : NULL;
	__atomic_store_n(&u->current_sent, 0, __ATOMIC_RELAXED);
	pthread_mutex_lock(&u->lock);
	for (size_t i = 0; i < n; i++)
		u->sending[i] = ops[i].ino;
	u->n_sending = n;
	free(u->current_path);
	u->current_path = path;
	u->current_size = path ? largest->size : 0;
	pthread_mutex_unlock(&u->lock);
}

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
static void progress(struct uploader *u, const struct cfs_block_id *id,
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

/*
 * How long a request may take: until the mount stops (the request is cut
 * short and its operations stay queued), or in the drain at unmount,
 * until its deadline.  Sets *max_s and returns the stop flag to give
 * the remote's calls.
 */
static const bool *request_bounds(struct uploader *u, unsigned *max_s)
{
	uint64_t now = cfs_monotonic_ms();

	*max_s = 0;
	if (!u->drain_until_ms)
		return &u->stop;
	*max_s = now < u->drain_until_ms
			 ? (unsigned)((u->drain_until_ms - now + 999) / 1000)
			 : 1;
	return NULL;
}

/* Whether a request under way must end now (see request_bounds). */
static bool cut_short(struct uploader *u)
{
	return u->drain_until_ms ? cfs_monotonic_ms() >= u->drain_until_ms
				 : __atomic_load_n(&u->stop, __ATOMIC_RELAXED);
}

/* The distinct blocks of the batch's files. */
static enum cfs_err batch_blocks(const struct queued_op *ops, size_t n,
				 struct cfs_blocklist *all,
				 struct cfs_error *err)
{
	size_t cap = 0;

	*all = (struct cfs_blocklist){ 0 };
	for (size_t i = 0; i < n; i++)
		cap += ops[i].blocks.n;
	if (!cap)
		return CFS_OK;
	all->ids = malloc(cap * sizeof(all->ids[0]));
	if (!all->ids)
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	for (size_t i = 0; i < n; i++) {
		for (size_t b = 0; b < ops[i].blocks.n; b++) {
			bool seen = false;

			/* Batches are small; files share blocks rarely. */
			for (size_t k = 0; k < all->n && !seen; k++)
				seen = cfs_block_id_equal(
					&all->ids[k], &ops[i].blocks.ids[b]);
			if (!seen)
				all->ids[all->n++] = ops[i].blocks.ids[b];
		}
	}
	return CFS_OK;
}

/* Which of ids the server needs from us, asked in slices. */
static enum cfs_err needed_blocks(struct uploader *u,
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
		const bool *stop = request_bounds(u, &max_s);

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

/* The state of upload_blocks() that put_done() sees. */
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
			count(&s->u->counts.blocks, 1);
			count(&s->u->counts.bytes, p[i].len);
			progress(s->u, &p[i].id, NULL);
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
static enum cfs_err drop_lost(struct uploader *u, const struct queued_op *ops,
			      size_t n, const struct cfs_blocklist *needed,
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
static enum cfs_err upload_blocks(struct uploader *u,
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
		if (s.rc == CFS_OK && s.done < ids->n && cut_short(u))
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
 * op crosses into a shared folder: one on its way was shared since it was
 * queued.  Until the mirror is listed up to head, which shows the folder
 * and re-addresses op (cache/mirror.c, invariant 10), op waits without
 * counting a try.  Listed and still across, it is a rename over the
 * folder's edge, which no namespace can do: the entry stays where the
 * server has it, with its bytes.  Anything else is tried again, named.
 */
static enum cfs_err wait_for_share(struct cfs_sql *db,
				   const struct queued_op *op, int64_t head,
				   struct mirror_changes *ch, bool *retry,
				   struct cfs_error *err)
{
	struct mirror_ns m;
	int64_t ns = op->ns;
	bool found = false;
	enum cfs_err rc = mirror_ns_get(db, op->ns, &m, err);

	*retry = true;
	if (rc == CFS_OK && m.cursor < head)
		return CFS_OK;
	if (rc && rc != CFS_ERR_NOT_FOUND)
		return rc;
	/* The listing that showed the share may have re-addressed op
	 * since this batch was read: then it goes again as it is now. */
	rc = cfs_sql_int64(db,
			   cfs_sql_stmt(db, "SELECT ns FROM ops WHERE seq = ?1",
					err, "i", op->seq),
			   &ns, &found, err);
	if (rc || !found || ns != op->ns)
		return rc;
	if (op->type == QUEUE_MOVE) {
		*retry = false;
		cfs_log_warn(
			"cannot move '%s' to '%s': one of them is in a folder shared since; it stays where the server has it",
			op->path, op->to);
		return queue_refuse(db, op, ch, err);
	}
	/* A link never crosses a namespace: the file keeps its other
	 * names, this one goes. */
	if (op->type == QUEUE_LINK) {
		*retry = false;
		cfs_log_warn(
			"cannot link '%s' to '%s': one of them is in a folder shared since; the name '%s' goes",
			op->path, op->to, op->to);
		return queue_refuse(db, op, ch, err);
	}
	return queue_retry(
		db, op,
		"a folder on its way is a shared folder now: waiting to send it there",
		err);
}

/*
 * A file the server refused for good: before the mount gives it up (the
 * entry goes back to the server's state), its content is kept under the
 * cache directory (cache/refused.h), and status says so.  Content that
 * cannot be kept leaves the change queued and named in status.  Blocks
 * not in the cache were the server's own (a chmod of an evicted file):
 * nothing is lost with them.
 */
static enum cfs_err refuse_file(struct fs *fs, struct cfs_sql *db,
				const struct queued_op *op, const char *why,
				struct mirror_changes *ch, bool *retry,
				struct cfs_error *err)
{
	char saved[PATH_MAX], msg[sizeof(err->msg)];
	struct cfs_error kept;
	enum cfs_err rc = refused_keep(fs->cache, op->ns, op->path, op->size,
				       &op->blocks, saved, &kept);

	if (rc == CFS_OK) {
		cfs_log_warn(
			"the server refused file '%s': %s; its content is kept in '%s'",
			op->path, why, saved);
	} else if (rc == CFS_ERR_NOT_FOUND) {
		cfs_log_warn("the server refused file '%s': %s", op->path, why);
	} else {
		cfs_log_error(
			"the server refused file '%s' (%s) and its content cannot be kept (%s): the change stays queued",
			op->path, why, kept.msg);
		if (snprintf(
			    msg, sizeof(msg),
			    "refused by the server (%s); its content cannot be kept: %s",
			    why, kept.msg) >= (int)sizeof(msg))
			msg[sizeof(msg) - 1] = '\0'; /* cut: still says why */
		*retry = true;
		return queue_retry(db, op, msg, err);
	}
	return queue_refuse(db, op, ch, err);
}

/* Settles one operation by its answer r, of a batch answered at head;
 * *retry when it must wait for another round (the batch's other answers
 * count all the same). */
static enum cfs_err settle_result(struct fs *fs, struct cfs_sql *db,
				  const struct queued_op *op,
				  const struct remote_result *r, int64_t head,
				  struct mirror_changes *ch, bool *retry,
				  struct cfs_error *err)
{
	bool leaf = op->type == QUEUE_FILE || op->type == QUEUE_SYMLINK ||
		    op->type == QUEUE_SPECIAL;
	bool creates = leaf || op->type == QUEUE_DIR;
	char copy[CFS_NAME_MAX + 1];
	enum cfs_err rc;

	*retry = false;
	if (r->status == REMOTE_COMMITTED)
		return queue_confirm(db, op, r->node, r->jid, r->prev_jid, ch,
				     err);
	if (r->status == REMOTE_NEED_BLOCKS) {
		*retry = true;
		return queue_retry(
			db, op,
			"the server still lacks blocks it was sent: sending them again",
			err);
	}
	if (r->status == REMOTE_CONFLICT && creates && r->jid == 0) {
		*retry = true;
		return queue_rebase(db, op, ch, err);
	}
	if (r->status == REMOTE_CONFLICT && leaf) {
		rc = queue_conflicted_copy(db, op, copy, ch, err);
		if (rc == CFS_OK)
			cfs_log_warn(
				"conflict: '%s' changed elsewhere; the local version is kept as '%s'",
				op->path, copy);
		return rc;
	}
	if (r->code == CFS_ERR_NOT_FOUND && creates) {
		*retry = true;
		return queue_recreate_parents(db, op, head, err);
	}
	if (r->code == CFS_ERR_NOT_FOUND && op->type == QUEUE_DELETE)
		return queue_confirm(db, op, 0, 0, 0, ch, err);
	if (r->code == CFS_ERR_NOT_FOUND && op->type == QUEUE_LINK) {
		rc = local_link_waits(db, op, retry, err);
		if (rc == CFS_OK && *retry)
			return queue_retry(
				db, op,
				"the file it names is not on the server yet",
				err);
		if (rc)
			return rc;
	}
	if (r->code == CFS_ERR_CROSS_NS)
		return wait_for_share(db, op, head, ch, retry, err);
	if (r->code == CFS_ERR_STORAGE_FULL || r->code == CFS_ERR_INTERNAL ||
	    r->code == CFS_ERR_UNAVAILABLE) {
		*retry = true;
		return queue_retry(db, op,
				   r->has_message ? r->message
						  : cfs_err_name(r->code),
				   err);
	}
	if (op->type == QUEUE_FILE)
		return refuse_file(fs, db, op, r->message, ch, retry, err);
	cfs_log_warn("the server refused %s '%s'%s%s: %s", remote_op_name(op),
		     op->path, op->to ? " to " : "", op->to ? op->to : "",
		     r->message);
	return queue_refuse(db, op, ch, err);
}

/*
 * The answer to op could not be recorded (err says why): op stays queued,
 * in doubt, with why, and is sent again; the rest of the batch goes on.
 * An error in recording that too is the caller's.
 */
static enum cfs_err settle_failed(struct cfs_sql *db,
				  const struct queued_op *op, bool *retry,
				  struct cfs_error *err)
{
	char why[sizeof(err->msg) + 64];

	snprintf(why, sizeof(why), "cannot record the server's answer: %s",
		 err->msg);
	cfs_log_error("%s '%s'%s%s: %s", remote_op_name(op), op->path,
		      op->to ? " to " : "", op->to ? op->to : "", why);
	*retry = true;
	return queue_retry(db, op, why, err);
}

/* Tells the listings whether an operation is in doubt (fs/fs.h); they
 * go on once none is.  fs->apply_lock held. */
static void set_doubt(struct fs *fs, bool any)
{
	fs->in_doubt = any;
	if (!any)
		pthread_cond_broadcast(&fs->doubt_over);
}

/*
 * Marks the batch in doubt and makes the queue durable, then sends it: if
 * the answer is lost, this mount or the next knows which operations the
 * server may have applied, and sends them again with their seq, which
 * the server answers as it did (cloudfs-protocol(7)).  Each other change
 * made only in the mirror (a rename, a delete) is durable by then too,
 * since every change wakes the uploader.  *keep_from: the lowest seq
 * still queued.
 */
static enum cfs_err mark_in_doubt(struct fs *fs, const struct queued_op *ops,
				  size_t n, int64_t *keep_from,
				  struct cfs_error *err)
{
	struct cfs_sql *db = cache_db(fs->cache, err);
	enum cfs_err rc = db ? queue_sent(db, ops, n, err) : err->code;

	if (rc == CFS_OK)
		rc = queue_first_seq(db, keep_from, err);
	if (db)
		cache_db_release(fs->cache, db);
	if (rc == CFS_OK)
		rc = cache_sync(fs->cache, err);
	if (rc == CFS_OK) {
		pthread_mutex_lock(&fs->apply_lock);
		fs->in_doubt = true;
		pthread_mutex_unlock(&fs->apply_lock);
	}
	return rc;
}

/*
 * The operations whose answers were recorded (recorded[i]) are no longer in
 * doubt; the others of the batch, whose answers were lost or could not be
 * recorded, stay so until a later answer.  fs->apply_lock held.
 */
static void clear_doubt(struct fs *fs, struct cfs_sql *db,
			const struct queued_op *ops, const bool *recorded,
			size_t n)
{
	struct cfs_error err;
	bool any = true;

	if (queue_answered(db, ops, recorded, n, &err) ||
	    queue_in_doubt(db, &any, &err))
		cfs_log_error(
			"cannot record which changes the server answered: %s",
			err.msg);
	set_doubt(fs, any);
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
static void announce(struct uploader *u, const struct queued_op *ops, size_t n,
		     const struct cfs_blocklist *needed)
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
	stop = request_bounds(u, &max_s);
	if (req.n &&
	    remote_commit(u->conn, &req, max_s, stop, &answer, &err) == CFS_OK)
		remote_commit_release(&answer);
	else if (req.n)
		cfs_log_info(
			"cannot announce '%s' and %zu more for streaming: %s",
			files[0].path, req.n - 1, err.msg);
	free(files);
}

/* Whether op deletes something under the folder dir deletes, and may go
 * with it: a shared folder's mount leaves that folder, and is not. */
static bool deletes_under(const struct queued_op *op,
			  const struct queued_op *dir)
{
	size_t len = strlen(dir->path);

	return op->type == QUEUE_DELETE && op->kind != CFS_KIND_MOUNT &&
	       op->node > 0 && strncmp(op->path, dir->path, len) == 0 &&
	       op->path[len] == '/';
}

/*
 * The first run of the batch's n ops that one recursive delete may send
 * (see the top): a folder's delete and the deletes before it under it,
 * the outermost such folder, unless the server refused it before.
 */
static struct collapse find_collapse(struct uploader *u,
				     const struct queued_op *ops, size_t n)
{
	struct collapse c = { 0 };

	for (size_t i = 0; i < n; i++) {
		size_t j = i;
		bool refused = false;

		if (ops[i].type != QUEUE_DELETE ||
		    ops[i].kind != CFS_KIND_DIR || ops[i].node <= 0)
			continue;
		while (j > 0 && deletes_under(&ops[j - 1], &ops[i]))
			j--;
		if (c.n > 1 && j > c.first)
			break; /* another folder after the first run */
		for (size_t k = j; k <= i; k++)
			refused |= ops[k].seq == u->refused_tree;
		if (j < i && !refused)
			c = (struct collapse){ .first = j, .n = i - j + 1 };
	}
	return c;
}

/* Settles a run's answer: all of its deletes were applied, or none. */
static enum cfs_err settle_collapse(struct uploader *u, struct cfs_sql *db,
				    const struct queued_op *ops, size_t n,
				    const struct remote_result *r,
				    struct mirror_changes *ch,
				    struct cfs_error *err)
{
	const struct queued_op *dir = &ops[n - 1];

	if (r->status == REMOTE_COMMITTED) {
		count(&u->counts.committed, n);
		return queue_confirm_deletes(db, ops, n, r->jid, ch, err);
	}
	u->refused_tree = dir->seq;
	cfs_log_info("'%s' was not deleted as a whole (%s): deleting the %zu"
		     " entries this mount saw one by one",
		     dir->path,
		     r->has_message ? r->message
				    : (r->status == REMOTE_CONFLICT
					       ? "it changed on the server"
					       : cfs_err_name(r->code)),
		     n);
	return CFS_OK;
}

/* Commits the batch (its run c as one delete) and settles every answer,
 * under fs->apply_lock. */
static enum cfs_err commit_batch(struct uploader *u, struct queued_op *ops,
				 size_t n, const struct collapse *c,
				 bool *retry_any, struct cfs_error *err)
{
	struct fs *fs = u->fs;
	struct mirror_changes ch = { 0 };
	struct remote_commit answer = { 0 };
	struct remote_commit_req req = {
		.ns = ops[0].ns, .ops = ops, .n = n, .client = fs->client
	};
	bool *recorded = calloc(n, sizeof(*recorded));
	struct queued_op *sent = NULL;
	struct cfs_sql *db;
	const bool *stop;
	unsigned max_s;
	enum cfs_err rc = CFS_OK;

	assert(c->n < 2 || c->first + c->n == n);
	if (c->n > 1 && (sent = calloc(c->first + 1, sizeof(*sent)))) {
		/* Borrowed: released with the batch. */
		memcpy(sent, ops, (c->first + 1) * sizeof(*sent));
		sent[c->first] = ops[n - 1];
		sent[c->first].unchanged_since = c->since;
		req.ops = sent;
		req.n = c->first + 1;
	}
	rc = mark_in_doubt(fs, ops, n, &req.keep_from, err);
	if (!recorded || (c->n > 1 && !sent)) {
		free(recorded);
		free(sent);
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	}
	pthread_mutex_lock(&fs->apply_lock);
	stop = request_bounds(u, &max_s);
	if (rc == CFS_OK)
		rc = remote_commit(u->conn, &req, max_s, stop, &answer, err);
	if (rc == CFS_OK)
		count(&u->counts.commits, 1);
	db = rc ? NULL : cache_db(fs->cache, err);
	if (rc == CFS_OK && !db)
		rc = err->code;
	for (size_t i = 0; rc == CFS_OK && i < n; i++) {
		bool retry = false;

		if (sent && i == c->first) {
			rc = settle_collapse(u, db, &ops[i], c->n,
					     &answer.results[i], &ch, err);
			for (size_t k = i; k < n; k++)
				recorded[k] = rc == CFS_OK;
			if (rc && rc != CFS_ERR_UNREACHABLE)
				rc = settle_failed(db, &ops[n - 1], &retry,
						   err);
			*retry_any |= retry;
			break;
		}
		rc = settle_result(fs, db, &ops[i], &answer.results[i],
				   answer.head, &ch, &retry, err);
		recorded[i] = rc == CFS_OK;
		if (rc == CFS_OK &&
		    answer.results[i].status == REMOTE_COMMITTED)
			count(&u->counts.committed, 1);
		if (rc && rc != CFS_ERR_UNREACHABLE)
			rc = settle_failed(db, &ops[i], &retry, err);
		*retry_any |= retry;
	}
	if (db) {
		clear_doubt(fs, db, ops, recorded, n);
		cache_db_release(fs->cache, db);
	}
	pthread_mutex_unlock(&fs->apply_lock);
	fs_invalidate(fs, &ch);
	mirror_changes_release(&ch);
	remote_commit_release(&answer);
	free(recorded);
	free(sent);
	return rc;
}

/*
 * The batch failed as a whole for a reason other than an unreachable
 * server (which status says once): a full disk, a block the server
 * refuses.  Each operation keeps why, so that status names it.
 */
static void batch_failed(struct uploader *u, const struct queued_op *ops,
			 size_t n, const struct cfs_error *why)
{
	struct cfs_error err;
	struct cfs_sql *db = cache_db(u->fs->cache, &err);

	pthread_mutex_lock(&u->fs->apply_lock);
	for (size_t i = 0; db && i < n; i++)
		if (queue_retry(db, &ops[i], why->msg, &err))
			cfs_log_error("cannot record why '%s' failed: %s",
				      ops[i].path, err.msg);
	pthread_mutex_unlock(&u->fs->apply_lock);
	if (db)
		cache_db_release(u->fs->cache, db);
}

/* Frees a batch that queue_batch() read. */
static void batch_free(struct queued_op *ops, size_t n)
{
	for (size_t i = 0; i < n; i++)
		queued_op_release(&ops[i]);
	free(ops);
}

/*
 * How many of the batch's n ops fit in one commit body (at least one: the
 * largest op fits alone); the others are released and go in a later batch,
 * in the same order.
 */
static size_t fit_commit_body(struct queued_op *ops, size_t n)
{
	size_t k = remote_commit_fit(ops, n);

	for (size_t i = k; i < n; i++)
		queued_op_release(&ops[i]);
	return k;
}

/*
 * Checks run c of the batch against the mirror (queue_deletes_cover()):
 * when it may go as one, the batch ends with it (*n) and c->since is set;
 * otherwise c is none, and the deletes go one by one, as they may.
 */
static void plan_collapse(struct uploader *u, struct queued_op *ops, size_t *n,
			  struct collapse *c)
{
	struct cfs_error err;
	struct cfs_sql *db = cache_db(u->fs->cache, &err);
	enum cfs_err rc = db ? queue_deletes_cover(db, &ops[c->first], c->n,
						   &c->since, &err)
			     : err.code;

	if (db)
		cache_db_release(u->fs->cache, db);
	if (rc)
		cfs_log_warn("cannot tell whether '%s' may be deleted as a"
			     " whole: %s",
			     ops[c->first + c->n - 1].path, err.msg);
	if (rc || c->since == 0) {
		*c = (struct collapse){ 0 };
		return;
	}
	for (size_t i = c->first + c->n; i < *n; i++)
		queued_op_release(&ops[i]);
	*n = c->first + c->n;
}

/* Sends one batch; *sent is false when there was none to send (the queue
 * empty, or its head waiting for its namespace's listing). */
static enum cfs_err send_batch(struct uploader *u, bool *sent, bool *retry_any,
			       struct cfs_error *err)
{
	struct cfs_blocklist all = { 0 }, needed = { 0 };
	struct queued_op *ops = NULL;
	struct cfs_sql *db = cache_db(u->fs->cache, err);
	struct mirror_ns m = { .listed = true };
	struct collapse collapse = { 0 };
	enum cfs_err rc;
	size_t n = 0, dropped = 0;

	*sent = false;
	if (!db)
		return err->code;
	rc = queue_batch(db, BATCH, &ops, &n, err);
	/* A namespace not followed: the server says what becomes of them. */
	if (rc == CFS_OK && n &&
	    (rc = mirror_ns_get(db, ops[0].ns, &m, err)) == CFS_ERR_NOT_FOUND)
		rc = CFS_OK;
	cache_db_release(u->fs->cache, db);
	if (rc == CFS_OK && n == 0) {
		/* Nothing left to be in doubt about. */
		pthread_mutex_lock(&u->fs->apply_lock);
		if (u->fs->in_doubt)
			set_doubt(u->fs, false);
		pthread_mutex_unlock(&u->fs->apply_lock);
	}
	if (rc || n == 0) {
		free(ops);
		return rc;
	}
	if (!m.listed) {
		/* Their bases are not known yet (see the top); the queue
		 * waits behind them, in order, while the sync thread lists
		 * the namespace, which it may not know of yet (fs/fs.h). */
		__atomic_store_n(&u->fs->relist, true, __ATOMIC_SEQ_CST);
		*retry_any = true;
		batch_free(ops, n);
		return CFS_OK;
	}
	*sent = true;
	n = fit_commit_body(ops, n);
	collapse = find_collapse(u, ops, n);
	if (collapse.n > 1)
		plan_collapse(u, ops, &n, &collapse);
	note_sending(u, ops, n);
	rc = batch_blocks(ops, n, &all, err);
	if (rc == CFS_OK)
		rc = needed_blocks(u, &all, &needed, err);
	if (rc == CFS_OK)
		progress(u, NULL, &needed);
	if (rc == CFS_OK && needed.n)
		rc = drop_lost(u, ops, n, &needed, &dropped, err);
	if (rc == CFS_OK && needed.n && !dropped && u->fs->opt.streaming)
		announce(u, ops, n, &needed);
	if (rc == CFS_OK && needed.n && !dropped)
		rc = upload_blocks(u, &needed, err);
	if (rc == CFS_OK && !dropped)
		rc = commit_batch(u, ops, n, &collapse, retry_any, err);
	if (rc && rc != CFS_ERR_UNREACHABLE)
		batch_failed(u, ops, n, err);
	*retry_any |= dropped > 0; /* the rest goes in the next batch */
	note_sending(u, NULL, 0);
	cfs_blocklist_release(&all);
	cfs_blocklist_release(&needed);
	batch_free(ops, n);
	return rc;
}

/*
 * Waits up to ms (a minute when < 0) for the stop, uploader_retry_now(),
 * or, unless backing off, uploader_wake().  A backoff is not cut short by
 * each change made meanwhile, which would turn an outage into a storm of
 * tries: those changes go with the next try.
 */
static void nap(struct uploader *u, long ms, bool backing_off)
{
	struct timespec until =
		cfs_deadline_in_ms(ms < 0 ? 60000 : (unsigned long)ms);

	pthread_mutex_lock(&u->lock);
	while (!u->stop && !u->retry_now && (backing_off || !u->woken) &&
	       pthread_cond_timedwait(&u->wake, &u->lock, &until) != ETIMEDOUT)
		;
	u->woken = u->retry_now = false;
	pthread_mutex_unlock(&u->lock);
}

/* At unmount: every session committed, the queue sent while it can be. */
static void drain(struct uploader *u)
{
	uint64_t until = cfs_monotonic_ms() + 1000 * (uint64_t)u->drain_s;
	struct cfs_error err;
	int64_t left = 0;
	bool sent = true, retry = false;
	enum cfs_err rc = CFS_OK;
	struct cfs_sql *db;

	sessions_free(u->fs->sessions);
	u->fs->sessions = NULL;
	u->drain_until_ms = until;
	while (rc == CFS_OK && sent && cfs_monotonic_ms() < until) {
		retry = false;
		rc = send_batch(u, &sent, &retry, &err);
		if (retry)
			nap(u, 100, true);
	}
	db = cache_db(u->fs->cache, &err);
	if (db && queue_length(db, &left, &err) == CFS_OK && left)
		cfs_log_warn(
			"%lld changes are not on the server yet (%s); the next mount sends them",
			(long long)left, rc ? err.msg : "no time left");
	if (db)
		cache_db_release(u->fs->cache, db);
}

static void *upload_thread(void *arg)
{
	struct uploader *u = arg;
	unsigned backoff = 0, seed = (unsigned)time(NULL);
	struct cfs_error err;

	while (!__atomic_load_n(&u->stop, __ATOMIC_RELAXED)) {
		bool sent = false, retry = false;
		enum cfs_err rc = send_batch(u, &sent, &retry, &err);

		if (sent) /* its blocks may be evictable now */
			keeper_poke(u->fs->keeper);
		if (rc == CFS_OK && !retry) {
			backoff = 0;
			if (!sent)
				nap(u, -1, false);
			continue;
		}
		count(&u->counts.failures, 1);
		backoff = backoff ? 2 * backoff : BACKOFF_MIN_MS;
		if (backoff > BACKOFF_MAX_MS)
			backoff = BACKOFF_MAX_MS;
		if (rc && !__atomic_load_n(&u->stop, __ATOMIC_RELAXED))
			cfs_log_warn(
				"cannot send local changes (%s); retrying in about %u ms",
				err.msg, backoff);
		/* Jitter: 50% to 150%. */
		nap(u,
		    (long)(backoff / 2 +
			   (unsigned)rand_r(&seed) % (backoff + 1)),
		    true);
	}
	if (u->drain_s)
		drain(u);
	return NULL;
}

struct uploader *uploader_new(struct fs *fs)
{
	struct uploader *u = calloc(1, sizeof(*u));

	if (!u)
		return NULL;
	u->fs = fs;
	u->conn = remote_conn_new(fs->remote);
	pthread_mutex_init(&u->lock, NULL);
	pthread_cond_init(&u->wake, NULL);
	if (!u->conn) {
		uploader_free(u);
		return NULL;
	}
	return u;
}

void uploader_free(struct uploader *u)
{
	if (!u)
		return;
	remote_conn_free(u->conn);
	pthread_cond_destroy(&u->wake);
	pthread_mutex_destroy(&u->lock);
	free(u->current_path);
	free(u);
}

enum cfs_err uploader_step(struct uploader *u, bool *sent, bool *retry,
			   struct cfs_error *err)
{
	*retry = false;
	return send_batch(u, sent, retry, err);
}

struct uploader *uploader_start(struct fs *fs)
{
	struct uploader *u = uploader_new(fs);

	if (u && pthread_create(&u->thread, NULL, upload_thread, u)) {
		uploader_free(u);
		return NULL;
	}
	return u;
}

/* Sets the flag now chooses (retry_now, else woken) and wakes a nap. */
static void poke(struct uploader *u, bool now)
{
	if (!u)
		return;
	pthread_mutex_lock(&u->lock);
	if (now)
		u->retry_now = true;
	else
		u->woken = true;
	pthread_cond_signal(&u->wake);
	pthread_mutex_unlock(&u->lock);
}

void uploader_wake(struct uploader *u)
{
	poke(u, false);
}

void uploader_retry_now(struct uploader *u)
{
	poke(u, true);
}

void uploader_stop(struct uploader *u, unsigned drain_s)
{
	if (!u)
		return;
	pthread_mutex_lock(&u->lock);
	u->drain_s = drain_s ? drain_s : 1;
	__atomic_store_n(&u->stop, true, __ATOMIC_RELAXED);
	pthread_cond_signal(&u->wake);
	pthread_mutex_unlock(&u->lock);
	pthread_join(u->thread, NULL);
	uploader_free(u);
}

size_t uploader_sending(struct uploader *u, uint64_t *inos, size_t max)
{
	size_t n;

	if (!u)
		return 0;
	pthread_mutex_lock(&u->lock);
	n = u->n_sending < max ? u->n_sending : max;
	for (size_t i = 0; i < n; i++)
		inos[i] = u->sending[i];
	pthread_mutex_unlock(&u->lock);
	return n;
}

bool uploader_progress(struct uploader *u, char **path, uint64_t *sent,
		       uint64_t *size)
{
	if (!u)
		return false;
	pthread_mutex_lock(&u->lock);
	*path = u->current_path ? strdup(u->current_path) : NULL;
	*size = u->current_size;
	pthread_mutex_unlock(&u->lock);
	*sent = __atomic_load_n(&u->current_sent, __ATOMIC_RELAXED);
	return *path != NULL;
}

bool uploader_sends(struct uploader *u, uint64_t ino)
{
	bool found = false;

	if (!u)
		return false;
	pthread_mutex_lock(&u->lock);
	for (size_t i = 0; i < u->n_sending && !found; i++)
		found = u->sending[i] == ino;
	pthread_mutex_unlock(&u->lock);
	return found;
}

void uploader_counts(struct uploader *u, struct upload_counts *c)
{
	*c = (struct upload_counts){ 0 };
	if (!u)
		return; /* not started yet: nothing sent */
	c->blocks = __atomic_load_n(&u->counts.blocks, __ATOMIC_RELAXED);
	c->bytes = __atomic_load_n(&u->counts.bytes, __ATOMIC_RELAXED);
	c->commits = __atomic_load_n(&u->counts.commits, __ATOMIC_RELAXED);
	c->committed = __atomic_load_n(&u->counts.committed, __ATOMIC_RELAXED);
	c->failures = __atomic_load_n(&u->counts.failures, __ATOMIC_RELAXED);
}
