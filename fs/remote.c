/* What every remote shares (fs/remote.h): freeing its answers. */
#include <stdlib.h>
#include <string.h>

#include "fs/remote.h"

void remote_ns_free(struct remote_ns *list, size_t n)
{
	for (size_t i = 0; list && i < n; i++) {
		free(list[i].path);
		free(list[i].owner);
	}
	free(list);
}

void remote_page_release(struct remote_page *p)
{
	for (size_t i = 0; p->entries && i < p->n; i++)
		mirror_entry_release(&p->entries[i]);
	free(p->entries);
	memset(p, 0, sizeof(*p));
}

void remote_commit_release(struct remote_commit *out)
{
	free(out->results);
	out->results = NULL;
}

void remote_members_free(struct remote_member *list, size_t n)
{
	for (size_t i = 0; list && i < n; i++)
		free(list[i].user);
	free(list);
}
