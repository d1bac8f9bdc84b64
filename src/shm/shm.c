/*
 * Shared memory segments: anonymous MAP_SHARED mappings, or SysV segments
 * when the caller gives a key so that outside tools can find and attach to
 * them. The handle is process-local (malloc'd); fork() copies it, and the
 * creator's pid recorded in it decides who may remove a SysV segment. Owned
 * SysV segments are kept in a process-local list that an atexit handler
 * sweeps, so a clean exit never leaves a key behind in `ipcs -m`.
 */
#include <swoop/shm.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <unistd.h>

#include "base/internal.h"
#include "base/procstat.h"
#include "shm/internal.h"

struct swoop_shm_s {
    void *ptr;
    size_t size;
    int key;     /* 0 for anonymous */
    int id;      /* SysV id or -1 */
    pid_t owner; /* the creating process; 0 for an attached segment */
    struct swoop_shm_s *next_owned;
};

static void shm_atexit(void);

static pthread_mutex_t owned_lock = PTHREAD_MUTEX_INITIALIZER;
static swoop_shm_t *owned_list;
static int atexit_set;

static size_t page_round(size_t size)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return (size + page - 1) / page * page;
}

void *swoop__shm_map(size_t size, const char *what)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        int err = errno;
        swoop_log(SWOOP_LOG_ERROR, err, "mmap(%zu bytes) for %s failed", size, what);
        return NULL;
    }
    return p;
}

void swoop__shm_unmap(void *p, size_t size)
{
    if (p != NULL && munmap(p, size) != 0) {
        int err = errno;
        swoop_log(SWOOP_LOG_WARNING, err, "munmap(%p, %zu) failed", p, size);
    }
}

uint32_t swoop__tid_start(int tid)
{
    swoop_procstat_t ps;
    if (swoop__procstat_read(tid, 0, &ps) < 0)
        return 0;
    /* Fold to 32 bits; 0 is reserved for "unknown". */
    uint32_t tag = (uint32_t)(ps.start_ticks ^ (ps.start_ticks >> 32));
    return tag ? tag : 1;
}

int swoop__tid_alive(int tid)
{
    swoop_procstat_t ps;
    int rc = swoop__procstat_read(tid, 0, &ps);
    if (rc == -ENOENT || rc == -ESRCH || rc == SWOOP_EIO)
        return 0;
    if (rc < 0)
        return 1; /* cannot tell: count it alive */
    return ps.state != 'Z' && ps.state != 'X';
}

int swoop_shm_new(swoop_shm_t **out, size_t size, int key)
{
    if (out == NULL || size == 0) {
        swoop_log(SWOOP_LOG_WARNING, 0, "swoop_shm_new: invalid arguments (size %zu)", size);
        return SWOOP_EINVAL;
    }
    *out = NULL;
    size = page_round(size);
    swoop_shm_t *shm = swoop_calloc(1, sizeof(*shm));
    shm->size = size;
    shm->key = key;
    shm->id = -1;
    shm->owner = getpid();
    if (key == 0) {
        shm->ptr = swoop__shm_map(size, "shared segment");
        if (shm->ptr == NULL) {
            swoop_free(shm);
            return SWOOP_ENOMEM;
        }
        *out = shm;
        return 0;
    }
    int id = shmget((key_t)key, size, IPC_CREAT | IPC_EXCL | 0600);
    if (id < 0) {
        int err = errno;
        swoop_log(SWOOP_LOG_ERROR, err, "shmget(key 0x%x, %zu bytes) failed", (unsigned)key, size);
        swoop_free(shm);
        return -err;
    }
    void *p = shmat(id, NULL, 0);
    if (p == (void *)-1) {
        int err = errno;
        swoop_log(SWOOP_LOG_ERROR, err, "shmat(id %d) failed", id);
        shmctl(id, IPC_RMID, NULL);
        swoop_free(shm);
        return -err;
    }
    shm->ptr = p;
    shm->id = id;
    pthread_mutex_lock(&owned_lock);
    shm->next_owned = owned_list;
    owned_list = shm;
    if (!atexit_set) {
        atexit_set = 1;
        atexit(shm_atexit);
    }
    pthread_mutex_unlock(&owned_lock);
    *out = shm;
    return 0;
}

int swoop_shm_attach(swoop_shm_t **out, int key, int readonly)
{
    if (out == NULL || key == 0) {
        swoop_log(SWOOP_LOG_WARNING, 0, "swoop_shm_attach: invalid arguments (key %d)", key);
        return SWOOP_EINVAL;
    }
    *out = NULL;
    int id = shmget((key_t)key, 0, 0);
    if (id < 0) {
        int err = errno;
        swoop_log(SWOOP_LOG_WARNING, err, "shmget(key 0x%x) failed", (unsigned)key);
        return -err;
    }
    struct shmid_ds ds;
    if (shmctl(id, IPC_STAT, &ds) != 0) {
        int err = errno;
        swoop_log(SWOOP_LOG_WARNING, err, "shmctl(id %d, IPC_STAT) failed", id);
        return -err;
    }
    void *p = shmat(id, NULL, readonly ? SHM_RDONLY : 0);
    if (p == (void *)-1) {
        int err = errno;
        swoop_log(SWOOP_LOG_WARNING, err, "shmat(id %d) failed", id);
        return -err;
    }
    swoop_shm_t *shm = swoop_calloc(1, sizeof(*shm));
    shm->ptr = p;
    shm->size = ds.shm_segsz;
    shm->key = key;
    shm->id = id;
    *out = shm;
    return 0;
}

/* Unmaps, and removes the segment when this process created it. */
static void shm_release(swoop_shm_t *shm)
{
    if (shm->id < 0) {
        swoop__shm_unmap(shm->ptr, shm->size);
        return;
    }
    if (shmdt(shm->ptr) != 0) {
        int err = errno;
        swoop_log(SWOOP_LOG_WARNING, err, "shmdt(id %d) failed", shm->id);
    }
    if (shm->owner == getpid() && shmctl(shm->id, IPC_RMID, NULL) != 0) {
        int err = errno;
        swoop_log(SWOOP_LOG_WARNING, err, "shmctl(id %d, IPC_RMID) failed", shm->id);
    }
}

void swoop_shm_free(swoop_shm_t *shm)
{
    if (shm == NULL)
        return;
    if (shm->id >= 0 && shm->owner != 0) {
        pthread_mutex_lock(&owned_lock);
        for (swoop_shm_t **pp = &owned_list; *pp != NULL; pp = &(*pp)->next_owned) {
            if (*pp == shm) {
                *pp = shm->next_owned;
                break;
            }
        }
        pthread_mutex_unlock(&owned_lock);
    }
    shm_release(shm);
    swoop_free(shm);
}

/* Removes the SysV segments this process still owns (a forked child owns none). */
static void shm_atexit(void)
{
    pthread_mutex_lock(&owned_lock);
    for (swoop_shm_t *shm = owned_list; shm != NULL; shm = shm->next_owned) {
        if (shm->owner == getpid())
            shmctl(shm->id, IPC_RMID, NULL);
    }
    pthread_mutex_unlock(&owned_lock);
}

void *swoop_shm_ptr(const swoop_shm_t *shm)
{
    return shm->ptr;
}

size_t swoop_shm_size(const swoop_shm_t *shm)
{
    return shm->size;
}

int swoop_shm_id(const swoop_shm_t *shm)
{
    return shm->id;
}
