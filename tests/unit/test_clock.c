/*
 * The clock's arithmetic (cloudfs/clock.h): elapsed time across second
 * boundaries, and deadlines.
 */
#include "check.h"
#include "cloudfs/clock.h"

static void test_elapsed_time_crosses_a_second_boundary(void)
{
	struct timespec a = { .tv_sec = 10, .tv_nsec = 999999000 };
	struct timespec b = { .tv_sec = 11, .tv_nsec = 1000 };

	/* The nanoseconds alone go back: the server's store histogram once
	 * summed 3.7e10 s of two samples this way. */
	CHECK(cfs_elapsed_us(&a, &b) == 2);
	CHECK(cfs_elapsed_us(&a, &a) == 0);
	b.tv_sec = 12;
	CHECK(cfs_elapsed_us(&a, &b) == 1000002);
}

static void test_elapsed_time_never_runs_backwards(void)
{
	struct timespec a = { .tv_sec = 11, .tv_nsec = 1000 };
	struct timespec b = { .tv_sec = 10, .tv_nsec = 999999000 };

	CHECK(cfs_elapsed_us(&a, &b) == 0);
}

static void test_a_deadline_keeps_its_nanoseconds_below_a_second(void)
{
	for (unsigned long ms = 0; ms < 2500; ms += 7) {
		struct timespec t = cfs_deadline_in_ms(ms);

		CHECK(t.tv_nsec >= 0 && t.tv_nsec < 1000000000);
	}
}

int main(void)
{
	RUN(test_elapsed_time_crosses_a_second_boundary);
	RUN(test_elapsed_time_never_runs_backwards);
	RUN(test_a_deadline_keeps_its_nanoseconds_below_a_second);
	return CHECK_DONE();
}
