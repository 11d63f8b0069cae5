//! Reset and exception entry, in assembly, before any Rust runs.
//!
//! `_start` (the link origin, vCPU 0) and `_pto_secondary` (the PSCI CPU_ON entry of every other
//! vCPU) run the same sequence on every core:
//!
//! 1. vCPU index from MPIDR_EL1 affinity 0; an index without stacks parks;
//! 2. FP/SIMD on (CPACR_EL1.FPEN = 0b11: the target uses NEON for ordinary copies);
//! 3. VBAR_EL1 = the vector table;
//! 4. SP_EL1 = the vCPU's exception stack, then SPSel = 0 and SP_EL0 = its main stack, so a fault
//!    (a stack overflow into the main stack's guard page included) is handled on a stack of its
//!    own;
//! 5. the identity-mapped MMU (MAIR, TCR, TTBR0 from [`super::mmu`]) with caches on — before any
//!    atomic or shared structure is touched;
//! 6. vCPU 0 only: zero `.bss`;
//! 7. `pto_firmware_main(vcpu, context)`.
//!
//! Every vector saves x0..x30 and the exception registers into a [`TrapFrame`] on the exception
//! stack and calls [`super::trap::pto_trap`], which records the fault and powers the vCPU off.
//! Offsets are `offset_of!` constants; the memory map reaches the linker script as absolute
//! symbols (`__pto_*`) defined here, so the script's `ASSERT`s check the values Rust uses.

use core::arch::global_asm;
use core::mem::{offset_of, size_of};

use super::layout;
use super::mmu;
use super::names::FirmwareAbi;

/// What a vector stores before calling the trap handler.
#[repr(C)]
pub struct TrapFrame {
    /// x0..x30 at the exception.
    pub regs: [u64; 31],
    /// SP_EL0 at the exception (the interrupted code's stack).
    pub sp_el0: u64,
    /// ESR_EL1.
    pub esr: u64,
    /// ELR_EL1.
    pub elr: u64,
    /// FAR_EL1.
    pub far: u64,
    /// SPSR_EL1.
    pub spsr: u64,
}

const _: () = assert!(size_of::<TrapFrame>() % 16 == 0);

