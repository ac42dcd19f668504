/*
 * The keeper (fs/keeper.h).
 *
 * Invariants, under the keeper's lock:
 *  1. used is the bytes of blocks and staging files the last pass
 *     measured, plus what was stored and admitted since it began
 *     measuring (arrived): never less than the truth but for files
 *     removed meanwhile, which the next pass sees.
 *  2. full is what the last pass found after evicting all it could: no
 *     room under the high mark for the write waiting (want), or for one
 *     byte when none waits; or the disk under the floor.  Only a pass clears
 *     it, and every pass wakes the writers waiting for room.
 *  3. coming is the bytes given room (keeper_admit, keeper_await) and
 *     not yet released: writes being made and blocks being fetched, on
 *     their way into the cache where no measure may see them yet (a pass
 *     in between would have forgotten them).  Room is what the limit
 *     leaves above used + coming, and a pass evicts for them and for the
 *     largest fetch waiting (awaiting) as for files being written.
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/statvfs.h>

#include "cache/blockcache.h"
#include "cache/upkeep.h"
#include "cloudfs/clock.h"
#include "cloudfs/log.h"
#include "fs/keeper.h"

#define TICK_MS	 2000
#define SWEEP_MS 10000 /* at least between two sweeps of unlisted blocks */

struct keeper {
	struct cache *cache;
	uint64_t limit, min_free;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake, room;
	uint64_t used;	  /* invariant 1 */
	uint64_t arrived; /* counted in since the pass began (invariant 1) */
	uint64_t want;	  /* the write waiting for room (invariant 2) */
	uint64_t coming, awaiting; /* invariant 3 */
	bool full;		   /* invariant 2 */
	bool changed; /* blocks stored or unlisted since the last sweep */
	bool woken, stop;
	bool checkpoint; /* cache.db's log is due a checkpoint (on_log_full) */
};

/* Eviction starts a margin below the limit and frees another 10% of the
 * limit, so that it runs now and then rather than at every block.  The
 * margin is 10% of the limit, but at least a few blocks (at most a
 * quarter of the cache): fetches and settles land whole 4 MiB blocks
 * while a pass runs, and a small cache would cross its limit before the
 * pass is done (bench/storage, 64 MiB: 74 MB). */
static uint64_t margin(const struct keeper *k)
{
	uint64_t m = k->limit / 10, least = 4 * (uint64_t)CFS_BLOCK_SIZE;

	if (m < least)
		m = least < k->limit / 4 ? least : k->limit / 4;
	return m;
}

static uint64_t high_mark(const struct keeper *k)
{
	return k->limit - margin(k);
}

static uint64_t low_mark(const struct keeper *k)
{
	return high_mark(k) - k->limit / 10;
}

/* Bytes free for us on the cache's disk (UINT64_MAX: unknown). */
static uint64_t disk_avail(const struct keeper *k)
{
	struct statvfs v;

	if (fstatvfs(k->cache->dirfd, &v))
		return UINT64_MAX;
	return (uint64_t)v.f_bavail * v.f_frsize;
}

/* Under the lock: past the high mark, a pass should look. */
static void nudge(struct keeper *k)
{
	if (k->limit && k->used + k->coming > high_mark(k) && !k->woken) {
		k->woken = true;
		pthread_cond_signal(&k->wake);
	}
}

/* Under the lock: len more bytes came in. */
static void count_in(struct keeper *k, uint64_t len)
{
	k->used += len;
	k->arrived += len;
	k->changed = true;
	nudge(k);
}

/* Under the lock: room given for len bytes on their way (invariant 3). */
static void take_room(struct keeper *k, uint64_t len)
{
	k->coming += len;
	nudge(k);
}

static void on_store(void *arg, uint32_t size)
{
	struct keeper *k = arg;

	pthread_mutex_lock(&k->lock);
	count_in(k, size);
	pthread_mutex_unlock(&k->lock);
}

