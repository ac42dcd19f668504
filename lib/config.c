/* The configuration file (include/cloudfs/config.h). */
#include "cloudfs/config.h"
#include "cloudfs/platform.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A line longer than this is not configuration: refuse it rather than
 * grow without bound. */
#define LINE_MAX_LEN 4096

int cfs_config_dir(char *dir, size_t dir_len)
{
	const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
	int n;

	if (xdg && xdg[0])
		n = snprintf(dir, dir_len, "%s/cloudfs", xdg);
	else if (home && home[0])
		n = snprintf(dir, dir_len, "%s/.config/cloudfs", home);
	else
		return -1;
	return n < 0 || (size_t)n >= dir_len ? -1 : 0;
}

static char *trim(char *s)
{
	char *end = s + strlen(s);

	while (isspace((unsigned char)*s))
		s++;
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

/* value with a leading "~/" made $HOME's, malloc'ed; NULL without HOME. */
static char *expand_home(const char *value)
{
	const char *home = getenv("HOME");
	char *s;

	if (strncmp(value, "~/", 2) != 0)
		return strdup(value);
	if (!home || !home[0] || asprintf(&s, "%s/%s", home, value + 2) < 0)
		return NULL;
	return s;
}

/* Sets key to value in cfg; a message in err when the key is unknown. */
static int set_key(struct cfs_config *cfg, const char *key, const char *value,
		   char *err, size_t err_len)
{
	static const struct {
		const char *name;
		size_t field;
		int path;
	} keys[] = {
		{ "server", offsetof(struct cfs_config, server), 0 },
		{ "token_file", offsetof(struct cfs_config, token_file), 1 },
		{ "ca", offsetof(struct cfs_config, ca), 1 },
		{ "options", offsetof(struct cfs_config, options), 0 },
	};

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		char **field = (char **)((char *)cfg + keys[i].field), *v;

		if (strcmp(key, keys[i].name) != 0)
			continue;
		v = keys[i].path ? expand_home(value) : strdup(value);
		if (!v) {
			snprintf(err, err_len, "cannot expand '%s': %s", value,
				 keys[i].path ? "HOME is not set"
					      : "out of memory");
			return -1;
		}
		free(*field);
		*field = v;
		return 0;
	}
	snprintf(err, err_len,
		 "unknown key '%s' (server, token_file, ca, options)", key);
	return -1;
}

/* Parses one line; 0 when it is blank, a comment or a known key = value. */
static int parse_line(struct cfs_config *cfg, char *line, char *err,
		      size_t err_len)
{
	char *s = trim(line), *eq;

	if (!s[0] || s[0] == '#')
		return 0;
	eq = strchr(s, '=');
	if (!eq) {
		snprintf(err, err_len, "expected 'key = value'");
		return -1;
	}
	*eq = '\0';
	s = trim(s);
	if (!s[0]) {
		snprintf(err, err_len, "no key before '='");
		return -1;
	}
	return set_key(cfg, s, trim(eq + 1), err, err_len);
}

int cfs_config_read(struct cfs_config *cfg, const char *path, char *err,
		    size_t err_len)
{
	FILE *f = fopen(path, "re");
	char *line = NULL, why[256], *options = cfg->options;
	size_t cap = 0;
	ssize_t n;
	unsigned lineno = 0;
	int rc = 0;

	if (!f) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, err_len, "cannot read '%s': %s", path,
			 strerror(errno));
		return -1;
	}
	while (!rc && (n = getline(&line, &cap, f)) >= 0) {
		lineno++;
		if (n > LINE_MAX_LEN) {
			snprintf(why, sizeof(why), "longer than %d bytes",
				 LINE_MAX_LEN);
			rc = -1;
		} else {
			rc = parse_line(cfg, line, why, sizeof(why));
		}
		if (rc)
			snprintf(err, err_len, "'%s' line %u: %s", path, lineno,
				 why);
	}
	if (!rc && ferror(f)) {
		snprintf(err, err_len, "cannot read '%s': %s", path,
			 strerror(errno));
		rc = -1;
	}
	free(line);
	fclose(f);
	if (!rc && cfg->options != options) {
		free(cfg->options_file);
		if (!(cfg->options_file = strdup(path))) {
			snprintf(err, err_len, "cannot read '%s': %s", path,
				 strerror(ENOMEM));
			rc = -1;
		}
	}
	return rc;
}

int cfs_config_load(struct cfs_config *cfg, char *err, size_t err_len)
{
	char dir[4096], path[4200];

	if (cfs_config_read(cfg, CFS_CONFIG_SYSTEM, err, err_len))
		return -1;
	if (cfs_config_dir(dir, sizeof(dir)))
		return 0;
	snprintf(path, sizeof(path), "%s/config", dir);
	return cfs_config_read(cfg, path, err, err_len);
}

/* Whether line sets key. */
static int line_sets(const char *line, const char *key)
{
	size_t len = strlen(key);

	while (isspace((unsigned char)*line))
		line++;
	if (strncmp(line, key, len) != 0)
		return 0;
	line += len;
	while (isspace((unsigned char)*line))
		line++;
	return *line == '=';
}

/* Copies the lines of old (NULL: none) but those setting server or
 * token_file to out, then the new values. */
static int write_config(FILE *old, FILE *out, const char *server,
			const char *token_file)
{
	char *line = NULL;
	size_t cap = 0;

	while (old && getline(&line, &cap, old) >= 0)
		if (!line_sets(line, "server") &&
		    !line_sets(line, "token_file"))
			fputs(line, out);
	free(line);
	fprintf(out, "server = %s\ntoken_file = %s\n", server, token_file);
	return old && ferror(old) ? -1 : 0;
}

int cfs_config_save(const char *path, const char *server,
		    const char *token_file, char *err, size_t err_len)
{
	char tmp[4200];
	FILE *old = fopen(path, "re"), *out;
	int fd, rc;

	if (!old && errno != ENOENT) {
		snprintf(err, err_len, "cannot read '%s': %s", path,
			 strerror(errno));
		return -1;
	}
	/* A unique name (O_EXCL, mode 0600): a temporary file a crash left
	 * behind never blocks the next save. */
	snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0 || !(out = fdopen(fd, "w"))) {
		snprintf(err, err_len, "cannot create '%s': %s", tmp,
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		if (old)
			fclose(old);
		return -1;
	}
	rc = write_config(old, out, server, token_file);
	if (old)
		fclose(old);
	rc = (fflush(out) || fsync(fileno(out)) || rc) ? -1 : 0;
	rc = (fclose(out) || rc) ? -1 : 0;
	if (!rc && rename(tmp, path))
		rc = -1;
	if (rc) {
		snprintf(err, err_len, "cannot write '%s': %s", path,
			 strerror(errno));
		unlink(tmp);
	}
	return rc;
}

void cfs_config_release(struct cfs_config *cfg)
{
	free(cfg->server);
	free(cfg->token_file);
	free(cfg->ca);
	free(cfg->options);
	free(cfg->options_file);
	*cfg = (struct cfs_config){ 0 };
}
