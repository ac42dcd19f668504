/*
 * Staging files (fs/staging.c): where the blocks a session wrote into
 * live until its commit, DIR/dirty/INO.B, and the base blocks they start
 * as copies of.  For the files of write sessions only (fs/session_state.h,
 * whose invariants 1, 2, 3, 6 and 7 they keep).  Each function is
 * documented where it is defined; all but the fetches run under s->lock.
 */
#ifndef FS_STAGING_H
#define FS_STAGING_H

#include <stdbool.h>
#include <stdint.h>

#include "cloudfs/block.h"
#include "fs/session_state.h"

struct fs;

/* The name of staging file b of s under the cache's dirty folder. */
void staging_name(const struct session *s, uint64_t b, char name[48]);
bool staging_is_dirty(const struct session *s, uint64_t b);
/* Closes s->fd. */
void staging_close(struct session *s);
void staging_drop(struct session *s, uint64_t b);
int staging_open(struct session *s, uint64_t b);
int staging_grow(struct session *s, uint64_t size);
uint64_t staging_grown_block(struct session *s, uint64_t size);
int staging_fit(struct session *s, uint64_t b);

/* The base blocks: opened under s->lock, fetched with no lock held. */
int staging_base_open(struct session *s, uint64_t b);
bool staging_base_uncached(struct session *s, uint64_t first, uint64_t last,
			   struct cfs_block_id *id, uint32_t *len);
int staging_base_fetch(struct fs *fs, uint64_t ino,
		       const struct cfs_block_id *id, uint32_t len);
int staging_bases_fetch(struct session *s, uint64_t first, uint64_t last);

#endif
