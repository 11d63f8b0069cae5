//! `ArenaSizingKey`: the input that defines an arena layout, its validation and its cache-key bytes.

use core::fmt;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::consts::RING_COUNT;

/// Default task window of every ring.
pub const DEFAULT_TASK_WINDOW: u64 = 16_384;
/// Default heap size of every ring (256 MiB).
pub const DEFAULT_HEAP_SIZE: u64 = 256 << 20;
/// Default dep-list pool capacity of every ring.
pub const DEFAULT_DEP_POOL_CAPACITY: u32 = 16_384;

/// Smallest legal task window.
pub const MIN_TASK_WINDOW: u64 = 4;
/// Largest legal task window, and largest legal sum of the four windows.
pub const MAX_TASK_WINDOW: u64 = (1 << 31) - 1;
/// Smallest legal ring heap; every ring heap is also a multiple of this.
pub const HEAP_GRANULE: u64 = 1024;
/// Smallest legal dep-pool capacity.
pub const MIN_DEP_POOL_CAPACITY: u32 = 4;
/// Largest legal dep-pool capacity.
pub const MAX_DEP_POOL_CAPACITY: u32 = (1 << 31) - 1;

/// Length of [`ArenaSizingKey::to_key_bytes`].
pub const SIZING_KEY_BYTES: usize = core::mem::size_of::<ArenaSizingKey>();

/// The sizing of the four task rings. Plain data: equal keys give equal layouts.
///
/// Rules ([`ArenaSizingKey::validate`]; an invalid key is a [`SizingError`] naming the field, the
/// ring, the value and the rule), per ring r:
///
/// | field | default | valid |
/// |---|---|---|
/// | `task_window_sizes[r]` | 16,384 | power of two in `4 ..= 2^31-1`; the four sum to at most `2^31-1` |
/// | `heap_sizes[r]` | 256 MiB | at least 1024 and a multiple of 1024 (ring heaps lie back to back, so a non-multiple misaligns every later ring); the sum does not overflow |
/// | `dep_pool_capacities[r]` | 16,384 | `4 ..= 2^31-1` |
///
/// [`ArenaSizingKey::to_key_bytes`] serialises it to a fixed little-endian byte string, the key of
/// the host's image cache.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct ArenaSizingKey {
    /// Task window (slots) of each ring; a power of two.
    pub task_window_sizes: [u64; RING_COUNT],
    /// Output heap bytes of each ring; a multiple of 1024.
    pub heap_sizes: [u64; RING_COUNT],
    /// Dep-list pool nodes of each ring.
    pub dep_pool_capacities: [u32; RING_COUNT],
}

impl Default for ArenaSizingKey {
    fn default() -> Self {
        ArenaSizingKey {
            task_window_sizes: [DEFAULT_TASK_WINDOW; RING_COUNT],
            heap_sizes: [DEFAULT_HEAP_SIZE; RING_COUNT],
            dep_pool_capacities: [DEFAULT_DEP_POOL_CAPACITY; RING_COUNT],
        }
    }
}

/// Which field of an [`ArenaSizingKey`] a [`SizingError`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SizingField {
    /// `task_window_sizes`
    TaskWindow,
    /// `heap_sizes`
    HeapSize,
    /// `dep_pool_capacities`
    DepPoolCapacity,
}

impl SizingField {
    /// The field's name as written in the struct.
    pub const fn name(self) -> &'static str {
        match self {
            SizingField::TaskWindow => "task_window_sizes",
            SizingField::HeapSize => "heap_sizes",
            SizingField::DepPoolCapacity => "dep_pool_capacities",
        }
    }
}

/// The rule a rejected sizing value breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SizingRule {
    /// The value must be a power of two.
    PowerOfTwo,
    /// The value must lie in `min ..= max`.
    Range {
        /// Smallest legal value.
        min: u64,
        /// Largest legal value.
        max: u64,
    },
    /// The value must be a multiple of `granule`.
    MultipleOf {
        /// Required granule.
        granule: u64,
    },
    /// The sum over all rings must not exceed `max` (or must not overflow 64 bits).
    SumAtMost {
        /// Largest legal sum.
        max: u64,
    },
}

/// A sizing value that breaks a rule: which field, which ring, which value, which rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SizingError {
    /// The offending field.
    pub field: SizingField,
    /// The ring, or `None` when the rule is about the sum over all rings.
    pub ring: Option<u8>,
    /// The offending value (for sum rules, the sum computed so far, saturated).
    pub value: u64,
    /// The broken rule.
    pub rule: SizingRule,
}

