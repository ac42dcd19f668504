/*
 * The uploader: sends the queue of local changes (cache/local.h) to the
 * server, in order, batch by batch.  For each batch it asks which blocks
 * the server needs, uploads those (several at once, from the cache's
 * block files), commits the batch, and settles each operation: confirmed,
 * kept as a conflicted copy, created anew, or refused.
 *
 * A failure to reach the server leaves the queue as it is, retried with
 * backoff; the queue is durable, so the next mount resumes it.  The
 * uploader holds fs->apply_lock from a commit's request to the end of its
 * settling, so a listing never sees a node before the mirror knows it;
 * a commit that got no answer puts the listings on hold until it has one
 * (fs->in_doubt).
 */
#ifndef FS_UPLOAD_H
#define FS_UPLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The most operations one commit request carries. */
#define UPLOAD_BATCH_MAX   1000
/* The most a batch reads: deletes past UPLOAD_BATCH_MAX go in it when a
 * tree's delete carries them as one operation (fs/collapse.c), a folder of
 * up to this many entries.  Bounded: the batch is read, and its entries
 * checked, in memory (a few hundred bytes each); a larger folder's
 * deletes go one by one. */
#define UPLOAD_BATCH_REACH (100 * UPLOAD_BATCH_MAX)

struct fs;
struct uploader;

struct uploader *uploader_start(struct fs *fs);

/*
 * An uploader without its thread, for tests that drive it one step at a
 * time: uploader_step() sends one batch as the thread does (*sent: there
 * was one; *retry: some of it waits for another round), and
 * uploader_free() frees it, sending nothing more.
 */
struct uploader *uploader_new(struct fs *fs);
enum cfs_err uploader_step(struct uploader *u, bool *sent, bool *retry,
			   struct cfs_error *err);
void uploader_free(struct uploader *u);

/* The inodes whose changes are being sent now (*n of them, malloc'ed;
 * NULL when none, or out of memory). */
uint64_t *uploader_sending(struct uploader *u, size_t *n);

/* Whether a change of ino is being sent now. */
bool uploader_sends(struct uploader *u, uint64_t ino);

/* The largest file of the batch under way: its path in its namespace
 * (malloc'ed, in *path), size, and bytes the server holds so far (a
 * block's bytes count once its upload is answered).  false: none. */
bool uploader_progress(struct uploader *u, char **path, uint64_t *sent,
		       uint64_t *size);

/* What the uploader did since the start, for cloudfs stats. */
struct upload_counts {
	uint64_t blocks, bytes; /* uploaded (answered 200) */
	uint64_t commits;	/* commit requests answered */
	uint64_t committed;	/* operations the server committed */
	uint64_t failures;	/* rounds that failed or must be tried again */
};
/* u may be NULL (not started yet): all zero. */
void uploader_counts(struct uploader *u, struct upload_counts *c);

/* Something was queued (or a session released): look at it now, unless
 * backing off after a failed try. */
void uploader_wake(struct uploader *u);

/* Something was removed: as uploader_wake(), but the uploader waits until
 * removals pause for the settle delay, so that a tree removed (rm -rf)
 * goes in full batches, its folders as one delete each (fs/collapse.c). */
void uploader_wake_removed(struct uploader *u);

/* Someone waits for the queue to be sent (cloudfs status --wait): removals
 * no longer hold it back. */
void uploader_hurry(struct uploader *u);

/* The server answers, or a listing was applied that queued changes may
 * have waited for: try again now, even when backing off. */
void uploader_retry_now(struct uploader *u);

/*
 * Commits every write session, sends what it can of the queue within
 * drain_s seconds, and stops.  What is left stays queued for the next
 * mount.
 */
void uploader_stop(struct uploader *u, unsigned drain_s);

#endif
