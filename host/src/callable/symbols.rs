//! Name tables for the simulated device: kernel names → Rust kernel functions, orchestration names
//! → orchestration functions.
//!
//! A real device runs a child's machine code; the simulated device cannot, so a child's binary is a
//! *sim kernel binary* — [`SIM_KERNEL_MAGIC`] followed by the UTF-8 name of a Rust kernel — and
//! registration resolves that name in a [`SymbolTable`]. Orchestrations are named by the blob's
//! `orchestration_name` and resolved the same way. [`SymbolTable`] is generic over the function type,
//! so the runtime plugs its own orchestration function type in as `SymbolTable<ItsFnType>`.

use std::collections::BTreeMap;

use pto_device::kernel::SimKernelFn;

use super::blob::MAX_NAME_LEN;

/// First bytes of a simulated-device kernel binary; the kernel name follows.
pub const SIM_KERNEL_MAGIC: &[u8; 8] = b"PTOSIMK\0";

/// The binary of a simulated-device kernel that runs the Rust kernel registered as `name`.
pub fn sim_kernel_binary(name: &str) -> Vec<u8> {
    let mut binary = Vec::with_capacity(SIM_KERNEL_MAGIC.len() + name.len());
    binary.extend_from_slice(SIM_KERNEL_MAGIC);
    binary.extend_from_slice(name.as_bytes());
    binary
}

/// The kernel name inside a simulated-device kernel binary.
pub fn sim_kernel_name(binary: &[u8]) -> Result<&str, SymbolError> {
    let name = binary.strip_prefix(SIM_KERNEL_MAGIC.as_slice()).ok_or_else(|| SymbolError::NotSimBinary {
        prefix: binary.iter().take(SIM_KERNEL_MAGIC.len()).copied().collect(),
    })?;
    std::str::from_utf8(name).map_err(|_| SymbolError::NameNotUtf8)
}

/// What kind of symbol a table holds (for messages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SymbolKind {
    /// Rust kernel functions.
    Kernel,
    /// Orchestration functions.
    Orchestration,
}

impl std::fmt::Display for SymbolKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SymbolKind::Kernel => "kernel",
            SymbolKind::Orchestration => "orchestration",
        })
    }
}

/// A failed symbol definition or lookup.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SymbolError {
    /// No symbol of that name.
    #[error("unknown {kind} {name:?}: not in the simulated device's {kind} table")]
    Unknown {
        /// Table kind.
        kind: SymbolKind,
        /// The name looked up.
        name: String,
    },
    /// A second definition of a name.
    #[error("{kind} {name:?} is already defined")]
    Duplicate {
        /// Table kind.
        kind: SymbolKind,
        /// The name.
        name: String,
    },
    /// A name a blob header cannot hold.
    #[error("{kind} name {name:?} is empty, longer than {max} bytes, or contains NUL")]
    BadName {
        /// Table kind.
        kind: SymbolKind,
        /// The name.
        name: String,
        /// Longest legal name.
        max: usize,
    },
    /// A child binary that is not a simulated-device kernel binary.
    #[error("not a simulated-device kernel binary (starts with {prefix:02x?}, expected \"PTOSIMK\\0\")")]
    NotSimBinary {
        /// Its first bytes.
        prefix: Vec<u8>,
    },
    /// A sim kernel binary whose name is not UTF-8.
    #[error("simulated-device kernel binary names a kernel that is not UTF-8")]
    NameNotUtf8,
}

/// Names → functions of one kind.
#[derive(Clone, Debug)]
pub struct SymbolTable<F> {
    kind: SymbolKind,
    entries: BTreeMap<String, F>,
}

impl<F: Copy> SymbolTable<F> {
    /// An empty table of `kind`.
    pub fn new(kind: SymbolKind) -> Self {
        SymbolTable { kind, entries: BTreeMap::new() }
    }

    /// Defines `name`; a name is defined once.
    pub fn define(&mut self, name: &str, f: F) -> Result<(), SymbolError> {
        if name.is_empty() || name.len() > MAX_NAME_LEN || name.contains('\0') {
            return Err(SymbolError::BadName { kind: self.kind, name: name.to_owned(), max: MAX_NAME_LEN });
        }
        if self.entries.contains_key(name) {
            return Err(SymbolError::Duplicate { kind: self.kind, name: name.to_owned() });
        }
        self.entries.insert(name.to_owned(), f);
        Ok(())
    }

    /// The function defined as `name`.
    pub fn resolve(&self, name: &str) -> Result<F, SymbolError> {
        self.entries.get(name).copied().ok_or_else(|| SymbolError::Unknown { kind: self.kind, name: name.to_owned() })
    }

    /// Every defined name, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }
}

/// The two tables a simulated device resolves callables against.
#[derive(Clone, Debug)]
pub struct Symbols<O> {
    /// Kernel name → Rust kernel.
    pub kernels: SymbolTable<SimKernelFn>,
    /// Orchestration name → orchestration function.
    pub orchestrations: SymbolTable<O>,
}

impl<O: Copy> Default for Symbols<O> {
    fn default() -> Self {
        Symbols {
            kernels: SymbolTable::new(SymbolKind::Kernel),
            orchestrations: SymbolTable::new(SymbolKind::Orchestration),
        }
    }
}

impl<O: Copy> Symbols<O> {
    /// The kernel a child binary names.
    pub fn resolve_kernel_binary(&self, binary: &[u8]) -> Result<(String, SimKernelFn), SymbolError> {
        let name = sim_kernel_name(binary)?;
        Ok((name.to_owned(), self.kernels.resolve(name)?))
    }
}
