/*
 * Connection lifecycle with real servers, both modes: ids never repeat
 * across 10,000 connections (while fds are reused all the time); per
 * connection on_connect comes first, on_close exactly once and last, all in
 * one worker (hash dispatch); a send or close to a closed connection fails
 * with SWOOP_ECLOSED and reaches nobody.
 */
#include <stdlib.h>

#include "server_common.h"

enum { MAXID = 12000, MAXEV = 8000 };

typedef struct ev_s {
    uint64_t id;
    int type; /* 1 connect, 2 receive, 3 close */
    int worker;
} ev_t;

struct shared {
    _Atomic int nids;
    uint64_t ids[MAXID];
    _Atomic int nev;
    ev_t ev[MAXEV];
    _Atomic int late_ok; /* a send/close to a closed connection that did not fail */
    _Atomic int exists_after_close;
};
static struct shared *sh;

static void rec(uint64_t id, int type, int worker)
{
    int i = atomic_fetch_add(&sh->nev, 1);
    if (i < MAXEV) {
        sh->ev[i].id = id;
        sh->ev[i].worker = worker;
        atomic_thread_fence(memory_order_release);
        sh->ev[i].type = type;
    }
}

static void on_connect_id(swoop_server_t *srv, swoop_conn_id_t conn, int rid)
{
    int i = atomic_fetch_add(&sh->nids, 1);
    if (i < MAXID)
        sh->ids[i] = conn;
}

