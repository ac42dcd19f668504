/*
 * Opening, locking and binding the cache directory (cache/cache.h), and the
 * schema of cache.db:
 *
 *	info(key, value)             'url' and 'root_ns' the cache belongs to,
 *	                             'client': the id its commits carry,
 *	                             'token': a hash of the last token that
 *	                             mounted it with the server reachable
 *	namespaces(ns, cursor, listed, mount_ino)
 *	entries(ino, ns, node, parent, name, kind, ..., jid, pending)
 *	                             the mirror: what the kernel is shown
 *	shadow(ino, parent, name, kind, ..., jid, refused)
 *	                             the server's state of entries with local
 *	                             changes not yet confirmed (pending > 0)
 *	ops(seq, ord, ino, ns, type, path, ..., tries, error, sent)
 *	                             the queue of journal operations to send,
 *	                             with why the last try of one failed, and
 *	                             whether one was sent with no answer
 *	                             recorded yet (it is in doubt)
 *	blocks(id, size, stored, used)
 *	                             the block files present, with their
 *	                             last use (seconds) for eviction
 *	pins(ino)                    files and folders kept whole
 *	conflicts(ino, original, made)
 *	                             conflicted copies this mount made
 *	repaths(ino, ns, from_path)  folders the server moved under a folder
 *	                             not listed yet, whose queued operations
 *	                             still name them by from_path
 *
 * The mirror's invariants are in cache/mirror.c, the local changes' in
 * cache/local.c.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache/blockcache.h"
#include "cache/cache.h"
#include "cache/mirror.h"
#include "cloudfs/log.h"
#include "cloudfs/num.h"

#define SCHEMA_VERSION 7

static const char schema[] =
	"CREATE TABLE info(key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
	"CREATE TABLE namespaces(ns INTEGER PRIMARY KEY,"
	" cursor INTEGER NOT NULL DEFAULT 0, listed INTEGER NOT NULL DEFAULT 0,"
	" mount_ino INTEGER NOT NULL);"
	"CREATE TABLE entries(ino INTEGER PRIMARY KEY AUTOINCREMENT,"
	" ns INTEGER NOT NULL, node INTEGER NOT NULL, parent INTEGER NOT NULL,"
	" name TEXT NOT NULL, kind INTEGER NOT NULL, size INTEGER NOT NULL,"
	" mtime_ns INTEGER NOT NULL, mode INTEGER NOT NULL, blocks BLOB,"
	" target TEXT, mount_ns INTEGER, jid INTEGER NOT NULL,"
	" pending INTEGER NOT NULL DEFAULT 0);"
	"CREATE UNIQUE INDEX entries_by_node ON entries(ns, node);"
	"CREATE INDEX entries_by_name ON entries(ns, parent, name);"
	/* (ns, parent) with the rowid behind: readdir in inode order. */
	"CREATE INDEX entries_by_parent ON entries(ns, parent);"
	"CREATE TABLE shadow(ino INTEGER PRIMARY KEY, parent INTEGER NOT NULL,"
	" name TEXT NOT NULL, kind INTEGER NOT NULL, size INTEGER NOT NULL,"
	" mtime_ns INTEGER NOT NULL, mode INTEGER NOT NULL, blocks BLOB,"
	" target TEXT, mount_ns INTEGER, jid INTEGER NOT NULL,"
	" refused INTEGER NOT NULL DEFAULT 0);"
	/* ord: the order of sending; an operation that must come first
	 * (a folder to create again) goes between two others. */
	"CREATE TABLE ops(seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	" ord REAL NOT NULL, ino INTEGER NOT NULL, ns INTEGER NOT NULL,"
	" type INTEGER NOT NULL, kind INTEGER NOT NULL,"
	" path TEXT NOT NULL, to_path TEXT,"
	" size INTEGER, mtime_ns INTEGER, mode INTEGER, blocks BLOB,"
	" target TEXT, replace INTEGER NOT NULL DEFAULT 0,"
	" tries INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX ops_by_ord ON ops(ord);"
	"CREATE INDEX ops_by_ino ON ops(ino);"
	"CREATE TABLE blocks(id BLOB PRIMARY KEY, size INTEGER NOT NULL,"
	" stored INTEGER NOT NULL) WITHOUT ROWID;";

