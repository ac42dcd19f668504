/*
 * The block store options of serve and gc (server/blocks_opts.h): which
 * backend, where, and with which credentials.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h> /* OPENSSL_cleanse */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/blocks_opts.h"

#define DEFAULT_REGION "us-east-1"

/* A credentials file's lines are short; a longer file is not one. */
#define CREDENTIALS_MAX 4096

bool blocks_opts_take(struct blocks_opts *o, int opt, const char *arg)
{
	switch (opt) {
	case BLOCKS_OPT_BLOCKS:
		o->url = arg;
		return true;
	case BLOCKS_OPT_S3_ENDPOINT:
		o->endpoint = arg;
		return true;
	case BLOCKS_OPT_S3_REGION:
		o->region = arg;
		return true;
	case BLOCKS_OPT_S3_PATH_STYLE:
		o->path_style = 1;
		return true;
	case BLOCKS_OPT_S3_VIRTUAL_HOST:
		o->path_style = 0;
		return true;
	case BLOCKS_OPT_S3_CREDENTIALS:
		o->credentials = arg;
		return true;
	}
	return false;
}

static bool is_s3(const struct blocks_opts *o)
{
	return o->url && strncmp(o->url, "s3://", 5) == 0;
}

const char *blocks_opts_problem(const struct blocks_opts *o)
{
	bool s3_options = o->endpoint || o->region || o->credentials ||
			  o->path_style >= 0;

	if (o->url && !is_s3(o) &&
	    (strncmp(o->url, "dir:", 4) != 0 || !o->url[4]))
		return "--blocks takes dir:DIR or s3://BUCKET[/PREFIX]";
	if (is_s3(o) && (o->url[5] == '\0' || o->url[5] == '/'))
		return "--blocks s3://BUCKET[/PREFIX] needs a bucket";
	if (is_s3(o) && !o->endpoint)
		return "--blocks s3://... needs --s3-endpoint URL";
	if (!is_s3(o) && s3_options)
		return "the --s3-* options go with --blocks s3://...";
	return NULL;
}

/* The value of "NAME=value" lines of text (NUL-terminated), or NULL. */
static char *credential(char *text, const char *name)
{
	size_t nlen = strlen(name);

	for (char *line = text; line && *line;) {
		char *next = strchr(line, '\n');
		size_t len = next ? (size_t)(next - line) : strlen(line);

		if (len > nlen && strncmp(line, name, nlen) == 0 &&
		    line[nlen] == '=')
			return strndup(line + nlen + 1, len - nlen - 1);
		line = next ? next + 1 : NULL;
	}
	return NULL;
}

/* The keys of path, a file only its owner may read. */
static enum cfs_err credentials_file(const char *path, char **key,
				     char **secret, struct cfs_error *err)
{
	char text[CREDENTIALS_MAX + 1];
	struct stat st;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return cfs_fail(err, CFS_ERR_INTERNAL,
				"cannot open credentials file '%s': %s", path,
				strerror(errno));
	if (fstat(fd, &st) || (st.st_mode & 077)) {
		close(fd);
		return cfs_fail(err, CFS_ERR_INTERNAL,
				"credentials file '%s' must be readable by its "
				"owner only (chmod 600)",
				path);
	}
	n = read(fd, text, sizeof(text));
	close(fd);
	if (n < 0 || n > CREDENTIALS_MAX)
		return cfs_fail(err, CFS_ERR_INTERNAL,
				"cannot read credentials file '%s': %s", path,
				n < 0 ? strerror(errno) : "too large");
	text[n] = '\0';
	*key = credential(text, "AWS_ACCESS_KEY_ID");
	*secret = credential(text, "AWS_SECRET_ACCESS_KEY");
	OPENSSL_cleanse(text, sizeof(text));
	if (!*key || !*secret)
		return cfs_fail(
			err, CFS_ERR_INTERNAL,
			"credentials file '%s' lacks a line "
			"AWS_ACCESS_KEY_ID=... or AWS_SECRET_ACCESS_KEY=...",
			path);
	return CFS_OK;
}

static enum cfs_err credentials(const struct blocks_opts *o, char **key,
				char **secret, struct cfs_error *err)
{
	const char *k = getenv("AWS_ACCESS_KEY_ID");
	const char *s = getenv("AWS_SECRET_ACCESS_KEY");

	if (o->credentials)
		return credentials_file(o->credentials, key, secret, err);
	if (!k || !*k || !s || !*s)
		return cfs_fail(err, CFS_ERR_INTERNAL,
				"S3 credentials missing: set AWS_ACCESS_KEY_ID "
				"and AWS_SECRET_ACCESS_KEY, or name a file "
				"with --s3-credentials");
	*key = strdup(k);
	*secret = strdup(s);
	return *key && *secret
		       ? CFS_OK
		       : cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
}

static enum cfs_err open_s3(const struct blocks_opts *o,
			    struct blockstore **out, struct cfs_error *err)
{
	const char *bucket = o->url + 5, *slash = strchr(bucket, '/');
	char *name = strndup(bucket,
			     slash ? (size_t)(slash - bucket) : strlen(bucket));
	char *key = NULL, *secret = NULL;
	struct blockstore_s3_config c = {
		.prefix = slash ? slash + 1 : "",
		.endpoint = o->endpoint,
		.region = o->region ? o->region : DEFAULT_REGION,
		.path_style = o->path_style == 1,
	};
	enum cfs_err rc =
		name ? credentials(o, &key, &secret, err)
		     : cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");

	if (rc == CFS_OK) {
		c.bucket = name;
		c.access_key = key;
		c.secret_key = secret;
		rc = blockstore_s3_open(&c, out, err);
	}
	if (secret)
		OPENSSL_cleanse(secret, strlen(secret));
	free(secret);
	free(key);
	free(name);
	return rc;
}

enum cfs_err blocks_opts_open(const struct blocks_opts *o, const char *data_dir,
			      struct blockstore **out, struct cfs_error *err)
{
	if (is_s3(o))
		return open_s3(o, out, err);
	return blockstore_dir_open(o->url ? o->url + 4 : data_dir, out, err);
}
