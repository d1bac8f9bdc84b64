/*
 * The batch sender of sendmany.h over liburing. A submission carries up to
 * the ring's size of IORING_OP_SEND entries with MSG_DONTWAIT: the kernel
 * issues each inline while it handles io_uring_enter, so the completions
 * are all there when the call returns (a socket with a full buffer answers
 * -EAGAIN at once instead of arming a poll), and the caller can treat the
 * results exactly like those of send(2).
 */
#include "net/sendmany.h"

#include <errno.h>
#include <liburing.h>
#include <string.h>
#include <sys/socket.h>

#include "base/internal.h"
#include "base/ratelimit.h"

struct swoop_sendmany_s {
    struct io_uring ring;
    int broken; /* a submission went wrong: send() from then on */
};

int swoop__sendmany_open(swoop_sendmany_t **out, unsigned entries)
{
    *out = NULL;
    swoop_sendmany_t *m = swoop_calloc(1, sizeof(*m));
    if (m == NULL)
        return SWOOP_ENOMEM;
    /*
     * SUBMIT_ALL: a send that fails (a socket closed meanwhile) does not
     * stop the submission of those behind it. Kernels before 5.18 refuse
     * the flag: without it such a send stops the batch, and the rest goes
     * out with send() (swoop__sendmany), which is only slower.
     */
    int rc = io_uring_queue_init(entries, &m->ring, IORING_SETUP_SUBMIT_ALL);
    if (rc == -EINVAL)
        rc = io_uring_queue_init(entries, &m->ring, 0);
    if (rc < 0) {
        swoop_log(SWOOP_LOG_NOTICE, -rc,
                  "io_uring_queue_init(%u): broadcasts use send() per socket", entries);
        swoop_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

void swoop__sendmany_close(swoop_sendmany_t *m)
{
    if (m == NULL)
        return;
    io_uring_queue_exit(&m->ring);
    swoop_free(m);
}

static ssize_t send_one(int fd, const void *data, size_t len)
{
    for (;;) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return -errno;
    }
}

/* Reaps every completion there is into res (user_data is the index). How many. */
static unsigned reap(swoop_sendmany_t *m, ssize_t *res)
{
    struct io_uring_cqe *cqe;
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&m->ring, head, cqe)
    {
        res[io_uring_cqe_get_data64(cqe)] = cqe->res;
        seen++;
    }
    io_uring_cq_advance(&m->ring, seen);
    return seen;
}

size_t swoop__sendmany(swoop_sendmany_t *m, const int *fds, size_t n, const void *data, size_t len,
                       ssize_t *res)
{
    size_t i = 0, via_ring = 0;
    while (m && !m->broken && i < n) {
        size_t start = i;
        struct io_uring_sqe *sqe;
        while (i < n && (sqe = io_uring_get_sqe(&m->ring)) != NULL) {
            io_uring_prep_send(sqe, fds[i], data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
            io_uring_sqe_set_data64(sqe, i);
            res[i] = -EINPROGRESS;
            i++;
        }
        unsigned want = (unsigned)(i - start);
        int rc;
        do
            rc = io_uring_submit_and_wait(&m->ring, want);
        while (rc == -EINTR);
        /* The kernel takes entries in order: [start, start + taken) are its. */
        unsigned taken = rc > 0 ? (unsigned)rc : 0, got = reap(m, res);
        while (got < taken) {
            /* Nonblocking sends complete inline; this only runs if one did not. */
            struct io_uring_cqe *cqe;
            int wr = io_uring_wait_cqe(&m->ring, &cqe);
            if (wr < 0 && wr != -EINTR)
                break;
            got += reap(m, res);
        }
        via_ring += taken;
        if (taken < want) {
            /*
             * A refused or cut-short submission leaves the rest in the
             * submission queue, where the next one would pick it up with a
             * stale buffer: the ring is not used again, and what it did not
             * take is sent here.
             */
            swoop__log_limited(SWOOP_LOG_WARNING, rc < 0 ? -rc : 0,
                               "io_uring took %u of %u sends: broadcasts use send() from now on",
                               taken, want);
            m->broken = 1;
        }
        for (size_t k = start; k < i; k++) {
            if (res[k] != -EINPROGRESS)
                continue;
            /* Taken but never answered: its fate is unknown, so the stream is cut. */
            res[k] = k < start + taken ? -EIO : send_one(fds[k], data, len);
        }
    }
    for (; i < n; i++)
        res[i] = send_one(fds[i], data, len);
    return via_ring;
}
