/*
 * Typed access to JSON request and response fields, over jansson.
 *
 * Each getter checks presence, type and range, and on failure fills a
 * struct cfs_error whose message names the field ("field 'cursor' must be
 * an integer from 0 to 9223372036854775807").  Callers that read nested
 * objects add context with cfs_error_prefix().
 */
#ifndef CLOUDFS_JSON_H
#define CLOUDFS_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "cloudfs/block.h"
#include "cloudfs/error.h"

/* Parses len bytes into a JSON object (*out, owned by the caller). */
enum cfs_err cfs_json_parse_object(const char *buf, size_t len, json_t **out,
				   struct cfs_error *err);

/*
 * Like cfs_json_parse_object, but refuses (CFS_ERR_TOO_LARGE) a body whose
 * values would take more than about max_mem bytes once parsed: a small
 * body of nested empty arrays takes thirty-five times its size in memory.
 */
enum cfs_err cfs_json_parse_object_within(const char *buf, size_t len,
					  size_t max_mem, json_t **out,
					  struct cfs_error *err);

/* A required string; *s and *len stay valid while obj lives. */
enum cfs_err cfs_json_string(json_t *obj, const char *key, const char **s,
			     size_t *len, struct cfs_error *err);

/* An optional string; *s is NULL when the field is absent or null. */
enum cfs_err cfs_json_string_opt(json_t *obj, const char *key, const char **s,
				 size_t *len, struct cfs_error *err);

/* A required integer within [min, max]. */
enum cfs_err cfs_json_int(json_t *obj, const char *key, int64_t min,
			  int64_t max, int64_t *out, struct cfs_error *err);

/* An optional integer within [min, max]; *out = def when absent or null. */
enum cfs_err cfs_json_int_opt(json_t *obj, const char *key, int64_t min,
			      int64_t max, int64_t def, int64_t *out,
			      struct cfs_error *err);

/* An optional boolean; *out = def when absent or null. */
enum cfs_err cfs_json_bool_opt(json_t *obj, const char *key, bool def,
			       bool *out, struct cfs_error *err);

/* A required array of at most max elements (CFS_ERR_TOO_LARGE beyond). */
enum cfs_err cfs_json_array(json_t *obj, const char *key, size_t max,
			    json_t **out, struct cfs_error *err);

/* A required array of block ids as hex strings, at most max of them;
 * CFS_ERR_BAD_BLOCK for an element that is not one. */
enum cfs_err cfs_json_blocklist(json_t *obj, const char *key, size_t max,
				struct cfs_blocklist *bl,
				struct cfs_error *err);

/* A new JSON array of the hex ids of n blocks; NULL when out of memory. */
json_t *cfs_json_block_ids(const struct cfs_block_id *ids, size_t n);

#endif
