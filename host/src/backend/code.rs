//! The code of one run, as the host names it, and where a backend made it resolvable.
//!
//! A run needs two kinds of device code besides the backend's own programs
//! ([`DeviceProgram`](super::DeviceProgram)): one orchestration (run by the last AICPU thread) and
//! the kernels the orchestration submits, by func id (run by the AICore cores). The host names each
//! piece with a [`CodeRef`]; [`DeviceBackend::load_code`](super::DeviceBackend::load_code) turns a
//! [`RunCode`] into device addresses ([`LoadedCode`]): the orchestration entry and one code address
//! per kernel, from which the runner builds the launch descriptor's func-id table
//! ([`func_table`]).
//!
//! How each backend resolves code:
//! * the simulated device runs Rust functions of the host process: a [`CodeRef::Host`] function is
//!   its own code address, and a [`CodeRef::Callable`] is resolved by name in the simulated
//!   device's name tables and placed at the callable's device address; both stay in its code
//!   space while the [`LoadedCode`] lives;
//! * a device that runs its own firmware (an emulated machine, with kernels compiled into the
//!   firmware and a name table) resolves a callable's names in the firmware and answers the
//!   firmware's entry addresses; it refuses [`CodeRef::Host`] with [`CodeError::Unsupported`];
//! * hardware behind the vendor runtime runs a callable's uploaded binaries at their device
//!   addresses as they are.
//!
//! A name a backend cannot resolve is a [`CodeError::Unresolved`] that lists the names it carries.

use std::any::Any;
use std::fmt;

use pto_abi::consts::MAX_FUNC_IDS;
use pto_abi::DevAddr;
use pto_device::orch::OrchestrationFn;

/// A kernel function of the host process (what the simulated device's cores call).
pub type KernelFn = pto_device::kernel::SimKernelFn;

/// How a run names one piece of code.
#[derive(Clone, Copy, Debug)]
pub enum CodeRef<'a, F> {
    /// A function of this host process; its code address is its own address. Only a backend whose
    /// device code runs in the host process (the simulated device) can run it.
    Host(F),
    /// Code a registered callable carries: the name in its header, its bytes (a child kernel's
    /// binary, or the orchestration bytes), and the device address of those bytes in the
    /// callable's device copy (null when checked before the upload).
    Callable {
        /// The name in the callable's header.
        name: &'a str,
        /// The bytes the callable carries for it.
        bytes: &'a [u8],
        /// Where those bytes lie on the device.
        addr: DevAddr,
    },
}

/// Which kind of code a [`CodeRef`] names (for messages).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CodeKind {
    /// A kernel (run by AICore cores).
    Kernel,
    /// An orchestration (run by the orchestrator AICPU thread).
    Orchestration,
}

impl fmt::Display for CodeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CodeKind::Kernel => "kernel",
            CodeKind::Orchestration => "orchestration",
        })
    }
}

/// The code of one run: the orchestration and each kernel with its func id.
#[derive(Clone, Debug)]
pub struct RunCode<'a> {
    /// The orchestration.
    pub orchestration: CodeRef<'a, OrchestrationFn>,
    /// `(func id, kernel)`, in any order; func ids are distinct and below [`MAX_FUNC_IDS`].
    pub kernels: Vec<(u32, CodeRef<'a, KernelFn>)>,
}

/// Where a backend made a run's code resolvable. The code stays resolvable while this value lives:
/// the runner keeps it until every launch of the run was collected.
pub struct LoadedCode {
    /// The orchestration entry the launch descriptor names.
    pub orchestration: DevAddr,
    /// The code address of each kernel, in the order of [`RunCode::kernels`].
    pub kernels: Vec<DevAddr>,
    /// Whatever the backend keeps alive for the code to stay resolvable (dropped last).
    pub keep: Option<Box<dyn Any + Send>>,
}

impl fmt::Debug for LoadedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedCode")
            .field("orchestration", &self.orchestration)
            .field("kernels", &self.kernels)
            .finish_non_exhaustive()
    }
}

/// Why a run's code cannot be made resolvable on a device.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    /// A name the device does not carry.
    #[error("unknown {kind} {name:?}: the {backend} device carries {}", list(available))]
    Unresolved {
        /// What kind of code.
        kind: CodeKind,
        /// The name looked up.
        name: String,
        /// The backend's name.
        backend: &'static str,
        /// Every name of that kind the device carries, sorted.
        available: Vec<String>,
    },
    /// Code bytes this backend cannot run.
    #[error("{kind} {name:?}: {detail}")]
    BadBinary {
        /// What kind of code.
        kind: CodeKind,
        /// The name in the callable's header.
        name: String,
        /// What is wrong with the bytes.
        detail: String,
    },
    /// The address already holds other loaded code.
    #[error("code address {addr} already holds a different {kind} (loaded {loads} time(s))")]
    Conflict {
        /// The address.
        addr: DevAddr,
        /// What kind of code.
        kind: CodeKind,
        /// Live loads of the code already there.
        loads: u32,
    },
    /// The null address cannot hold code.
    #[error("code cannot be loaded at the null address")]
    Null,
    /// A func id outside the func-id table.
    #[error("func id {func_id} is out of range (func ids are 0..{max})")]
    FuncIdOutOfRange {
        /// The func id.
        func_id: u32,
        /// Number of func ids.
        max: usize,
    },
    /// Two kernels of one run share a func id.
    #[error("func id {func_id} names two kernels")]
    DuplicateFuncId {
        /// The func id.
        func_id: u32,
    },
    /// This backend cannot run code named this way.
    #[error("the {backend} device cannot run {what}")]
    Unsupported {
        /// The backend's name.
        backend: &'static str,
        /// What it cannot run.
        what: String,
    },
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

/// The func-id table of a launch descriptor: entry `f` is the code address of the kernel with func
/// id `f`, null where no kernel has that id; as long as the highest func id + 1. A func id at or
/// above [`MAX_FUNC_IDS`], or a func id given twice, is an error.
pub fn func_table(entries: impl IntoIterator<Item = (u32, DevAddr)>) -> Result<Vec<DevAddr>, CodeError> {
    let mut table = Vec::new();
    for (func_id, addr) in entries {
        let slot = func_id as usize;
        if slot >= MAX_FUNC_IDS {
            return Err(CodeError::FuncIdOutOfRange { func_id, max: MAX_FUNC_IDS });
        }
        if table.len() <= slot {
            table.resize(slot + 1, DevAddr::NULL);
        } else if !table[slot].is_null() {
            return Err(CodeError::DuplicateFuncId { func_id });
        }
        table[slot] = addr;
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_func_table_holds_each_address_at_its_id_and_refuses_ids_out_of_range() {
        let t = func_table([(2, DevAddr(0x40)), (0, DevAddr(0x80))]).unwrap();
        assert_eq!(t, [DevAddr(0x80), DevAddr::NULL, DevAddr(0x40)]);
        assert_eq!(func_table([]).unwrap(), []);
        let max = MAX_FUNC_IDS as u32;
        assert_eq!(
            func_table([(max, DevAddr(0x40))]),
            Err(CodeError::FuncIdOutOfRange { func_id: max, max: MAX_FUNC_IDS })
        );
        assert_eq!(func_table([(1, DevAddr(8)), (1, DevAddr(16))]), Err(CodeError::DuplicateFuncId { func_id: 1 }));
    }
}
