/* cloudfs login URL: a token handed over by the server's admin becomes the
 * token file and the configuration that `mount.cloudfs MOUNTPOINT` reads
 * (cloudfs(1), LOGIN).  Nothing is written unless the server accepted the
 * token. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/crypto.h> /* OPENSSL_cleanse */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cloudfs/config.h"
#include "cloudfs/platform.h"
#include "fs/remote.h"

/* Tokens are 64 hex digits; anything much longer is not one. */
#define TOKEN_MAX	256
#define CHECK_TIMEOUT_S 30

/* Reads the token from stdin: prompted and unechoed on a terminal,
 * silently from a pipe.  0, or -1 after saying why. */
static int read_token(const char *url, char token[TOKEN_MAX])
{
	struct termios saved, quiet;
	int tty = isatty(STDIN_FILENO), echo_off = 0, got;

	/* Echo goes off before the prompt: what is typed once the prompt
	 * shows is never echoed, nor flushed away by TCSAFLUSH. */
	if (tty) {
		if (tcgetattr(STDIN_FILENO, &saved) == 0) {
			quiet = saved;
			quiet.c_lflag &= ~(tcflag_t)ECHO;
			echo_off =
				tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
		}
		fprintf(stderr, "token for %s: ", url);
	}
	got = fgets(token, TOKEN_MAX, stdin) != NULL;
	if (echo_off)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved);
	if (tty)
		fputc('\n', stderr);
	if (got)
		token[strcspn(token, " \t\r\n")] = '\0';
	if (!got || !token[0]) {
		cli_error("no token on standard input (ask the server's admin "
			  "for one: cloudfsd token)");
		return -1;
	}
	return 0;
}

/* Asks the server at url for the namespaces of the token (what a mount
 * asks first): 0 when it lists them, -1 after saying why. */
static int check_token(const char *url, const char *token, const char *ca)
{
	struct remote_ns *list = NULL;
	struct remote_conn *c = NULL;
	struct cfs_error err;
	struct remote *r =
		remote_curl_new(url, token, ca, CHECK_TIMEOUT_S, &err);
	enum cfs_err rc = r ? CFS_OK : err.code;
	size_t n = 0;

	if (r && !(c = remote_conn_new(r)))
		rc = cfs_fail(&err, CFS_ERR_INTERNAL, "out of memory");
	if (c)
		rc = remote_namespaces(c, CHECK_TIMEOUT_S, NULL, &list, &n,
				       &err);
	if (rc == CFS_ERR_UNAUTHORIZED)
		cli_error("the server at %s refused the token (unknown or "
			  "revoked); nothing written",
			  url);
	else if (rc == CFS_ERR_UNREACHABLE && c)
		cli_error("cannot reach %s: %s", remote_curl_last_url(c),
			  err.msg);
	else if (rc)
		cli_error("cannot check the token at %s: %s", url, err.msg);
	remote_ns_free(list, n);
	remote_conn_free(c);
	remote_free(r);
	return rc ? -1 : 0;
}

/* mkdir -p of dir, each directory created 0700: it holds a secret. */
static int make_private_dir(const char *dir)
{
	char path[PATH_MAX];

	if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path))
		return -1;
	for (char *p = path + 1;; p++) {
		if (*p == '/' || !*p) {
			char c = *p;

			*p = '\0';
			if (mkdir(path, 0700) && errno != EEXIST) {
				cli_error("cannot create directory '%s': %s",
					  path, strerror(errno));
				return -1;
			}
			*p = c;
			if (!c)
				return 0;
		}
	}
}

/* Writes the token to path: created 0600 under another name and renamed,
 * so that the file is never readable by others nor half written. */
static int write_token(const char *path, const char *token)
{
	char tmp[PATH_MAX + 8];
	int fd, rc;

	/* mkostemp creates with O_EXCL and mode 0600, under a unique name
	 * that a crashed login's leftover cannot block. */
	snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		cli_error("cannot create '%s': %s", tmp, strerror(errno));
		return -1;
	}
	rc = dprintf(fd, "%s\n", token) < 0 || fsync(fd) ? -1 : 0;
	rc = close(fd) || rc ? -1 : 0;
	if (!rc && rename(tmp, path))
		rc = -1;
	if (rc) {
		cli_error("cannot write token file '%s': %s", path,
			  strerror(errno));
		unlink(tmp);
	}
	return rc;
}

/* The absolute path of file (relative to the current directory), as the
 * configuration needs: a mount reads it from anywhere. */
static int absolute(const char *file, char out[PATH_MAX])
{
	char cwd[PATH_MAX];

	if (file[0] == '/')
		return snprintf(out, PATH_MAX, "%s", file) < PATH_MAX ? 0 : -1;
	if (!getcwd(cwd, sizeof(cwd)))
		return -1;
	return snprintf(out, PATH_MAX, "%s/%s", cwd, file) < PATH_MAX ? 0 : -1;
}

int cli_login(const struct cli_opts *opts, int argc, char **argv)
{
	char dir[PATH_MAX - 16], config[PATH_MAX], token_file[PATH_MAX];
	char token[TOKEN_MAX], err[600], *slash;
	struct cfs_config cfg = { 0 };
	int rc = CLI_FAILED;

	if (argc != 1) {
		cli_error("login takes the server's URL: cloudfs login URL");
		return CLI_USAGE;
	}
	if (cfs_config_dir(dir, sizeof(dir))) {
		cli_error("no configuration directory: set HOME or "
			  "XDG_CONFIG_HOME");
		return CLI_FAILED;
	}
	snprintf(config, sizeof(config), "%s/config", dir);
	if (!opts->token_file) {
		snprintf(token_file, sizeof(token_file), "%s/token", dir);
	} else if (absolute(opts->token_file, token_file)) {
		cli_error("token file path '%s' is too long", opts->token_file);
		return CLI_FAILED;
	}
	/* A private CA the configuration names verifies this server too. */
	if (cfs_config_load(&cfg, err, sizeof(err))) {
		cli_error("%s", err);
		return CLI_FAILED;
	}
	remote_curl_global_init();
	if (read_token(argv[0], token) || check_token(argv[0], token, cfg.ca))
		goto out;
	slash = strrchr(token_file, '/');
	*slash = '\0';
	if (make_private_dir(dir) || make_private_dir(token_file))
		goto out;
	*slash = '/';
	if (write_token(token_file, token))
		goto out;
	if (cfs_config_save(config, argv[0], token_file, err, sizeof(err))) {
		cli_error("%s", err);
		goto out;
	}
	printf("token accepted by %s: kept in '%s', server and token file "
	       "in '%s'\n",
	       argv[0], token_file, config);
	rc = CLI_OK;
out:
	OPENSSL_cleanse(token, sizeof(token));
	cfs_config_release(&cfg);
	remote_curl_global_cleanup();
	return rc;
}
