/* The long-poll registry's state machine (server/longpoll.c). */
#include <errno.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "server/longpoll.h"

struct conn {
	int suspended, resumed;
};

static uint64_t in_ms(unsigned ms)
{
	return longpoll_clock_ms() + ms;
}

static void suspend(void *arg)
{
	((struct conn *)arg)->suspended++;
}

static void resume(void *arg)
{
	__atomic_add_fetch(&((struct conn *)arg)->resumed, 1, __ATOMIC_SEQ_CST);
}

static void test_a_commit_wakes_the_parked_waiters_of_its_namespace_only(void)
{
	struct longpoll *lp = longpoll_new();
	struct longpoll_waiter a, b;
	struct conn ca = { 0 }, cb = { 0 };
	int64_t ns_a[] = { 1, 2 }, ns_b[] = { 3 };

	CHECK(longpoll_add(lp, &a, ns_a, 2, in_ms(60000)) == 0);
	CHECK(longpoll_add(lp, &b, ns_b, 1, in_ms(60000)) == 0);
	CHECK(longpoll_park(lp, &a, suspend, resume, &ca));
	CHECK(longpoll_park(lp, &b, suspend, resume, &cb));
	longpoll_notify(lp, 2);
	CHECK(ca.suspended == 1 && ca.resumed == 1 && !a.timed_out);
	CHECK(cb.resumed == 0);
	longpoll_notify(lp, 2); /* a is gone from the registry */
	CHECK(ca.resumed == 1);
	longpoll_cancel(lp, &b);
	longpoll_notify(lp, 3);
	CHECK(cb.resumed == 0);
	longpoll_free(lp);
}

static void test_a_waiter_woken_before_parking_is_never_suspended(void)
{
	struct longpoll *lp = longpoll_new();
	struct longpoll_waiter w;
	struct conn c = { 0 };
	int64_t ns[] = { 9 };

	CHECK(longpoll_add(lp, &w, ns, 1, in_ms(60000)) == 0);
	longpoll_notify(lp, 9);
	CHECK(!longpoll_park(lp, &w, suspend, resume, &c));
	CHECK(c.suspended == 0 && c.resumed == 0);
	longpoll_free(lp);
}

static void test_the_deadline_resumes_a_waiter_as_timed_out(void)
{
	struct longpoll *lp = longpoll_new();
	struct longpoll_waiter w;
	struct conn c = { 0 };
	int64_t ns[] = { 4 };

	CHECK(longpoll_add(lp, &w, ns, 1, in_ms(50)) == 0);
	CHECK(longpoll_park(lp, &w, suspend, resume, &c));
	for (int i = 0;
	     i < 200 && !__atomic_load_n(&c.resumed, __ATOMIC_SEQ_CST); i++)
		usleep(10000);
	CHECK(c.resumed == 1);
	CHECK(w.timed_out);
	longpoll_free(lp);
}

static void test_shutdown_wakes_everyone_and_refuses_newcomers(void)
{
	struct longpoll *lp = longpoll_new();
	struct longpoll_waiter w[100];
	struct conn c[100] = { 0 };
	int64_t ns[] = { 5 };

	for (int i = 0; i < 100; i++) {
		CHECK(longpoll_add(lp, &w[i], ns, 1, in_ms(60000 + i)) == 0);
		CHECK(longpoll_park(lp, &w[i], suspend, resume, &c[i]));
	}
	longpoll_shutdown(lp);
	for (int i = 0; i < 100; i++)
		CHECK(c[i].resumed == 1 && w[i].stopping);
	CHECK(longpoll_add(lp, &w[0], ns, 1, in_ms(1000)) == -ESHUTDOWN);
	longpoll_free(lp);
}

static void test_deadlines_fire_in_order_with_many_waiters(void)
{
	struct longpoll *lp = longpoll_new();
	struct longpoll_waiter w[50];
	struct conn c[50] = { 0 };
	int64_t ns[] = { 6 };

	/* Added in scrambled order; the heap must still keep them right. */
	for (int i = 0; i < 50; i++) {
		int k = (i * 17) % 50;

		CHECK(longpoll_add(lp, &w[k], ns, 1,
				   in_ms(k < 25 ? 20 : 60000)) == 0);
		CHECK(longpoll_park(lp, &w[k], suspend, resume, &c[k]));
	}
	for (int t = 0; t < 500; t++) {
		int woken = 0;

		for (int i = 0; i < 25; i++)
			woken += __atomic_load_n(&c[i].resumed,
						 __ATOMIC_SEQ_CST);
		if (woken == 25)
			break;
		usleep(10000);
	}
	for (int i = 0; i < 50; i++)
		CHECK(__atomic_load_n(&c[i].resumed, __ATOMIC_SEQ_CST) ==
		      (i < 25 ? 1 : 0));
	longpoll_free(lp);
	for (int i = 25; i < 50; i++)
		CHECK(c[i].resumed == 1);
}

static void test_notify_all_wakes_every_waiter_to_look_again(void)
{
	struct longpoll *lp = longpoll_new();
	struct longpoll_waiter w[3], later;
	struct conn c[3] = { 0 }, cl = { 0 };
	int64_t ns[][1] = { { 1 }, { 2 }, { 3 } };

	for (int i = 0; i < 3; i++) {
		CHECK(longpoll_add(lp, &w[i], ns[i], 1, in_ms(60000)) == 0);
		CHECK(longpoll_park(lp, &w[i], suspend, resume, &c[i]));
	}
	longpoll_notify_all(lp);
	for (int i = 0; i < 3; i++)
		CHECK(c[i].resumed == 1 && !w[i].timed_out && !w[i].stopping);
	/* Not a shutdown: waiters come and are woken as before. */
	CHECK(longpoll_add(lp, &later, ns[0], 1, in_ms(60000)) == 0);
	CHECK(longpoll_park(lp, &later, suspend, resume, &cl));
	longpoll_notify(lp, 1);
	CHECK(cl.resumed == 1);
	longpoll_free(lp);
}

int main(void)
{
	RUN(test_a_commit_wakes_the_parked_waiters_of_its_namespace_only);
	RUN(test_a_waiter_woken_before_parking_is_never_suspended);
	RUN(test_the_deadline_resumes_a_waiter_as_timed_out);
	RUN(test_shutdown_wakes_everyone_and_refuses_newcomers);
	RUN(test_deadlines_fire_in_order_with_many_waiters);
	RUN(test_notify_all_wakes_every_waiter_to_look_again);
	return CHECK_DONE();
}
