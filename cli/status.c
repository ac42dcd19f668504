/* cloudfs status [--wait] (include/cli/cli.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cloudfs/clock.h"
#include "cloudfs/platform.h"
#include "cloudfs/size.h"

/* --wait asks again after 10 ms, doubling up to 200 ms: a small change is
 * on the server within milliseconds, and a long wait asks seldom. */
#define WAIT_NAP_MIN_MS 10
#define WAIT_NAP_MAX_MS 200

static int64_t num(json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

/* Nothing local left to send. */
static bool sent(json_t *st)
{
	return num(st, "pending_ops") == 0 && num(st, "open_writes") == 0;
}

/* Sent, and the server reached with every namespace listed to its head;
 * nothing the server refused waits for the user. */
static bool synced(json_t *st)
{
	json_t *ns;
	size_t i;

	if (!sent(st) || !json_is_true(json_object_get(st, "server")) ||
	    num(st, "refused"))
		return false;
	json_array_foreach(json_object_get(st, "namespaces"), i, ns)
	{
		if (!json_is_integer(json_object_get(ns, "head")) ||
		    num(ns, "cursor") < num(ns, "head"))
			return false;
	}
	return true;
}

/* The largest file being sent, if any: "uploading big.iso: 1.2 GiB of
 * 4.0 GiB". */
static void print_progress(json_t *p)
{
	char sent[32], size[32];

	if (!json_is_object(p))
		return;
	cfs_size_format((uint64_t)num(p, "sent"), sent, sizeof(sent));
	cfs_size_format((uint64_t)num(p, "size"), size, sizeof(size));
	printf("  uploading %s: %s of %s\n", cli_text(p, "path"), sent, size);
}

static void print_status(json_t *st)
{
	char bytes[32];
	json_t *ns, *f;
	size_t i;

	printf("%s: %s\n", cli_text(st, "mountpoint"),
	       synced(st) ? "synced" : "not synced");
	if (!json_is_true(json_object_get(st, "server")))
		printf("  server: unreachable (%s)\n",
		       cli_text(st, "server_error"));
	json_array_foreach(json_object_get(st, "namespaces"), i, ns)
	{
		if (!json_is_integer(json_object_get(ns, "head")))
			printf("  namespace %lld: at JID %lld\n",
			       (long long)num(ns, "ns"),
			       (long long)num(ns, "cursor"));
		else if (num(ns, "cursor") >= num(ns, "head"))
			printf("  namespace %lld: up to date (JID %lld)\n",
			       (long long)num(ns, "ns"),
			       (long long)num(ns, "cursor"));
		else
			printf("  namespace %lld: %lld changes to fetch (JID %lld of %lld)\n",
			       (long long)num(ns, "ns"),
			       (long long)(num(ns, "head") - num(ns, "cursor")),
			       (long long)num(ns, "cursor"),
			       (long long)num(ns, "head"));
	}
	cfs_size_format((uint64_t)num(st, "pending_bytes"), bytes,
			sizeof(bytes));
	if (num(st, "pending_ops"))
		printf("  to send: %lld changes (files of %s)\n",
		       (long long)num(st, "pending_ops"), bytes);
	print_progress(json_object_get(st, "upload_progress"));
	if (num(st, "fetching"))
		printf("  fetching: %lld blocks\n",
		       (long long)num(st, "fetching"));
	if (num(st, "open_writes"))
		printf("  being written: %lld files\n",
		       (long long)num(st, "open_writes"));
	if (num(st, "retrying"))
		printf("  needs attention: %lld changes not sent yet, tried and failed:\n",
		       (long long)num(st, "retrying"));
	json_array_foreach(json_object_get(st, "failing"), i, f)
	{
		printf("    '%s': %s (%lld tries)\n", cli_text(f, "path"),
		       cli_text(f, "why"), (long long)num(f, "tries"));
	}
	if (num(st, "retrying") > (int64_t)i)
		printf("    and %lld more\n",
		       (long long)(num(st, "retrying") - (int64_t)i));
	if (num(st, "conflicts"))
		printf("  needs attention: %lld conflicted copies (cloudfs cache ls shows them)\n",
		       (long long)num(st, "conflicts"));
	if (num(st, "refused"))
		printf("  needs attention: %lld files the server refused are kept in %s (remove them once saved elsewhere)\n",
		       (long long)num(st, "refused"),
		       cli_text(st, "refused_dir"));
	if (json_is_true(json_object_get(st, "cache_full")))
		printf("  needs attention: the cache is full of changes not yet sent; writes wait, then fail (cloudfs cache stat)\n");
}

/* One line of progress while waiting: a bar on a terminal (redrawn),
 * else a line each time the numbers change. */
static void progress(json_t *st, int64_t *most, int64_t *last)
{
	int64_t left = num(st, "pending_ops") + num(st, "open_writes");
	char bytes[32];
	int width = 30, done;

	if (left > *most)
		*most = left;
	cfs_size_format((uint64_t)num(st, "pending_bytes"), bytes,
			sizeof(bytes));
	if (!isatty(STDERR_FILENO)) {
		if (left != *last)
			fprintf(stderr, "%lld changes left to send (%s)\n",
				(long long)left, bytes);
		*last = left;
		return;
	}
	done = *most ? (int)((*most - left) * width / *most) : width;
	fprintf(stderr, "\r[%.*s%*s] %lld changes left (%s)   ", done,
		"##############################", width - done, "",
		(long long)left, bytes);
	fflush(stderr);
	*last = left;
}

/* Asks t until it has sent everything or the timeout (*timed_out),
 * showing progress; false after printing what failed. */
static bool wait_sent(const struct cli_opts *opts, const struct cli_target *t,
		      bool *timed_out)
{
	uint64_t until = cfs_monotonic_ms() + (uint64_t)(opts->timeout * 1000);
	int64_t most = 0, last = -1;
	unsigned nap_ms = WAIT_NAP_MIN_MS;
	json_t *st;
	bool done = false;

	*timed_out = false;
	/* Only what is local: the server is asked once, at the end. */
	while (!done && !*timed_out &&
	       (st = cli_ask(t, json_pack("{s:s, s:b, s:b}", "cmd", "status",
					  "server", 0, "wait", 1)))) {
		done = sent(st);
		if (!done && !opts->json)
			progress(st, &most, &last);
		*timed_out = !done && opts->timeout > 0 &&
			     cfs_monotonic_ms() >= until;
		json_decref(st);
		if (!done && !*timed_out)
			usleep(nap_ms * 1000);
		nap_ms = 2 * nap_ms < WAIT_NAP_MAX_MS ? 2 * nap_ms
						      : WAIT_NAP_MAX_MS;
	}
	if (!opts->json && last >= 0 && isatty(STDERR_FILENO))
		fputc('\n', stderr);
	return done || *timed_out;
}

static int status_of(const struct cli_opts *opts, const char *path, json_t *all)
{
	struct cli_target t;
	bool timed_out = false;
	json_t *st;

	if (!cli_target(opts, path, &t))
		return CLI_FAILED;
	if (!t.live) {
		cli_error("no mount is using cache '%s'", t.cache_dir);
		return CLI_FAILED;
	}
	if (opts->wait && !wait_sent(opts, &t, &timed_out))
		return CLI_FAILED;
	st = cli_ask(&t, json_pack("{s:s}", "cmd", "status"));
	if (!st)
		return CLI_FAILED;
	json_object_set_new(st, "synced", json_boolean(synced(st)));
	if (!opts->json)
		print_status(st);
	if (timed_out)
		cli_error("'%s' still has changes to send after %g s", path,
			  opts->timeout);
	json_array_append(all, st);
	json_decref(st);
	if (opts->wait)
		return timed_out ? CLI_NOT_WELL : CLI_OK;
	return synced(json_array_get(all, json_array_size(all) - 1))
		       ? CLI_OK
		       : CLI_NOT_WELL;
}

int cli_status(const struct cli_opts *opts, int argc, char **argv)
{
	json_t *all = json_array();
	char **mounts = NULL;
	bool listed = true;
	int rc = CLI_OK;

	if (argc > 1) {
		cli_error("status takes one MOUNTPOINT at most");
		json_decref(all);
		return CLI_USAGE;
	}
	if (argc == 1 || opts->cache_dir) {
		rc = status_of(opts, argc ? argv[0] : NULL, all);
	} else {
		mounts = cli_mounts(&listed);
		if (!listed) {
			cli_error(
				"cannot list the mounts on this system: give a MOUNTPOINT");
			rc = CLI_FAILED;
		} else if (!mounts || !mounts[0]) {
			cli_error("no cloudfs mount here (none in %s)",
				  platform_mount_table);
			rc = CLI_FAILED;
		}
		for (size_t i = 0; mounts && mounts[i]; i++) {
			int r = status_of(opts, mounts[i], all);

			/* A failure says more than "not synced". */
			if (r == CLI_FAILED || rc == CLI_FAILED)
				rc = CLI_FAILED;
			else if (r > rc)
				rc = r;
			free(mounts[i]);
		}
		free(mounts);
	}
	if (opts->json)
		cli_print_json(json_pack("{s:o}", "mounts", all));
	else
		json_decref(all);
	return rc;
}
