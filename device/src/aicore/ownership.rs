//! Core numbering and which scheduler thread owns which cores.
//!
//! Core `c` is lane `c % 3` of cluster `c / 3` (lane order AIC, AIV0, AIV1). Scheduler `s` of `n`
//! owns whole clusters: cluster `k` belongs to scheduler `k % n`, with its three cores.

use core::fmt;

use pto_abi::consts::{LANE_COUNT, MAX_CLUSTERS, MAX_CORES};
use pto_abi::task::Lane;

const _: () = assert!(MAX_CORES <= 128, "CoreMask is a u128");

/// The core index of `lane` in `cluster`.
#[inline]
pub const fn core_index(cluster: u32, lane: Lane) -> u32 {
    cluster * LANE_COUNT as u32 + lane as u32
}

/// The cluster of a core.
#[inline]
pub const fn cluster_of(core: u32) -> u32 {
    core / LANE_COUNT as u32
}

/// The lane of a core.
#[inline]
pub const fn lane_of(core: u32) -> Lane {
    match core % LANE_COUNT as u32 {
        0 => Lane::Aic,
        1 => Lane::Aiv0,
        _ => Lane::Aiv1,
    }
}

/// The three cores of a cluster: AIC, AIV0, AIV1.
#[inline]
pub const fn cluster_cores(cluster: u32) -> [u32; LANE_COUNT] {
    [core_index(cluster, Lane::Aic), core_index(cluster, Lane::Aiv0), core_index(cluster, Lane::Aiv1)]
}

/// The scheduler (of `sched_count`) that owns a cluster.
#[inline]
pub const fn scheduler_of_cluster(cluster: u32, sched_count: u32) -> u32 {
    cluster % sched_count
}

/// A set of core indices `< MAX_CORES`.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct CoreMask(u128);

impl CoreMask {
    /// No core.
    pub const EMPTY: CoreMask = CoreMask(0);

    /// The set with these raw bits; `None` if a bit at or above `MAX_CORES` is set.
    pub const fn from_bits(bits: u128) -> Option<CoreMask> {
        if MAX_CORES < 128 && bits >> MAX_CORES != 0 {
            return None;
        }
        Some(CoreMask(bits))
    }

    /// The raw bits (bit `c` = core `c`).
    pub const fn bits(self) -> u128 {
        self.0
    }

    /// Every core of clusters `0..clusters` (clusters above `MAX_CLUSTERS` are ignored).
    pub const fn first_clusters(clusters: u32) -> CoreMask {
        let n = if clusters as usize > MAX_CLUSTERS { MAX_CLUSTERS } else { clusters as usize } * LANE_COUNT;
        CoreMask(if n == 0 { 0 } else { u128::MAX >> (128 - n) })
    }

    /// True when `core` is in the set.
    #[inline]
    pub const fn contains(self, core: u32) -> bool {
        core < 128 && self.0 >> core & 1 == 1
    }

    /// Adds `core`; returns false (and changes nothing) when `core >= MAX_CORES`.
    #[inline]
    pub fn insert(&mut self, core: u32) -> bool {
        if core as usize >= MAX_CORES {
            return false;
        }
        self.0 |= 1 << core;
        true
    }

    /// Removes `core` (no effect if absent).
    #[inline]
    pub fn remove(&mut self, core: u32) {
        if core < 128 {
            self.0 &= !(1 << core);
        }
    }

    /// Number of cores in the set.
    #[inline]
    pub const fn len(self) -> u32 {
        self.0.count_ones()
    }

    /// True when the set is empty.
    #[inline]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The cores in increasing order.
    #[inline]
    pub fn iter(self) -> CoreMaskIter {
        CoreMaskIter(self.0)
    }

    /// The cores in both sets.
    #[inline]
    pub const fn and(self, other: CoreMask) -> CoreMask {
        CoreMask(self.0 & other.0)
    }

    /// The cores of `self` not in `other`.
    #[inline]
    pub const fn without(self, other: CoreMask) -> CoreMask {
        CoreMask(self.0 & !other.0)
    }
}

/// Iterator over the cores of a [`CoreMask`], in increasing order.
#[derive(Clone, Debug)]
pub struct CoreMaskIter(u128);

impl Iterator for CoreMaskIter {
    type Item = u32;

    #[inline]
    fn next(&mut self) -> Option<u32> {
        if self.0 == 0 {
            return None;
        }
        let c = self.0.trailing_zeros();
        self.0 &= self.0 - 1;
        Some(c)
    }
}

