/*
 * The block fetcher (fs/fetch.h).
 *
 * A job is one block being fetched.  Jobs live in a hash table by id while
 * they are queued, running, or finished with readers still to see the
 * outcome.  All job fields but the transfer's are protected by f->lock;
 * the transfer's (t, x, tmp, hash, got) belong to the transfer thread
 * that runs it, and fd to it until VERIFIED.
 *
 *	QUEUED --(thread starts it)--> RUNNING --> VERIFIED --> DONE
 *	            ^                     |              |
 *	            +-- verification      +--------------+--> FAILED
 *	                failed, first time
 *
 * A VERIFIED block is whole and right but not yet a cache file (the
 * storer thread's fsync, rename and index take milliseconds): readers get
 * a duplicate of its temporary file's descriptor rather than wait.  That
 * descriptor (j->fd) is open from the start to VERIFIED's end, and closed
 * under f->lock, so that no reader duplicates a closed one.
 *
 * A finished job is freed by whoever last lets go of it: the storer when
 * no reader waits, else the last waiting reader.
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cloudfs/clock.h"
#include "cache/blockcache.h"
#include "cloudfs/log.h"
#include "fs/fetch.h"
#include "fs/keeper.h"

#define N_BUCKETS    256
#define MAX_ATTEMPTS 2

/* Receiving, hashing and writing a block is one core's work at about
 * 500 MB/s: two threads share the transfers, one per core here. */
#define N_TRANSFER_THREADS 2

struct transfers;

struct job {
	struct cfs_block_id id;
	uint32_t len;
	enum { QUEUED, RUNNING, VERIFIED, DONE, FAILED } state;
	unsigned attempts;
	unsigned waiters;
	struct cfs_error err; /* FAILED */
	struct job *hnext;    /* hash chain */
	struct job *qnext;    /* queue */
	/* The transfer: its thread's alone. */
	struct transfers *t;
	struct remote_xfer *x;
	int fd;
	char tmp[32];
	struct cfs_sha256 *hash;
	uint64_t got;
	bool too_long;
	int write_errno; /* 0, or why writing the temporary file failed */
	bool room;	 /* holds room in the keeper's count (keeper_await) */
};

struct fetcher {
	struct remote *r;
	struct cache *cache;
	struct keeper *keeper;
	pthread_mutex_t lock;
	pthread_cond_t done; /* broadcast when any job finishes */
	struct job *table[N_BUCKETS];
	struct job *queue; /* QUEUED jobs, readers' first */
	bool stop;
	uint64_t hits, misses; /* readers' opens, atomic */
	/* struct fetch_counts' others, atomic: written by the transfers */
	uint64_t blocks, bytes, refetched, failed;
	/* Verified blocks the storer thread makes cache files of (fsync,
	 * rename, index: milliseconds a block), so that transfers go on
	 * meanwhile; under lock, linked by qnext. */
	struct job *to_store, *to_store_last;
	unsigned unstored; /* handed over, neither DONE nor FAILED yet */
	pthread_cond_t store_wake;
	pthread_t storer;
	/* A thread and the transfers it drives, up to its share of parallel
	 * (at least one) at once. */
	struct transfers {
		struct fetcher *f;
		struct remote_xfers *set;
		unsigned running, share;
		pthread_t thread;
	} threads[N_TRANSFER_THREADS];
	unsigned n_threads;
};

static struct job **bucket(struct fetcher *f, const struct cfs_block_id *id)
{
	uint32_t h;

	memcpy(&h, id->b, sizeof(h));
	return &f->table[h % N_BUCKETS];
}

static struct job *find(struct fetcher *f, const struct cfs_block_id *id)
{
	for (struct job *j = *bucket(f, id); j; j = j->hnext)
		if (cfs_block_id_equal(&j->id, id))
			return j;
	return NULL;
}

static void unlink_job(struct fetcher *f, struct job *j)
{
	for (struct job **p = bucket(f, &j->id); *p; p = &(*p)->hnext) {
		if (*p == j) {
			*p = j->hnext;
			return;
		}
	}
}

/* Queues j: at the head for a reader, at the tail for a prefetch. */
static void enqueue(struct fetcher *f, struct job *j, bool urgent)
{
	struct job **p = &f->queue;

	if (!urgent)
		while (*p)
			p = &(*p)->qnext;
	j->qnext = *p;
	*p = j;
}

