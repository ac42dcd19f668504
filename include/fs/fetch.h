/*
 * The block fetcher: brings blocks into the cache.  However many readers
 * want one block at the same time, it is fetched once; several blocks are
 * fetched at once over reused connections (sets of the remote's block
 * transfers, each driven by one of the fetcher's transfer threads, which share
 * -o parallel); every block is hashed as it arrives and stored only if it
 * hashes to its id and has the expected length (by a storer thread: the fsync
 * and rename of a stored block take milliseconds that neither transfers nor
 * readers wait for: a verified block is read from its temporary file until it
 * is stored).  A block that fails verification is fetched once more before its
 * readers get an error.  Readers ask first, prefetches queue behind them.
 */
#ifndef FS_FETCH_H
#define FS_FETCH_H

#include <stdint.h>

#include "cache/cache.h"
#include "cloudfs/block.h"
#include "fs/keeper.h"
#include "fs/remote.h"

struct fetcher;

/* Starts the fetcher's thread; parallel transfers at most at once.  Each
 * transfer first waits for the keeper k to make room for its block
 * (keeper_await; k may be NULL: no limit). */
struct fetcher *fetcher_new(struct remote *r, struct cache *c, struct keeper *k,
			    unsigned parallel);

/* Readers' block opens since the start (found cached, and fetched), and
 * the blocks being fetched or waiting to be now. */
void fetcher_stats(struct fetcher *f, uint64_t *hits, uint64_t *misses,
		   uint64_t *fetching);

/* What the fetcher did since the start, for cloudfs stats. */
struct fetch_counts {
	uint64_t hits, misses;	/* as fetcher_stats() */
	uint64_t blocks, bytes; /* fetched from the server and verified */
	uint64_t refetched;	/* fetched again after a failed verification */
	uint64_t failed;	/* fetches given up */
};
void fetcher_counts(struct fetcher *f, struct fetch_counts *c);

/* Stops the thread and drops unfinished fetches; no reader may be waiting
 * (the FUSE loop has ended). */
void fetcher_free(struct fetcher *f);

/*
 * Opens block id (of len bytes) from the cache, fetching it first if it is
 * not there, waiting at most timeout_ms.  Returns a descriptor, or -EIO
 * with *err saying why (server unreachable or refusing, verification
 * failed twice, time out).
 */
int fetcher_open(struct fetcher *f, const struct cfs_block_id *id, uint32_t len,
		 unsigned timeout_ms, struct cfs_error *err);

/* Waits until every block fetched so far is in the cache (or failed to
 * be stored), so that what reads have brought is there to look at. */
void fetcher_drain(struct fetcher *f);

/* Queues block id behind the readers' blocks unless it is cached or being
 * fetched already; does not wait. */
void fetcher_prefetch(struct fetcher *f, const struct cfs_block_id *id,
		      uint32_t len);

#endif
