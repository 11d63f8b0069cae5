//! Checked parsing of a `ChipCallable` blob.
//!
//! The device receives blobs from the host, and the host reads blobs from files: both treat the
//! bytes as untrusted. [`ChipCallableView::parse`] checks every count, offset, alignment and range
//! with checked arithmetic and returns a specific [`CallableError`]; it never panics and never
//! reinterprets unchecked bytes (fields are copied out with unaligned reads, so the blob may sit at
//! any address). A view that exists is valid: its accessors only read ranges `parse` checked.

use core::fmt;
use core::mem::offset_of;

use zerocopy::FromBytes;

use super::{
    callable_checksum, ChipCallableHeader, CoreCallableHeader, CALLABLE_CHECKSUM_OFFSET, CALLABLE_FORMAT_VERSION,
    CHILD_ALIGN, CHIP_CALLABLE_MAGIC, CHIP_HEADER_SIZE, CORE_CALLABLE_MAGIC, CORE_CODE_OFFSET, CORE_HEADER_SIZE,
    MAX_CHILDREN, MAX_CHIP_ARGS, MAX_CORE_ARGS, NAME_BYTES,
};
use crate::addr::DevAddr;
use crate::consts::MAX_FUNC_IDS;
use crate::hash::{fnv1a64, FNV1A64_INIT};
use crate::task::TensorDirection;

/// The part of a blob an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobPart {
    /// The whole blob (its total size).
    Blob,
    /// The [`ChipCallableHeader`].
    ChipHeader,
    /// The orchestration bytes.
    Orchestration,
    /// The [`CoreCallableHeader`] of child `n` (index in the header's child table).
    ChildHeader(u32),
    /// The kernel code of child `n`.
    ChildCode(u32),
}

impl fmt::Display for BlobPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlobPart::Blob => f.write_str("blob"),
            BlobPart::ChipHeader => f.write_str("chip header"),
            BlobPart::Orchestration => f.write_str("orchestration bytes"),
            BlobPart::ChildHeader(n) => write!(f, "child {n} header"),
            BlobPart::ChildCode(n) => write!(f, "child {n} code"),
        }
    }
}

/// Which name field an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameField {
    /// `ChipCallableHeader::orchestration_name`.
    Orchestration,
    /// `ChipCallableHeader::config_name`.
    Config,
    /// `CoreCallableHeader::name` of child `n`.
    Child(u32),
}

impl fmt::Display for NameField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameField::Orchestration => f.write_str("orchestration_name"),
            NameField::Config => f.write_str("config_name"),
            NameField::Child(n) => write!(f, "child {n} name"),
        }
    }
}

/// The rule a name field breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    /// No NUL terminator inside the field (names hold at most `NAME_BYTES - 1` bytes).
    NotTerminated,
    /// Nonzero bytes after the terminator.
    JunkAfterTerminator,
    /// The name is not UTF-8.
    NotUtf8,
}

