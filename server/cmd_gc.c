/*
 * cloudfsd gc: garbage collection by hand (server/gc.h), with a report.
 * The server collects by itself (serve --gc-every); this is for a data
 * directory no server runs on, so it takes the server's lock.  On
 * PostgreSQL servers may be serving: the metadata store keeps their
 * uploads and this collection apart (meta_sql_gc.c).
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cloudfs/log.h"
#include "server/blocks_opts.h"
#include "server/cmd.h"
#include "server/gc.h"

static const char usage[] =
	"usage: cloudfsd gc --data DIR [--meta URL] [--retention DURATION]\n"
	"                   [--blocks dir:DIR|s3://BUCKET[/PREFIX] ...]\n"
	"Collects the garbage of the data directory DIR (which no server may\n"
	"be serving, unless the metadata is on PostgreSQL): journal rows\n"
	"superseded longer ago than the retention period, and the bytes of\n"
	"blocks nothing within it lists.\n"
	"  --retention DURATION  30d, 12h, 15m, 10s (default 30d)\n" CMD_META_USAGE
		BLOCKS_USAGE "  (the same as the server's)\n"
	"Prints what it dropped and kept.\n";

static int parse_args(int argc, char **argv, const char **data_dir,
		      const char **url, int64_t *retention_s,
		      struct blocks_opts *blocks, int *status)
{
	static const struct option opts[] = {
		{ "data", required_argument, NULL, 'd' },
		{ "meta", required_argument, NULL, 'm' },
		{ "retention", required_argument, NULL, 'r' },
		BLOCKS_LONG_OPTIONS,
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *problem;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "d:m:r:h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			*data_dir = optarg;
			break;
		case 'm':
			*url = optarg;
			break;
		case 'r':
			if (!gc_duration_arg("gc", "--retention", optarg,
					     retention_s, status))
				return -1;
			break;
		case 'h':
			fputs(usage, stdout);
			*status = 0;
			return -1;
		default:
			if (blocks_opts_take(blocks, c, optarg))
				break;
			fputs(usage, stderr);
			*status = EXIT_USAGE;
			return -1;
		}
	}
	problem = !*data_dir	   ? "--data DIR is required"
		  : optind != argc ? "unexpected operand"
				   : blocks_opts_problem(blocks);
	if (problem) {
		fprintf(stderr, "cloudfsd gc: %s\n%s", problem, usage);
		*status = EXIT_USAGE;
		return -1;
	}
	return 0;
}

static int collect(const char *data_dir, const struct cmd_meta *store,
		   const struct blocks_opts *blocks, int64_t retention_s)
{
	struct meta *m = cmd_meta_open(store, NULL, NULL);
	struct blockstore *bs = NULL;
	struct gc_report r;
	struct cfs_error err;
	int status = 1;
	enum cfs_err e;

	if (!m)
		return 1;
	e = blocks_opts_open(blocks, data_dir, &bs, &err);
	if (e)
		cfs_log_error("%s", err.msg);
	else if (gc_run(m, bs, NULL, retention_s, &r, &err))
		cfs_log_error("gc of '%s' failed: %s", data_dir, err.msg);
	else
		status = r.remove_failed ? 1 : 0;
	if (!e && status == 0)
		printf("journal rows compacted: %llu\n"
		       "blocks dropped: %llu (%llu bytes)\n"
		       "blocks kept: %llu (%llu bytes)\n",
		       (unsigned long long)r.t.journal_rows,
		       (unsigned long long)r.removed,
		       (unsigned long long)r.t.bytes,
		       (unsigned long long)r.t.live_blocks,
		       (unsigned long long)r.t.live_bytes);
	if (bs)
		bs->ops->close(bs);
	m->ops->close(m);
	return status;
}

int cmd_gc(int argc, char **argv)
{
	const char *data_dir = NULL, *url = NULL;
	int64_t retention_s = GC_DEFAULT_RETENTION_S;
	struct blocks_opts blocks = BLOCKS_OPTS_INIT;
	struct cmd_meta store;
	int status, lock = -1;

	if (parse_args(argc, argv, &data_dir, &url, &retention_s, &blocks,
		       &status))
		return status;
	if (!cmd_meta_resolve("gc", url, data_dir, &store, &status))
		return status;
	if (access(data_dir, F_OK)) {
		cfs_log_error("no data directory '%s'", data_dir);
		return 1;
	}
	/* Only the embedded store has a lock that tells of a server. */
	if (store.dir)
		lock = cmd_lock_data_dir(store.dir);
	if (lock == -2)
		cfs_log_error(
			"a cloudfsd serves '%s': it collects garbage itself (serve --gc-every); stop it to collect by hand",
			store.dir);
	if (store.dir && lock < 0)
		return 1;
	status = collect(data_dir, &store, &blocks, retention_s);
	if (lock >= 0)
		close(lock);
	return status;
}
