/*
 * The context switch: save the callee-saved state of the running context on
 * its own stack, store its stack pointer, load the other context's stack
 * pointer and pop its state. Only what the calling convention says a call
 * preserves has to be saved, because the switch is an ordinary function
 * call for both sides. Written as top-level assembly in a .c file so the
 * build's per-layer glob of *.c picks it up without an ASM language.
 *
 * x86-64 SysV: rbx rbp r12-r15, rsp, plus MXCSR's control bits and the x87
 * control word (the ABI says both are callee-saved), so a coroutine that
 * changes its rounding mode keeps it to itself.
 * AArch64: x19-x28, x29 (fp), x30 (lr), sp, d8-d15 and FPCR.
 *
 * A fresh context's stack is laid out so that the first switch into it
 * "returns" into swoop__co_trampoline, which calls entry(arg) with the two
 * values placed in callee-saved register slots. entry never returns.
 */
#include "co/internal.h"

#include <string.h>

#ifndef SWOOP_CO_UCONTEXT

#if defined(__x86_64__)

/*
 * Frame at the saved sp (low to high): [mxcsr:4 | x87cw:2 | pad:2]
 * r15 r14 r13 r12 rbx rbp, return address.
 */
__asm__(".text\n"
        ".globl swoop__co_switch\n"
        ".hidden swoop__co_switch\n"
        ".type swoop__co_switch,@function\n"
        ".p2align 4\n"
        "swoop__co_switch:\n"
        "    .cfi_startproc\n"
        "    pushq %rbp\n"
        "    pushq %rbx\n"
        "    pushq %r12\n"
        "    pushq %r13\n"
        "    pushq %r14\n"
        "    pushq %r15\n"
        "    subq $8, %rsp\n"
        "    stmxcsr (%rsp)\n"
        "    fnstcw 4(%rsp)\n"
        "    movq %rsp, (%rdi)\n"
        "    movq %rsi, %rsp\n"
        "    ldmxcsr (%rsp)\n"
        "    fldcw 4(%rsp)\n"
        "    addq $8, %rsp\n"
        "    popq %r15\n"
        "    popq %r14\n"
        "    popq %r13\n"
        "    popq %r12\n"
        "    popq %rbx\n"
        "    popq %rbp\n"
        /* Not ret: the return-stack predictor expects the return to the
         * call that entered this function, which is in the other context,
         * and would miss on every switch; an indirect jump is predicted from
         * its own history. (rcx is caller-saved: free to use here.) */
        "    popq %rcx\n"
        "    jmpq *%rcx\n"
        "    .cfi_endproc\n"
        ".size swoop__co_switch,.-swoop__co_switch\n"
        "\n"
        ".globl swoop__co_trampoline\n"
        ".hidden swoop__co_trampoline\n"
        ".type swoop__co_trampoline,@function\n"
        ".p2align 4\n"
        "swoop__co_trampoline:\n"
        "    .cfi_startproc\n"
        "    .cfi_undefined rip\n"
        "    movq %r12, %rdi\n"
        "    callq *%r13\n"
        "    ud2\n"
        "    .cfi_endproc\n"
        ".size swoop__co_trampoline,.-swoop__co_trampoline\n");

void swoop__co_trampoline(void);

void *swoop__co_make(void *stack_lo, size_t size, void (*entry)(void *), void *arg)
{
    /* The trampoline starts with rsp 16-byte aligned, so its call leaves
     * the entry function with the rsp % 16 == 8 the ABI promises. */
    uintptr_t top = ((uintptr_t)stack_lo + size) & ~(uintptr_t)15;
    uint64_t *sp = (uint64_t *)(top - 8 * 8);
    uint32_t mxcsr;
    uint16_t fpucw;
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(fpucw));
    /* A new coroutine starts with the creating thread's FP control state,
     * as a new thread would; only the control bits matter to ldmxcsr. */
    sp[0] = (uint64_t)(mxcsr & 0xffc0u) | ((uint64_t)fpucw << 32);
    sp[1] = 0;                          /* r15 */
    sp[2] = 0;                          /* r14 */
    sp[3] = (uint64_t)(uintptr_t)entry; /* r13 */
    sp[4] = (uint64_t)(uintptr_t)arg;   /* r12 */
    sp[5] = 0;                          /* rbx */
    sp[6] = 0;                          /* rbp: ends frame-pointer walks */
    sp[7] = (uint64_t)(uintptr_t)swoop__co_trampoline;
    return sp;
}

