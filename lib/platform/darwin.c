/*
 * The platform layer on macOS, under macFUSE's or FUSE-T's libfuse3 API
 * (include/cloudfs/platform.h).  The calls are posix.c's; this file holds
 * what macOS says its own way: the error of a missing extended attribute
 * and the flags of a rename.  It calls nothing outside POSIX, so it
 * compiles on Linux too, where -Dplatform=darwin builds it with the
 * fallbacks below and the unit tests run on it; it has not been compiled
 * against Darwin's headers nor run on macOS (README, "macOS").
 */
#include "cloudfs/platform.h"

#include <errno.h>
#include <stdio.h> /* RENAME_EXCL, RENAME_SWAP: renamex_np(2) on macOS */

/* Mounts are listed by getmntinfo(3) there, which POSIX does not have:
 * callers say that the mounts cannot be listed. */
const char platform_mount_table[] = "getmntinfo (not read by this build)";

#ifndef ENOATTR
#define ENOATTR ENODATA /* a Linux host building this file for its tests */
#endif
const int platform_no_xattr = ENOATTR;

/* macFUSE hands the FUSE handler renamex_np(2)'s flags: RENAME_EXCL is
 * "fail if the target exists"; RENAME_SWAP, an exchange, is refused as
 * Linux's RENAME_EXCHANGE is. */
int platform_rename_flags(unsigned flags, bool *noreplace)
{
	unsigned excl = 0;

#ifdef RENAME_EXCL
	excl = RENAME_EXCL;
#endif
	*noreplace = excl && (flags & excl);
	return flags & ~excl ? EINVAL : 0;
}
