/*
 * mount.cloudfs: mounts a user's cloudfs namespaces at a directory.
 *
 *	mount.cloudfs URL MOUNTPOINT [-f] [-d] [-s] [-o OPTION,...]
 *
 * It follows the mount.TYPE helper convention, so mount(8) and fstab work
 * with "-t fuse.cloudfs".  Everything that can be refused is refused
 * before mounting: a bad command line, an unreadable or exposed token
 * file, a mountpoint that is not an empty directory, a refused token, a
 * cache directory another mount uses, an unreachable server when no cache
 * of an earlier mount with the token is there to start from.  The mirror
 * is brought up to the server's head before the mount appears, so what a
 * user sees first is complete; offline, it is what the last mount left. Without
 *-f, it forks before all that and the parent waits: the child prepares and
 *mounts, reporting any failure on the caller's standard error, and the parent
 *exits 0 once the mount is up (daemon_start(), daemon_ready()).
 *
 * Exit status: 0 once mounted (with -f, after a clean unmount), 1 for a bad
 * command line, 32 on failure: mount(8)'s return codes, which it passes on
 * from its helpers.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cache/cache.h"
#include "cache/local.h"
#include "cache/inspect.h"
#include "cloudfs/clock.h"
#include "cloudfs/log.h"
#include "cloudfs/platform.h"
#include "cloudfs/proto.h"
#include "cloudfs/size.h"
#include "cloudfs/config.h"
#include "config.h"
#include "fs/control.h"
#include "fs/fs.h"
#include "fs/invalidate.h"
#include "fs/ops.h"
#include "fs/session.h"
#include "fs/upload.h"

/* mount(8)'s "incorrect invocation" and "mount failure", as mount.nfs and
 * mount.cifs use them: mount(8) and an fstab line run us and return what we
 * return. */
#define EXIT_USAGE	   1
#define EXIT_FAILED	   32
#define DEFAULT_CACHE_SIZE (10ULL << 30)
#define TOKEN_MAX	   256

static const char usage[] =
	"usage: mount.cloudfs [URL] MOUNTPOINT [-f] [-d] [-s] [-o OPTION[,OPTION...]]\n"
	"Mounts the cloudfs namespaces of the token's user, served at URL.\n"
	"Without URL (or with URL \"cloudfs\"), the server is the configuration's:\n"
	"~/.config/cloudfs/config, then /etc/cloudfs/config.\n"
	"\n"
	"options:\n"
	"  -o token_file=FILE  file holding the bearer token, readable only\n"
	"                      by its owner (default: the configuration's,\n"
	"                      else ~/.config/cloudfs/token)\n"
	"  -o cache=DIR        cache directory (default under\n"
	"                      $XDG_CACHE_HOME/cloudfs/)\n"
	"  -o timeout=SECONDS  network timeout: to connect, for a stalled\n"
	"                      transfer, and for an uncached read (default 30)\n"
	"  -o readahead=N      blocks fetched ahead of a sequential reader\n"
	"                      (default 8)\n"
	"  -o parallel=N       block transfers at once (default 4)\n"
	"  -o settle=SECONDS   from a written file's last close to its\n"
	"                      commit (default 0.05)\n"
	"  -o streaming=off    neither fetch other devices' large files while\n"
	"                      they upload, nor announce ours (default on)\n"
	"  -o cache_size=SIZE  most bytes of blocks and files being written\n"
	"                      the cache keeps, as 512M, 10G... (default 10G;\n"
	"                      0: no limit)\n"
	"  -o at=TIME          the tree as it was at TIME (2026-12-01T10:00,\n"
	"                      @UNIX_SECONDS), read-only, from the server's\n"
	"                      history\n"
	"  -o cache_min_free=SIZE  bytes kept free on the cache's disk\n"
	"                      (default 5% of the disk, at most 1G; 0: none)\n"
	"  -o ca=FILE          CA certificates to verify an https server with\n"
	"  -o log=FILE         log file once daemonized (default\n"
	"                      CACHE/mount.log; syslog gets every line too)\n"
	"  -o OPTION           any other option goes to FUSE (allow_other...)\n"
	"  -f                  stay in the foreground, log to stderr\n"
	"  -d                  debug output (implies -f)\n"
	"  -s                  single-threaded\n"
	"  -h, --help          show this help\n"
	"  -V, --version       show the version\n"
	"\n"
	"Options from the command line win over the configuration's.\n"
	"\n"
	"exit status: 0 mounted (with -f: unmounted cleanly), 1 wrong command line\n"
	"or configuration, 32 failure, as mount(8) expects of a helper.\n"
	"See mount.cloudfs(8).\n";

