//! Just enough of the `virt` machine's GICv2 for sleeping: each vCPU enables its virtual-timer
//! interrupt (PPI 11, INTID 27) in the distributor and its CPU interface, with PSTATE.I masked so
//! the interrupt is never taken — it only ends a WFI. Then a waiting vCPU can sleep until its
//! timer fires instead of spinning on a host core (`Aarch64Platform::idle`, the control core's idle
//! loop). Without a GICv2 (another `gic-version`), sleeping stays off and waits spin.

use core::ptr::{read_volatile, write_volatile};

use pto_device::platform::aarch64;

const GICD: u64 = 0x0800_0000;
const GICC: u64 = 0x0801_0000;
const GICD_CTLR: u64 = 0x000;
const GICD_ISENABLER0: u64 = 0x100;
const GICD_IPRIORITYR: u64 = 0x400;
const GICD_PIDR2: u64 = 0xFE8;
const GICC_CTLR: u64 = 0x000;
const GICC_PMR: u64 = 0x004;
/// The virtual timer's interrupt on `virt`.
const VTIMER_INTID: u64 = 27;

fn read32(addr: u64) -> u32 {
    // SAFETY: a GIC register in the identity map's device GiB; reads have no side effects.
    unsafe { read_volatile(addr as usize as *const u32) }
}

fn write32(addr: u64, v: u32) {
    // SAFETY: a GIC register in the identity map's device GiB; the writes below only enable the
    // calling vCPU's timer interrupt.
    unsafe { write_volatile(addr as usize as *mut u32, v) }
}

/// True when the distributor is a GICv2 (architecture revision 2 in GICD_PIDR2).
fn is_gicv2() -> bool {
    (read32(GICD + GICD_PIDR2) >> 4) & 0xf == 2
}

/// vCPU 0, at boot: enables the distributor and the calling vCPU's interface, then turns
/// sleeping on. False (and nothing changed) without a GICv2.
pub fn init_boot_cpu() -> bool {
    if !is_gicv2() {
        return false;
    }
    write32(GICD + GICD_CTLR, 1);
    init_this_cpu();
    aarch64::enable_timer_sleep();
    true
}

/// Every other vCPU, first thing: its (banked) timer PPI enable, priority and CPU interface.
pub fn init_this_cpu() {
    if !aarch64::timer_sleep_enabled() && read32(GICD + GICD_CTLR) & 1 == 0 {
        return;
    }
    write32(GICD + GICD_ISENABLER0, 1 << VTIMER_INTID);
    let word = GICD + GICD_IPRIORITYR + (VTIMER_INTID & !3);
    let shift = (VTIMER_INTID & 3) * 8;
    write32(word, (read32(word) & !(0xff << shift)) | (0x80 << shift));
    write32(GICC + GICC_PMR, 0xf0);
    write32(GICC + GICC_CTLR, 1);
}
