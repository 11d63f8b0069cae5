//! Compile-time checks that fail the build with a message a reader can act on.
//!
//! A const `panic!` only prints a string, so [`Message`] formats one at compile time (text,
//! decimal and hexadecimal numbers) into a fixed buffer. The golden layout assertions
//! (`abi/src/generated/assert_layouts.rs`) call the `golden_*` functions, one per size, alignment,
//! field offset and for the fingerprint, so drift reads, for example:
//!
//! ```text
//! pto-abi: ABI drift: ImageHeader.image_size is at offset 32, the golden layout says 24. ...
//! ```

/// The command that re-blesses the golden files after a deliberate layout change.
pub const REBLESS_COMMAND: &str =
    "RUSTFLAGS=\"--cfg pto_abi_bless\" PTO_BLESS=1 cargo test -p pto-abi --test abi_golden";

const CAPACITY: usize = 512;

/// A message formatted at compile time; text past the capacity is dropped.
#[derive(Clone, Copy)]
pub(crate) struct Message {
    buf: [u8; CAPACITY],
    len: usize,
}

impl Message {
    /// An empty message.
    pub(crate) const fn new() -> Self {
        Message { buf: [0; CAPACITY], len: 0 }
    }

    /// Appends `s`.
    pub(crate) const fn str(mut self, s: &str) -> Self {
        let bytes = s.as_bytes();
        let mut i = 0;
        // Whole characters only, so the buffer always holds valid UTF-8.
        while i < bytes.len() {
            let width = utf8_width(bytes[i]);
            if self.len + width > CAPACITY || i + width > bytes.len() {
                break;
            }
            let mut k = 0;
            while k < width {
                self.buf[self.len] = bytes[i + k];
                self.len += 1;
                k += 1;
            }
            i += width;
        }
        self
    }

