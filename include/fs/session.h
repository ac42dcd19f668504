/*
 * Write sessions: what a file being written holds until it is committed.
 *
 * A session starts when a file is created or opened for writing, and
 * lives until its content is committed: at fsync, after the last handle
 * closes and the settling delay passes, or at unmount.  It keeps the
 * file's size and times and the block list it started from (its base);
 * the first write into a block copies that block (fetched if it is not
 * cached) into a staging file, DIR/dirty/INO.INDEX, and every later
 * write to the block goes there.  Reads overlay the staging files on the
 * base; parts of the file no block covers read as zeros.
 *
 * A commit hashes the staging blocks into block files of the cache, makes
 * the new block list the base, and queues the file's commit (cache/local.h)
 * before the session may forget anything.  A thread of the table's
 * commits the sessions whose settling delay has passed, syncs the queue
 * once for them (cache_sync), and wakes the uploader.
 *
 * Lock order: the table's lock, then a session's.  The table's lock is
 * never held across I/O.
 */
#ifndef FS_SESSION_H
#define FS_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cache/cache.h"
#include "cache/local.h"
#include "cloudfs/block.h"
#include "cloudfs/error.h"

struct fs;
struct session;
struct sessions;

struct sessions *sessions_new(struct fs *fs);

/* Starts the table's settler thread (after the mount daemonized: a fork
 * keeps no thread).  0 or a positive errno. */
int sessions_start(struct sessions *t);

/*
 * How many sessions have left the table, each after committing to the
 * mirror.  A reader that found no session of a file cannot tell its entry
 * is current by that alone: the session may have committed after the
 * entry was read and left before the lookup.  Taken before the entry is
 * read, an unchanged count rules that out.
 */
uint64_t sessions_settled(struct sessions *t);

/* Files open for writing or settling: changes not yet queued. */
size_t sessions_count(struct sessions *t);

/* Commits now every session no handle holds any more, without waiting
 * for its settling delay, and returns once their commits are queued (a
 * share of their folder waits for them). */
void sessions_settle_now(struct sessions *t);

/* Commits every session (unmount) and frees the table. */
void sessions_free(struct sessions *t);

/*
 * The session of ino, started if there is none (reading the file's base
 * from the mirror; new says the file was just created with its session
 * opened by local_mknode).  A handle is counted; session_release() gives
 * it back.  0 or a positive errno.
 */
int session_open(struct sessions *t, uint64_t ino, bool new,
		 struct session **out);
void session_release(struct sessions *t, struct session *s);

/* What a session shows of its file. */
struct session_attr {
	uint64_t size;
	int64_t atime_ns, mtime_ns, ctime_ns;
	/* SESSION_MODE_SET | the mode a chmod gave since the session
	 * began, or 0: the entry's */
	uint32_t mode;
};

#define SESSION_MODE_SET 0x10000

/* The attributes of ino's session, if it has one (no handle counted). */
bool session_stat(struct sessions *t, uint64_t ino, struct session_attr *a);

/* The bytes a write of len at off brings into the cache, for the keeper
 * to admit: the bytes written, but the whole block for one written into
 * for the first time since its last commit (its staging file starts as
 * a copy of it), and that block again when it must be fetched first; and
 * the old last block, made longer by the commit, when the file grows. */
uint64_t session_write_cost(struct session *s, off_t off, size_t len);

/* The same for a truncate to size: cutting inside a block stages it,
 * growing the file lengthens its last block. */
uint64_t session_truncate_cost(struct session *s, uint64_t size);

/*
 * Where a write's bytes come from: copies the source's next n bytes to fd
 * at pos and says how many in *copied (fewer: the cache's disk is full).
 * 0 or a positive errno.  The kernel layer's, so that the bytes may move
 * from the kernel's pipe to the staging file without a copy.
 */
typedef int session_fill_fn(void *arg, int fd, uint64_t pos, size_t n,
			    size_t *copied);

/* Writes len bytes at off, taken from fill; 0 or a positive errno
 * (ENOSPC: the cache's disk). */
int session_write(struct session *s, session_fill_fn *fill, void *arg,
		  size_t len, off_t off, size_t *written);

/* Changes the size (truncate).  0 or a positive errno. */
int session_truncate(struct session *s, uint64_t size);

/*
 * A copy that moves no bytes: appends to s, at its end off, the blocks of
 * src (a committed file of src_size bytes) from src_off for up to len
 * bytes, as its own.  Nothing is read, hashed, stored or sent: the blocks
 * are content-addressed, and the server has them.  *copied says how many
 * bytes (0 at src's end).  EOPNOTSUPP when the copy is not of whole
 * blocks from a block boundary to the end of s, where its base ends with
 * nothing written since: the caller copies the bytes then.
 */
int session_append_blocks(struct session *s, uint64_t off,
			  const struct cfs_blocklist *src, uint64_t src_size,
			  uint64_t src_off, uint64_t len, uint64_t *copied);

/*
 * Marks ino's session changed, so that its commit carries the mode and
 * the times of a (those not NULL) with ctime_ns, even with no byte
 * written since an fsync; session_stat() shows them until then.  False
 * when ino has none.
 */
bool session_touch(struct sessions *t, uint64_t ino,
		   const struct local_attrs *a, int64_t ctime_ns);

/*
 * ino's metadata changed outside its session (a rename): its session, if
 * it has one, shows ctime_ns and commits it, or a later one.
 */
void session_ctime(struct sessions *t, uint64_t ino, int64_t ctime_ns);

/* A piece of a read's answer: len bytes of fd from pos, or, when fd is
 * -1, of mem. */
struct session_span {
	int fd;
	uint64_t pos;
	const void *mem;
	size_t len;
};

/*
 * The kernel layer's answer to a read: called exactly once, with e (a
 * positive errno) or with the n spans of the answer in order (n is 0 at
 * the end of the file).  It runs under the session's lock, so that no
 * write changes a staging file while its bytes are sent; the spans and
 * their descriptors are valid until it returns.
 */
typedef void session_reply_fn(void *arg, int e, const struct session_span *v,
			      size_t n);

/*
 * Answers a read of ino through reply with the session's content if ino
 * has a session; returns false (having called nothing) when it has none.
 */
bool session_read(struct sessions *t, uint64_t ino, size_t size, off_t off,
		  session_reply_fn *reply, void *arg);

/* Commits s now (fsync); the session goes on.  0 or a positive errno. */
int session_commit(struct session *s);

#endif
