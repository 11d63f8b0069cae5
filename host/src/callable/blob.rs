//! `ChipCallable`: one validated blob holding an orchestration and its child kernels, and the
//! builder that lays it out.
//!
//! Blob layout: the [`ChipCallableHeader`] at offset 0, the orchestration bytes right after it, then
//! each child at the next 64-aligned offset: its [`CoreCallableHeader`], zero padding up to
//! [`CORE_CODE_OFFSET`], its code. `total_size` is rounded up to 64; every gap is zero.

use pto_abi::addr::align_up;
use pto_abi::callable::{
    seal_callable, CallableError, ChipCallableHeader, ChipCallableView, CoreCallableHeader, CALLABLE_FORMAT_VERSION,
    CHILD_ALIGN, CHIP_CALLABLE_MAGIC, CHIP_HEADER_SIZE, CORE_CALLABLE_MAGIC, CORE_CODE_OFFSET, MAX_CHILDREN,
    MAX_CHIP_ARGS, MAX_CORE_ARGS, NAME_BYTES,
};
use pto_abi::consts::MAX_FUNC_IDS;
use pto_abi::task::TensorDirection;
use pto_abi::DevAddr;
use zerocopy::{FromZeros, IntoBytes};

use crate::backend::sim::sim_kernel_binary;

/// Longest name a header field holds (one byte stays for the NUL terminator).
pub const MAX_NAME_LEN: usize = NAME_BYTES - 1;

/// The orchestration part of a chip callable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Orchestration {
    /// Name of the orchestration function (on the simulated device: a name in the orchestration
    /// symbol table).
    pub name: String,
    /// Name of the configuration the orchestration runs with.
    pub config_name: String,
    /// Bytes stored with the orchestration (a task program or configuration data; may be empty).
    pub bytes: Vec<u8>,
}

impl Orchestration {
    /// An orchestration named `name` with no config name and no bytes.
    pub fn named(name: impl Into<String>) -> Self {
        Orchestration { name: name.into(), config_name: String::new(), bytes: Vec::new() }
    }
}

/// One child kernel of a chip callable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoreCallable {
    /// Func id the orchestration submits this kernel under (index into the launch descriptor's
    /// func-id table).
    pub func_id: u32,
    /// Kernel name (descriptive; the binary decides what runs).
    pub name: String,
    /// Argument directions.
    pub signature: Vec<TensorDirection>,
    /// Kernel code (on the simulated device: a sim kernel binary naming a Rust kernel).
    pub binary: Vec<u8>,
}

impl CoreCallable {
    /// A child whose binary is a simulated-device kernel binary naming `kernel`.
    pub fn sim(func_id: u32, kernel: &str, signature: &[TensorDirection]) -> Self {
        CoreCallable {
            func_id,
            name: kernel.to_owned(),
            signature: signature.to_vec(),
            binary: sim_kernel_binary(kernel),
        }
    }
}

/// Which name a [`BuildError`] is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameOwner {
    /// The orchestration name.
    Orchestration,
    /// The config name.
    Config,
    /// The name of the child at this index.
    Child(usize),
}

impl std::fmt::Display for NameOwner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NameOwner::Orchestration => f.write_str("orchestration name"),
            NameOwner::Config => f.write_str("config name"),
            NameOwner::Child(i) => write!(f, "child {i} name"),
        }
    }
}