static void dequeue(struct fetcher *f, struct job *j)
{
	for (struct job **p = &f->queue; *p; p = &(*p)->qnext) {
		if (*p == j) {
			*p = j->qnext;
			return;
		}
	}
}

/* The job for id, created and queued if there is none.  Under f->lock. */
static struct job *job_for(struct fetcher *f, const struct cfs_block_id *id,
			   uint32_t len, bool urgent)
{
	struct job *j = find(f, id);

	if (j) {
		if (urgent && j->state == QUEUED) {
			dequeue(f, j);
			enqueue(f, j, true);
		}
		return j;
	}
	j = calloc(1, sizeof(*j));
	if (!j)
		return NULL;
	j->id = *id;
	j->len = len;
	j->fd = -1;
	j->hnext = *bucket(f, id);
	*bucket(f, id) = j;
	enqueue(f, j, urgent);
	for (unsigned i = 0; i < f->n_threads; i++)
		f->r->ops->xfers_wake(f->threads[i].set);
	return j;
}

/* Ends j's transfer, if any, keeping its temporary file. */
static void transfer_stop(struct job *j)
{
	if (j->x) {
		j->t->f->r->ops->xfer_end(j->t->set, j->x);
		j->x = NULL;
		j->t->running--;
	}
	cfs_sha256_free(j->hash);
	j->hash = NULL;
}

/* Ends j's transfer, dropping its temporary file if it is still there. */
static void transfer_end(struct fetcher *f, struct job *j)
{
	transfer_stop(j);
	if (j->fd >= 0)
		blockcache_tmp_discard(f->cache, j->fd, j->tmp);
	j->fd = -1;
}

/* Under f->lock: j is final; wake its readers, free it if nobody waits. */
static void finish(struct fetcher *f, struct job *j)
{
	assert(j->state == DONE || j->state == FAILED);
	pthread_cond_broadcast(&f->done);
	if (j->waiters == 0) {
		unlink_job(f, j);
		free(j);
	}
}

/* j's block is about to be stored, and counted as such, or given up: its
 * room goes back to the keeper. */
static void give_back_room(struct fetcher *f, struct job *j)
{
	if (j->room)
		keeper_release(f->keeper, j->len);
	j->room = false;
}

static void fail(struct fetcher *f, struct job *j, const struct cfs_error *e)
{
	char hex[CFS_BLOCK_ID_HEX_LEN + 1];

	cfs_block_id_to_hex(&j->id, hex);
	pthread_mutex_lock(&f->lock);
	transfer_end(f, j); /* under the lock: readers of a VERIFIED j */
	give_back_room(f, j);
	j->state = FAILED;
	j->err = *e;
	cfs_log_warn("cannot fetch block %s: %s", hex, e->msg);
	finish(f, j);
	pthread_mutex_unlock(&f->lock);
}

static size_t on_data(void *arg, const char *data, size_t len)
{
	struct job *j = arg;
	size_t done = 0;

	if (j->got + len > j->len) {
		j->too_long = true;
		return 0;
	}
	cfs_sha256_update(j->hash, data, len);
	while (done < len) {
		ssize_t w = write(j->fd, data + done, len - done);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			j->write_errno = errno;
			return 0;
		}
		done += (size_t)w;
	}
	j->got += len;
	return len;
}

static void start(struct transfers *t, struct job *j)
{
	struct fetcher *f = t->f;
	struct cfs_error e;
	int fd;

	/* Fetches are not admitted like writes, but a burst of them (a cold
	 * read, partial overwrites of evicted blocks) outran the keeper's
	 * passes: bench/storage saw 84 MB in a 64 MiB cache, nearly all of it
	 * clean blocks. */
	if (!j->room) {
		keeper_await(f->keeper, j->len);
		j->room = true;
	}
	fd = blockcache_tmp_create(f->cache, j->tmp);
	j->got = 0;
	j->too_long = false;
	j->write_errno = 0;
	j->hash = cfs_sha256_new();
	if (fd < 0 || !j->hash) {
		j->fd = fd;
		cfs_fail(&e, CFS_ERR_INTERNAL,
			 "cannot create a file in '%s/tmp': %s", f->cache->path,
			 strerror(fd < 0 ? -fd : ENOMEM));
		fail(f, j, &e);
		return;
	}
	j->fd = fd;
	j->t = t;
	j->x = f->r->ops->get(t->set, &j->id, on_data, j, j);
	if (!j->x) {
		cfs_fail(&e, CFS_ERR_INTERNAL, "out of memory");
		fail(f, j, &e);
		return;
	}
	t->running++;
}