impl fmt::Display for SizingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ring {
            Some(r) => write!(f, "{}[{}] = {}: ", self.field.name(), r, self.value)?,
            None => write!(f, "sum of {} = {}: ", self.field.name(), self.value)?,
        }
        match self.rule {
            SizingRule::PowerOfTwo => write!(f, "must be a power of two"),
            SizingRule::Range { min, max } => write!(f, "must be in {min} ..= {max}"),
            SizingRule::MultipleOf { granule } => write!(f, "must be a multiple of {granule}"),
            SizingRule::SumAtMost { max } if max == u64::MAX => {
                write!(f, "the sum over all rings overflows 64 bits")
            }
            SizingRule::SumAtMost { max } => write!(f, "the sum over all rings must be at most {max}"),
        }
    }
}

impl ArenaSizingKey {
    /// The same values for every ring.
    pub const fn uniform(task_window: u64, heap_size: u64, dep_pool_capacity: u32) -> Self {
        ArenaSizingKey {
            task_window_sizes: [task_window; RING_COUNT],
            heap_sizes: [heap_size; RING_COUNT],
            dep_pool_capacities: [dep_pool_capacity; RING_COUNT],
        }
    }

    /// The smallest legal key: windows 4, heaps 1024, dep pools 4.
    pub const fn smallest() -> Self {
        Self::uniform(MIN_TASK_WINDOW, HEAP_GRANULE, MIN_DEP_POOL_CAPACITY)
    }

    /// Checks every rule (see [`ArenaSizingKey`]); the first broken rule is returned.
    pub const fn validate(&self) -> Result<(), SizingError> {
        let mut window_sum: u64 = 0;
        let mut heap_sum: u64 = 0;
        let mut r = 0;
        while r < RING_COUNT {
            let ring = Some(r as u8);
            let w = self.task_window_sizes[r];
            if w < MIN_TASK_WINDOW || w > MAX_TASK_WINDOW {
                return Err(SizingError {
                    field: SizingField::TaskWindow,
                    ring,
                    value: w,
                    rule: SizingRule::Range { min: MIN_TASK_WINDOW, max: MAX_TASK_WINDOW },
                });
            }
            if !w.is_power_of_two() {
                return Err(SizingError {
                    field: SizingField::TaskWindow,
                    ring,
                    value: w,
                    rule: SizingRule::PowerOfTwo,
                });
            }
            // Windows are at most 2^31-1 each, so four of them cannot overflow u64.
            window_sum += w;

            let h = self.heap_sizes[r];
            if h < HEAP_GRANULE {
                return Err(SizingError {
                    field: SizingField::HeapSize,
                    ring,
                    value: h,
                    rule: SizingRule::Range { min: HEAP_GRANULE, max: u64::MAX },
                });
            }
            if h % HEAP_GRANULE != 0 {
                return Err(SizingError {
                    field: SizingField::HeapSize,
                    ring,
                    value: h,
                    rule: SizingRule::MultipleOf { granule: HEAP_GRANULE },
                });
            }
            heap_sum = match heap_sum.checked_add(h) {
                Some(s) => s,
                None => {
                    return Err(SizingError {
                        field: SizingField::HeapSize,
                        ring: None,
                        value: u64::MAX,
                        rule: SizingRule::SumAtMost { max: u64::MAX },
                    })
                }
            };

            let d = self.dep_pool_capacities[r];
            if d < MIN_DEP_POOL_CAPACITY || d > MAX_DEP_POOL_CAPACITY {
                return Err(SizingError {
                    field: SizingField::DepPoolCapacity,
                    ring,
                    value: d as u64,
                    rule: SizingRule::Range { min: MIN_DEP_POOL_CAPACITY as u64, max: MAX_DEP_POOL_CAPACITY as u64 },
                });
            }
            r += 1;
        }
        if window_sum > MAX_TASK_WINDOW {
            return Err(SizingError {
                field: SizingField::TaskWindow,
                ring: None,
                value: window_sum,
                rule: SizingRule::SumAtMost { max: MAX_TASK_WINDOW },
            });
        }
        Ok(())
    }

    /// Sum of the four task windows (valid keys only: at most 2^31-1).
    pub const fn total_task_window(&self) -> u64 {
        let mut s = 0u64;
        let mut r = 0;
        while r < RING_COUNT {
            s = s.saturating_add(self.task_window_sizes[r]);
            r += 1;
        }
        s
    }

