/* The coroutine connection pool against a real backend on 127.0.0.1 port 0 (a coroutine
 * server in the same thread that answers each line with "ok:<line>" and counts its accepts):
 * reuse, close on a non-reusable put, the max_open queue, probing of idle connections the
 * backend closed, idle timeout, max_idle, and the error returns. */
/* TEST_LABELS: tsan */
#include <swoop/co.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <swoop/error.h>

#include "listen_any.h"
#include "test.h"

static int backend_port;
static int backend_accepts;
static int backend_close_after_one; /* the backend closes each connection after one answer */

static void backend_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[256];
    for (;;) {
        ssize_t n = swoop_co_read(fd, buf, sizeof(buf) - 1, 5000);
        if (n <= 0)
            break;
        char out[300];
        int m = snprintf(out, sizeof(out), "ok:%.*s", (int)n, buf);
        if (swoop_co_write(fd, out, (size_t)m, 5000) != m || backend_close_after_one)
            break;
    }
    close(fd);
}

static void backend(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    for (;;) {
        if (swoop_co_wait_fd(lfd, SWOOP_READABLE, -1) < 0)
            return; /* cancelled at the end of the test */
        int c;
        while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
            backend_accepts++;
            ASSERT_GT(swoop_co_go(backend_conn, (void *)(intptr_t)c), 0);
        }
    }
}

/* One request on fd: "ok:<msg>" must come back. */
static void exchange(int fd, const char *msg)
{
    size_t n = strlen(msg);
    ASSERT_EQ(swoop_co_write(fd, msg, n, 3000), (ssize_t)n);
    char buf[300];
    size_t got = 0;
    while (got < n + 3) {
        ssize_t r = swoop_co_read(fd, buf + got, sizeof(buf) - got, 3000);
        ASSERT_GT(r, 0);
        got += (size_t)r;
    }
    ASSERT_EQ(got, n + 3);
    ASSERT_MEM_EQ(buf, "ok:", 3);
    ASSERT_MEM_EQ(buf + 3, msg, n);
}

static int fd_is_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0;
}

/* Runs `body` as a coroutine next to the backend, then stops the backend. */
typedef void (*body_fn)(void);
static body_fn test_body;
static int64_t backend_co;

static void test_main(void *arg)
{
    backend_co = swoop_co_go(backend, arg);
    ASSERT_GT(backend_co, 0);
    test_body();
    ASSERT_OK(swoop_co_cancel(backend_co));
}

static void run(body_fn body)
{
    int fds = swoop_test_fd_count();
    backend_accepts = 0;
    backend_close_after_one = 0;
    int lfd = listen_any(&backend_port);
    test_body = body;
    ASSERT_OK(swoop_co_run(test_main, (void *)(intptr_t)lfd));
    close(lfd);
    ASSERT_OK(swoop_loop_free(swoop_loop_default()));
    ASSERT_EQ(swoop_test_fd_count(), fds); /* the pool closed everything it opened */
}

static void reuse_body(void)
{
    swoop_co_pool_t *p;
    ASSERT_OK(swoop_co_pool_new(&p, "127.0.0.1", backend_port, NULL));
    int a = swoop_co_pool_get(p, 3000);
    ASSERT_GE(a, 0);
    exchange(a, "one");
    ASSERT_OK(swoop_co_pool_put(p, a, 1));
    swoop_co_pool_stats_t st;
    swoop_co_pool_stats(p, &st);
    ASSERT_EQ(st.open, 1u);
    ASSERT_EQ(st.idle, 1u);
    /* The same connection again: no new accept on the backend. */
    int b = swoop_co_pool_get(p, 3000);
    ASSERT_EQ(b, a);
    exchange(b, "two");
    ASSERT_EQ(backend_accepts, 1);
    swoop_co_pool_stats(p, &st);
    ASSERT_EQ(st.connects, 1u);
    ASSERT_EQ(st.reuses, 1u);
    ASSERT_EQ(st.idle, 0u);
    /* Out: free refuses. A non-reusable put closes it. */
    ASSERT_EQ(swoop_co_pool_free(p), SWOOP_EBUSY);
    ASSERT_OK(swoop_co_pool_put(p, b, 0));
    ASSERT(!fd_is_open(b));
    swoop_co_pool_stats(p, &st);
    ASSERT_EQ(st.open, 0u);
    /* Next get connects anew. */
    int c = swoop_co_pool_get(p, 3000);
    ASSERT_GE(c, 0);
    exchange(c, "three");
    ASSERT_EQ(backend_accepts, 2);
    ASSERT_OK(swoop_co_pool_put(p, c, 1));
    ASSERT_OK(swoop_co_pool_free(p)); /* closes the idle one */
    ASSERT(!fd_is_open(c));
}

TEST(pool_reuses_a_connection_and_closes_a_bad_one)
{
    run(reuse_body);
}

/* ---- max_open: a get waits for a put ---- */

