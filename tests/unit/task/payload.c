/*
 * The task payload rule (src/server/task_payload.c) on its own: with the
 * inline limit lowered (task_ipc_mode 2, 3 on a host whose kernel.msgmax is
 * below 8 KiB, task_queue.c sets tk->inline_max), a payload above that
 * limit must not travel inline, or msgsnd refuses the message; without a
 * spill file it goes through a file of its own, which the reader takes
 * back intact and removes.
 */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <swoop/error.h>

#include "task/internal.h"
#include "test.h"

static int task_files(const char *dir)
{
    DIR *d = opendir(dir);
    ASSERT_NOT_NULL(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strncmp(e->d_name, TASK_PREFIX, strlen(TASK_PREFIX)) == 0;
    closedir(d);
    return n;
}

/* Packs `len` bytes with tk->inline_max `max`; returns the header flags after a round trip. */
static unsigned pack_take(size_t max, size_t len)
{
    static swoop_task_t tk;
    memset(&tk, 0, sizeof(tk));
    tk.inline_max = max;
    snprintf(tk.prefix, sizeof(tk.prefix), "%s/" TASK_PREFIX "%d.", swoop_test_tmpdir(),
             (int)getpid());
    static char data[SWOOP_TASK_INLINE_MAX + 100], msg[TASK_MSG_MAX];
    for (size_t i = 0; i < len; i++)
        data[i] = (char)(i * 7 + 3);
    swoop_ipc_head_t h = {.type = SWOOP_IPC_TASK};
    static task_out_t out;
    ASSERT_OK(task_payload_pack(&tk, &h, data, len, &out));
    /* The message as it would travel: the pieces after the header. */
    size_t plen = out.l1 + out.l2;
    ASSERT_ULE(plen, sizeof(msg));
    memcpy(msg, out.p1, out.l1);
    if (out.l2)
        memcpy(msg + out.l1, out.p2, out.l2);
    static task_in_t in;
    ASSERT_OK(task_payload_take(&tk, &h, msg, plen, 0, &in));
    ASSERT_EQ(in.len, len);
    ASSERT_MEM_EQ(in.data, data, len);
    task_payload_done(&tk, &in);
    ASSERT_EQ(task_files(swoop_test_tmpdir()), 0);
    return h.flags;
}

TEST(task_payload_inline_max)
{
    /* The default limit: 8,160 inline, 8,161 through a file (no spill file here). */
    ASSERT_EQ(pack_take(SWOOP_TASK_INLINE_MAX, SWOOP_TASK_INLINE_MAX) & SWOOP_IPC_TMPFILE, 0);
    ASSERT_NE(pack_take(SWOOP_TASK_INLINE_MAX, SWOOP_TASK_INLINE_MAX + 1) & SWOOP_IPC_TMPFILE, 0);
    /* A smaller queue (kernel.msgmax 4096): 4,064 inline, 4,065 must not be. */
    ASSERT_EQ(pack_take(4096 - 32, 4096 - 32) & SWOOP_IPC_TMPFILE, 0);
    ASSERT_NE(pack_take(4096 - 32, 4096 - 32 + 1) & SWOOP_IPC_TMPFILE, 0);
}