/* Checks a finished transfer (rc, got: how the remote saw it end);
 * CFS_OK when the block is whole and right. */
static enum cfs_err verify(struct fetcher *f, struct job *j, enum cfs_err rc,
			   const struct cfs_error *got_err, struct cfs_error *e)
{
	char got_hex[CFS_BLOCK_ID_HEX_LEN + 1];
	struct cfs_block_id got;

	if (j->write_errno)
		return cfs_fail(e,
				j->write_errno == ENOSPC ? CFS_ERR_STORAGE_FULL
							 : CFS_ERR_INTERNAL,
				"cannot write to '%s/tmp': %s", f->cache->path,
				strerror(j->write_errno));
	if (j->too_long)
		return cfs_fail(
			e, CFS_ERR_HASH_MISMATCH,
			"the server sent more than the %u bytes of the block",
			j->len);
	if (rc) {
		*e = *got_err;
		return rc;
	}
	if (j->got != j->len)
		return cfs_fail(
			e, CFS_ERR_HASH_MISMATCH,
			"the server sent %llu bytes, not the %u of the block",
			(unsigned long long)j->got, j->len);
	if (cfs_sha256_final(j->hash, &got))
		return cfs_fail(e, CFS_ERR_INTERNAL, "out of memory");
	if (!cfs_block_id_equal(&got, &j->id)) {
		cfs_block_id_to_hex(&got, got_hex);
		return cfs_fail(e, CFS_ERR_HASH_MISMATCH,
				"the server sent bytes that hash to %s",
				got_hex);
	}
	return CFS_OK;
}

static void completed(void *arg, struct remote_xfer *x, void *tag,
		      enum cfs_err got, const struct cfs_error *got_err)
{
	struct fetcher *f = arg;
	struct job *j = tag;
	struct cfs_error e;
	enum cfs_err rc = verify(f, j, got, got_err, &e);

	(void)x;

	if (rc == CFS_ERR_HASH_MISMATCH && ++j->attempts < MAX_ATTEMPTS) {
		char hex[CFS_BLOCK_ID_HEX_LEN + 1];

		cfs_block_id_to_hex(&j->id, hex);
		cfs_log_warn(
			"block %s failed verification (%s); fetching it again",
			hex, e.msg);
		__atomic_add_fetch(&f->refetched, 1, __ATOMIC_RELAXED);
		transfer_end(f, j);
		start(j->t, j);
		return;
	}
	if (rc == CFS_ERR_HASH_MISMATCH)
		cfs_error_prefix(&e, "verification failed twice");
	if (rc) {
		__atomic_add_fetch(&f->failed, 1, __ATOMIC_RELAXED);
		fail(f, j, &e);
		return;
	}
	__atomic_add_fetch(&f->blocks, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&f->bytes, j->len, __ATOMIC_RELAXED);
	/* The transfer is over; the storer has the block from here. */
	transfer_stop(j);
	pthread_mutex_lock(&f->lock);
	assert(j->state == RUNNING && j->fd >= 0);
	j->state = VERIFIED;
	pthread_cond_broadcast(&f->done);
	f->unstored++;
	j->qnext = NULL;
	if (f->to_store_last)
		f->to_store_last->qnext = j;
	else
		f->to_store = j;
	f->to_store_last = j;
	pthread_cond_signal(&f->store_wake);
	pthread_mutex_unlock(&f->lock);
}

/* Stores the verified blocks completed() hands over, until the stop
 * (storing those handed over before it). */
