/* The protocol's kinds and devices' targets (lib/proto.c). */
#include <string.h>

#include "check.h"
#include "cloudfs/proto.h"

static void test_every_kind_has_a_name_that_maps_back_to_it(void)
{
	for (int k = CFS_KIND_DELETED; k <= CFS_KIND_LINK; k++) {
		enum cfs_kind back = CFS_KIND_DELETED;

		CHECK(strcmp(cfs_kind_name((enum cfs_kind)k), "?") != 0);
		CHECK(cfs_kind_from_name(cfs_kind_name((enum cfs_kind)k),
					 &back) &&
		      (int)back == k);
	}
	CHECK(strcmp(cfs_kind_name((enum cfs_kind)99), "?") == 0);
	CHECK(cfs_kind_is_special(CFS_KIND_FIFO) &&
	      cfs_kind_is_special(CFS_KIND_SOCKET) &&
	      cfs_kind_is_special(CFS_KIND_CHARDEV) &&
	      cfs_kind_is_special(CFS_KIND_BLOCKDEV));
	CHECK(!cfs_kind_is_special(CFS_KIND_FILE) &&
	      !cfs_kind_is_special(CFS_KIND_SYMLINK) &&
	      !cfs_kind_is_special(CFS_KIND_MOUNT));
	CHECK(cfs_kind_has_target(CFS_KIND_SYMLINK) &&
	      cfs_kind_has_target(CFS_KIND_CHARDEV) &&
	      !cfs_kind_has_target(CFS_KIND_FIFO) &&
	      !cfs_kind_has_target(CFS_KIND_FILE));
}

static void test_a_device_target_round_trips_up_to_32_bits_each(void)
{
	char s[CFS_DEVICE_TARGET_MAX];
	uint32_t major = 1, minor = 1;

	cfs_device_format(s, 4294967295u, 4294967295u);
	CHECK(strcmp(s, "4294967295:4294967295") == 0);
	CHECK(cfs_device_parse(s, &major, &minor) && major == 4294967295u &&
	      minor == 4294967295u);
	CHECK(cfs_device_parse("0:0", &major, &minor) && major == 0 &&
	      minor == 0);
	CHECK(cfs_device_parse("8:17", &major, &minor) && major == 8 &&
	      minor == 17);
}

static void test_anything_else_is_no_device(void)
{
	static const char *const bad[] = {
		"",
		":",
		"1",
		"1:",
		":1",
		"1:2:3",
		"-1:2",
		"1:-2",
		" 1:2",
		"1:2 ",
		"1:4294967296",
		"4294967296:1",
		"0x1:2",
		"1.0:2",
		"00000000000000000000001:2",
	};
	uint32_t major = 7, minor = 7;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(!cfs_device_parse(bad[i], &major, &minor));
	CHECK(major == 7 && minor == 7); /* untouched on failure */
}

int main(void)
{
	RUN(test_every_kind_has_a_name_that_maps_back_to_it);
	RUN(test_a_device_target_round_trips_up_to_32_bits_each);
	RUN(test_anything_else_is_no_device);
	return CHECK_DONE();
}
