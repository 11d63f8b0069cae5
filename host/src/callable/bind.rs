//! Binding a registered callable to one run: check the run's arguments against its signature, and
//! replay its child addresses into a cleared func-id table of the launch descriptor.

use pto_abi::consts::MAX_FUNC_IDS;
use pto_abi::launch::LaunchDescriptor;
use pto_abi::task::TensorDirection;
use pto_abi::DevAddr;

use super::registry::PreparedCallableArtifacts;
use crate::sim_cores::SimKernelTable;

/// Why a run cannot be bound to a callable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindError {
    /// Wrong number of arguments.
    #[error("callable id {cid}: {got} arguments given, its signature takes {expected}")]
    ArgCount {
        /// The cid.
        cid: u32,
        /// Arguments the signature takes.
        expected: usize,
        /// Arguments given.
        got: usize,
    },
    /// An argument whose direction differs from the signature's.
    #[error("callable id {cid}: argument {index} is {got:?}, its signature says {expected:?}")]
    Direction {
        /// The cid.
        cid: u32,
        /// Argument index.
        index: usize,
        /// Direction in the signature.
        expected: TensorDirection,
        /// Direction given.
        got: TensorDirection,
    },
    /// A func id outside the func-id table.
    #[error("callable id {cid}: func id {func_id} is out of range (func ids are 0..{max})")]
    FuncIdOutOfRange {
        /// The cid.
        cid: u32,
        /// The func id.
        func_id: u32,
        /// Number of func ids.
        max: usize,
    },
}

/// Checks that `args` (one direction per run argument) match `signature` in count and direction.
pub fn check_args_against_signature(
    cid: u32,
    signature: &[TensorDirection],
    args: &[TensorDirection],
) -> Result<(), BindError> {
    if signature.len() != args.len() {
        return Err(BindError::ArgCount { cid, expected: signature.len(), got: args.len() });
    }
    match signature.iter().zip(args).position(|(s, a)| s != a) {
        Some(index) => Err(BindError::Direction { cid, index, expected: signature[index], got: args[index] }),
        None => Ok(()),
    }
}

impl<O> PreparedCallableArtifacts<O> {
    /// Clears `desc`'s func-id table (a stale entry would point into freed device memory), then
    /// writes this callable's child code addresses and its orchestration address.
    pub fn replay_into(&self, desc: &mut LaunchDescriptor) -> Result<(), BindError> {
        if let Some(func_id) = self.children.iter().map(|c| c.func_id).find(|&id| id as usize >= MAX_FUNC_IDS) {
            return Err(BindError::FuncIdOutOfRange { cid: self.cid, func_id, max: MAX_FUNC_IDS });
        }
        desc.func_table.fill(DevAddr::NULL);
        let mut func_count = 0u32;
        for (func_id, addr) in self.child_addrs() {
            desc.func_table[func_id as usize] = addr;
            func_count = func_count.max(func_id + 1);
        }
        desc.func_count = func_count;
        desc.orchestration = self.orchestration_addr;
        Ok(())
    }

    /// The func-id table of a run of this callable: entry `f` is the code address of the child with
    /// func id `f`, null where no child has that id; as long as the highest func id + 1.
    pub fn func_table(&self) -> Vec<DevAddr> {
        let len = self.children.iter().map(|c| c.func_id as usize + 1).max().unwrap_or(0);
        let mut table = vec![DevAddr::NULL; len.min(MAX_FUNC_IDS)];
        for child in &self.children {
            if let Some(slot) = table.get_mut(child.func_id as usize) {
                *slot = child.code_addr;
            }
        }
        table
    }

    /// Code address → Rust kernel of every child, for the simulated cores.
    pub fn sim_kernel_table(&self) -> SimKernelTable {
        let mut table = SimKernelTable::new();
        for child in &self.children {
            table.insert(child.code_addr, child.kernel);
        }
        table
    }
}