/// Why a blob was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallableError {
    /// The bytes end before `part` does.
    Truncated {
        /// What is cut off.
        part: BlobPart,
        /// Bytes needed.
        needed: u64,
        /// Bytes present.
        available: u64,
    },
    /// The blob is longer than its header's `total_size`.
    TrailingBytes {
        /// `ChipCallableHeader::total_size`.
        total_size: u64,
        /// Bytes present.
        available: u64,
    },
    /// The blob's bytes do not hash to its header's checksum: a byte changed after the blob was
    /// built.
    ChecksumMismatch {
        /// `ChipCallableHeader::checksum` as stored.
        stored: u64,
        /// What the bytes hash to.
        computed: u64,
    },
    /// `total_size` is smaller than the chip header itself.
    TotalSizeTooSmall {
        /// `ChipCallableHeader::total_size`.
        total_size: u64,
    },
    /// Wrong magic value.
    BadMagic {
        /// Which header.
        part: BlobPart,
        /// Value found.
        found: u32,
        /// Value expected.
        expected: u32,
    },
    /// A blob format version this build does not read.
    UnsupportedVersion {
        /// Version found.
        found: u32,
        /// Version supported.
        supported: u32,
    },
    /// An `arg_count` beyond the signature's capacity.
    TooManyArgs {
        /// Which header.
        part: BlobPart,
        /// Count found.
        count: u32,
        /// Most supported.
        max: u32,
    },
    /// A `child_count` beyond the child table's capacity.
    TooManyChildren {
        /// Count found.
        count: u32,
        /// Most supported.
        max: u32,
    },
    /// A signature entry that is not a `TensorDirection`.
    BadDirection {
        /// Which header.
        part: BlobPart,
        /// Argument index.
        arg: u32,
        /// Value found.
        value: u8,
    },
    /// A malformed name field.
    BadName {
        /// Which field.
        field: NameField,
        /// Which rule it breaks.
        rule: NameRule,
    },
    /// A part that does not start on its required alignment.
    Misaligned {
        /// Which part.
        part: BlobPart,
        /// Its offset from the blob start.
        offset: u64,
        /// Required alignment.
        align: u64,
    },
    /// A part that starts before the previous part ends (parts are laid out in order).
    Overlap {
        /// Which part.
        part: BlobPart,
        /// Its offset from the blob start.
        offset: u64,
        /// End of the previous part.
        previous_end: u64,
    },
    /// A part whose range overflows 64 bits or ends past `total_size`.
    OutOfBounds {
        /// Which part.
        part: BlobPart,
        /// Its offset from the blob start.
        offset: u64,
        /// Its size.
        size: u64,
        /// `ChipCallableHeader::total_size`.
        total_size: u64,
    },
    /// A child func id outside the launch descriptor's func-id table.
    FuncIdOutOfRange {
        /// Child index.
        child: u32,
        /// Func id found.
        func_id: u32,
        /// Number of func ids (valid ids are below it).
        max: u32,
    },
    /// Two children with the same func id.
    DuplicateFuncId {
        /// Child index of the second use.
        child: u32,
        /// The func id.
        func_id: u32,
    },
}

impl fmt::Display for CallableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CallableError::Truncated { part, needed, available } => {
                write!(f, "truncated blob: {part} needs {needed} bytes but only {available} are present")
            }
            CallableError::TrailingBytes { total_size, available } => {
                write!(f, "blob has {available} bytes but its header says total_size = {total_size}")
            }
            CallableError::ChecksumMismatch { stored, computed } => write!(
                f,
                "checksum mismatch: the blob's bytes hash to {computed:#018x} but its header says {stored:#018x} \
                 (a byte changed after the blob was built)"
            ),
            CallableError::TotalSizeTooSmall { total_size } => {
                write!(f, "total_size = {total_size} is smaller than the chip header ({CHIP_HEADER_SIZE} bytes)")
            }
            CallableError::BadMagic { part, found, expected } => {
                write!(f, "{part}: magic {found:#010x}, expected {expected:#010x}")
            }
            CallableError::UnsupportedVersion { found, supported } => {
                write!(f, "blob format version {found} is not supported (this build reads version {supported})")
            }
            CallableError::TooManyArgs { part, count, max } => {
                write!(f, "{part}: arg_count = {count} exceeds the supported {max}")
            }
            CallableError::TooManyChildren { count, max } => {
                write!(f, "chip header: child_count = {count} exceeds the supported {max}")
            }
            CallableError::BadDirection { part, arg, value } => {
                write!(f, "{part}: signature[{arg}] = {value} is not a tensor direction (0..=4)")
            }
            CallableError::BadName { field, rule } => match rule {
                NameRule::NotTerminated => {
                    write!(f, "{field}: no NUL terminator within {NAME_BYTES} bytes")
                }
                NameRule::JunkAfterTerminator => write!(f, "{field}: nonzero bytes after the NUL terminator"),
                NameRule::NotUtf8 => write!(f, "{field}: not UTF-8"),
            },
            CallableError::Misaligned { part, offset, align } => {
                write!(f, "{part} at offset {offset:#x} is not {align}-byte aligned")
            }
            CallableError::Overlap { part, offset, previous_end } => {
                write!(f, "{part} at offset {offset:#x} starts before the previous part ends ({previous_end:#x})")
            }
            CallableError::OutOfBounds { part, offset, size, total_size } => write!(
                f,
                "{part} at offset {offset:#x} with {size} bytes runs past the end of the blob (total_size {total_size})"
            ),
            CallableError::FuncIdOutOfRange { child, func_id, max } => {
                write!(f, "child {child}: func id {func_id} is out of range (func ids are 0..{max})")
            }
            CallableError::DuplicateFuncId { child, func_id } => {
                write!(f, "child {child}: func id {func_id} is already used by an earlier child")
            }
        }
    }
}

