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
#include "cloudfs/num.h"
#include "cloudfs/proto.h"
#include "cloudfs/size.h"
#include "config.h"
#include "server/blocks_opts.h"
#include "server/cmd.h"
#include "server/gc.h"
#include "server/http.h"
#include "server/tls.h"

#define STR2(x) #x
#define STR(x)	STR2(x)

static const char usage[] =
	"usage: cloudfsd serve --data DIR [--meta URL] [--listen HOST:PORT]\n"
	"                      [--threads N]\n"
	"                      [--retention DURATION] [--gc-every DURATION]\n"
	"                      [--tls-cert FILE --tls-key FILE] [--pidfile FILE]\n"
	"                      [--blocks dir:DIR|s3://BUCKET[/PREFIX] ...]\n"
	"Serves the data directory DIR (created if missing) in the foreground:\n"
	"its metadata, unless --meta keeps it elsewhere, and its blocks unless\n"
	"--blocks does.\n" CMD_META_USAGE
	"  --listen HOST:PORT  address to listen on (default " CFS_DEFAULT_HOST
	":" STR(CFS_DEFAULT_PORT) "; port 0 picks a free port)\n"
				  "  --tls-cert FILE     serve HTTPS with the PEM certificate (and chain)\n"
				  "                      in FILE...\n"
				  "  --tls-key FILE      ... and its unencrypted PEM private key in FILE\n"
				  "  --pidfile FILE      write the process id to FILE once listening\n"
				  "                      ('cloudfsd stop' needs no pidfile)\n"
				  "  --threads N         HTTP worker threads (default 8)\n"
				  "  --retention DURATION  how long superseded versions and deleted\n"
				  "                      files are kept (30d, 12h, 15m, 10s; default 30d)\n"
				  "  --gc-every DURATION how often garbage is collected (default 1h;\n"
				  "                      0: never)\n"
				  "  --pending-ttl DURATION  how long a pending block list lives without\n"
				  "                      a block landing (streaming sync; default 10m)\n"
				  "Limits that keep one client from starving the others (cloudfsd(8)):\n"
				  "  --max-connections N   connections in all (default 1000)\n"
				  "  --max-per-address N   connections from one address (default 128)\n"
				  "  --header-timeout DURATION  for a request's headers (default 30s)\n"
				  "  --body-timeout DURATION    for a body, plus 1s per 64 KiB (default 10s)\n"
				  "  --body-budget SIZE    bodies being received, in all (default 256M)\n"
				  "  --user-body-budget SIZE  ... by one user (default 64M)\n"
				  "  --user-longpolls N    long polls waiting per user (default 64)\n" BLOCKS_USAGE
				  "Logs one line per request to stderr; SIGTERM or SIGINT stops it.\n";

struct serve_opts {
	const char *data_dir;
	const char *meta_url; /* --meta */
	struct cmd_meta store;
	const char *listen;
	const char *tls_cert, *tls_key; /* both or neither */
	const char *pidfile;
	unsigned threads;
	int64_t retention_s, gc_every_s;
	unsigned pending_ttl_s;
	struct http_limits limits;
	struct blocks_opts blocks;
};

/* A count for option opt, from min to max. */
static bool count_arg(const char *opt, const char *arg, unsigned min,
		      unsigned max, unsigned *out, int *status)
{
	int64_t v;

	if (cfs_num_parse_i64(arg, min, max, &v) == 0) {
		*out = (unsigned)v;
		return true;
	}
	fprintf(stderr, "cloudfsd serve: %s must be %u to %u, not '%s'\n", opt,
		min, max, arg);
	*status = EXIT_USAGE;
	return false;
}

/* A duration for option opt, from 1 s to a day. */
static bool seconds_arg(const char *opt, const char *arg, unsigned *out,
			int *status)
{
	int64_t s;

	if (!gc_duration_arg("serve", opt, arg, &s, status))
		return false;
	if (s >= 1 && s <= 86400) {
		*out = (unsigned)s;
		return true;
	}
	fprintf(stderr, "cloudfsd serve: %s must be 1s to 1d, not '%s'\n", opt,
		arg);
	*status = EXIT_USAGE;
	return false;
}

