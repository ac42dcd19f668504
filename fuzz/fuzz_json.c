/*
 * fuzz_json: the typed JSON field access every request body and every
 * answer goes through (lib/json.c), and block ids in hex (lib/block.c).
 *
 * Feeds: the input as a body to cfs_json_parse_object(); then every
 * getter on each of the object's first fields and on an absent one.
 * Checks: the parse succeeds exactly when jansson (with the same flags)
 * reads an object; each getter agrees with jansson on presence, type and
 * range and returns the value itself (strings with their length, NULs
 * included); a block list is accepted exactly when it is an array of at
 * most max strings of 64 lowercase hex digits, and cfs_json_block_ids()
 * writes it back equal; refusals carry a protocol code and a message.
 * The same body parsed within a memory limit (cfs_json_parse_object_within)
 * gives the same object, or too_large.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cloudfs/json.h"
#include "cloudfs/log.h"
#include "fuzz_util.h"

#define FIELDS_MAX 16

static const struct {
	int64_t min, max;
} ranges[] = {
	{ 0, INT64_MAX }, { 1, 5000 }, { INT64_MIN, INT64_MAX },
	{ 0, 07777 },	  { -1, 0 },
};

static const size_t array_max[] = { 0, 1, 3, 1000 };

static void check_refusal(enum cfs_err rc, const struct cfs_error *err,
			  enum cfs_err a, enum cfs_err b)
{
	FUZZ_CHECK(rc == a || rc == b, "refused with code %s",
		   cfs_err_name(rc));
	FUZZ_CHECK(err->code == rc && err->msg[0],
		   "a refusal without its code and message");
}

static bool absent(json_t *v)
{
	return !v || json_is_null(v);
}

static void check_string(json_t *obj, const char *key, json_t *v)
{
	struct cfs_error err = { 0 };
	const char *s;
	size_t len;
	enum cfs_err rc = cfs_json_string_opt(obj, key, &s, &len, &err);

	if (absent(v) || json_is_string(v)) {
		FUZZ_CHECK(rc == CFS_OK, "'%s': %s", key, err.msg);
		FUZZ_CHECK(absent(v) ? !s && !len
				     : s == json_string_value(v) &&
					       len == json_string_length(v),
			   "'%s' is not the string itself", key);
	} else {
		check_refusal(rc, &err, CFS_ERR_BAD_FIELD, CFS_ERR_BAD_FIELD);
	}
	rc = cfs_json_string(obj, key, &s, &len, &err);
	FUZZ_CHECK((rc == CFS_OK) == json_is_string(v),
		   "required string '%s': %d", key, rc);
}

static void check_int(json_t *obj, const char *key, json_t *v)
{
	for (size_t r = 0; r < sizeof(ranges) / sizeof(ranges[0]); r++) {
		struct cfs_error err = { 0 };
		int64_t min = ranges[r].min, max = ranges[r].max, out = 7;
		enum cfs_err rc =
			cfs_json_int_opt(obj, key, min, max, 42, &out, &err);
		bool in = json_is_integer(v) && json_integer_value(v) >= min &&
			  json_integer_value(v) <= max;

		if (absent(v)) {
			FUZZ_CHECK(rc == CFS_OK && out == 42,
				   "absent '%s' is not the default", key);
		} else if (in) {
			FUZZ_CHECK(rc == CFS_OK && out == json_integer_value(v),
				   "'%s' is %" PRId64, key, out);
		} else {
			check_refusal(rc, &err, CFS_ERR_BAD_FIELD,
				      CFS_ERR_BAD_FIELD);
		}
		rc = cfs_json_int(obj, key, min, max, &out, &err);
		FUZZ_CHECK((rc == CFS_OK) == in, "required int '%s': %d", key,
			   rc);
	}
}

static void check_bool(json_t *obj, const char *key, json_t *v)
{
	struct cfs_error err = { 0 };
	bool out = false;
	enum cfs_err rc = cfs_json_bool_opt(obj, key, true, &out, &err);

	if (absent(v))
		FUZZ_CHECK(rc == CFS_OK && out, "absent '%s' is not true", key);
	else if (json_is_boolean(v))
		FUZZ_CHECK(rc == CFS_OK && out == json_is_true(v),
			   "'%s' is not its value", key);
	else
		check_refusal(rc, &err, CFS_ERR_BAD_FIELD, CFS_ERR_BAD_FIELD);
}

static bool block_hex(json_t *v)
{
	const char *s = json_string_value(v);

	if (!s || json_string_length(v) != CFS_BLOCK_ID_HEX_LEN)
		return false;
	for (size_t i = 0; i < CFS_BLOCK_ID_HEX_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

static void check_arrays(json_t *obj, const char *key, json_t *v)
{
	for (size_t m = 0; m < sizeof(array_max) / sizeof(array_max[0]); m++) {
		struct cfs_error err = { 0 };
		struct cfs_blocklist bl = { 0 };
		size_t max = array_max[m], i;
		json_t *arr = NULL, *e, *back;
		bool fits = json_is_array(v) && json_array_size(v) <= max;
		bool ids = fits;
		enum cfs_err rc = cfs_json_array(obj, key, max, &arr, &err);

		FUZZ_CHECK((rc == CFS_OK) == fits && (!fits || arr == v),
			   "array '%s' (max %zu): %d", key, max, rc);
		if (rc)
			check_refusal(rc, &err, CFS_ERR_BAD_FIELD,
				      CFS_ERR_TOO_LARGE);
		json_array_foreach(fits ? v : NULL, i, e) ids &= block_hex(e);
		rc = cfs_json_blocklist(obj, key, max, &bl, &err);
		FUZZ_CHECK((rc == CFS_OK) == ids,
			   "block list '%s' (max %zu): %d", key, max, rc);
		if (rc) {
			FUZZ_CHECK(!bl.ids && !bl.n,
				   "a refused list holds ids");
			check_refusal(rc, &err,
				      fits ? CFS_ERR_BAD_BLOCK
					   : CFS_ERR_BAD_FIELD,
				      CFS_ERR_TOO_LARGE);
			continue;
		}
		FUZZ_CHECK(bl.n == json_array_size(v), "%zu ids of %zu", bl.n,
			   json_array_size(v));
		back = cfs_json_block_ids(bl.ids, bl.n);
		FUZZ_CHECK(back && json_equal(back, v),
			   "block list '%s' is not written back as it came",
			   key);
		json_decref(back);
		cfs_blocklist_release(&bl);
	}
}

static void check_field(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	check_string(obj, key, v);
	check_int(obj, key, v);
	check_bool(obj, key, v);
	check_arrays(obj, key, v);
}

/* The body parsed again within a limit of a few times its size. */
static void check_within(const uint8_t *data, size_t size, enum cfs_err rc,
			 json_t *obj)
{
	struct cfs_error err = { 0 };
	/* The first byte moves the limit, so that parses stop anywhere. */
	size_t max = 4 * size + (size ? (size_t)(data[0] & 0x3f) * 64 : 0);
	json_t *got = NULL;
	enum cfs_err within;

	within = cfs_json_parse_object_within((const char *)data, size, max,
					      &got, &err);
	if (within == CFS_ERR_TOO_LARGE) {
		FUZZ_CHECK(!got && err.msg[0], "too_large with an object");
		return;
	}
	FUZZ_CHECK(within == rc, "within a limit says %s, without %s",
		   cfs_err_name(within), cfs_err_name(rc));
	FUZZ_CHECK(rc || json_equal(got, obj),
		   "within a limit the object differs");
	json_decref(got);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	cfs_log_init("fuzz_json", CFS_LOG_ERROR);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cfs_error err = { 0 };
	json_t *obj = NULL, *ref, *v;
	const char *key;
	enum cfs_err rc;
	size_t n = 0;

	rc = cfs_json_parse_object((const char *)data, size, &obj, &err);
	ref = json_loadb((const char *)data, size,
			 JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
	FUZZ_CHECK((rc == CFS_OK) == json_is_object(ref),
		   "parse says %d, jansson reads %s", rc,
		   ref ? "something else" : "nothing");
	json_decref(ref);
	check_within(data, size, rc, obj);
	if (rc) {
		check_refusal(rc, &err, CFS_ERR_BAD_JSON, CFS_ERR_BAD_JSON);
		FUZZ_CHECK(!obj, "a refused body gives an object");
		return 0;
	}
	json_object_foreach(obj, key, v)
	{
		if (n++ == FIELDS_MAX)
			break;
		check_field(obj, key);
	}
	check_field(obj, "\x01missing");
	json_decref(obj);
	return 0;
}
