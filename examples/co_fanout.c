/*
 * Coroutines, standalone: a tiny "backend" that answers each line after a
 * delay, and a fan-out that asks it five questions at once and gathers the
 * answers through a channel, all written top to bottom on one thread.
 *
 *   ./co_fanout
 *
 * Prints one line per answer (in the order they arrive: the shortest delay
 * first) and "done: 5 answers in N ms" (about 250 ms, not the 750 ms the
 * delays add up to).
 */
#include <swoop/co.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <swoop/error.h>

static int backend_fd, backend_port;
static swoop_co_chan_t *answers;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* One backend connection: read "delay_ms\n", sleep that long, answer. */
static void serve_one(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char line[32] = {0};
    ssize_t n = swoop_co_read(fd, line, sizeof(line) - 1, 2000);
    if (n > 0) {
        int ms = atoi(line);
        swoop_co_sleep(ms);
        char out[64];
        int len = snprintf(out, sizeof(out), "slept %d ms", ms);
        swoop_co_write(fd, out, (size_t)len, 2000);
    }
    close(fd);
}

static void backend(void *arg)
{
    for (int served = 0; served < 5;) {
        if (swoop_co_wait_fd(backend_fd, SWOOP_READABLE, 5000) < 0)
            return;
        int c;
        while ((c = accept4(backend_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
            swoop_co_go(serve_one, (void *)(intptr_t)c);
            served++;
        }
    }
}

/* One question: connect, ask, read the answer, hand it over. */
static void ask(void *arg)
{
    int ms = (int)(intptr_t)arg;
    char *answer = malloc(96);
    int fd = swoop_co_connect("127.0.0.1", backend_port, 2000);
    if (fd < 0) {
        snprintf(answer, 96, "connect failed: %s", swoop_strerror(fd));
    } else {
        char q[16];
        int len = snprintf(q, sizeof(q), "%d\n", ms);
        ssize_t n = swoop_co_write(fd, q, (size_t)len, 2000);
        if (n == len)
            n = swoop_co_read(fd, answer, 95, 2000);
        answer[n > 0 ? n : 0] = 0;
        if (n <= 0)
            snprintf(answer, 96, "no answer: %s", swoop_strerror((int)n));
        close(fd);
    }
    swoop_co_chan_push(answers, answer, -1);
}

static void fan_out(void *arg)
{
    static const int delays[5] = {250, 50, 200, 100, 150};
    uint64_t t0 = now_ms();
    swoop_co_go(backend, NULL);
    for (int i = 0; i < 5; i++)
        swoop_co_go(ask, (void *)(intptr_t)delays[i]);
    for (int i = 0; i < 5; i++) {
        void *answer;
        if (swoop_co_chan_pop(answers, &answer, 3000) != 0)
            break;
        printf("answer %d: %s\n", i + 1, (char *)answer);
        free(answer);
    }
    printf("done: 5 answers in %llu ms\n", (unsigned long long)(now_ms() - t0));
}

int main(void)
{
    backend_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof(a);
    if (backend_fd < 0 || bind(backend_fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
        listen(backend_fd, 16) < 0 || getsockname(backend_fd, (struct sockaddr *)&a, &l) < 0) {
        perror("listen");
        return 1;
    }
    backend_port = ntohs(a.sin_port);
    swoop_co_chan_new(&answers, 0);
    int rc = swoop_co_run(fan_out, NULL);
    swoop_co_chan_free(answers);
    close(backend_fd);
    if (rc < 0) {
        fprintf(stderr, "swoop_co_run: %s\n", swoop_strerror(rc));
        return 1;
    }
    return 0;
}
