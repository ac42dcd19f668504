/* cloudfs cache SUBCOMMAND (include/cli/cli.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/inspect.h"
#include "cache/mirror.h"
#include "cache/upkeep.h"
#include "cli/cli.h"
#include "cloudfs/size.h"

/* The cache of t, opened for use; NULL after printing why. */
static struct cache *open_cache(const struct cli_target *t, enum cache_use use)
{
	struct cache *c = NULL;
	struct cfs_error err;

	if (cache_open_as(t->cache_dir, use, &c, &err)) {
		cli_error("%s", err.msg);
		return NULL;
	}
	return c;
}

/* The inode of path ("" or NULL: the root) in the mirror, by its names. */
static bool mirror_ino(struct cfs_sql *db, const char *path, uint64_t *ino)
{
	struct mirror_entry dir, e;
	struct cfs_error err;
	char *copy = strdup(path ? path : ""), *save = NULL, *name;
	enum cfs_err rc = copy ? mirror_get(db, MIRROR_ROOT_INO, &dir, &err)
			       : CFS_ERR_INTERNAL;

	for (name = copy ? strtok_r(copy, "/", &save) : NULL;
	     rc == CFS_OK && name; name = strtok_r(NULL, "/", &save)) {
		rc = mirror_lookup(db, &dir, name, &e, &err);
		mirror_entry_release(&dir);
		if (rc == CFS_OK)
			dir = e;
	}
	if (rc == CFS_OK) {
		*ino = dir.ino;
		mirror_entry_release(&dir);
	} else {
		cli_error("no '%s' in the cache's tree", path);
	}
	free(copy);
	return rc == CFS_OK;
}

static int cmd_stat(const struct cli_opts *opts, const struct cli_target *t)
{
	struct cache *c = open_cache(t, CACHE_LOOK);
	struct cfs_sql *db;
	struct cache_usage u;
	struct cfs_error err;
	json_t *o, *st = NULL;
	char used[32], limit[32], pinned[32], dirty[32], pending[32];
	enum cfs_err rc;

	if (!c)
		return CLI_FAILED;
	db = cache_db(c, &err);
	rc = db ? cache_usage(c, db, &u, &err) : err.code;
	if (rc == CFS_OK)
		rc = cache_file_usage(db, &u, &err);
	if (db)
		cache_db_release(c, db);
	cache_close(c);
	if (rc) {
		cli_error("%s", err.msg);
		return CLI_FAILED;
	}
	if (t->live)
		st = cli_ask(t, json_pack("{s:s, s:b}", "cmd", "status",
					  "server", 0));
	o = json_pack("{s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I,"
		      " s:I, s:I, s:I}",
		      "cache", t->cache_dir, "mounted", t->live, "bytes",
		      (json_int_t)u.bytes, "limit", (json_int_t)u.limit,
		      "blocks", (json_int_t)u.blocks, "files",
		      (json_int_t)u.files, "files_cached",
		      (json_int_t)u.files_cached, "files_partial",
		      (json_int_t)u.files_partial, "pinned_bytes",
		      (json_int_t)u.pinned_bytes, "dirty_bytes",
		      (json_int_t)u.dirty_bytes, "pending_ops",
		      (json_int_t)u.pending_ops, "pending_bytes",
		      (json_int_t)u.pending_bytes, "conflicts",
		      (json_int_t)u.conflicts);
	if (st) {
		json_int_t hits =
			json_integer_value(json_object_get(st, "hits"));
		json_int_t misses =
			json_integer_value(json_object_get(st, "misses"));

		json_object_set_new(o, "hits", json_integer(hits));
		json_object_set_new(o, "misses", json_integer(misses));
		json_object_set_new(o, "hit_ratio",
				    hits + misses
					    ? json_real((double)hits /
							(double)(hits + misses))
					    : json_null());
		json_decref(st);
	}
	if (opts->json) {
		cli_print_json(o);
		return CLI_OK;
	}
	cfs_size_format(u.bytes, used, sizeof(used));
	cfs_size_format(u.limit, limit, sizeof(limit));
	cfs_size_format(u.pinned_bytes, pinned, sizeof(pinned));
	cfs_size_format(u.dirty_bytes, dirty, sizeof(dirty));
	cfs_size_format(u.pending_bytes, pending, sizeof(pending));
	printf("cache '%s' (%s)\n", t->cache_dir,
	       t->live ? "mounted" : "not mounted");
	printf("  used: %s of %s in %llu blocks\n", used,
	       u.limit ? limit : "no limit", (unsigned long long)u.blocks);
	printf("  files: %llu, %llu cached, %llu partly, %llu online only\n",
	       (unsigned long long)u.files, (unsigned long long)u.files_cached,
	       (unsigned long long)u.files_partial,
	       (unsigned long long)(u.files - u.files_cached -
				    u.files_partial));
	printf("  pinned: %s; being written: %s; to send: %llu changes (files of %s)\n",
	       pinned, dirty, (unsigned long long)u.pending_ops, pending);
	if (json_is_real(json_object_get(o, "hit_ratio")))
		printf("  hit ratio since mount: %.0f%% of %lld block reads\n",
		       100 * json_real_value(json_object_get(o, "hit_ratio")),
		       (long long)(json_integer_value(
					   json_object_get(o, "hits")) +
				   json_integer_value(
					   json_object_get(o, "misses"))));
	json_decref(o);
	return CLI_OK;
}

