//! The vector example as a chip callable: f = (a+b+1)·(a+b+2) + (a+b), three kernels.
//!
//! Only names live in the blob; the simulated device resolves them in its symbol tables.

use pto_abi::task::TensorDirection::{Input, NoDep, Output, OutputExisting};

use pto_device::kernel::SimKernelFn;
use pto_device::orch::OrchestrationFn;

use super::blob::{BuildError, ChipCallable, CoreCallable, Orchestration};
use super::symbols::{SymbolError, Symbols};
use crate::run::examples::{add, add_scalar, mul, vector_orchestration, ADD, ADD_SCALAR, MUL};

/// Orchestration name of the vector example.
pub const VECTOR_ORCHESTRATION: &str = "vector_example";
/// Kernel: `out = x + y`.
pub const VECTOR_ADD: &str = "vector_add";
/// Kernel: `out = x + scalar`.
pub const VECTOR_ADD_SCALAR: &str = "vector_add_scalar";
/// Kernel: `out = x * y`.
pub const VECTOR_MUL: &str = "vector_mul";

/// Func ids of the three kernels, in the order above (the ids the orchestration submits).
pub const VECTOR_FUNC_IDS: [u32; 3] = [ADD as u32, ADD_SCALAR as u32, MUL as u32];

/// The vector example blob: args `a`, `b` (inputs), `f` (an existing output buffer) and the
/// element count `n` (a scalar, `NoDep`).
pub fn vector_example_callable() -> Result<ChipCallable, BuildError> {
    let [add, add_scalar, mul] = VECTOR_FUNC_IDS;
    ChipCallable::build(
        &[Input, Input, OutputExisting, NoDep],
        &Orchestration { name: VECTOR_ORCHESTRATION.into(), config_name: "default".into(), bytes: Vec::new() },
        &[
            CoreCallable::sim(add, VECTOR_ADD, &[Input, Input, Output]),
            CoreCallable::sim(add_scalar, VECTOR_ADD_SCALAR, &[Input, Output]),
            CoreCallable::sim(mul, VECTOR_MUL, &[Input, Input, Output]),
        ],
    )
}

/// Defines the vector example's orchestration and kernels (`crate::run::examples`) under the names
/// its blob uses.
pub fn define_vector_symbols(symbols: &mut Symbols<OrchestrationFn>) -> Result<(), SymbolError> {
    symbols.orchestrations.define(VECTOR_ORCHESTRATION, vector_orchestration as OrchestrationFn)?;
    symbols.kernels.define(VECTOR_ADD, add as SimKernelFn)?;
    symbols.kernels.define(VECTOR_ADD_SCALAR, add_scalar as SimKernelFn)?;
    symbols.kernels.define(VECTOR_MUL, mul as SimKernelFn)
}