    /// The fixed little-endian byte encoding used as a cache key: windows, heaps, dep pools.
    pub fn to_key_bytes(&self) -> [u8; SIZING_KEY_BYTES] {
        let mut out = [0u8; SIZING_KEY_BYTES];
        let mut at = 0;
        for w in self.task_window_sizes.iter().chain(self.heap_sizes.iter()) {
            out[at..at + 8].copy_from_slice(&w.to_le_bytes());
            at += 8;
        }
        for d in &self.dep_pool_capacities {
            out[at..at + 4].copy_from_slice(&d.to_le_bytes());
            at += 4;
        }
        out
    }

    /// Decodes [`ArenaSizingKey::to_key_bytes`]; does not validate.
    pub fn from_key_bytes(bytes: &[u8; SIZING_KEY_BYTES]) -> Self {
        let u64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
            u64::from_le_bytes(b)
        };
        let u32_at = |i: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&bytes[64 + i * 4..64 + i * 4 + 4]);
            u32::from_le_bytes(b)
        };
        ArenaSizingKey {
            task_window_sizes: [u64_at(0), u64_at(1), u64_at(2), u64_at(3)],
            heap_sizes: [u64_at(4), u64_at(5), u64_at(6), u64_at(7)],
            dep_pool_capacities: [u32_at(0), u32_at(1), u32_at(2), u32_at(3)],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_of(k: ArenaSizingKey) -> SizingError {
        k.validate().expect_err("key must be rejected")
    }

    #[test]
    fn defaults_and_smallest_are_valid() {
        ArenaSizingKey::default().validate().unwrap();
        ArenaSizingKey::smallest().validate().unwrap();
    }

    #[test]
    fn every_rule_has_a_rejecting_case() {
        let mut k = ArenaSizingKey::default();
        k.task_window_sizes[2] = 3;
        let e = err_of(k);
        assert_eq!((e.field, e.ring, e.value), (SizingField::TaskWindow, Some(2), 3));
        assert!(matches!(e.rule, SizingRule::Range { .. }));

        let mut k = ArenaSizingKey::default();
        k.task_window_sizes[1] = 100;
        let e = err_of(k);
        assert_eq!((e.ring, e.rule), (Some(1), SizingRule::PowerOfTwo));

        let mut k = ArenaSizingKey::default();
        k.task_window_sizes[0] = 1 << 31;
        assert!(matches!(err_of(k).rule, SizingRule::Range { .. }));

        let k = ArenaSizingKey::uniform(1 << 30, 1024, 4);
        let e = err_of(k);
        assert_eq!((e.field, e.ring), (SizingField::TaskWindow, None));
        assert_eq!(e.rule, SizingRule::SumAtMost { max: MAX_TASK_WINDOW });

        let mut k = ArenaSizingKey::default();
        k.heap_sizes[3] = 512;
        let e = err_of(k);
        assert_eq!((e.field, e.ring, e.value), (SizingField::HeapSize, Some(3), 512));

        let mut k = ArenaSizingKey::default();
        k.heap_sizes[1] = 4097;
        let e = err_of(k);
        assert_eq!(e.rule, SizingRule::MultipleOf { granule: 1024 });

        let k = ArenaSizingKey::uniform(4, u64::MAX - 1023, 4);
        let e = err_of(k);
        assert_eq!((e.field, e.ring), (SizingField::HeapSize, None));

        let mut k = ArenaSizingKey::default();
        k.dep_pool_capacities[0] = 3;
        assert_eq!(err_of(k).field, SizingField::DepPoolCapacity);
        let mut k = ArenaSizingKey::default();
        k.dep_pool_capacities[0] = u32::MAX;
        assert_eq!(err_of(k).field, SizingField::DepPoolCapacity);
    }

    #[test]
    fn messages_name_field_ring_value_and_rule() {
        let mut k = ArenaSizingKey::default();
        k.heap_sizes[2] = 1500;
        let msg = std::format!("{}", err_of(k));
        assert_eq!(msg, "heap_sizes[2] = 1500: must be a multiple of 1024");
    }

    #[test]
    fn key_bytes_round_trip_and_are_little_endian() {
        let k = ArenaSizingKey {
            task_window_sizes: [4, 8, 16, 32],
            heap_sizes: [1024, 2048, 3072, 4096],
            dep_pool_capacities: [5, 6, 7, 8],
        };
        let b = k.to_key_bytes();
        assert_eq!(b.len(), 80);
        assert_eq!(&b[0..8], &4u64.to_le_bytes());
        assert_eq!(&b[64..68], &5u32.to_le_bytes());
        assert_eq!(ArenaSizingKey::from_key_bytes(&b), k);
    }
}
