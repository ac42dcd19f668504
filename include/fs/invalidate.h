/*
 * Telling the kernel what to drop of what it caches of the tree (entries,
 * attributes, file data, folder listings) when the mirror changed other
 * than through it: a listing applied, an answer of the server settled, a
 * conflicted copy made.
 *
 * Folder listings: opendir asks the kernel to keep what readdir answers,
 * so that a walk of a tree it has listed (find, ls -R, make) costs no
 * round trip.  The kernel lists a folder again when told to drop its
 * pages, and, at the start of a listing, when the folder's mtime or its
 * own change counter moved.  Dropping alone leaves a window: a readdir
 * answered from the mirror just before a change can reach the kernel's
 * cache just after the drop.  So a folder the kernel may have listed gets
 * a later mtime in the mirror (as POSIX has it: its entries changed)
 * before the kernel is told; the kernel refreshes the folder's attributes
 * before it trusts its listing, and finds the listing older than the
 * folder.
 */
#ifndef FS_INVALIDATE_H
#define FS_INVALIDATE_H

#include <stdbool.h>
#include <stdint.h>

#include "cache/mirror.h"

struct fs;

/* The folders the kernel may hold a listing of: those it opened. */
struct listed_dirs;

struct listed_dirs *listed_dirs_new(void);
void listed_dirs_free(struct listed_dirs *l);
/* Notes that the kernel opened folder ino (l may be NULL: nothing). */
void listed_dirs_add(struct listed_dirs *l, uint64_t ino);
bool listed_dirs_has(struct listed_dirs *l, uint64_t ino);

/* Tells the kernel to drop what a change of the mirror made stale, and
 * open handles of changed files to reload. */
void fs_invalidate(struct fs *fs, const struct mirror_changes *ch);

/* The same for one entry, name in folder parent, that changed. */
void fs_invalidate_child(struct fs *fs, uint64_t parent, const char *name);

#endif
