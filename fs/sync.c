/*
 * Keeping the mirror in step with the server (the sync thread).
 *
 * A catch-up asks the server for the caller's namespaces and their heads,
 * forgets those the caller left, and lists every namespace whose cursor is
 * behind its head (new shared folders from 0), page by page, each page
 * applied to the mirror in one transaction and then invalidated in the
 * kernel.  Between catch-ups the thread waits in a long poll on all
 * cursors.  Any failure (a dead server, a bad answer) is retried from the
 * stored cursors after a backoff with jitter: a cursor names a point of
 * the journal, so nothing is lost or applied twice.
 *
 * Everything the server sends is checked before it touches the mirror; a
 * page with one bad entry is refused whole.
 *
 * Streaming sync (-o streaming, on by default): the long poll also asks
 * for the blocks of pending lists that landed, other devices' files on
 * their way up, and hands them to the fetcher as prefetches, so that
 * they are cached (as ordinary blocks: the keeper's limit holds) when
 * the journal row lands.  Nothing of them reaches the mirror: the file
 * shows only with its row.  A poll that brought only landed blocks is
 * followed by the next poll, without a catch-up.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cloudfs/clock.h"
#include "cache/mirror.h"
#include "cloudfs/log.h"
#include "fs/fs.h"
#include "fs/invalidate.h"
#include "cache/blockcache.h"
#include "cache/upkeep.h"
#include "fs/fetch.h"
#include "fs/upload.h"

#define PAGE	       1000
#define LONGPOLL_S     60
#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 30000

struct sync {
	struct fs *fs;
	struct remote_conn *conn;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake; /* stop, for the backoff's sleep */
	bool stop;
	uint64_t longpolls, failures; /* atomic: read by cloudfs stats */
	uint64_t streamed; /* atomic: landed blocks handed to the fetcher */
	int64_t pending_cursor; /* the sync thread's own */
};

/*
 * Whether a listing may be applied (fs->apply_lock held): once no commit
 * is in doubt (fs/fs.h).  Waits for the uploader's answers; before the
 * mount, with no uploader yet, the mirror stays as it is.
 */
static bool wait_doubt(struct fs *fs, const bool *stop)
{
	bool told = false;

	while (fs->in_doubt && fs->upload &&
	       !__atomic_load_n(stop, __ATOMIC_RELAXED)) {
		struct timespec until = cfs_deadline_in_ms(200);

		if (!told)
			cfs_log_info(
				"listings wait for the answers to commits sent before");
		told = true;
		pthread_cond_timedwait(&fs->doubt_over, &fs->apply_lock,
				       &until);
	}
	return !fs->in_doubt;
}

/* Applies one page of a listing of ns (checked by the remote). */
static enum cfs_err apply_page(struct fs *fs, int64_t ns,
			       struct remote_page *page, size_t *count,
			       const bool *stop, struct cfs_error *err)
{
	struct mirror_changes ch = { 0 };
	struct cfs_sql *db;
	enum cfs_err rc = CFS_OK;

	/* Not between an upload's commit and its settling (see
	 * fs/upload.h). */
	pthread_mutex_lock(&fs->apply_lock);
	if (!wait_doubt(fs, stop)) {
		page->more = false; /* the next pass lists it again */
	} else if ((db = cache_db(fs->cache, err))) {
		rc = mirror_apply(db, ns, page->entries, page->n, page->cursor,
				  !page->more, &ch, err);
		cache_db_release(fs->cache, db);
		*count += page->n;
	} else {
		rc = err->code;
	}
	pthread_mutex_unlock(&fs->apply_lock);
	if (rc == CFS_OK && ch.n) {
		fs_invalidate(fs, &ch);
		keeper_note(fs->keeper);
	}
	mirror_changes_release(&ch);
	return remote_bad_listing(rc, ns, err);
}

