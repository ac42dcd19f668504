/*
 * The keeper: holds the cache within its size limit and the disk above its
 * free-space floor, in the background, whatever brings bytes in (writes,
 * fetches, warming).  It wakes when the bytes it counts cross 90% of the
 * limit (a small cache: four blocks below it, at most a quarter of it
 * below), when a commit may have made blocks evictable, and every few
 * seconds; it then drops blocks no file lists any more, and evicts clean
 * blocks, least recently used first, until 10% of the limit more is
 * free.
 *
 * A write that would take the cache past that 90% (the high mark) waits
 * for a pass to make room; a fetch waits only past the limit.  What it
 * cannot evict (blocks not yet sent, of local changes, pinned; files
 * being written) may still fill the cache up to the high mark, leaving
 * the rest to blocks being read: then the cache is full, and a write
 * waits for room (the uploader's commits make some) up to KEEPER_WAIT_S
 * before it fails with ENOSPC.
 */
#ifndef FS_KEEPER_H
#define FS_KEEPER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/cache.h"

#define KEEPER_WAIT_S 30

/* min_free for the default floor: 5% of the disk, at most 1 GiB. */
#define KEEPER_FLOOR_DEFAULT UINT64_MAX

struct keeper;

/* Starts the keeper of cache c: at most limit bytes of blocks and files
 * being written (0: no limit), at least min_free bytes free on its disk
 * (0: no floor; KEEPER_FLOOR_DEFAULT).  NULL when the thread cannot start. */
struct keeper *keeper_start(struct cache *c, uint64_t limit, uint64_t min_free);
void keeper_stop(struct keeper *k);

/* A write of len bytes is coming: 0 when there is room for it, held until
 * keeper_written once the write is done (or failed: counted all the
 * same until the next measure); else ENOSPC once KEEPER_WAIT_S passed
 * without room. */
int keeper_admit(struct keeper *k, size_t len);
void keeper_written(struct keeper *k, size_t len);

/*
 * A block of len bytes is about to be fetched: when it would take the
 * cache past its limit, waits for the keeper's passes to evict enough
 * (at most a tick); then holds room for it until keeper_release, called
 * once the block is stored (and counted as stored) or given up.  A read
 * never fails for room: when only what cannot be evicted is left (full),
 * the block goes past the limit at once, until a pass evicts it (it is
 * clean).
 */
void keeper_await(struct keeper *k, size_t len);
void keeper_release(struct keeper *k, size_t len);

/* Blocks may have become evictable (a commit settled): look now if the
 * cache needs room (full, past its high mark, or a write or fetch waits
 * for room), else at the next sweep. */
void keeper_poke(struct keeper *k);

/* Files changed (a listing applied): blocks may no longer be listed, for
 * the next sweep to drop. */
void keeper_note(struct keeper *k);

/* Whether the cache is full of what cannot be evicted: writes wait. */
bool keeper_full(struct keeper *k);

#endif
