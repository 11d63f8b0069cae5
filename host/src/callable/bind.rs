//! Binding a registered callable to one run: the run's arguments must match its signature in
//! count and direction.

use pto_abi::task::TensorDirection;

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
