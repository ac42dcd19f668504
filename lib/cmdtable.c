/* Command tables (cloudfs/cmdtable.h). */
#include <string.h>

#include "cloudfs/cmdtable.h"

const void *cfs_cmdtable_find(const void *table, size_t n, size_t size,
			      const char *name)
{
	const char *entry = table;

	for (size_t i = 0; name && i < n; i++, entry += size) {
		/* The first member of a struct is at its address (C17
		 * 6.7.2.1): the entry's name. */
		const char *const *entry_name = (const char *const *)entry;

		if (strcmp(*entry_name, name) == 0)
			return entry;
	}
	return NULL;
}