/* A commit took cache.db's log past its size: the keeper checkpoints it,
 * not the commit's thread, a FUSE handler's maybe (rm -rf: one in about
 * a hundred unlinks waited for the checkpoint's fsyncs). */
static void on_log_full(void *arg)
{
	struct keeper *k = arg;

	pthread_mutex_lock(&k->lock);
	k->checkpoint = true;
	pthread_cond_signal(&k->wake);
	pthread_mutex_unlock(&k->lock);
}

/* Checkpoints cache.db's log when due (k->lock held). */
static void checkpoint_if_due(struct keeper *k)
{
	struct cfs_error err;
	bool due = k->checkpoint;

	k->checkpoint = false;
	pthread_mutex_unlock(&k->lock);
	if (due && cache_checkpoint(k->cache, &err))
		cfs_log_warn("cannot checkpoint the cache index: %s", err.msg);
	pthread_mutex_lock(&k->lock);
}

/* The room held for bytes on their way (invariant 3), read after a
 * measure: a fetch gives its room back before its block is stored, so
 * read in this order no block counts both as stored and as coming. */
static uint64_t on_the_way(struct keeper *k)
{
	uint64_t coming;

	pthread_mutex_lock(&k->lock);
	coming = k->coming + k->awaiting;
	pthread_mutex_unlock(&k->lock);
	return coming;
}

/* What eviction must free to bring blocks + staged under the low mark and
 * the disk above the floor (with 10% to spare).  At the high mark already,
 * as full is (pass): a cache there with blocks it could evict is not
 * full. */
static uint64_t to_free(const struct keeper *k, uint64_t blocks,
			uint64_t staged, uint64_t avail)
{
	uint64_t need = 0, floor = k->min_free + k->min_free / 10;

	if (k->limit && blocks + staged >= high_mark(k))
		need = blocks + staged - low_mark(k);
	if (k->min_free && avail < floor && floor - avail > need)
		need = floor - avail;
	return need;
}

static void log_full(const struct keeper *k, bool full, uint64_t used,
		     uint64_t avail)
{
	struct cfs_error err;
	struct cfs_sql *db;
	uint64_t kept = 0;

	if (!full) {
		cfs_log_info("cache '%s' has room again: %llu bytes used",
			     k->cache->path, (unsigned long long)used);
		return;
	}
	db = cache_db(k->cache, &err);
	if (db) {
		upkeep_kept_bytes(db, &kept, &err);
		cache_db_release(k->cache, db);
	}
	cfs_log_warn(
		"cache '%s' is full: %llu bytes used (limit %llu), %llu free on its disk (floor %llu); %llu bytes of blocks cannot be evicted (not yet sent, of local changes, or pinned): writes wait for the uploader, then fail with ENOSPC",
		k->cache->path, (unsigned long long)used,
		(unsigned long long)k->limit,
		(unsigned long long)(avail == UINT64_MAX ? 0 : avail),
		(unsigned long long)k->min_free, (unsigned long long)kept);
}

/* Drops the blocks no file, shadow or queued operation lists; whether
 * it dropped any. */
static bool drop_unlisted(struct keeper *k)
{
	struct upkeep_tally t = { 0 };
	struct cfs_error err;

	if (upkeep_evict_unlisted(k->cache, &t, &err)) {
		cfs_log_warn("cannot drop the unlisted blocks of '%s': %s",
			     k->cache->path, err.msg);
		return false;
	}
	return t.blocks > 0;
}

/* The bytes of blocks and of staging files now; a write waiting for room
 * (want) counts as staged already. */
static void measure(struct keeper *k, uint64_t want, uint64_t *blocks,
		    uint64_t *staged)
{
	struct upkeep_size size;
	struct cfs_error err;

	if (upkeep_measure(k->cache, &size, &err))
		cfs_log_warn("cannot measure the cache '%s': %s",
			     k->cache->path, err.msg);
	*blocks = size.bytes;
	*staged = size.staged + want;
}

