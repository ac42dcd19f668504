/*
 * The client's upload and sync paths against the in-process fake server
 * (fs/remote_fake.h): the real uploader (one batch a step), the real
 * catch-up that lists and applies pages to the mirror, on a real cache
 * directory, with the fake's faults.
 *
 * The seeded test draws a sequence of local changes (folders, files with
 * content, symlinks, renames, removes), uploader steps, catch-ups,
 * simulated restarts (the cache closed and opened again from its files)
 * and faults (errors, outages, answers lost after the commit).  It checks
 * all along that every entry the mirror shows as committed is a row of the
 * fake's journal, that a restart loses nothing queued, and at the end,
 * faults off, that the mirror, the test's own model of the tree and the
 * fake's namespace are the same.  It prints each seed it runs;
 * TEST_REMOTE_SEED=N runs that one alone, TEST_REMOTE_RUNS=N that many
 * (from TEST_REMOTE_FIRST_SEED=N on, if set).
 * Its twin adds shares of top folders and invitations (the fake's
 * sharing verbs) and checks an invitee's mirror too;
 * TEST_REMOTE_SHARE_SEED=N replays one of its seeds.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cache/blockcache.h"
#include "cache/cache.h"
#include "cache/local.h"
#include "cache/mirror.h"
#include "check.h"
#include "cloudfs/clock.h"
#include "cloudfs/log.h"
#include "fs/fetch.h"
#include "fs/fs.h"
#include "fs/remote_fake.h"
#include "fs/upload.h"

#define ROOT_NS	  1
#define MAX_MODEL 256

static char dir[] = "/tmp/test_remote.XXXXXX";

/* One mount: its struct fs as mount.cloudfs makes it, less FUSE and the
 * threads; the uploader is stepped by hand. */
struct client {
	struct fs fs;
	struct uploader *u;
	struct remote_conn *conn;
	char cache_dir[64];
};

static int64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void client_open(struct client *c, struct fake_server *s, unsigned user,
			int64_t root)
{
	struct cfs_error err;
	struct cfs_sql *db;

	c->fs.remote = fake_remote_new(s, user);
	c->fs.open = openfiles_new();
	c->fs.opt.timeout_s = 1;
	pthread_mutex_init(&c->fs.apply_lock, NULL);
	pthread_cond_init(&c->fs.doubt_over, NULL);
	CHECK(c->fs.remote && c->fs.open);
	CHECK(cache_open(c->cache_dir, &c->fs.cache, &err) == CFS_OK);
	CHECK(cache_bind(c->fs.cache, c->fs.remote->url, root, NULL,
			 c->fs.client, &err) == CFS_OK);
	/* As mount.cloudfs starts: commits sent and not answered are in
	 * doubt until the uploader has their answers. */
	db = cache_db(c->fs.cache, &err);
	CHECK(db && queue_in_doubt(db, &c->fs.in_doubt, &err) == CFS_OK);
	cache_db_release(c->fs.cache, db);
	c->u = uploader_new(&c->fs);
	c->conn = remote_conn_new(c->fs.remote);
	CHECK(c->u && c->conn);
}

static void client_close(struct client *c)
{
	uploader_free(c->u);
	remote_conn_free(c->conn);
	cache_close(c->fs.cache);
	openfiles_free(c->fs.open);
	remote_free(c->fs.remote);
	pthread_cond_destroy(&c->fs.doubt_over);
	pthread_mutex_destroy(&c->fs.apply_lock);
	c->u = NULL;
	c->conn = NULL;
	c->fs.cache = NULL;
	c->fs.open = NULL;
	c->fs.remote = NULL;
}

static void client_new(struct client *c, struct fake_server *s, unsigned user,
		       int64_t root, const char *name)
{
	char cmd[96];

	memset(c, 0, sizeof(*c));
	snprintf(c->cache_dir, sizeof(c->cache_dir), "%s/%s", dir, name);
	/* New: not the cache an earlier run of the same seed left (a seed
	 * replayed that is also one of the fixed ones). */
	snprintf(cmd, sizeof(cmd), "rm -rf %s", c->cache_dir);
	CHECK(system(cmd) == 0);
	client_open(c, s, user, root);
}

static int64_t queued(struct client *c)
{
	struct cfs_error err;
	struct cfs_sql *db = cache_db(c->fs.cache, &err);
	int64_t n = -1;

	CHECK(db && queue_length(db, &n, &err) == CFS_OK);
	cache_db_release(c->fs.cache, db);
	return n;
}

static enum cfs_err catch_up(struct client *c, struct cfs_error *err)
{
	static const bool never = false;

	return sync_catch_up(&c->fs, c->conn, &never, err);
}

/* Sends and lists, as the mount's threads do, until nothing is queued
 * (or steps run out): whether nothing is. */
static bool upload_all(struct client *c, unsigned steps)
{
	while (steps-- && queued(c) > 0) {
		struct cfs_error err;
		bool sent, retry;

		catch_up(c, &err);
		uploader_step(c->u, &sent, &retry, &err);
	}
	return queued(c) == 0;
}

/* The test's model of the tree the user sees: path, kind and size. */
struct model {
	struct {
		char path[64];
		enum cfs_kind kind;
		uint64_t size;
	} e[MAX_MODEL];
	size_t n;
};

static int model_find(const struct model *m, const char *path)
{
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->e[i].path, path) == 0)
			return (int)i;
	return -1;
}

static void model_set(struct model *m, const char *path, enum cfs_kind kind,
		      uint64_t size)
{
	int i = model_find(m, path);

	if (i < 0 && m->n < MAX_MODEL)
		i = (int)m->n++;
	if (i < 0)
		return;
	snprintf(m->e[i].path, sizeof(m->e[i].path), "%s", path);
	m->e[i].kind = kind;
	m->e[i].size = size;
}

/* Drops path and, for a folder, what it holds. */
static void model_drop(struct model *m, const char *path)
{
	size_t len = strlen(path), k = 0;

	for (size_t i = 0; i < m->n; i++)
		if (!(strcmp(m->e[i].path, path) == 0 ||
		      (strncmp(m->e[i].path, path, len) == 0 &&
		       m->e[i].path[len] == '/')))
			m->e[k++] = m->e[i];
	m->n = k;
}

/* Moves path (and what a folder holds) to to, over what was there. */
static void model_move(struct model *m, const char *path, const char *to)
{
	size_t len = strlen(path);

	if (strcmp(path, to) == 0)
		return; /* onto itself: nothing changes */
	model_drop(m, to);
	for (size_t i = 0; i < m->n; i++) {
		char moved[64];

		if (strcmp(m->e[i].path, path) != 0 &&
		    !(strncmp(m->e[i].path, path, len) == 0 &&
		      m->e[i].path[len] == '/'))
			continue;
		snprintf(moved, sizeof(moved), "%s%s", to, m->e[i].path + len);
		memcpy(m->e[i].path, moved, sizeof(moved));
	}
}

/* A tree as a sorted list of "kind size path" lines, to compare. */
struct listing {
	char lines[MAX_MODEL][96];
	size_t n;
};