static void *store_thread(void *arg)
{
	struct fetcher *f = arg;

	for (;;) {
		struct cfs_error e;
		struct job *j;
		bool stored;
		int fd;

		pthread_mutex_lock(&f->lock);
		while (!f->to_store && !f->stop)
			pthread_cond_wait(&f->store_wake, &f->lock);
		j = f->to_store;
		if (j && !(f->to_store = j->qnext))
			f->to_store_last = NULL;
		/* Its descriptor stays open until it is stored. */
		assert(!j || (j->state == VERIFIED && j->fd >= 0));
		pthread_mutex_unlock(&f->lock);
		if (!j)
			break;
		/* Readers go on reading j->fd meanwhile: the storer uses (and
		 * blockcache_store closes) a duplicate. */
		fd = dup(j->fd);
		/* Its room goes back before it is stored, which counts it in
		 * (on_store): a pass that measured it stored while its room was
		 * still held counted it twice and evicted a block too many. */
		pthread_mutex_lock(&f->lock);
		give_back_room(f, j);
		pthread_mutex_unlock(&f->lock);
		if (fd < 0)
			cfs_fail(&e, CFS_ERR_INTERNAL,
				 "cannot store a block: %s", strerror(errno));
		stored = fd >= 0 && !blockcache_store(f->cache, fd, j->tmp,
						      &j->id, j->len, &e);
		pthread_mutex_lock(&f->lock);
		f->unstored--;
		if (!stored) {
			pthread_mutex_unlock(&f->lock);
			fail(f, j, &e); /* wakes drainers too */
			continue;
		}
		close(j->fd);
		j->fd = -1;
		j->state = DONE;
		finish(f, j); /* may free j */
		pthread_mutex_unlock(&f->lock);
	}
	return NULL;
}

static void *transfer_thread(void *arg)
{
	struct transfers *t = arg;
	struct fetcher *f = t->f;

	for (;;) {
		pthread_mutex_lock(&f->lock);
		if (f->stop) {
			pthread_mutex_unlock(&f->lock);
			break;
		}
		while (t->running < t->share && f->queue) {
			struct job *j = f->queue;

			f->queue = j->qnext;
			assert(j->state == QUEUED);
			j->state = RUNNING;
			pthread_mutex_unlock(&f->lock);
			start(t, j);
			pthread_mutex_lock(&f->lock);
		}
		pthread_mutex_unlock(&f->lock);
		/* A transfer that ended made room for a queued job: start it
		 * first, or the wait below could be a whole second (a queued
		 * job wakes the threads only when it is queued). */
		if (!f->r->ops->xfers_step(t->set, completed, f))
			f->r->ops->xfers_wait(t->set, 1000);
	}
	return NULL;
}

struct fetcher *fetcher_new(struct remote *r, struct cache *c, struct keeper *k,
			    unsigned parallel)
{
	struct fetcher *f = calloc(1, sizeof(*f));
	unsigned n;

	if (!f)
		return NULL;
	f->r = r;
	f->cache = c;
	f->keeper = k;
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->done, NULL);
	pthread_cond_init(&f->store_wake, NULL);
	if (pthread_create(&f->storer, NULL, store_thread, f)) {
		free(f);
		return NULL;
	}
	parallel = parallel ? parallel : 1;
	n = parallel < N_TRANSFER_THREADS ? parallel : N_TRANSFER_THREADS;
	for (unsigned i = 0; i < n; i++) {
		struct transfers *t = &f->threads[i];

		t->f = f;
		t->share = parallel / n + (i < parallel % n);
		t->set = r->ops->xfers_new(r);
		if (!t->set ||
		    pthread_create(&t->thread, NULL, transfer_thread, t)) {
			if (t->set)
				r->ops->xfers_free(t->set);
			fetcher_free(f);
			return NULL;
		}
		f->n_threads++;
	}
	return f;
}

