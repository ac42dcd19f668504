/* Typed JSON fields, errors and buffers (lib/json.c, lib/error.c,
 * lib/buf.c). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cloudfs/buf.h"
#include "cloudfs/json.h"

static json_t *parse(const char *text)
{
	struct cfs_error err;
	json_t *o = NULL;

	CHECK(cfs_json_parse_object(text, strlen(text), &o, &err) == CFS_OK);
	return o;
}

static void test_only_json_objects_parse(void)
{
	struct cfs_error err;
	json_t *o;

	CHECK(cfs_json_parse_object("[1]", 3, &o, &err) == CFS_ERR_BAD_JSON);
	CHECK(o == NULL);
	CHECK(cfs_json_parse_object("{\"a\":", 5, &o, &err) ==
	      CFS_ERR_BAD_JSON);
	CHECK(strstr(err.msg, "line 1") != NULL);
	CHECK(cfs_json_parse_object("{\"a\":1,\"a\":2}", 13, &o, &err) ==
	      CFS_ERR_BAD_JSON);
}

static void test_getters_check_presence_type_and_range(void)
{
	json_t *o = parse("{\"s\":\"x\\u0000y\",\"i\":7,\"f\":7.0,\"b\":true,"
			  "\"n\":null,\"a\":[1,2,3]}");
	struct cfs_error err;
	const char *s;
	size_t len;
	int64_t i;
	bool b;
	json_t *a;

	CHECK(cfs_json_string(o, "s", &s, &len, &err) == CFS_OK && len == 3);
	CHECK(cfs_json_string(o, "i", &s, &len, &err) == CFS_ERR_BAD_FIELD);
	CHECK(strstr(err.msg, "'i'") != NULL);
	CHECK(cfs_json_string(o, "nope", &s, &len, &err) == CFS_ERR_BAD_FIELD);
	CHECK(strstr(err.msg, "missing") != NULL);
	CHECK(cfs_json_string_opt(o, "n", &s, &len, &err) == CFS_OK && !s);
	CHECK(cfs_json_int(o, "i", 0, 10, &i, &err) == CFS_OK && i == 7);
	CHECK(cfs_json_int(o, "i", 8, 10, &i, &err) == CFS_ERR_BAD_FIELD);
	CHECK(cfs_json_int(o, "f", 0, 10, &i, &err) == CFS_ERR_BAD_FIELD);
	CHECK(cfs_json_int(o, "n", 0, 10, &i, &err) == CFS_ERR_BAD_FIELD);
	CHECK(cfs_json_int_opt(o, "nope", 0, 10, 3, &i, &err) == CFS_OK &&
	      i == 3);
	CHECK(cfs_json_bool_opt(o, "b", false, &b, &err) == CFS_OK && b);
	CHECK(cfs_json_bool_opt(o, "i", false, &b, &err) == CFS_ERR_BAD_FIELD);
	CHECK(cfs_json_array(o, "a", 3, &a, &err) == CFS_OK);
	CHECK(cfs_json_array(o, "a", 2, &a, &err) == CFS_ERR_TOO_LARGE);
	CHECK(cfs_json_array(o, "s", 2, &a, &err) == CFS_ERR_BAD_FIELD);
	json_decref(o);
}

static void test_block_lists_parse_and_print_back(void)
{
	json_t *o = parse("{\"ok\":[\"2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5"
			  "c1fa7425e73043362938b9824\"],\"bad\":[\"2CF2\"]}");
	struct cfs_blocklist bl;
	struct cfs_error err;
	json_t *back;

	CHECK(cfs_json_blocklist(o, "ok", 10, &bl, &err) == CFS_OK);
	CHECK(bl.n == 1);
	back = cfs_json_block_ids(bl.ids, bl.n);
	CHECK(json_equal(back, json_object_get(o, "ok")));
	json_decref(back);
	cfs_blocklist_release(&bl);
	CHECK(cfs_json_blocklist(o, "bad", 10, &bl, &err) == CFS_ERR_BAD_BLOCK);
	CHECK(bl.n == 0 && bl.ids == NULL);
	CHECK(strstr(err.msg, "element 0 of field 'bad'") != NULL);
	json_decref(o);
}

static void test_error_names_round_trip_and_map_to_statuses(void)
{
	struct cfs_error err;

	for (int i = 0; i < CFS_ERR__COUNT; i++)
		CHECK((int)cfs_err_from_name(cfs_err_name((enum cfs_err)i)) ==
		      i);
	CHECK(cfs_err_http_status(CFS_ERR_NOT_FOUND) == 404);
	CHECK(cfs_err_http_status(CFS_ERR_CONFLICT) == 409);
	CHECK(cfs_err_http_status(CFS_ERR_TOO_LARGE) == 413);
	CHECK(cfs_err_http_status(CFS_ERR_STORAGE_FULL) == 507);
	CHECK(cfs_err_errno(CFS_ERR_CROSS_NS) == EXDEV);
	CHECK(cfs_err_from_name("no_such_code") == CFS_ERR_INTERNAL);
	CHECK(cfs_fail(&err, CFS_ERR_EXISTS, "'%s' exists", "a") ==
	      CFS_ERR_EXISTS);
	cfs_error_prefix(&err, "op %d", 3);
	CHECK(strcmp(err.msg, "op 3: 'a' exists") == 0);
}

static void test_buffers_refuse_to_grow_past_their_cap(void)
{
	struct cfs_buf b;

	cfs_buf_init(&b, 10);
	CHECK(cfs_buf_append(&b, "hello", 5) == 0);
	CHECK(cfs_buf_append(&b, "world", 5) == 0);
	CHECK(strcmp(b.data, "helloworld") == 0);
	CHECK(cfs_buf_append(&b, "!", 1) == -EFBIG);
	CHECK(b.len == 10);
	cfs_buf_release(&b);
	CHECK(b.data == NULL && b.len == 0);
}

/* A body of n copies of piece between head and tail. */
static char *repeat(const char *head, const char *piece, size_t n,
		    const char *tail, size_t *len)
{
	size_t hl = strlen(head), pl = strlen(piece), tl = strlen(tail);
	char *s = malloc(hl + n * pl + tl + 1);

	CHECK(s != NULL);
	memcpy(s, head, hl);
	for (size_t i = 0; i < n; i++)
		memcpy(s + hl + i * pl, piece, pl);
	memcpy(s + hl + n * pl, tail, tl + 1);
	*len = hl + n * pl + tl;
	return s;
}