/// Why [`ChipCallable::build`] refused its input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The chip signature is longer than a blob holds.
    #[error("chip signature has {requested} args; at most {supported} are supported")]
    TooManyArgs {
        /// Args asked for.
        requested: usize,
        /// Most supported.
        supported: usize,
    },
    /// More children than a blob holds.
    #[error("{requested} child kernels requested; at most {supported} are supported")]
    TooManyChildren {
        /// Children asked for.
        requested: usize,
        /// Most supported.
        supported: usize,
    },
    /// A child's signature is longer than a kernel takes.
    #[error("child {child} ({name}): kernel signature has {requested} args; at most {supported} are supported")]
    TooManyKernelArgs {
        /// Child index.
        child: usize,
        /// Child name.
        name: String,
        /// Args asked for.
        requested: usize,
        /// Most supported.
        supported: usize,
    },
    /// A name longer than its header field.
    #[error("{owner} {name:?} is {len} bytes; at most {supported} are supported")]
    NameTooLong {
        /// Which name.
        owner: NameOwner,
        /// The name.
        name: String,
        /// Its length in bytes.
        len: usize,
        /// Longest supported.
        supported: usize,
    },
    /// A name containing a NUL byte.
    #[error("{owner} {name:?} contains a NUL byte")]
    NameHasNul {
        /// Which name.
        owner: NameOwner,
        /// The name.
        name: String,
    },
    /// A func id outside the func-id table.
    #[error("child {child}: func id {func_id} is out of range; {supported} func ids (0..{supported}) are supported")]
    FuncIdOutOfRange {
        /// Child index.
        child: usize,
        /// The func id.
        func_id: u32,
        /// Number of func ids.
        supported: usize,
    },
    /// Two children share a func id.
    #[error("children {first} and {second} both use func id {func_id}")]
    DuplicateFuncId {
        /// The func id.
        func_id: u32,
        /// First child using it.
        first: usize,
        /// Second child using it.
        second: usize,
    },
    /// The blob would be larger than 64 bits can address.
    #[error("blob size overflows 64 bits while placing {part}")]
    SizeOverflow {
        /// What was being placed.
        part: String,
    },
    /// The finished blob failed its own validation (a builder bug, reported instead of panicking).
    #[error("built blob is invalid: {0}")]
    Invalid(#[from] CallableError),
}

/// A validated chip callable blob. Immutable: registering or uploading it never changes its bytes,
/// so its content hash is stable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChipCallable {
    bytes: Vec<u8>,
}

fn check_name(owner: NameOwner, name: &str) -> Result<(), BuildError> {
    if name.as_bytes().contains(&0) {
        return Err(BuildError::NameHasNul { owner, name: name.to_owned() });
    }
    if name.len() > MAX_NAME_LEN {
        return Err(BuildError::NameTooLong { owner, name: name.to_owned(), len: name.len(), supported: MAX_NAME_LEN });
    }
    Ok(())
}

fn name_field(name: &str) -> [u8; NAME_BYTES] {
    let mut field = [0u8; NAME_BYTES];
    field[..name.len()].copy_from_slice(name.as_bytes());
    field
}

fn signature_bytes<const N: usize>(signature: &[TensorDirection]) -> [u8; N] {
    let mut out = [0u8; N];
    for (slot, dir) in out.iter_mut().zip(signature) {
        *slot = *dir as u32 as u8;
    }
    out
}