/* Measures, sweeps and evicts what it must; records whether the cache is
 * full, and wakes the writers waiting for room.  A glance (nothing came
 * in, nothing is full) looks at the disk's free space alone. */
static void pass(struct keeper *k, bool sweep, bool glance)
{
	struct upkeep_tally t;
	struct cfs_error err;
	uint64_t blocks = 0, staged, avail, need, want, coming;
	bool full;

	pthread_mutex_lock(&k->lock);
	want = k->want;
	k->arrived = 0;
	pthread_mutex_unlock(&k->lock);
	if (glance && disk_avail(k) >= k->min_free + k->min_free / 10)
		return;
	if (sweep)
		drop_unlisted(k);
	measure(k, want, &blocks, &staged);
	coming = on_the_way(k);
	avail = disk_avail(k);
	/* The write waiting at the floor (under_floor()) is made room for
	 * above it, as one waiting at the limit is. */
	need = to_free(k, blocks, staged + coming,
		       avail > want ? avail - want : 0);
	/* Blocks no file lists any more (superseded by a commit, of a file
	 * deleted) go before any block a file still reads. */
	if (need && !sweep && drop_unlisted(k)) {
		measure(k, want, &blocks, &staged);
		coming = on_the_way(k);
		avail = disk_avail(k);
		need = to_free(k, blocks, staged + coming,
			       avail > want ? avail - want : 0);
	}
	if (need) {
		if (upkeep_evict(k->cache, 0, blocks > need ? blocks - need : 0,
				 &t, &err))
			cfs_log_warn("cannot evict from the cache '%s': %s",
				     k->cache->path, err.msg);
		else if (t.blocks)
			cfs_log_info(
				"cache '%s': evicted %llu blocks (%llu bytes) to stay within its limit and floor",
				k->cache->path, (unsigned long long)t.blocks,
				(unsigned long long)t.bytes);
		measure(k, want, &blocks, &staged);
		avail = disk_avail(k);
	}
	/* Full: no room below the high mark (no_room) for the write waiting
	 * or, with none waiting, for any write at all.  A cache exactly at
	 * its mark is full: a pass between two waits must not call it roomy
	 * again (status said "room" right after a write got ENOSPC). */
	full = (k->limit && blocks + staged + (want ? 0 : 1) > high_mark(k)) ||
	       (k->min_free && avail < k->min_free);
	pthread_mutex_lock(&k->lock);
	/* What came in while this pass measured may be in its figures or
	 * not: counted again rather than lost, or the next pass would come
	 * late (bench/storage saw 78 MB in a 64 MiB cache). */
	k->used = blocks + staged - want + k->arrived;
	if (k->arrived && k->limit && k->used > high_mark(k))
		k->woken = true;
	if (full != k->full)
		log_full(k, full, k->used, avail);
	k->full = full;
	pthread_cond_broadcast(&k->room);
	pthread_mutex_unlock(&k->lock);
}

static void *keeper_thread(void *arg)
{
	struct keeper *k = arg;
	uint64_t last_sweep = 0;

	pthread_mutex_lock(&k->lock);
	while (!k->stop) {
		struct timespec until = cfs_deadline_in_ms(TICK_MS);
		bool sweep, look;
		uint64_t now;

		while (!k->stop && !k->woken && !k->checkpoint &&
		       pthread_cond_timedwait(&k->wake, &k->lock, &until) !=
			       ETIMEDOUT)
			;
		checkpoint_if_due(k);
		now = cfs_monotonic_ms();
		/* Blocks fetched ahead for a file that never came are
		 * unlisted like any other once their pending list ends. */
		if (upkeep_streamed_expire(k->cache))
			k->changed = true;
		/* A change waits for the next sweep it may come to. */
		sweep = k->changed && now - last_sweep >= SWEEP_MS;
		look = sweep || k->woken || k->full;
		if (sweep)
			k->changed = false;
		k->woken = false;
		pthread_mutex_unlock(&k->lock);
		/* The floor moves with whatever else fills the disk. */
		if ((look || k->min_free) && !k->stop)
			pass(k, sweep, !look);
		if (sweep)
			last_sweep = now;
		pthread_mutex_lock(&k->lock);
	}
	pthread_mutex_unlock(&k->lock);
	return NULL;
}

