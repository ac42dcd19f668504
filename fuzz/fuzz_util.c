/* Helpers of the harnesses (fuzz_util.h). */
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_util.h"

#define MAX_DIRS 8

static char *dirs[MAX_DIRS];
static size_t n_dirs;

void fuzz_fail(const char *file, int line, const char *cond, const char *fmt,
	       ...)
{
	va_list ap;

	fprintf(stderr, "%s:%d: check failed: %s: ", file, line, cond);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

char *fuzz_strndup(const uint8_t *data, size_t len)
{
	char *s = malloc(len + 1);

	if (!s)
		abort();
	memcpy(s, data, len);
	s[len] = '\0';
	return s;
}

static int remove_one(const char *path, const struct stat *st, int flag,
		      struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static int remove_inside(const char *path, const struct stat *st, int flag,
			 struct FTW *ftw)
{
	if (ftw->level > 0)
		remove_one(path, st, flag, ftw);
	return 0;
}

void fuzz_empty_dir(const char *dir)
{
	nftw(dir, remove_inside, 16, FTW_DEPTH | FTW_PHYS);
}

static void remove_dirs(void)
{
	for (size_t i = 0; i < n_dirs; i++) {
		nftw(dirs[i], remove_one, 16, FTW_DEPTH | FTW_PHYS);
		free(dirs[i]);
	}
	n_dirs = 0;
}

const char *fuzz_tmpdir(const char *what)
{
	const char *tmp = getenv("TMPDIR");
	char path[4096];

	if (!tmp || !*tmp)
		tmp = "/tmp";
	snprintf(path, sizeof(path), "%s/cloudfs-fuzz-%s-XXXXXX", tmp, what);
	FUZZ_CHECK(n_dirs < MAX_DIRS, "too many scratch directories");
	FUZZ_CHECK(mkdtemp(path), "cannot make a directory like '%s'", path);
	if (n_dirs == 0)
		atexit(remove_dirs);
	dirs[n_dirs] = strdup(path);
	FUZZ_CHECK(dirs[n_dirs], "out of memory");
	return dirs[n_dirs++];
}

void fuzz_split(const uint8_t *data, size_t size, char sep, char **head,
		const uint8_t **rest, size_t *rest_len)
{
	const uint8_t *at = memchr(data, sep, size);

	if (!at) {
		*head = NULL;
		*rest = data;
		*rest_len = size;
		return;
	}
	*head = fuzz_strndup(data, (size_t)(at - data));
	*rest = at + 1;
	*rest_len = size - (size_t)(at - data) - 1;
}

/* Undefined behaviour is a crash too, as a failed check is (also when a
 * harness is run by hand, without fuzz/run's environment). */
const char *__ubsan_default_options(void);
const char *__ubsan_default_options(void)
{
	return "halt_on_error=1:print_stacktrace=1";
}