/* Whether ino is in the JSON array of inodes uploading. */
static bool in(json_t *uploading, uint64_t ino)
{
	json_t *v;
	size_t i;

	json_array_foreach(uploading, i, v)
	{
		if ((uint64_t)json_integer_value(v) == ino)
			return true;
	}
	return false;
}

/* One entry of ls, as JSON; uploading: the inodes a live mount sends. */
static json_t *entry_json(struct cfs_sql *db, const struct mirror_entry *e,
			  json_t *uploading)
{
	static const char *const kinds[] = { "deleted", "file", "dir",
					     "symlink", "shared" };
	struct cache_entry_state s;
	struct cfs_error err;

	if (cache_entry_state(db, e, &s, &err)) {
		cli_error("%s", err.msg);
		return NULL;
	}
	s.uploading = s.pending && in(uploading, e->ino);
	return json_pack(
		"{s:s, s:s, s:I, s:I, s:I, s:I, s:b, s:s, s:s}", "name",
		e->name, "kind", kinds[e->kind <= CFS_KIND_MOUNT ? e->kind : 0],
		"bytes", (json_int_t)s.bytes, "cached_bytes",
		(json_int_t)s.cached_bytes, "blocks", (json_int_t)s.blocks,
		"cached_blocks", (json_int_t)s.cached_blocks, "pinned",
		s.pinned, "state", cache_sync_word(&s), "local",
		cache_local_word(&s, e->kind));
}

struct listing {
	struct cfs_sql *db;
	json_t *entries;
	json_t *uploading; /* of the live mount's status, or NULL */
};

static bool add_child(void *arg, const struct mirror_entry *e)
{
	struct listing *l = arg;
	json_t *o = entry_json(l->db, e, l->uploading);

	return o && json_array_append_new(l->entries, o) == 0;
}

static void print_entries(json_t *entries)
{
	json_t *o;
	size_t i;

	json_array_foreach(entries, i, o)
	{
		char cached[32], bytes[32];

		cfs_size_format((uint64_t)json_integer_value(
					json_object_get(o, "cached_bytes")),
				cached, sizeof(cached));
		cfs_size_format((uint64_t)json_integer_value(
					json_object_get(o, "bytes")),
				bytes, sizeof(bytes));
		printf("%-9s %-12s %10s of %-10s %5lld/%-5lld %s%s\n",
		       json_string_value(json_object_get(o, "state")),
		       json_string_value(json_object_get(o, "local")), cached,
		       bytes,
		       (long long)json_integer_value(
			       json_object_get(o, "cached_blocks")),
		       (long long)json_integer_value(
			       json_object_get(o, "blocks")),
		       json_string_value(json_object_get(o, "name")),
		       strcmp(json_string_value(json_object_get(o, "kind")),
			      "file")
			       ? "/"
			       : "");
	}
}

