// The memory functions (and the two symbols the prebuilt `core` names) of the onboard AICPU
// program and its loader check, as hidden symbols: byte loops, so the compiler cannot turn them
// back into calls to themselves.
    .text
    .p2align 2
    .global memcpy
    .hidden memcpy
    .type memcpy, %function
memcpy:
    mov     x3, x0
1:  cbz     x2, 2f
    ldrb    w4, [x1], #1
    strb    w4, [x3], #1
    sub     x2, x2, #1
    b       1b
2:  ret
    .size memcpy, . - memcpy

    .p2align 2
    .global memmove
    .hidden memmove
    .type memmove, %function
memmove:
    cmp     x0, x1
    b.ls    memcpy
    add     x3, x0, x2
    add     x4, x1, x2
1:  cbz     x2, 2f
    ldrb    w5, [x4, #-1]!
    strb    w5, [x3, #-1]!
    sub     x2, x2, #1
    b       1b
2:  ret
    .size memmove, . - memmove

    .p2align 2
    .global memset
    .hidden memset
    .type memset, %function
memset:
    mov     x3, x0
1:  cbz     x2, 2f
    strb    w1, [x3], #1
    sub     x2, x2, #1
    b       1b
2:  ret
    .size memset, . - memset

    .p2align 2
    .global memcmp
    .hidden memcmp
    .type memcmp, %function
    .global bcmp
    .hidden bcmp
    .type bcmp, %function
memcmp:
bcmp:
1:  cbz     x2, 2f
    ldrb    w3, [x0], #1
    ldrb    w4, [x1], #1
    sub     x2, x2, #1
    subs    w5, w3, w4
    b.eq    1b
    mov     w0, w5
    ret
2:  mov     w0, #0
    ret
    .size memcmp, . - memcmp
    .size bcmp, . - bcmp

    .p2align 2
    .global getauxval
    .hidden getauxval
    .type getauxval, %function
getauxval:
    mov     x0, #0
    ret
    .size getauxval, . - getauxval

    .p2align 2
    .global rust_eh_personality
    .hidden rust_eh_personality
    .type rust_eh_personality, %function
rust_eh_personality:
    brk     #0x7071
    .size rust_eh_personality, . - rust_eh_personality
