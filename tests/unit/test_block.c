/* Block cutting, SHA-256 and block lists (lib/block.c), compared with
 * coreutils' sha256sum as an independent reference. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "cloudfs/block.h"

#define MiB4 CFS_BLOCK_SIZE

static const uint64_t sizes[] = { 0, 1, MiB4 - 1, MiB4, MiB4 + 1 };

/* Deterministic, not periodic within a block, so a wrong cut shows. */
static uint8_t *pattern(size_t len)
{
	uint8_t *p = malloc(len ? len : 1);
	uint32_t x = 2463534242u;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (uint8_t)x;
	}
	return p;
}

/* The id of len bytes as sha256sum(1) computes it. */
static void reference_id(const uint8_t *data, size_t len, char hex[65])
{
	char path[] = "/tmp/cfs-unit-XXXXXX", cmd[128];
	int fd = mkstemp(path);
	FILE *f;

	CHECK(fd >= 0);
	CHECK(write(fd, data, len) == (ssize_t)len);
	close(fd);
	snprintf(cmd, sizeof(cmd), "sha256sum %s", path);
	f = popen(cmd, "r");
	CHECK(f && fread(hex, 1, 64, f) == 64);
	hex[64] = '\0';
	pclose(f);
	unlink(path);
}

static void test_block_count_and_length_at_the_edges(void)
{
	CHECK(cfs_block_count(0) == 0);
	CHECK(cfs_block_count(1) == 1);
	CHECK(cfs_block_count(MiB4 - 1) == 1);
	CHECK(cfs_block_count(MiB4) == 1);
	CHECK(cfs_block_count(MiB4 + 1) == 2);
	CHECK(cfs_block_len(0, 0) == 0);
	CHECK(cfs_block_len(1, 0) == 1);
	CHECK(cfs_block_len(MiB4, 0) == MiB4);
	CHECK(cfs_block_len(MiB4, 1) == 0);
	CHECK(cfs_block_len(MiB4 + 1, 0) == MiB4);
	CHECK(cfs_block_len(MiB4 + 1, 1) == 1);
}

static void test_sha256_matches_the_published_vectors(void)
{
	struct cfs_block_id id;
	char hex[65];

	CHECK(cfs_sha256("", 0, &id) == 0);
	cfs_block_id_to_hex(&id, hex);
	CHECK(strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca4"
			  "95991b7852b855") == 0);
	CHECK(cfs_sha256("abc", 3, &id) == 0);
	cfs_block_id_to_hex(&id, hex);
	CHECK(strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb4"
			  "10ff61f20015ad") == 0);
}

static void test_cutting_matches_sha256sum_of_each_block(void)
{
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		uint8_t *data = pattern(sizes[s]);
		struct cfs_blocklist bl;

		CHECK(cfs_blocklist_cut(data, sizes[s], &bl) == 0);
		CHECK(bl.n == cfs_block_count(sizes[s]));
		for (size_t i = 0; i < bl.n; i++) {
			char got[65], want[65];

			cfs_block_id_to_hex(&bl.ids[i], got);
			reference_id(data + i * MiB4,
				     cfs_block_len(sizes[s], i), want);
			CHECK(strcmp(got, want) == 0);
		}
		cfs_blocklist_release(&bl);
		free(data);
	}
}

static void test_cutting_a_file_matches_cutting_its_bytes(void)
{
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		uint8_t *data = pattern(sizes[s]);
		struct cfs_blocklist a, b;
		char path[] = "/tmp/cfs-unit-XXXXXX";
		uint64_t size = 12345;
		int fd = mkstemp(path);

		CHECK(write(fd, data, sizes[s]) == (ssize_t)sizes[s]);
		CHECK(cfs_blocklist_cut(data, sizes[s], &a) == 0);
		CHECK(cfs_blocklist_cut_fd(fd, &b, &size) == 0);
		CHECK(size == sizes[s]);
		CHECK(cfs_blocklist_equal(&a, &b));
		cfs_blocklist_release(&a);
		cfs_blocklist_release(&b);
		close(fd);
		unlink(path);
		free(data);
	}
}

static void test_incremental_hash_equals_one_shot_and_resets(void)
{
	uint8_t *data = pattern(MiB4 + 1);
	struct cfs_sha256 *h = cfs_sha256_new();
	struct cfs_block_id one, inc;

	CHECK(h != NULL);
	for (int round = 0; round < 2; round++) {
		for (size_t off = 0; off < MiB4 + 1; off += 65536) {
			size_t n =
				MiB4 + 1 - off < 65536 ? MiB4 + 1 - off : 65536;

			CHECK(cfs_sha256_update(h, data + off, n) == 0);
		}
		CHECK(cfs_sha256_final(h, &inc) == 0);
		CHECK(cfs_sha256(data, MiB4 + 1, &one) == 0);
		CHECK(cfs_block_id_equal(&one, &inc));
	}
	cfs_sha256_free(h);
	free(data);
}

static void test_hex_ids_are_strict(void)
{
	const char *good =
		"2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
	struct cfs_block_id id;
	char hex[65], upper[65];

	CHECK(cfs_block_id_from_hex(good, 64, &id));
	cfs_block_id_to_hex(&id, hex);
	CHECK(strcmp(hex, good) == 0);
	strcpy(upper, good);
	upper[0] = 'C';
	upper[1] = 'F';
	CHECK(!cfs_block_id_from_hex(upper, 64, &id));
	CHECK(!cfs_block_id_from_hex(good, 63, &id));
	CHECK(!cfs_block_id_from_hex("zz", 2, &id));
	strcpy(upper, good);
	upper[10] = 'g';
	CHECK(!cfs_block_id_from_hex(upper, 64, &id));
}

static void test_raw_block_lists_round_trip(void)
{
	uint8_t *data = pattern(2 * MiB4 + 7);
	struct cfs_blocklist a, b;

	CHECK(cfs_blocklist_cut(data, 2 * MiB4 + 7, &a) == 0);
	CHECK(cfs_blocklist_from_raw(a.ids, a.n * CFS_BLOCK_ID_LEN, &b) == 0);
	CHECK(cfs_blocklist_equal(&a, &b));
	cfs_blocklist_release(&b);
	CHECK(cfs_blocklist_from_raw(a.ids, 33, &b) == -EINVAL);
	CHECK(cfs_blocklist_from_raw(NULL, 0, &b) == 0 && b.n == 0);
	cfs_blocklist_release(&a);
	free(data);
}

int main(void)
{
	RUN(test_block_count_and_length_at_the_edges);
	RUN(test_sha256_matches_the_published_vectors);
	RUN(test_cutting_matches_sha256sum_of_each_block);
	RUN(test_cutting_a_file_matches_cutting_its_bytes);
	RUN(test_incremental_hash_equals_one_shot_and_resets);
	RUN(test_hex_ids_are_strict);
	RUN(test_raw_block_lists_round_trip);
	return CHECK_DONE();
}
