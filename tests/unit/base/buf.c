/* The growable byte buffer. */
#include "base/buf.h"

#include <stdint.h>

#include <swoop/error.h>

#include "test.h"

TEST(buf_append_consume_compact)
{
    swoop_buf_t b;
    swoop__buf_init(&b);
    char chunk[100];
    for (int i = 0; i < 100; i++)
        chunk[i] = (char)i;
    for (int i = 0; i < 50; i++)
        ASSERT_OK(swoop__buf_append(&b, chunk, sizeof(chunk)));
    ASSERT_UEQ(swoop__buf_rlen(&b), 5000);
    swoop__buf_consume(&b, 4950);
    ASSERT_UEQ(swoop__buf_rlen(&b), 50);
    ASSERT_MEM_EQ(swoop__buf_rdata(&b), chunk + 50, 50);
    size_t cap = b.cap;
    /* Room exists once the consumed front is reclaimed: no growth. */
    ASSERT_OK(swoop__buf_reserve(&b, cap - 100));
    ASSERT_UEQ(b.cap, cap);
    ASSERT_UEQ(b.off, 0);
    ASSERT_MEM_EQ(swoop__buf_rdata(&b), chunk + 50, 50);
    memcpy(swoop__buf_wdata(&b), "xy", 2);
    swoop__buf_commit(&b, 2);
    ASSERT_UEQ(swoop__buf_rlen(&b), 52);
    swoop__buf_consume(&b, 52);
    ASSERT_UEQ(b.len, 0);
    ASSERT_EQ(swoop__buf_reserve(&b, SIZE_MAX - 8), SWOOP_ENOMEM);
    swoop__buf_free(&b);
}

TEST(buf_grow_keeps_unread_bytes)
{
    swoop_buf_t b;
    swoop__buf_init(&b);
    ASSERT_OK(swoop__buf_append(&b, "hello world", 11));
    swoop__buf_consume(&b, 6);
    char big[4096];
    memset(big, 'z', sizeof(big));
    ASSERT_OK(swoop__buf_append(&b, big, sizeof(big)));
    ASSERT_UEQ(swoop__buf_rlen(&b), 5 + sizeof(big));
    ASSERT_MEM_EQ(swoop__buf_rdata(&b), "world", 5);
    swoop__buf_clear(&b);
    ASSERT_UEQ(swoop__buf_rlen(&b), 0);
    swoop__buf_free(&b);
}

TEST(buf_shrink_gives_back_what_a_big_packet_left)
{
    swoop_buf_t b;
    swoop__buf_init(&b);
    static char big[1 << 20];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)(i * 13);
    ASSERT_OK(swoop__buf_append(&b, big, sizeof(big)));
    /* Still full, or at least a quarter full: kept. */
    swoop__buf_shrink(&b, 0, 4096);
    ASSERT_UGE(b.cap, sizeof(big));
    swoop__buf_consume(&b, sizeof(big) / 2);
    swoop__buf_shrink(&b, 0, 4096);
    ASSERT_UGE(b.cap, sizeof(big));
    /* A 100-byte tail in a 1 MiB block moves to a small one, bytes intact. */
    swoop__buf_consume(&b, sizeof(big) / 2 - 100);
    swoop__buf_shrink(&b, 0, 4096);
    ASSERT_ULE(b.cap, 256);
    ASSERT_UEQ(b.off, 0);
    ASSERT_UEQ(swoop__buf_rlen(&b), 100);
    ASSERT_MEM_EQ(swoop__buf_rdata(&b), big + sizeof(big) - 100, 100);
    /* `want` is honoured: room for a packet whose header announced 10000 bytes. */
    ASSERT_OK(swoop__buf_reserve(&b, 60000));
    swoop__buf_shrink(&b, 10000, 4096);
    ASSERT_UEQ(b.cap, 16384);
    ASSERT_MEM_EQ(swoop__buf_rdata(&b), big + sizeof(big) - 100, 100);
    /* Drained: a block above `keep` is freed, one at or below it stays for reuse. */
    swoop__buf_consume(&b, 100);
    swoop__buf_shrink(&b, 0, 4096);
    ASSERT_NULL(b.data);
    ASSERT_UEQ(b.cap, 0);
    ASSERT_OK(swoop__buf_append(&b, big, 1000));
    swoop__buf_consume(&b, 1000);
    swoop__buf_shrink(&b, 0, 4096);
    ASSERT_NOT_NULL(b.data);
    ASSERT_UEQ(b.cap, 1024);
    swoop__buf_free(&b);
}
