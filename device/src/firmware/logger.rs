//! The defmt global logger: each vCPU encodes its frame into a buffer of its own, then appends the
//! whole frame to the log ring (`pto_abi::emu::EmuLogHeader`) under a short lock. A frame that
//! does not fit (ring full, frame longer than the buffer, lock not won within a bounded spin, a
//! log from inside a log) is dropped and counted in `dropped_frames`; the device never waits for
//! the host.

use core::cell::UnsafeCell;
use core::ptr::{addr_of_mut, write_volatile};
use core::sync::atomic::Ordering;

use pto_abi::emu::{EMU_LOG_DATA_OFFSET, EMU_LOG_MAGIC};

use super::layout::{self, VCPUS};
use super::shared::{log_header, vcpu, word64};

/// Bytes one encoded frame may take.
const FRAME_BYTES: usize = 512;
/// Lock attempts before a frame is dropped instead.
const LOCK_SPINS: u32 = 1 << 20;

struct FrameBuf {
    depth: u32,
    len: usize,
    overflow: bool,
    encoder: defmt::Encoder,
    bytes: [u8; FRAME_BYTES],
}

/// Appends encoded bytes to a frame buffer, or marks it overflowed.
fn sink(buf: &mut [u8; FRAME_BYTES], len: &mut usize, overflow: &mut bool, b: &[u8]) {
    match buf.get_mut(*len..*len + b.len()) {
        Some(dst) if !*overflow => {
            dst.copy_from_slice(b);
            *len += b.len();
        }
        _ => *overflow = true,
    }
}

struct PerVcpu(UnsafeCell<[FrameBuf; VCPUS]>);

// SAFETY: vCPU `i` touches only element `i` (indexed by its own MPIDR), so no element is shared.
unsafe impl Sync for PerVcpu {}

const EMPTY: FrameBuf =
    FrameBuf { depth: 0, len: 0, overflow: false, encoder: defmt::Encoder::new(), bytes: [0; FRAME_BYTES] };
static FRAMES: PerVcpu = PerVcpu(UnsafeCell::new([EMPTY; VCPUS]));
static RING_LOCK: spin::Mutex<()> = spin::Mutex::new(());

fn my_frame() -> Option<&'static mut FrameBuf> {
    let v = vcpu() as usize;
    if v >= VCPUS {
        return None;
    }
    // SAFETY: element `v` belongs to the calling vCPU alone (see `PerVcpu`), and the logger's
    // acquire/write/release run one at a time on a vCPU (nested calls only bump `depth`).
    Some(unsafe { &mut (*FRAMES.0.get())[v] })
}

fn capacity() -> u64 {
    layout::LOG_RING_SIZE - EMU_LOG_DATA_OFFSET
}

/// Resets the firmware's words of the log header; vCPU 0, at boot, before `ready`.
pub fn init() {
    let h = log_header();
    // SAFETY: aligned u64 fields of the log header; no other vCPU runs yet.
    unsafe {
        word64(addr_of_mut!((*h).capacity)).store(capacity(), Ordering::Relaxed);
        word64(addr_of_mut!((*h).dropped_frames)).store(0, Ordering::Relaxed);
        word64(addr_of_mut!((*h).written_frames)).store(0, Ordering::Relaxed);
        // The host consumed nothing yet: its `read` is 0 in a fresh file, and `write` starts there.
        let read = word64(addr_of_mut!((*h).read)).load(Ordering::Acquire);
        word64(addr_of_mut!((*h).write)).store(read, Ordering::Relaxed);
        word64(addr_of_mut!((*h).magic)).store(EMU_LOG_MAGIC, Ordering::Release);
    }
}

fn count_drop() {
    let h = log_header();
    // SAFETY: an aligned u64 of the log header; only the holder of RING_LOCK, or a vCPU that
    // failed to get it, writes it — a lost increment under that race only undercounts by one.
    let d = unsafe { word64(addr_of_mut!((*h).dropped_frames)) };
    d.store(d.load(Ordering::Relaxed).wrapping_add(1), Ordering::Release);
}

fn append(frame: &[u8]) {
    let mut guard = None;
    for _ in 0..LOCK_SPINS {
        if let Some(g) = RING_LOCK.try_lock() {
            guard = Some(g);
            break;
        }
        core::hint::spin_loop();
    }
    if guard.is_none() {
        count_drop();
        return;
    }
    let h = log_header();
    // SAFETY: aligned u64 fields of the log header; `write` and the counters are written only
    // under RING_LOCK, which this vCPU holds.
    let (write, read, written) = unsafe {
        (word64(addr_of_mut!((*h).write)), word64(addr_of_mut!((*h).read)), word64(addr_of_mut!((*h).written_frames)))
    };
    let w = write.load(Ordering::Relaxed);
    let r = read.load(Ordering::Acquire);
    let cap = capacity();
    // A host `read` beyond `write` is corrupt: treat the ring as full rather than overwrite.
    let free = if r > w { 0 } else { cap.saturating_sub(w - r) };
    if frame.len() as u64 > free {
        count_drop();
        return;
    }
    let data = (layout::LOG_RING + EMU_LOG_DATA_OFFSET) as usize as *mut u8;
    for (i, &b) in frame.iter().enumerate() {
        let at = (w + i as u64) % cap;
        // SAFETY: `at < cap`: a byte of the ring's data area, which only the lock holder writes
        // and the host reads only below `write`.
        unsafe { write_volatile(data.add(at as usize), b) };
    }
    write.store(w + frame.len() as u64, Ordering::Release);
    written.store(written.load(Ordering::Relaxed).wrapping_add(1), Ordering::Release);
    drop(guard);
}

#[defmt::global_logger]
struct RingLogger;

// SAFETY: acquire/release bracket each frame per vCPU; a nested acquire (a fault while logging)
// does not panic but only deepens `depth`, and its frame is dropped.
unsafe impl defmt::Logger for RingLogger {
    fn acquire() {
        let Some(f) = my_frame() else { return };
        f.depth += 1;
        if f.depth == 1 {
            let FrameBuf { encoder, bytes, len, overflow, .. } = f;
            *len = 0;
            *overflow = false;
            encoder.start_frame(|b| sink(bytes, len, overflow, b));
        }
    }

    unsafe fn flush() {}

    unsafe fn release() {
        let Some(f) = my_frame() else { return };
        if f.depth == 0 {
            return;
        }
        f.depth -= 1;
        if f.depth > 0 {
            count_drop();
            return;
        }
        let FrameBuf { encoder, bytes, len, overflow, .. } = f;
        encoder.end_frame(|b| sink(bytes, len, overflow, b));
        if f.overflow {
            count_drop();
        } else {
            append(&f.bytes[..f.len]);
        }
    }

    unsafe fn write(bytes: &[u8]) {
        let Some(f) = my_frame() else { return };
        if f.depth != 1 {
            return;
        }
        let FrameBuf { encoder, bytes: buf, len, overflow, .. } = f;
        encoder.write(bytes, |b| sink(buf, len, overflow, b));
    }
}

defmt::timestamp!("{=u64:us}", {
    let hz = super::shared::tick_hz().max(1);
    (super::shared::ticks() as u128 * 1_000_000 / hz as u128) as u64
});