static int by_line(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void listing_add(struct listing *l, const char *path, enum cfs_kind kind,
			uint64_t size)
{
	/* A shared folder is a folder to whoever looks. */
	if (kind == CFS_KIND_MOUNT)
		kind = CFS_KIND_DIR;
	if (l->n < MAX_MODEL)
		snprintf(l->lines[l->n++], sizeof(l->lines[0]), "%s %llu %s",
			 cfs_kind_name(kind),
			 kind == CFS_KIND_FILE ? (unsigned long long)size : 0,
			 path);
}

static void on_fake(void *arg, const char *path, enum cfs_kind kind,
		    uint64_t size)
{
	listing_add(arg, path, kind, size);
}

/* The children of a mirror folder, collected. */
struct children {
	struct mirror_entry e[MAX_MODEL];
	size_t n;
};

static bool on_child(void *arg, const struct mirror_entry *e)
{
	struct children *c = arg;

	if (c->n == MAX_MODEL)
		return false;
	c->e[c->n] = *e;
	c->e[c->n].blocks = (struct cfs_blocklist){ 0 };
	c->e[c->n++].target = NULL;
	return true;
}

/* Whether entry e of the mirror awaits its first JID in its namespace:
 * a share moved it there, and the namespace is not listed yet (the
 * mirror's invariant 10). */
static bool awaits_listing(struct cfs_sql *db, const struct mirror_entry *e)
{
	struct mirror_ns m;
	struct cfs_error err;

	return e->jid == 0 && mirror_ns_get(db, e->ns, &m, &err) == CFS_OK &&
	       !m.listed;
}

/* Walks the mirror under d: each entry's path into l; with s, checks
 * that each entry committed (a node, nothing pending, a JID unless it
 * awaits its listing) is a journal row. */
static void mirror_walk(struct cfs_sql *db, const struct mirror_entry *d,
			const char *base, struct listing *l,
			struct fake_server *s)
{
	struct children *c = calloc(1, sizeof(*c));
	struct cfs_error err;

	CHECK(c && mirror_readdir(db, d, 0, on_child, c, &err) == CFS_OK);
	for (size_t i = 0; c && i < c->n; i++) {
		const struct mirror_entry *e = &c->e[i];
		char path[64];

		snprintf(path, sizeof(path), "%s%s%s", base, *base ? "/" : "",
			 e->name);
		listing_add(l, path, e->kind, e->size);
		if (s && e->node > 0 && !e->pending && !awaits_listing(db, e) &&
		    !fake_journal_has(s, e->ns, e->jid, e->node)) {
			fprintf(stderr,
				"'%s' shows JID %lld of node %lld, "
				"which the journal does not have\n",
				path, (long long)e->jid, (long long)e->node);
			CHECK(!"a committed entry is in the journal");
		}
		if (e->kind == CFS_KIND_DIR || e->kind == CFS_KIND_MOUNT)
			mirror_walk(db, e, path, l, s);
	}
	free(c);
}

static void mirror_listing(struct client *c, struct listing *l,
			   struct fake_server *s)
{
	struct cfs_error err;
	struct cfs_sql *db = cache_db(c->fs.cache, &err);
	struct mirror_entry root;

	l->n = 0;
	CHECK(db && mirror_get(db, MIRROR_ROOT_INO, &root, &err) == CFS_OK);
	if (db)
		mirror_walk(db, &root, "", l, s);
	mirror_entry_release(&root);
	cache_db_release(c->fs.cache, db);
	qsort(l->lines, l->n, sizeof(l->lines[0]), by_line);
}

static void model_listing(const struct model *m, struct listing *l)
{
	l->n = 0;
	for (size_t i = 0; i < m->n; i++)
		listing_add(l, m->e[i].path, m->e[i].kind, m->e[i].size);
	qsort(l->lines, l->n, sizeof(l->lines[0]), by_line);
}

static bool same(const struct listing *a, const struct listing *b,
		 const char *what)
{
	bool eq = a->n == b->n;

	for (size_t i = 0; eq && i < a->n; i++)
		eq = strcmp(a->lines[i], b->lines[i]) == 0;
	if (!eq) {
		fprintf(stderr, "%s differ:\n", what);
		for (size_t i = 0; i < a->n || i < b->n; i++)
			fprintf(stderr, "  %-40s | %s\n",
				i < a->n ? a->lines[i] : "",
				i < b->n ? b->lines[i] : "");
	}
	return eq;
}

/* The inode at path in the mirror (0: none) and its kind. */
static uint64_t ino_at(struct cfs_sql *db, const char *path,
		       enum cfs_kind *kind)
{
	struct mirror_entry e, next;
	struct cfs_error err;
	char buf[64], *save = NULL;
	uint64_t ino;

	if (mirror_get(db, MIRROR_ROOT_INO, &e, &err))
		return 0;
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *name = strtok_r(buf, "/", &save); name;
	     name = strtok_r(NULL, "/", &save)) {
		enum cfs_err rc = mirror_lookup(db, &e, name, &next, &err);

		mirror_entry_release(&e);
		if (rc)
			return 0;
		e = next;
	}
	ino = e.ino;
	*kind = e.kind;
	mirror_entry_release(&e);
	return ino;
}

/* Splits path into its folder's inode and its name. */
static uint64_t folder_of(struct cfs_sql *db, const char *path,
			  const char **name)
{
	char up[64];
	const char *slash = strrchr(path, '/');
	enum cfs_kind kind = CFS_KIND_DIR;

	*name = slash ? slash + 1 : path;
	if (!slash)
		return MIRROR_ROOT_INO;
	snprintf(up, sizeof(up), "%.*s", (int)(slash - path), path);
	return ino_at(db, up, &kind);
}

/* Stores len bytes made from seed as a block of the cache: its id. */
static struct cfs_block_id cache_block(struct client *c, unsigned seed,
				       uint32_t len)
{
	char *data = malloc(len), name[32];
	struct cfs_block_id id = { 0 };
	struct cfs_error err;
	int fd = blockcache_tmp_create(c->fs.cache, name);

	for (uint32_t i = 0; data && i < len; i++)
		data[i] = (char)rand_r(&seed);
	CHECK(data && fd >= 0 && cfs_sha256(data, len, &id) == 0);
	CHECK(write(fd, data, len) == (ssize_t)len);
	CHECK(blockcache_store(c->fs.cache, fd, name, &id, len, &err) ==
	      CFS_OK);
	free(data);
	return id;
}

/* A random path among a few: folders d0..d2, and names in them. */
static void pick_path(unsigned *seed, char *out, size_t len, bool folder)
{
	unsigned depth = (unsigned)rand_r(seed) % 3;
	int n;

	if (folder || depth == 0)
		n = snprintf(out, len, "%s%u", folder ? "d" : "f",
			     (unsigned)rand_r(seed) % 3);
	else if (depth == 1)
		n = snprintf(out, len, "d%u/f%u", (unsigned)rand_r(seed) % 3,
			     (unsigned)rand_r(seed) % 3);
	else
		n = snprintf(
			out, len, "d%u/d%u/f%u", (unsigned)rand_r(seed) % 3,
			(unsigned)rand_r(seed) % 3, (unsigned)rand_r(seed) % 3);
	(void)n;
}

/* One local change drawn from seed, applied to the mirror as the FUSE
 * handlers do, and to the model when the mirror took it. */
static void local_change(struct client *c, struct model *m, unsigned *seed)
{
	struct cfs_error err = { 0 };
	struct cfs_sql *db = cache_db(c->fs.cache, &err);
	struct mirror_changes ch = { 0 };
	struct mirror_entry out;
	char path[64] = "", to[64] = "";
	const char *name, *to_name;
	unsigned what = (unsigned)rand_r(seed) % 10;
	uint64_t dir_ino, ino = 0;
	enum cfs_kind kind;

	CHECK(db != NULL);
	if (!db)
		return;
	pthread_mutex_lock(&c->fs.apply_lock);
	if (what < 2) { /* mkdir */
		struct local_new n = { CFS_KIND_DIR, 0755, now_ns(), NULL };

		pick_path(seed, path, sizeof(path), (unsigned)rand_r(seed) % 2);
		if (rand_r(seed) % 2 && strchr(path, '/') == NULL)
			snprintf(path, sizeof(path), "d%u",
				 (unsigned)rand_r(seed) % 3);
		else if (strncmp(path, "d", 1) == 0 && strchr(path, '/'))
			*strrchr(path, 'f') = 'd';
		dir_ino = folder_of(db, path, &name);
		if (dir_ino &&
		    local_mknode(db, dir_ino, name, &n, &out, &err) == CFS_OK) {
			model_set(m, path, CFS_KIND_DIR, 0);
			mirror_entry_release(&out);
		}
	} else if (what < 6) { /* write a file: created, or its content */
		struct local_new n = { CFS_KIND_FILE, 0644, now_ns(), NULL };
		uint32_t size = 1 + (uint32_t)rand_r(seed) % 3000;
		struct cfs_block_id id =
			cache_block(c, (unsigned)rand_r(seed), size);
		struct cfs_blocklist bl = { .ids = &id, .n = 1 };
		struct local_content content = { .size = size,
						 .blocks = &bl,
						 .atime_ns = now_ns(),
						 .mtime_ns = now_ns(),
						 .ctime_ns = now_ns() };
		bool opened = false;

		pick_path(seed, path, sizeof(path), false);
		dir_ino = folder_of(db, path, &name);
		ino = ino_at(db, path, &kind);
		if (ino && kind == CFS_KIND_FILE)
			opened = local_write_begin(db, ino, &err) == CFS_OK;
		else if (!ino && dir_ino &&
			 local_mknode(db, dir_ino, name, &n, &out, &err) ==
				 CFS_OK) {
			ino = out.ino;
			opened = true;
			mirror_entry_release(&out);
		}
		if (opened &&
		    local_write_end(db, ino, &content, &ch, &err) == CFS_OK)
			model_set(m, path, CFS_KIND_FILE, size);
	} else if (what < 7) { /* symlink */
		struct local_new n = { CFS_KIND_SYMLINK, 0777, now_ns(),
				       "target" };

		pick_path(seed, path, sizeof(path), false);
		dir_ino = folder_of(db, path, &name);
		if (dir_ino &&
		    local_mknode(db, dir_ino, name, &n, &out, &err) == CFS_OK) {
			model_set(m, path, CFS_KIND_SYMLINK, 6);
			mirror_entry_release(&out);
		}
	} else if (what < 9) { /* rename, over what is there */
		bool folder = rand_r(seed) % 3 == 0;

		pick_path(seed, path, sizeof(path), folder);
		pick_path(seed, to, sizeof(to), folder);
		dir_ino = folder_of(db, path, &name);
		if (dir_ino && ino_at(db, path, &kind)) {
			uint64_t to_dir = folder_of(db, to, &to_name);

			if (to_dir &&
			    local_rename(db, dir_ino, name, to_dir, to_name,
					 false, now_ns(), &ino, &err) == CFS_OK)
				model_move(m, path, to);
		}
	} else { /* remove */
		pick_path(seed, path, sizeof(path), rand_r(seed) % 3 == 0);
		dir_ino = folder_of(db, path, &name);
		if (dir_ino && ino_at(db, path, &kind) &&
		    local_remove(db, dir_ino, name, kind == CFS_KIND_DIR, &ino,
				 &err) == CFS_OK)
			model_drop(m, path);
	}
	pthread_mutex_unlock(&c->fs.apply_lock);
	if (getenv("TEST_REMOTE_VERBOSE"))
		fprintf(stderr, "  change %u '%s' '%s': %s\n", what, path,
			what == 7 || what == 8 ? to : "", err.msg);
	mirror_changes_release(&ch);
	cache_db_release(c->fs.cache, db);
}

