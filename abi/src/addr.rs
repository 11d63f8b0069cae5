//! Device addresses and image offsets: two integer newtypes that can never be mixed up.

use core::fmt;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// An address in the device's address space, stored as a 64-bit integer on every target.
///
/// The host may be x86-64 while the device is aarch64, so a device address is never a Rust
/// pointer, reference or `usize` inside an ABI struct. Zero means "null".
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct DevAddr(pub u64);

impl DevAddr {
    /// The null device address.
    pub const NULL: DevAddr = DevAddr(0);

    /// The raw 64-bit value.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// True when this is the null address.
    pub const fn is_null(self) -> bool {
        self.0 == 0
    }

    /// `self + offset`, or `None` on overflow.
    pub const fn checked_add(self, offset: ImageOffset) -> Option<DevAddr> {
        match self.0.checked_add(offset.0) {
            Some(v) => Some(DevAddr(v)),
            None => None,
        }
    }

    /// `self + bytes`, or `None` on overflow.
    pub const fn checked_add_bytes(self, bytes: u64) -> Option<DevAddr> {
        match self.0.checked_add(bytes) {
            Some(v) => Some(DevAddr(v)),
            None => None,
        }
    }

    /// The offset of `self` from `base`, or `None` when `self` lies below `base`.
    pub const fn offset_from(self, base: DevAddr) -> Option<ImageOffset> {
        match self.0.checked_sub(base.0) {
            Some(v) => Some(ImageOffset(v)),
            None => None,
        }
    }

    /// True when the address is a multiple of `align` (a power of two).
    pub const fn is_aligned(self, align: u64) -> bool {
        self.0 & (align - 1) == 0
    }
}

impl fmt::Debug for DevAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DevAddr({:#x})", self.0)
    }
}

impl fmt::Display for DevAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// A byte offset inside an image or a device region, relative to its base.
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct ImageOffset(pub u64);

impl ImageOffset {
    /// The raw offset in bytes.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// `self + bytes`, or `None` on overflow.
    pub const fn checked_add(self, bytes: u64) -> Option<ImageOffset> {
        match self.0.checked_add(bytes) {
            Some(v) => Some(ImageOffset(v)),
            None => None,
        }
    }
}

impl fmt::Debug for ImageOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ImageOffset({:#x})", self.0)
    }
}

/// Rounds `value` up to a multiple of `align` (a power of two), or `None` on overflow.
pub const fn align_up(value: u64, align: u64) -> Option<u64> {
    debug_assert!(align.is_power_of_two());
    match value.checked_add(align - 1) {
        Some(v) => Some(v & !(align - 1)),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_arithmetic_reports_overflow() {
        assert_eq!(DevAddr(u64::MAX).checked_add(ImageOffset(1)), None);
        assert_eq!(DevAddr(0x1000).checked_add(ImageOffset(0x40)), Some(DevAddr(0x1040)));
        assert_eq!(DevAddr(0x10).offset_from(DevAddr(0x20)), None);
        assert_eq!(DevAddr(0x30).offset_from(DevAddr(0x20)), Some(ImageOffset(0x10)));
        assert_eq!(align_up(u64::MAX, 64), None);
        assert_eq!(align_up(65, 64), Some(128));
        assert_eq!(align_up(64, 64), Some(64));
        assert!(DevAddr(0x400).is_aligned(1024));
        assert!(!DevAddr(0x440).is_aligned(1024));
    }
}
