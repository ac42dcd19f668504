/* cloudfs cache SUBCOMMAND (include/cli/cli.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/inspect.h"
#include "cache/upkeep.h"
#include "cli/cli.h"
#include "cloudfs/cmdtable.h"
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

/* A request to the live mount; NULL after printing why. */
static json_t *ask(const struct cli_target *t, json_t *request)
{
	if (!request) {
		cli_error(
			"cannot put the request to the mount of cache '%s' in JSON",
			t->cache_dir);
		return NULL;
	}
	return cli_ask(t, request);
}

/* The inode of path in the cache's tree ("" or NULL: the root). */
static bool path_ino(struct cache *c, const char *path, uint64_t *ino)
{
	struct cfs_error err;
	struct cfs_sql *db = cache_db(c, &err);
	enum cfs_err rc = db ? cache_path_ino(db, path, ino, &err) : err.code;

	if (db)
		cache_db_release(c, db);
	if (rc)
		cli_error("%s", err.msg);
	return rc == CFS_OK;
}

/* What cache stat shows: asked of the live mount (which alone may touch
 * its database, and alone knows its hits and misses), or read here. */
static json_t *stat_json(const struct cli_target *t)
{
	struct cfs_error err;
	struct cache *c;
	json_t *o;

	if (t->live)
		return ask(t, json_pack("{s:s}", "cmd", "stat"));
	if (!(c = open_cache(t, CACHE_LOOK)))
		return NULL;
	o = cache_stat_json(c, &err);
	cache_close(c);
	if (!o)
		cli_error("%s", err.msg);
	return o;
}

static uint64_t u64(json_t *o, const char *key)
{
	return (uint64_t)json_integer_value(json_object_get(o, key));
}

static int cmd_stat(const struct cli_opts *opts, const struct cli_target *t)
{
	json_t *o = stat_json(t);
	char used[32], limit[32], kept[32], pinned[32], dirty[32], pending[32];
	uint64_t files, reads;

	if (!o)
		return CLI_FAILED;
	json_object_set_new(o, "cache", json_string(t->cache_dir));
	json_object_set_new(o, "mounted", json_boolean(t->live));
	reads = u64(o, "hits") + u64(o, "misses");
	if (json_object_get(o, "hits"))
		json_object_set_new(o, "hit_ratio",
				    reads ? json_real((double)u64(o, "hits") /
						      (double)reads)
					  : json_null());
	if (opts->json) {
		cli_print_json(o);
		return CLI_OK;
	}
	cfs_size_format(u64(o, "bytes"), used, sizeof(used));
	cfs_size_format(u64(o, "limit"), limit, sizeof(limit));
	cfs_size_format(u64(o, "kept_bytes"), kept, sizeof(kept));
	cfs_size_format(u64(o, "pinned_bytes"), pinned, sizeof(pinned));
	cfs_size_format(u64(o, "dirty_bytes"), dirty, sizeof(dirty));
	cfs_size_format(u64(o, "pending_bytes"), pending, sizeof(pending));
	files = u64(o, "files");
	printf("cache '%s' (%s)\n", t->cache_dir,
	       t->live ? "mounted" : "not mounted");
	printf("  used: %s of %s in %llu blocks (%s not evictable: to send, changed here, or pinned)\n",
	       used, u64(o, "limit") ? limit : "no limit",
	       (unsigned long long)u64(o, "blocks"), kept);
	printf("  files: %llu, %llu cached, %llu partly, %llu online only\n",
	       (unsigned long long)files,
	       (unsigned long long)u64(o, "files_cached"),
	       (unsigned long long)u64(o, "files_partial"),
	       (unsigned long long)(files - u64(o, "files_cached") -
				    u64(o, "files_partial")));
	printf("  pinned: %s; being written: %s; to send: %llu changes (files of %s)\n",
	       pinned, dirty, (unsigned long long)u64(o, "pending_ops"),
	       pending);
	if (json_is_real(json_object_get(o, "hit_ratio")))
		printf("  hit ratio since mount: %.0f%% of %llu block reads\n",
		       100 * json_real_value(json_object_get(o, "hit_ratio")),
		       (unsigned long long)reads);
	json_decref(o);
	return CLI_OK;
}

/* What ls -F marks a name with: '/' for a folder, '@' a symlink, '|' a
 * FIFO, '=' a socket; nothing for files and devices. */
