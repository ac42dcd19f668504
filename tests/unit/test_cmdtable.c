/* Command tables (lib/cmdtable.c): a name finds its own entry, in tables
 * whose entries are of any size, and nothing else. */
#include <stdint.h>

#include "check.h"
#include "cloudfs/cmdtable.h"

struct small {
	const char *name;
};

/* Larger than a pointer, and of an odd size, so that the stride counts. */
struct large {
	const char *name;
	char pad[37];
	int id;
};

static const struct small smalls[] = { { "a" }, { "ab" }, { "b" } };
static const struct large larges[] = {
	{ .name = "share", .id = 1 },
	{ .name = "unshare", .id = 2 },
	{ .name = "leave", .id = 3 },
	{ .name = "shares", .id = 4 },
};

static void test_each_name_finds_its_own_entry(void)
{
	for (size_t i = 0; i < sizeof(smalls) / sizeof(smalls[0]); i++)
		CHECK(CFS_CMDTABLE_FIND(smalls, smalls[i].name) == &smalls[i]);
	for (size_t i = 0; i < sizeof(larges) / sizeof(larges[0]); i++) {
		const struct large *e =
			CFS_CMDTABLE_FIND(larges, larges[i].name);

		CHECK(e == &larges[i] && e->id == (int)i + 1);
	}
}

static void test_only_the_whole_name_matches(void)
{
	CHECK(CFS_CMDTABLE_FIND(larges, "shar") == NULL);
	CHECK(CFS_CMDTABLE_FIND(larges, "sharess") == NULL);
	CHECK(CFS_CMDTABLE_FIND(larges, "SHARE") == NULL);
	CHECK(CFS_CMDTABLE_FIND(larges, "") == NULL);
	CHECK(CFS_CMDTABLE_FIND(larges, NULL) == NULL);
	CHECK(cfs_cmdtable_find(larges, 0, sizeof(larges[0]), "share") == NULL);
}

int main(void)
{
	RUN(test_each_name_finds_its_own_entry);
	RUN(test_only_the_whole_name_matches);
	return CHECK_DONE();
}
