/*
 * SysV message queues for messages addressed by mtype (worker id + 1) or
 * shared by competing readers. Every message carries a small header (magic
 * and payload length) so that garbage another program put in the queue, or a
 * message cut short, is recognised, logged and dropped, never trusted and
 * never fatal. kernel.msgmax bounds one message (8192 bytes by default):
 * larger payloads are refused with SWOOP_EMSGSIZE, never truncated.
 */
#ifndef SWOOP_IPC_MSGQUEUE_H
#define SWOOP_IPC_MSGQUEUE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Bytes of header in front of each payload. */
#define SWOOP_MSGQ_HEADER 8

typedef struct swoop_msgqueue_s {
    int id;        /* msqid, -1 when closed */
    int owned;     /* created private: removed by swoop__msgqueue_remove */
    size_t msgmax; /* kernel.msgmax when opened */
} swoop_msgqueue_t;

/*
 * Opens the queue with `key` (created 0600 if missing), or a private one when
 * key is 0. Returns 0 or -errno (logged).
 */
int swoop__msgqueue_open(swoop_msgqueue_t *q, int key);

/* Removes a private queue (IPC_RMID); a keyed one outlives us. Safe to call twice. */
void swoop__msgqueue_remove(swoop_msgqueue_t *q);

/* Largest payload that fits in one message. */
size_t swoop__msgqueue_payload_max(const swoop_msgqueue_t *q);

/*
 * Sends one message of type `mtype` (> 0). `nowait` nonzero: SWOOP_EAGAIN
 * when the queue is full. Returns 0, SWOOP_EMSGSIZE, SWOOP_EAGAIN or -errno.
 */
int swoop__msgqueue_send(swoop_msgqueue_t *q, long mtype, const void *data, size_t len, int nowait);

/*
 * Receives one message of type `mtype` (0 = any) into buf (at least msgmax
 * bytes of room are needed for every message to fit: use
 * swoop__msgqueue_payload_max). Blocks unless `nowait`. Returns the payload
 * length with *payload pointing into buf, SWOOP_EAGAIN (nowait, empty),
 * SWOOP_EINTR (a signal interrupted the wait), SWOOP_ECANCELED (a wake-up
 * from swoop__msgqueue_send_wake), SWOOP_EPROTO (garbage or a truncated
 * message: dropped and logged), or -errno (SWOOP_EINVAL / EIDRM when the
 * queue was removed).
 */
ssize_t swoop__msgqueue_recv(swoop_msgqueue_t *q, long mtype, void *buf, size_t cap,
                             const void **payload, int nowait);

/*
 * Sends a wake-up of type `mtype` without waiting: the receiver that takes
 * it gets SWOOP_ECANCELED from swoop__msgqueue_recv (a thread blocked in
 * msgrcv cannot be interrupted otherwise while its signals are blocked).
 * Returns 0, SWOOP_EAGAIN (queue full: a real message will end the wait), or
 * -errno (logged).
 */
int swoop__msgqueue_send_wake(swoop_msgqueue_t *q, long mtype);

#endif /* SWOOP_IPC_MSGQUEUE_H */
