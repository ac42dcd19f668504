/*
 * cloudfsd serve: runs the server in the foreground until SIGTERM or
 * SIGINT, then stops cleanly: no new connections, long polls answered,
 * requests in flight finished, stores closed.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cloudfs/log.h"
#include "cloudfs/proto.h"
#include "config.h"
#include "server/cmd.h"
#include "server/gc.h"
#include "server/http.h"

#define STR2(x) #x
#define STR(x)	STR2(x)

static const char usage[] =
	"usage: cloudfsd serve --data DIR [--listen HOST:PORT] [--threads N]\n"
	"                      [--retention DURATION] [--gc-every DURATION]\n"
	"Serves the data directory DIR (created if missing) in the foreground.\n"
	"  --listen HOST:PORT  address to listen on (default " CFS_DEFAULT_HOST
	":" STR(CFS_DEFAULT_PORT) "; port 0 picks a free port)\n"
				  "  --threads N         HTTP worker threads (default 8)\n"
				  "  --retention DURATION  how long superseded versions and deleted\n"
				  "                      files are kept (30d, 12h, 15m, 10s; default 30d)\n"
				  "  --gc-every DURATION how often garbage is collected (default 1h;\n"
				  "                      0: never)\n"
				  "Logs one line per request to stderr; SIGTERM or SIGINT stops it.\n";

struct serve_opts {
	const char *data_dir;
	const char *listen;
	unsigned threads;
	int64_t retention_s, gc_every_s;
};

static int parse_args(int argc, char **argv, struct serve_opts *o, int *status)
{
	static const struct option opts[] = {
		{ "data", required_argument, NULL, 'd' },
		{ "listen", required_argument, NULL, 'l' },
		{ "threads", required_argument, NULL, 't' },
		{ "retention", required_argument, NULL, 'r' },
		{ "gc-every", required_argument, NULL, 'g' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "d:l:t:r:g:h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			o->data_dir = optarg;
			break;
		case 'l':
			o->listen = optarg;
			break;
		case 't':
			o->threads = (unsigned)strtoul(optarg, &end, 10);
			if (*end || o->threads < 1 || o->threads > 256) {
				fprintf(stderr,
					"cloudfsd serve: --threads must be 1 to 256, not '%s'\n",
					optarg);
				*status = EXIT_USAGE;
				return -1;
			}
			break;
		case 'r':
			if (!gc_duration_arg("serve", "--retention", optarg,
					     &o->retention_s, status))
				return -1;
			break;
		case 'g':
			if (!gc_duration_arg("serve", "--gc-every", optarg,
					     &o->gc_every_s, status))
				return -1;
			break;
		case 'h':
			fputs(usage, stdout);
			*status = 0;
			return -1;
		default:
			fputs(usage, stderr);
			*status = EXIT_USAGE;
			return -1;
		}
	}
	if (!o->data_dir || optind != argc) {
		fprintf(stderr, "cloudfsd serve: %s\n%s",
			!o->data_dir ? "--data DIR is required"
				     : "unexpected operand",
			usage);
		*status = EXIT_USAGE;
		return -1;
	}
	return 0;
}

int cmd_lock_data_dir(const char *dir)
{
	char path[PATH_MAX];
	int fd;

	if (mkdir(dir, 0700) && errno != EEXIST) {
		cfs_log_error("cannot create data directory '%s': %s", dir,
			      strerror(errno));
		return -1;
	}
	snprintf(path, sizeof(path), "%s/serve.lock", dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		cfs_log_error("cannot open '%s': %s", path, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		close(fd);
		return -2;
	}
	return fd;
}

static void notify_longpoll(void *arg, int64_t ns)
{
	longpoll_notify(arg, ns);
}

static int run(const struct serve_opts *o, const sigset_t *stop)
{
	pthread_rwlock_t uploads = PTHREAD_RWLOCK_INITIALIZER;
	struct api_ctx ctx = { .uploads = &uploads };
	struct gc_daemon *gc = NULL;
	struct http_server *http = NULL;
	struct cfs_error err;
	char bound[128];
	int sig = 0, status = 1, e;

	ctx.longpoll = longpoll_new();
	if (!ctx.longpoll) {
		cfs_log_error("cannot start the long-poll registry");
		return 1;
	}
	if (meta_sqlite_open(o->data_dir, notify_longpoll, ctx.longpoll,
			     &ctx.meta, &err)) {
		cfs_log_error("%s", err.msg);
		goto out;
	}
	e = blockstore_dir_open(o->data_dir, &ctx.blocks);
	if (e) {
		cfs_log_error("cannot open the block store in '%s': %s",
			      o->data_dir, strerror(-e));
		goto out;
	}
	if (http_start(o->listen, o->threads, &ctx, &http, bound, sizeof(bound),
		       &err)) {
		cfs_log_error("%s", err.msg);
		goto out;
	}
	cfs_log_info("cloudfsd %s serving '%s', listening on %s",
		     CLOUDFS_VERSION, o->data_dir, bound);
	if (o->gc_every_s && !(gc = gc_start(ctx.meta, ctx.blocks, &uploads,
					     o->retention_s, o->gc_every_s)))
		cfs_log_warn("cannot start garbage collection: no thread");
	sigwait(stop, &sig);
	cfs_log_info("stopping on %s", strsignal(sig));
	http_quiesce(http);
	longpoll_shutdown(ctx.longpoll);
	http_stop(http);
	gc_stop(gc);
	status = 0;
out:
	longpoll_free(ctx.longpoll);
	if (ctx.blocks)
		ctx.blocks->ops->close(ctx.blocks);
	if (ctx.meta)
		ctx.meta->ops->close(ctx.meta);
	return status;
}

int cmd_serve(int argc, char **argv)
{
	struct serve_opts o = {
		.listen = CFS_DEFAULT_HOST ":" STR(CFS_DEFAULT_PORT),
		.threads = 8,
		.retention_s = GC_DEFAULT_RETENTION_S,
		.gc_every_s = GC_DEFAULT_EVERY_S,
	};
	sigset_t stop;
	int lock, status;

	if (parse_args(argc, argv, &o, &status))
		return status;
	/* Blocked before any thread starts, so that every thread inherits
	 * the mask and only sigwait() takes these signals. */
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	signal(SIGPIPE, SIG_IGN);
	lock = cmd_lock_data_dir(o.data_dir);
	if (lock == -2)
		cfs_log_error("another cloudfsd is serving '%s' already",
			      o.data_dir);
	if (lock < 0)
		return 1;
	status = run(&o, &stop);
	close(lock);
	return status;
}
