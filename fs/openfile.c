/* Open files and the versions of open inodes (fs/openfile.h). */
#include <stdlib.h>

#include "fs/openfile.h"

#define N_BUCKETS 1024

/* An inode with open handles; lives while refs > 0. */
struct open_inode {
	uint64_t ino;
	unsigned refs;
	uint64_t version;
	struct open_inode *next;
};

struct open_files {
	pthread_mutex_t lock; /* protects the table and every open_inode */
	struct open_inode *table[N_BUCKETS];
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
	for (size_t i = 0; i < N_BUCKETS; i++) {
		while (t->table[i]) {
			struct open_inode *oi = t->table[i];

			t->table[i] = oi->next;
			free(oi);
		}
	}
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

struct open_file *openfiles_open(struct open_files *t, uint64_t ino,
				 uint64_t size, struct cfs_blocklist *blocks)
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
	}
	pthread_mutex_unlock(&t->lock);
	if (!fh->inode) {
		free(fh);
		return NULL;
	}
	fh->ino = ino;
	fh->size = size;
	fh->blocks = *blocks;
	*blocks = (struct cfs_blocklist){ 0 };
	pthread_mutex_init(&fh->lock, NULL);
	return fh;
}

void openfiles_release(struct open_files *t, struct open_file *fh)
{
	pthread_mutex_lock(&t->lock);
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