impl core::error::Error for CallableError {}

/// Copies a `T` out of `bytes` at `offset` (any alignment), or `None` when it does not fit.
fn read_at<T: FromBytes>(bytes: &[u8], offset: usize) -> Option<T> {
    let tail = bytes.get(offset..)?;
    T::read_from_prefix(tail).ok().map(|(value, _)| value)
}

/// `bytes[offset..offset + len]` with overflow-checked bounds.
fn slice_at(bytes: &[u8], offset: u64, len: u64) -> Option<&[u8]> {
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    bytes.get(start..end)
}

/// A NUL-terminated, NUL-padded UTF-8 name field.
fn parse_name(field: NameField, raw: &[u8]) -> Result<&str, CallableError> {
    let bad = |rule| CallableError::BadName { field, rule };
    let len = raw.iter().position(|&b| b == 0).ok_or(bad(NameRule::NotTerminated))?;
    let (name, rest) = raw.split_at(len);
    if rest.iter().any(|&b| b != 0) {
        return Err(bad(NameRule::JunkAfterTerminator));
    }
    core::str::from_utf8(name).map_err(|_| bad(NameRule::NotUtf8))
}

fn check_signature(part: BlobPart, signature: &[u8]) -> Result<(), CallableError> {
    for (arg, &value) in signature.iter().enumerate() {
        if TensorDirection::try_from(u32::from(value)).is_err() {
            return Err(CallableError::BadDirection { part, arg: arg as u32, value });
        }
    }
    Ok(())
}

/// Directions of a signature already checked by [`check_signature`].
fn directions(signature: &[u8]) -> impl Iterator<Item = TensorDirection> + '_ {
    signature.iter().filter_map(|&b| TensorDirection::try_from(u32::from(b)).ok())
}

const CHIP_SIGNATURE: usize = offset_of!(ChipCallableHeader, signature);
const CHIP_ORCH_NAME: usize = offset_of!(ChipCallableHeader, orchestration_name);
const CHIP_CONFIG_NAME: usize = offset_of!(ChipCallableHeader, config_name);
const CHIP_FUNC_IDS: usize = offset_of!(ChipCallableHeader, child_func_ids);
const CHIP_OFFSETS: usize = offset_of!(ChipCallableHeader, child_offsets);
const CORE_SIGNATURE: u64 = offset_of!(CoreCallableHeader, signature) as u64;
const CORE_NAME: u64 = offset_of!(CoreCallableHeader, name) as u64;
/// Offset of `CoreCallableHeader::resolved_addr` inside a child header.
const CORE_RESOLVED_ADDR: u64 = offset_of!(CoreCallableHeader, resolved_addr) as u64;

/// A validated chip callable blob.
#[derive(Clone, Copy, Debug)]
pub struct ChipCallableView<'a> {
    bytes: &'a [u8],
    content_hash: u64,
    arg_count: u32,
    child_count: u32,
    orchestration_offset: u64,
    orchestration_size: u64,
    orchestration_name: &'a str,
    config_name: &'a str,
}

/// One validated child of a blob.
#[derive(Clone, Copy, Debug)]
pub struct ChildView<'a> {
    /// Index in the chip header's child table.
    pub index: u32,
    /// Func id (below `MAX_FUNC_IDS`, unique in the blob).
    pub func_id: u32,
    /// Offset of the child's [`CoreCallableHeader`] from the blob start (64-aligned).
    pub offset: u64,
    /// Offset of the child's kernel code from the blob start (`offset + CORE_CODE_OFFSET`).
    pub code_offset: u64,
    /// `CoreCallableHeader::resolved_addr` as stored in the blob.
    pub resolved_addr: DevAddr,
    /// Kernel name.
    pub name: &'a str,
    /// Raw signature bytes (each a valid `TensorDirection`).
    pub signature: &'a [u8],
    /// Kernel code.
    pub code: &'a [u8],
}

