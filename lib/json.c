/* Typed JSON field access over jansson (cloudfs/json.h). */
#include <inttypes.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloudfs/json.h"

/*
 * What the parse running on this thread may still allocate.  jansson
 * allocates through json_alloc()/json_free() once cfs_json_limit_memory()
 * installed them; outside a limited parse they only pass through.
 */
static _Thread_local struct {
	bool on;
	bool over;
	size_t used, max;
} parse_budget;

static void *json_alloc(size_t n)
{
	void *p;

	if (parse_budget.on && n > parse_budget.max - parse_budget.used) {
		parse_budget.over = true;
		return NULL;
	}
	p = malloc(n);
	if (p && parse_budget.on)
		parse_budget.used += malloc_usable_size(p);
	return p;
}

static void json_free(void *p)
{
	if (p && parse_budget.on) {
		size_t n = malloc_usable_size(p);

		parse_budget.used -=
			n < parse_budget.used ? n : parse_budget.used;
	}
	free(p);
}

void cfs_json_limit_memory(void)
{
	json_set_alloc_funcs(json_alloc, json_free);
}

enum cfs_err cfs_json_parse_object_within(const char *buf, size_t len,
					  size_t max_mem, json_t **out,
					  struct cfs_error *err)
{
	enum cfs_err rc;

	parse_budget.on = true;
	parse_budget.over = false;
	parse_budget.used = 0;
	parse_budget.max = max_mem;
	rc = cfs_json_parse_object(buf, len, out, err);
	parse_budget.on = false;
	if (rc && parse_budget.over)
		return cfs_fail(err, CFS_ERR_TOO_LARGE,
				"body of %zu bytes needs more than %zu MiB of "
				"memory to parse",
				len, max_mem >> 20);
	return rc;
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