static int cmd_ls(const struct cli_opts *opts, const struct cli_target *t,
		  const char *in_cache)
{
	struct cache *c = open_cache(t, CACHE_LOOK);
	json_t *st = t->live ? cli_ask(t, json_pack("{s:s, s:b}", "cmd",
						    "status", "server", 0))
			     : NULL;
	struct listing l = { .entries = json_array(),
			     .uploading = json_object_get(st, "uploading") };
	struct mirror_entry e;
	struct cfs_error err;
	uint64_t ino = t->ino;
	enum cfs_err rc = CFS_ERR_INTERNAL;

	if (c && (l.db = cache_db(c, &err)) &&
	    (ino || mirror_ino(l.db, in_cache, &ino))) {
		rc = mirror_get(l.db, ino, &e, &err);
		if (rc == CFS_OK && e.kind == CFS_KIND_FILE)
			rc = add_child(&l, &e) ? CFS_OK : CFS_ERR_INTERNAL;
		else if (rc == CFS_OK)
			rc = mirror_readdir(l.db, &e, 0, add_child, &l, &err);
		if (rc == CFS_OK || rc == CFS_ERR_NOT_FOUND)
			mirror_entry_release(&e);
		if (rc && rc != CFS_ERR_INTERNAL)
			cli_error("cannot list '%s': %s",
				  t->path[0] ? t->path : in_cache, err.msg);
	}
	if (l.db)
		cache_db_release(c, l.db);
	cache_close(c);
	json_decref(st);
	if (rc) {
		json_decref(l.entries);
		return CLI_FAILED;
	}
	if (opts->json)
		cli_print_json(json_pack("{s:o}", "entries", l.entries));
	else
		print_entries(l.entries);
	if (!opts->json)
		json_decref(l.entries);
	return CLI_OK;
}

static int cmd_pin(const struct cli_opts *opts, const struct cli_target *t,
		   bool pin, bool warm)
{
	uint64_t files = 0, bytes = 0;
	json_t *a;

	if (!t->live || !t->ino) {
		cli_error("pin, unpin and warm need a path in a live mount");
		return CLI_FAILED;
	}
	if (pin || !warm) {
		a = cli_ask(t, json_pack("{s:s, s:I, s:b}", "cmd", "pin", "ino",
					 (json_int_t)t->ino, "pin", pin));
		if (!a)
			return CLI_FAILED;
		json_decref(a);
	}
	if (warm && !cli_warm(t->path, &files, &bytes))
		return CLI_FAILED;
	if (opts->json) {
		cli_print_json(json_pack("{s:s, s:b, s:I, s:I}", "path",
					 t->path, "pinned", pin, "files",
					 (json_int_t)files, "bytes",
					 (json_int_t)bytes));
	} else if (warm) {
		char b[32];

		cfs_size_format(bytes, b, sizeof(b));
		printf("%s '%s': %llu files, %s local\n",
		       pin ? "pinned" : "warmed", t->path,
		       (unsigned long long)files, b);
	} else {
		printf("unpinned '%s'\n", t->path);
	}
	return CLI_OK;
}

/* evict, verify or gc: by the live mount, or here with the cache locked. */
static json_t *upkeep(const struct cli_target *t, const char *cmd,
		      const char *in_cache)
{
	struct cfs_error err;
	struct cache *c;
	struct cfs_sql *db;
	json_t *a;
	uint64_t under = t->ino;

	if (!(c = open_cache(t, t->live ? CACHE_LOOK : CACHE_TEND)))
		return NULL;
	if (in_cache && (db = cache_db(c, &err))) {
		bool found = mirror_ino(db, in_cache, &under);

		cache_db_release(c, db);
		if (!found) {
			cache_close(c);
			return NULL;
		}
	}
	if (t->live) {
		cache_close(c);
		return cli_ask(t, json_pack("{s:s, s:I, s:I}", "cmd", cmd,
					    "ino", (json_int_t)under, "keep",
					    (json_int_t)0));
	}
	a = cache_upkeep_json(c, cmd, under, 0, &err);
	cache_close(c);
	if (!a)
		cli_error("%s", err.msg);
	return a;
}

