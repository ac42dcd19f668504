/* Garbage collection of the server (server/gc.h). */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cloudfs/clock.h"
#include "cloudfs/log.h"
#include "server/cmd.h"
#include "server/gc.h"

struct forgotten {
	struct blockstore *bs;
	struct gc_report *r;
};

/* Removes the bytes of a forgotten block (meta_ops.gc keeps uploads of it
 * away meanwhile); a failure is logged and counted (the bytes stay,
 * listed by nobody). */
static void remove_bytes(void *arg, const struct cfs_block_id *id)
{
	struct forgotten *f = arg;
	char hex[CFS_BLOCK_ID_HEX_LEN + 1];
	struct cfs_error err;

	if (f->bs->ops->remove(f->bs, id, &err) == CFS_OK) {
		f->r->removed++;
		return;
	}
	f->r->remove_failed++;
	cfs_block_id_to_hex(id, hex);
	cfs_log_warn("gc: cannot remove the bytes of block %s: %s", hex,
		     err.msg);
}

enum cfs_err gc_run(struct meta *m, struct blockstore *bs,
		    pthread_rwlock_t *uploads, int64_t retention_s,
		    struct gc_report *r, struct cfs_error *err)
{
	struct forgotten f = { .bs = bs, .r = r };
	enum cfs_err rc;

	*r = (struct gc_report){ 0 };
	if (uploads)
		pthread_rwlock_wrlock(uploads);
	rc = m->ops->gc(m, (int64_t)time(NULL) - retention_s, remove_bytes, &f,
			&r->t, err);
	if (uploads)
		pthread_rwlock_unlock(uploads);
	return rc;
}

struct gc_daemon {
	struct meta *m;
	struct blockstore *bs;
	pthread_rwlock_t *uploads;
	int64_t retention_s, every_s;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool stop;
};

static void log_report(const struct gc_report *r, int64_t retention_s)
{
	cfs_log_info(
		"gc (retention %lld s): %llu journal rows compacted, %llu blocks (%llu bytes) dropped, %llu blocks (%llu bytes) kept",
		(long long)retention_s, (unsigned long long)r->t.journal_rows,
		(unsigned long long)r->removed, (unsigned long long)r->t.bytes,
		(unsigned long long)r->t.live_blocks,
		(unsigned long long)r->t.live_bytes);
}

static void *gc_thread(void *arg)
{
	struct gc_daemon *d = arg;

	pthread_mutex_lock(&d->lock);
	while (!d->stop) {
		struct timespec until =
			cfs_deadline_in_ms((unsigned long)d->every_s * 1000);
		struct gc_report r;
		struct cfs_error err;

		while (!d->stop && pthread_cond_timedwait(&d->wake, &d->lock,
							  &until) != ETIMEDOUT)
			;
		if (d->stop)
			break;
		pthread_mutex_unlock(&d->lock);
		if (gc_run(d->m, d->bs, d->uploads, d->retention_s, &r, &err))
			cfs_log_warn("gc failed: %s", err.msg);
		else
			log_report(&r, d->retention_s);
		pthread_mutex_lock(&d->lock);
	}
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

struct gc_daemon *gc_start(struct meta *m, struct blockstore *bs,
			   pthread_rwlock_t *uploads, int64_t retention_s,
			   int64_t every_s)
{
	struct gc_daemon *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	*d = (struct gc_daemon){ .m = m,
				 .bs = bs,
				 .uploads = uploads,
				 .retention_s = retention_s,
				 .every_s = every_s };
	pthread_mutex_init(&d->lock, NULL);
	pthread_cond_init(&d->wake, NULL);
	if (pthread_create(&d->thread, NULL, gc_thread, d)) {
		pthread_cond_destroy(&d->wake);
		pthread_mutex_destroy(&d->lock);
		free(d);
		return NULL;
	}
	return d;
}

void gc_stop(struct gc_daemon *d)
{
	if (!d)
		return;
	pthread_mutex_lock(&d->lock);
	d->stop = true;
	pthread_cond_signal(&d->wake);
	pthread_mutex_unlock(&d->lock);
	pthread_join(d->thread, NULL);
	pthread_cond_destroy(&d->wake);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

bool gc_duration_parse(const char *s, int64_t *seconds)
{
	static const struct {
		char unit;
		int64_t s;
	} units[] = { { 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 } };
	char *end;
	long long v;

	/* Digits first: strtoll() would also take spaces and a sign. */
	if (!isdigit((unsigned char)*s))
		return false;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno)
		return false;
	if (*end == '\0') {
		*seconds = v;
		return true;
	}
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (end[0] == units[i].unit && end[1] == '\0' &&
		    v <= INT64_MAX / units[i].s) {
			*seconds = v * units[i].s;
			return true;
		}
	return false;
}

bool gc_duration_arg(const char *cmd, const char *opt, const char *arg,
		     int64_t *seconds, int *status)
{
	if (gc_duration_parse(arg, seconds))
		return true;
	fprintf(stderr,
		"cloudfsd %s: %s must be a duration such as 30d, 12h, 15m or 10s, not '%s'\n",
		cmd, opt, arg);
	*status = EXIT_USAGE;
	return false;
}