#elif defined(__aarch64__)

/*
 * Frame at the saved sp (176 bytes, 16-aligned): x19..x28 at 0..72,
 * x29 at 80, x30 at 88, d8..d15 at 96..152, FPCR at 160.
 */
__asm__(".text\n"
        ".globl swoop__co_switch\n"
        ".hidden swoop__co_switch\n"
        ".type swoop__co_switch,%function\n"
        ".p2align 4\n"
        "swoop__co_switch:\n"
        "    sub sp, sp, #176\n"
        "    stp x19, x20, [sp, #0]\n"
        "    stp x21, x22, [sp, #16]\n"
        "    stp x23, x24, [sp, #32]\n"
        "    stp x25, x26, [sp, #48]\n"
        "    stp x27, x28, [sp, #64]\n"
        "    stp x29, x30, [sp, #80]\n"
        "    stp d8, d9, [sp, #96]\n"
        "    stp d10, d11, [sp, #112]\n"
        "    stp d12, d13, [sp, #128]\n"
        "    stp d14, d15, [sp, #144]\n"
        "    mrs x9, fpcr\n"
        "    str x9, [sp, #160]\n"
        "    mov x9, sp\n"
        "    str x9, [x0]\n"
        "    mov sp, x1\n"
        "    ldp x19, x20, [sp, #0]\n"
        "    ldp x21, x22, [sp, #16]\n"
        "    ldp x23, x24, [sp, #32]\n"
        "    ldp x25, x26, [sp, #48]\n"
        "    ldp x27, x28, [sp, #64]\n"
        "    ldp x29, x30, [sp, #80]\n"
        "    ldp d8, d9, [sp, #96]\n"
        "    ldp d10, d11, [sp, #112]\n"
        "    ldp d12, d13, [sp, #128]\n"
        "    ldp d14, d15, [sp, #144]\n"
        "    ldr x9, [sp, #160]\n"
        "    msr fpcr, x9\n"
        "    add sp, sp, #176\n"
        "    ret\n"
        ".size swoop__co_switch,.-swoop__co_switch\n"
        "\n"
        ".globl swoop__co_trampoline\n"
        ".hidden swoop__co_trampoline\n"
        ".type swoop__co_trampoline,%function\n"
        ".p2align 4\n"
        "swoop__co_trampoline:\n"
        "    .cfi_startproc\n"
        /* The first frame of a coroutine: unwinders (gdb, backtrace()) stop
         * here instead of following the zeroed lr slot. */
        "    .cfi_undefined x30\n"
        "    mov x0, x19\n"
        "    blr x20\n"
        "    brk #0\n"
        "    .cfi_endproc\n"
        ".size swoop__co_trampoline,.-swoop__co_trampoline\n");

void swoop__co_trampoline(void);

void *swoop__co_make(void *stack_lo, size_t size, void (*entry)(void *), void *arg)
{
    uintptr_t top = ((uintptr_t)stack_lo + size) & ~(uintptr_t)15;
    uint64_t *sp = (uint64_t *)(top - 176);
    uint64_t fpcr;
    __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
    memset(sp, 0, 176);
    sp[0] = (uint64_t)(uintptr_t)arg;                   /* x19 */
    sp[1] = (uint64_t)(uintptr_t)entry;                 /* x20 */
    sp[10] = 0;                                         /* x29: ends frame-pointer walks */
    sp[11] = (uint64_t)(uintptr_t)swoop__co_trampoline; /* x30 */
    sp[20] = fpcr;
    return sp;
}

#else
#error "no assembly context switch for this CPU: build with -DSWOOP_CO_UCONTEXT=ON"
#endif

#endif /* !SWOOP_CO_UCONTEXT */