/* From version 1 to 2: the blocks' last use (for eviction), pins, and
 * the conflicted copies this mount made. */
static const char upgrade_2[] =
	"ALTER TABLE blocks ADD COLUMN used INTEGER NOT NULL DEFAULT 0;"
	"UPDATE blocks SET used = stored;"
	"CREATE INDEX blocks_by_use ON blocks(used);"
	"CREATE TABLE pins(ino INTEGER PRIMARY KEY);"
	"CREATE TABLE conflicts(ino INTEGER PRIMARY KEY,"
	" original TEXT NOT NULL, made INTEGER NOT NULL);"
	"PRAGMA user_version = 2;";

/* From version 2 to 3: why an operation's last try failed, for status;
 * the tombstones of deletes (cache/mirror.c's invariant 9), found without
 * reading the namespace's rows. */
static const char upgrade_3[] =
	"ALTER TABLE ops ADD COLUMN error TEXT;"
	"CREATE INDEX entries_tombstones ON entries(ns, jid)"
	" WHERE kind = 0 AND pending = 0;"
	"PRAGMA user_version = 3;";

/* From version 3 to 4: which operations are in doubt (sent, no answer
 * recorded).  A queue left by an older mount.cloudfs is, all of it. */
static const char upgrade_4[] =
	"ALTER TABLE ops ADD COLUMN sent INTEGER NOT NULL DEFAULT 0;"
	"UPDATE ops SET sent = 1;"
	"CREATE INDEX ops_sent ON ops(seq) WHERE sent;"
	"PRAGMA user_version = 4;";

/* From version 4 to 5: the moves whose queued operations wait for their
 * folder's new place (cache/mirror.c, invariant 11); the folders of a
 * folder, counted for its link count at every stat without reading its
 * files. */
static const char upgrade_5[] =
	"CREATE TABLE repaths(ino INTEGER PRIMARY KEY, ns INTEGER NOT NULL,"
	" from_path TEXT NOT NULL);"
	"CREATE INDEX entries_subdirs ON entries(ns, parent)"
	" WHERE kind IN (2, 4);"
	"PRAGMA user_version = 5;";

/* From version 5 to 6: atime and ctime, kept apart from mtime in the
 * mirror, its shadows and the queue (mount.cloudfs(8), "POSIX BEHAVIOUR").
 * The mirror's rows take their mtime as both, as the server's rows from
 * before do; a queued change happened before now, its best ctime. */
static const char upgrade_6[] =
	"ALTER TABLE entries ADD COLUMN atime_ns INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE entries ADD COLUMN ctime_ns INTEGER NOT NULL DEFAULT 0;"
	"UPDATE entries SET atime_ns = mtime_ns, ctime_ns = mtime_ns;"
	"ALTER TABLE shadow ADD COLUMN atime_ns INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE shadow ADD COLUMN ctime_ns INTEGER NOT NULL DEFAULT 0;"
	"UPDATE shadow SET atime_ns = mtime_ns, ctime_ns = mtime_ns;"
	"ALTER TABLE ops ADD COLUMN atime_ns INTEGER;"
	"ALTER TABLE ops ADD COLUMN ctime_ns INTEGER;"
	"UPDATE ops SET atime_ns = mtime_ns,"
	" ctime_ns = CAST(strftime('%s', 'now') AS INTEGER) * 1000000000;"
	"PRAGMA user_version = 6;";

/* From version 6 to 7: hard links, the further names of a node (kind
 * LINK, with the node they name), counted for a node's link count.  A
 * mount before took them as no entry, so every namespace is listed again
 * from the start to bring them (rows the mirror has are not news then). */
static const char upgrade_7[] =
	"ALTER TABLE entries ADD COLUMN link_of INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE shadow ADD COLUMN link_of INTEGER NOT NULL DEFAULT 0;"
	"CREATE INDEX entries_links ON entries(ns, link_of) WHERE kind = 9;"
	"UPDATE namespaces SET cursor = 0;"
	"PRAGMA user_version = 7;";

/* mkdir -p, the last component 0700. */
static int make_dirs(const char *dir)
{
	char path[PATH_MAX];

	if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0755) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(path, 0700) && errno != EEXIST)
		return -errno;
	return 0;
}

/* A private subdirectory, created if missing: a descriptor, or -1 with
 * errno set. */
