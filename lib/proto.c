/* Wire names of the journal's entry kinds (cloudfs/proto.h). */
#include <string.h>

#include "cloudfs/proto.h"

static const char *const kind_names[] = {
	[CFS_KIND_DELETED] = "deleted", [CFS_KIND_FILE] = "file",
	[CFS_KIND_DIR] = "dir",		[CFS_KIND_SYMLINK] = "symlink",
	[CFS_KIND_MOUNT] = "mount",
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

uint64_t cfs_wire_string_bytes(const char *s)
{
	return s ? 6 * (uint64_t)strlen(s) : 0;
}
