/* The configuration file (lib/config.c), on real files in /tmp. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "cloudfs/config.h"

static char path[] = "/tmp/cloudfs-test-config-XXXXXX";

static void write_file(const char *text)
{
	FILE *f = fopen(path, "w");

	fputs(text, f);
	fclose(f);
}

/* Reads text as a config file; the error, if any, in err. */
static int read_text(struct cfs_config *cfg, const char *text, char *err)
{
	write_file(text);
	err[0] = '\0';
	return cfs_config_read(cfg, path, err, 512);
}

static void test_keys_comments_blanks_and_spaces_are_read(void)
{
	struct cfs_config cfg = { 0 };
	char err[512];

	setenv("HOME", "/home/alice", 1);
	CHECK(read_text(&cfg,
			"# cloudfs\n"
			"\n"
			"   server=https://host:8470  \n"
			"\ttoken_file = ~/.config/cloudfs/token\n"
			"  # indented comment\n"
			"options = cache_size=20G,settle=0.1\n"
			"ca = /etc/ssl/private-ca.pem",
			err) == 0);
	CHECK(strcmp(cfg.server, "https://host:8470") == 0);
	CHECK(strcmp(cfg.token_file, "/home/alice/.config/cloudfs/token") == 0);
	CHECK(strcmp(cfg.options, "cache_size=20G,settle=0.1") == 0);
	CHECK(strcmp(cfg.ca, "/etc/ssl/private-ca.pem") == 0);
	cfs_config_release(&cfg);
}

static void test_a_later_file_wins_per_key(void)
{
	struct cfs_config cfg = { 0 };
	char err[512];

	CHECK(read_text(&cfg, "server = http://a\nca = /a.pem\n", err) == 0);
	CHECK(read_text(&cfg, "server = http://b\n", err) == 0);
	CHECK(strcmp(cfg.server, "http://b") == 0);
	CHECK(strcmp(cfg.ca, "/a.pem") == 0);
	CHECK(cfg.options_file == NULL);
	CHECK(read_text(&cfg, "options = settle=1\n", err) == 0);
	CHECK(strcmp(cfg.options_file, path) == 0);
	cfs_config_release(&cfg);
}

static void test_malformed_lines_name_the_file_and_line(void)
{
	struct cfs_config cfg = { 0 };
	char err[512], want[600];

	CHECK(read_text(&cfg, "# ok\nserver = http://a\njunk\n", err) == -1);
	snprintf(want, sizeof(want), "'%s' line 3: expected 'key = value'",
		 path);
	CHECK(strcmp(err, want) == 0);
	CHECK(read_text(&cfg, "= value\n", err) == -1);
	CHECK(strstr(err, "line 1: no key") != NULL);
	cfs_config_release(&cfg);
}

static void test_unknown_keys_are_errors(void)
{
	struct cfs_config cfg = { 0 };
	char err[512];

	CHECK(read_text(&cfg, "\nsever = http://a\n", err) == -1);
	CHECK(strstr(err, "line 2: unknown key 'sever'") != NULL);
	CHECK(cfg.server == NULL);
	cfs_config_release(&cfg);
}

static void test_a_missing_file_is_fine(void)
{
	struct cfs_config cfg = { 0 };
	char err[512] = "";

	CHECK(cfs_config_read(&cfg, "/nonexistent/cloudfs/config", err,
			      sizeof(err)) == 0);
	CHECK(cfg.server == NULL && err[0] == '\0');
}

static void test_save_replaces_server_and_token_file_only(void)
{
	struct cfs_config cfg = { 0 };
	char err[512];

	write_file("# mine\nserver = http://old\noptions = settle=1\n"
		   "token_file = /old\n");
	CHECK(cfs_config_save(path, "http://new", "/new", err, sizeof(err)) ==
	      0);
	CHECK(cfs_config_read(&cfg, path, err, sizeof(err)) == 0);
	CHECK(strcmp(cfg.server, "http://new") == 0);
	CHECK(strcmp(cfg.token_file, "/new") == 0);
	CHECK(strcmp(cfg.options, "settle=1") == 0);
	cfs_config_release(&cfg);
}

static void test_the_user_directory_follows_xdg(void)
{
	char dir[256];

	setenv("XDG_CONFIG_HOME", "/x", 1);
	CHECK(cfs_config_dir(dir, sizeof(dir)) == 0 &&
	      strcmp(dir, "/x/cloudfs") == 0);
	unsetenv("XDG_CONFIG_HOME");
	setenv("HOME", "/home/bob", 1);
	CHECK(cfs_config_dir(dir, sizeof(dir)) == 0 &&
	      strcmp(dir, "/home/bob/.config/cloudfs") == 0);
	unsetenv("HOME");
	CHECK(cfs_config_dir(dir, sizeof(dir)) == -1);
}

int main(void)
{
	int fd = mkstemp(path);

	if (fd < 0)
		return 1;
	close(fd);
	RUN(test_keys_comments_blanks_and_spaces_are_read);
	RUN(test_a_later_file_wins_per_key);
	RUN(test_malformed_lines_name_the_file_and_line);
	RUN(test_unknown_keys_are_errors);
	RUN(test_a_missing_file_is_fine);
	RUN(test_save_replaces_server_and_token_file_only);
	RUN(test_the_user_directory_follows_xdg);
	unlink(path);
	return CHECK_DONE();
}
