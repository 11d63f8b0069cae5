//! The vector example as a chip callable: f = (a+b+1)·(a+b+2) + (a+b), three kernels.
//!
//! Only names live in the blob; the simulated device resolves them in its symbol tables.

use pto_abi::task::TensorDirection::{Input, NoDep, Output, OutputExisting};

use super::blob::{BuildError, ChipCallable, CoreCallable, Orchestration};

/// Orchestration name of the vector example.
pub const VECTOR_ORCHESTRATION: &str = "vector_example";
/// Kernel: `out = x + y`.
pub const VECTOR_ADD: &str = "vector_add";
/// Kernel: `out = x + scalar`.
pub const VECTOR_ADD_SCALAR: &str = "vector_add_scalar";
/// Kernel: `out = x * y`.
pub const VECTOR_MUL: &str = "vector_mul";

/// Func ids of the three kernels, in the order above.
pub const VECTOR_FUNC_IDS: [u32; 3] = [0, 1, 2];

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
