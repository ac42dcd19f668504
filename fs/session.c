/*
 * Write sessions (include/fs/session.h): the table of sessions and the
 * lifetime of each, from its first open to its leaving the table.  What a
 * session holds and the invariants it keeps: fs/session_state.h.
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "cache/local.h"
#include "cloudfs/clock.h"
#include "cloudfs/log.h"
#include "cloudfs/mutex.h"
#include "fs/fs.h"
#include "fs/session.h"
#include "fs/session_state.h"
#include "fs/staging.h"

struct session **session_slot(struct sessions *t, uint64_t ino)
{
	struct session **p = &t->table[ino % SESSION_BUCKETS];

	assert(cfs_mutex_locked(&t->lock));
	while (*p && (*p)->ino != ino)
		p = &(*p)->next;
	return p;
}

/* The session of ino that may change (invariant 5), t's lock held. */
struct session **session_live_slot(struct sessions *t, uint64_t ino)
{
	struct session **p;

	while (*(p = session_slot(t, ino)) && (*p)->settling)
		pthread_cond_wait(&t->settled, &t->lock);
	assert(!*p || !(*p)->settling);
	return p;
}

struct sessions *sessions_new(struct fs *fs)
{
	struct sessions *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->fs = fs;
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->settled, NULL);
	pthread_cond_init(&t->tick, NULL);
	return t;
}

