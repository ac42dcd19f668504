/* Wire names of the journal's entry kinds, and devices' targets
 * (cloudfs/proto.h). */
#include <stdio.h>
#include <string.h>

#include "cloudfs/num.h"
#include "cloudfs/proto.h"

static const char *const kind_names[] = {
	[CFS_KIND_DELETED] = "deleted",	  [CFS_KIND_FILE] = "file",
	[CFS_KIND_DIR] = "dir",		  [CFS_KIND_SYMLINK] = "symlink",
	[CFS_KIND_MOUNT] = "mount",	  [CFS_KIND_FIFO] = "fifo",
	[CFS_KIND_SOCKET] = "socket",	  [CFS_KIND_CHARDEV] = "chardev",
	[CFS_KIND_BLOCKDEV] = "blockdev", [CFS_KIND_LINK] = "link",
};

#define N_KINDS (sizeof(kind_names) / sizeof(kind_names[0]))

const char *cfs_kind_name(enum cfs_kind kind)
{
	return (unsigned)kind < N_KINDS ? kind_names[kind] : "?";
}

bool cfs_kind_from_name(const char *name, enum cfs_kind *kind)
{
	for (unsigned i = 0; i < N_KINDS; i++) {
		if (strcmp(kind_names[i], name) == 0) {
			*kind = (enum cfs_kind)i;
			return true;
		}
	}
	return false;
}

bool cfs_kind_is_special(enum cfs_kind kind)
{
	return kind == CFS_KIND_FIFO || kind == CFS_KIND_SOCKET ||
	       kind == CFS_KIND_CHARDEV || kind == CFS_KIND_BLOCKDEV;
}

bool cfs_kind_has_target(enum cfs_kind kind)
{
	return kind == CFS_KIND_SYMLINK || kind == CFS_KIND_CHARDEV ||
	       kind == CFS_KIND_BLOCKDEV;
}

bool cfs_device_parse(const char *s, uint32_t *major, uint32_t *minor)
{
	char part[CFS_DEVICE_TARGET_MAX];
	const char *colon = strchr(s, ':');
	size_t len = colon ? (size_t)(colon - s) : 0;
	int64_t a, b;

	if (!colon || len >= sizeof(part))
		return false;
	memcpy(part, s, len);
	part[len] = '\0';
	if (cfs_num_parse_i64(part, 0, UINT32_MAX, &a) ||
	    cfs_num_parse_i64(colon + 1, 0, UINT32_MAX, &b))
		return false;
	*major = (uint32_t)a;
	*minor = (uint32_t)b;
	return true;
}

void cfs_device_format(char out[CFS_DEVICE_TARGET_MAX], uint32_t major,
		       uint32_t minor)
{
	snprintf(out, CFS_DEVICE_TARGET_MAX, "%u:%u", major, minor);
}

uint64_t cfs_wire_string_bytes(const char *s)
{
	return s ? 6 * (uint64_t)strlen(s) : 0;
}
