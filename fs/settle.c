/*
 * The settler (include/fs/session.h): commits the sessions of files no
 * handle holds any more once their settling delay has passed, in
 * batches, with one sync of the queue for a batch; a commit that fails
 * is tried again later, and at unmount every session is committed and
 * the table freed (fs/session_state.h, invariants 5 and 7).
 */
#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cache/cache.h"
#include "cloudfs/clock.h"
#include "cloudfs/log.h"
#include "cloudfs/platform.h"
#include "fs/fs.h"
#include "fs/session.h"
#include "fs/session_state.h"
#include "fs/upload.h"

#define SETTLE_BATCH 64

/* The path of inode ino for a message, malloc'd, or NULL. */
static char *path_of(struct fs *fs, uint64_t ino)
{
	struct cfs_error err;
	struct cfs_sql *db = cache_db(fs->cache, &err);
	char *path = NULL;

	if (db && mirror_path(db, ino, &path, &err) != CFS_OK)
		path = NULL;
	if (db)
		cache_db_release(fs->cache, db);
	return path;
}

/* Milliseconds before a commit that failed n times in a row is tried
 * again: 1 s, doubling up to a minute. */
static uint64_t retry_ms(unsigned n)
{
	return n > 6 ? 60000 : 1000ull << (n ? n - 1 : 0);
}

/*
 * After the commit of s, settling in the table, ended with e: committed,
 * s leaves the table (invariant 5): true.  When the commit failed, s
 * stays in the table, no longer settling, due again after retry_ms()
 * (invariant 7): false; but with give_up (an unmount out of time) it
 * goes, and the loss is logged.  failures: s's, read under its lock.
 */
static bool settled(struct sessions *t, struct session *s, int e,
		    unsigned failures, bool give_up)
{
	struct session **p;
	char *path;

	if (e) {
		path = path_of(t->fs, s->ino);
		if (give_up)
			cfs_log_error(
				"cannot commit '%s' (inode %llu) at unmount: %s; its last writes are lost",
				path ? path : "?", (unsigned long long)s->ino,
				strerror(e));
		else
			cfs_log_error(
				"cannot commit '%s' (inode %llu): %s; trying again in %llu s",
				path ? path : "?", (unsigned long long)s->ino,
				strerror(e),
				(unsigned long long)retry_ms(failures) / 1000);
		free(path);
	}
	if (e && !give_up) {
		pthread_mutex_lock(&t->lock);
		s->settling = false;
		s->settle_at_ms = cfs_monotonic_ms() + retry_ms(failures);
		pthread_cond_broadcast(&t->settled);
		pthread_mutex_unlock(&t->lock);
		return false;
	}
	/* Handles opened on the older content read the commit. */
	openfiles_changed(t->fs->open, s->ino);
	pthread_mutex_lock(&t->lock);
	/* No reader is inside s once both locks were held. */
	pthread_mutex_lock(&s->lock);
	for (p = session_slot(t, s->ino); *p != s; p = &(*p)->next)
		;
	*p = s->next;
	atomic_fetch_add(&t->settled_count, 1);
	pthread_mutex_unlock(&s->lock);
	pthread_cond_broadcast(&t->settled);
	pthread_mutex_unlock(&t->lock);
	session_free(s);
	return !e;
}

/* Commits s, settling in the table, alone: settled(). */
static bool settle_one(struct sessions *t, struct session *s, bool give_up)
{
	unsigned failures;
	int e;

	pthread_mutex_lock(&s->lock);
	e = session_commit_locked(s, false);
	failures = s->failures;
	pthread_mutex_unlock(&s->lock);
	return settled(t, s, e, failures, give_up);
}

/*
 * Commits the settling sessions of batch due (linked by due_next) with
 * one SQLite transaction for all their records, each in a savepoint of
 * its own (cfs_sql_begin()), in place of one or two for each small file;
 * the blocks are hashed and placed before it begins, so that no hash
 * holds SQLite's write lock.  A record that fails undoes itself alone;
 * a transaction that fails as a whole fails every commit of the batch,
 * which keep their staging files and are tried again (invariant 7).
 */
static void settle_batch(struct sessions *t, struct session *due)
{
	struct cfs_error err;
	struct cfs_sql *db;
	enum cfs_err rc;
	int e[SETTLE_BATCH], failed = 0;
	size_t i = 0;

	for (struct session *s = due; s; s = s->due_next, i++) {
		assert(i < SETTLE_BATCH);
		pthread_mutex_lock(&s->lock);
		e[i] = session_commit_prepare(s, false, &s->commit);
		pthread_mutex_unlock(&s->lock);
	}
	db = cache_db(t->fs->cache, &err);
	rc = db ? cfs_sql_begin(db, true, &err) : err.code;
	i = 0;
	for (struct session *s = due; rc == CFS_OK && s; s = s->due_next, i++)
		if (!e[i])
			e[i] = session_commit_record(s, db, &s->commit);
	if (rc == CFS_OK)
		rc = cfs_sql_end(db, CFS_OK, &err);
	if (rc) {
		cfs_log_error("cannot queue the commits of closed files: %s",
			      err.msg);
		failed = cfs_err_errno(rc);
	}
	if (db)
		cache_db_release(t->fs->cache, db);
	i = 0;
	while (due) {
		struct session *s = due;
		unsigned failures;
		int r;

		due = s->due_next;
		pthread_mutex_lock(&s->lock);
		r = session_commit_finish(s, &s->commit, e[i] ? e[i] : failed,
					  false);
		failures = s->failures;
		pthread_mutex_unlock(&s->lock);
		settled(t, s, r, failures, false);
		i++;
	}
}

