/*
 * The AArch64 context switch (src/co/switch.c) on its own, built with
 * aarch64-linux-gnu-gcc -static and run under qemu-aarch64 by
 * tests/tools/aarch64.sh (make test-aarch64): no runner, no loop, no
 * library, so it needs nothing but the cross compiler and libc.
 *
 * 1. Callee-saved registers: both sides load x19-x28 and d8-d15 with
 *    patterns of their own, switch, and check theirs came back after the
 *    other side loaded different ones (regs_roundtrip, in assembly: C
 *    cannot pin values in those registers across a call).
 * 2. FPCR: each side keeps its own rounding mode (fegetround reads FPCR).
 * 3. A fresh stack: the entry runs with sp 16-byte aligned and gets its
 *    argument.
 * 4. Deep recursion: 224 KiB of frames on a 256 KiB guard-paged stack,
 *    switching out from the deepest frame and back.
 * 5. Many switches: 2,000,000 round trips with a counter on each side.
 *
 * Prints one line per check and "aarch64 switch: all passed"; exits 1 on
 * the first failure.
 */
#ifndef __aarch64__
#error "build this for AArch64 (tests/tools/aarch64.sh)"
#endif

#include <fenv.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "co/internal.h"

/*
 * uint64_t regs_roundtrip(void **save, void *load, uint64_t seed): sets
 * x19..x28 to seed+0..9 and d8..d15 to the bits seed+10..17, switches with
 * swoop__co_switch(save, load), and once resumed returns a mask with bit i
 * set for each register (x19 = bit 0 ... d15 = bit 17) that changed. Its
 * own caller's callee-saved registers are saved and restored around that.
 */
/* clang-format off */
#define CHECK_X(reg, k)                                                                            \
    "    add x9, x2, #" #k "\n"                                                                    \
    "    cmp " #reg ", x9\n"                                                                       \
    "    cset x10, ne\n"                                                                           \
    "    orr x0, x0, x10, lsl #" #k "\n"
#define CHECK_D(reg, k)                                                                            \
    "    fmov x11, " #reg "\n"                                                                     \
    "    add x9, x2, #" #k "\n"                                                                    \
    "    cmp x11, x9\n"                                                                            \
    "    cset x10, ne\n"                                                                           \
    "    orr x0, x0, x10, lsl #" #k "\n"
#define SET_D(reg, k)                                                                              \
    "    add x9, x2, #" #k "\n"                                                                    \
    "    fmov " #reg ", x9\n"
__asm__(".text\n"
        ".globl regs_roundtrip\n"
        ".type regs_roundtrip,%function\n"
        ".p2align 4\n"
        "regs_roundtrip:\n"
        "    stp x29, x30, [sp, #-176]!\n"
        "    mov x29, sp\n"
        "    stp x19, x20, [sp, #16]\n"
        "    stp x21, x22, [sp, #32]\n"
        "    stp x23, x24, [sp, #48]\n"
        "    stp x25, x26, [sp, #64]\n"
        "    stp x27, x28, [sp, #80]\n"
        "    stp d8, d9, [sp, #96]\n"
        "    stp d10, d11, [sp, #112]\n"
        "    stp d12, d13, [sp, #128]\n"
        "    stp d14, d15, [sp, #144]\n"
        "    str x2, [sp, #160]\n"
        "    add x19, x2, #0\n"
        "    add x20, x2, #1\n"
        "    add x21, x2, #2\n"
        "    add x22, x2, #3\n"
        "    add x23, x2, #4\n"
        "    add x24, x2, #5\n"
        "    add x25, x2, #6\n"
        "    add x26, x2, #7\n"
        "    add x27, x2, #8\n"
        "    add x28, x2, #9\n"
        SET_D(d8, 10) SET_D(d9, 11) SET_D(d10, 12) SET_D(d11, 13)
        SET_D(d12, 14) SET_D(d13, 15) SET_D(d14, 16) SET_D(d15, 17)
        "    bl swoop__co_switch\n"
        "    ldr x2, [sp, #160]\n"
        "    mov x0, #0\n"
        CHECK_X(x19, 0) CHECK_X(x20, 1) CHECK_X(x21, 2) CHECK_X(x22, 3) CHECK_X(x23, 4)
        CHECK_X(x24, 5) CHECK_X(x25, 6) CHECK_X(x26, 7) CHECK_X(x27, 8) CHECK_X(x28, 9)
        CHECK_D(d8, 10) CHECK_D(d9, 11) CHECK_D(d10, 12) CHECK_D(d11, 13)
        CHECK_D(d12, 14) CHECK_D(d13, 15) CHECK_D(d14, 16) CHECK_D(d15, 17)
        "    ldp x19, x20, [sp, #16]\n"
        "    ldp x21, x22, [sp, #32]\n"
        "    ldp x23, x24, [sp, #48]\n"
        "    ldp x25, x26, [sp, #64]\n"
        "    ldp x27, x28, [sp, #80]\n"
        "    ldp d8, d9, [sp, #96]\n"
        "    ldp d10, d11, [sp, #112]\n"
        "    ldp d12, d13, [sp, #128]\n"
        "    ldp d14, d15, [sp, #144]\n"
        "    ldp x29, x30, [sp], #176\n"
        "    ret\n"
        ".size regs_roundtrip,.-regs_roundtrip\n");