static void test_a_parse_within_a_limit_refuses_bodies_of_many_values(void)
{
	const size_t max = 32u << 20;
	struct cfs_error err;
	json_t *o = NULL;
	size_t len;
	char *ids, *arrays, *text;

	/* The largest honest body: 65,536 block ids (a 256 GiB file). */
	ids = repeat("{\"blocks\":[",
		     "\"2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5"
		     "c1fa7425e73043362938b9824\",",
		     65535,
		     "\"2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e7304336"
		     "2938b9824\"]}",
		     &len);
	CHECK(cfs_json_parse_object_within(ids, len, max, &o, &err) == CFS_OK);
	CHECK(json_array_size(json_object_get(o, "blocks")) == 65536);
	json_decref(o);
	/* A mebibyte of empty arrays would take about 35 MiB. */
	arrays = repeat("{\"x\":[", "[],", 349525, "[]]}", &len);
	CHECK(cfs_json_parse_object_within(arrays, len, max, &o, &err) ==
	      CFS_ERR_TOO_LARGE);
	CHECK(o == NULL && strstr(err.msg, "too many values") != NULL);
	/* Brackets inside a string are text, not values. */
	text = repeat("{\"x\":\"", "[],", 349525, "\\\"\"}", &len);
	CHECK(cfs_json_parse_object_within(text, len, max, &o, &err) == CFS_OK);
	json_decref(o);
	free(ids);
	free(arrays);
	free(text);
}

int main(void)
{
	RUN(test_only_json_objects_parse);
	RUN(test_getters_check_presence_type_and_range);
	RUN(test_block_lists_parse_and_print_back);
	RUN(test_error_names_round_trip_and_map_to_statuses);
	RUN(test_buffers_refuse_to_grow_past_their_cap);
	RUN(test_a_parse_within_a_limit_refuses_bodies_of_many_values);
	return CHECK_DONE();
}
