/*
 * A set of block ids, for the mark-and-sweep passes of the cache's
 * eviction and the server's garbage collection: appended to, then sorted
 * once (cfs_blockset_seal), then asked.
 */
#ifndef CLOUDFS_BLOCKSET_H
#define CLOUDFS_BLOCKSET_H

#include <stdbool.h>
#include <stddef.h>

#include "cloudfs/block.h"
#include "cloudfs/error.h"

struct cfs_blockset {
	struct cfs_block_id *v;
	size_t n, cap;
};

/* Adds the len / CFS_BLOCK_ID_LEN ids of a raw block list (a BLOB
 * column's bytes). */
enum cfs_err cfs_blockset_add_raw(struct cfs_blockset *s, const void *raw,
				  size_t len, struct cfs_error *err);

/* Sorts the set and drops the ids added twice; then it may be asked. */
void cfs_blockset_seal(struct cfs_blockset *s);

/* Whether the sealed set holds id. */
bool cfs_blockset_has(const struct cfs_blockset *s,
		      const struct cfs_block_id *id);

void cfs_blockset_release(struct cfs_blockset *s);

#endif
