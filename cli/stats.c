/* cloudfs stats (include/cli/cli.h). */
#include <stdio.h>

#include "cli/cli.h"
#include "cloudfs/size.h"

static uint64_t u64(json_t *o, const char *group, const char *key)
{
	return (uint64_t)json_integer_value(
		json_object_get(json_object_get(o, group), key));
}

static void print_stats(json_t *o)
{
	char fetched[32], sent[32], queued[32];

	cfs_size_format(u64(o, "reads", "fetched_bytes"), fetched,
			sizeof(fetched));
	cfs_size_format(u64(o, "uploads", "bytes"), sent, sizeof(sent));
	cfs_size_format(u64(o, "uploads", "queue_bytes"), queued,
			sizeof(queued));
	printf("%s, since mount:\n", cli_text(o, "mountpoint"));
	printf("  reads: %llu blocks cached, %llu fetched (%s); %llu fetching, "
	       "%llu fetched again, %llu failed\n",
	       (unsigned long long)u64(o, "reads", "hits"),
	       (unsigned long long)u64(o, "reads", "fetched_blocks"), fetched,
	       (unsigned long long)u64(o, "reads", "fetching"),
	       (unsigned long long)u64(o, "reads", "refetched"),
	       (unsigned long long)u64(o, "reads", "fetch_failures"));
	printf("  uploads: %llu blocks (%s), %llu commits of %llu changes; "
	       "%llu rounds to retry\n",
	       (unsigned long long)u64(o, "uploads", "blocks"), sent,
	       (unsigned long long)u64(o, "uploads", "commits"),
	       (unsigned long long)u64(o, "uploads", "committed"),
	       (unsigned long long)u64(o, "uploads", "failures"));
	printf("  queue: %llu changes to send (%s)\n",
	       (unsigned long long)u64(o, "uploads", "queue"), queued);
	printf("  sync: %llu long polls answered, %llu rounds to retry; "
	       "%llu blocks of files on their way fetched ahead\n",
	       (unsigned long long)u64(o, "sync", "longpolls"),
	       (unsigned long long)u64(o, "sync", "failures"),
	       (unsigned long long)u64(o, "sync", "streamed"));
}

int cli_stats(const struct cli_opts *opts, int argc, char **argv)
{
	struct cli_target t;
	json_t *o;

	if (argc > 1) {
		cli_error("stats takes one MOUNTPOINT at most");
		return CLI_USAGE;
	}
	if (opts->cache_dir) {
		cli_error("stats counts what a mount did: give a MOUNTPOINT, "
			  "not --cache");
		return CLI_USAGE;
	}
	if (!cli_target(opts, argc ? argv[0] : NULL, &t))
		return CLI_FAILED;
	if (!t.live) {
		cli_error("no mount is using cache '%s'", t.cache_dir);
		return CLI_FAILED;
	}
	o = cli_ask(&t, json_pack("{s:s}", "cmd", "stats"));
	if (!o)
		return CLI_FAILED;
	if (opts->json) {
		cli_print_json(o);
		return CLI_OK;
	}
	print_stats(o);
	json_decref(o);
	return CLI_OK;
}