impl<'a> ChildView<'a> {
    /// The kernel's argument directions.
    pub fn directions(&self) -> impl Iterator<Item = TensorDirection> + 'a {
        directions(self.signature)
    }
}

impl<'a> ChipCallableView<'a> {
    /// Checks every field of `bytes` as a chip callable blob of exactly `total_size` bytes.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, CallableError> {
        let available = bytes.len() as u64;
        let truncated_header =
            CallableError::Truncated { part: BlobPart::ChipHeader, needed: CHIP_HEADER_SIZE, available };
        let field_u32 = |offset: usize| read_at::<u32>(bytes, offset).ok_or(truncated_header);
        let field_u64 = |offset: usize| read_at::<u64>(bytes, offset).ok_or(truncated_header);
        if available < CHIP_HEADER_SIZE {
            return Err(truncated_header);
        }

        let magic = field_u32(offset_of!(ChipCallableHeader, magic))?;
        if magic != CHIP_CALLABLE_MAGIC {
            return Err(CallableError::BadMagic {
                part: BlobPart::ChipHeader,
                found: magic,
                expected: CHIP_CALLABLE_MAGIC,
            });
        }
        let version = field_u32(offset_of!(ChipCallableHeader, version))?;
        if version != CALLABLE_FORMAT_VERSION {
            return Err(CallableError::UnsupportedVersion { found: version, supported: CALLABLE_FORMAT_VERSION });
        }
        let arg_count = field_u32(offset_of!(ChipCallableHeader, arg_count))?;
        if arg_count as usize > MAX_CHIP_ARGS {
            return Err(CallableError::TooManyArgs {
                part: BlobPart::ChipHeader,
                count: arg_count,
                max: MAX_CHIP_ARGS as u32,
            });
        }
        let child_count = field_u32(offset_of!(ChipCallableHeader, child_count))?;
        if child_count as usize > MAX_CHILDREN {
            return Err(CallableError::TooManyChildren { count: child_count, max: MAX_CHILDREN as u32 });
        }
        let total_size = field_u64(offset_of!(ChipCallableHeader, total_size))?;
        if total_size < CHIP_HEADER_SIZE {
            return Err(CallableError::TotalSizeTooSmall { total_size });
        }
        if available < total_size {
            return Err(CallableError::Truncated { part: BlobPart::Blob, needed: total_size, available });
        }
        if available > total_size {
            return Err(CallableError::TrailingBytes { total_size, available });
        }
        let stored = field_u64(CALLABLE_CHECKSUM_OFFSET)?;
        let computed = callable_checksum(bytes).ok_or(truncated_header)?;
        if stored != computed {
            return Err(CallableError::ChecksumMismatch { stored, computed });
        }

        let signature = slice_at(bytes, CHIP_SIGNATURE as u64, u64::from(arg_count)).ok_or(truncated_header)?;
        check_signature(BlobPart::ChipHeader, signature)?;
        let name_field = |offset: usize| slice_at(bytes, offset as u64, NAME_BYTES as u64).ok_or(truncated_header);
        let orchestration_name = parse_name(NameField::Orchestration, name_field(CHIP_ORCH_NAME)?)?;
        let config_name = parse_name(NameField::Config, name_field(CHIP_CONFIG_NAME)?)?;

        let orchestration_offset = field_u64(offset_of!(ChipCallableHeader, orchestration_offset))?;
        let orchestration_size = field_u64(offset_of!(ChipCallableHeader, orchestration_size))?;
        let mut previous_end = check_part(
            BlobPart::Orchestration,
            orchestration_offset,
            orchestration_size,
            CHIP_HEADER_SIZE,
            total_size,
        )?;

