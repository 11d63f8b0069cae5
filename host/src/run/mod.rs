//! Running task graphs on the simulated device: the run path of `DeviceRunner`, the examples, and
//! the scheduling benchmarks.

pub mod bench;
