/*
 * Shared memory segments. A segment is made before fork() and inherited by
 * the children at the same address: an anonymous MAP_SHARED mapping by
 * default, or a System V segment (shmget) when a key is given, so that
 * `ipcs -m` lists it and another process (the `swoop` CLI, a debugger) can
 * attach to it read-only by that key. The process that created a segment
 * owns it: swoop_shm_free in the owner unmaps it and, for a SysV segment,
 * removes the key; in any other process (a forked child, an attacher) it only
 * unmaps. SysV segments still owned at a clean exit() are removed by an
 * atexit handler, so none is left behind.
 */
#ifndef SWOOP_SHM_H
#define SWOOP_SHM_H

#include <stddef.h>

#include <swoop/common.h>

SWOOP_BEGIN_DECLS

/** A shared memory segment (opaque; the handle itself is process-local). */
typedef struct swoop_shm_s swoop_shm_t;

/**
 * Creates a zero-filled shared segment of at least `size` bytes (rounded up
 * to the page size). `key` 0 makes an anonymous mapping; any other key makes
 * a SysV segment with mode 0600 and fails with SWOOP_EEXIST if the key is
 * taken. Call it before fork(): the children inherit the mapping.
 * On success `*out` is a new handle; free it with swoop_shm_free.
 */
SWOOP_EXTERN int swoop_shm_new(swoop_shm_t **out, size_t size, int key);

/**
 * Attaches to the existing SysV segment `key`, read-only when `readonly` is
 * nonzero. The caller does not own the segment: swoop_shm_free detaches
 * without removing it. Returns SWOOP_ENOENT when no segment has that key.
 */
SWOOP_EXTERN int swoop_shm_attach(swoop_shm_t **out, int key, int readonly);

/**
 * Unmaps (or detaches) the segment and frees the handle; in the process that
 * created a SysV segment it also removes the segment. NULL is ignored.
 * Pointers into the segment are invalid afterwards.
 */
SWOOP_EXTERN void swoop_shm_free(swoop_shm_t *shm);

/** Returns the start of the segment (page aligned). */
SWOOP_EXTERN void *swoop_shm_ptr(const swoop_shm_t *shm);

/** Returns the usable size of the segment in bytes (a multiple of the page size). */
SWOOP_EXTERN size_t swoop_shm_size(const swoop_shm_t *shm);

/** Returns the SysV id of the segment (as `ipcs -m` shows it), or -1 for an anonymous one. */
SWOOP_EXTERN int swoop_shm_id(const swoop_shm_t *shm);

SWOOP_END_DECLS

#endif /* SWOOP_SHM_H */
