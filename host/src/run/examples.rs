//! The vector example's host side: its run arguments. The orchestration and kernels are device
//! code ([`pto_device::examples::vector`]), re-exported here.

pub use pto_device::examples::vector::*;

use super::request::RunArg;

/// The example's run arguments: a = 2, b = 3 (inputs), f (output), n.
pub fn vector_args() -> Vec<RunArg> {
    vec![
        RunArg::input_f32(&[2.0; VECTOR_LEN]),
        RunArg::input_f32(&[3.0; VECTOR_LEN]),
        RunArg::output_f32(VECTOR_LEN),
        RunArg::Scalar(VECTOR_LEN as u64),
    ]
}

/// Index of f among [`vector_args`].
pub const VECTOR_RESULT_ARG: usize = 2;