impl ChipCallable {
    /// Lays out `orchestration` and `children` into one blob with chip signature `signature`.
    pub fn build(
        signature: &[TensorDirection],
        orchestration: &Orchestration,
        children: &[CoreCallable],
    ) -> Result<ChipCallable, BuildError> {
        if signature.len() > MAX_CHIP_ARGS {
            return Err(BuildError::TooManyArgs { requested: signature.len(), supported: MAX_CHIP_ARGS });
        }
        if children.len() > MAX_CHILDREN {
            return Err(BuildError::TooManyChildren { requested: children.len(), supported: MAX_CHILDREN });
        }
        check_name(NameOwner::Orchestration, &orchestration.name)?;
        check_name(NameOwner::Config, &orchestration.config_name)?;
        let mut first_user = vec![usize::MAX; MAX_FUNC_IDS];
        for (i, child) in children.iter().enumerate() {
            check_name(NameOwner::Child(i), &child.name)?;
            if child.signature.len() > MAX_CORE_ARGS {
                return Err(BuildError::TooManyKernelArgs {
                    child: i,
                    name: child.name.clone(),
                    requested: child.signature.len(),
                    supported: MAX_CORE_ARGS,
                });
            }
            let slot = first_user.get_mut(child.func_id as usize).ok_or(BuildError::FuncIdOutOfRange {
                child: i,
                func_id: child.func_id,
                supported: MAX_FUNC_IDS,
            })?;
            if *slot != usize::MAX {
                return Err(BuildError::DuplicateFuncId { func_id: child.func_id, first: *slot, second: i });
            }
            *slot = i;
        }

        // Place every part with checked arithmetic.
        let overflow = |part: String| BuildError::SizeOverflow { part };
        let orch_size = orchestration.bytes.len() as u64;
        let mut cursor = CHIP_HEADER_SIZE.checked_add(orch_size).ok_or_else(|| overflow("orchestration".into()))?;
        let mut child_offsets = Vec::with_capacity(children.len());
        for (i, child) in children.iter().enumerate() {
            let offset = align_up(cursor, CHILD_ALIGN).ok_or_else(|| overflow(format!("child {i}")))?;
            child_offsets.push(offset);
            cursor = offset
                .checked_add(CORE_CODE_OFFSET)
                .and_then(|c| c.checked_add(child.binary.len() as u64))
                .ok_or_else(|| overflow(format!("child {i} code")))?;
        }
        let total_size = align_up(cursor, CHILD_ALIGN).ok_or_else(|| overflow("blob end".into()))?;
        let total = usize::try_from(total_size).map_err(|_| overflow("blob end".into()))?;

        let mut header = ChipCallableHeader::new_zeroed();
        header.magic = CHIP_CALLABLE_MAGIC;
        header.version = CALLABLE_FORMAT_VERSION;
        header.arg_count = signature.len() as u32;
        header.child_count = children.len() as u32;
        header.total_size = total_size;
        header.orchestration_offset = CHIP_HEADER_SIZE;
        header.orchestration_size = orch_size;
        header.signature = signature_bytes(signature);
        header.orchestration_name = name_field(&orchestration.name);
        header.config_name = name_field(&orchestration.config_name);
        for (i, (child, offset)) in children.iter().zip(&child_offsets).enumerate() {
            header.child_func_ids[i] = child.func_id;
            header.child_offsets[i] = *offset;
        }

        let mut bytes = vec![0u8; total];
        let header_end = CHIP_HEADER_SIZE as usize;
        bytes[..header_end].copy_from_slice(header.as_bytes());
        bytes[header_end..header_end + orchestration.bytes.len()].copy_from_slice(&orchestration.bytes);
        for (child, &offset) in children.iter().zip(&child_offsets) {
            let core = CoreCallableHeader {
                magic: CORE_CALLABLE_MAGIC,
                arg_count: child.signature.len() as u32,
                binary_size: child.binary.len() as u64,
                resolved_addr: DevAddr::NULL,
                signature: signature_bytes(&child.signature),
                name: name_field(&child.name),
                reserved: [0; 3],
            };
            let at = offset as usize;
            bytes[at..at + core.as_bytes().len()].copy_from_slice(core.as_bytes());
            let code = at + CORE_CODE_OFFSET as usize;
            bytes[code..code + child.binary.len()].copy_from_slice(&child.binary);
        }
        seal_callable(&mut bytes);
        ChipCallable::from_bytes(bytes).map_err(BuildError::Invalid)
    }

    /// Validates `bytes` as a blob (e.g. read from a file).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<ChipCallable, CallableError> {
        ChipCallableView::parse(&bytes)?;
        Ok(ChipCallable { bytes })
    }

    /// The blob's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The blob's size in bytes.
    pub fn total_size(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// A checked view of the blob.
    pub fn view(&self) -> ChipCallableView<'_> {
        // The bytes were validated at construction and are never mutated.
        ChipCallableView::parse(&self.bytes).expect("a ChipCallable holds a validated blob")
    }

    /// The content hash: FNV-1a 64 over the whole blob with its checksum field read as zero (the
    /// value that field holds).
    pub fn content_hash(&self) -> u64 {
        self.view().content_hash()
    }

    /// FNV-1a 64 over the children only.
    pub fn aicore_image_hash(&self) -> u64 {
        self.view().aicore_image_hash()
    }
}
