//! `BootError`: a boot failure as a code plus the values that explain it, and its wording.

use core::fmt;

use pto_abi::error::BootErrorCode;

/// Why a boot failed: the code, the field or region concerned, and the values compared.
///
/// The device copies it into the launch's `BootReport`; the host reads it back and prints it with
/// [`write_boot_error`], so both sides word a failure the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootError {
    /// What failed.
    pub code: BootErrorCode,
    /// The field or region concerned (e.g. `ring_heaps[2]`, `sm`, `image header`).
    pub subject: &'static str,
    /// The value the firmware required.
    pub expected: u64,
    /// The value it found.
    pub found: u64,
    /// A second bound when the rule is a range (the end of the region a pointer must lie in).
    pub limit: u64,
}

impl BootError {
    /// A failure of `code` about `subject`: `expected` was required, `found` was seen.
    pub const fn new(code: BootErrorCode, subject: &'static str, expected: u64, found: u64) -> Self {
        BootError { code, subject, expected, found, limit: 0 }
    }

    /// Same as [`BootError::new`] with a range `[expected, limit)` that `found` should lie in.
    pub const fn out_of_range(code: BootErrorCode, subject: &'static str, lo: u64, hi: u64, found: u64) -> Self {
        BootError { code, subject, expected: lo, found, limit: hi }
    }
}

impl fmt::Display for BootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_boot_error(f, self.code, self.subject, self.expected, self.found, self.limit)
    }
}

/// Words a boot failure: the code's name, then what was expected and what was found.
pub fn write_boot_error(
    out: &mut dyn fmt::Write,
    code: BootErrorCode,
    subject: &str,
    expected: u64,
    found: u64,
    limit: u64,
) -> fmt::Result {
    write!(out, "{}: ", code.name())?;
    match code {
        BootErrorCode::BadLaunchDescriptor => {
            write!(out, "launch descriptor {subject} is {found:#018x}, firmware expects {expected:#018x}")
        }
        BootErrorCode::BadMagic => {
            write!(out, "image magic is {found:#018x}, expected {expected:#018x} (\"PTOIMAGE\")")
        }
        BootErrorCode::UnsupportedVersion => {
            write!(out, "image built for ABI version {found} but firmware supports version {expected}")
        }
        BootErrorCode::FingerprintMismatch => {
            write!(out, "{subject} built with ABI fingerprint {found:#018x} but firmware expects {expected:#018x}")
        }
        BootErrorCode::ImageTruncated => {
            write!(out, "{subject} needs {expected} bytes but only {found} bytes are present")
        }
        BootErrorCode::ImageLargerThanRegion => {
            write!(out, "{subject} of {found} bytes does not fit the arena region of {expected} bytes")
        }
        BootErrorCode::MisalignedBase => {
            write!(out, "{subject} base {found:#x} is not {expected}-byte aligned")
        }
        BootErrorCode::NullBase => write!(out, "{subject} base is null"),
        BootErrorCode::HeaderSizeMismatch => {
            write!(out, "image header is {found} bytes but firmware's is {expected} bytes")
        }
        BootErrorCode::LayoutMismatch => {
            write!(out, "stored layout value {subject} is {found:#x} but the stored sizing gives {expected:#x}")
        }
        BootErrorCode::InvalidSizing => {
            write!(out, "stored sizing {subject}[ring {expected}] = {found} breaks a sizing rule")
        }
        BootErrorCode::SmRegionTooSmall => {
            write!(out, "SM region is {found} bytes but the layout needs {expected}")
        }
        BootErrorCode::HeapRegionTooSmall => {
            write!(out, "GM heap region is {found} bytes but the layout needs {expected}")
        }
        BootErrorCode::BadRuntimeHeader => {
            write!(out, "runtime header {subject} is {found:#018x}, expected {expected:#018x}")
        }
        BootErrorCode::PointerAuditFailed => {
            write!(out, "runtime pointer {subject} = {found:#x} lies outside its region [{expected:#x}, {limit:#x})")
        }
        BootErrorCode::BadLaunchParameters => {
            write!(out, "launch parameter {subject} = {found} exceeds the supported {expected}")
        }
        BootErrorCode::BadTraceRegion => {
            write!(out, "trace region {subject} is {found:#x}, the rule needs {expected:#x}")?;
            if limit != 0 {
                write!(out, " (limit {limit:#x})")?;
            }
            Ok(())
        }
        BootErrorCode::ImageChecksumMismatch => write!(
            out,
            "{subject} bytes hash to {found:#018x} but its header's checksum is {expected:#018x}: a byte changed \
             after the image was built (a corrupted copy or file)"
        ),
    }
}