void session_free(struct session *s)
{
	for (uint64_t b = 0; b < s->dirty_cap; b++)
		staging_drop(s, b);
	staging_close(s);
	cfs_blocklist_release(&s->base);
	free(s->dirty);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

int session_mark_in(struct cfs_sql *db, uint64_t ino, bool begin,
		    const struct local_content *c)
{
	struct mirror_changes ch = { 0 };
	struct cfs_error err;
	enum cfs_err rc = begin ? local_write_begin(db, ino, &err)
				: local_write_end(db, ino, c, &ch, &err);

	mirror_changes_release(&ch);
	if (rc && rc != CFS_ERR_NOT_FOUND)
		cfs_log_error("%s", err.msg);
	return rc ? cfs_err_errno(rc) : 0;
}

/* Counts (or stops counting) s as a pending change in the mirror. */
int session_mark(struct session *s, bool begin, const struct local_content *c)
{
	struct fs *fs = s->t->fs;
	struct cfs_error err;
	struct cfs_sql *db = cache_db(fs->cache, &err);
	int e;

	if (!db) {
		cfs_log_error("%s", err.msg);
		return EIO;
	}
	e = session_mark_in(db, s->ino, begin, c);
	cache_db_release(fs->cache, db);
	if (!e)
		s->in_db = begin;
	return e;
}

/* A new session from the mirror's entry. */
static int start(struct sessions *t, uint64_t ino, bool new,
		 struct session **out)
{
	struct mirror_entry e;
	struct cfs_error err;
	struct session *s;
	struct cfs_sql *db = cache_db(t->fs->cache, &err);
	enum cfs_err rc = db ? mirror_get(db, ino, &e, &err) : err.code;
	int eno;

	if (db)
		cache_db_release(t->fs->cache, db);
	/* Gone since the kernel's lookup (a change from elsewhere applied):
	 * ESTALE, as ops_get answers, makes open(2) look the name up again
	 * rather than fail with ENOENT on a name that exists. */
	if (rc)
		return rc == CFS_ERR_NOT_FOUND ? ESTALE : cfs_err_errno(rc);
	if (e.kind != CFS_KIND_FILE) {
		mirror_entry_release(&e);
		return EISDIR;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		mirror_entry_release(&e);
		return ENOMEM;
	}
	*s = (struct session){ .t = t,
			       .ino = ino,
			       .handles = 1,
			       .size = e.size,
			       .atime_ns = e.atime_ns,
			       .mtime_ns = e.mtime_ns,
			       .ctime_ns = e.ctime_ns,
			       .base = e.blocks,
			       .base_size = e.size,
			       .fd = -1,
			       /* A new file is a change even if never
				* written: the server must get it. */
			       .changed = new,
			       .in_db = new };
	e.blocks = (struct cfs_blocklist){ 0 };
	mirror_entry_release(&e);
	pthread_mutex_init(&s->lock, NULL);
	eno = new ? 0 : session_mark(s, true, NULL);
	if (eno == ENOENT)
		eno = ESTALE; /* removed meanwhile, as above */
	if (eno) {
		session_free(s);
		return eno;
	}
	*out = s;
	return 0;
}

int session_open(struct sessions *t, uint64_t ino, bool new,
		 struct session **out)
{
	struct session **p;
	int e = 0;

	/* Held across start(): two opens of one file make one session. */
	pthread_mutex_lock(&t->lock);
	p = session_live_slot(t, ino);
	if (*p) {
		(*p)->handles++;
	} else {
		e = start(t, ino, new, p);
	}
	*out = *p;
	pthread_mutex_unlock(&t->lock);
	return e;
}

void session_release(struct sessions *t, struct session *s)
{
	pthread_mutex_lock(&t->lock);
	assert(s->handles > 0 && !s->settling);
	if (--s->handles == 0) {
		s->settle_at_ms = cfs_monotonic_ms() + t->fs->opt.settle_ms;
		pthread_cond_signal(&t->tick);
	}
	pthread_mutex_unlock(&t->lock);
}

bool session_stat(struct sessions *t, uint64_t ino, struct session_attr *a)
{
	struct session *s;

	pthread_mutex_lock(&t->lock);
	s = *session_slot(t, ino);
	if (s) {
		pthread_mutex_lock(&s->lock);
		*a = (struct session_attr){ .size = s->size,
					    .atime_ns = s->atime_ns,
					    .mtime_ns = s->mtime_ns,
					    .ctime_ns = s->ctime_ns,
					    .mode = s->mode };
		pthread_mutex_unlock(&s->lock);
	}
	pthread_mutex_unlock(&t->lock);
	return s != NULL;
}

bool session_touch(struct sessions *t, uint64_t ino,
		   const struct local_attrs *a, int64_t ctime_ns)
{
	struct session *s;

	pthread_mutex_lock(&t->lock);
	s = *session_live_slot(t, ino);
	if (s) {
		pthread_mutex_lock(&s->lock);
		if (a->atime_ns)
			s->atime_ns = *a->atime_ns;
		if (a->mtime_ns)
			s->mtime_ns = *a->mtime_ns;
		if (a->mode)
			s->mode = SESSION_MODE_SET | (*a->mode & CFS_MODE_MASK);
		s->ctime_ns = ctime_ns;
		s->changed = true;
		pthread_mutex_unlock(&s->lock);
	}
	pthread_mutex_unlock(&t->lock);
	return s != NULL;
}

void session_ctime(struct sessions *t, uint64_t ino, int64_t ctime_ns)
{
	struct session *s;

	pthread_mutex_lock(&t->lock);
	s = *session_live_slot(t, ino);
	if (s) {
		pthread_mutex_lock(&s->lock);
		if (ctime_ns > s->ctime_ns)
			s->ctime_ns = ctime_ns;
		pthread_mutex_unlock(&s->lock);
	}
	pthread_mutex_unlock(&t->lock);
}

uint64_t sessions_settled(struct sessions *t)
{
	return t ? atomic_load(&t->settled_count) : 0;
}

size_t sessions_count(struct sessions *t)
{
	size_t n = 0;

	if (!t)
		return 0;
	pthread_mutex_lock(&t->lock);
	for (size_t b = 0; b < SESSION_BUCKETS; b++)
		for (struct session *s = t->table[b]; s; s = s->next)
			n++;
	pthread_mutex_unlock(&t->lock);
	return n;
}
