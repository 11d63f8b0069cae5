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

/// Why a launch's trace region was refused: the field or rule concerned, what it needed and what
/// was found (boot reports it as `BOOT_BAD_TRACE_REGION`, so a traced run never goes untraced
/// silently).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceRegionError {
    /// The launch field or header field concerned (`trace_level`, `trace_base`, `trace magic`,
    /// `trace section edge` …).
    pub subject: &'static str,
    /// The value the rule needs (a bound, an alignment, the expected magic or level).
    pub expected: u64,
    /// The value found.
    pub found: u64,
}

impl TraceRegionError {
    const fn new(subject: &'static str, expected: u64, found: u64) -> Self {
        TraceRegionError { subject, expected, found }
    }
}

/// Subjects of the section checks, by `TRACE_KIND_*`.
const SECTION_SUBJECTS: [&str; TRACE_KIND_COUNT] =
    ["trace section block", "trace section phase", "trace section submit", "trace section edge", "trace section scope"];

/// Checks the trace fields of a launch and, when the level is above 0, the region's header: the
/// level at most `MAX_TRACE_LEVEL`; level 0 with no region; otherwise a non-null 64-aligned base,
/// room for the header without wrapping, the header's magic, level and size equal to the launch's,
/// and every section 8-aligned after the header and inside the region.
///
/// # Safety
/// A non-null `base` at a level above 0 is `bytes` bytes of readable device memory (checked for
/// alignment and size here before anything is read).
pub unsafe fn check_region(base: *const u8, bytes: u64, level: u32) -> Result<(), TraceRegionError> {
    if level > MAX_TRACE_LEVEL {
        return Err(TraceRegionError::new("trace_level", MAX_TRACE_LEVEL as u64, level as u64));
    }
    if level == 0 {
        if !base.is_null() {
            return Err(TraceRegionError::new("trace_base (level 0)", 0, base as u64));
        }
        if bytes != 0 {
            return Err(TraceRegionError::new("trace_bytes (level 0)", 0, bytes));
        }
        return Ok(());
    }
    let head = core::mem::size_of::<TraceHeader>() as u64;
    if base.is_null() || base as usize % 64 != 0 {
        return Err(TraceRegionError::new("trace_base alignment", 64, base as u64));
    }
    if bytes < head {
        return Err(TraceRegionError::new("trace_bytes", head, bytes));
    }
    if (base as u64).checked_add(bytes).is_none() {
        return Err(TraceRegionError::new("trace_bytes (wraps)", u64::MAX - base as u64, bytes));
    }
    // SAFETY: the region holds at least a header (checked above), per the caller.
    let h = unsafe { core::ptr::read_volatile(base as *const TraceHeader) };
    if h.magic != TRACE_MAGIC {
        return Err(TraceRegionError::new("trace magic", TRACE_MAGIC, h.magic));
    }
    if h.level != level {
        return Err(TraceRegionError::new("trace header level", level as u64, h.level as u64));
    }
    if h.region_bytes != bytes {
        return Err(TraceRegionError::new("trace header region_bytes", bytes, h.region_bytes));
    }
    for (k, hs) in h.sections.iter().enumerate() {
        if hs.capacity == 0 {
            continue;
        }
        if hs.offset < head || hs.offset % 8 != 0 {
            return Err(TraceRegionError::new(SECTION_SUBJECTS[k], head, hs.offset));
        }
        let end = hs.capacity.checked_mul(record_size(k as u32)).and_then(|b| b.checked_add(hs.offset));
        match end {
            Some(e) if e <= bytes => {}
            _ => return Err(TraceRegionError::new(SECTION_SUBJECTS[k], bytes, end.unwrap_or(u64::MAX))),
        }
    }
    Ok(())
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

    /// Attaches the trace region at `base` of `bytes` bytes for a run at `level` after the
    /// checks of [`check_region`]; level 0 gives [`Tracer::OFF`].
    ///
    /// # Safety
    /// As for [`check_region`]; the region is reserved for this run's trace for the whole launch.
    pub unsafe fn attach(base: *mut u8, bytes: u64, level: u32) -> Result<Tracer, TraceRegionError> {
        // SAFETY: forwarded.
        unsafe { check_region(base, bytes, level) }?;
        if level == 0 {
            return Ok(Tracer::OFF);
        }
        // SAFETY: the header was checked readable and valid above.
        let h = unsafe { core::ptr::read_volatile(base as *const TraceHeader) };
        let sections =
            core::array::from_fn(|k| Section { offset: h.sections[k].offset, capacity: h.sections[k].capacity });
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
        // this call alone. The base is 64-aligned, section offsets 8-aligned (checked at attach)
        // and every record size a multiple of 8, so the record is written as aligned 8-byte words.
        unsafe {
            let dst = self.base.add(at as usize).cast::<u64>();
            for (i, w) in bytes.chunks_exact(8).enumerate() {
                let mut word = [0u8; 8];
                word.copy_from_slice(w);
                core::ptr::write_volatile(dst.add(i), u64::from_ne_bytes(word));
            }
        }
    }
}

// Every record is a whole number of 8-byte words (`Tracer::record` writes words).
const _: () = {
    let mut k = 0;
    while k < TRACE_KIND_COUNT as u32 {
        assert!(record_size(k) % 8 == 0 && record_size(k) > 0);
        k += 1;
    }
};

/// Func id per lane of a task's kernels, `u32::MAX` for lanes outside `mask`.
#[inline]
pub fn lane_funcs(kernels: &[i32], mask: u32) -> [u32; LANE_COUNT] {
    core::array::from_fn(
        |l| if mask & (1 << l) != 0 { kernels.get(l).map_or(u32::MAX, |k| *k as u32) } else { u32::MAX },
    )
}