/* clang-format on */

uint64_t regs_roundtrip(void **save, void *load, uint64_t seed);

enum { STACK = 256 * 1024, ROUNDS = 1000, SWITCHES = 2000000, FRAME = 1024, DEPTH = 224 };

static void *main_sp, *co_sp;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                            \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

/* A 256 KiB stack with a PROT_NONE guard page below it, as the scheduler maps them. */
static char *stack_new(void)
{
    char *map = mmap(NULL, STACK + 4096, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    CHECK(map != MAP_FAILED, "mmap");
    CHECK(mprotect(map, 4096, PROT_NONE) == 0, "mprotect");
    return map + 4096;
}

/* ---- 1. registers ---- */

static uint64_t co_mask;

static void regs_co(void *arg)
{
    uint64_t seed = 0x5000;
    for (;;) {
        co_mask |= regs_roundtrip(&co_sp, main_sp, seed);
        seed += 0x100;
    }
}

static void test_registers(void)
{
    char *stack = stack_new();
    co_sp = swoop__co_make(stack, STACK, regs_co, NULL);
    uint64_t main_mask = 0;
    for (int i = 0; i < ROUNDS; i++)
        main_mask |= regs_roundtrip(&main_sp, co_sp, 0x1000 + (uint64_t)i * 0x40);
    CHECK(main_mask == 0, "main side: registers changed across switches, mask 0x%llx",
          (unsigned long long)main_mask);
    CHECK(co_mask == 0, "coroutine side: registers changed across switches, mask 0x%llx",
          (unsigned long long)co_mask);
    printf("ok registers: x19-x28 and d8-d15 kept on both sides over %d round trips\n", ROUNDS);
}

/* ---- 2. FPCR ---- */

static volatile int co_round_ok;

static void fpcr_co(void *arg)
{
    fesetround(FE_DOWNWARD);
    for (;;) {
        swoop__co_switch(&co_sp, main_sp);
        co_round_ok = fegetround() == FE_DOWNWARD;
    }
}

static void test_fpcr(void)
{
    char *stack = stack_new();
    fesetround(FE_TONEAREST);
    co_sp = swoop__co_make(stack, STACK, fpcr_co, NULL);
    for (int i = 0; i < 100; i++) {
        swoop__co_switch(&main_sp, co_sp);
        CHECK(fegetround() == FE_TONEAREST, "main's rounding mode changed by the coroutine's");
        if (i > 0)
            CHECK(co_round_ok, "the coroutine's rounding mode was lost");
        fesetround(FE_UPWARD);
        fesetround(FE_TONEAREST);
    }
    printf("ok FPCR: each side keeps its rounding mode\n");
}

/* ---- 3. entry ---- */

static uintptr_t entry_sp;
static void *entry_arg;

static void entry_co(void *arg)
{
    entry_sp = (uintptr_t)__builtin_frame_address(0);
    entry_arg = arg;
    swoop__co_switch(&co_sp, main_sp);
    abort(); /* never resumed */
}

static void test_entry(void)
{
    char *stack = stack_new();
    int token;
    /* Deliberately unaligned size: the layout aligns the top itself. */
    co_sp = swoop__co_make(stack, STACK - 8, entry_co, &token);
    swoop__co_switch(&main_sp, co_sp);
    CHECK(entry_arg == &token, "the entry got %p, not %p", entry_arg, (void *)&token);
    CHECK(entry_sp % 16 == 0, "the entry's frame is not 16-byte aligned (%#lx)",
          (unsigned long)entry_sp);
    CHECK(entry_sp > (uintptr_t)stack && entry_sp < (uintptr_t)stack + STACK,
          "the entry does not run on its stack");
    printf("ok entry: argument passed, frame aligned, on its own stack\n");
}

/* ---- 4. deep recursion ---- */

static uint64_t deep_sum;
static uintptr_t deepest;

static uint64_t __attribute__((noinline)) recurse(int depth)
{
    volatile unsigned char frame[FRAME];
    for (int i = 0; i < FRAME; i += 64)
        frame[i] = (unsigned char)(depth + i);
    uint64_t below = 0;
    if (depth < DEPTH - 1) {
        below = recurse(depth + 1);
    } else {
        deepest = (uintptr_t)frame;
        swoop__co_switch(&co_sp, main_sp); /* out from the deepest frame, and back */
    }
    uint64_t mine = 0;
    for (int i = 0; i < FRAME; i += 64)
        mine += frame[i];
    return below + mine;
}

static void deep_co(void *arg)
{
    deep_sum = recurse(0);
    swoop__co_switch(&co_sp, main_sp);
    abort();
}

static void test_deep(void)
{
    char *stack = stack_new();
    co_sp = swoop__co_make(stack, STACK, deep_co, NULL);
    swoop__co_switch(&main_sp, co_sp); /* comes back from the deepest frame */
    size_t used = (uintptr_t)stack + STACK - deepest;
    CHECK(used >= (size_t)DEPTH * FRAME && used < STACK, "deepest frame at %zu bytes", used);
    /* Clobber what the main side can, then resume the deep frames. */
    volatile char scratch[4096];
    memset((char *)scratch, 0x5a, sizeof(scratch));
    swoop__co_switch(&main_sp, co_sp);
    uint64_t want = 0;
    for (int d = 0; d < DEPTH; d++)
        for (int i = 0; i < FRAME; i += 64)
            want += (unsigned char)(d + i);
    CHECK(deep_sum == want, "deep frames corrupted: sum %llu, want %llu",
          (unsigned long long)deep_sum, (unsigned long long)want);
    printf("ok deep recursion: %zu KiB of frames on a %d KiB stack, switched from the deepest\n",
           used / 1024, STACK / 1024);
}

/* ---- 5. many switches ---- */

static volatile uint64_t co_count;

static void count_co(void *arg)
{
    for (;;) {
        co_count++;
        swoop__co_switch(&co_sp, main_sp);
    }
}

static void test_many(void)
{
    char *stack = stack_new();
    co_sp = swoop__co_make(stack, STACK, count_co, NULL);
    uint64_t mine = 0;
    for (int i = 0; i < SWITCHES; i++) {
        swoop__co_switch(&main_sp, co_sp);
        mine++;
        CHECK(co_count == mine, "counts diverged at %d: %llu vs %llu", i,
              (unsigned long long)co_count, (unsigned long long)mine);
    }
    printf("ok many switches: %d round trips\n", SWITCHES);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    test_registers();
    test_fpcr();
    test_entry();
    test_deep();
    test_many();
    printf("aarch64 switch: all passed\n");
    return 0;
}
