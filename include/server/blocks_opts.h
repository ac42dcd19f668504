/*
 * The options that choose the block store, shared by the commands that
 * touch blocks (serve, gc), so that each takes them alike:
 *
 *	--blocks dir:DIR | s3://BUCKET[/PREFIX]   (default: --data's DIR)
 *	--s3-endpoint URL  --s3-region R  --s3-path-style | --s3-virtual-host
 *	--s3-credentials FILE
 *
 * S3 credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY,
 * or from FILE (lines "AWS_ACCESS_KEY_ID=..." and
 * "AWS_SECRET_ACCESS_KEY=...", readable by its owner only), never from
 * the command line, where other local users could read them.
 */
#ifndef SERVER_BLOCKS_OPTS_H
#define SERVER_BLOCKS_OPTS_H

#include <getopt.h>
#include <stdbool.h>

#include "server/blockstore.h"

struct blocks_opts {
	const char *url;	 /* --blocks, or NULL */
	const char *endpoint;	 /* --s3-endpoint */
	const char *region;	 /* --s3-region */
	const char *credentials; /* --s3-credentials */
	int path_style;		 /* -1 unset, 0 virtual host, 1 path */
};

#define BLOCKS_OPTS_INIT         \
	{                        \
		.path_style = -1 \
	}

/* getopt_long values of the options, clear of the commands' own. */
enum {
	BLOCKS_OPT_BLOCKS = 0x1000,
	BLOCKS_OPT_S3_ENDPOINT,
	BLOCKS_OPT_S3_REGION,
	BLOCKS_OPT_S3_PATH_STYLE,
	BLOCKS_OPT_S3_VIRTUAL_HOST,
	BLOCKS_OPT_S3_CREDENTIALS,
};

/* The options' entries, for a command's struct option table. */
/* clang-format off */
#define BLOCKS_LONG_OPTIONS						\
	{ "blocks", required_argument, NULL, BLOCKS_OPT_BLOCKS },	\
	{ "s3-endpoint", required_argument, NULL, BLOCKS_OPT_S3_ENDPOINT }, \
	{ "s3-region", required_argument, NULL, BLOCKS_OPT_S3_REGION },	\
	{ "s3-path-style", no_argument, NULL, BLOCKS_OPT_S3_PATH_STYLE }, \
	{ "s3-virtual-host", no_argument, NULL, BLOCKS_OPT_S3_VIRTUAL_HOST }, \
	{ "s3-credentials", required_argument, NULL, BLOCKS_OPT_S3_CREDENTIALS }
/* clang-format on */

/* The options' lines of a command's usage. */
#define BLOCKS_USAGE                                                            \
	"Where blocks are kept (default: under --data DIR; cloudfsd(8)):\n"     \
	"  --blocks dir:DIR    in the folder DIR\n"                             \
	"  --blocks s3://BUCKET[/PREFIX]  in an S3-compatible bucket, at:\n"    \
	"  --s3-endpoint URL   the object store (such as\n"                     \
	"                      https://s3.eu-west-1.amazonaws.com)\n"           \
	"  --s3-region R       the region requests are signed for\n"            \
	"                      (default us-east-1)\n"                           \
	"  --s3-path-style     URL/BUCKET/KEY (MinIO, Ceph, Garage) ...\n"      \
	"  --s3-virtual-host   ... or BUCKET.HOST/KEY (the default; AWS)\n"     \
	"  --s3-credentials FILE  keys from FILE, not from the environment's\n" \
	"                      AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY\n"

/* Takes option opt (a BLOCKS_OPT_* value) with arg: false when opt is
 * not one of them. */
bool blocks_opts_take(struct blocks_opts *o, int opt, const char *arg);

/* What is wrong with the options as given, or NULL. */
const char *blocks_opts_problem(const struct blocks_opts *o);

/*
 * Opens the block store the options choose, data_dir's own when there is
 * no --blocks.  Call before any thread starts.  CFS_OK or a code with
 * *err saying what failed (a credential missing, the bucket unreachable).
 */
enum cfs_err blocks_opts_open(const struct blocks_opts *o, const char *data_dir,
			      struct blockstore **out, struct cfs_error *err);

#endif