/* A byte count for option opt, at least a block. */
static bool bytes_arg(const char *opt, const char *arg, uint64_t *out,
		      int *status)
{
	if (cfs_size_parse(arg, out) && *out >= CFS_BLOCK_SIZE)
		return true;
	fprintf(stderr,
		"cloudfsd serve: %s must be a size of at least 4M (such as "
		"64M or 1G), not '%s'\n",
		opt, arg);
	*status = EXIT_USAGE;
	return false;
}

enum {
	OPT_MAX_CONN = 256,
	OPT_PER_ADDR,
	OPT_HEADER_TO,
	OPT_BODY_TO,
	OPT_BODY_BUDGET,
	OPT_USER_BUDGET,
	OPT_USER_POLLS,
	OPT_TLS_CERT,
	OPT_TLS_KEY,
	OPT_PIDFILE,
	OPT_PENDING_TTL,
	OPT_META
};

/* The limits' options; false when arg is not what opt takes. */
static bool limit_arg(int opt, const char *arg, struct http_limits *l,
		      int *status)
{
	switch (opt) {
	case OPT_MAX_CONN:
		return count_arg("--max-connections", arg, 16, 1000000,
				 &l->max_connections, status);
	case OPT_PER_ADDR:
		return count_arg("--max-per-address", arg, 1, 1000000,
				 &l->max_per_address, status);
	case OPT_HEADER_TO:
		return seconds_arg("--header-timeout", arg,
				   &l->header_timeout_s, status);
	case OPT_BODY_TO:
		return seconds_arg("--body-timeout", arg, &l->body_timeout_s,
				   status);
	case OPT_BODY_BUDGET:
		return bytes_arg("--body-budget", arg, &l->body_budget, status);
	case OPT_USER_BUDGET:
		return bytes_arg("--user-body-budget", arg,
				 &l->user_body_budget, status);
	case OPT_USER_POLLS:
		return count_arg("--user-longpolls", arg, 1, 1000000,
				 &l->user_longpolls, status);
	}
	return false;
}

static int parse_args(int argc, char **argv, struct serve_opts *o, int *status)
{
	static const struct option opts[] = {
		{ "data", required_argument, NULL, 'd' },
		{ "listen", required_argument, NULL, 'l' },
		{ "threads", required_argument, NULL, 't' },
		{ "retention", required_argument, NULL, 'r' },
		{ "gc-every", required_argument, NULL, 'g' },
		{ "max-connections", required_argument, NULL, OPT_MAX_CONN },
		{ "max-per-address", required_argument, NULL, OPT_PER_ADDR },
		{ "header-timeout", required_argument, NULL, OPT_HEADER_TO },
		{ "body-timeout", required_argument, NULL, OPT_BODY_TO },
		{ "body-budget", required_argument, NULL, OPT_BODY_BUDGET },
		{ "user-body-budget", required_argument, NULL,
		  OPT_USER_BUDGET },
		{ "user-longpolls", required_argument, NULL, OPT_USER_POLLS },
		{ "tls-cert", required_argument, NULL, OPT_TLS_CERT },
		{ "tls-key", required_argument, NULL, OPT_TLS_KEY },
		{ "pidfile", required_argument, NULL, OPT_PIDFILE },
		{ "pending-ttl", required_argument, NULL, OPT_PENDING_TTL },
		BLOCKS_LONG_OPTIONS,
		{ "meta", required_argument, NULL, OPT_META },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *problem = NULL;
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
			if (!count_arg("--threads", optarg, 1, 256, &o->threads,
				       status))
				return -1;
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
		case OPT_TLS_CERT:
			o->tls_cert = optarg;
			break;
		case OPT_TLS_KEY:
			o->tls_key = optarg;
			break;
		case OPT_PIDFILE:
			o->pidfile = optarg;
			break;
		case OPT_PENDING_TTL:
			if (!seconds_arg("--pending-ttl", optarg,
					 &o->pending_ttl_s, status))
				return -1;
			break;
		case OPT_META:
			o->meta_url = optarg;
			break;
		case OPT_MAX_CONN:
		case OPT_PER_ADDR:
		case OPT_HEADER_TO:
		case OPT_BODY_TO:
		case OPT_BODY_BUDGET:
		case OPT_USER_BUDGET:
		case OPT_USER_POLLS:
			if (!limit_arg(c, optarg, &o->limits, status))
				return -1;
			break;
		default:
			if (blocks_opts_take(&o->blocks, c, optarg))
				break;
			fputs(usage, stderr);
			*status = EXIT_USAGE;
			return -1;
		}
	}
	if (!o->data_dir)
		problem = "--data DIR is required";
	else if (optind != argc)
		problem = "unexpected operand";
	else if (!o->tls_cert != !o->tls_key)
		problem = "--tls-cert and --tls-key go together";
	else
		problem = blocks_opts_problem(&o->blocks);
	if (problem) {
		fprintf(stderr, "cloudfsd serve: %s\n%s", problem, usage);
		*status = EXIT_USAGE;
		return -1;
	}
	return cmd_meta_resolve("serve", o->meta_url, o->data_dir, &o->store,
				status)
		       ? 0
		       : -1;
}

