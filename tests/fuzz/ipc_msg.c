/*
 * libFuzzer target for the IPC reader (src/ipc/msg.c): the input is a
 * sequence of datagrams (2-byte length, then the bytes) fed to one reader,
 * as a worker or reactor would receive them from several writers. Checks: a
 * message handed out is as long as its header says and within the reader's
 * limit; nothing leaks (LeakSanitizer) whatever the chunks claim.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <swoop/log.h>

#include "ipc/msg.h"

#define MAX_MSG (1u << 20)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    swoop_log_set_level(SWOOP_LOG_NONE);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    swoop_ipc_in_t in;
    swoop__ipc_in_init(&in, MAX_MSG);
    size_t pos = 0;
    while (pos + 2 <= size) {
        size_t n = (size_t)data[pos] | (size_t)data[pos + 1] << 8;
        pos += 2;
        if (n > size - pos)
            n = size - pos;
        /* The reader may assemble in place: give it its own copy, like a receive buffer. */
        char *dgram = malloc(n ? n : 1);
        memcpy(dgram, data + pos, n);
        pos += n;
        swoop_ipc_msg_t msg;
        if (swoop__ipc_feed(&in, dgram, n, &msg) == 1) {
            if (msg.len != msg.head.len || msg.len > MAX_MSG)
                abort();
            if (msg.len > 0)
                (void)(volatile char)msg.data[msg.len - 1];
            swoop__ipc_msg_done(&msg);
        }
        free(dgram);
    }
    swoop__ipc_in_free(&in);
    return 0;
}