global_asm!(
    r#"
    .section .text.entry, "ax"
    .global _start
_start:
    mrs     x19, mpidr_el1
    and     x19, x19, #0xff
    cbnz    x19, pto_park_early
    mov     x20, xzr
    b       pto_common_entry

    .global _pto_secondary
_pto_secondary:
    mov     x20, x0
    mrs     x19, mpidr_el1
    and     x19, x19, #0xff

pto_common_entry:
    cmp     x19, #{vcpus}
    b.hs    pto_park_early
    mov     x0, #(3 << 20)
    msr     cpacr_el1, x0
    isb
    adrp    x0, __pto_vectors
    add     x0, x0, :lo12:__pto_vectors
    msr     vbar_el1, x0
    isb
    ldr     x0, ={stacks}
    ldr     x1, ={slot_bytes}
    madd    x0, x19, x1, x0
    ldr     x1, ={exc_bytes}
    add     x2, x0, x1
    mov     sp, x2
    ldr     x1, ={slot_bytes}
    add     x3, x0, x1
    msr     sp_el0, x3
    msr     spsel, #0
    mov     sp, x3

    ldr     x0, ={mair}
    msr     mair_el1, x0
    ldr     x0, ={tcr}
    msr     tcr_el1, x0
    adrp    x0, {table}
    add     x0, x0, :lo12:{table}
    msr     ttbr0_el1, x0
    dsb     ish
    tlbi    vmalle1
    dsb     ish
    isb
    mrs     x0, sctlr_el1
    ldr     x1, ={sctlr_set}
    orr     x0, x0, x1
    bic     x0, x0, #(1 << 1)
    msr     sctlr_el1, x0
    isb

    cbnz    x19, 2f
    adrp    x0, __pto_bss_start
    add     x0, x0, :lo12:__pto_bss_start
    adrp    x1, __pto_bss_end
    add     x1, x1, :lo12:__pto_bss_end
1:  cmp     x0, x1
    b.hs    2f
    str     xzr, [x0], #8
    b       1b
2:  mov     x0, x19
    mov     x1, x20
    bl      pto_firmware_main
pto_park_early:
    wfe
    b       pto_park_early
    .ltorg

    .macro  PTO_VECTOR idx
    .balign 128
    sub     sp, sp, #{frame}
    stp     x0, x1, [sp, #0]
    mov     x0, #\idx
    b       pto_vector_common
    .endm

    .section .text.vectors, "ax"
    .balign 2048
    .global __pto_vectors
__pto_vectors:
    PTO_VECTOR 0
    PTO_VECTOR 1
    PTO_VECTOR 2
    PTO_VECTOR 3
    PTO_VECTOR 4
    PTO_VECTOR 5
    PTO_VECTOR 6
    PTO_VECTOR 7
    PTO_VECTOR 8
    PTO_VECTOR 9
    PTO_VECTOR 10
    PTO_VECTOR 11
    PTO_VECTOR 12
    PTO_VECTOR 13
    PTO_VECTOR 14
    PTO_VECTOR 15

pto_vector_common:
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x19, [sp, #144]
    stp     x20, x21, [sp, #160]
    stp     x22, x23, [sp, #176]
    stp     x24, x25, [sp, #192]
    stp     x26, x27, [sp, #208]
    stp     x28, x29, [sp, #224]
    str     x30, [sp, #240]
    mrs     x1, sp_el0
    str     x1, [sp, #{off_sp_el0}]
    mrs     x1, esr_el1
    str     x1, [sp, #{off_esr}]
    mrs     x1, elr_el1
    str     x1, [sp, #{off_elr}]
    mrs     x1, far_el1
    str     x1, [sp, #{off_far}]
    mrs     x1, spsr_el1
    str     x1, [sp, #{off_spsr}]
    mov     x1, x0
    mov     x0, sp
    bl      pto_trap
    b       pto_park_early
    .ltorg

    .global __pto_ram_base
    .set    __pto_ram_base, {ram_base}
    .global __pto_origin
    .set    __pto_origin, {origin}
    .global __pto_image_limit
    .set    __pto_image_limit, {image_limit}
    .global __pto_control_block
    .set    __pto_control_block, {control}
    .global __pto_shared_end
    .set    __pto_shared_end, {shared_end}
    .global __pto_stacks_base
    .set    __pto_stacks_base, {stacks}
    .global __pto_stacks_end
    .set    __pto_stacks_end, {stacks_end}
    .global __pto_abi_size
    .set    __pto_abi_size, {abi_size}
    "#,
    vcpus = const layout::VCPUS,
    stacks = const layout::STACKS_BASE,
    slot_bytes = const layout::STACK_SLOT_BYTES,
    exc_bytes = const layout::EXC_STACK_BYTES,
    mair = const mmu::MAIR,
    tcr = const mmu::TCR,
    table = sym mmu::PTO_L1_TABLE,
    sctlr_set = const mmu::SCTLR_SET,
    frame = const size_of::<TrapFrame>(),
    off_sp_el0 = const offset_of!(TrapFrame, sp_el0),
    off_esr = const offset_of!(TrapFrame, esr),
    off_elr = const offset_of!(TrapFrame, elr),
    off_far = const offset_of!(TrapFrame, far),
    off_spsr = const offset_of!(TrapFrame, spsr),
    ram_base = const layout::RAM_BASE,
    origin = const layout::ORIGIN,
    image_limit = const layout::IMAGE_LIMIT,
    control = const layout::CONTROL_BLOCK,
    shared_end = const layout::HEAP_BASE,
    stacks_end = const layout::STACKS_BASE + layout::STACKS_BYTES,
    abi_size = const size_of::<FirmwareAbi>(),
);

const _: () = assert!(offset_of!(TrapFrame, regs) == 0 && offset_of!(TrapFrame, sp_el0) == 31 * 8);
