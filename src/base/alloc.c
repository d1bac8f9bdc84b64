/*
 * Allocation wrappers with a replaceable out-of-memory handler (the redis
 * zmalloc_set_oom_handler idea): callers of swoop_malloc never check for
 * NULL; the try_ variants are for sizes chosen by a peer.
 */
#include <swoop/alloc.h>

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/internal.h"

static void default_oom_handler(size_t size);

static _Atomic(swoop_oom_handler_cb) oom_handler = default_oom_handler;

static void default_oom_handler(size_t size)
{
    swoop_log(SWOOP_LOG_ERROR, ENOMEM, "out of memory allocating %zu bytes", size);
    abort();
}

static _Noreturn void oom(size_t size)
{
    swoop_oom_handler_cb handler = atomic_load(&oom_handler);
    handler(size);
    /* A handler that returns has nothing sensible to give the caller. */
    abort();
}

void *swoop_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (swoop_unlikely(p == NULL))
        oom(n);
    return p;
}

void *swoop_calloc(size_t n, size_t size)
{
    if (size != 0 && n > SIZE_MAX / size)
        oom(SIZE_MAX);
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (swoop_unlikely(p == NULL))
        oom(n * size);
    return p;
}

void *swoop_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (swoop_unlikely(q == NULL))
        oom(n);
    return q;
}

char *swoop_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = swoop_malloc(n);
    memcpy(p, s, n);
    return p;
}

void *swoop_try_malloc(size_t n)
{
    return malloc(n ? n : 1);
}

void *swoop_try_realloc(void *p, size_t n)
{
    return realloc(p, n ? n : 1);
}

void swoop_free(void *p)
{
    free(p);
}

swoop_oom_handler_cb swoop_set_oom_handler(swoop_oom_handler_cb handler)
{
    return atomic_exchange(&oom_handler, handler ? handler : default_oom_handler);
}