/* Writes size bytes made from seed to file name at the root of c's
 * mirror (created if need be), as a close after writes queues it. */
static struct cfs_block_id write_file(struct client *c, const char *name,
				      unsigned seed, uint32_t size)
{
	struct local_new n = { CFS_KIND_FILE, 0644, now_ns(), NULL };
	struct cfs_block_id id = cache_block(c, seed, size);
	struct cfs_blocklist bl = { .ids = &id, .n = 1 };
	struct local_content content = { .size = size,
					 .blocks = &bl,
					 .atime_ns = now_ns(),
					 .mtime_ns = now_ns(),
					 .ctime_ns = now_ns() };
	struct mirror_changes ch = { 0 };
	struct cfs_error err;
	struct cfs_sql *db = cache_db(c->fs.cache, &err);
	struct mirror_entry out;
	enum cfs_kind kind;
	uint64_t ino = db ? ino_at(db, name, &kind) : 0;

	CHECK(db != NULL);
	if (ino)
		CHECK(local_write_begin(db, ino, &err) == CFS_OK);
	else if (local_mknode(db, MIRROR_ROOT_INO, name, &n, &out, &err) ==
		 CFS_OK)
		ino = out.ino, mirror_entry_release(&out);
	CHECK(ino && local_write_end(db, ino, &content, &ch, &err) == CFS_OK);
	mirror_changes_release(&ch);
	cache_db_release(c->fs.cache, db);
	return id;
}

static unsigned count_files;
static uint64_t copy_size; /* the conflicted copy's, 0: none */

static void on_file(void *arg, const char *path, enum cfs_kind kind,
		    uint64_t size)
{
	(void)arg;
	if (getenv("TEST_REMOTE_VERBOSE"))
		fprintf(stderr, "  server: %s %s\n", cfs_kind_name(kind), path);
	count_files += kind == CFS_KIND_FILE;
	if (strstr(path, "conflicted copy"))
		copy_size = size;
}

static void test_two_devices_editing_one_version_keep_both(void)
{
	struct fake_server *s = fake_server_new();
	struct client a, b;
	struct cfs_error err;
	uint64_t size = 0;

	CHECK(s && fake_namespace(s, 0) == ROOT_NS);
	client_new(&a, s, 0, ROOT_NS, "conflict-a");
	client_new(&b, s, 0, ROOT_NS, "conflict-b");
	write_file(&a, "doc.txt", 1, 100);
	CHECK(upload_all(&a, 20));
	CHECK(catch_up(&b, &err) == CFS_OK);
	write_file(&a, "doc.txt", 2, 200);
	CHECK(upload_all(&a, 20));
	/* b edits the first version, which is no longer the newest. */
	write_file(&b, "doc.txt", 3, 300);
	CHECK(upload_all(&b, 20));
	CHECK(fake_lookup(s, ROOT_NS, "doc.txt", &size) == CFS_KIND_FILE &&
	      size == 200);
	/* The server has a's edit, and b's as a conflicted copy. */
	count_files = 0;
	copy_size = 0;
	fake_walk(s, ROOT_NS, on_file, NULL);
	CHECK(count_files == 2 && copy_size == 300);
	client_close(&a);
	client_close(&b);
	fake_server_free(s);
}

static void test_a_commit_whose_answer_was_lost_is_applied_once(void)
{
	struct fake_server *s = fake_server_new();
	struct listing *l = calloc(1, sizeof(*l));
	struct local_new dir_new = { CFS_KIND_DIR, 0755, now_ns(), NULL };
	struct client c;
	struct cfs_error err;
	struct cfs_sql *db;
	struct mirror_entry e;
	bool sent, retry;
	uint64_t size = 0, ino;

	CHECK(s && l && fake_namespace(s, 0) == ROOT_NS);
	client_new(&c, s, 0, ROOT_NS, "lost");
	CHECK(catch_up(&c, &err) == CFS_OK);
	/* A folder made, then moved, in one batch: sent again as paths, the
	 * folder would be made anew beside the moved one. */
	db = cache_db(c.fs.cache, &err);
	CHECK(db && local_mknode(db, MIRROR_ROOT_INO, "x", &dir_new, &e,
				 &err) == CFS_OK);
	mirror_entry_release(&e);
	CHECK(local_rename(db, MIRROR_ROOT_INO, "x", MIRROR_ROOT_INO, "y",
			   false, now_ns(), &ino, &err) == CFS_OK);
	cache_db_release(c.fs.cache, db);
	write_file(&c, "a.txt", 4, 10);
	fake_fault_commit(s, FAKE_DROP);
	CHECK(uploader_step(c.u, &sent, &retry, &err) == CFS_ERR_UNREACHABLE);
	if (getenv("TEST_REMOTE_VERBOSE"))
		fprintf(stderr, "  step: %s, head %lld\n", err.msg,
			(long long)fake_head(s, ROOT_NS));
	/* Applied, and the mount does not know: still queued, in doubt. */
	CHECK(fake_head(s, ROOT_NS) >= 1);
	CHECK(queued(&c) == 3);
	/* A crash, and the next mount sends it again: each change is one
	 * row (the folder, its move, the file), none made twice. */
	client_close(&c);
	client_open(&c, s, 0, ROOT_NS);
	CHECK(c.fs.in_doubt);
	CHECK(upload_all(&c, 20));
	CHECK(!c.fs.in_doubt);
	CHECK(fake_head(s, ROOT_NS) == 3);
	CHECK(catch_up(&c, &err) == CFS_OK);
	mirror_listing(&c, l, s);
	CHECK(l->n == 2 && strcmp(l->lines[0], "dir 0 y") == 0 &&
	      strcmp(l->lines[1], "file 10 a.txt") == 0);
	CHECK(fake_lookup(s, ROOT_NS, "x", &size) == CFS_KIND_DELETED);
	client_close(&c);
	fake_server_free(s);
	free(l);
}

/* A reader of the fetcher, for the Dropship test: opens block id. */
static int fetch(struct client *c, const struct cfs_block_id *id, uint32_t len)
{
	struct cfs_error err;
	int fd = fetcher_open(c->fs.fetch, id, len, 2000, &err);

	if (fd >= 0)
		close(fd);
	return fd < 0 ? -1 : 0;
}