    /// Appends `v` in decimal.
    pub(crate) const fn dec(self, v: u64) -> Self {
        let mut digits = [0u8; 20];
        let mut n = 0;
        let mut rest = v;
        loop {
            digits[digits.len() - 1 - n] = b'0' + (rest % 10) as u8;
            n += 1;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        self.ascii(digits.split_at(digits.len() - n).1)
    }

    /// Appends `v` as `0x` and 16 hexadecimal digits.
    pub(crate) const fn hex(self, v: u64) -> Self {
        let mut digits = *b"0x0000000000000000";
        let mut i = 0;
        while i < 16 {
            let nibble = ((v >> (60 - 4 * i)) & 0xf) as u8;
            digits[2 + i] = if nibble < 10 { b'0' + nibble } else { b'a' + nibble - 10 };
            i += 1;
        }
        self.ascii(&digits)
    }

    const fn ascii(mut self, bytes: &[u8]) -> Self {
        let mut i = 0;
        while i < bytes.len() && self.len < CAPACITY {
            self.buf[self.len] = bytes[i];
            self.len += 1;
            i += 1;
        }
        self
    }

    /// The text so far.
    pub(crate) const fn as_str(&self) -> &str {
        match core::str::from_utf8(self.buf.split_at(self.len).0) {
            Ok(s) => s,
            Err(_) => "pto-abi: message is not UTF-8",
        }
    }

    /// Appends the closing advice: how to re-bless after a deliberate change.
    const fn rebless(self) -> Self {
        self.str(
            ". If the change is deliberate, list every field in ABI_TYPES (abi/src/fingerprint.rs), re-bless with `",
        )
        .str(REBLESS_COMMAND)
        .str("` and review the diff of abi/layout.snapshot")
    }
}

const fn utf8_width(lead: u8) -> usize {
    if lead < 0x80 {
        1
    } else if lead >= 0xf0 {
        4
    } else if lead >= 0xe0 {
        3
    } else {
        2
    }
}

/// The message of a size, alignment or offset that left its golden value.
pub(crate) const fn drift_message(subject: &str, what: &str, found: u64, golden: u64) -> Message {
    Message::new()
        .str("pto-abi: ABI drift: ")
        .str(subject)
        .str(" ")
        .str(what)
        .str(" ")
        .dec(found)
        .str(", the golden layout says ")
        .dec(golden)
        .rebless()
}

/// Fails the build when `size_of::<ty>()` left its golden value.
#[cfg_attr(pto_abi_bless, allow(dead_code))]
pub(crate) const fn golden_size(ty: &str, found: usize, golden: usize) {
    if found != golden {
        panic!("{}", drift_message(ty, "is now (bytes)", found as u64, golden as u64).as_str());
    }
}

/// Fails the build when `align_of::<ty>()` left its golden value.
#[cfg_attr(pto_abi_bless, allow(dead_code))]
pub(crate) const fn golden_align(ty: &str, found: usize, golden: usize) {
    if found != golden {
        panic!("{}", drift_message(ty, "is now aligned to", found as u64, golden as u64).as_str());
    }
}

/// Fails the build when `offset_of!(ty, field)` left its golden value.
#[cfg_attr(pto_abi_bless, allow(dead_code))]
pub(crate) const fn golden_offset(ty: &str, field: &str, found: usize, golden: usize) {
    if found != golden {
        let m = Message::new().str(ty).str(".").str(field);
        panic!("{}", drift_message(m.as_str(), "is at offset", found as u64, golden as u64).as_str());
    }
}

/// Fails the build when the fingerprint left its golden value (alone, when every struct kept its
/// offsets: a capacity or magic value, `ABI_VERSION` or a field's size changed).
#[cfg_attr(pto_abi_bless, allow(dead_code))]
pub(crate) const fn golden_fingerprint(found: u64, golden: u64) {
    if found != golden {
        let m = Message::new()
            .str("pto-abi: ABI drift: ABI_FINGERPRINT is ")
            .hex(found)
            .str(", the golden files say ")
            .hex(golden)
            .str(" (it covers ABI_VERSION, every size, alignment, field offset and field size in ABI_TYPES and every value in ABI_CAPACITIES)")
            .rebless();
        panic!("{}", m.as_str());
    }
}

/// `assert_layout!(module::Type, size = N, align = A);` fails the build when the size or the
/// alignment of `crate::module::Type` left its golden value.
#[cfg_attr(pto_abi_bless, allow(unused_macros))]
macro_rules! assert_layout {
    ($m:ident :: $t:ident, size = $size:literal, align = $align:literal) => {
        const _: () = $crate::drift::golden_size(stringify!($t), core::mem::size_of::<$crate::$m::$t>(), $size);
        const _: () = $crate::drift::golden_align(stringify!($t), core::mem::align_of::<$crate::$m::$t>(), $align);
    };
}

/// `assert_offset!(module::Type.field == N);` fails the build when the offset of `field` in
/// `crate::module::Type` left its golden value.
#[cfg_attr(pto_abi_bless, allow(unused_macros))]
macro_rules! assert_offset {
    ($m:ident :: $t:ident . $f:tt == $golden:literal) => {
        const _: () = $crate::drift::golden_offset(
            stringify!($t),
            stringify!($f),
            core::mem::offset_of!($crate::$m::$t, $f),
            $golden,
        );
    };
}

/// `assert_fingerprint!(fingerprint::ABI_FINGERPRINT == N);` fails the build when the fingerprint
/// is not `N`.
#[cfg_attr(pto_abi_bless, allow(unused_macros))]
macro_rules! assert_fingerprint {
    ($m:ident :: $c:ident == $golden:literal) => {
        const _: () = $crate::drift::golden_fingerprint($crate::$m::$c, $golden);
    };
}

#[cfg_attr(pto_abi_bless, allow(unused_imports))]
pub(crate) use {assert_fingerprint, assert_layout, assert_offset};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_numbers_and_text() {
        let m = Message::new()
            .str("a ")
            .dec(0)
            .str(" ")
            .dec(1234567890123)
            .str(" ")
            .hex(0xdead_beef)
            .str(" ")
            .dec(u64::MAX);
        assert_eq!(m.as_str(), "a 0 1234567890123 0x00000000deadbeef 18446744073709551615");
    }

    #[test]
    fn drops_whole_characters_past_the_capacity() {
        let mut m = Message::new();
        for _ in 0..CAPACITY {
            m = m.str("é");
        }
        assert_eq!(m.as_str().chars().count(), CAPACITY / 2);
    }

    #[test]
    fn drift_names_subject_found_golden_and_the_command() {
        let m = drift_message("ImageHeader.image_size", "is at offset", 32, 24);
        let s = m.as_str();
        assert!(s.starts_with("pto-abi: ABI drift: ImageHeader.image_size is at offset 32, the golden layout says 24."));
        assert!(s.contains(REBLESS_COMMAND), "{s}");
        assert!(s.len() < CAPACITY, "the message fits: {s}");
    }
}