/* Lists ns from cursor to the head, one page at a time. */
static enum cfs_err list_ns(struct fs *fs, struct remote_conn *conn,
			    const struct mirror_ns *m, const bool *stop,
			    struct cfs_error *err)
{
	int64_t cursor = m->cursor;
	size_t count = 0, reported = 0;
	enum cfs_err rc;
	bool more = true;

	while (more && !__atomic_load_n(stop, __ATOMIC_RELAXED)) {
		struct remote_list_req req = { .ns = m->ns,
					       .cursor = cursor,
					       .limit = PAGE,
					       .at = fs->opt.at };
		struct remote_page page;

		rc = remote_list(conn, &req, stop, &page, err);
		if (rc)
			return rc;
		rc = apply_page(fs, m->ns, &page, &count, stop, err);
		cursor = page.cursor;
		more = page.more;
		remote_page_release(&page);
		if (rc)
			return rc;
		if (!m->listed && count - reported >= 10 * PAGE) {
			cfs_log_info(
				"listing namespace %lld: %zu entries so far",
				(long long)m->ns, count);
			reported = count;
		}
	}
	if (!m->listed)
		cfs_log_info(
			"namespace %lld listed: %zu entries, up to JID %lld",
			(long long)m->ns, count, (long long)cursor);
	return CFS_OK;
}

/* The head the server gave for ns, or -1 when the caller left it. */
static int64_t head_of(const struct remote_ns *heads, size_t n, int64_t ns)
{
	for (size_t i = 0; i < n; i++)
		if (heads[i].ns == ns)
			return heads[i].head;
	return -1;
}

/* Whether the mirror follows other namespaces than the n of list. */
static bool followed_changed(struct cfs_sql *db, const struct mirror_ns *list,
			     size_t n)
{
	struct mirror_ns *now = NULL;
	struct cfs_error err;
	size_t m = 0;
	bool changed =
		mirror_namespaces(db, &now, &m, &err) != CFS_OK || m != n;

	for (size_t i = 0; !changed && i < n; i++)
		changed = now[i].ns != list[i].ns;
	free(now);
	return changed;
}

/*
 * One pass over the mirror's namespaces, against heads (the server's
 * answer from before the pass).  *again when the pass changed which
 * namespaces the mirror follows: a listing brought a new shared folder,
 * which heads may not know yet, so the next pass must ask for them anew
 * (or it would take the new namespace for one the user left).
 */
static enum cfs_err catch_up_pass(struct fs *fs, struct remote_conn *conn,
				  const struct remote_ns *heads, size_t n_heads,
				  const bool *stop, bool *again,
				  struct cfs_error *err)
{
	struct mirror_ns *list = NULL;
	struct cfs_sql *db = cache_db(fs->cache, err);
	enum cfs_err rc;
	size_t n = 0;
	bool listed_any = false;

	*again = false;
	if (!db)
		return err->code;
	rc = mirror_namespaces(db, &list, &n, err);
	for (size_t i = 0; rc == CFS_OK && i < n; i++) {
		int64_t head = head_of(heads, n_heads, list[i].ns);

		if (head < 0) {
			cfs_log_info(
				"namespace %lld is no longer shared with you",
				(long long)list[i].ns);
			rc = mirror_forget_ns(db, list[i].ns, err);
		} else if (!list[i].listed ||
			   (!fs->opt.at && list[i].cursor < head)) {
			rc = list_ns(fs, conn, &list[i], stop, err);
			listed_any = true;
		}
	}
	if (rc == CFS_OK && listed_any)
		*again = followed_changed(db, list, n);
	cache_db_release(fs->cache, db);
	free(list);
	return rc;
}

/* Whether listings are left unapplied for now (see wait_doubt). */
static bool deferred(struct fs *fs)
{
	bool yes;

	pthread_mutex_lock(&fs->apply_lock);
	yes = fs->in_doubt && !fs->upload;
	pthread_mutex_unlock(&fs->apply_lock);
	return yes;
}

