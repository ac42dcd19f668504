/*
 * The platform layer on POSIX alone (include/cloudfs/platform.h): what a
 * port to a BSD starts from, and what CI builds on Linux too
 * (-Dplatform=generic), so that the portable core cannot come to depend
 * on Linux unnoticed.  The calls are posix.c's; this file holds the
 * choices for a system it knows nothing more of.  Where POSIX has no call
 * for a thing this file does without it, or says so; never by guessing
 * another kernel's constants.
 */
#include "cloudfs/platform.h"

#include <errno.h>

const char platform_mount_table[] = "no list of mounts";
#ifdef ENOATTR
const int platform_no_xattr = ENOATTR; /* the BSDs */
#else
const int platform_no_xattr = ENODATA;
#endif

int platform_rename_flags(unsigned flags, bool *noreplace)
{
	*noreplace = false;
	return flags ? EINVAL : 0;
}
