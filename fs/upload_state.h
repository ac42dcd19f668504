/*
 * The state of the uploader (include/fs/upload.h), shared by the files
 * that implement it and by no other:
 *
 *	fs/upload.c         the uploader's thread, its backoff and drain, and
 *	                    what it tells status of the batch under way
 *	fs/batch.c          one batch: from the queue to its commit
 *	fs/upload_blocks.c  the blocks a batch needs: which, announced, sent
 *	fs/collapse.c       a tree's deletes sent as one recursive delete
 *	fs/answer.c         what each operation's answer makes of it
 *	fs/doubt.c          which operations the server may have applied
 */
#ifndef FS_UPLOAD_STATE_H
#define FS_UPLOAD_STATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/local.h"
#include "cloudfs/block.h"
#include "cloudfs/error.h"
#include "fs/remote.h"
#include "fs/upload.h"

struct uploader {
	struct fs *fs;
	struct remote_conn *conn;
	pthread_t thread;
	pthread_mutex_t lock; /* protects what follows */
	pthread_cond_t wake;
	bool stop;
	bool woken;	/* a change was queued (uploader_wake) */
	bool retry_now; /* ends a backoff (uploader_retry_now) */
	/* Removals hold the queue back (hold_while_removing()): the last
	 * removal's time, whether the uploader waits for them to pause, and
	 * whether someone waits for the queue meanwhile (uploader_hurry). */
	uint64_t removed_ms;
	bool holding, hurry;
	unsigned drain_s;
	/* The batch under way's inodes: n_sending of cap_sending, sized to
	 * the largest batch so far. */
	uint64_t *sending;
	size_t n_sending, cap_sending;
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

static inline void uploader_count(uint64_t *c, uint64_t n)
{
	__atomic_add_fetch(c, n, __ATOMIC_RELAXED);
}

/* fs/upload.c: what the uploader thread tells others of its batch, and
 * how long its requests may take. */
enum cfs_err uploader_note_sending(struct uploader *u,
				   const struct queued_op *ops, size_t n,
				   struct cfs_error *err);
const bool *uploader_bounds(struct uploader *u, unsigned *max_s);
bool uploader_cut_short(struct uploader *u);

/* fs/batch.c: sends one batch; *sent is false when there was none to
 * send, *retry_any when some of it waits for another round. */
enum cfs_err batch_send(struct uploader *u, bool *sent, bool *retry_any,
			struct cfs_error *err);

/* fs/upload_blocks.c: the blocks of a batch, each function documented
 * where it is defined. */
void upload_blocks_progress(struct uploader *u, const struct cfs_block_id *id,
			    const struct cfs_blocklist *needed);
enum cfs_err upload_blocks_needed(struct uploader *u,
				  const struct cfs_blocklist *ids,
				  struct cfs_blocklist *needed,
				  struct cfs_error *err);
enum cfs_err upload_blocks_drop_lost(struct uploader *u,
				     const struct queued_op *ops, size_t n,
				     const struct cfs_blocklist *needed,
				     size_t *dropped, struct cfs_error *err);
void upload_blocks_announce(struct uploader *u, const struct queued_op *ops,
			    size_t n, const struct cfs_blocklist *needed);
enum cfs_err upload_blocks_send(struct uploader *u,
				const struct cfs_blocklist *ids,
				struct cfs_error *err);

#endif