static int open_subdir(int dirfd, const char *name)
{
	if (mkdirat(dirfd, name, 0700) && errno != EEXIST)
		return -1;
	return openat(dirfd, name,
		      O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

DIR *cache_opendir(int dirfd)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;

	if (!d && fd >= 0) {
		int e = errno;

		close(fd);
		errno = e;
	}
	return d;
}

/* What the last mount left in flight is garbage: fetches not finished,
 * writes never committed. */
static void empty_dir(int fd)
{
	DIR *d = cache_opendir(fd);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			unlinkat(fd, de->d_name, 0);
	closedir(d);
}

/* Takes the directory's lock; CFS_ERR_EXISTS names the mount that has it. */
static enum cfs_err lock_dir(struct cache *c, struct cfs_error *err)
{
	char pid[32] = "";
	int n;

	c->lock_fd = openat(c->dirfd, "lock",
			    O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (c->lock_fd < 0)
		return cfs_fail(err, CFS_ERR_INTERNAL,
				"cannot open '%s/lock': %s", c->path,
				strerror(errno));
	if (flock(c->lock_fd, LOCK_EX | LOCK_NB) == 0)
		return CFS_OK;
	n = (int)pread(c->lock_fd, pid, sizeof(pid) - 1, 0);
	pid[n > 0 ? n : 0] = '\0';
	pid[strcspn(pid, "\n")] = '\0';
	return cfs_fail(err, CFS_ERR_EXISTS,
			"cache directory '%s' is in use by another mount%s%s%s",
			c->path, pid[0] ? " (pid " : "", pid,
			pid[0] ? ")" : "");
}

/* Writes this process's pid into DIR/lock, for people and tests to see
 * which process has the cache. */
static void note_pid(struct cache *c)
{
	char pid[32];
	int n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());

	if (ftruncate(c->lock_fd, 0) == 0 &&
	    pwrite(c->lock_fd, pid, (size_t)n, 0) != n)
		cfs_log_warn("cannot write the pid into '%s/lock'", c->path);
}

/* The directory itself: created if missing, never through a symlink,
 * owned by this user and private. */
static enum cfs_err open_dir(struct cache *c, const char *dir,
			     struct cfs_error *err)
{
	struct stat st;
	int e = make_dirs(dir);

	if (e)
		return cfs_fail(err, CFS_ERR_INTERNAL,
				"cannot create cache directory '%s': %s", dir,
				strerror(-e));
	c->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (c->dirfd < 0) {
		int e = errno;

		/* O_NOFOLLOW with O_DIRECTORY says ENOTDIR for a symlink. */
		if (lstat(dir, &st) == 0 && S_ISLNK(st.st_mode))
			return cfs_fail(
				err, CFS_ERR_FORBIDDEN,
				"cache directory '%s' is a symlink, and a cache is never reached through one",
				dir);
		return cfs_fail(err, CFS_ERR_INTERNAL,
				"cannot open cache directory '%s': %s", dir,
				strerror(e));
	}
	if (fstat(c->dirfd, &st))
		return cfs_fail(err, CFS_ERR_INTERNAL, "cannot stat '%s': %s",
				dir, strerror(errno));
	if (st.st_uid != geteuid())
		return cfs_fail(
			err, CFS_ERR_FORBIDDEN,
			"cache directory '%s' belongs to uid %u, not to you",
			dir, (unsigned)st.st_uid);
	if ((st.st_mode & 077) && fchmod(c->dirfd, 0700))
		return cfs_fail(err, CFS_ERR_INTERNAL,
				"cannot make '%s' private: %s", dir,
				strerror(errno));
	return CFS_OK;
}

static enum cfs_err schema_init(struct cache *c, struct cfs_error *err)
{
	struct cfs_sql *db = cache_db(c, err);
	enum cfs_err rc;
	int version;

	if (!db)
		return err->code;
	rc = cfs_sql_begin(db, true, err);
	version = rc ? -1 : cfs_sql_user_version(db);
	if (rc == CFS_OK && version == 0) {
		rc = cfs_sql_script(db, schema, err);
		if (rc == CFS_OK)
			rc = cfs_sql_script(db, "PRAGMA user_version = 1", err);
		version = 1;
	}
	if (rc == CFS_OK && version == 1) {
		rc = cfs_sql_script(db, upgrade_2, err);
		version = 2;
	}
	if (rc == CFS_OK && version == 2) {
		rc = cfs_sql_script(db, upgrade_3, err);
		version = 3;
	}
	if (rc == CFS_OK && version == 3) {
		rc = cfs_sql_script(db, upgrade_4, err);
		version = 4;
	}
	if (rc == CFS_OK && version == 4) {
		rc = cfs_sql_script(db, upgrade_5, err);
		version = 5;
	}
	if (rc == CFS_OK && version == 5) {
		rc = cfs_sql_script(db, upgrade_6, err);
		version = 6;
	}
	if (rc == CFS_OK && version == 6) {
		rc = cfs_sql_script(db, upgrade_7, err);
		version = 7;
	}
	if (rc == CFS_OK && version != SCHEMA_VERSION) {
		rc = cfs_fail(
			err, CFS_ERR_CONFLICT,
			"cache '%s' has schema version %d, this mount.cloudfs reads version %d: use another cache directory",
			c->path, version, SCHEMA_VERSION);
	}
	rc = cfs_sql_end(db, rc, err);
	cache_db_release(c, db);
	return rc;
}

/* A look: only reads the schema version, which must be ours
 * (a cache of an older version is upgraded by the next mount). */
static enum cfs_err schema_check(struct cache *c, struct cfs_error *err)
{
	struct cfs_sql *db = cache_db(c, err);
	int version;

	if (!db)
		return err->code;
	version = cfs_sql_user_version(db);
	cache_db_release(c, db);
	if (version == SCHEMA_VERSION)
		return CFS_OK;
	return cfs_fail(
		err, CFS_ERR_CONFLICT,
		"cache '%s' has schema version %d, this cloudfs reads version %d%s",
		c->path, version, SCHEMA_VERSION,
		version < SCHEMA_VERSION ? ": mount it once to upgrade it"
					 : "");
}

/* Whether a mount holds the lock open at fd now (not keeping it). */
static bool mounted(int fd)
{
	if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
		flock(fd, LOCK_UN);
		return false;
	}
	return errno == EWOULDBLOCK;
}