/* What settle_one() committed, made durable: one fsync for many files. */
static void settled_durable(struct sessions *t)
{
	struct cfs_error err;

	if (cache_sync(t->fs->cache, &err))
		cfs_log_error(
			"cannot make the commits of closed files durable: %s",
			err.msg);
}

/*
 * Commits up to SETTLE_BATCH sessions whose settling delay has passed,
 * found in one walk of the table (a tree unpacked leaves thousands); returns
 * the milliseconds until the next one is due, 0 to look again at once, or
 * -1 when none waits.  The batch is small so that a file reopened meanwhile
 * does not wait long for its turn (invariant 5).
 *
 * While files close one after another (cp -r, tar x), each came due alone
 * and a batch held two or three: a syncfs, a transaction and an fsync for
 * each. So the first due waits up to a quarter of the delay more when
 * another comes due by then; a file closed alone settles on time, and none
 * settles early (a file written again within the delay is committed once).
 */
static long settle_due(struct sessions *t)
{
	uint64_t now = cfs_monotonic_ms(), oldest = UINT64_MAX;
	uint64_t slack = t->fs->opt.settle_ms / 4;
	struct session *due = NULL;
	size_t n = 0;
	long next = -1;

	pthread_mutex_lock(&t->lock);
	for (size_t i = 0; i < SESSION_BUCKETS; i++) {
		for (struct session *s = t->table[i]; s; s = s->next) {
			if (s->handles || s->settling)
				continue;
			if (s->settle_at_ms <= now) {
				if (s->settle_at_ms < oldest)
					oldest = s->settle_at_ms;
				if (n < SETTLE_BATCH) {
					s->due_next = due;
					due = s;
					n++;
				}
				continue;
			}
			if (next < 0 || (long)(s->settle_at_ms - now) < next)
				next = (long)(s->settle_at_ms - now);
		}
	}
	/* next: the first of those not due yet */
	if (due && n < SETTLE_BATCH && next >= 0 &&
	    now + (uint64_t)next <= oldest + slack) {
		pthread_mutex_unlock(&t->lock);
		return (long)(oldest + slack - now);
	}
	for (struct session *s = due; s; s = s->due_next)
		s->settling = true;
	pthread_mutex_unlock(&t->lock);
	if (!due)
		return next;
	/*
	 * A settling session no longer changes (invariant 5: writes, opens
	 * and truncates wait for it to leave), so one syncfs(2) here makes
	 * the staging files of the whole batch durable, in place of an
	 * fsync of each before it is renamed into the cache.  Failing, each
	 * file is fsync'ed as it is adopted, as without it.
	 */
	if (platform_syncfs(t->fs->cache->dirty_fd) == 0)
		for (struct session *s = due; s; s = s->due_next)
			s->synced = true;
	settle_batch(t, due);
	settled_durable(t);
	uploader_wake(t->fs->upload);
	return 0;
}

static void *settle_thread(void *arg)
{
	struct sessions *t = arg;

	pthread_mutex_lock(&t->lock);
	while (!t->stop) {
		long next;

		pthread_mutex_unlock(&t->lock);
		next = settle_due(t);
		pthread_mutex_lock(&t->lock);
		if (next < 0) {
			if (!t->stop)
				pthread_cond_wait(&t->tick, &t->lock);
		} else if (next > 0) {
			struct timespec until = cfs_deadline_in_ms(next);

			if (!t->stop)
				pthread_cond_timedwait(&t->tick, &t->lock,
						       &until);
		}
	}
	pthread_mutex_unlock(&t->lock);
	return NULL;
}

int sessions_start(struct sessions *t)
{
	int e = pthread_create(&t->settler, NULL, settle_thread, t);

	t->running = e == 0;
	return e;
}

void sessions_free(struct sessions *t)
{
	uint64_t until;

	if (!t)
		return;
	if (t->running) {
		pthread_mutex_lock(&t->lock);
		t->stop = true;
		pthread_cond_signal(&t->tick);
		pthread_mutex_unlock(&t->lock);
		pthread_join(t->settler, NULL);
	}
	/* A commit that fails is tried again for up to the network's
	 * timeout, as the uploader sends the queue (invariant 7). */
	until = cfs_monotonic_ms() + 1000 * (uint64_t)t->fs->opt.timeout_s;
	for (size_t i = 0; i < SESSION_BUCKETS; i++) {
		while (t->table[i]) {
			bool give_up = cfs_monotonic_ms() >= until;

			t->table[i]->settling = true;
			if (!settle_one(t, t->table[i], give_up) && !give_up)
				usleep(250 * 1000);
		}
	}
	settled_durable(t);
	pthread_cond_destroy(&t->tick);
	pthread_cond_destroy(&t->settled);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

/* Whether a session of t is being committed (t's lock held). */
static bool any_settling(struct sessions *t)
{
	for (size_t b = 0; b < SESSION_BUCKETS; b++)
		for (struct session *s = t->table[b]; s; s = s->next)
			if (s->settling)
				return true;
	return false;
}

void sessions_settle_now(struct sessions *t)
{
	if (!t)
		return;
	pthread_mutex_lock(&t->lock);
	for (size_t b = 0; b < SESSION_BUCKETS; b++)
		for (struct session *s = t->table[b]; s; s = s->next)
			if (!s->handles)
				s->settle_at_ms = 0;
	pthread_mutex_unlock(&t->lock);
	/* Here rather than by the settler, to know when they are done;
	 * those the settler took meanwhile are waited for. */
	while (settle_due(t) == 0)
		;
	pthread_mutex_lock(&t->lock);
	while (any_settling(t))
		pthread_cond_wait(&t->settled, &t->lock);
	pthread_mutex_unlock(&t->lock);
}