/* The data directory, made if missing: 0 or -1 (logged). */
static int make_data_dir(const char *dir)
{
	if (mkdir(dir, 0700) && errno != EEXIST) {
		cfs_log_error("cannot create data directory '%s': %s", dir,
			      strerror(errno));
		return -1;
	}
	return 0;
}

int cmd_lock_data_dir(const char *dir)
{
	char path[PATH_MAX];
	int fd;

	if (make_data_dir(dir))
		return -1;
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
	/* Emptied, so that a 'cloudfsd gc' holding the lock is never taken
	 * for the server whose pid the file last held. */
	if (ftruncate(fd, 0))
		cfs_log_warn("cannot empty '%s': %s", path, strerror(errno));
	return fd;
}

/* Our pid into fd, an empty file: 0 or -errno. */
static int write_pid(int fd)
{
	char pid[24];
	int n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());

	return pwrite(fd, pid, (size_t)n, 0) == n ? 0 : -errno;
}

static void write_pidfile(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int e = fd < 0 ? -errno : write_pid(fd);

	if (e)
		cfs_log_warn("cannot write pidfile '%s': %s", path,
			     strerror(-e));
	if (fd >= 0)
		close(fd);
}

static void notify_longpoll(void *arg, int64_t ns)
{
	if (ns == META_NS_ALL)
		longpoll_notify_all(arg);
	else
		longpoll_notify(arg, ns);
}

