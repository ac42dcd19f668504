/*
 * The uploader (include/fs/upload.h): its thread, which sends the queue
 * batch by batch (fs/batch.c) and backs off when that fails, the drain at
 * unmount, and what status and stats read of it.  The files it is made
 * of: fs/upload_state.h.
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache/local.h"
#include "cloudfs/clock.h"
#include "cloudfs/log.h"
#include "fs/fs.h"
#include "fs/keeper.h"
#include "fs/session.h"
#include "fs/upload.h"
#include "fs/upload_state.h"

#define BACKOFF_MIN_MS	      250
#define BACKOFF_MAX_MS	      30000
#define BACKOFF_ANSWERED_MS   2000
/* Removals that never pause hold the queue back at most this long (or
 * for REMOVALS_HOLD_SETTLES settle delays when longer). */
#define REMOVALS_HOLD_MAX_MS  1000
#define REMOVALS_HOLD_SETTLES 10

/* Tells uploader_sending() which inodes the batch ops holds (n 0: none),
 * and uploader_progress() which is its largest file.  Fails only for want
 * of memory for a larger table, telling nothing. */
enum cfs_err uploader_note_sending(struct uploader *u,
				   const struct queued_op *ops, size_t n,
				   struct cfs_error *err)
{
	const struct queued_op *largest = NULL;
	uint64_t *larger = NULL;
	char *path;

	assert(n <= UPLOAD_BATCH_REACH);
	/* Only the uploader thread writes the table: its size is read
	 * without the lock, its contents are not. */
	if (n > u->cap_sending && !(larger = malloc(n * sizeof(*larger))))
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	for (size_t i = 0; i < n; i++)
		if (ops[i].type == QUEUE_FILE && ops[i].blocks.n &&
		    (!largest || ops[i].size > largest->size))
			largest = &ops[i];
	/* Without memory for the copy, status shows no progress: no more. */
	path = largest ? strdup(largest->path) : NULL;
	u->current = path ? largest : NULL;
	__atomic_store_n(&u->current_sent, 0, __ATOMIC_RELAXED);
	pthread_mutex_lock(&u->lock);
	if (larger) {
		free(u->sending);
		u->sending = larger;
		u->cap_sending = n;
	}
	for (size_t i = 0; i < n; i++)
		u->sending[i] = ops[i].ino;
	u->n_sending = n;
	free(u->current_path);
	u->current_path = path;
	u->current_size = path ? largest->size : 0;
	pthread_mutex_unlock(&u->lock);
	return CFS_OK;
}

/*
 * How long a request may take: until the mount stops (the request is cut
 * short and its operations stay queued), or in the drain at unmount,
 * until its deadline.  Sets *max_s and returns the stop flag to give
 * the remote's calls.
 */
const bool *uploader_bounds(struct uploader *u, unsigned *max_s)
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

/* Whether a request under way must end now (see uploader_bounds). */
bool uploader_cut_short(struct uploader *u)
{
	return u->drain_until_ms ? cfs_monotonic_ms() >= u->drain_until_ms
				 : __atomic_load_n(&u->stop, __ATOMIC_RELAXED);
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
		rc = batch_send(u, &sent, &retry, &err);
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

/*
 * Waits while removals come without a pause of the settle delay: sent as
 * they come, an rm -rf cost a batch per file or two, each synced, answered
 * and listed again on its own, which took longer than the removals; and a
 * folder's deletes go as one only with the folder's own in their batch.
 */
static void hold_while_removing(struct uploader *u)
{
	uint64_t settle = u->fs->opt.settle_ms;
	uint64_t most = settle * REMOVALS_HOLD_SETTLES > REMOVALS_HOLD_MAX_MS
				? settle * REMOVALS_HOLD_SETTLES
				: REMOVALS_HOLD_MAX_MS;
	uint64_t last_ms = cfs_monotonic_ms() + most;

	pthread_mutex_lock(&u->lock);
	for (;;) {
		uint64_t now = cfs_monotonic_ms(), end = u->removed_ms + settle;
		struct timespec until;

		if (end > last_ms)
			end = last_ms;
		if (u->stop || u->hurry || now >= end)
			break;
		u->holding = true;
		until = cfs_deadline_in_ms(end - now);
		pthread_cond_timedwait(&u->wake, &u->lock, &until);
	}
	u->holding = u->hurry = false;
	pthread_mutex_unlock(&u->lock);
}

static void *upload_thread(void *arg)
{
	struct uploader *u = arg;
	unsigned backoff = 0, seed = (unsigned)time(NULL);
	struct cfs_error err;

	while (!__atomic_load_n(&u->stop, __ATOMIC_RELAXED)) {
		bool sent = false, retry = false;
		enum cfs_err rc;

		hold_while_removing(u);
		rc = batch_send(u, &sent, &retry, &err);
		if (sent) /* its blocks may be evictable now */
			keeper_poke(u->fs->keeper);
		if (rc == CFS_OK && !retry) {
			backoff = 0;
			if (!sent)
				nap(u, -1, false);
			continue;
		}
		uploader_count(&u->counts.failures, 1);
		backoff = backoff ? 2 * backoff : BACKOFF_MIN_MS;
		if (backoff > BACKOFF_MAX_MS)
			backoff = BACKOFF_MAX_MS;
		/* Answered, but to go again (a move or create waiting for the
		 * listing to say where its folder went): what it waits for
		 * comes within a long poll, and a backoff grown meanwhile held
		 * the change back up to 30 s after it came. */
		if (rc == CFS_OK && backoff > BACKOFF_ANSWERED_MS)
			backoff = BACKOFF_ANSWERED_MS;
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
	free(u->sending);
	free(u);
}

enum cfs_err uploader_step(struct uploader *u, bool *sent, bool *retry,
			   struct cfs_error *err)
{
	*retry = false;
	return batch_send(u, sent, retry, err);
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

void uploader_wake_removed(struct uploader *u)
{
	if (!u)
		return;
	pthread_mutex_lock(&u->lock);
	u->removed_ms = cfs_monotonic_ms();
	u->woken = true;
	/* A hold looks at removed_ms when it ends: waking it for each file
	 * of a tree cost more than the removal. */
	if (!u->holding)
		pthread_cond_signal(&u->wake);
	pthread_mutex_unlock(&u->lock);
}

void uploader_hurry(struct uploader *u)
{
	if (!u)
		return;
	pthread_mutex_lock(&u->lock);
	if (u->holding) {
		u->hurry = true;
		pthread_cond_signal(&u->wake);
	}
	pthread_mutex_unlock(&u->lock);
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

uint64_t *uploader_sending(struct uploader *u, size_t *n)
{
	uint64_t *inos = NULL;

	*n = 0;
	if (!u)
		return NULL;
	pthread_mutex_lock(&u->lock);
	if (u->n_sending && (inos = malloc(u->n_sending * sizeof(*inos)))) {
		memcpy(inos, u->sending, u->n_sending * sizeof(*inos));
		*n = u->n_sending;
	}
	pthread_mutex_unlock(&u->lock);
	return inos;
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
