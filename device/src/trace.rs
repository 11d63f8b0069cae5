//! Run-trace collection: records into the trace region the launch descriptor names.
//!
//! A [`Tracer`] is off (level 0, no region) unless the launch carries a valid trace region; every
//! hook first checks [`Tracer::level`], a field of the tracer, so an untraced run pays one
//! compare per hook and writes no byte. A record claims its index with one atomic add on its
//! section's cursor; an index past the section's capacity is counted as dropped instead.

use core::sync::atomic::Ordering;

use pto_abi::consts::LANE_COUNT;
use pto_abi::trace::{record_size, TraceHeader, MAX_TRACE_LEVEL, TRACE_KIND_COUNT, TRACE_MAGIC};
use zerocopy::IntoBytes;

use crate::sync::atomic_u64;

/// Why a launch's trace region was refused (the run then goes untraced).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceRegionError {
    /// The header's magic is not `TRACE_MAGIC`.
    BadMagic,
    /// The header's level differs from the descriptor's or exceeds `MAX_TRACE_LEVEL`.
    BadLevel,
    /// A section of this kind lies outside the region or is misaligned.
    BadSection(u32),
}

/// Where one kind's records go (copied from the validated header at attach time).
#[derive(Clone, Copy, Debug, Default)]
struct Section {
    offset: u64,
    capacity: u64,
}

/// The trace collector of one AICPU thread.
#[derive(Clone, Copy, Debug)]
pub struct Tracer {
    base: *mut u8,
    level: u32,
    sections: [Section; TRACE_KIND_COUNT],
}

// SAFETY: a `Tracer` is a device address and copied bounds; records are claimed atomically and
// each claimed record has one writer.
unsafe impl Send for Tracer {}
// SAFETY: as for `Send`.
unsafe impl Sync for Tracer {}

impl Default for Tracer {
    fn default() -> Self {
        Tracer::OFF
    }
}

impl Tracer {
    /// The tracer of an untraced run.
    pub const OFF: Tracer = Tracer {
        base: core::ptr::null_mut(),
        level: 0,
        sections: [Section { offset: 0, capacity: 0 }; TRACE_KIND_COUNT],
    };

    /// Attaches the trace region at `base` of `bytes` bytes for a run at `level`; level 0 or a
    /// null base gives [`Tracer::OFF`].
    ///
    /// # Safety
    /// A non-null `base` is `bytes` bytes of device memory, 64-aligned, reserved for this run's
    /// trace for the whole launch.
    pub unsafe fn attach(base: *mut u8, bytes: u64, level: u32) -> Result<Tracer, TraceRegionError> {
        if level == 0 || base.is_null() {
            return Ok(Tracer::OFF);
        }
        let head = core::mem::size_of::<TraceHeader>() as u64;
        if bytes < head || base as usize % 64 != 0 {
            return Err(TraceRegionError::BadSection(u32::MAX));
        }
        // SAFETY: the region holds at least a header (checked above), per the caller.
        let h = unsafe { core::ptr::read_volatile(base as *const TraceHeader) };
        if h.magic != TRACE_MAGIC {
            return Err(TraceRegionError::BadMagic);
        }
        if h.level != level || level > MAX_TRACE_LEVEL {
            return Err(TraceRegionError::BadLevel);
        }
        let mut sections = [Section::default(); TRACE_KIND_COUNT];
        for (k, (s, hs)) in sections.iter_mut().zip(h.sections.iter()).enumerate() {
            let end = hs.capacity.checked_mul(record_size(k as u32)).and_then(|b| b.checked_add(hs.offset));
            if hs.capacity != 0 && (hs.offset < head || hs.offset % 8 != 0 || end.is_none_or(|e| e > bytes)) {
                return Err(TraceRegionError::BadSection(k as u32));
            }
            *s = Section { offset: hs.offset, capacity: hs.capacity };
        }
        Ok(Tracer { base, level, sections })
    }

    /// The run's trace level (0 = off).
    #[inline(always)]
    pub fn level(&self) -> u32 {
        self.level
    }

    /// True when records of level `level` are collected.
    #[inline(always)]
    pub fn on(&self, level: u32) -> bool {
        self.level >= level
    }

    fn header(&self) -> *mut TraceHeader {
        self.base as *mut TraceHeader
    }

    /// Writes the run's start time into the header.
    pub fn set_epoch(&self, now_ns: u64) {
        if self.level == 0 {
            return;
        }
        // SAFETY: the header of an attached region; written by the orchestrator thread only.
        unsafe { atomic_u64(core::ptr::addr_of_mut!((*self.header()).epoch_ns)) }.store(now_ns, Ordering::Relaxed);
    }

    /// Records `rec` in section `kind`, or counts it dropped when the section is full.
    pub fn record<T: IntoBytes + zerocopy::Immutable>(&self, kind: u32, rec: &T) {
        let k = kind as usize;
        if self.level == 0 || k >= TRACE_KIND_COUNT || core::mem::size_of::<T>() as u64 != record_size(kind) {
            return;
        }
        let s = self.sections[k];
        // SAFETY: the section header of an attached region; its counters are only used atomically.
        let (cursor, dropped) = unsafe {
            let sec = core::ptr::addr_of_mut!((*self.header()).sections[k]);
            (atomic_u64(core::ptr::addr_of_mut!((*sec).cursor)), atomic_u64(core::ptr::addr_of_mut!((*sec).dropped)))
        };
        let idx = cursor.fetch_add(1, Ordering::Relaxed);
        if idx >= s.capacity {
            dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let at = s.offset + idx * record_size(kind);
        let bytes = rec.as_bytes();
        // SAFETY: `at + size` lies inside the region (checked at attach); the index was claimed by
        // this call alone. Records are written bytewise, so no alignment is assumed.
        unsafe {
            let dst = self.base.add(at as usize);
            for (i, b) in bytes.iter().enumerate() {
                core::ptr::write_volatile(dst.add(i), *b);
            }
        }
    }
}

/// Func id per lane of a task's kernels, `u32::MAX` for lanes outside `mask`.
#[inline]
pub fn lane_funcs(kernels: &[i32], mask: u32) -> [u32; LANE_COUNT] {
    core::array::from_fn(
        |l| if mask & (1 << l) != 0 { kernels.get(l).map_or(u32::MAX, |k| *k as u32) } else { u32::MAX },
    )
}
