/*
 * Garbage collection of the server, the way an operator sees it: the
 * journal keeps every version for the retention period after it was
 * superseded (the history cloudfs offers), and a block's bytes go once no
 * node and no journal row inside retention lists it.  The metadata store
 * forgets such blocks first (meta_ops.gc), then their bytes are removed:
 * a crash between leaves bytes nobody lists, never a listed block without
 * bytes.  A block uploaded within the retention period is kept, listed or
 * not, for the commit that will list it.
 */
#ifndef SERVER_GC_H
#define SERVER_GC_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "server/blockstore.h"
#include "server/meta.h"

#define GC_DEFAULT_RETENTION_S (30 * 24 * 3600)
#define GC_DEFAULT_EVERY_S     3600

struct gc_report {
	struct meta_gc_tally t;
	uint64_t removed;	/* block files removed */
	uint64_t remove_failed; /* forgotten, but their bytes stayed */
};

/*
 * Collects what retention_s seconds of history no longer need.  uploads,
 * when not NULL, is the server's lock that each upload holds (read)
 * from storing a block's bytes to recording them: while the bytes of
 * forgotten blocks are removed it is held (write), so that an upload of
 * one of them cannot find its bytes there and then lose them.  A
 * metadata store several processes share (PostgreSQL) keeps uploads and
 * gc apart itself, in every process (meta_ops.gc, blocks_added): there
 * uploads may be NULL.
 */
enum cfs_err gc_run(struct meta *m, struct blockstore *bs,
		    pthread_rwlock_t *uploads, int64_t retention_s,
		    struct gc_report *r, struct cfs_error *err);

/* Runs gc_run every every_s seconds in a thread of its own, the first
 * time every_s after it starts; NULL when the thread cannot start. */
struct gc_daemon;
struct gc_daemon *gc_start(struct meta *m, struct blockstore *bs,
			   pthread_rwlock_t *uploads, int64_t retention_s,
			   int64_t every_s);
void gc_stop(struct gc_daemon *d);

/* "30d", "12h", "15m", "10s" or plain seconds: *seconds; false when s is
 * none of these. */
bool gc_duration_parse(const char *s, int64_t *seconds);

/* gc_duration_parse of option opt's argument arg for cloudfsd cmd; when
 * it is none, says so on stderr, sets *status to EXIT_USAGE and returns
 * false. */
bool gc_duration_arg(const char *cmd, const char *opt, const char *arg,
		     int64_t *seconds, int *status);

#endif