static void test_a_block_is_fetched_only_by_those_who_may_read_it(void)
{
	struct fake_server *s = fake_server_new();
	struct client a, b;
	struct cfs_block_id id;
	struct cfs_block_id room[1];
	struct cfs_blocklist needed = { .ids = room };
	struct cfs_error err;
	int64_t b_ns;

	CHECK(s && fake_namespace(s, 0) == ROOT_NS);
	b_ns = fake_namespace(s, 1);
	client_new(&a, s, 0, ROOT_NS, "dropship-a");
	client_new(&b, s, 1, b_ns, "dropship-b");
	CHECK(catch_up(&a, &err) == CFS_OK);
	id = write_file(&a, "secret.txt", 6, 1000);
	CHECK(upload_all(&a, 20));
	b.fs.fetch = fetcher_new(b.fs.remote, b.fs.cache, NULL, 2);
	CHECK(b.fs.fetch != NULL);
	/* Knowing the hash is not enough to read it, nor to skip its
	 * upload. */
	CHECK(fetch(&b, &id, 1000) < 0);
	CHECK(remote_need_blocks(b.conn, &id, 1, 0, NULL, &needed, &err) ==
	      CFS_OK);
	CHECK(needed.n == 1 && cfs_block_id_equal(&needed.ids[0], &id));
	/* Shared with b: now it may. */
	fake_add_member(s, ROOT_NS, 1);
	CHECK(fetch(&b, &id, 1000) == 0);
	fetcher_free(b.fs.fetch);
	b.fs.fetch = NULL;
	client_close(&a);
	client_close(&b);
	fake_server_free(s);
}

/* Small files whose blocks the server lacks, in one uploader round. */
static void write_small_files(struct client *c, unsigned n)
{
	char name[32];

	for (unsigned i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "small-%u.txt", i);
		write_file(c, name, i + 1, 4096);
	}
}

static void test_small_files_go_up_in_one_batch_upload(void)
{
	struct fake_server *s = fake_server_new();
	struct client a;
	unsigned batches, uploads;

	CHECK(s && fake_namespace(s, 0) == ROOT_NS);
	client_new(&a, s, 0, ROOT_NS, "batch");
	write_small_files(&a, 40);
	CHECK(upload_all(&a, 20));
	uploads = fake_uploads(s, &batches);
	CHECK(uploads == 1 && batches == 1);
	for (unsigned i = 0; i < 40; i++) {
		char name[32];
		uint64_t size = 0;

		snprintf(name, sizeof(name), "small-%u.txt", i);
		CHECK(fake_lookup(s, ROOT_NS, name, &size) == CFS_KIND_FILE &&
		      size == 4096);
	}
	client_close(&a);
	fake_server_free(s);
}

static void test_a_server_without_batch_uploads_gets_blocks_one_by_one(void)
{
	struct fake_server *s = fake_server_new();
	struct client a;
	unsigned batches, uploads;
	uint64_t size = 0;

	CHECK(s && fake_namespace(s, 0) == ROOT_NS);
	fake_no_batch(s, true);
	client_new(&a, s, 0, ROOT_NS, "no-batch");
	write_small_files(&a, 10);
	CHECK(upload_all(&a, 20));
	/* One batch refused, then ten PUTs. */
	uploads = fake_uploads(s, &batches);
	CHECK(batches == 1 && uploads == 11);
	CHECK(fake_lookup(s, ROOT_NS, "small-9.txt", &size) == CFS_KIND_FILE);
	client_close(&a);
	fake_server_free(s);
}

struct poller {
	struct remote_conn *conn;
	struct remote_cursor cursor;
	enum cfs_err rc;
};

static void *poll_thread(void *arg)
{
	struct poller *p = arg;
	struct cfs_error err;

	p->rc = remote_longpoll(p->conn, &p->cursor, 1, 10, NULL, NULL, &err);
	return NULL;
}

static void test_a_long_poll_wakes_when_its_namespace_moves(void)
{
	struct fake_server *s = fake_server_new();
	struct queued_op op = { .type = QUEUE_DIR,
				.kind = CFS_KIND_DIR,
				.path = "new",
				.mode = 0755,
				.base_jid = -1 };
	struct remote *r;
	struct poller p = { .rc = CFS_ERR__COUNT };
	uint64_t start = cfs_monotonic_ms();
	pthread_t t;

	CHECK(s && fake_namespace(s, 0) == ROOT_NS);
	r = fake_remote_new(s, 0);
	p.conn = remote_conn_new(r);
	p.cursor = (struct remote_cursor){ ROOT_NS, fake_head(s, ROOT_NS) };
	CHECK(pthread_create(&t, NULL, poll_thread, &p) == 0);
	fake_wait_parked(s, 1);
	CHECK(fake_commit_one(s, ROOT_NS, &op).status == REMOTE_COMMITTED);
	pthread_join(t, NULL);
	CHECK(p.rc == CFS_OK);
	CHECK(cfs_monotonic_ms() - start < 5000);
	remote_conn_free(p.conn);
	remote_free(r);
	fake_server_free(s);
}

/* A long poll that asks for pending lists too (streaming sync). */
struct pending_poller {
	struct remote_conn *conn;
	struct remote_cursor cursor;
	unsigned timeout_s;
	struct remote_pending pending;
	enum cfs_err rc;
};

static void *pending_poll_thread(void *arg)
{
	struct pending_poller *p = arg;
	struct cfs_error err;

	p->rc = remote_longpoll(p->conn, &p->cursor, 1, p->timeout_s, NULL,
				&p->pending, &err);
	return NULL;
}

/*
 * A file of two blocks, uploaded by a mount that streams: it announces
 * the file first, so that another device of its user is woken by the
 * first block to land and learns its id and size, while a non-member's
 * long poll learns nothing and cannot watch the namespace.
 */
static void test_an_upload_streams_its_landed_blocks_to_members_only(void)
{
	struct fake_server *s = fake_server_new();
	struct client a;
	struct cfs_block_id ids[2];
	struct cfs_blocklist bl = { .ids = ids, .n = 2 };
	struct local_content content;
	struct local_new n = { CFS_KIND_FILE, 0644, now_ns(), NULL };
	struct mirror_changes ch = { 0 };
	struct mirror_entry out;
	struct pending_poller dev = { .timeout_s = 10 }, other = { 0 };
	struct remote *dev_r, *other_r;
	struct cfs_error err;
	struct cfs_sql *db;
	int64_t other_ns;
	pthread_t t;

	CHECK(s && fake_namespace(s, 0) == ROOT_NS);
	other_ns = fake_namespace(s, 1);
	client_new(&a, s, 0, ROOT_NS, "stream-a");
	a.fs.opt.streaming = true;
	CHECK(catch_up(&a, &err) == CFS_OK);
	ids[0] = cache_block(&a, 21, CFS_BLOCK_SIZE);
	ids[1] = cache_block(&a, 22, 777);
	content = (struct local_content){ .size = CFS_BLOCK_SIZE + 777,
					  .blocks = &bl,
					  .atime_ns = now_ns(),
					  .mtime_ns = now_ns(),
					  .ctime_ns = now_ns() };
	db = cache_db(a.fs.cache, &err);
	CHECK(db && local_mknode(db, MIRROR_ROOT_INO, "big.bin", &n, &out,
				 &err) == CFS_OK);
	CHECK(local_write_end(db, out.ino, &content, &ch, &err) == CFS_OK);
	mirror_entry_release(&out);
	mirror_changes_release(&ch);
	cache_db_release(a.fs.cache, db);

	dev_r = fake_remote_new(s, 0);
	dev.conn = remote_conn_new(dev_r);
	dev.cursor = (struct remote_cursor){ ROOT_NS, fake_head(s, ROOT_NS) };
	CHECK(pthread_create(&t, NULL, pending_poll_thread, &dev) == 0);
	fake_wait_parked(s, 1);
	CHECK(upload_all(&a, 20));
	pthread_join(t, NULL);
	CHECK(dev.rc == CFS_OK);
	CHECK(dev.pending.n >= 1 && dev.pending.cursor > 0);
	for (size_t i = 0; i < dev.pending.n; i++) {
		const struct remote_landed *l = &dev.pending.landed[i];
		bool first = cfs_block_id_equal(&l->id, &ids[0]);

		CHECK(l->ns == ROOT_NS);
		CHECK(first || cfs_block_id_equal(&l->id, &ids[1]));
		CHECK(l->size == (first ? CFS_BLOCK_SIZE : 777));
	}
	remote_pending_release(&dev.pending);

	other_r = fake_remote_new(s, 1);
	other.conn = remote_conn_new(other_r);
	other.cursor = (struct remote_cursor){ other_ns, 0 };
	pending_poll_thread(&other);
	CHECK(other.rc == CFS_OK && other.pending.n == 0);
	remote_pending_release(&other.pending);
	other.cursor = (struct remote_cursor){ ROOT_NS, 0 };
	pending_poll_thread(&other);
	CHECK(other.rc == CFS_ERR_NOT_FOUND && other.pending.n == 0);
	remote_pending_release(&other.pending);

	remote_conn_free(other.conn);
	remote_free(other_r);
	remote_conn_free(dev.conn);
	remote_free(dev_r);
	client_close(&a);
	fake_server_free(s);
}