/* The default floor: enough to keep the disk usable, little enough not
 * to refuse writes on a small one. */
static uint64_t default_floor(const struct cache *c)
{
	struct statvfs v;
	uint64_t size;

	if (fstatvfs(c->dirfd, &v))
		return 0;
	size = (uint64_t)v.f_blocks * v.f_frsize;
	return size / 20 < (1ULL << 30) ? size / 20 : 1ULL << 30;
}

struct keeper *keeper_start(struct cache *c, uint64_t limit, uint64_t min_free)
{
	struct keeper *k = calloc(1, sizeof(*k));

	if (!k)
		return NULL;
	*k = (struct keeper){
		.cache = c,
		.limit = limit,
		.min_free = min_free == KEEPER_FLOOR_DEFAULT ? default_floor(c)
							     : min_free,
	};
	pthread_mutex_init(&k->lock, NULL);
	pthread_cond_init(&k->wake, NULL);
	pthread_cond_init(&k->room, NULL);
	/* The first pass measures what the last mount left. */
	k->woken = k->changed = true;
	if (pthread_create(&k->thread, NULL, keeper_thread, k)) {
		pthread_cond_destroy(&k->room);
		pthread_cond_destroy(&k->wake);
		pthread_mutex_destroy(&k->lock);
		free(k);
		return NULL;
	}
	blockcache_on_store(c, on_store, k);
	cache_checkpoint_by(c, on_log_full, k);
	return k;
}

void keeper_stop(struct keeper *k)
{
	if (!k)
		return;
	blockcache_on_store(k->cache, NULL, NULL);
	cache_checkpoint_by(k->cache, NULL, NULL);
	pthread_mutex_lock(&k->lock);
	k->stop = true;
	pthread_cond_signal(&k->wake);
	pthread_cond_broadcast(&k->room);
	pthread_mutex_unlock(&k->lock);
	pthread_join(k->thread, NULL);
	pthread_cond_destroy(&k->room);
	pthread_cond_destroy(&k->wake);
	pthread_mutex_destroy(&k->lock);
	free(k);
}

/*
 * Under the lock: whether len more bytes must wait: the cache is full, or
 * they would take it past mark before the next pass (which measures, and
 * evicts down to the low mark) has made room.  Writes stop at the high
 * mark, fetches at the limit: what cannot be evicted leaves the margin
 * between them to the blocks being read.
 */
static bool no_room(const struct keeper *k, size_t len, uint64_t mark)
{
	return k->full || (k->limit && k->used + k->coming + len > mark);
}

/*
 * Under the lock: whether len more bytes written would take the disk
 * under the floor before a pass sees it.  The floor is the index's: a
 * commit, an unlink and an eviction each need room in it, and a disk
 * filled to its last byte by staging files allowed none of them, so the
 * file written could neither be committed nor removed.
 */
static bool under_floor(const struct keeper *k, size_t len)
{
	uint64_t avail;

	if (!k->min_free)
		return false;
	avail = disk_avail(k);
	/* Where a pass evicts to (to_free()). */
	return avail != UINT64_MAX &&
	       avail < k->min_free + k->min_free / 10 + k->coming + len;
}

static bool write_waits(const struct keeper *k, size_t len)
{
	return no_room(k, len, high_mark(k)) || under_floor(k, len);
}

