/*
 * IPC robustness with real servers (PROCESS mode).
 *
 * A writer that dies in the middle of a chunked message: worker A sends a
 * 4 MiB message to worker B while B is held in a callback, so only the
 * first megabyte fits the channel and the rest waits in A's memory; A is
 * then killed. B gets the first chunks once released and holds a partial
 * message that can never complete: it must drop it (logged) a few seconds
 * after A's slot restarted, instead of keeping it for the server's life.
 */
#include <stdio.h>

#include "server_common.h"

struct shared {
    _Atomic int held; /* worker id + 1 */
    _Atomic int release;
    _Atomic long pipe_msgs;
};
static struct shared *sh;
static char log_path[512];

static int log_has(const char *what)
{
    FILE *f = fopen(log_path, "r");
    if (f == NULL)
        return 0;
    char line[2048];
    int n = 0;
    while (fgets(line, sizeof(line), f))
        n += strstr(line, what) != NULL;
    fclose(f);
    return n;
}

/* ---- a writer dies mid-message ---- */

static void on_cmd(swoop_server_t *srv, swoop_conn_id_t conn, int rid, const void *data, size_t len)
{
    int me = swoop_server_worker_id(srv);
    if (len >= 5 && memcmp(data, "hold\n", 5) == 0) {
        atomic_store(&sh->held, me + 1);
        uint64_t deadline = swoop_test_now_ms() + 10000;
        while (!atomic_load(&sh->release) && swoop_test_now_ms() < deadline)
            swoop_test_sleep_ms(1);
    } else if (len >= 4 && memcmp(data, "die\n", 4) == 0) {
        ASSERT_EQ(atomic_load(&sh->held), 2 - me); /* the other one is held */
        size_t n = 4u << 20;
        char *p = calloc(1, n);
        ASSERT_OK(swoop_server_send_message(srv, 1 - me, p, n));
        free(p);
        /* Part of it is in the channel, the rest in this process: die now. */
        kill(getpid(), SIGKILL);
    }
}

static void on_pipe(swoop_server_t *srv, int src, const void *data, size_t len)
{
    atomic_fetch_add(&sh->pipe_msgs, 1);
}

static void setup_dies(swoop_server_t *srv, void *arg)
{
    ASSERT_OK(swoop_server_set(srv, "dispatch_mode", "3"));
    ASSERT_OK(swoop_server_set(srv, "open_eof_split", "1"));
    ASSERT_OK(swoop_server_set(srv, "package_eof", "\\n"));
    ASSERT_OK(swoop_server_set(srv, "log_file", log_path));
    ASSERT_OK(swoop_server_on(
        srv, &(swoop_server_events_t){.on_receive = on_cmd, .on_pipe_message = on_pipe}));
}

TEST(server_partial_message_of_dead_writer_dropped)
{
    sh = srv_shared(sizeof(*sh));
    snprintf(log_path, sizeof(log_path), "%s/server.log", swoop_test_tmpdir());
    srv_handle_t h = srv_start(SWOOP_MODE_PROCESS, setup_dies, NULL, 2);
    swoop_server_stats_t st0;
    srv_stats(&h, &st0);
    int a = cli_connect(h.port);
    int b = cli_connect(h.port);
    cli_write(a, "hold\n", 5);
    WAIT_UNTIL(atomic_load(&sh->held) != 0, 5000);
    int held = atomic_load(&sh->held) - 1;
    int writer = 1 - held;
    cli_write(b, "die\n", 4); /* idle-worker dispatch: reaches the other worker */
    WAIT_UNTIL(
        (srv_stats(&h, &st0), st0.workers[writer].starts == 2 && st0.workers[writer].pid > 0),
        5000);
    uint64_t t0 = swoop_test_now_ms();
    atomic_store(&sh->release, 1);
    WAIT_UNTIL(log_has("ipc: partial message dropped") == 1, 8000);
    printf("# partial message of the killed writer dropped %llu ms after its replacement "
           "started\n",
           (unsigned long long)(swoop_test_now_ms() - t0));
    ASSERT_EQ(atomic_load(&sh->pipe_msgs), 0);
    close(a);
    close(b);
    srv_stop(&h, 10000);
}