impl IntoIterator for CoreMask {
    type Item = u32;
    type IntoIter = CoreMaskIter;

    fn into_iter(self) -> CoreMaskIter {
        self.iter()
    }
}

/// Lists the cores, e.g. `cores 3, 4, 5` or `no core`.
impl fmt::Display for CoreMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.len() {
            0 => return f.write_str("no core"),
            1 => f.write_str("core ")?,
            _ => f.write_str("cores ")?,
        }
        for (i, c) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for CoreMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// Scheduler ownership parameters that name no valid assignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnershipError {
    /// `sched_count` is 0.
    NoScheduler,
    /// `sched` is not below `sched_count`.
    SchedulerIndex {
        /// The scheduler index given.
        sched: u32,
        /// The scheduler count given.
        sched_count: u32,
    },
    /// More clusters than the runtime drives.
    TooManyClusters {
        /// The cluster count given.
        clusters: u32,
    },
}

impl fmt::Display for OwnershipError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            OwnershipError::NoScheduler => {
                f.write_str("scheduler count is 0; at least one scheduler must own the cores")
            }
            OwnershipError::SchedulerIndex { sched, sched_count } => {
                write!(f, "scheduler index {sched} is not below the scheduler count {sched_count}")
            }
            OwnershipError::TooManyClusters { clusters } => {
                write!(f, "cluster count {clusters} exceeds the maximum of {MAX_CLUSTERS}")
            }
        }
    }
}

/// The cores scheduler `sched` of `sched_count` owns when `clusters` clusters are driven.
pub fn owned_cores(sched: u32, sched_count: u32, clusters: u32) -> Result<CoreMask, OwnershipError> {
    if sched_count == 0 {
        return Err(OwnershipError::NoScheduler);
    }
    if sched >= sched_count {
        return Err(OwnershipError::SchedulerIndex { sched, sched_count });
    }
    if clusters as usize > MAX_CLUSTERS {
        return Err(OwnershipError::TooManyClusters { clusters });
    }
    let mut mask = CoreMask::EMPTY;
    for cluster in (sched..clusters).step_by(sched_count as usize) {
        for core in cluster_cores(cluster) {
            mask.insert(core);
        }
    }
    Ok(mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedulers_own_whole_clusters_round_robin_and_cover_every_core_once() {
        for n in 1..=3u32 {
            let mut all = CoreMask::EMPTY;
            for s in 0..n {
                let m = owned_cores(s, n, 7).unwrap();
                assert!(all.and(m).is_empty(), "scheduler {s} of {n} shares a core");
                all = CoreMask(all.0 | m.0);
                for c in m {
                    assert_eq!(scheduler_of_cluster(cluster_of(c), n), s);
                    assert!(m.contains(cluster_cores(cluster_of(c))[0]) && m.contains(cluster_cores(cluster_of(c))[2]));
                }
            }
            assert_eq!(all, CoreMask::first_clusters(7));
        }
        assert_eq!(owned_cores(1, 2, 4).unwrap().iter().collect::<std::vec::Vec<_>>(), [3, 4, 5, 9, 10, 11]);
        assert_eq!(owned_cores(0, 0, 4), Err(OwnershipError::NoScheduler));
        assert_eq!(owned_cores(2, 2, 4), Err(OwnershipError::SchedulerIndex { sched: 2, sched_count: 2 }));
        assert_eq!(owned_cores(0, 1, 25), Err(OwnershipError::TooManyClusters { clusters: 25 }));
    }

    #[test]
    fn core_numbering_is_cluster_major_in_lane_order() {
        assert_eq!(cluster_cores(2), [6, 7, 8]);
        assert_eq!((cluster_of(7), lane_of(7)), (2, Lane::Aiv0));
        assert_eq!(core_index(23, Lane::Aiv1) as usize, MAX_CORES - 1);
    }

    #[test]
    fn masks_reject_cores_beyond_the_maximum_and_print_their_members() {
        let mut m = CoreMask::EMPTY;
        assert!(!m.insert(MAX_CORES as u32));
        assert!(m.insert(3) && m.insert(71));
        assert_eq!(std::format!("{m}"), "cores 3, 71");
        m.remove(71);
        assert_eq!(std::format!("{m}"), "core 3");
        assert_eq!(std::format!("{}", CoreMask::EMPTY), "no core");
        assert_eq!(CoreMask::from_bits(1 << MAX_CORES), None);
        assert_eq!(CoreMask::first_clusters(99).len() as usize, MAX_CORES);
    }
}
