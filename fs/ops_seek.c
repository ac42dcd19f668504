/*
 * lseek(2)'s SEEK_DATA and SEEK_HOLE (fs/ops.h): a block of zeros is a
 * hole.  Content addressing makes every such block of a file one block id
 * (the SHA-256 of 4 MiB of zeros), so holes are found in the block list
 * without reading a byte, and cp, tar and rsync skip them.
 *
 * A file's last block, when short, counts as data, and so does all of a
 * file being written here (its block list is made when it settles): POSIX
 * lets a filesystem report data where there are zeros, never the reverse.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "cloudfs/platform.h"
#include "fs/ops.h"
#include "fs/session.h"

/* Without memory for the hash, it stays an id no block has: then every
 * block is data, which is never wrong. */
static struct cfs_block_id zero_block;

static void hash_zero_block(void)
{
	void *zeros = calloc(1, CFS_BLOCK_SIZE);

	if (zeros && cfs_sha256(zeros, CFS_BLOCK_SIZE, &zero_block))
		zero_block = (struct cfs_block_id){ 0 };
	free(zeros);
}

/* Whether block i of a file of size bytes with blocks ids is a hole. */
static bool is_hole(const struct cfs_blocklist *ids, uint64_t size, uint64_t i)
{
	return cfs_block_len(size, i) == CFS_BLOCK_SIZE &&
	       cfs_block_id_equal(&ids->ids[i], &zero_block);
}

/* Where the data (or the hole, hole true) at or after off begins in a
 * file of size bytes: -ENXIO past the end, or for data when only holes
 * are left.  The end of the file is a hole. */
static off_t seek(const struct cfs_blocklist *ids, uint64_t size, uint64_t off,
		  bool hole)
{
	if (off >= size)
		return -ENXIO;
	for (uint64_t i = off / CFS_BLOCK_SIZE; i < ids->n; i++)
		if (is_hole(ids, size, i) == hole)
			return (off_t)(i * CFS_BLOCK_SIZE > off
					       ? i * CFS_BLOCK_SIZE
					       : off);
	return hole ? (off_t)size : -ENXIO;
}

void ops_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
	       struct fuse_file_info *fi)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	struct fs *fs = ops_fs(req);
	struct open_file *fh = (struct open_file *)fi->fh;
	struct session_attr written;
	enum platform_seek kind = platform_seek_whence(whence);
	off_t at;

	if (kind == PLATFORM_SEEK_OTHER) {
		fuse_reply_err(req, EINVAL); /* the kernel does the others */
		return;
	}
	if (off < 0) {
		fuse_reply_err(req, ENXIO);
		return;
	}
	pthread_once(&once, hash_zero_block);
	if (session_stat(fs->sessions, ino, &written)) {
		/* Being written: all data, as far as this call knows. */
		at = (uint64_t)off >= written.size ? -ENXIO
		     : kind == PLATFORM_SEEK_DATA  ? off
						   : (off_t)written.size;
	} else {
		pthread_mutex_lock(&fh->lock);
		ops_refresh(fs, fh);
		at = seek(&fh->blocks, fh->size, (uint64_t)off,
			  kind == PLATFORM_SEEK_HOLE);
		pthread_mutex_unlock(&fh->lock);
	}
	if (at < 0)
		fuse_reply_err(req, (int)-at);
	else
		fuse_reply_lseek(req, at);
}