/*
 * One step of a seeded run, drawn as what (0 to 9): a local change, an
 * uploader step, a catch-up or a restart (which loses nothing queued);
 * then a check that the mirror shows the model.
 */
static void step_shows_model(struct client *c, struct fake_server *s,
			     struct model *m, unsigned what, unsigned *rng,
			     struct listing *a, struct listing *b)
{
	struct cfs_error err = { 0 };
	bool verbose = getenv("TEST_REMOTE_VERBOSE") != NULL;

	if (what < 5) {
		local_change(c, m, rng);
	} else if (what < 8) {
		bool sent, retry;

		uploader_step(c->u, &sent, &retry, &err);
		if (verbose)
			fprintf(stderr, "  upload: %d %s\n", sent, err.msg);
	} else if (what < 9) {
		enum cfs_err rc = catch_up(c, &err);

		if (verbose)
			fprintf(stderr, "  catch up: %d %s\n", rc,
				rc ? err.msg : "");
	} else {
		int64_t n = queued(c);

		client_close(c);
		client_open(c, s, 0, ROOT_NS);
		CHECK(queued(c) == n);
	}
	mirror_listing(c, a, s);
	model_listing(m, b);
	CHECK(same(a, b, "the mirror and the model"));
}

/* The server comes back for good: everything gets there, and the mirror,
 * the model and the server agree (a: the mirror's listing after). */
static void converge(struct client *c, struct fake_server *s,
		     const struct model *m, struct listing *a,
		     struct listing *b)
{
	struct cfs_error err;

	fake_faults(s, 0, 0);
	CHECK(upload_all(c, 200));
	CHECK(catch_up(c, &err) == CFS_OK);
	mirror_listing(c, a, s);
	model_listing(m, b);
	CHECK(same(a, b, "the mirror and the model"));
	b->n = 0;
	fake_walk(s, ROOT_NS, on_fake, b);
	qsort(b->lines, b->n, sizeof(b->lines[0]), by_line);
	CHECK(same(a, b, "the mirror and the server"));
}

static void run_free(struct fake_server *s, struct model *m, struct listing *a,
		     struct listing *b)
{
	fake_server_free(s);
	free(m);
	free(a);
	free(b);
}

/* One seeded run: what it checks is said at the top. */
static void random_run(unsigned seed)
{
	struct fake_server *s = fake_server_new();
	struct model *m = calloc(1, sizeof(*m));
	struct listing *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	struct client c;
	unsigned rng = seed;
	char name[32];
	int before = check_failures;

	CHECK(s && m && a && b && fake_namespace(s, 0) == ROOT_NS);
	snprintf(name, sizeof(name), "run-%u", seed);
	client_new(&c, s, 0, ROOT_NS, name);
	fake_faults(s, 20, seed);
	for (unsigned step = 0; step < 60; step++) {
		step_shows_model(&c, s, m, (unsigned)rand_r(&rng) % 10, &rng, a,
				 b);
		if (check_failures != before)
			break;
	}
	converge(&c, s, m, a, b);
	if (getenv("TEST_REMOTE_VERBOSE"))
		fprintf(stderr, "seed %u: %zu entries, journal at JID %lld\n",
			seed, a->n, (long long)fake_head(s, ROOT_NS));
	client_close(&c);
	run_free(s, m, a, b);
	if (check_failures != before)
		fprintf(stderr,
			"seed %u failed: TEST_REMOTE_SEED=%u replays it\n",
			seed, seed);
}

/* Runs run(seed) for the seed in env seed_var alone, or for runs seeds
 * from now's or TEST_REMOTE_FIRST_SEED (TEST_REMOTE_RUNS of them if
 * set), printing them and the time they took; stops at a failure. */
