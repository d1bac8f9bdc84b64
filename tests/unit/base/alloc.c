/* Allocation wrappers and the out-of-memory handler. */
#include <swoop/alloc.h>

#include <setjmp.h>
#include <stdint.h>

#include "test.h"

static jmp_buf oom_jump;
static size_t oom_size;

static void jump_handler(size_t size)
{
    oom_size = size;
    longjmp(oom_jump, 1);
}

TEST(alloc_basics)
{
    char *p = swoop_malloc(0);
    ASSERT_NOT_NULL(p);
    swoop_free(p);
    int *z = swoop_calloc(16, sizeof(int));
    for (int i = 0; i < 16; i++)
        ASSERT_EQ(z[i], 0);
    z = swoop_realloc(z, 1024 * sizeof(int));
    swoop_free(z);
    char *s = swoop_strdup("swoop");
    ASSERT_STR_EQ(s, "swoop");
    swoop_free(s);
    swoop_free(NULL);
}

TEST(alloc_oom_handler_is_called)
{
    swoop_oom_handler_cb prev = swoop_set_oom_handler(jump_handler);
    ASSERT_NOT_NULL(prev);
    if (setjmp(oom_jump) == 0) {
        /* An overflowing calloc counts as out of memory. */
        void *p = swoop_calloc(SIZE_MAX / 2, 4);
        (void)p;
        FAIL("calloc overflow returned");
    }
    ASSERT_UEQ(oom_size, SIZE_MAX);
    /* try_malloc returns NULL instead of calling the handler. */
    oom_size = 0;
    ASSERT_NULL(swoop_try_malloc(SIZE_MAX - 4096));
    ASSERT_UEQ(oom_size, 0);
    swoop_set_oom_handler(NULL);
}
