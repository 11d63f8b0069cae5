//! The identity map every vCPU turns on before its first atomic: 4 KiB granule, a 32-bit (4 GiB)
//! address space walked from level 1, four 1 GiB blocks — the low GiB (the `virt` machine's
//! devices: GIC, UART, …) as Device-nGnRnE, execute-never; GiBs 1..4 (guest RAM from
//! 0x4000_0000) as Normal write-back, inner shareable. Addresses at or above 4 GiB fault
//! (translation fault), which is how a stray pointer shows up in the fault record.

/// MAIR_EL1: attribute 0 = Device-nGnRnE, attribute 1 = Normal, inner/outer write-back
/// read/write-allocate.
pub const MAIR: u64 = 0xff << 8;
/// TCR_EL1: T0SZ = 32, inner/outer write-back walks, inner shareable, 4 KiB granule, no TTBR1
/// walks (EPD1), 32-bit physical addresses.
pub const TCR: u64 = 32 | (1 << 8) | (1 << 10) | (3 << 12) | (1 << 23);
/// SCTLR_EL1 bits the entry sets: M (MMU), C (data cache), I (instruction cache).
pub const SCTLR_SET: u64 = (1 << 0) | (1 << 2) | (1 << 12);

const BLOCK: u64 = 0b01;
const ATTR_DEVICE: u64 = 0 << 2;
const ATTR_NORMAL: u64 = 1 << 2;
const INNER_SHAREABLE: u64 = 3 << 8;
const ACCESS_FLAG: u64 = 1 << 10;
const PXN: u64 = 1 << 53;
const UXN: u64 = 1 << 54;

/// A level-1 translation table (only the first four entries are used with T0SZ = 32).
#[repr(C, align(4096))]
pub struct PageTable(pub [u64; 512]);

const fn identity_l1() -> PageTable {
    let mut t = [0u64; 512];
    t[0] = BLOCK | ATTR_DEVICE | ACCESS_FLAG | PXN | UXN;
    let mut i = 1;
    while i < 4 {
        t[i] = ((i as u64) << 30) | BLOCK | ATTR_NORMAL | INNER_SHAREABLE | ACCESS_FLAG;
        i += 1;
    }
    PageTable(t)
}

/// The table TTBR0_EL1 points at (read-only data: the walker never writes it, AF is preset).
#[no_mangle]
pub static PTO_L1_TABLE: PageTable = identity_l1();
