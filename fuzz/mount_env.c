/* The mount the client harnesses drive (mount_env.h). */
#include <stdlib.h>
#include <unistd.h>

#include "cache/cache.h"
#include "cloudfs/log.h"
#include "fuzz_util.h"
#include "mount_env.h"

#define NOWHERE "http://127.0.0.1:1"

static void open_cache(struct fs *fs, const char *dir)
{
	struct cfs_error err;

	FUZZ_CHECK(cache_open(dir, &fs->cache, &err) == CFS_OK &&
			   cache_bind(fs->cache, NOWHERE, MOUNT_ENV_ROOT_NS,
				      NULL, fs->client, &err) == CFS_OK,
		   "cannot make a cache in '%s': %s", dir, err.msg);
}

struct fs *mount_env_get(unsigned every)
{
	static struct fs fs;
	static const char *dir;
	static unsigned calls;
	struct cfs_error err;

	if (!dir) {
		cfs_log_init("fuzz", CFS_LOG_ERROR);
		remote_curl_global_init();
		dir = fuzz_tmpdir("mount");
		fs.opt.url = NOWHERE;
		fs.opt.mountpoint = "/nonexistent/mountpoint";
		fs.opt.timeout_s = 1;
		fs.opt.parallel = 1;
		fs.uid = getuid();
		fs.gid = getgid();
		pthread_mutex_init(&fs.apply_lock, NULL);
		pthread_cond_init(&fs.doubt_over, NULL);
		fs.remote = remote_curl_new(NOWHERE, "token", NULL, 1, &err);
		FUZZ_CHECK(fs.remote, "%s", err.msg);
		fs.open = openfiles_new();
		FUZZ_CHECK(fs.open, "out of memory");
		open_cache(&fs, dir);
		fs.fetch = fetcher_new(fs.remote, fs.cache, NULL, 1);
		FUZZ_CHECK(fs.fetch, "no fetcher");
	} else if (every && ++calls % every == 0) {
		fetcher_drain(fs.fetch);
		fetcher_free(fs.fetch);
		cache_close(fs.cache);
		fuzz_empty_dir(dir);
		open_cache(&fs, dir);
		fs.fetch = fetcher_new(fs.remote, fs.cache, NULL, 1);
		FUZZ_CHECK(fs.fetch, "no fetcher");
	}
	return &fs;
}
