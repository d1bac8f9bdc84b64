/*
 * swoop__getpid: the cached pid is the process's own, in the parent, in a
 * forked child (refreshed by the atfork handler, also when the parent had
 * read it before the fork) and in a grandchild.
 */
#include <sys/wait.h>
#include <unistd.h>

#include "base/internal.h"
#include "test.h"

TEST(getpid_cached_matches_the_kernel)
{
    ASSERT_EQ(swoop__getpid(), getpid());
    ASSERT_EQ(swoop__getpid(), getpid());
}

TEST(getpid_refreshed_in_forked_children)
{
    ASSERT_EQ(swoop__getpid(), getpid()); /* cached in the parent before the fork */
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        if (swoop__getpid() != getpid())
            _exit(1);
        pid_t grandchild = fork();
        if (grandchild < 0)
            _exit(2);
        if (grandchild == 0)
            _exit(swoop__getpid() == getpid() ? 0 : 3);
        int st;
        if (waitpid(grandchild, &st, 0) != grandchild || !WIFEXITED(st))
            _exit(4);
        _exit(WEXITSTATUS(st));
    }
    int st;
    ASSERT_EQ(waitpid(child, &st, 0), child);
    ASSERT(WIFEXITED(st));
    ASSERT_EQ(WEXITSTATUS(st), 0);
    ASSERT_EQ(swoop__getpid(), getpid());
}