void fetcher_free(struct fetcher *f)
{
	if (!f)
		return;
	pthread_mutex_lock(&f->lock);
	f->stop = true;
	pthread_cond_signal(&f->store_wake);
	pthread_mutex_unlock(&f->lock);
	for (unsigned i = 0; i < f->n_threads; i++) {
		f->r->ops->xfers_wake(f->threads[i].set);
		pthread_join(f->threads[i].thread, NULL);
	}
	pthread_join(f->storer, NULL);
	for (size_t i = 0; i < N_BUCKETS; i++) {
		while (f->table[i]) {
			struct job *j = f->table[i];

			transfer_end(f, j);
			f->table[i] = j->hnext;
			free(j);
		}
	}
	for (unsigned i = 0; i < f->n_threads; i++)
		f->r->ops->xfers_free(f->threads[i].set);
	pthread_cond_destroy(&f->store_wake);
	pthread_cond_destroy(&f->done);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

static int fetcher_open_try(struct fetcher *f, const struct cfs_block_id *id,
			    uint32_t len, unsigned timeout_ms, int attempt,
			    struct cfs_error *err)
{
	struct timespec until = cfs_deadline_in_ms(timeout_ms);
	int fd = blockcache_open(f->cache, id), state;
	struct job *j;

	if (fd >= 0) {
		__atomic_add_fetch(&f->hits, 1, __ATOMIC_RELAXED);
		blockcache_touch(f->cache, id);
		return fd;
	}
	__atomic_add_fetch(&f->misses, 1, __ATOMIC_RELAXED);
	pthread_mutex_lock(&f->lock);
	j = f->stop ? NULL : job_for(f, id, len, true);
	if (!j) {
		pthread_mutex_unlock(&f->lock);
		cfs_fail(err, CFS_ERR_UNAVAILABLE,
			 "the mount is stopping or out of memory");
		return -EIO;
	}
	j->waiters++;
	while (j->state != VERIFIED && j->state != DONE && j->state != FAILED &&
	       pthread_cond_timedwait(&f->done, &f->lock, &until) != ETIMEDOUT)
		;
	state = j->state;
	assert(state != VERIFIED || j->fd >= 0);
	if (state == FAILED)
		*err = j->err;
	if (state == VERIFIED && (fd = dup(j->fd)) < 0)
		cfs_fail(err, CFS_ERR_INTERNAL,
			 "cannot open a block fetched into '%s/tmp': %s",
			 f->cache->path, strerror(errno));
	if (--j->waiters == 0 && (state == DONE || state == FAILED)) {
		unlink_job(f, j);
		free(j);
	}
	pthread_mutex_unlock(&f->lock);
	if (state == VERIFIED)
		return fd < 0 ? -EIO : fd;
	if (state == FAILED)
		return -EIO;
	if (state != DONE) {
		cfs_fail(err, CFS_ERR_UNREACHABLE,
			 "no answer from the server within %u ms", timeout_ms);
		return -EIO;
	}
	fd = blockcache_open(f->cache, id);
	/* Evicted as soon as fetched (a cache smaller than what is read
	 * at once): fetched again. */
	if (fd == -ENOENT && attempt < 2)
		return fetcher_open_try(f, id, len, timeout_ms, attempt + 1,
					err);
	if (fd < 0)
		cfs_fail(err, CFS_ERR_INTERNAL,
			 "fetched, but cannot open it in the cache: %s",
			 strerror(-fd));
	return fd < 0 ? -EIO : fd;
}

int fetcher_open(struct fetcher *f, const struct cfs_block_id *id, uint32_t len,
		 unsigned timeout_ms, struct cfs_error *err)
{
	return fetcher_open_try(f, id, len, timeout_ms, 0, err);
}

void fetcher_stats(struct fetcher *f, uint64_t *hits, uint64_t *misses,
		   uint64_t *fetching)
{
	*hits = __atomic_load_n(&f->hits, __ATOMIC_RELAXED);
	*misses = __atomic_load_n(&f->misses, __ATOMIC_RELAXED);
	*fetching = 0;
	pthread_mutex_lock(&f->lock);
	for (size_t b = 0; b < N_BUCKETS; b++)
		for (struct job *j = f->table[b]; j; j = j->hnext)
			(*fetching)++;
	pthread_mutex_unlock(&f->lock);
}

void fetcher_counts(struct fetcher *f, struct fetch_counts *c)
{
	c->hits = __atomic_load_n(&f->hits, __ATOMIC_RELAXED);
	c->misses = __atomic_load_n(&f->misses, __ATOMIC_RELAXED);
	c->blocks = __atomic_load_n(&f->blocks, __ATOMIC_RELAXED);
	c->bytes = __atomic_load_n(&f->bytes, __ATOMIC_RELAXED);
	c->refetched = __atomic_load_n(&f->refetched, __ATOMIC_RELAXED);
	c->failed = __atomic_load_n(&f->failed, __ATOMIC_RELAXED);
}

void fetcher_drain(struct fetcher *f)
{
	pthread_mutex_lock(&f->lock);
	while (f->unstored)
		pthread_cond_wait(&f->done, &f->lock);
	pthread_mutex_unlock(&f->lock);
}

void fetcher_prefetch(struct fetcher *f, const struct cfs_block_id *id,
		      uint32_t len)
{
	int fd = blockcache_open(f->cache, id);

	if (fd >= 0) {
		close(fd);
		return;
	}
	pthread_mutex_lock(&f->lock);
	if (!f->stop)
		job_for(f, id, len, false);
	pthread_mutex_unlock(&f->lock);
}
