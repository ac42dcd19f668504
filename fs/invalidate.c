/*
 * Invalidating what the kernel caches (fs/invalidate.h).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cloudfs/log.h"
#include "fs/fs.h"
#include "fs/invalidate.h"
#include "fs/kernel.h"

/* An open-addressing set of inode numbers (0 is never one), at most half
 * full. */
struct listed_dirs {
	pthread_mutex_t lock;
	uint64_t *slots;
	size_t cap, n;
};

struct listed_dirs *listed_dirs_new(void)
{
	struct listed_dirs *l = calloc(1, sizeof(*l));

	if (l && !(l->slots = calloc(l->cap = 1024, sizeof(l->slots[0])))) {
		free(l);
		return NULL;
	}
	if (l)
		pthread_mutex_init(&l->lock, NULL);
	return l;
}

void listed_dirs_free(struct listed_dirs *l)
{
	if (!l)
		return;
	pthread_mutex_destroy(&l->lock);
	free(l->slots);
	free(l);
}

static size_t slot_of(const uint64_t *slots, size_t cap, uint64_t ino)
{
	size_t i = (size_t)(ino * 0x9e3779b97f4a7c15u) & (cap - 1);

	while (slots[i] && slots[i] != ino)
		i = (i + 1) & (cap - 1);
	return i;
}

/* Under the lock: twice the room.  False when out of memory. */
static bool grow(struct listed_dirs *l)
{
	size_t cap = 2 * l->cap;
	uint64_t *slots = calloc(cap, sizeof(slots[0]));

	if (!slots)
		return false;
	for (size_t i = 0; i < l->cap; i++)
		if (l->slots[i])
			slots[slot_of(slots, cap, l->slots[i])] = l->slots[i];
	free(l->slots);
	l->slots = slots;
	l->cap = cap;
	return true;
}

void listed_dirs_add(struct listed_dirs *l, uint64_t ino)
{
	size_t i;

	if (!l)
		return;
	pthread_mutex_lock(&l->lock);
	i = slot_of(l->slots, l->cap, ino);
	if (!l->slots[i] && (2 * (l->n + 1) <= l->cap || grow(l))) {
		l->slots[slot_of(l->slots, l->cap, ino)] = ino;
		l->n++;
	} else if (!l->slots[i]) {
		/* Out of memory: the kernel will not keep this listing long,
		 * since every change of the folder still drops it; only the
		 * rare race of the header stays open. */
		cfs_log_warn("out of memory noting folder %llu as listed",
			     (unsigned long long)ino);
	}
	pthread_mutex_unlock(&l->lock);
}

bool listed_dirs_has(struct listed_dirs *l, uint64_t ino)
{
	bool has;

	if (!l)
		return false;
	pthread_mutex_lock(&l->lock);
	has = l->slots[slot_of(l->slots, l->cap, ino)] == ino;
	pthread_mutex_unlock(&l->lock);
	return has;
}

/* The folder whose listing note v says changed, or 0. */
static uint64_t listing_of(const struct mirror_inval *v)
{
	return v->name ? v->parent : v->children ? v->ino : 0;
}

/* The folders of ch whose listing the kernel may hold get a later mtime
 * before the kernel hears of the change (fs/invalidate.h). */
static void touch_listed(struct fs *fs, const struct mirror_changes *ch)
{
	struct cfs_error err;
	struct cfs_sql *db = NULL;
	enum cfs_err rc = CFS_OK;
	bool began = false;
	uint64_t last = 0;

	for (size_t i = 0; rc == CFS_OK && i < ch->n; i++) {
		uint64_t dir = listing_of(&ch->v[i]);

		if (!dir || dir == last || !listed_dirs_has(fs->listed, dir))
			continue;
		last = dir;
		if (!db && !(db = cache_db(fs->cache, &err)))
			rc = err.code;
		else if (!began && (rc = cfs_sql_begin(db, true, &err)) == 0)
			began = true;
		if (rc == CFS_OK)
			rc = mirror_touch_dirs(db, dir, 0, &err);
	}
	if (began)
		rc = cfs_sql_end(db, rc, &err);
	if (db)
		cache_db_release(fs->cache, db);
	if (rc)
		cfs_log_warn("cannot give changed folders a new mtime: %s",
			     err.msg);
}

static void told(int e, uint64_t ino)
{
	/* ENOENT: the kernel holds nothing of it. */
	if (e && e != ENOENT)
		cfs_log_debug("cannot invalidate inode %llu: %s",
			      (unsigned long long)ino, strerror(e));
}

void fs_invalidate(struct fs *fs, const struct mirror_changes *ch)
{
	uint64_t last = 0;

	for (size_t i = 0; i < ch->n; i++)
		if (!ch->v[i].name && !ch->v[i].children)
			openfiles_changed(fs->open, ch->v[i].ino);
	if (!fs->se)
		return; /* not mounted yet: the kernel has nothing */
	touch_listed(fs, ch);
	for (size_t i = 0; i < ch->n; i++) {
		const struct mirror_inval *v = &ch->v[i];
		uint64_t dir = listing_of(v);

		if (v->name)
			told(ops_inval_entry(fs, v->parent, v->name),
			     v->parent);
		else if (!v->children)
			told(ops_inval_inode(fs, v->ino), v->ino);
		/* Its attributes (the new mtime) and its cached listing. */
		if (dir && dir != last)
			told(ops_inval_inode(fs, dir), dir);
		if (dir)
			last = dir;
	}
}

void fs_invalidate_child(struct fs *fs, uint64_t parent, const char *name)
{
	struct mirror_inval v = { .parent = parent, .name = (char *)name };
	struct mirror_changes ch = { .v = &v, .n = 1, .cap = 1 };

	fs_invalidate(fs, &ch);
}