int keeper_admit(struct keeper *k, size_t len)
{
	struct timespec until;
	bool timed_out = false;
	int eno;

	if (!k)
		return 0;
	/* More than writes may ever fill: no wait makes room for it. */
	if (k->limit && len > high_mark(k))
		return ENOSPC;
	pthread_mutex_lock(&k->lock);
	/* Every write comes here: the clock is read only when it must wait. */
	if (write_waits(k, len))
		until = cfs_deadline_in_ms(KEEPER_WAIT_S * 1000);
	while (write_waits(k, len) && !k->stop && !timed_out) {
		if (len > k->want)
			k->want = len;
		k->woken = true;
		pthread_cond_signal(&k->wake);
		timed_out = pthread_cond_timedwait(&k->room, &k->lock,
						   &until) == ETIMEDOUT;
	}
	k->want = 0; /* writers still waiting say again what they want */
	eno = write_waits(k, len) && !k->stop ? ENOSPC : 0;
	if (eno == 0)
		take_room(k, len);
	pthread_mutex_unlock(&k->lock);
	return eno;
}

void keeper_await(struct keeper *k, size_t len)
{
	struct timespec until;
	bool timed_out = false;

	if (!k)
		return;
	pthread_mutex_lock(&k->lock);
	/* Bounded: a pass waits for files being committed, and a reader must
	 * not wait long on a keeper that has nothing left to evict (full). */
	if (!k->full && no_room(k, len, k->limit) && !k->stop) {
		until = cfs_deadline_in_ms(TICK_MS);
		k->woken = true;
		pthread_cond_signal(&k->wake);
	}
	/* Woken by passes and by fetches that release their room. */
	while (!k->full && no_room(k, len, k->limit) && !k->stop &&
	       !timed_out) {
		if (len > k->awaiting)
			k->awaiting = len;
		timed_out = pthread_cond_timedwait(&k->room, &k->lock,
						   &until) == ETIMEDOUT;
	}
	k->awaiting = 0; /* fetches still waiting say again what they want */
	take_room(k, len);
	pthread_mutex_unlock(&k->lock);
}

/* Under the lock: room for len bytes given back; written: they are in the
 * cache now, counted until a pass measures them. */
static void give_back(struct keeper *k, size_t len, bool written)
{
	assert(k->coming >= len); /* invariant 3 */
	k->coming -= len;
	if (written)
		count_in(k, len);
	/* One waiting for room needs a pass (the count may not cross the
	 * high mark). */
	if ((k->awaiting || k->want) && !k->woken) {
		k->woken = true;
		pthread_cond_signal(&k->wake);
	}
	pthread_cond_broadcast(&k->room);
}

void keeper_written(struct keeper *k, size_t len)
{
	if (!k)
		return;
	pthread_mutex_lock(&k->lock);
	give_back(k, len, true);
	pthread_mutex_unlock(&k->lock);
}

void keeper_release(struct keeper *k, size_t len)
{
	if (!k)
		return;
	pthread_mutex_lock(&k->lock);
	give_back(k, len, false); /* a stored block was counted as stored */
	pthread_mutex_unlock(&k->lock);
}

void keeper_poke(struct keeper *k)
{
	if (!k)
		return;
	pthread_mutex_lock(&k->lock);
	k->changed = true;
	/*
	 * A pass now only when there is something to evict for: a full
	 * cache, a write or fetch waiting for room, or the high mark
	 * crossed.  Otherwise the next sweep drops what the commit
	 * unlisted.  Every batch the uploader sends pokes, and a pass
	 * measures the whole cache under the upkeep lock that commits wait
	 * for: at each batch of small files it was most of the mount's
	 * system calls.
	 */
	if (k->full || k->want || k->awaiting) {
		k->woken = true;
		pthread_cond_signal(&k->wake);
	} else {
		nudge(k);
	}
	pthread_mutex_unlock(&k->lock);
}

void keeper_note(struct keeper *k)
{
	if (!k)
		return;
	pthread_mutex_lock(&k->lock);
	k->changed = true;
	pthread_mutex_unlock(&k->lock);
}

bool keeper_full(struct keeper *k)
{
	bool full;

	if (!k)
		return false;
	pthread_mutex_lock(&k->lock);
	full = k->full;
	pthread_mutex_unlock(&k->lock);
	return full;
}