static swoop_co_pool_t *shared;
static int waiter_fd = -2;
static int waiter_rc;
static int waiter_done; /* waiters that finished */

static void waiter(void *arg)
{
    (void)arg;
    waiter_fd = swoop_co_pool_get(shared, 3000);
    if (waiter_fd >= 0) {
        exchange(waiter_fd, "waited");
        waiter_rc = swoop_co_pool_put(shared, waiter_fd, 1);
    }
    waiter_done++;
}

static void max_open_body(void)
{
    swoop_co_pool_options_t o = {.max_open = 1};
    ASSERT_OK(swoop_co_pool_new(&shared, "127.0.0.1", backend_port, &o));
    int a = swoop_co_pool_get(shared, 3000);
    ASSERT_GE(a, 0);
    /* At the limit: no wait allowed means at once ETIMEDOUT; a short wait times out. */
    ASSERT_EQ(swoop_co_pool_get(shared, 0), SWOOP_ETIMEDOUT);
    /* (No elapsed-time check: the loop's cached clock may lag the test's under load.) */
    ASSERT_EQ(swoop_co_pool_get(shared, 30), SWOOP_ETIMEDOUT);
    swoop_co_pool_stats_t st0;
    swoop_co_pool_stats(shared, &st0);
    ASSERT_EQ(st0.waiting, 0u);              /* the timed-out get left the queue */
    ASSERT_GT(swoop_co_go(waiter, NULL), 0); /* parks in get */
    swoop_co_pool_stats_t st;
    swoop_co_pool_stats(shared, &st);
    ASSERT_EQ(st.waiting, 1u);
    ASSERT_EQ(waiter_fd, -2);
    /* The put hands `a` straight to the waiter, which runs at once. */
    exchange(a, "first");
    ASSERT_OK(swoop_co_pool_put(shared, a, 1));
    ASSERT_EQ(waiter_fd, a);
    ASSERT_OK(waiter_rc);
    ASSERT_EQ(backend_accepts, 1);
    /* A non-reusable put with a waiter: the waiter gets the slot and connects. */
    int b = swoop_co_pool_get(shared, 3000);
    ASSERT_EQ(b, a);
    waiter_fd = -2;
    ASSERT_GT(swoop_co_go(waiter, NULL), 0);
    ASSERT_OK(swoop_co_pool_put(shared, b, 0));
    ASSERT_GE(waiter_fd, 0); /* connected in the freed slot; now exchanging */
    for (int i = 0; i < 1000 && waiter_done < 2; i++)
        swoop_co_sleep(5);
    ASSERT_EQ(waiter_done, 2);
    ASSERT_OK(waiter_rc);
    ASSERT_EQ(backend_accepts, 2);
    swoop_co_pool_stats(shared, &st);
    ASSERT_EQ(st.open, 1u);
    ASSERT_EQ(st.idle, 1u);
    ASSERT_EQ(st.waiting, 0u);
    ASSERT_EQ(st.connects, 2u);
    ASSERT_OK(swoop_co_pool_free(shared));
}

TEST(pool_max_open_makes_get_wait_for_a_put)
{
    run(max_open_body);
}

/* ---- idle connections the backend closed ---- */

/* Waits (bounded) until the backend's FIN has reached fd. */
static void wait_peer_fin(int fd)
{
    struct pollfd pf = {.fd = fd, .events = POLLRDHUP};
    for (int i = 0; i < 300; i++) {
        if (poll(&pf, 1, 0) == 1 && (pf.revents & (POLLRDHUP | POLLHUP)))
            return;
        swoop_co_sleep(10);
    }
    FAIL("the backend's FIN never came");
}

static void probe_body(void)
{
    backend_close_after_one = 1;
    /* Probed (check_after_ms 0, the zeroed default): the closed one is dropped. */
    swoop_co_pool_t *p;
    ASSERT_OK(swoop_co_pool_new(&p, "127.0.0.1", backend_port, NULL));
    int a = swoop_co_pool_get(p, 3000);
    exchange(a, "x");
    ASSERT_OK(swoop_co_pool_put(p, a, 1));
    wait_peer_fin(a);
    int b = swoop_co_pool_get(p, 3000);
    ASSERT_GE(b, 0);
    exchange(b, "fresh"); /* works: a new connection */
    swoop_co_pool_stats_t st;
    swoop_co_pool_stats(p, &st);
    ASSERT_EQ(st.probes_failed, 1u);
    ASSERT_EQ(st.connects, 2u);
    ASSERT_EQ(st.reuses, 0u);
    ASSERT_OK(swoop_co_pool_put(p, b, 0));
    ASSERT_OK(swoop_co_pool_free(p));

    /* Within check_after_ms it goes out unprobed: the caller sees the EOF and puts it back
     * as not reusable (what the option trades for a syscall per get). */
    swoop_co_pool_options_t o = {.check_after_ms = 60000};
    ASSERT_OK(swoop_co_pool_new(&p, "127.0.0.1", backend_port, &o));
    a = swoop_co_pool_get(p, 3000);
    exchange(a, "y");
    ASSERT_OK(swoop_co_pool_put(p, a, 1));
    wait_peer_fin(a);
    b = swoop_co_pool_get(p, 3000);
    ASSERT_EQ(b, a);
    char c;
    ASSERT_EQ(swoop_co_read(b, &c, 1, 1000), 0);
    ASSERT_OK(swoop_co_pool_put(p, b, 0));
    swoop_co_pool_stats(p, &st);
    ASSERT_EQ(st.probes_failed, 0u);
    ASSERT_EQ(st.reuses, 1u);
    ASSERT_OK(swoop_co_pool_free(p));
}