static void seeded_runs(const char *seed_var, unsigned runs, const char *what,
			void (*run)(unsigned seed))
{
	const char *one = getenv(seed_var);
	const char *runs_s = getenv("TEST_REMOTE_RUNS");
	const char *first_s = getenv("TEST_REMOTE_FIRST_SEED");
	unsigned first = first_s ? (unsigned)strtoul(first_s, NULL, 10)
				 : (unsigned)time(NULL);
	int before = check_failures;
	struct timespec t0, t1;

	if (one) {
		run((unsigned)strtoul(one, NULL, 10));
		return;
	}
	if (runs_s)
		runs = (unsigned)atoi(runs_s);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	fprintf(stderr, "%s seeds %u to %u\n", what, first, first + runs - 1);
	for (unsigned i = 0; i < runs && check_failures == before; i++)
		run(first + i);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	fprintf(stderr, "%u seeded %s runs in %.2f s\n", runs, what,
		(double)(t1.tv_sec - t0.tv_sec) +
			(double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
}

static void test_seeded_random_sequences_with_faults_converge(void)
{
	seeded_runs("TEST_REMOTE_SEED", 100, "random", random_run);
}

static void test_a_shared_folder_keeps_its_content_and_reaches_the_invitee(void)
{
	struct fake_server *s = fake_server_new();
	struct remote_member *mem = NULL;
	struct remote_version *v = NULL;
	struct listing *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	struct client c, d;
	struct cfs_error err;
	int64_t ns = 0, bob_root;
	size_t n_mem = 0, n_v = 0;
	struct queued_op op = { .type = QUEUE_DIR,
				.kind = CFS_KIND_DIR,
				.path = "trip",
				.mode = 0755 };
	struct queued_op f = { .type = QUEUE_FILE,
			       .kind = CFS_KIND_FILE,
			       .path = "trip/plan.txt",
			       .mode = 0644 };

	CHECK(s && a && b && fake_namespace(s, 0) == ROOT_NS);
	bob_root = fake_namespace(s, 1);
	CHECK(fake_commit_one(s, ROOT_NS, &op).status == REMOTE_COMMITTED);
	CHECK(fake_commit_one(s, ROOT_NS, &f).status == REMOTE_COMMITTED);
	f.base_jid = fake_head(s, ROOT_NS);
	f.mtime_ns = 7;
	f.size = 5;
	CHECK(fake_commit_one(s, ROOT_NS, &f).status == REMOTE_COMMITTED);
	client_new(&c, s, 0, ROOT_NS, "share-a");
	client_new(&d, s, 1, bob_root, "share-b");
	CHECK(catch_up(&c, &err) == CFS_OK);

	CHECK(c.fs.remote->ops->share(c.conn, ROOT_NS, "trip", &ns, &err) ==
	      CFS_OK);
	CHECK(ns > ROOT_NS && ns != bob_root);
	CHECK(c.fs.remote->ops->member(c.conn, ns, REMOTE_INVITE, "user1",
				       &err) == CFS_OK);
	CHECK(c.fs.remote->ops->member(c.conn, ns, REMOTE_INVITE, "user1",
				       &err) == CFS_ERR_EXISTS);
	CHECK(c.fs.remote->ops->members(c.conn, ns, &mem, &n_mem, &err) ==
	      CFS_OK);
	CHECK(n_mem == 2 && mem[0].owner && strcmp(mem[0].user, "user0") == 0 &&
	      !mem[1].owner && strcmp(mem[1].user, "user1") == 0);
	remote_members_free(mem, n_mem);
	/* Both versions of the file, newest first, in the root's journal. */
	CHECK(c.fs.remote->ops->history(c.conn, ROOT_NS, "trip/plan.txt", &v,
					&n_v, &err) == CFS_OK);
	CHECK(n_v == 3 && v[0].e.kind == CFS_KIND_DELETED &&
	      v[1].e.mtime_ns == 7 && v[2].e.jid < v[1].e.jid);
	remote_versions_free(v, n_v);

	CHECK(catch_up(&c, &err) == CFS_OK);
	CHECK(catch_up(&d, &err) == CFS_OK);
	mirror_listing(&c, a, s);
	fake_walk(s, ROOT_NS, on_fake, b);
	qsort(b->lines, b->n, sizeof(b->lines[0]), by_line);
	CHECK(a->n == 2 && same(a, b, "the sharer's mirror and the server"));
	mirror_listing(&d, a, s);
	b->n = 0;
	fake_walk(s, bob_root, on_fake, b);
	qsort(b->lines, b->n, sizeof(b->lines[0]), by_line);
	CHECK(a->n == 2 && same(a, b, "the invitee's mirror and the server"));

	/* Leaving takes the folder out of the invitee's tree. */
	CHECK(d.fs.remote->ops->member(d.conn, ns, REMOTE_LEAVE, NULL, &err) ==
	      CFS_OK);
	CHECK(catch_up(&d, &err) == CFS_OK);
	mirror_listing(&d, a, NULL);
	CHECK(a->n == 0);
	client_close(&c);
	client_close(&d);
	fake_server_free(s);
	free(a);
	free(b);
}

/* Commits from threads at once, each call delayed at random: the
 * answers come back in another order, the journal stays one. */
struct delayed_writer {
	struct remote *r;
	unsigned i;
	bool ok;
};

static void *delayed_writer_thread(void *arg)
{
	struct delayed_writer *w = arg;
	struct remote_conn *conn = remote_conn_new(w->r);
	struct cfs_error err;
	bool ok = conn != NULL;

	for (unsigned k = 0; ok && k < 8; k++) {
		char path[32];
		struct queued_op op = { .type = QUEUE_DIR,
					.kind = CFS_KIND_DIR,
					.path = path,
					.mode = 0755 };
		struct remote_commit_req req = { .ns = ROOT_NS,
						 .ops = &op,
						 .n = 1 };
		struct remote_commit out;

		snprintf(path, sizeof(path), "w%u-%u", w->i, k);
		ok = w->r->ops->commit(conn, &req, 5, NULL, &out, &err) ==
			     CFS_OK &&
		     out.results[0].status == REMOTE_COMMITTED;
		if (ok)
			remote_commit_release(&out);
	}
	remote_conn_free(conn);
	w->ok = ok;
	return NULL;
}

static void test_delayed_answers_come_back_out_of_order_and_apply_once(void)
{
	struct fake_server *s = fake_server_new();
	struct delayed_writer w[4];
	pthread_t t[4];
	int64_t jid = 0;
	unsigned seen = 0;

	CHECK(s && fake_namespace(s, 0) == ROOT_NS);
	fake_delays(s, 50, 5, 1);
	for (unsigned i = 0; i < 4; i++) {
		w[i] = (struct delayed_writer){ fake_remote_new(s, 0), i,
						false };
		CHECK(w[i].r &&
		      pthread_create(&t[i], NULL, delayed_writer_thread,
				     &w[i]) == 0);
	}
	for (unsigned i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		CHECK(w[i].ok);
		remote_free(w[i].r);
	}
	/* 32 folders, one row each, JIDs 1 to 32. */
	for (unsigned i = 0; i < 4; i++)
		for (unsigned k = 0; k < 8; k++) {
			char path[32];
			uint64_t size;

			snprintf(path, sizeof(path), "w%u-%u", i, k);
			seen += fake_lookup(s, ROOT_NS, path, &size) ==
				CFS_KIND_DIR;
		}
	jid = fake_head(s, ROOT_NS);
	CHECK(seen == 32 && jid == 32);
	fake_server_free(s);
}

/*
 * Shares a top folder of c's root ("dN", drawn from rng) as the mount's
 * own share does (fs/share.c): what is queued goes first, and the share
 * returns once the mirror shows it.  TEST_REMOTE_SHARE_ELSEWHERE=1
 * shares it as another device would, with no wait on either side.  Its
 * namespace, or 0.
 */
static int64_t share_one(struct client *c, unsigned *rng)
{
	struct cfs_error err = { 0 };
	bool here = !getenv("TEST_REMOTE_SHARE_ELSEWHERE");
	char path[8];
	int64_t ns = 0;

	snprintf(path, sizeof(path), "d%u", (unsigned)rand_r(rng) % 3);
	if (here)
		upload_all(c, 20);
	if (c->fs.remote->ops->share(c->conn, ROOT_NS, path, &ns, &err))
		ns = 0;
	for (unsigned i = 0; here && ns && i < 20; i++)
		if (catch_up(c, &err) == CFS_OK)
			break;
	if (getenv("TEST_REMOTE_VERBOSE"))
		fprintf(stderr, "  share '%s': %lld %s\n", path, (long long)ns,
			err.msg);
	return ns;
}

/* One seeded run of random_run's kind with shares and invitations: the
 * mirror shows the model all along, and at the end the sharer's mirror,
 * the model and the server agree, and so do the invitee's mirror and
 * the server. */
static void random_share_run(unsigned seed)
{
	struct fake_server *s = fake_server_new();
	struct model *m = calloc(1, sizeof(*m));
	struct listing *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	struct client c, d;
	struct cfs_error err;
	unsigned rng = seed;
	char name[32];
	int64_t shared[4] = { 0 }, bob_root;
	size_t n_shared = 0;
	int before = check_failures;

	CHECK(s && m && a && b && fake_namespace(s, 0) == ROOT_NS);
	bob_root = fake_namespace(s, 1);
	snprintf(name, sizeof(name), "share-%u", seed);
	client_new(&c, s, 0, ROOT_NS, name);
	fake_faults(s, 20, seed);
	for (unsigned step = 0; step < 60; step++) {
		unsigned what = (unsigned)rand_r(&rng) % 12;

		if (what < 10) {
			step_shows_model(&c, s, m, what, &rng, a, b);
			if (check_failures != before)
				break;
			continue;
		} else if (what < 11) {
			int64_t ns = share_one(&c, &rng);

			for (size_t i = 0; ns && i <= n_shared; i++)
				if (i == n_shared && n_shared < 4)
					shared[n_shared++] = ns;
				else if (i < n_shared && shared[i] == ns)
					break;
		} else if (n_shared) {
			int64_t ns = shared[(unsigned)rand_r(&rng) % n_shared];

			c.fs.remote->ops->member(c.conn, ns, REMOTE_INVITE,
						 "user1", &err);
		}
		mirror_listing(&c, a, s);
		model_listing(m, b);
		CHECK(same(a, b, "the mirror and the model"));
		if (check_failures != before)
			break;
	}
	converge(&c, s, m, a, b);
	snprintf(name, sizeof(name), "share-%u-b", seed);
	client_new(&d, s, 1, bob_root, name);
	CHECK(catch_up(&d, &err) == CFS_OK);
	mirror_listing(&d, a, s);
	b->n = 0;
	fake_walk(s, bob_root, on_fake, b);
	qsort(b->lines, b->n, sizeof(b->lines[0]), by_line);
	CHECK(same(a, b, "the invitee's mirror and the server"));
	client_close(&d);
	client_close(&c);
	run_free(s, m, a, b);
	if (check_failures != before)
		fprintf(stderr,
			"seed %u failed: %sTEST_REMOTE_SHARE_SEED=%u replays it\n",
			seed,
			getenv("TEST_REMOTE_SHARE_ELSEWHERE")
				? "TEST_REMOTE_SHARE_ELSEWHERE=1 "
				: "",
			seed);
}

static void test_seeded_sequences_with_shares_converge(void)
{
	seeded_runs("TEST_REMOTE_SHARE_SEED", 50, "share", random_share_run);
}

/* Seeded runs of random_share_run with shares made elsewhere. */
static void share_elsewhere_runs(const unsigned *seeds, size_t n)
{
	bool was = getenv("TEST_REMOTE_SHARE_ELSEWHERE") != NULL;

	setenv("TEST_REMOTE_SHARE_ELSEWHERE", "1", 1);
	for (size_t i = 0; i < n; i++)
		random_share_run(seeds[i]);
	if (!was)
		unsetenv("TEST_REMOTE_SHARE_ELSEWHERE");
}

/* Seeds of the run above with shares made elsewhere (another device,
 * no wait) that once ended with a file renamed into the folder shared
 * meanwhile back at its old place, or as a conflicted copy of its own
 * change: the move crossed into the new namespace and was refused. */
static void test_a_rename_into_a_folder_shared_elsewhere_ends_there(void)
{
	static const unsigned seeds[] = { 1796607686u, 1117u, 1227u };

	share_elsewhere_runs(seeds, sizeof(seeds) / sizeof(seeds[0]));
}

/* A seed of the run above with shares made elsewhere that ended with a
 * create retried for good in the root namespace ("its folder is gone on
 * the server"): left behind by the batch that moved its folder (a
 * fault), it went again under the folder's old path, which the folder's
 * share then did not take along. */
static void test_a_change_left_behind_by_a_folder_move_follows_it(void)
{
	static const unsigned seeds[] = { 1796612271u };

	share_elsewhere_runs(seeds, sizeof(seeds) / sizeof(seeds[0]));
}

/* Seeds of the run above with shares made elsewhere that failed its
 * check mid-run, not the mirror: entries a share moved into a namespace
 * not listed yet show at no JID (the mirror's invariant 10), and the
 * check took them for committed rows the journal lacks. */
static void test_entries_a_share_moved_await_their_listing(void)
{
	static const unsigned seeds[] = { 1796618168u, 1796618703u };

	share_elsewhere_runs(seeds, sizeof(seeds) / sizeof(seeds[0]));
}

/* Commits what another device does in the root namespace: type of kind
 * at path (to, for a move). */
static void elsewhere(struct fake_server *s, enum queue_type type,
		      enum cfs_kind kind, const char *path, const char *to)
{
	struct queued_op op = { .type = type,
				.kind = kind,
				.path = (char *)path,
				.to = (char *)to,
				.size = kind == CFS_KIND_FILE ? 5 : 0,
				.mode = kind == CFS_KIND_DIR ? 0755 : 0644 };

	CHECK(fake_commit_one(s, ROOT_NS, &op).status == REMOTE_COMMITTED);
}

/* Sends c's queue once before c lists what happened meanwhile (the
 * race of a change here with another device's), then everything, and
 * checks that c's mirror shows what the server has. */
static void send_then_show_server(struct client *c, struct fake_server *s)
{
	struct listing *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	struct cfs_error err;
	bool sent, retry;

	uploader_step(c->u, &sent, &retry, &err);
	CHECK(upload_all(c, 20));
	CHECK(catch_up(c, &err) == CFS_OK);
	CHECK(a && b);
	if (a && b) {
		mirror_listing(c, a, s);
		fake_walk(s, ROOT_NS, on_fake, b);
		qsort(b->lines, b->n, sizeof(b->lines[0]), by_line);
		CHECK(same(a, b, "the mirror and the server"));
	}
	free(a);
	free(b);
}

/* A race of a change here with another device's change of folder a:
 * what is where first, what each side does, and whether this mount
 * lists the other side's change before it sends its own. */
struct race {
	const char *name; /* of the mount's cache */
	const char *x;	  /* the entry: "a/x", or "x" beside a */
	enum cfs_kind kind;
	enum queue_type there; /* to a: QUEUE_MOVE (to b), QUEUE_DELETE */
	enum { RENAME_X, REMOVE_X, MOVE_X_INTO_A } here;
	bool listed_first;
	const char *done; /* the server's path of what here did, or NULL */
	bool done_gone;	  /* done names what must be gone */
};

/* Runs race r; c's mirror must end showing what the server has. */
static void run_race(const struct race *r)
{
	struct fake_server *s = fake_server_new();
	struct client c;
	struct cfs_error err;
	struct cfs_sql *db;
	const char *name = NULL;
	uint64_t dir_ino = 0, a_ino = 0, ino, size = 0;
	enum cfs_kind kind;
	enum cfs_err rc = CFS_ERR_INTERNAL;

	CHECK(s && fake_namespace(s, 0) == ROOT_NS);
	elsewhere(s, QUEUE_DIR, CFS_KIND_DIR, "a", NULL);
	elsewhere(s, r->kind == CFS_KIND_DIR ? QUEUE_DIR : QUEUE_FILE, r->kind,
		  r->x, NULL);
	client_new(&c, s, 0, ROOT_NS, r->name);
	CHECK(catch_up(&c, &err) == CFS_OK);
	elsewhere(s, r->there, CFS_KIND_DIR, "a",
		  r->there == QUEUE_MOVE ? "b" : NULL);
	db = cache_db(c.fs.cache, &err);
	if (db) {
		dir_ino = folder_of(db, r->x, &name);
		a_ino = ino_at(db, "a", &kind);
	}
	if (dir_ino && a_ino && r->here == REMOVE_X)
		rc = local_remove(db, dir_ino, name, r->kind == CFS_KIND_DIR,
				  &ino, &err);
	else if (dir_ino && a_ino)
		rc = local_rename(db, dir_ino, name,
				  r->here == RENAME_X ? dir_ino : a_ino,
				  r->here == RENAME_X ? "y" : name, false,
				  now_ns(), &ino, &err);
	CHECK(rc == CFS_OK);
	cache_db_release(c.fs.cache, db);
	if (r->listed_first)
		CHECK(catch_up(&c, &err) == CFS_OK);
	send_then_show_server(&c, s);
	if (r->done)
		CHECK((fake_lookup(s, ROOT_NS, r->done, &size) ==
		       CFS_KIND_DELETED) == r->done_gone);
	client_close(&c);
	fake_server_free(s);
}

/*
 * A file renamed here while another device moves its folder: the move's
 * path is gone when it arrives, and the server finds nothing there.  The
 * rename waits for the listing, which takes it along to the folder's new
 * place, and goes again: the file ends under its new name, on the server
 * and here (test_write_converge.py's shared folder run of seed 4243 once
 * ended with the file at its new name in one mount only).
 */
static void test_a_rename_as_its_folder_moves_elsewhere_ends_there(void)
{
	struct race r = { .name = "refused-move",
			  .x = "a/x",
			  .kind = CFS_KIND_FILE,
			  .there = QUEUE_MOVE,
			  .here = RENAME_X,
			  .done = "b/y" };

	run_race(&r);
}

/*
 * A folder removed here while another device moves the folder holding
 * it: the delete's path is gone when it arrives, and the server finds
 * nothing there.  The delete waits for the listing, which takes it along,
 * and goes again: the folder is gone, on the server and here (once the
 * mount took "nothing there" for done, and lacked a folder and its
 * subtree for good that the server had: test_write_converge.py's shared
 * folder run of seed 4243).
 */
static void test_a_remove_as_its_folder_moves_elsewhere_is_done(void)
{
	struct race r = { .name = "delete-nothing",
			  .x = "a/x",
			  .kind = CFS_KIND_DIR,
			  .there = QUEUE_MOVE,
			  .here = REMOVE_X,
			  .done = "b/x",
			  .done_gone = true };

	run_race(&r);
}

/* Seeds of the run above with shares made elsewhere that ended with a
 * file renamed out of the folder shared meanwhile back in it (1209,
 * 1796618826), or the shared folder holding an old version of it too. */
static void test_a_rename_out_of_a_folder_shared_elsewhere_seeds(void)
{
	static const unsigned seeds[] = { 1209u, 1796618826u };

	share_elsewhere_runs(seeds, sizeof(seeds) / sizeof(seeds[0]));
}

/* Folder d holds f.txt, s is a folder beside it, and a new client c
 * (cache name) lists them; then another device shares folder shared,
 * as namespace *ns.  The fake server. */
static struct fake_server *shared_meanwhile(struct client *c, const char *name,
					    const char *shared, int64_t *ns)
{
	struct fake_server *s = fake_server_new();
	struct cfs_error err;

	CHECK(s && fake_namespace(s, 0) == ROOT_NS);
	elsewhere(s, QUEUE_DIR, CFS_KIND_DIR, "d", NULL);
	elsewhere(s, QUEUE_DIR, CFS_KIND_DIR, "s", NULL);
	elsewhere(s, QUEUE_FILE, CFS_KIND_FILE, "d/f.txt", NULL);
	client_new(c, s, 0, ROOT_NS, name);
	CHECK(catch_up(c, &err) == CFS_OK);
	CHECK(c->fs.remote->ops->share(c->conn, ROOT_NS, shared, ns, &err) ==
	      CFS_OK);
	return s;
}

/* Folder d holds f.txt; here, f.txt is removed (with remove) or renamed
 * out of d to g.txt while another device shares d, and the change is
 * sent before this mount lists the share: it must be done all the same,
 * on the server and in the mirror. */
static void race_with_a_share(const char *name, bool remove)
{
	struct client c;
	struct cfs_error err;
	struct cfs_sql *db;
	enum cfs_kind kind;
	uint64_t dir_ino = 0, ino, size = 0;
	int64_t ns = 0;
	enum cfs_err rc = CFS_ERR_INTERNAL;
	struct fake_server *s = shared_meanwhile(&c, name, "d", &ns);

	db = cache_db(c.fs.cache, &err);
	if (db && (dir_ino = ino_at(db, "d", &kind)) != 0)
		rc = remove ? local_remove(db, dir_ino, "f.txt", false, &ino,
					   &err)
			    : local_rename(db, dir_ino, "f.txt",
					   MIRROR_ROOT_INO, "g.txt", false,
					   now_ns(), &ino, &err);
	CHECK(rc == CFS_OK);
	cache_db_release(c.fs.cache, db);
	send_then_show_server(&c, s);
	CHECK(fake_lookup(s, ns, "f.txt", &size) == CFS_KIND_DELETED);
	CHECK(remove ||
	      (fake_lookup(s, ROOT_NS, "g.txt", &size) == CFS_KIND_FILE &&
	       size == 5));
	client_close(&c);
	fake_server_free(s);
}

/*
 * A file renamed out of a folder that another device shares meanwhile:
 * the rename crosses from the shared namespace into the root one, which
 * no move can do.  The user moved the file: it must end where it was
 * moved to, and be gone from the shared folder.
 */
static void test_a_rename_out_of_a_folder_shared_elsewhere_ends_there(void)
{
	race_with_a_share("rename-out", false);
}

/*
 * A file moved here into a folder another device removes meanwhile: the
 * move cannot be done, and the file stays where the server has it.  The
 * folder must not stay here alone (test_write_converge.py's shared
 * folder run of seed 4243 ended so: the folder, kept for the file's
 * sake, showed for good in one mount, with nothing queued to create it).
 */
static void test_a_move_into_a_folder_removed_elsewhere_leaves_no_folder(void)
{
	/* Listed first: the folder goes while the move waits to be sent. */
	struct race r = { .name = "move-into-removed",
			  .x = "x",
			  .kind = CFS_KIND_FILE,
			  .there = QUEUE_DELETE,
			  .here = MOVE_X_INTO_A,
			  .listed_first = true };

	run_race(&r);
}

/* Seeds of the run above with shares made elsewhere where a folder
 * renamed here as another device shared it showed back under its old
 * name once the rename was confirmed, until the next listing
 * (1796618915, 1796619214). */
static void test_a_folder_renamed_as_it_is_shared_keeps_its_new_name(void)
{
	static const unsigned seeds[] = { 1796618915u, 1796619214u };

	share_elsewhere_runs(seeds, sizeof(seeds) / sizeof(seeds[0]));
}

/*
 * A file removed here in a folder that another device shares meanwhile:
 * the delete's path crosses the shared folder now.  It waits for the
 * listing, which re-addresses it in the shared namespace, and the file
 * is gone there (the fake took the node the share moved away for one
 * this delete had removed before, and the delete was lost: shares-
 * elsewhere seed 1796619373).
 */
static void test_a_remove_in_a_folder_shared_elsewhere_is_done(void)
{
	static const unsigned seeds[] = { 1796619373u };

	race_with_a_share("remove-in-shared", true);
	share_elsewhere_runs(seeds, sizeof(seeds) / sizeof(seeds[0]));
}

/* Seeds of the run above with shares made elsewhere that never
 * converged: a change under a folder shared meanwhile waited for the
 * mirror to follow the share, which waited for the folder's own rename
 * queued behind that change (357, 386). */
static void test_a_change_in_a_folder_shared_and_renamed_meanwhile_goes(void)
{
	static const unsigned seeds[] = { 357u, 386u };

	share_elsewhere_runs(seeds, sizeof(seeds) / sizeof(seeds[0]));
}

/* Seeds of the run above with shares made elsewhere where a file or
 * symlink made here where another was just moved from became a
 * conflicted copy of itself: sent in the batch after that move, which
 * went again (into a folder shared meanwhile), it found the other
 * still there (44, 623, 770). */
static void test_a_file_made_where_one_was_moved_from_is_no_conflict(void)
{
	static const unsigned seeds[] = { 44u, 623u, 770u };

	share_elsewhere_runs(seeds, sizeof(seeds) / sizeof(seeds[0]));
}

/*
 * As shared_meanwhile() leaves it (shared: "d" or "s"), d is renamed
 * to e (into s/d when into_s), and the rename is sent before this mount
 * lists the share.  Renamed, the shared folder ends at its new name.
 * Moved into the shared folder, which no namespace can do, it stays
 * where the server has it, with its content, and so it shows here.
 */
static void rename_as_shared(const char *name, const char *shared, bool into_s)
{
	struct client c;
	struct cfs_error err;
	struct cfs_sql *db;
	enum cfs_kind kind;
	uint64_t s_ino = 0, ino, size = 0;
	int64_t ns = 0;
	enum cfs_err rc = CFS_ERR_INTERNAL;
	struct fake_server *s = shared_meanwhile(&c, name, shared, &ns);

	db = cache_db(c.fs.cache, &err);
	if (db && (s_ino = ino_at(db, "s", &kind)) != 0)
		rc = local_rename(db, MIRROR_ROOT_INO, "d",
				  into_s ? s_ino : MIRROR_ROOT_INO,
				  into_s ? "d" : "e", false, now_ns(), &ino,
				  &err);
	CHECK(rc == CFS_OK);
	cache_db_release(c.fs.cache, db);
	send_then_show_server(&c, s);
	if (into_s)
		CHECK(fake_lookup(s, ROOT_NS, "d/f.txt", &size) ==
		      CFS_KIND_FILE);
	else
		CHECK(fake_lookup(s, ROOT_NS, "d", &size) == CFS_KIND_DELETED &&
		      fake_lookup(s, ROOT_NS, "e", &size) == CFS_KIND_MOUNT &&
		      fake_lookup(s, ns, "f.txt", &size) == CFS_KIND_FILE);
	client_close(&c);
	fake_server_free(s);
}

static void test_a_folder_renamed_as_another_device_shares_it_keeps_it(void)
{
	rename_as_shared("rename-shared", "d", false);
}

/* Once, the folder was taken along into the shared namespace here, and
 * showed there with its file gone from view, while the server kept both
 * where they were (share-elsewhere seeds 460 and 812, whose model still
 * expects the move itself). */
static void test_a_folder_moved_into_a_folder_shared_meanwhile_stays(void)
{
	rename_as_shared("move-into-shared", "s", true);
}

int main(void)
{
	cfs_log_init("test_remote", CFS_LOG_ERROR);
	if (!mkdtemp(dir))
		return 1;
	RUN(test_a_long_poll_wakes_when_its_namespace_moves);
	RUN(test_a_block_is_fetched_only_by_those_who_may_read_it);
	RUN(test_an_upload_streams_its_landed_blocks_to_members_only);
	RUN(test_two_devices_editing_one_version_keep_both);
	RUN(test_a_commit_whose_answer_was_lost_is_applied_once);
	RUN(test_small_files_go_up_in_one_batch_upload);
	RUN(test_a_server_without_batch_uploads_gets_blocks_one_by_one);
	RUN(test_seeded_random_sequences_with_faults_converge);
	RUN(test_a_shared_folder_keeps_its_content_and_reaches_the_invitee);
	RUN(test_delayed_answers_come_back_out_of_order_and_apply_once);
	RUN(test_seeded_sequences_with_shares_converge);
	RUN(test_a_rename_into_a_folder_shared_elsewhere_ends_there);
	RUN(test_a_rename_as_its_folder_moves_elsewhere_ends_there);
	RUN(test_a_change_left_behind_by_a_folder_move_follows_it);
	RUN(test_entries_a_share_moved_await_their_listing);
	RUN(test_a_remove_as_its_folder_moves_elsewhere_is_done);
	RUN(test_a_rename_out_of_a_folder_shared_elsewhere_ends_there);
	RUN(test_a_rename_out_of_a_folder_shared_elsewhere_seeds);
	RUN(test_a_move_into_a_folder_removed_elsewhere_leaves_no_folder);
	RUN(test_a_folder_renamed_as_it_is_shared_keeps_its_new_name);
	RUN(test_a_remove_in_a_folder_shared_elsewhere_is_done);
	RUN(test_a_change_in_a_folder_shared_and_renamed_meanwhile_goes);
	RUN(test_a_file_made_where_one_was_moved_from_is_no_conflict);
	RUN(test_a_folder_renamed_as_another_device_shares_it_keeps_it);
	RUN(test_a_folder_moved_into_a_folder_shared_meanwhile_stays);
	if (!check_failures) {
		char cmd[64];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) != 0)
			return 1;
	}
	return CHECK_DONE();
}
