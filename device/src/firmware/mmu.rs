//! The identity map every vCPU turns on before its first atomic: 4 KiB granule, a 32-bit (4 GiB)
//! address space walked from level 1. The low GiB (the `virt` machine's devices: GIC, UART, …) is
//! one Device-nGnRnE, execute-never block; GiBs 2..4 are Normal write-back, inner-shareable
//! blocks; GiB 1 (guest RAM from 0x4000_0000) is 2 MiB Normal blocks, except the 2 MiB blocks
//! holding the stacks, which are 4 KiB pages with the guard page at the bottom of every stack left
//! unmapped — a stack overflow faults instead of running into the next stack. Addresses at or
//! above 4 GiB fault too (translation fault), which is how a stray pointer shows up in the fault
//! record.
//!
//! The tables are read-only data built at compile time; a table descriptor's next-level address
//! is a link-time relocation (pointer arithmetic on another static), so no code writes a table.

use core::ptr;

use super::layout::{EXC_STACK_BYTES, GUARD_BYTES, STACKS_BASE, STACKS_BYTES, STACK_SLOT_BYTES};

/// MAIR_EL1: attribute 0 = Device-nGnRnE, attribute 1 = Normal, inner/outer write-back
/// read/write-allocate.
pub const MAIR: u64 = 0xff << 8;
/// TCR_EL1: T0SZ = 32, inner/outer write-back walks, inner shareable, 4 KiB granule, no TTBR1
/// walks (EPD1), 32-bit physical addresses.
pub const TCR: u64 = 32 | (1 << 8) | (1 << 10) | (3 << 12) | (1 << 23);
/// SCTLR_EL1 bits the entry sets: M (MMU), C (data cache), I (instruction cache).
pub const SCTLR_SET: u64 = (1 << 0) | (1 << 2) | (1 << 12);

const BLOCK: u64 = 0b01;
const TABLE: usize = 0b11;
const PAGE: u64 = 0b11;
const ATTR_DEVICE: u64 = 0 << 2;
const ATTR_NORMAL: u64 = 1 << 2;
const INNER_SHAREABLE: u64 = 3 << 8;
const ACCESS_FLAG: u64 = 1 << 10;
const PXN: u64 = 1 << 53;
const UXN: u64 = 1 << 54;
const NORMAL: u64 = ATTR_NORMAL | INNER_SHAREABLE | ACCESS_FLAG;

const MIB2: u64 = 0x20_0000;
/// 2 MiB blocks holding the stacks, each mapped by a level-3 table.
const STACK_BLOCKS: usize = STACKS_BYTES.div_ceil(MIB2) as usize;

/// A translation table: 512 descriptors, as pointers so a table descriptor can carry the address
/// of the next-level table (a relocation) while block and page descriptors are plain values.
#[repr(C, align(4096))]
pub struct Table([*const u8; 512]);

// SAFETY: the tables are immutable data only the MMU's walker reads.
unsafe impl Sync for Table {}

const fn value(desc: u64) -> *const u8 {
    ptr::without_provenance(desc as usize)
}

const fn l1(l2: *const Table) -> Table {
    let mut t = [value(0); 512];
    t[0] = value(BLOCK | ATTR_DEVICE | ACCESS_FLAG | PXN | UXN);
    t[1] = (l2 as *const u8).wrapping_add(TABLE);
    t[2] = value((2 << 30) | BLOCK | NORMAL);
    t[3] = value((3 << 30) | BLOCK | NORMAL);
    Table(t)
}

const fn l2(l3: *const [Table; STACK_BLOCKS]) -> Table {
    let mut t = [value(0); 512];
    let first_stack_block = ((STACKS_BASE - (1 << 30)) / MIB2) as usize;
    let mut i = 0;
    while i < 512 {
        t[i] = if i >= first_stack_block && i < first_stack_block + STACK_BLOCKS {
            let table = (l3 as *const Table).wrapping_add(i - first_stack_block);
            (table as *const u8).wrapping_add(TABLE)
        } else {
            value(((1 << 30) + i as u64 * MIB2) | BLOCK | NORMAL)
        };
        i += 1;
    }
    Table(t)
}

/// True when the 4 KiB page at `addr` is the guard page of a stack.
const fn is_guard(addr: u64) -> bool {
    if addr < STACKS_BASE || addr >= STACKS_BASE + STACKS_BYTES {
        return false;
    }
    let within = (addr - STACKS_BASE) % STACK_SLOT_BYTES;
    within < GUARD_BYTES || (within >= EXC_STACK_BYTES && within < EXC_STACK_BYTES + GUARD_BYTES)
}

const fn l3s() -> [Table; STACK_BLOCKS] {
    let mut ts = [const { Table([ptr::null(); 512]) }; STACK_BLOCKS];
    let mut b = 0;
    while b < STACK_BLOCKS {
        let mut i = 0;
        while i < 512 {
            let addr = STACKS_BASE + b as u64 * MIB2 + i as u64 * 4096;
            ts[b].0[i] = if is_guard(addr) { value(0) } else { value(addr | PAGE | NORMAL) };
            i += 1;
        }
        b += 1;
    }
    ts
}

static L3: [Table; STACK_BLOCKS] = l3s();
static L2: Table = l2(&raw const L3);

/// The table TTBR0_EL1 points at (read-only data: the walker never writes it, AF is preset).
#[no_mangle]
pub static PTO_L1_TABLE: Table = l1(&raw const L2);