TEST(pool_probes_idle_connections_the_backend_closed)
{
    run(probe_body);
}

/* ---- idle timeout and max_idle ---- */

static void limits_body(void)
{
    swoop_co_pool_t *p;
    swoop_co_pool_options_t o = {.idle_timeout_ms = 20};
    ASSERT_OK(swoop_co_pool_new(&p, "127.0.0.1", backend_port, &o));
    int a = swoop_co_pool_get(p, 3000);
    exchange(a, "a");
    ASSERT_OK(swoop_co_pool_put(p, a, 1));
    ASSERT_OK(swoop_co_sleep(40));
    int b = swoop_co_pool_get(p, 3000); /* `a` idled past 20 ms: closed, a new one made */
    exchange(b, "b");
    swoop_co_pool_stats_t st;
    swoop_co_pool_stats(p, &st);
    ASSERT_EQ(st.connects, 2u);
    ASSERT_EQ(st.reuses, 0u);
    ASSERT_EQ(st.open, 1u);
    ASSERT_OK(swoop_co_pool_put(p, b, 1));
    ASSERT_OK(swoop_co_pool_free(p));

    /* max_idle 2: three back, the one idle the longest is closed. */
    swoop_co_pool_options_t o2 = {.max_idle = 2};
    ASSERT_OK(swoop_co_pool_new(&p, "127.0.0.1", backend_port, &o2));
    int fd[3];
    for (int i = 0; i < 3; i++) {
        fd[i] = swoop_co_pool_get(p, 3000);
        ASSERT_GE(fd[i], 0);
        exchange(fd[i], "m");
    }
    for (int i = 0; i < 3; i++)
        ASSERT_OK(swoop_co_pool_put(p, fd[i], 1));
    swoop_co_pool_stats(p, &st);
    ASSERT_EQ(st.open, 2u);
    ASSERT_EQ(st.idle, 2u);
    ASSERT(!fd_is_open(fd[0]));
    /* Most recently returned first. */
    ASSERT_EQ(swoop_co_pool_get(p, 3000), fd[2]);
    ASSERT_OK(swoop_co_pool_put(p, fd[2], 1));
    ASSERT_OK(swoop_co_pool_free(p));
}

TEST(pool_idle_timeout_and_max_idle)
{
    run(limits_body);
}

/* ---- errors ---- */

static void errors_body(void)
{
    int port;
    int lfd = listen_any(&port);
    close(lfd); /* nobody listens there */
    swoop_co_pool_t *p;
    ASSERT_OK(swoop_co_pool_new(&p, "127.0.0.1", port, NULL));
    ASSERT_EQ(swoop_co_pool_get(p, 2000), SWOOP_ECONNREFUSED);
    swoop_co_pool_stats_t st;
    swoop_co_pool_stats(p, &st);
    ASSERT_EQ(st.open, 0u);                              /* the failed connect gave its slot back */
    ASSERT_EQ(swoop_co_pool_put(p, 0, 1), SWOOP_EINVAL); /* nothing is out */
    ASSERT_OK(swoop_co_pool_free(p));
}

TEST(pool_errors)
{
    swoop_co_pool_t *p;
    ASSERT_EQ(swoop_co_pool_new(&p, NULL, 80, NULL), SWOOP_EINVAL);
    ASSERT_EQ(swoop_co_pool_new(&p, "127.0.0.1", 0, NULL), SWOOP_EINVAL);
    ASSERT_EQ(swoop_co_pool_new(&p, "", 80, NULL), SWOOP_EINVAL);
    ASSERT_EQ(swoop_co_pool_new(NULL, "127.0.0.1", 80, NULL), SWOOP_EINVAL);
    ASSERT_OK(swoop_co_pool_new(&p, "127.0.0.1", 80, NULL));
    ASSERT_EQ(swoop_co_pool_get(p, 100), SWOOP_ESTATE); /* outside a coroutine */
    ASSERT_EQ(swoop_co_pool_put(p, -1, 1), SWOOP_EINVAL);
    ASSERT_OK(swoop_co_pool_free(p));
    ASSERT_OK(swoop_co_pool_free(NULL));
    run(errors_body);
}
