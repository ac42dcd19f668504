/*
 * What the harnesses of fuzz/ share: checks that stay on in every build,
 * NUL-terminated copies of the input, and scratch directories that are
 * removed when the fuzzer exits.
 */
#ifndef FUZZ_UTIL_H
#define FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Aborts (a crash libFuzzer saves) with a message when cond is false. */
#define FUZZ_CHECK(cond, ...)                                              \
	do {                                                               \
		if (!(cond))                                               \
			fuzz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__); \
	} while (0)

void fuzz_fail(const char *file, int line, const char *cond, const char *fmt,
	       ...) __attribute__((noreturn, format(printf, 4, 5)));

/* A malloc'ed copy of the len bytes at data with a NUL after them. */
char *fuzz_strndup(const uint8_t *data, size_t len);

/* A new empty directory under $TMPDIR (or /tmp), removed with all it holds
 * at exit; aborts when it cannot be made. */
const char *fuzz_tmpdir(const char *what);

/* Removes everything inside dir, keeping dir. */
void fuzz_empty_dir(const char *dir);

/* Splits the input at the first byte sep: *head is the part before it
 * (NUL-terminated copy, to free), *rest and *rest_len what follows (the
 * whole input and no head when there is no sep). */
void fuzz_split(const uint8_t *data, size_t size, char sep, char **head,
		const uint8_t **rest, size_t *rest_len);

#endif
