/*
 * Memory allocation. swoop_malloc and friends never return NULL: when memory
 * runs out they call the out-of-memory handler, which by default logs the size
 * and aborts. Allocations whose size a peer chooses use swoop_try_malloc, which
 * returns NULL instead, so one bad connection cannot bring a process down.
 */
#ifndef SWOOP_ALLOC_H
#define SWOOP_ALLOC_H

#include <stddef.h>

#include <swoop/common.h>

SWOOP_BEGIN_DECLS

/**
 * Called when an allocation of `size` bytes failed. It must not return (abort,
 * longjmp or _exit); if it does, swoop aborts.
 */
typedef void (*swoop_oom_handler_cb)(size_t size);

/** Allocates `n` bytes; never NULL (see swoop_set_oom_handler). */
SWOOP_EXTERN void *swoop_malloc(size_t n);
/** Allocates a zeroed array; never NULL; an overflowing n*size counts as out of memory. */
SWOOP_EXTERN void *swoop_calloc(size_t n, size_t size);
/** Resizes `p` (which may be NULL); never NULL. */
SWOOP_EXTERN void *swoop_realloc(void *p, size_t n);
/** Copies a NUL-terminated string; never NULL. */
SWOOP_EXTERN char *swoop_strdup(const char *s);
/** Allocates `n` bytes or returns NULL; for sizes that come from outside. */
SWOOP_EXTERN void *swoop_try_malloc(size_t n);
/** Resizes `p` or returns NULL, leaving `p` untouched. */
SWOOP_EXTERN void *swoop_try_realloc(void *p, size_t n);
/** Frees memory from any of the functions above; NULL is ignored. */
SWOOP_EXTERN void swoop_free(void *p);

/**
 * Replaces the out-of-memory handler (NULL restores the default) and returns
 * the previous one. Process-wide; set it before starting threads.
 */
SWOOP_EXTERN swoop_oom_handler_cb swoop_set_oom_handler(swoop_oom_handler_cb handler);

SWOOP_END_DECLS

#endif /* SWOOP_ALLOC_H */
