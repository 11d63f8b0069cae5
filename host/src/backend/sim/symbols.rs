//! The simulated device's name tables: kernel names → Rust kernel functions, orchestration names →
//! orchestration functions. They are what a firmware's name table is on a device that runs its own
//! code: a registered callable names its code, and the device resolves the names here.
//!
//! A real device runs a child's machine code; the simulated device cannot, so a child's binary is a
//! *sim kernel binary* — [`SIM_KERNEL_MAGIC`] followed by the UTF-8 name of a Rust kernel — and
//! the device resolves that name in its kernel table. Orchestrations are named by the callable's
//! orchestration name and resolved in the orchestration table.

use std::collections::BTreeMap;

use pto_abi::callable::NAME_BYTES;
use pto_device::orch::OrchestrationFn;

use crate::backend::{CodeKind, KernelFn};

/// First bytes of a simulated-device kernel binary; the kernel name follows.
pub const SIM_KERNEL_MAGIC: &[u8; 8] = b"PTOSIMK\0";

/// Longest name a table holds (a callable header field keeps one byte for its NUL).
pub const MAX_SYMBOL_LEN: usize = NAME_BYTES - 1;

/// The binary of a simulated-device kernel that runs the Rust kernel registered as `name`.
pub fn sim_kernel_binary(name: &str) -> Vec<u8> {
    let mut binary = Vec::with_capacity(SIM_KERNEL_MAGIC.len() + name.len());
    binary.extend_from_slice(SIM_KERNEL_MAGIC);
    binary.extend_from_slice(name.as_bytes());
    binary
}

/// The kernel name inside a simulated-device kernel binary, or why `binary` is not one.
pub fn sim_kernel_name(binary: &[u8]) -> Result<&str, String> {
    let name = binary.strip_prefix(SIM_KERNEL_MAGIC.as_slice()).ok_or_else(|| {
        let prefix: Vec<u8> = binary.iter().take(SIM_KERNEL_MAGIC.len()).copied().collect();
        format!("not a simulated-device kernel binary (starts with {prefix:02x?}, expected \"PTOSIMK\\0\")")
    })?;
    std::str::from_utf8(name).map_err(|_| "simulated-device kernel binary names a kernel that is not UTF-8".into())
}

/// A definition a table refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SymbolError {
    /// A second definition of a name.
    #[error("{kind} {name:?} is already defined")]
    Duplicate {
        /// Table kind.
        kind: CodeKind,
        /// The name.
        name: String,
    },
    /// A name a callable header cannot hold.
    #[error("{kind} name {name:?} is empty, longer than {max} bytes, or contains NUL")]
    BadName {
        /// Table kind.
        kind: CodeKind,
        /// The name.
        name: String,
        /// Longest legal name.
        max: usize,
    },
}

/// Names → functions of one kind.
#[derive(Clone, Debug)]
pub struct SymbolTable<F> {
    kind: CodeKind,
    entries: BTreeMap<String, F>,
}

impl<F: Copy> SymbolTable<F> {
    /// An empty table of `kind`.
    pub fn new(kind: CodeKind) -> Self {
        SymbolTable { kind, entries: BTreeMap::new() }
    }

    /// Defines `name`; a name is defined once.
    pub fn define(&mut self, name: &str, f: F) -> Result<(), SymbolError> {
        if name.is_empty() || name.len() > MAX_SYMBOL_LEN || name.contains('\0') {
            return Err(SymbolError::BadName { kind: self.kind, name: name.to_owned(), max: MAX_SYMBOL_LEN });
        }
        if self.entries.contains_key(name) {
            return Err(SymbolError::Duplicate { kind: self.kind, name: name.to_owned() });
        }
        self.entries.insert(name.to_owned(), f);
        Ok(())
    }

    /// The function defined as `name`.
    pub fn get(&self, name: &str) -> Option<F> {
        self.entries.get(name).copied()
    }

    /// Every defined name, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }
}

/// The two tables the simulated device resolves callables against.
#[derive(Clone, Debug)]
pub struct Symbols {
    /// Kernel name → Rust kernel.
    pub kernels: SymbolTable<KernelFn>,
    /// Orchestration name → orchestration function.
    pub orchestrations: SymbolTable<OrchestrationFn>,
}

impl Default for Symbols {
    fn default() -> Self {
        Symbols {
            kernels: SymbolTable::new(CodeKind::Kernel),
            orchestrations: SymbolTable::new(CodeKind::Orchestration),
        }
    }
}
