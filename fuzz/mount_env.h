/*
 * A mount for the harnesses of the client (fuzz_listing, fuzz_control):
 * a struct fs as mount.cloudfs prepares it, with a real cache directory
 * (mirror, queue, blocks) in a scratch directory and a fetcher, bound to a
 * server that is never there (http://127.0.0.1:1 refuses at once), and
 * never mounted (no FUSE session: nothing is told to a kernel).
 */
#ifndef FUZZ_MOUNT_ENV_H
#define FUZZ_MOUNT_ENV_H

#include "fs/fs.h"

#define MOUNT_ENV_ROOT_NS 1

/* The mount, made on the first call; its cache is made anew (empty, bound
 * again) every `every` calls so that the mirror stays small. */
struct fs *mount_env_get(unsigned every);

#endif
