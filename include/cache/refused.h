/*
 * What the server refused, kept: the content of a file whose commit the
 * server refused for good (its folder became a file elsewhere, say) is
 * written out under the cache directory before the mount gives the file
 * up, so no refusal loses bytes.
 *
 *	DIR/refused/WHEN-nsN/PATH    the content, at its path in namespace N
 *
 * The files stay until the user removes them; while any is there, the
 * mount is not synced (cloudfs status names the folder).
 */
#ifndef CACHE_REFUSED_H
#define CACHE_REFUSED_H

#include <limits.h>
#include <stdint.h>

#include "cache/cache.h"
#include "cloudfs/block.h"
#include "cloudfs/error.h"

/*
 * Writes the size bytes of blocks (block files of the cache) durably to
 * DIR/refused/WHEN-nsN/path; *saved gets that file's path (" (2)" and so
 * on added when the name is taken).  CFS_ERR_NOT_FOUND when a block is
 * not in the cache; CFS_ERR_STORAGE_FULL when the disk is.
 */
enum cfs_err refused_keep(struct cache *c, int64_t ns, const char *path,
			  uint64_t size, const struct cfs_blocklist *blocks,
			  char saved[PATH_MAX], struct cfs_error *err);

/* How many files DIR/refused holds. */
enum cfs_err refused_count(struct cache *c, int64_t *files,
			   struct cfs_error *err);

#endif
