//! Running task graphs on the simulated device: the run path of `DeviceRunner`, and the examples.

pub mod examples;
pub mod failure;
pub mod request;
pub mod runner;

pub use failure::DeviceFailure;
pub use request::{f32s, RunArg, RunError, RunMode, RunReport, RunRequest};
pub use runner::RunCode;