static const char *kind_mark(const char *kind)
{
	static const struct {
		const char *kind, *mark;
	} marks[] = { { "dir", "/" },
		      { "shared", "/" },
		      { "symlink", "@" },
		      { "fifo", "|" },
		      { "socket", "=" } };

	for (size_t i = 0; kind && i < sizeof(marks) / sizeof(marks[0]); i++)
		if (strcmp(marks[i].kind, kind) == 0)
			return marks[i].mark;
	return "";
}

static void print_entries(json_t *entries)
{
	json_t *o;
	size_t i;

	printf("%-9s %-12s %10s    %-10s %11s %s\n", "STATE", "LOCAL", "CACHED",
	       "BYTES", "BLOCKS", "NAME");
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
		       cli_text(o, "state"), cli_text(o, "local"), cached,
		       bytes,
		       (long long)json_integer_value(
			       json_object_get(o, "cached_blocks")),
		       (long long)json_integer_value(
			       json_object_get(o, "blocks")),
		       cli_text(o, "name"), kind_mark(cli_text(o, "kind")));
	}
}

/* What cache ls shows of t's path (or in_cache, a path in the cache's
 * tree): asked of the live mount, or read here. */
static json_t *ls_json(const struct cli_target *t, const char *in_cache)
{
	struct cfs_error err;
	struct cache *c;
	struct cfs_sql *db;
	uint64_t ino = t->ino;
	json_t *o = NULL;

	if (t->live && ino)
		return ask(t, json_pack("{s:s, s:I}", "cmd", "ls", "ino",
					(json_int_t)ino));
	if (t->live)
		return ask(t, json_pack("{s:s, s:s}", "cmd", "ls", "path",
					in_cache ? in_cache : ""));
	if (!(c = open_cache(t, CACHE_LOOK)))
		return NULL;
	if (path_ino(c, in_cache, &ino) && (db = cache_db(c, &err))) {
		o = cache_ls_json(db, ino, NULL, &err);
		cache_db_release(c, db);
	}
	if (!o && ino)
		cli_error("cannot list '%s': %s", in_cache ? in_cache : "",
			  err.msg);
	cache_close(c);
	return o;
}