        let mut func_ids_seen = [0u64; MAX_FUNC_IDS.div_ceil(64)];
        for child in 0..child_count {
            let func_id = field_u32(CHIP_FUNC_IDS + child as usize * 4)?;
            if func_id as usize >= MAX_FUNC_IDS {
                return Err(CallableError::FuncIdOutOfRange { child, func_id, max: MAX_FUNC_IDS as u32 });
            }
            let (word, bit) = (func_id as usize / 64, 1u64 << (func_id % 64));
            if func_ids_seen[word] & bit != 0 {
                return Err(CallableError::DuplicateFuncId { child, func_id });
            }
            func_ids_seen[word] |= bit;

            let offset = field_u64(CHIP_OFFSETS + child as usize * 8)?;
            let header_part = BlobPart::ChildHeader(child);
            check_part(header_part, offset, CORE_CODE_OFFSET, previous_end, total_size)?;
            // In bounds: check_part proved offset + CORE_CODE_OFFSET <= total_size = bytes.len().
            let header = ChildHeaderFields::read(bytes, offset, header_part, total_size)?;
            if header.magic != CORE_CALLABLE_MAGIC {
                return Err(CallableError::BadMagic {
                    part: header_part,
                    found: header.magic,
                    expected: CORE_CALLABLE_MAGIC,
                });
            }
            if header.arg_count as usize > MAX_CORE_ARGS {
                return Err(CallableError::TooManyArgs {
                    part: header_part,
                    count: header.arg_count,
                    max: MAX_CORE_ARGS as u32,
                });
            }
            let oob = CallableError::OutOfBounds { part: header_part, offset, size: CORE_CODE_OFFSET, total_size };
            let signature = slice_at(bytes, offset + CORE_SIGNATURE, u64::from(header.arg_count)).ok_or(oob)?;
            check_signature(header_part, signature)?;
            parse_name(NameField::Child(child), slice_at(bytes, offset + CORE_NAME, NAME_BYTES as u64).ok_or(oob)?)?;
            previous_end = check_part(
                BlobPart::ChildCode(child),
                offset + CORE_CODE_OFFSET,
                header.binary_size,
                offset + CORE_CODE_OFFSET,
                total_size,
            )?;
        }

