/* Typed JSON field access over jansson (cloudfs/json.h). */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloudfs/json.h"

/*
 * About what jansson allocates for buf: every value (one more than the
 * characters that open or separate values outside strings) takes up to
 * about 128 bytes, and the text is copied.  A scan, not a parse: jansson
 * still decides what the body is.  (Failing jansson's allocations instead
 * would be exact, but its lexer asserts when one fails halfway.)
 */
static size_t parse_cost(const char *buf, size_t len)
{
	size_t values = 1;
	bool in_string = false;

	for (size_t i = 0; i < len; i++) {
		char c = buf[i];

		if (in_string) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_string = false;
		} else if (c == '"') {
			in_string = true;
		} else if (c == '[' || c == '{' || c == ',' || c == ':') {
			values++;
		}
	}
	return values * 128 + len;
}

enum cfs_err cfs_json_parse_object_within(const char *buf, size_t len,
					  size_t max_mem, json_t **out,
					  struct cfs_error *err)
{
	size_t cost = parse_cost(buf, len);

	*out = NULL;
	if (cost > max_mem)
		return cfs_fail(err, CFS_ERR_TOO_LARGE,
				"body of %zu bytes holds too many values: "
				"about %zu MiB to parse, over the %zu MiB "
				"limit",
				len, cost >> 20, max_mem >> 20);
	return cfs_json_parse_object(buf, len, out, err);
}

enum cfs_err cfs_json_parse_object(const char *buf, size_t len, json_t **out,
				   struct cfs_error *err)
{
	json_error_t jerr;
	json_t *root;

	*out = NULL;
	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
			  &jerr);
	if (!root)
		return cfs_fail(
			err, CFS_ERR_BAD_JSON,
			"body is not valid JSON: %s at line %d, column %d",
			jerr.text, jerr.line, jerr.column);
	if (!json_is_object(root)) {
		json_decref(root);
		return cfs_fail(err, CFS_ERR_BAD_JSON,
				"body must be a JSON object");
	}
	*out = root;
	return CFS_OK;
}

enum cfs_err cfs_json_string_opt(json_t *obj, const char *key, const char **s,
				 size_t *len, struct cfs_error *err)
{
	json_t *v = json_object_get(obj, key);

	*s = NULL;
	*len = 0;
	if (!v || json_is_null(v))
		return CFS_OK;
	if (!json_is_string(v))
		return cfs_fail(err, CFS_ERR_BAD_FIELD,
				"field '%s' must be a string", key);
	*s = json_string_value(v);
	*len = json_string_length(v);
	return CFS_OK;
}

enum cfs_err cfs_json_string(json_t *obj, const char *key, const char **s,
			     size_t *len, struct cfs_error *err)
{
	enum cfs_err rc = cfs_json_string_opt(obj, key, s, len, err);

	if (rc == CFS_OK && !*s)
		return cfs_fail(err, CFS_ERR_BAD_FIELD, "field '%s' is missing",
				key);
	return rc;
}

enum cfs_err cfs_json_int_opt(json_t *obj, const char *key, int64_t min,
			      int64_t max, int64_t def, int64_t *out,
			      struct cfs_error *err)
{
	json_t *v = json_object_get(obj, key);
	json_int_t n;

	*out = def;
	if (!v || json_is_null(v))
		return CFS_OK;
	if (!json_is_integer(v))
		return cfs_fail(err, CFS_ERR_BAD_FIELD,
				"field '%s' must be an integer", key);
	n = json_integer_value(v);
	if (n < min || n > max)
		return cfs_fail(err, CFS_ERR_BAD_FIELD,
				"field '%s' must be from %" PRId64
				" to %" PRId64 ", not %lld",
				key, min, max, (long long)n);
	*out = n;
	return CFS_OK;
}

enum cfs_err cfs_json_int(json_t *obj, const char *key, int64_t min,
			  int64_t max, int64_t *out, struct cfs_error *err)
{
	json_t *v = json_object_get(obj, key);

	if (!v || json_is_null(v))
		return cfs_fail(err, CFS_ERR_BAD_FIELD, "field '%s' is missing",
				key);
	return cfs_json_int_opt(obj, key, min, max, 0, out, err);
}

enum cfs_err cfs_json_bool_opt(json_t *obj, const char *key, bool def,
			       bool *out, struct cfs_error *err)
{
	json_t *v = json_object_get(obj, key);

	*out = def;
	if (!v || json_is_null(v))
		return CFS_OK;
	if (!json_is_boolean(v))
		return cfs_fail(err, CFS_ERR_BAD_FIELD,
				"field '%s' must be true or false", key);
	*out = json_is_true(v);
	return CFS_OK;
}

enum cfs_err cfs_json_array(json_t *obj, const char *key, size_t max,
			    json_t **out, struct cfs_error *err)
{
	json_t *v = json_object_get(obj, key);

	*out = NULL;
	if (!v || json_is_null(v))
		return cfs_fail(err, CFS_ERR_BAD_FIELD, "field '%s' is missing",
				key);
	if (!json_is_array(v))
		return cfs_fail(err, CFS_ERR_BAD_FIELD,
				"field '%s' must be an array", key);
	if (json_array_size(v) > max)
		return cfs_fail(
			err, CFS_ERR_TOO_LARGE,
			"field '%s' has %zu elements (the limit is %zu)", key,
			json_array_size(v), max);
	*out = v;
	return CFS_OK;
}

enum cfs_err cfs_json_blocklist(json_t *obj, const char *key, size_t max,
				struct cfs_blocklist *bl, struct cfs_error *err)
{
	json_t *arr, *v;
	enum cfs_err rc;
	size_t i;

	bl->n = 0;
	bl->ids = NULL;
	rc = cfs_json_array(obj, key, max, &arr, err);
	if (rc)
		return rc;
	if (json_array_size(arr) == 0)
		return CFS_OK;
	bl->ids = calloc(json_array_size(arr), sizeof(bl->ids[0]));
	if (!bl->ids)
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	json_array_foreach(arr, i, v)
	{
		if (!json_is_string(v) ||
		    !cfs_block_id_from_hex(json_string_value(v),
					   json_string_length(v),
					   &bl->ids[i])) {
			cfs_blocklist_release(bl);
			return cfs_fail(
				err, CFS_ERR_BAD_BLOCK,
				"element %zu of field '%s' is not a block id (64 lowercase hex digits)",
				i, key);
		}
	}
	bl->n = json_array_size(arr);
	return CFS_OK;
}

json_t *cfs_json_block_ids(const struct cfs_block_id *ids, size_t n)
{
	json_t *arr = json_array();
	char hex[CFS_BLOCK_ID_HEX_LEN + 1];

	for (size_t i = 0; arr && i < n; i++) {
		cfs_block_id_to_hex(&ids[i], hex);
		if (json_array_append_new(arr, json_string(hex))) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}
