/*
 * A minimal unit-test harness: CHECK() records a failure and goes on, so
 * one run reports every broken promise; RUN() names each test; the process
 * exits non-zero when anything failed (meson's exit-code protocol).
 */
#ifndef TESTS_CHECK_H
#define TESTS_CHECK_H

#include <stdio.h>

static int check_failures;

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #cond);                              \
			check_failures++;                                      \
		}                                                              \
	} while (0)

#define RUN(test)                                                           \
	do {                                                                \
		int before = check_failures;                                \
		test();                                                     \
		fprintf(stderr, "%s %s\n",                                  \
			check_failures == before ? "ok  " : "FAIL", #test); \
	} while (0)

#define CHECK_DONE() (check_failures ? 1 : 0)

#endif