        Ok(ChipCallableView {
            bytes,
            content_hash: computed,
            arg_count,
            child_count,
            orchestration_offset,
            orchestration_size,
            orchestration_name,
            config_name,
        })
    }

    /// The blob's bytes (`total_size` of them).
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// `ChipCallableHeader::total_size`.
    pub fn total_size(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// Number of chip arguments.
    pub fn arg_count(&self) -> u32 {
        self.arg_count
    }

    /// Raw chip signature bytes (each a valid `TensorDirection`).
    pub fn signature(&self) -> &'a [u8] {
        self.bytes.get(CHIP_SIGNATURE..CHIP_SIGNATURE + self.arg_count as usize).unwrap_or(&[])
    }

    /// The chip arguments' directions.
    pub fn directions(&self) -> impl Iterator<Item = TensorDirection> + 'a {
        directions(self.signature())
    }

    /// Orchestration name.
    pub fn orchestration_name(&self) -> &'a str {
        self.orchestration_name
    }

    /// Config name.
    pub fn config_name(&self) -> &'a str {
        self.config_name
    }

    /// Offset of the orchestration bytes from the blob start.
    pub fn orchestration_offset(&self) -> u64 {
        self.orchestration_offset
    }

    /// The orchestration bytes.
    pub fn orchestration_bytes(&self) -> &'a [u8] {
        slice_at(self.bytes, self.orchestration_offset, self.orchestration_size).unwrap_or(&[])
    }

    /// Number of children.
    pub fn child_count(&self) -> u32 {
        self.child_count
    }

    /// Child `index`, or `None` past the last child.
    pub fn child(&self, index: u32) -> Option<ChildView<'a>> {
        if index >= self.child_count {
            return None;
        }
        let func_id = read_at::<u32>(self.bytes, CHIP_FUNC_IDS + index as usize * 4)?;
        let offset = read_at::<u64>(self.bytes, CHIP_OFFSETS + index as usize * 8)?;
        let header = ChildHeaderFields::read(self.bytes, offset, BlobPart::ChildHeader(index), 0).ok()?;
        let name_raw = slice_at(self.bytes, offset + CORE_NAME, NAME_BYTES as u64)?;
        let name = parse_name(NameField::Child(index), name_raw).ok()?;
        Some(ChildView {
            index,
            func_id,
            offset,
            code_offset: offset + CORE_CODE_OFFSET,
            resolved_addr: header.resolved_addr,
            name,
            signature: slice_at(self.bytes, offset + CORE_SIGNATURE, u64::from(header.arg_count))?,
            code: slice_at(self.bytes, offset + CORE_CODE_OFFSET, header.binary_size)?,
        })
    }

    /// Every child, in table order.
    pub fn children(&self) -> impl Iterator<Item = ChildView<'a>> + '_ {
        (0..self.child_count).filter_map(|i| self.child(i))
    }

    /// The content hash (the dedup key): FNV-1a 64 over the whole blob with the checksum field
    /// read as zero, verified by [`ChipCallableView::parse`] against the stored checksum.
    pub fn content_hash(&self) -> u64 {
        self.content_hash
    }

    /// FNV-1a 64 over the children only (count, then per child its func id, its header with
    /// `resolved_addr` taken as null, and its code): orchestration bytes, names and the chip
    /// signature do not move it, and neither does patching.
    pub fn aicore_image_hash(&self) -> u64 {
        let mut h = fnv1a64(FNV1A64_INIT, &self.child_count.to_le_bytes());
        for child in self.children() {
            h = fnv1a64(h, &child.func_id.to_le_bytes());
            let header = slice_at(self.bytes, child.offset, CORE_HEADER_SIZE).unwrap_or(&[]);
            let (before, rest) = header.split_at(CORE_RESOLVED_ADDR as usize);
            h = fnv1a64(h, before);
            h = fnv1a64(h, &[0u8; 8]);
            h = fnv1a64(h, rest.get(8..).unwrap_or(&[]));
            h = fnv1a64(h, child.code);
        }
        h
    }
}

/// The scalar fields of a child header, copied out.
struct ChildHeaderFields {
    magic: u32,
    arg_count: u32,
    binary_size: u64,
    resolved_addr: DevAddr,
}

impl ChildHeaderFields {
    fn read(bytes: &[u8], offset: u64, part: BlobPart, total_size: u64) -> Result<Self, CallableError> {
        let oob = CallableError::OutOfBounds { part, offset, size: CORE_HEADER_SIZE, total_size };
        let at = |field: usize| usize::try_from(offset).ok().and_then(|o| o.checked_add(field)).ok_or(oob);
        Ok(ChildHeaderFields {
            magic: read_at(bytes, at(offset_of!(CoreCallableHeader, magic))?).ok_or(oob)?,
            arg_count: read_at(bytes, at(offset_of!(CoreCallableHeader, arg_count))?).ok_or(oob)?,
            binary_size: read_at(bytes, at(offset_of!(CoreCallableHeader, binary_size))?).ok_or(oob)?,
            resolved_addr: read_at(bytes, at(offset_of!(CoreCallableHeader, resolved_addr))?).ok_or(oob)?,
        })
    }
}

/// Checks that `part` at `offset` with `size` bytes is 64-aligned, starts at or after
/// `previous_end` and ends inside `total_size`; returns its end.
fn check_part(
    part: BlobPart,
    offset: u64,
    size: u64,
    previous_end: u64,
    total_size: u64,
) -> Result<u64, CallableError> {
    if offset % CHILD_ALIGN != 0 {
        return Err(CallableError::Misaligned { part, offset, align: CHILD_ALIGN });
    }
    if offset < previous_end {
        return Err(CallableError::Overlap { part, offset, previous_end });
    }
    match offset.checked_add(size) {
        Some(end) if end <= total_size => Ok(end),
        _ => Err(CallableError::OutOfBounds { part, offset, size, total_size }),
    }
}