static int cmd_ls(const struct cli_opts *opts, const struct cli_target *t,
		  const char *in_cache)
{
	json_t *o = ls_json(t, in_cache);

	if (!o)
		return CLI_FAILED;
	if (opts->json)
		cli_print_json(o);
	else
		print_entries(json_object_get(o, "entries"));
	if (!opts->json)
		json_decref(o);
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
	/* The mount stores what it read in the background: once this
	 * returns, the files count as cached (cache stat, ls, the status
	 * attribute). */
	if (warm && !(a = cli_ask(t, json_pack("{s:s}", "cmd", "drain"))))
		return CLI_FAILED;
	if (warm)
		json_decref(a);
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

/* A sub-command of cache; stat's PATH only names the mount, from
 * outside it too.  pin and warm fetch, pin and unpin change the pin.
 * evict, verify and gc say what the problem blocks became, and sum up
 * what they did in a line of their own. */
struct cache_command {
	const char *name;
	bool takes_path, pin, warm;
	const char *problem;
	void (*summary)(const json_t *a, const char *bytes);
	int (*run)(const struct cli_opts *opts, struct cli_target *t,
		   const struct cache_command *c, const char *path);
};

/* evict, verify or gc: by the live mount, or here with the cache locked
 * (no mount can start meanwhile). */
static json_t *upkeep(const struct cli_target *t, const char *cmd,
		      const char *in_cache)
{
	struct cfs_error err;
	struct cache *c;
	json_t *a;
	uint64_t under = t->ino;

	if (t->live && in_cache)
		return ask(t, json_pack("{s:s, s:s, s:I}", "cmd", cmd, "path",
					in_cache, "keep", (json_int_t)0));
	if (t->live)
		return ask(t,
			   json_pack("{s:s, s:I, s:I}", "cmd", cmd, "ino",
				     (json_int_t)under, "keep", (json_int_t)0));
	if (!(c = open_cache(t, CACHE_TEND)))
		return NULL;
	if (in_cache && !path_ino(c, in_cache, &under)) {
		cache_close(c);
		return NULL;
	}
	a = cache_upkeep_json(c, cmd, under, 0, &err);
	cache_close(c);
	if (!a)
		cli_error("%s", err.msg);
	return a;
}

static long long count(const json_t *a, const char *key)
{
	return (long long)json_integer_value(json_object_get(a, key));
}

static void evicted(const json_t *a, const char *bytes)
{
	printf("evicted %lld blocks (%s); kept %lld pinned or not yet uploaded\n",
	       count(a, "blocks"), bytes, count(a, "kept"));
}

static void verified(const json_t *a, const char *bytes)
{
	printf("verified %lld blocks (%s): %lld bad, removed\n",
	       count(a, "blocks"), bytes, count(a, "bad"));
}

static void collected(const json_t *a, const char *bytes)
{
	(void)bytes;
	printf("removed %lld stray block files and %lld index rows\n",
	       count(a, "blocks"), count(a, "rows"));
}

static int cmd_upkeep(const struct cli_opts *opts, const struct cli_target *t,
		      const struct cache_command *c, const char *in_cache)
{
	json_t *a = upkeep(t, c->name, in_cache), *p;
	int64_t bad;
	char bytes[32];
	size_t i;

	if (!a)
		return CLI_FAILED;
	bad = count(a, "bad");
	cfs_size_format((uint64_t)count(a, "bytes"), bytes, sizeof(bytes));
	if (opts->json) {
		cli_print_json(json_incref(a));
	} else {
		json_array_foreach(json_object_get(a, "problems"), i, p)
		{
			printf("%s block %s: %s\n", c->problem,
			       cli_text(p, "block"), cli_text(p, "problem"));
		}
		c->summary(a, bytes);
	}
	json_decref(a);
	return bad ? CLI_NOT_WELL : CLI_OK;
}

static int run_stat(const struct cli_opts *opts, struct cli_target *t,
		    const struct cache_command *c, const char *path)
{
	(void)c, (void)path;
	return cmd_stat(opts, t);
}

static int run_ls(const struct cli_opts *opts, struct cli_target *t,
		  const struct cache_command *c, const char *path)
{
	(void)c;
	return cmd_ls(opts, t, path);
}

static int run_pin(const struct cli_opts *opts, struct cli_target *t,
		   const struct cache_command *c, const char *path)
{
	if (!path || opts->cache_dir) {
		cli_error("cache %s needs a PATH in a live mount", c->name);
		return CLI_USAGE;
	}
	return cmd_pin(opts, t, c->pin, c->warm);
}

static int run_upkeep(const struct cli_opts *opts, struct cli_target *t,
		      const struct cache_command *c, const char *path)
{
	if (!path && !opts->cache_dir)
		t->ino = 0; /* the whole cache */
	return cmd_upkeep(opts, t, c, opts->cache_dir ? path : NULL);
}

static const struct cache_command commands[] = {
	{ .name = "stat", .takes_path = true, .run = run_stat },
	{ .name = "ls", .takes_path = true, .run = run_ls },
	{ .name = "pin",
	  .takes_path = true,
	  .pin = true,
	  .warm = true,
	  .run = run_pin },
	{ .name = "unpin", .takes_path = true, .run = run_pin },
	{ .name = "warm", .takes_path = true, .warm = true, .run = run_pin },
	{ .name = "evict",
	  .takes_path = true,
	  .problem = "bad",
	  .summary = evicted,
	  .run = run_upkeep },
	{ .name = "verify",
	  .problem = "bad",
	  .summary = verified,
	  .run = run_upkeep },
	{ .name = "gc",
	  .problem = "removed",
	  .summary = collected,
	  .run = run_upkeep },
};

int cli_cache(const struct cli_opts *opts, int argc, char **argv)
{
	const char *sub = argc ? argv[0] : NULL;
	const char *path = argc > 1 ? argv[1] : NULL;
	const struct cache_command *c = NULL;
	struct cli_target t;

	if (!sub) {
		cli_error(
			"cache needs a sub-command: stat, ls, pin, unpin, warm, evict, verify or gc");
		return CLI_USAGE;
	}
	c = CFS_CMDTABLE_FIND(commands, sub);
	if (argc > (c && c->takes_path ? 2 : 1)) {
		cli_error("too many operands for cache %s", sub);
		return CLI_USAGE;
	}
	/* With --cache, PATH names an entry of the cache's tree. */
	if (!cli_target(opts, opts->cache_dir ? NULL : path, &t))
		return CLI_FAILED;
	if (opts->cache_dir)
		t.ino = 0;
	if (c)
		return c->run(opts, &t, c, path);
	cli_error("unknown cache sub-command '%s'", sub);
	return CLI_USAGE;
}