bool cache_in_use(const char *dir)
{
	int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int fd = dirfd >= 0 ? openat(dirfd, "lock",
				     O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
			    : -1;
	bool held = fd >= 0 && mounted(fd);

	if (fd >= 0)
		close(fd);
	if (dirfd >= 0)
		close(dirfd);
	return held;
}

enum cfs_err cache_open_as(const char *dir, enum cache_use use,
			   struct cache **out, struct cfs_error *err)
{
	struct cache *c = calloc(1, sizeof(*c));
	char db_path[PATH_MAX + 16];
	struct stat st;
	enum cfs_err rc = CFS_OK;

	if (!c)
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	c->dirfd = c->blocks_fd = c->tmp_fd = c->dirty_fd = c->lock_fd = -1;
	pthread_rwlock_init(&c->upkeep, NULL);
	pthread_mutex_init(&c->touch_lock, NULL);
	pthread_mutex_init(&c->streamed_lock, NULL);
	snprintf(c->path, sizeof(c->path), "%s", dir);
	/* Only a mount makes a cache; the others look at one. */
	if (use != CACHE_MOUNT &&
	    (fstatat(AT_FDCWD, dir, &st, AT_SYMLINK_NOFOLLOW) ||
	     fstatat(AT_FDCWD, dir, &st, 0) || !S_ISDIR(st.st_mode)))
		rc = cfs_fail(err, CFS_ERR_NOT_FOUND,
			      "'%s' is not a cache directory", dir);
	if (rc == CFS_OK)
		rc = open_dir(c, dir, err);
	/* Absolute: a daemonized mount runs from "/". */
	if (rc == CFS_OK && !realpath(dir, c->path))
		rc = cfs_fail(err, CFS_ERR_INTERNAL,
			      "cannot resolve cache directory '%s': %s", dir,
			      strerror(errno));
	snprintf(db_path, sizeof(db_path), "%s/cache.db", c->path);
	if (rc == CFS_OK && use != CACHE_MOUNT &&
	    faccessat(c->dirfd, "cache.db", R_OK | W_OK, 0))
		rc = cfs_fail(err, CFS_ERR_NOT_FOUND,
			      "'%s' is not a cache directory (no cache.db)",
			      c->path);
	/* NORMAL: a commit survives the process but is fsync'ed only at
	 * cache_sync() (or a checkpoint): one fsync for many changes,
	 * where the mount promises them durable. */
	cfs_sql_pool_init(&c->db, db_path, "cache index", "NORMAL",
			  sizeof(struct cfs_sql));
	/* Whatever a mount beside it does, a look never writes, checkpoints
	 * or deletes the write-ahead log (cfs_sql_open_reader()). */
	c->db.reader = use == CACHE_LOOK;
	if (rc == CFS_OK && use == CACHE_LOOK) {
		c->lock_fd = openat(c->dirfd, "lock",
				    O_RDWR | O_NOFOLLOW | O_CLOEXEC);
		c->mounted = c->lock_fd >= 0 && mounted(c->lock_fd);
	} else if (rc == CFS_OK) {
		rc = lock_dir(c, err);
	}
	if (rc == CFS_OK) {
		c->blocks_fd = open_subdir(c->dirfd, "blocks");
		c->tmp_fd = open_subdir(c->dirfd, "tmp");
		c->dirty_fd = open_subdir(c->dirfd, "dirty");
		if (c->blocks_fd < 0 || c->tmp_fd < 0 || c->dirty_fd < 0)
			rc = cfs_fail(
				err, CFS_ERR_INTERNAL,
				"cannot open '%s/blocks', '%s/tmp' or '%s/dirty': %s",
				dir, dir, dir, strerror(errno));
	}
	if (rc == CFS_OK && use == CACHE_MOUNT) {
		empty_dir(c->tmp_fd);
		empty_dir(c->dirty_fd);
		note_pid(c);
	}
	if (rc == CFS_OK)
		rc = use == CACHE_LOOK ? schema_check(c, err)
				       : schema_init(c, err);
	if (rc) {
		cache_close(c);
		return rc;
	}
	*out = c;
	return CFS_OK;
}

enum cfs_err cache_open(const char *dir, struct cache **out,
			struct cfs_error *err)
{
	return cache_open_as(dir, CACHE_MOUNT, out, err);
}

void cache_close(struct cache *c)
{
	if (!c)
		return;
	blockcache_write_touches(c);
	cfs_sql_pool_destroy(&c->db);
	pthread_rwlock_destroy(&c->upkeep);
	pthread_mutex_destroy(&c->touch_lock);
	pthread_mutex_destroy(&c->streamed_lock);
	free(c->streamed);
	for (int *fd = &c->dirfd; fd <= &c->lock_fd; fd++)
		if (*fd >= 0)
			close(*fd);
	free(c);
}

struct cfs_sql *cache_db(struct cache *c, struct cfs_error *err)
{
	return cfs_sql_pool_acquire(&c->db, err);
}

void cache_db_release(struct cache *c, struct cfs_sql *db)
{
	cfs_sql_pool_release(&c->db, db);
}

void cache_checkpoint_by(struct cache *c, void (*fn)(void *arg), void *arg)
{
	cfs_sql_pool_checkpoint_by(&c->db, fn, arg);
}

enum cfs_err cache_checkpoint(struct cache *c, struct cfs_error *err)
{
	struct cfs_sql *db = cache_db(c, err);
	enum cfs_err rc;

	if (!db)
		return err->code;
	rc = cfs_sql_checkpoint(db, err);
	cache_db_release(c, db);
	return rc;
}

enum cfs_err cache_sync(struct cache *c, struct cfs_error *err)
{
	struct cfs_sql *db = cache_db(c, err);
	enum cfs_err rc;

	if (!db)
		return err->code;
	rc = cfs_sql_sync(db, err);
	cache_db_release(c, db);
	return rc;
}

static enum cfs_err info_get(struct cfs_sql *db, const char *key, char *value,
			     size_t len, struct cfs_error *err)
{
	sqlite3_stmt *st = cfs_sql_stmt(
		db, "SELECT value FROM info WHERE key = ?1", err, "t", key);
	enum cfs_err rc;
	bool row = false;

	value[0] = '\0';
	rc = st ? cfs_sql_step(db, st, &row, err) : err->code;
	if (rc == CFS_OK && row)
		snprintf(value, len, "%s",
			 (const char *)sqlite3_column_text(st, 0));
	return rc;
}

static enum cfs_err bind_new(struct cfs_sql *db, const char *url,
			     int64_t root_ns, struct cfs_error *err)
{
	enum cfs_err rc;

	rc = cfs_sql_exec(db, "INSERT INTO info VALUES ('url', ?1)", err, "t",
			  url);
	if (rc == CFS_OK)
		rc = cfs_sql_exec(db, "INSERT INTO info VALUES ('root_ns', ?1)",
				  err, "i", root_ns);
	if (rc == CFS_OK)
		rc = mirror_init_root(db, root_ns, err);
	return rc;
}

/* The cache's client id, made the first time a mount binds it. */
static enum cfs_err client_id(struct cfs_sql *db,
			      char client[CACHE_CLIENT_ID_SIZE],
			      struct cfs_error *err)
{
	enum cfs_err rc =
		cfs_sql_exec(db,
			     "INSERT OR IGNORE INTO info VALUES"
			     " ('client', lower(hex(randomblob(16))))",
			     err, "");

	return rc ? rc
		  : info_get(db, "client", client, CACHE_CLIENT_ID_SIZE, err);
}

enum cfs_err cache_bind(struct cache *c, const char *url, int64_t root_ns,
			const char *token_id, char client[CACHE_CLIENT_ID_SIZE],
			struct cfs_error *err)
{
	struct cfs_sql *db = cache_db(c, err);
	char have_url[600], have_ns[32], want_ns[32];
	enum cfs_err rc;

	if (!db)
		return err->code;
	snprintf(want_ns, sizeof(want_ns), "%lld", (long long)root_ns);
	rc = cfs_sql_begin(db, true, err);
	if (rc == CFS_OK)
		rc = info_get(db, "url", have_url, sizeof(have_url), err);
	if (rc == CFS_OK)
		rc = info_get(db, "root_ns", have_ns, sizeof(have_ns), err);
	if (rc == CFS_OK && !have_url[0])
		rc = bind_new(db, url, root_ns, err);
	else if (rc == CFS_OK &&
		 (strcmp(have_url, url) != 0 || strcmp(have_ns, want_ns) != 0))
		rc = cfs_fail(
			err, CFS_ERR_CONFLICT,
			"cache directory '%s' holds the mirror of namespace %s at %s, not of namespace %s at %s: use another cache directory",
			c->path, have_ns, have_url, want_ns, url);
	if (rc == CFS_OK && token_id)
		rc = cfs_sql_exec(db,
				  "INSERT OR REPLACE INTO info VALUES"
				  " ('token', ?1)",
				  err, "t", token_id);
	if (rc == CFS_OK)
		rc = client_id(db, client, err);
	rc = cfs_sql_end(db, rc, err);
	cache_db_release(c, db);
	return rc;
}

enum cfs_err cache_offline_root(struct cache *c, const char *url,
				const char *token_id, int64_t *root_ns,
				struct cfs_error *err)
{
	struct cfs_sql *db = cache_db(c, err);
	char have_url[600], have_ns[32], have_token[CACHE_TOKEN_ID_SIZE];
	struct mirror_ns root;
	enum cfs_err rc;

	if (!db)
		return err->code;
	rc = info_get(db, "url", have_url, sizeof(have_url), err);
	if (rc == CFS_OK)
		rc = info_get(db, "root_ns", have_ns, sizeof(have_ns), err);
	if (rc == CFS_OK)
		rc = info_get(db, "token", have_token, sizeof(have_token), err);
	if (rc == CFS_OK &&
	    (strcmp(have_url, url) != 0 || strcmp(have_token, token_id) != 0 ||
	     cfs_num_parse_i64(have_ns, 1, INT64_MAX, root_ns) != 0))
		rc = cfs_fail(
			err, CFS_ERR_NOT_FOUND,
			"cache directory '%s' was never mounted from %s with this token",
			c->path, url);
	if (rc == CFS_OK) {
		rc = mirror_ns_get(db, *root_ns, &root, err);
		if (rc == CFS_ERR_NOT_FOUND || (rc == CFS_OK && !root.listed))
			rc = cfs_fail(
				err, CFS_ERR_NOT_FOUND,
				"cache directory '%s' holds no complete listing yet",
				c->path);
	}
	cache_db_release(c, db);
	return rc;
}
