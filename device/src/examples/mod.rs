//! Example orchestrations and their simulated kernels, shared by the host tools and the tests.

pub mod fatal;
pub mod vector;
