//! The three static device regions of a runner (GM heap, SM, runtime arena) and their setup:
//! grow-only reuse, no release while a region fits, and a failing allocation releases all three.

use pto_device::boot::{DeviceRegions, RegionSpan};

use super::allocator::TrackingAllocator;
use crate::backend::BackendError;

/// Which static region.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RegionKind {
    /// The GM heap.
    Heap,
    /// Shared memory.
    Sm,
    /// The runtime arena.
    Arena,
}

impl RegionKind {
    /// Lower-case name for messages.
    pub const fn name(self) -> &'static str {
        match self {
            RegionKind::Heap => "heap",
            RegionKind::Sm => "sm",
            RegionKind::Arena => "arena",
        }
    }
}

/// The committed regions; `None` = not committed (size 0).
#[derive(Debug, Default)]
pub struct StaticArenas {
    slots: [Option<RegionSpan>; 3],
}

/// A failed `setup_static_arena`: every region was released.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("allocating the {region} region of {size} bytes failed ({source}); all static regions were released")]
pub struct StaticArenaError {
    /// The region whose allocation failed.
    pub region: &'static str,
    /// Bytes requested for it.
    pub size: u64,
    /// The backend's error.
    pub source: BackendError,
}

/// What a successful setup did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetupOutcome {
    /// The regions after the call.
    pub regions: DeviceRegions,
    /// True when any region was allocated, re-allocated or released (device bases changed).
    pub changed: bool,
}

const ORDER: [RegionKind; 3] = [RegionKind::Heap, RegionKind::Sm, RegionKind::Arena];

impl StaticArenas {
    /// The committed region of `kind`, if any.
    pub fn get(&self, kind: RegionKind) -> Option<RegionSpan> {
        self.slots[kind as usize]
    }

    /// The three regions (null base and size 0 for an uncommitted one).
    pub fn regions(&self) -> DeviceRegions {
        let span = |k: RegionKind| self.get(k).unwrap_or_default();
        DeviceRegions { arena: span(RegionKind::Arena), sm: span(RegionKind::Sm), heap: span(RegionKind::Heap) }
    }

    /// Ensures each region holds at least the requested bytes, in the order heap, SM, arena.
    ///
    /// A committed region at least as large as its request is kept (grow-only); a larger request
    /// releases it and allocates anew (1024-aligned base); a request of 0 releases it. If any
    /// allocation fails, all three regions are released and their sizes cleared, including those
    /// committed by earlier calls, so no stale base survives an error.
    pub fn setup(
        &mut self,
        alloc: &mut TrackingAllocator,
        heap: u64,
        sm: u64,
        arena: u64,
    ) -> Result<SetupOutcome, StaticArenaError> {
        let requests = [heap, sm, arena];
        let mut changed = false;
        for kind in ORDER {
            let want = requests[kind as usize];
            let slot = &mut self.slots[kind as usize];
            match *slot {
                Some(r) if want != 0 && r.size >= want => continue,
                None if want == 0 => continue,
                _ => {}
            }
            changed = true;
            if let Some(old) = slot.take() {
                // A region that cannot be freed is forgotten by the allocator's caller on finalize;
                // the slot is empty either way.
                let _ = alloc.free(old.base);
            }
            if want == 0 {
                continue;
            }
            match alloc.alloc(want) {
                Ok(base) => self.slots[kind as usize] = Some(RegionSpan::new(base, want)),
                Err(source) => {
                    self.release_all(alloc);
                    return Err(StaticArenaError { region: kind.name(), size: want, source });
                }
            }
        }
        Ok(SetupOutcome { regions: self.regions(), changed })
    }

    /// Releases every committed region and clears its size.
    pub fn release_all(&mut self, alloc: &mut TrackingAllocator) {
        for slot in &mut self.slots {
            if let Some(r) = slot.take() {
                let _ = alloc.free(r.base);
            }
        }
    }
}
