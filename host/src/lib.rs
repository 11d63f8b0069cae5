//! Host side of the PTO runtime: sets up device memory, builds and caches arena images, uploads
//! callables and launches kernels.

pub use pto_abi as abi;

pub mod backend;
pub mod bench;
pub mod callable;
pub mod cli;
pub mod image;
pub mod run;
pub mod runner;
pub mod sim_cores;