struct cli {
	char *token_file, *cache, *ca, *log, *type, *cache_size, *min_free, *at;
	char *streaming;
	unsigned timeout, readahead, parallel;
	double settle;
	int foreground, debug, single, help, version;
	char *url, *mountpoint;
	int extra_operands;
};

enum { KEY_FOREGROUND, KEY_DEBUG, KEY_SINGLE, KEY_HELP, KEY_VERSION };

#define CLI_OPT(t, field)                         \
	{                                         \
		t, offsetof(struct cli, field), 0 \
	}

static const struct fuse_opt cli_opts[] = {
	CLI_OPT("token_file=%s", token_file),
	CLI_OPT("cache=%s", cache),
	CLI_OPT("ca=%s", ca),
	CLI_OPT("log=%s", log),
	CLI_OPT("timeout=%u", timeout),
	CLI_OPT("readahead=%u", readahead),
	CLI_OPT("parallel=%u", parallel),
	CLI_OPT("settle=%lf", settle),
	CLI_OPT("cache_size=%s", cache_size),
	CLI_OPT("cache_min_free=%s", min_free),
	CLI_OPT("at=%s", at),
	CLI_OPT("streaming=%s", streaming),
	CLI_OPT("-t %s", type),
	FUSE_OPT_KEY("-f", KEY_FOREGROUND),
	FUSE_OPT_KEY("-d", KEY_DEBUG),
	FUSE_OPT_KEY("debug", KEY_DEBUG),
	FUSE_OPT_KEY("-s", KEY_SINGLE),
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	/* mount(8)'s own flags and fstab words: not for FUSE. */
	FUSE_OPT_KEY("-n", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("-v", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("defaults", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("auto", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("noauto", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("nofail", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("_netdev", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("user", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("users", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("nouser", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_END,
};

static int on_arg(void *data, const char *arg, int key,
		  struct fuse_args *outargs)
{
	struct cli *c = data;

	(void)outargs;
	switch (key) {
	case FUSE_OPT_KEY_NONOPT:
		if (!c->url)
			c->url = strdup(arg);
		else if (!c->mountpoint)
			c->mountpoint = strdup(arg);
		else
			c->extra_operands++;
		return 0;
	case FUSE_OPT_KEY_OPT:
		/* fstab's x-systemd.* and comment=: for other programs. */
		return strncmp(arg, "x-", 2) != 0 &&
		       strncmp(arg, "comment=", 8) != 0;
	case KEY_FOREGROUND:
		c->foreground = 1;
		return 0;
	case KEY_DEBUG:
		c->debug = c->foreground = 1;
		return 0;
	case KEY_SINGLE:
		c->single = 1;
		return 0;
	case KEY_HELP:
		c->help = 1;
		return 0;
	case KEY_VERSION:
		c->version = 1;
		return 0;
	}
	return 1;
}

/* Reads the token: the file must be a regular file only its owner can
 * read, holding one token. */
static int read_token(const char *path, char token[TOKEN_MAX])
{
	struct stat st;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		cfs_log_error("cannot read token file '%s': %s", path,
			      strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		cfs_log_error("token file '%s' is not a regular file", path);
		close(fd);
		return -1;
	}
	if (st.st_mode & 077) {
		cfs_log_error(
			"token file '%s' can be read by others (mode %04o): chmod 600 it",
			path, (unsigned)(st.st_mode & 07777));
		close(fd);
		return -1;
	}
	n = read(fd, token, TOKEN_MAX - 1);
	close(fd);
	token[n > 0 ? n : 0] = '\0';
	token[strcspn(token, " \t\r\n")] = '\0';
	if (!token[0]) {
		cfs_log_error("token file '%s' holds no token", path);
		return -1;
	}
	return 0;
}

static int check_mountpoint(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	bool empty = true;

	if (!d) {
		cfs_log_error("cannot open mountpoint '%s': %s", path,
			      strerror(errno));
		return -1;
	}
	while (empty && (de = readdir(d)))
		empty = strcmp(de->d_name, ".") == 0 ||
			strcmp(de->d_name, "..") == 0;
	closedir(d);
	if (!empty)
		cfs_log_error("mountpoint '%s' is not an empty directory",
			      path);
	return empty ? 0 : -1;
}

/* The root namespace of the token's user; checks the server on the way.
 * -1 (logged) when it refused, or answered with a certificate that does
 * not verify; 1 (why says) when it cannot be reached. */
static int root_namespace(struct remote_conn *conn, const struct cli *c,
			  int64_t *root_ns, struct cfs_error *why)
{
	struct remote_ns *list = NULL;
	size_t n = 0;
	bool failed =
		remote_hello(conn, why) != CFS_OK ||
		remote_namespaces(conn, 0, NULL, &list, &n, why) != CFS_OK;

	if (failed) {
		if (remote_conn_untrusted(conn))
			cfs_log_error("cannot trust the server at %s: %s",
				      c->url, why->msg);
		else if (why->code == CFS_ERR_UNREACHABLE)
			return 1;
		else if (why->code == CFS_ERR_UNAUTHORIZED)
			cfs_log_error(
				"the server refused the token in '%s': %s",
				c->token_file, why->msg);
		else
			cfs_log_error("%s", why->msg);
		return -1;
	}
	*root_ns = 0;
	for (size_t i = 0; i < n; i++)
		if (list[i].root)
			*root_ns = list[i].ns;
	remote_ns_free(list, n);
	if (*root_ns <= 0) {
		cfs_log_error("the server at %s named no root namespace",
			      c->url);
		return -1;
	}
	return 0;
}

/*
 * Where the default caches of url are: $XDG_CACHE_HOME/cloudfs (or
 * ~/.cache/cloudfs) into *dir, and the start of their names, "HASH-",
 * into *name: each is "HASH-ROOTNS", plus "-at-TIME" for a
 * point-in-time mount, whose mirror is of then.  -1 without a home.
 */
static int default_caches(const char *url, char *dir, size_t dir_len,
			  char name[24])
{
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	char hex[CFS_BLOCK_ID_HEX_LEN + 1];
	struct cfs_block_id h;

	cfs_sha256(url, strlen(url), &h);
	cfs_block_id_to_hex(&h, hex);
	snprintf(name, 24, "%.16s-", hex);
	if (xdg && xdg[0] == '/')
		snprintf(dir, dir_len, "%s/cloudfs", xdg);
	else if (home && home[0] == '/')
		snprintf(dir, dir_len, "%s/.cache/cloudfs", home);
	else
		return -1;
	return 0;
}

/* The default cache of url's root namespace root_ns (see default_caches). */
static int default_cache(const char *url, int64_t root_ns, int64_t at,
			 char *out, size_t len)
{
	char dir[PATH_MAX], name[24];
	int n;

	if (default_caches(url, dir, sizeof(dir), name))
		return -1;
	n = at ? snprintf(out, len, "%s/%s%lld-at-%lld", dir, name,
			  (long long)root_ns, (long long)at)
	       : snprintf(out, len, "%s/%s%lld", dir, name, (long long)root_ns);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* Opens dir as the cache of an offline mount, if it is one (see
 * cache_offline_root); fs->cache stays NULL otherwise. */
static int try_offline_cache(const char *dir, struct fs *fs,
			     const char *token_id, int64_t *root_ns,
			     struct cfs_error *err)
{
	if (cache_open(dir, &fs->cache, err))
		return -1;
	if (cache_offline_root(fs->cache, fs->remote->url, token_id, root_ns,
			       err) == CFS_OK)
		return 0;
	cache_close(fs->cache);
	fs->cache = NULL;
	return -1;
}

/*
 * A mount that starts while the server cannot be reached (why) serves the
 * cache of an earlier mount of this URL with this token: -o cache=, or
 * the default one.  What it holds reads, writes are queued, and the sync
 * thread catches up once the server answers.  Without such a cache there
 * is nothing to show, and the mount is refused.
 */
static int open_offline(const struct cli *c, struct fs *fs,
			const char *token_id, int64_t *root_ns,
			const struct cfs_error *why)
{
	char dir[PATH_MAX], path[PATH_MAX + 256], name[24];
	struct cfs_error err = { .msg = "" };
	DIR *d;
	struct dirent *de;

	if (c->cache) {
		try_offline_cache(c->cache, fs, token_id, root_ns, &err);
	} else if (default_caches(fs->remote->url, dir, sizeof(dir), name) ==
			   0 &&
		   (d = opendir(dir))) {
		while (!fs->cache && (de = readdir(d))) {
			const char *digits = de->d_name + strlen(name);
			int64_t ns;

			/* HASH-ROOTNS, and -at-TIME for a mount of that time
			 * only: exactly the name this mount would use. */
			if (strncmp(de->d_name, name, strlen(name)) != 0 ||
			    (ns = atoll(digits)) <= 0 ||
			    default_cache(fs->remote->url, ns, fs->opt.at, path,
					  sizeof(path)) ||
			    strcmp(path + strlen(dir) + 1, de->d_name) != 0)
				continue;
			try_offline_cache(path, fs, token_id, root_ns, &err);
		}
		closedir(d);
	}
	if (!fs->cache) {
		cfs_log_error(
			"cannot reach the server at %s (%s), and there is no cache of an earlier mount with this token to start from%s%s",
			c->url, why->msg, err.msg[0] ? ": " : "", err.msg);
		return -1;
	}
	cfs_log_warn(
		"cannot reach the server at %s (%s): mounted from cache '%s' as the last mount left it; what it holds reads, changes are queued until the server answers",
		c->url, why->msg, fs->cache->path);
	return 0;
}

/* What an earlier mount sent and never had answered may have been applied:
 * in doubt (fs->in_doubt) until the uploader resends it. */
static enum cfs_err load_doubt(struct fs *fs, struct cfs_error *err)
{
	struct cfs_sql *db = cache_db(fs->cache, err);
	enum cfs_err rc =
		db ? queue_in_doubt(db, &fs->in_doubt, err) : err->code;

	if (db)
		cache_db_release(fs->cache, db);
	return rc;
}

/* Everything before the mount: returns 0 with fs ready to mount. */
/* Where `cloudfs cache stat` finds it, mounted or not. */
static enum cfs_err record_limit(struct fs *fs, struct cfs_error *err)
{
	struct cfs_sql *db = cache_db(fs->cache, err);
	enum cfs_err rc =
		db ? inspect_set_limit(db, fs->opt.cache_size, err) : err->code;

	if (db)
		cache_db_release(fs->cache, db);
	return rc;
}

static int prepare(struct cli *c, struct fs *fs)
{
	char token[TOKEN_MAX], cache_dir[PATH_MAX];
	char token_id[CACHE_TOKEN_ID_SIZE];
	static const bool never = false;
	struct remote_conn *conn = NULL;
	struct cfs_error err, why;
	struct cfs_block_id h;
	int64_t root_ns;
	int reached = -1, rc = -1;

	if (read_token(c->token_file, token) || check_mountpoint(c->mountpoint))
		return -1;
	if (!(fs->remote = remote_curl_new(c->url, token, c->ca, c->timeout,
					   &err))) {
		cfs_log_error("%s", err.msg);
		return -1;
	}
	/* The cache keeps a hash of the token, never the token. */
	cfs_sha256(token, strlen(token), &h);
	cfs_block_id_to_hex(&h, token_id);
	fs->open = openfiles_new();
	fs->listed = listed_dirs_new();
	conn = remote_conn_new(fs->remote);
	if (!fs->open || !fs->listed || !conn)
		cfs_log_error("out of memory");
	else
		reached = root_namespace(conn, c, &root_ns, &why);
	if (reached < 0) {
		/* logged */
	} else if (reached > 0) {
		if (open_offline(c, fs, token_id, &root_ns, &why)) {
			/* logged */
		} else if (cache_bind(fs->cache, fs->remote->url, root_ns, NULL,
				      fs->client, &err) ||
			   record_limit(fs, &err) || load_doubt(fs, &err)) {
			cfs_log_error("%s", err.msg);
		} else {
			rc = 0;
		}
	} else if (!c->cache &&
		   default_cache(fs->remote->url, root_ns, fs->opt.at,
				 cache_dir, sizeof(cache_dir))) {
		cfs_log_error(
			"neither XDG_CACHE_HOME nor HOME is set: give -o cache=DIR");
	} else if (cache_open(c->cache ? c->cache : cache_dir, &fs->cache,
			      &err) ||
		   cache_bind(fs->cache, fs->remote->url, root_ns, token_id,
			      fs->client, &err) ||
		   record_limit(fs, &err) || load_doubt(fs, &err) ||
		   sync_catch_up(fs, conn, &never, &err)) {
		cfs_log_error("%s", err.msg);
	} else {
		rc = 0;
	}
	remote_conn_free(conn);
	return rc;
}

/* "fsname=URL", with the commas and backslashes of URL escaped as FUSE
 * option lists need. */
static char *fsname_opt(const char *url)
{
	char *opt = malloc(7 + 2 * strlen(url) + 1), *p;

	if (!opt)
		return NULL;
	p = opt + sprintf(opt, "fsname=");
	for (; *url; url++) {
		if (*url == ',' || *url == '\\')
			*p++ = '\\';
		*p++ = *url;
	}
	*p = '\0';
	return opt;
}

/*
 * The FUSE session, with our fixed mount options added; NULL when FUSE
 * refuses the options (it says which), before anything else is done.
 */
static struct fuse_session *new_session(struct cli *c, struct fuse_args *args,
					struct fs *fs)
{
	char *fsname = fsname_opt(c->url), *opts = NULL;
	int fail;

	/* The kernel checks permissions against the modes we report; the
	 * fsname and subtype make it "URL on MOUNTPOINT type fuse.cloudfs". */
	fail = !fsname ||
	       fuse_opt_add_opt(&opts, "default_permissions,subtype=cloudfs") ||
	       fuse_opt_add_opt(&opts, fsname) ||
	       (fs->opt.at && fuse_opt_add_opt(&opts, "ro")) ||
	       fuse_opt_add_arg(args, "-o") || fuse_opt_add_arg(args, opts) ||
	       (c->debug && fuse_opt_add_arg(args, "-d"));
	free(fsname);
	free(opts);
	return fail ? NULL
		    : fuse_session_new(args, &fs_ops, sizeof(fs_ops), fs);
}

static int mount_session(struct cli *c, struct fs *fs)
{
	if (fuse_set_signal_handlers(fs->se) ||
	    fuse_session_mount(fs->se, c->mountpoint)) {
		cfs_log_error("cannot mount on '%s'", c->mountpoint);
		fuse_remove_signal_handlers(fs->se);
		return -1;
	}
	return 0;
}

/* Once daemonized, the log goes to a file. */
static int open_log(const struct cli *c, const struct fs *fs)
{
	char path[PATH_MAX + 16];
	int fd;

	if (c->log)
		snprintf(path, sizeof(path), "%s", c->log);
	else
		snprintf(path, sizeof(path), "%s/mount.log", fs->cache->path);
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		cfs_log_error("cannot open log file '%s': %s", path,
			      strerror(errno));
	return fd;
}

static int serve(struct cli *c, struct fs *fs)
{
	struct fuse_loop_config *loop;
	int rc;

	/* Threads start here, once the mount is up. */
	fs->keeper = keeper_start(fs->cache, fs->opt.cache_size,
				  fs->opt.cache_min_free);
	fs->fetch = fs->keeper ? fetcher_new(fs->remote, fs->cache, fs->keeper,
					     fs->opt.parallel)
			       : NULL;
	fs->upload = fs->fetch && sessions_start(fs->sessions) == 0
			     ? uploader_start(fs)
			     : NULL;
	fs->sync = fs->upload ? sync_start(fs) : NULL;
	if (!fs->sync) {
		cfs_log_error(
			"cannot start the keeper, fetcher, uploader and sync threads");
		return -1;
	}
	fs->control = control_start(fs);
	cfs_log_info("mounted %s on '%s' (cache '%s')", c->url, c->mountpoint,
		     fs->cache->path);
	if (c->single) {
		rc = fuse_session_loop(fs->se);
	} else {
		loop = fuse_loop_cfg_create();
		if (!loop)
			return -1;
		fuse_loop_cfg_set_max_threads(loop, 16);
		rc = fuse_session_loop_mt(fs->se, loop);
		fuse_loop_cfg_destroy(loop);
	}
	cfs_log_info("unmounting '%s'", c->mountpoint);
	/* A positive rc is the signal that ended the loop: a clean stop. */
	return rc < 0 ? -1 : 0;
}

/*
 * Going into the background, in two steps around everything that opens
 * the cache.  daemon_start() forks before any SQLite connection, lock,
 * thread or server connection exists; the parent waits and exits 0 once
 * the child says the mount is up (daemon_ready()), or with the child's
 * exit status when it fails first.  So every database connection is
 * opened by the process that uses it: POSIX advisory locks do not follow
 * fork(), and SQLite connections carried across one hold none of the
 * locks SQLite relies on.  Another process's connection (cloudfs(1)'s)
 * then takes itself for the last one and, closing, checkpoints and
 * deletes the write-ahead log and the shared-memory index under the
 * mount, which goes on writing to the deleted files.
 */
static int daemon_start(int *ready_fd)
{
	int p[2], status;
	pid_t pid, waited;
	ssize_t n;
	char ok;

	if (platform_pipe(p)) {
		cfs_log_error("cannot go into the background: %s",
			      strerror(errno));
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		cfs_log_error("cannot go into the background: %s",
			      strerror(errno));
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid > 0) {
		close(p[1]);
		while ((n = read(p[0], &ok, 1)) < 0 && errno == EINTR)
			;
		if (n == 1)
			_exit(0);
		/* The child failed before the mount was up (and said why). */
		while ((waited = waitpid(pid, &status, 0)) < 0 &&
		       errno == EINTR)
			;
		_exit(waited == pid && WIFEXITED(status) ? WEXITSTATUS(status)
							 : EXIT_FAILED);
	}
	/* The child stays in the caller's session until the mount is up, so
	 * that ^C still stops it all while it catches up. */
	close(p[0]);
	*ready_fd = p[1];
	return 0;
}

/* The mount is up: the caller's terminal is let go (standard error goes to
 * log_fd, -1 in the foreground, and to syslog) and the waiting parent
 * exits 0. */
static void daemon_ready(int ready_fd, int log_fd)
{
	int null_fd;

	if (chdir("/"))
		cfs_log_warn("cannot change directory to '/': %s",
			     strerror(errno));
	if (ready_fd < 0)
		return;
	if (setsid() < 0)
		cfs_log_warn("cannot start a session: %s", strerror(errno));
	null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null_fd >= 0) {
		dup2(null_fd, STDIN_FILENO);
		dup2(null_fd, STDOUT_FILENO);
		close(null_fd);
	}
	dup2(log_fd, STDERR_FILENO);
	/* The log file stays (cloudfs tools and bug reports read it); syslog
	 * is where an admin of a boot-time mount looks first. */
	cfs_log_syslog();
	/* SIGPIPE is ignored (fuse_set_signal_handlers()): a parent killed
	 * meanwhile costs an EPIPE here, not the mount. */
	if (write(ready_fd, "", 1) != 1)
		cfs_log_warn("cannot tell the parent that the mount is up");
	close(ready_fd);
}

/* Returns the exit status. */
static int run(struct cli *c, struct fuse_args *args)
{
	struct fs fs = {
		.opt = {
			.url = c->url,
			.mountpoint = c->mountpoint,
			.timeout_s = c->timeout,
			.readahead = c->readahead,
			.parallel = c->parallel,
			.settle_ms = (unsigned)(c->settle * 1000),
			.cache_size = DEFAULT_CACHE_SIZE,
			.cache_min_free = KEEPER_FLOOR_DEFAULT,
			.streaming = !c->streaming ||
				     strcmp(c->streaming, "off") != 0,
		},
		.uid = getuid(),
		.gid = getgid(),
	};
	int status = EXIT_FAILED, log_fd = -1, ready_fd = -1;

	if (c->cache_size)
		cfs_size_parse(c->cache_size, &fs.opt.cache_size);
	if (c->min_free)
		cfs_size_parse(c->min_free, &fs.opt.cache_min_free);
	if (c->at)
		cfs_time_parse(c->at, &fs.opt.at);
	fs.se = new_session(c, args, &fs);
	if (!fs.se) {
		fprintf(stderr, "\n%s", usage);
		return EXIT_USAGE;
	}
	if (!c->foreground && daemon_start(&ready_fd)) {
		fuse_session_destroy(fs.se);
		return EXIT_FAILED;
	}
	pthread_mutex_init(&fs.apply_lock, NULL);
	pthread_cond_init(&fs.doubt_over, NULL);
	if (prepare(c, &fs) || !(fs.sessions = sessions_new(&fs)) ||
	    (!c->foreground && (log_fd = open_log(c, &fs)) < 0) ||
	    mount_session(c, &fs))
		goto out;
	daemon_ready(ready_fd, log_fd);
	ready_fd = -1;
	status = serve(c, &fs) ? EXIT_FAILED : 0;
	/* The order matters: the sync thread first, then every write
	 * session committed and the queue sent while there is time (which
	 * may fetch blocks), then the fetcher. */
	control_stop(fs.control);
	sync_stop(fs.sync);
	uploader_stop(fs.upload, c->timeout);
	sessions_free(fs.sessions);
	fs.sessions = NULL;
	fetcher_free(fs.fetch);
	keeper_stop(fs.keeper);
	fuse_session_unmount(fs.se);
	fuse_remove_signal_handlers(fs.se);
out:
	sessions_free(fs.sessions);
	fuse_session_destroy(fs.se);
	if (log_fd >= 0)
		close(log_fd);
	if (ready_fd >= 0)
		close(ready_fd);
	openfiles_free(fs.open);
	listed_dirs_free(fs.listed);
	cache_close(fs.cache);
	remote_free(fs.remote);
	pthread_cond_destroy(&fs.doubt_over);
	pthread_mutex_destroy(&fs.apply_lock);
	return status;
}

/* What is wrong with a parsed command line, or NULL. */
static const char *cli_problem(const struct cli *c)
{
	uint64_t size;
	int64_t when;

	if (!c->mountpoint)
		return "MOUNTPOINT is required";
	if (!c->url)
		return "URL is required: give it, or 'server =' in ~/.config/cloudfs/config";
	if (c->extra_operands)
		return "too many operands";
	if (!c->token_file)
		return "-o token_file=FILE is required (no HOME for the default)";
	if (c->timeout == 0 || c->parallel == 0)
		return "timeout and parallel must be at least 1";
	if (c->settle < 0 || c->settle > 3600)
		return "settle must be from 0 to 3600 seconds";
	if (c->cache_size && !cfs_size_parse(c->cache_size, &size))
		return "cache_size must be a size such as 512M or 10G";
	if (c->min_free && !cfs_size_parse(c->min_free, &size))
		return "cache_min_free must be a size such as 512M or 1G";
	if (c->streaming && strcmp(c->streaming, "on") != 0 &&
	    strcmp(c->streaming, "off") != 0)
		return "streaming must be on or off";
	if (c->at && !cfs_time_parse(c->at, &when))
		return "at must be a time such as 2026-12-01T10:00 or @1795000000";
	return NULL;
}

static void cli_release(struct cli *c)
{
	free(c->url);
	free(c->mountpoint);
	free(c->token_file);
	free(c->cache);
	free(c->ca);
	free(c->streaming);
	free(c->log);
	free(c->type);
	free(c->cache_size);
	free(c->min_free);
	free(c->at);
}

/* fuse_opt overwrites a string option without freeing the value before, so
 * the configuration's strings are parsed into c and moved to file, and fill
 * what the command line leaves unset (see complete). */
static const size_t cli_strings[] = {
	offsetof(struct cli, token_file), offsetof(struct cli, cache),
	offsetof(struct cli, ca),	  offsetof(struct cli, log),
	offsetof(struct cli, cache_size), offsetof(struct cli, min_free),
	offsetof(struct cli, at),
};

static char **cli_string(struct cli *c, size_t i)
{
	return (char **)((char *)c + cli_strings[i]);
}

/* Parses the configuration's "options =" into c before the command line,
 * which so wins for numbers and flags.  The FUSE options among them stay
 * in file_args. */
static int parse_config_options(const struct cfs_config *cfg, struct cli *c,
				struct cli *file, struct fuse_args *file_args)
{
	if (!cfg->options)
		return 0;
	if (fuse_opt_add_arg(file_args, "mount.cloudfs") ||
	    fuse_opt_add_arg(file_args, "-o") ||
	    fuse_opt_add_arg(file_args, cfg->options))
		return -1;
	if (fuse_opt_parse(file_args, c, cli_opts, on_arg)) {
		fprintf(stderr,
			"mount.cloudfs: 'options = %s' of '%s' is not valid\n",
			cfg->options, cfg->options_file);
		return -1;
	}
	for (size_t i = 0; i < sizeof(cli_strings) / sizeof(cli_strings[0]);
	     i++) {
		*cli_string(file, i) = *cli_string(c, i);
		*cli_string(c, i) = NULL;
	}
	return 0;
}

/* The default token file, $XDG_CONFIG_HOME/cloudfs/token; NULL without a
 * configuration directory. */
static char *default_token_file(void)
{
	char dir[4096], *path;

	if (cfs_config_dir(dir, sizeof(dir)) ||
	    asprintf(&path, "%s/token", dir) < 0)
		return NULL;
	return path;
}

/* Fills what the command line left unset: from the configuration's
 * options, then its keys, then the defaults.  One operand is the
 * mountpoint; "cloudfs" as the URL (an fstab line's first field, which
 * mount(8) requires) means the configuration's server. */
static int complete(struct cli *c, struct cli *file,
		    const struct cfs_config *cfg, struct fuse_args *file_args,
		    struct fuse_args *args)
{
	if (c->url && !c->mountpoint) {
		c->mountpoint = c->url;
		c->url = NULL;
	} else if (c->url && strcmp(c->url, "cloudfs") == 0) {
		free(c->url);
		c->url = NULL;
	}
	if (!c->url && cfg->server && !(c->url = strdup(cfg->server)))
		return -1;
	for (size_t i = 0; i < sizeof(cli_strings) / sizeof(cli_strings[0]);
	     i++) {
		char **mine = cli_string(c, i), **theirs = cli_string(file, i);

		if (!*mine) {
			*mine = *theirs;
			*theirs = NULL;
		}
	}
	if (!c->token_file && cfg->token_file &&
	    !(c->token_file = strdup(cfg->token_file)))
		return -1;
	if (!c->token_file)
		c->token_file = default_token_file();
	if (!c->ca && cfg->ca && !(c->ca = strdup(cfg->ca)))
		return -1;
	for (int i = 1; i < file_args->argc; i++)
		if (fuse_opt_add_arg(args, file_args->argv[i]))
			return -1;
	return 0;
}

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct cli c = {
		.timeout = 30, .readahead = 8, .parallel = 4, .settle = 0.05
	};
	struct fuse_args file_args = FUSE_ARGS_INIT(0, NULL);
	struct cli file = { 0 };
	struct cfs_config cfg = { 0 };
	const char *problem = NULL;
	char why[600];
	int status;

	cfs_log_init("mount.cloudfs", CFS_LOG_INFO);
	if (cfs_config_load(&cfg, why, sizeof(why))) {
		fprintf(stderr, "mount.cloudfs: %s\n", why);
		status = EXIT_USAGE;
	} else if (parse_config_options(&cfg, &c, &file, &file_args) ||
		   fuse_opt_parse(&args, &c, cli_opts, on_arg) ||
		   complete(&c, &file, &cfg, &file_args, &args)) {
		fputs(usage, stderr);
		status = EXIT_USAGE;
	} else if (c.help || c.version) {
		if (c.help)
			fputs(usage, stdout);
		else
			printf("mount.cloudfs %s (libfuse %s)\n",
			       CLOUDFS_VERSION, fuse_pkgversion());
		status = 0;
	} else if ((problem = cli_problem(&c))) {
		fprintf(stderr, "mount.cloudfs: %s\n\n%s", problem, usage);
		status = EXIT_USAGE;
	} else {
		if (c.debug)
			cfs_log_init("mount.cloudfs", CFS_LOG_DEBUG);
		remote_curl_global_init();
		status = run(&c, &args);
		remote_curl_global_cleanup();
	}
	cli_release(&c);
	cli_release(&file);
	cfs_config_release(&cfg);
	fuse_opt_free_args(&args);
	fuse_opt_free_args(&file_args);
	return status;
}
