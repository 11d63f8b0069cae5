//! Faults and panics: the first of each is recorded in the control block (claim, fields, then
//! `valid = 1` with Release), the firmware halts (the control core starts no further launch), and
//! the vCPU powers itself off.

use core::fmt::{self, Write};
use core::panic::PanicInfo;
use core::ptr::{addr_of_mut, write_volatile};
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use pto_abi::emu::{EMU_PANIC_FILE_BYTES, EMU_PANIC_MESSAGE_BYTES, EMU_RECORD_VALID};

use super::entry::TrapFrame;
use super::layout::VCPUS;
use super::shared::{fault, panic_record, vcpu, word32, word64};
use super::{psci, uart::Uart, vcpus};

/// Set once any vCPU faulted or panicked: nothing new is started after that.
pub static HALTED: AtomicBool = AtomicBool::new(false);

/// Per vCPU: nonzero while it is handling a panic (a panic inside the handler parks at once).
static PANICKING: [AtomicU32; VCPUS] = [const { AtomicU32::new(0) }; VCPUS];

/// Powers the calling vCPU off for good (a PSCI refusal leaves it in a WFE loop).
pub fn park() -> ! {
    loop {
        psci::cpu_off();
        // SAFETY: waits for an event; no memory effects.
        unsafe { core::arch::asm!("wfe", options(nomem, nostack)) };
    }
}

/// Called by every exception vector with the saved state; records the fault and parks.
///
/// # Safety
/// Called only from the vector table, with `frame` on the vCPU's exception stack.
#[no_mangle]
pub unsafe extern "C" fn pto_trap(frame: &TrapFrame, vector: u64) -> ! {
    let core = vcpu();
    let seq = vcpus::current_launch(core);
    HALTED.store(true, Ordering::Release);
    let r = fault();
    // SAFETY: aligned fields of the control block's fault record; the claim makes this vCPU the
    // only writer of the other fields.
    unsafe {
        if word32(addr_of_mut!((*r).claimed)).compare_exchange(0, 1, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
            write_volatile(addr_of_mut!((*r).core), core);
            write_volatile(addr_of_mut!((*r).vector), vector as u32);
            write_volatile(addr_of_mut!((*r).esr), frame.esr);
            write_volatile(addr_of_mut!((*r).elr), frame.elr);
            write_volatile(addr_of_mut!((*r).far), frame.far);
            write_volatile(addr_of_mut!((*r).spsr), frame.spsr);
            write_volatile(addr_of_mut!((*r).launch_seq), seq);
            word32(addr_of_mut!((*r).valid)).store(EMU_RECORD_VALID, Ordering::Release);
        }
    }
    let _ = writeln!(
        Uart,
        "pto-firmware: vCPU {core} fault: vector {vector} ESR {:#x} ELR {:#x} FAR {:#x} (launch {seq})",
        frame.esr, frame.elr, frame.far
    );
    pto_device::pto_log!(
        error,
        "vCPU {=u32} fault: vector {=u64} ESR {=u64:#x} ELR {=u64:#x} FAR {=u64:#x}",
        core,
        vector,
        frame.esr,
        frame.elr,
        frame.far
    );
    park()
}

/// Bytes formatted into a fixed buffer, cut at its end.
struct Cut<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Write for Cut<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = N - self.len;
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    let core = vcpu();
    if (core as usize) < VCPUS && PANICKING[core as usize].swap(1, Ordering::AcqRel) != 0 {
        park();
    }
    HALTED.store(true, Ordering::Release);
    let seq = vcpus::current_launch(core);
    let mut message = Cut::<EMU_PANIC_MESSAGE_BYTES> { buf: [0; EMU_PANIC_MESSAGE_BYTES], len: 0 };
    let _ = write!(message, "{}", info.message());
    let (file, line, column) = match info.location() {
        Some(l) => (l.file(), l.line(), l.column()),
        None => ("", 0, 0),
    };
    let fb = file.as_bytes();
    let kept = &fb[fb.len().saturating_sub(EMU_PANIC_FILE_BYTES)..];
    let r = panic_record();
    // SAFETY: aligned fields of the control block's panic record; the claim makes this vCPU the
    // only writer of the other fields.
    unsafe {
        if word32(addr_of_mut!((*r).claimed)).compare_exchange(0, 1, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
            write_volatile(addr_of_mut!((*r).core), core);
            write_volatile(addr_of_mut!((*r).line), line);
            write_volatile(addr_of_mut!((*r).column), column);
            word64(addr_of_mut!((*r).launch_seq)).store(seq, Ordering::Relaxed);
            let mut f = [0u8; EMU_PANIC_FILE_BYTES];
            f[..kept.len()].copy_from_slice(kept);
            write_volatile(addr_of_mut!((*r).file), f);
            write_volatile(addr_of_mut!((*r).file_len), kept.len() as u32);
            write_volatile(addr_of_mut!((*r).message), message.buf);
            write_volatile(addr_of_mut!((*r).message_len), message.len as u32);
            word32(addr_of_mut!((*r).valid)).store(EMU_RECORD_VALID, Ordering::Release);
        }
    }
    let text = core::str::from_utf8(&message.buf[..message.len]).unwrap_or("<message cut inside a character>");
    let _ = writeln!(Uart, "pto-firmware: vCPU {core} panicked at {file}:{line}:{column}: {text}");
    pto_device::pto_log!(error, "vCPU {=u32} panicked at {=str}:{=u32}: {=str}", core, file, line, text);
    park()
}
