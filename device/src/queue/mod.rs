//! Ready queues: where a task waits between becoming ready and being dispatched.
//!
//! One bounded lock-free MPMC queue per resource shape (AIC, AIV, MIX) plus one for
//! dependency-only tasks, all in the arena.

mod ready;

pub use ready::ReadyQueue;

use pto_abi::task::Lane;

/// The resource shape a task needs, which selects its ready queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Shape {
    /// One cube core.
    Aic = 0,
    /// One vector core (either of a cluster's two).
    Aiv = 1,
    /// Several lanes of one cluster at once.
    Mix = 2,
    /// No core at all: completes as soon as it is ready.
    DepOnly = 3,
}

impl Shape {
    /// Every shape, in queue order.
    pub const ALL: [Shape; 4] = [Shape::Aic, Shape::Aiv, Shape::Mix, Shape::DepOnly];

    /// The shape of a lane mask (bit `l` = lane `l` active).
    pub const fn of_lane_mask(mask: u32) -> Shape {
        const AIC: u32 = 1 << Lane::Aic as u32;
        const AIV0: u32 = 1 << Lane::Aiv0 as u32;
        const AIV1: u32 = 1 << Lane::Aiv1 as u32;
        match mask {
            0 => Shape::DepOnly,
            AIC => Shape::Aic,
            AIV0 | AIV1 => Shape::Aiv,
            _ => Shape::Mix,
        }
    }

    /// Index of this shape's queue.
    pub const fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_masks_map_to_shapes() {
        assert_eq!(Shape::of_lane_mask(0), Shape::DepOnly);
        assert_eq!(Shape::of_lane_mask(0b001), Shape::Aic);
        assert_eq!(Shape::of_lane_mask(0b010), Shape::Aiv);
        assert_eq!(Shape::of_lane_mask(0b100), Shape::Aiv);
        assert_eq!(Shape::of_lane_mask(0b110), Shape::Mix);
        assert_eq!(Shape::of_lane_mask(0b011), Shape::Mix);
        assert_eq!(Shape::of_lane_mask(0b111), Shape::Mix);
    }
}