static int cmd_upkeep(const struct cli_opts *opts, const struct cli_target *t,
		      const char *cmd, const char *in_cache)
{
	json_t *a = upkeep(t, cmd, in_cache), *p;
	int64_t bad;
	char bytes[32];
	size_t i;

	if (!a)
		return CLI_FAILED;
	bad = json_integer_value(json_object_get(a, "bad"));
	cfs_size_format(
		(uint64_t)json_integer_value(json_object_get(a, "bytes")),
		bytes, sizeof(bytes));
	if (opts->json) {
		cli_print_json(json_incref(a));
	} else {
		json_array_foreach(json_object_get(a, "problems"), i, p)
		{
			printf("%s block %s: %s\n",
			       strcmp(cmd, "gc") ? "bad" : "removed",
			       json_string_value(json_object_get(p, "block")),
			       json_string_value(
				       json_object_get(p, "problem")));
		}
		if (strcmp(cmd, "evict") == 0)
			printf("evicted %lld blocks (%s); kept %lld pinned or not yet uploaded\n",
			       (long long)json_integer_value(
				       json_object_get(a, "blocks")),
			       bytes,
			       (long long)json_integer_value(
				       json_object_get(a, "kept")));
		else if (strcmp(cmd, "verify") == 0)
			printf("verified %lld blocks (%s): %lld bad, removed\n",
			       (long long)json_integer_value(
				       json_object_get(a, "blocks")),
			       bytes, (long long)bad);
		else
			printf("removed %lld stray block files and %lld index rows\n",
			       (long long)json_integer_value(
				       json_object_get(a, "blocks")),
			       (long long)json_integer_value(
				       json_object_get(a, "rows")));
	}
	json_decref(a);
	return bad ? CLI_NOT_WELL : CLI_OK;
}

int cli_cache(const struct cli_opts *opts, int argc, char **argv)
{
	static const char *const takes_path[] = { "ls",	  "pin",   "unpin",
						  "warm", "evict", NULL };
	const char *sub = argc ? argv[0] : NULL;
	const char *path = argc > 1 ? argv[1] : NULL;
	bool path_ok = false;
	struct cli_target t;

	if (!sub) {
		cli_error(
			"cache needs a sub-command: stat, ls, pin, unpin, warm, evict, verify or gc");
		return CLI_USAGE;
	}
	for (size_t i = 0; takes_path[i]; i++)
		path_ok |= strcmp(sub, takes_path[i]) == 0;
	if (argc > (path_ok ? 2 : 1)) {
		cli_error("too many operands for cache %s", sub);
		return CLI_USAGE;
	}
	/* With --cache, PATH names an entry of the cache's tree. */
	if (!cli_target(opts, opts->cache_dir ? NULL : path, &t))
		return CLI_FAILED;
	if (opts->cache_dir)
		t.ino = 0;
	if (strcmp(sub, "stat") == 0)
		return cmd_stat(opts, &t);
	if (strcmp(sub, "ls") == 0)
		return cmd_ls(opts, &t, path);
	if (strcmp(sub, "pin") == 0 || strcmp(sub, "unpin") == 0 ||
	    strcmp(sub, "warm") == 0) {
		if (!path || opts->cache_dir) {
			cli_error("cache %s needs a PATH in a live mount", sub);
			return CLI_USAGE;
		}
		return cmd_pin(opts, &t, strcmp(sub, "pin") == 0,
			       strcmp(sub, "unpin") != 0);
	}
	if (strcmp(sub, "evict") == 0 || strcmp(sub, "verify") == 0 ||
	    strcmp(sub, "gc") == 0) {
		if (!path && !opts->cache_dir)
			t.ino = 0; /* the whole cache */
		return cmd_upkeep(opts, &t, sub, opts->cache_dir ? path : NULL);
	}
	cli_error("unknown cache sub-command '%s'", sub);
	return CLI_USAGE;
}
