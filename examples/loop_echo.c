/*
 * A single-process TCP echo server on the bare event loop: fd watchers, a
 * signal watcher for a clean Ctrl-C, and an idle timer per connection.
 *
 *   ./loop_echo [port]      (default 0: the kernel picks; the port is printed)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <swoop/swoop.h>

#define IDLE_MS 30000

struct conn {
    swoop_io_t io;
    int64_t idle_timer;
    char buf[4096];
    size_t pending; /* bytes read but not yet written back */
};

static int open_conns;

static void conn_close(struct conn *c)
{
    swoop_io_stop(&c->io); /* stop before close */
    close(swoop_io_fd(&c->io));
    swoop_timer_clear(c->idle_timer);
    free(c);
    open_conns--;
}

static void on_idle(int64_t id, void *arg)
{
    struct conn *c = arg;
    printf("closing idle connection fd %d\n", swoop_io_fd(&c->io));
    c->idle_timer = 0;
    conn_close(c);
}

static void on_conn(swoop_io_t *io, unsigned events)
{
    struct conn *c = io->data;
    int fd = swoop_io_fd(io);
    if (events & SWOOP_READABLE && c->pending == 0) {
        ssize_t n = read(fd, c->buf, sizeof(c->buf));
        if (n == 0 || (n < 0 && errno != EAGAIN)) {
            conn_close(c);
            return;
        }
        if (n > 0)
            c->pending = (size_t)n;
        swoop_timer_clear(c->idle_timer);
        c->idle_timer = swoop_timer_after(IDLE_MS, on_idle, c);
    }
    if (c->pending > 0) {
        ssize_t n = send(fd, c->buf, c->pending, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN) {
            conn_close(c);
            return;
        }
        if (n > 0) {
            memmove(c->buf, c->buf + n, c->pending - (size_t)n);
            c->pending -= (size_t)n;
        }
    }
    /* Backpressure: read only when everything read so far was written back. */
    swoop_io_start(io, c->pending ? SWOOP_WRITABLE : SWOOP_READABLE);
}

static void on_accept(swoop_io_t *io, unsigned events)
{
    for (;;) {
        int fd = accept4(swoop_io_fd(io), NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN: drained; other errors: try again next wake-up */
        struct conn *c = calloc(1, sizeof(*c));
        if (c == NULL) {
            close(fd);
            continue;
        }
        c->io.data = c;
        swoop_io_init(swoop_loop_default(), &c->io, fd, on_conn);
        swoop_io_start(&c->io, SWOOP_READABLE);
        c->idle_timer = swoop_timer_after(IDLE_MS, on_idle, c);
        open_conns++;
    }
}

static void on_sigint(swoop_signal_t *sig, int signo)
{
    swoop_loop_stop(swoop_loop_default());
}

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 0;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(sa);
    if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 512) < 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &len) < 0) {
        perror("listen");
        return 1;
    }
    printf("listening on 127.0.0.1:%d\n", ntohs(sa.sin_port));
    fflush(stdout);

    swoop_loop_t *loop = swoop_loop_default();
    swoop_io_t lio;
    swoop_signal_t sig;
    swoop_io_init(loop, &lio, lfd, on_accept);
    swoop_io_start(&lio, SWOOP_READABLE);
    swoop_signal_init(loop, &sig, on_sigint);
    swoop_signal_start(&sig, SIGINT);
    swoop_signal_t sigterm;
    swoop_signal_init(loop, &sigterm, on_sigint);
    swoop_signal_start(&sigterm, SIGTERM);

    swoop_loop_run(loop);
    printf("stopping with %d connection(s) open\n", open_conns);
    swoop_io_stop(&lio);
    swoop_signal_stop(&sig);
    swoop_signal_stop(&sigterm);
    close(lfd);
    /* Open connections still have watchers: the loop refuses to be freed. */
    return swoop_loop_free(loop) == 0 || open_conns > 0 ? 0 : 1;
}
