/* Open files and the versions of open inodes (fs/openfile.h). */
#include <assert.h>
#include <stdlib.h>

#include "cloudfs/mutex.h"
#include "fs/openfile.h"

#define N_BUCKETS 1024

/* An inode with open handles; lives while refs > 0. */
struct open_inode {
	uint64_t ino;
	unsigned refs;
	uint64_t version;
	struct open_attr attr;
	struct open_inode *next;
};

struct open_files {
	pthread_mutex_t lock; /* protects everything below */
	struct open_inode *table[N_BUCKETS];
	struct open_file *handles; /* every handle not yet released */
};

struct open_files *openfiles_new(void)
{
	struct open_files *t = calloc(1, sizeof(*t));

	if (t)
		pthread_mutex_init(&t->lock, NULL);
	return t;
}

void openfiles_free(struct open_files *t)
{
	if (!t)
		return;
	while (t->handles)
		openfiles_release(t, t->handles);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

static struct open_inode **slot(struct open_files *t, uint64_t ino)
{
	struct open_inode **p = &t->table[ino % N_BUCKETS];

	while (*p && (*p)->ino != ino)
		p = &(*p)->next;
	return p;
}

struct open_file *openfiles_open(struct open_files *t, uint64_t ino)
{
	struct open_file *fh = calloc(1, sizeof(*fh));
	struct open_inode **p;

	if (!fh)
		return NULL;
	pthread_mutex_lock(&t->lock);
	p = slot(t, ino);
	if (!*p && (*p = calloc(1, sizeof(**p))))
		(*p)->ino = ino;
	if (*p) {
		(*p)->refs++;
		fh->inode = *p;
		fh->version = (*p)->version;
		fh->next = t->handles;
		if (t->handles)
			t->handles->prev = fh;
		t->handles = fh;
	}
	pthread_mutex_unlock(&t->lock);
	if (!fh->inode) {
		free(fh);
		return NULL;
	}
	fh->ino = ino;
	pthread_mutex_init(&fh->lock, NULL);
	return fh;
}

/* Under the table's lock, which readers of the attributes take. */
static void store_attr(struct open_files *t, struct open_file *fh,
		       const struct open_attr *attr)
{
	pthread_mutex_lock(&t->lock);
	fh->inode->attr = *attr;
	pthread_mutex_unlock(&t->lock);
}

/* No other thread has the new handle yet: its lock is not needed. */
void openfiles_load(struct open_files *t, struct open_file *fh,
		    const struct open_attr *attr, struct cfs_blocklist *blocks)
{
	store_attr(t, fh, attr);
	fh->size = attr->size;
	fh->blocks = *blocks;
	*blocks = (struct cfs_blocklist){ 0 };
}

void openfiles_release(struct open_files *t, struct open_file *fh)
{
	pthread_mutex_lock(&t->lock);
	if (fh->prev)
		fh->prev->next = fh->next;
	else
		t->handles = fh->next;
	if (fh->next)
		fh->next->prev = fh->prev;
	if (--fh->inode->refs == 0) {
		struct open_inode **p = slot(t, fh->ino);

		*p = fh->inode->next;
		free(fh->inode);
	}
	pthread_mutex_unlock(&t->lock);
	cfs_blocklist_release(&fh->blocks);
	pthread_mutex_destroy(&fh->lock);
	free(fh);
}

bool openfiles_attr(struct open_files *t, uint64_t ino, struct open_attr *attr)
{
	struct open_inode *oi;

	pthread_mutex_lock(&t->lock);
	oi = *slot(t, ino);
	if (oi)
		*attr = oi->attr;
	pthread_mutex_unlock(&t->lock);
	return oi != NULL;
}

void openfiles_set_attr(struct open_files *t, struct open_file *fh,
			const struct open_attr *attr)
{
	assert(cfs_mutex_locked(&fh->lock));
	store_attr(t, fh, attr);
}

uint64_t openfiles_version(struct open_files *t, const struct open_file *fh)
{
	uint64_t v;

	pthread_mutex_lock(&t->lock);
	v = fh->inode->version;
	pthread_mutex_unlock(&t->lock);
	return v;
}

void openfiles_changed(struct open_files *t, uint64_t ino)
{
	struct open_inode *oi;

	pthread_mutex_lock(&t->lock);
	oi = *slot(t, ino);
	if (oi)
		oi->version++;
	pthread_mutex_unlock(&t->lock);
}
