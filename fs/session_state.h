/*
 * The state of write sessions (include/fs/session.h), shared by the files
 * that implement them and by no other:
 *
 *	fs/session.c         the table of sessions and a session's lifetime
 *	fs/staging.c         staging files, and the base blocks they start from
 *	fs/session_write.c   writes, truncates and block appends, and their cost
 *	fs/session_read.c    reads answered from a session
 *	fs/session_commit.c  a session's commit: new block list, queued
 *	fs/settle.c          the settler: commits of closed files, retries
 *
 * Invariants, under a session's lock:
 *  1. dirty[b] says block b of the file lives in the staging file
 *     DIR/dirty/INO.B; a staging file is exactly as long as its block is
 *     (cfs_block_len(size, b)), so it can be served as it is.
 *  2. A block that is not dirty shows base block b up to the base's length
 *     of it (cfs_block_len(base_size, b)), and zeros beyond; a block past
 *     the base shows zeros.
 *  3. Cutting a file short stages its new last block: bytes cut off must
 *     read as zeros if the file grows again, not come back from the base.
 *  4. in_db: the mirror counts this session as a pending change of the
 *     file (local_write_begin) until its commit is queued.
 *  5. A settling session stays in the table until its commit is in the
 *     mirror: until then the mirror shows the file's older content, so
 *     stat and read are answered by the session, and an open or a touch
 *     waits for the commit and then starts from the mirror.
 *  6. A commit needs no byte of a base block: growing the file past a
 *     short last base block stages that block first (staging_grow()), so
 *     a base block that cannot be fetched fails the write or truncate
 *     that needs it (EIO), never the commit after write(2) accepted it.
 *  7. A commit that fails (a full disk, a SQLite error) loses nothing:
 *     the staging files stay until the mirror holds the commit, and the
 *     session stays in the table and is committed again later
 *     (settle_one(), fs/settle.c).  A staging file linked into the cache
 *     by a failed commit is copied before it is written again
 *     (unshare_staging(), fs/staging.c).
 */
#ifndef FS_SESSION_STATE_H
#define FS_SESSION_STATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "cache/local.h"
#include "cloudfs/block.h"
#include "fs/session.h"

/* The table is a hash of SESSION_BUCKETS chains, by inode. */
#define SESSION_BUCKETS 256

/*
 * A commit in three steps (fs/session_commit.c), so that the settler
 * queues a batch of them in one SQLite transaction while no hash or fetch
 * holds SQLite's write lock: prepared (the new content's block files),
 * recorded (queued in the mirror, with the index of the blocks it
 * placed), finished (the staging files let go once the record is
 * committed; kept, and the session left to try again, if not).
 */
struct session_commit {
	struct local_content c; /* what the commit queues, if content */
	struct cfs_blocklist bl;
	bool *placed;  /* bl's blocks placed in the cache by this commit */
	bool content;  /* new content; else no more than the count ends */
	bool end_mark; /* the mirror counts s as pending no more */
	bool held;     /* blockcache_hold() until finished */
};

struct session {
	struct sessions *t;
	uint64_t ino;
	/* The table's: */
	unsigned handles;
	uint64_t settle_at_ms; /* once handles is 0 */
	bool settling;	       /* invariant 5 */
	/* Settling, and its staging files' bytes are on disk: settle_due()
	 * synced the file system after the last write (the settler's). */
	bool synced;
	struct session *due_next;     /* settle_due()'s batch */
	struct session_commit commit; /* settle_due()'s, of the batch */
	struct session *next;
	/* The session's (its lock: never held across a fetch, see
	 * staging_bases_fetch() and include/fs/locks.h): */
	pthread_mutex_t lock;
	uint64_t size;
	int64_t atime_ns, mtime_ns, ctime_ns;
	uint32_t mode; /* set by a chmod since the session began, or 0 */
	bool changed;
	bool in_db;
	unsigned failures; /* commits failed in a row (invariant 7) */
	struct cfs_blocklist base;
	uint64_t base_size;
	uint8_t *dirty;
	size_t dirty_cap;
	int fd; /* the staging file of block fd_block, or -1 */
	uint64_t fd_block;
};

struct sessions {
	struct fs *fs;
	pthread_mutex_t lock;
	pthread_cond_t settled; /* a settling session left the table */
	struct session *table[SESSION_BUCKETS];
	/* The settler: its own thread, so that a closed file reaches the
	 * durable queue on time even while the uploader waits on the
	 * network. */
	pthread_t settler;
	pthread_cond_t tick; /* a handle was released, or stop */
	bool stop, running;
	/* Sessions that left the table (sessions_settled()). */
	atomic_uint_fast64_t settled_count;
};

/* fs/session.c: the table and a session's lifetime. */

/* Where the session of ino is, or would be linked; t's lock held. */
struct session **session_slot(struct sessions *t, uint64_t ino);

/* The session of ino that may change (invariant 5), waiting for one
 * settling to leave; t's lock held. */
struct session **session_live_slot(struct sessions *t, uint64_t ino);

/* Counts (or stops counting) s as a pending change in the mirror
 * (invariant 4), with c the content its commit queues.  0 or a positive
 * errno. */
int session_mark(struct session *s, bool begin, const struct local_content *c);

/* session_mark() of inode ino through db, in its transaction if one is
 * open; s->in_db is the caller's to set. */
int session_mark_in(struct cfs_sql *db, uint64_t ino, bool begin,
		    const struct local_content *c);

/* Frees s, out of the table, and its staging files. */
void session_free(struct session *s);

/* fs/session_commit.c: commits s (its lock held), queued durably; with
 * go_on, the session counts as a pending change again (invariant 4).  0
 * or a positive errno. */
int session_commit_locked(struct session *s, bool go_on);

/* The steps of session_commit_locked() (see struct session_commit), for
 * the settler's batch.  prepare, s's lock held: 0 or an errno, after
 * which finish is still called.  record, through db (in a transaction of
 * the caller's, if open), s settling (invariant 5: nothing of s changes)
 * and its lock not held: 0 or an errno.  finish, s's lock held, with e
 * the outcome (0: the record is committed): returns e, or an errno of
 * its own. */
int session_commit_prepare(struct session *s, bool go_on,
			   struct session_commit *sc);
int session_commit_record(struct session *s, struct cfs_sql *db,
			  const struct session_commit *sc);
int session_commit_finish(struct session *s, struct session_commit *sc, int e,
			  bool go_on);

#endif