enum cfs_err sync_catch_up(struct fs *fs, struct remote_conn *conn,
			   const bool *stop, struct cfs_error *err)
{
	enum cfs_err rc = CFS_OK;
	bool again = true;

	while (rc == CFS_OK && again &&
	       !__atomic_load_n(stop, __ATOMIC_RELAXED) && !deferred(fs)) {
		struct remote_ns *heads = NULL;
		size_t n = 0;

		rc = remote_namespaces(conn, 0, stop, &heads, &n, err);
		if (rc == CFS_OK)
			rc = catch_up_pass(fs, conn, heads, n, stop, &again,
					   err);
		remote_ns_free(heads, n);
	}
	return rc;
}

/* The longest a streamed block is kept from the unlisted sweep, whatever
 * the server says of its list's expiry. */
#define STREAMED_KEEP_MAX_S 86400

/* Prefetches the landed blocks of pending lists (streaming sync). */
static void stream_landed(struct sync *s, const struct remote_pending *p)
{
	struct fs *fs = s->fs;
	int64_t now = (int64_t)time(NULL);

	for (size_t i = 0; fs->fetch && i < p->n; i++) {
		const struct remote_landed *l = &p->landed[i];
		int64_t until = l->expires < now + STREAMED_KEEP_MAX_S
					? l->expires
					: now + STREAMED_KEEP_MAX_S;
		int fd = blockcache_open(fs->cache, &l->id);

		/* Cached already (our own upload, most often): nothing to
		 * fetch, and nothing to keep once no file lists it. */
		if (fd >= 0) {
			close(fd);
			continue;
		}
		/* Kept first: the sweep must not find it stored and
		 * unlisted in between. */
		upkeep_streamed_keep(fs->cache, &l->id, until);
		fetcher_prefetch(fs->fetch, &l->id, l->size);
		__atomic_add_fetch(&s->streamed, 1, __ATOMIC_RELAXED);
	}
}

/* Waits until a followed namespace moves (or the long poll times out, or
 * fs->relist cuts it short); *only_landed when it brought landed blocks
 * of pending lists and nothing else. */
static enum cfs_err wait_for_change(struct sync *s, struct remote_conn *conn,
				    bool *only_landed, struct cfs_error *err)
{
	struct fs *fs = s->fs;
	struct mirror_ns *list = NULL;
	struct remote_cursor *cursors;
	struct remote_pending pending = { .cursor = s->pending_cursor };
	bool streaming = fs->opt.streaming && !fs->opt.at;
	struct cfs_sql *db = cache_db(fs->cache, err);
	enum cfs_err rc;
	size_t n = 0;

	*only_landed = false;
	if (!db)
		return err->code;
	rc = mirror_namespaces(db, &list, &n, err);
	cache_db_release(fs->cache, db);
	if (rc)
		return rc;
	cursors = calloc(n + 1, sizeof(*cursors));
	for (size_t i = 0; cursors && i < n; i++)
		cursors[i] = (struct remote_cursor){ .ns = list[i].ns,
						     .cursor = list[i].cursor };
	free(list);
	if (!cursors)
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	rc = remote_longpoll(conn, cursors, n, LONGPOLL_S, &fs->relist,
			     streaming ? &pending : NULL, err);
	free(cursors);
	if (rc == CFS_OK && streaming) {
		s->pending_cursor = pending.cursor;
		stream_landed(s, &pending);
		*only_landed = pending.n && !pending.moved;
	}
	remote_pending_release(&pending);
	/* Ended early (fs->relist): the catch-up lists what is new. */
	if (rc == CFS_ERR_UNREACHABLE &&
	    __atomic_load_n(&fs->relist, __ATOMIC_SEQ_CST))
		return CFS_OK;
	/* A namespace left meanwhile: the catch-up will forget it. */
	return rc == CFS_ERR_NOT_FOUND ? CFS_OK : rc;
}

/* Sleeps ms unless the thread is told to stop. */
static void nap(struct sync *s, unsigned ms)
{
	struct timespec until = cfs_deadline_in_ms(ms);

	pthread_mutex_lock(&s->lock);
	while (!s->stop &&
	       pthread_cond_timedwait(&s->wake, &s->lock, &until) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&s->lock);
}