static int run(const struct serve_opts *o, const struct tls_pair *tls,
	       const sigset_t *stop)
{
	pthread_rwlock_t uploads = PTHREAD_RWLOCK_INITIALIZER;
	struct api_ctx ctx = { .uploads = &uploads };
	struct gc_daemon *gc = NULL;
	struct http_server *http = NULL;
	struct cfs_error err;
	char bound[128];
	int sig = 0, status = 1;

	ctx.longpoll = longpoll_new();
	if (!ctx.longpoll) {
		cfs_log_error("cannot start the long-poll registry");
		return 1;
	}
	ctx.meta = cmd_meta_open(&o->store, notify_longpoll, ctx.longpoll);
	if (!ctx.meta)
		goto out;
	ctx.meta->pending_ttl_s = o->pending_ttl_s;
	if (blocks_opts_open(&o->blocks, o->data_dir, &ctx.blocks, &err)) {
		cfs_log_error("%s", err.msg);
		goto out;
	}
	if (http_start(o->listen, o->threads, &o->limits, tls, &ctx, &http,
		       bound, sizeof(bound), &err)) {
		cfs_log_error("%s", err.msg);
		goto out;
	}
	cfs_log_info("cloudfsd %s serving '%s', listening on %s",
		     CLOUDFS_VERSION, o->data_dir, bound);
	if (o->pidfile)
		write_pidfile(o->pidfile);
	/* On PostgreSQL the store keeps uploads and gc apart block by block
	 * (meta_ops.gc), in this process too: a long collection need not
	 * hold back every upload of this server. */
	if (o->gc_every_s && !(gc = gc_start(ctx.meta, ctx.blocks,
					     o->store.dir ? &uploads : NULL,
					     o->retention_s, o->gc_every_s)))
		cfs_log_warn("cannot start garbage collection: no thread");
	sigwait(stop, &sig);
	cfs_log_info("stopping on %s", strsignal(sig));
	/* No quiesce first: with a pool of epoll workers, libmicrohttpd
	 * 0.9.75 races a busy worker for the listen socket and aborts.
	 * Nothing needs it: no long poll parks once the registry stopped. */
	longpoll_shutdown(ctx.longpoll);
	http_stop(http);
	gc_stop(gc);
	if (o->pidfile && unlink(o->pidfile))
		cfs_log_warn("cannot remove pidfile '%s': %s", o->pidfile,
			     strerror(errno));
	status = 0;
out:
	if (ctx.blocks)
		ctx.blocks->ops->close(ctx.blocks);
	/* Before the registry: a store shared with other servers tells it
	 * of their commits until it is closed. */
	if (ctx.meta)
		ctx.meta->ops->close(ctx.meta);
	longpoll_free(ctx.longpoll);
	return status;
}

/* The certificate and key, read before anything is created or locked:
 * with a bad one the server does not start. */
static int load_tls(const struct serve_opts *o, struct tls_pair *tls)
{
	struct cfs_error err;

	if (!http_tls_supported()) {
		cfs_log_error("cannot serve HTTPS: this cloudfsd's "
			      "libmicrohttpd is built without TLS");
		return -1;
	}
	if (tls_pair_load(tls, o->tls_cert, o->tls_key, &err)) {
		cfs_log_error("%s", err.msg);
		return -1;
	}
	return 0;
}

int cmd_serve(int argc, char **argv)
{
	struct serve_opts o = {
		.listen = CFS_DEFAULT_HOST ":" STR(CFS_DEFAULT_PORT),
		.threads = 8,
		.retention_s = GC_DEFAULT_RETENTION_S,
		.pending_ttl_s = META_PENDING_TTL_S,
		.gc_every_s = GC_DEFAULT_EVERY_S,
		.limits = HTTP_LIMITS_DEFAULT,
		.blocks = BLOCKS_OPTS_INIT,
	};
	struct tls_pair tls = { 0 };
	sigset_t stop;
	int lock = -1, status, e;

	if (parse_args(argc, argv, &o, &status))
		return status;
	if (o.tls_cert && load_tls(&o, &tls))
		return 1;
	/* Blocked before any thread starts, so that every thread inherits
	 * the mask and only sigwait() takes these signals. */
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* Only an embedded store is one process's; on PostgreSQL many
	 * servers share the metadata and hear of each other's commits. */
	if (o.store.dir)
		lock = cmd_lock_data_dir(o.store.dir);
	if (lock == -2)
		cfs_log_error("another cloudfsd is serving '%s' already",
			      o.store.dir);
	if ((o.store.dir && lock < 0) || make_data_dir(o.data_dir)) {
		tls_pair_release(&tls);
		return 1;
	}
	/* The lock says whether a server runs; the pid in its file is what
	 * 'cloudfsd stop' signals. */
	e = lock >= 0 ? write_pid(lock) : 0;
	if (e)
		cfs_log_warn(
			"cannot write the process id to the lock of '%s': %s",
			o.store.dir, strerror(-e));
	status = run(&o, o.tls_cert ? &tls : NULL, &stop);
	if (lock >= 0)
		close(lock);
	tls_pair_release(&tls);
	return status;
}
