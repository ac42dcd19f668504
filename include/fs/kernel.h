/*
 * What the kernel layer (fs/ops*.c, the only code that speaks libfuse)
 * offers the layers below it, in terms that name no FUSE type: telling
 * the kernel to drop what it caches of an entry or an inode, from any
 * thread (fs/invalidate.c).  Each returns 0 or a positive errno: ENOENT
 * when the kernel holds nothing of it, which callers tolerate.  fs->se
 * must be set (the mount made).
 */
#ifndef FS_KERNEL_H
#define FS_KERNEL_H

#include <stdint.h>

struct fs;

/* The kernel forgets name in folder parent (its dentry). */
int ops_inval_entry(struct fs *fs, uint64_t parent, const char *name);

/* The kernel forgets ino's attributes, data pages and listing. */
int ops_inval_inode(struct fs *fs, uint64_t ino);

#endif
