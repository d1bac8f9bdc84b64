/*
 * Cross-process futex waits on a 32-bit word in shared memory (not
 * FUTEX_PRIVATE: the waiter and the waker are different processes). The
 * wait is bounded, so a caller that also polls for a condition the kernel
 * cannot see (a holder that died) never sleeps past its own timeout.
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base/internal.h"

int swoop__futex_wait(_Atomic uint32_t *word, uint32_t expected, int timeout_ms)
{
    struct timespec ts = {.tv_sec = timeout_ms / 1000,
                          .tv_nsec = (long)(timeout_ms % 1000) * 1000000L};
    if (syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT, expected, &ts, NULL, 0) == 0)
        return 0;
    int err = errno;
    return err == EAGAIN || err == EINTR || err == ETIMEDOUT ? 0 : -err;
}

void swoop__futex_wake_all(_Atomic uint32_t *word)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}