static void setup_ids(swoop_server_t *srv, void *arg)
{
    ASSERT_OK(swoop_server_set(srv, "backlog", "4096"));
    ASSERT_OK(swoop_server_on(srv, &(swoop_server_events_t){.on_connect = on_connect_id}));
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void ids_unique(swoop_mode_t mode)
{
    sh = srv_shared(sizeof(*sh));
    srv_handle_t h = srv_start(mode, setup_ids, NULL, 2);
    enum { N = 10000 };
    uint64_t t0 = swoop_test_now_ms();
    for (int i = 0; i < N; i++) {
        int fd = cli_connect(h.port);
        close(fd);
        /* Keep at most ~200 in flight, so fd numbers are reused over and over. */
        if (i % 200 == 199)
            WAIT_UNTIL(atomic_load(&sh->nids) >= i - 100, 5000);
    }
    WAIT_UNTIL(atomic_load(&sh->nids) == N, 10000);
    qsort(sh->ids, N, sizeof(uint64_t), cmp_u64);
    for (int i = 1; i < N; i++) {
        if (sh->ids[i] == sh->ids[i - 1] || sh->ids[i] == 0)
            FAIL("conn id %llu seen twice", (unsigned long long)sh->ids[i]);
    }
    swoop_server_stats_t st;
    WAIT_UNTIL((srv_stats(&h, &st), st.close_count == N), 5000);
    ASSERT_EQ(st.connection_num, 0);
    printf("# %s: %d connections, %d distinct ids, in %llu ms\n",
           mode == SWOOP_MODE_BASE ? "BASE" : "PROCESS", N, N,
           (unsigned long long)(swoop_test_now_ms() - t0));
    srv_stop(&h, 10000);
}

TEST_TIMEOUT(server_conn_ids_unique_process, 120)
{
    ids_unique(SWOOP_MODE_PROCESS);
}

TEST_TIMEOUT(server_conn_ids_unique_base, 120)
{
    ids_unique(SWOOP_MODE_BASE);
}

/* ---- order ---- */

static void on_connect_ev(swoop_server_t *srv, swoop_conn_id_t conn, int rid)
{
    rec(conn, 1, swoop_server_worker_id(srv));
    if (!swoop_server_exists(srv, conn))
        FAIL("conn %llu does not exist in its on_connect", (unsigned long long)conn);
}

static void on_receive_ev(swoop_server_t *srv, swoop_conn_id_t conn, int rid, const void *data,
                          size_t len)
{
    rec(conn, 2, swoop_server_worker_id(srv));
    if (len >= 3 && memcmp(data, "bye", 3) == 0) {
        swoop_server_send(srv, conn, "ok\n", 3);
        ASSERT_OK(swoop_server_close(srv, conn, 0));
    } else {
        swoop_server_send(srv, conn, data, len);
    }
}

static void on_close_ev(swoop_server_t *srv, swoop_conn_id_t conn, int rid)
{
    rec(conn, 3, swoop_server_worker_id(srv));
    if (swoop_server_send(srv, conn, "late", 4) != SWOOP_ECLOSED)
        atomic_fetch_add(&sh->late_ok, 1);
    if (swoop_server_close(srv, conn, 0) != SWOOP_ECLOSED)
        atomic_fetch_add(&sh->late_ok, 1);
    if (swoop_server_exists(srv, conn))
        atomic_fetch_add(&sh->exists_after_close, 1);
}

static void setup_order(swoop_server_t *srv, void *arg)
{
    ASSERT_OK(swoop_server_set(srv, "open_eof_split", "1"));
    ASSERT_OK(swoop_server_set(srv, "package_eof", "\\n"));
    ASSERT_OK(swoop_server_set(srv, "worker_num", "3"));
    ASSERT_OK(swoop_server_on(srv, &(swoop_server_events_t){.on_connect = on_connect_ev,
                                                            .on_receive = on_receive_ev,
                                                            .on_close = on_close_ev}));
}

static void order(swoop_mode_t mode)
{
    sh = srv_shared(sizeof(*sh));
    srv_handle_t h = srv_start(mode, setup_order, NULL, 3);
    enum { N = 300 };
    int fds[N];
    for (int i = 0; i < N; i++)
        fds[i] = cli_connect(h.port);
    for (int i = 0; i < N; i++)
        cli_write(fds[i], "a\nb\nc\n", 6);
    char buf[16];
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(cli_read_n(fds[i], buf, 6, 5000), 6);
        if (i % 2 == 0) {
            cli_write(fds[i], "bye\n", 4); /* the server closes */
            ASSERT_EQ(cli_read_n(fds[i], buf, 3, 5000), 3);
            ASSERT(cli_wait_closed(fds[i], 5000));
        }
        close(fds[i]); /* odd ones: the client closes */
    }
    swoop_server_stats_t st;
    WAIT_UNTIL((srv_stats(&h, &st), st.close_count == N && st.connection_num == 0), 5000);
    WAIT_UNTIL(atomic_load(&sh->nev) == N * 5 + N / 2, 5000);
    /* Check each connection's sequence. */
    int nev = atomic_load(&sh->nev);
    int checked = 0;
    for (int i = 0; i < nev; i++) {
        if (sh->ev[i].type != 1)
            continue;
        uint64_t id = sh->ev[i].id;
        int worker = sh->ev[i].worker, closes = 0, recvs = 0;
        for (int j = 0; j < nev; j++) {
            if (sh->ev[j].id != id)
                continue;
            if (j < i)
                FAIL("conn %llu: an event before on_connect", (unsigned long long)id);
            if (sh->ev[j].worker != worker)
                FAIL("conn %llu: events in workers %d and %d", (unsigned long long)id, worker,
                     sh->ev[j].worker);
            if (sh->ev[j].type == 3)
                closes++;
            else if (sh->ev[j].type == 2) {
                recvs++;
                if (closes)
                    FAIL("conn %llu: on_receive after on_close", (unsigned long long)id);
            }
        }
        ASSERT_EQ(closes, 1);
        ASSERT_GE(recvs, 3);
        checked++;
    }
    ASSERT_EQ(checked, N);
    ASSERT_EQ(atomic_load(&sh->late_ok), 0);
    ASSERT_EQ(atomic_load(&sh->exists_after_close), 0);
    srv_stop(&h, 10000);
}

TEST(server_connect_close_order_process)
{
    order(SWOOP_MODE_PROCESS);
}

TEST(server_connect_close_order_base)
{
    order(SWOOP_MODE_BASE);
}