static void *sync_thread(void *arg)
{
	struct sync *s = arg;
	struct remote_conn *conn = s->conn;
	unsigned backoff = 0,
		 seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)s;
	struct cfs_error err;
	bool only_landed = false;

	while (!__atomic_load_n(&s->stop, __ATOMIC_RELAXED)) {
		enum cfs_err rc = CFS_OK;
		bool relist;

		/* Cleared before the stop is read again: sync_stop() sets
		 * both, in the other order. */
		relist = __atomic_exchange_n(&s->fs->relist, false,
					     __ATOMIC_SEQ_CST);
		if (__atomic_load_n(&s->stop, __ATOMIC_SEQ_CST))
			break;
		/* Blocks landing come one by one, faster than listings
		 * could: only a poll that saw a namespace move, or a relist
		 * asked for, lists. */
		if (!only_landed || relist) {
			rc = sync_catch_up(s->fs, conn, &s->stop, &err);
			/* The server answers, and the mirror is listed up to
			 * its head: what the uploader backs off for may be
			 * over. */
			if (rc == CFS_OK)
				uploader_retry_now(s->fs->upload);
		}
		if (rc == CFS_OK && s->fs->opt.at) {
			nap(s, 60 * 1000); /* then never changes */
			continue;
		}
		if (rc == CFS_OK)
			rc = wait_for_change(s, conn, &only_landed, &err);
		if (rc)
			only_landed = false;
		if (rc == CFS_OK)
			__atomic_add_fetch(&s->longpolls, 1, __ATOMIC_RELAXED);
		if (rc == CFS_OK ||
		    __atomic_load_n(&s->stop, __ATOMIC_RELAXED)) {
			if (backoff)
				cfs_log_info("back in step with the server");
			backoff = 0;
			continue;
		}
		__atomic_add_fetch(&s->failures, 1, __ATOMIC_RELAXED);
		backoff = backoff ? backoff * 2 : BACKOFF_MIN_MS;
		if (backoff > BACKOFF_MAX_MS)
			backoff = BACKOFF_MAX_MS;
		cfs_log_warn(
			"out of step with the server (%s); retrying in about %u ms",
			err.msg, backoff);
		/* Jitter: 50% to 150%, so that clients do not come back in
		 * lockstep after an outage. */
		nap(s, backoff / 2 + (unsigned)rand_r(&seed) % (backoff + 1));
	}
	return NULL;
}

struct sync *sync_start(struct fs *fs)
{
	struct sync *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->fs = fs;
	s->conn = remote_conn_new(fs->remote);
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->wake, NULL);
	if (!s->conn || pthread_create(&s->thread, NULL, sync_thread, s)) {
		remote_conn_free(s->conn);
		pthread_cond_destroy(&s->wake);
		pthread_mutex_destroy(&s->lock);
		free(s);
		return NULL;
	}
	return s;
}

void sync_stop(struct sync *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	__atomic_store_n(&s->stop, true, __ATOMIC_SEQ_CST);
	__atomic_store_n(&s->fs->relist, true, __ATOMIC_SEQ_CST);
	pthread_cond_broadcast(&s->wake);
	pthread_mutex_unlock(&s->lock);
	remote_conn_wake(s->conn);
	pthread_join(s->thread, NULL);
	remote_conn_free(s->conn);
	pthread_cond_destroy(&s->wake);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

uint64_t sync_streamed(struct sync *s)
{
	return s ? __atomic_load_n(&s->streamed, __ATOMIC_RELAXED) : 0;
}

void sync_counts(struct sync *s, uint64_t *longpolls, uint64_t *failures)
{
	*longpolls = s ? __atomic_load_n(&s->longpolls, __ATOMIC_RELAXED) : 0;
	*failures = s ? __atomic_load_n(&s->failures, __ATOMIC_RELAXED) : 0;
}
