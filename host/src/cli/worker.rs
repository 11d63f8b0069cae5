//! `pto worker`: the chip-worker process a [`ChipPool`](crate::ChipPool) starts, one per chip
//! (hidden from `pto --help`; nobody starts it by hand).

use std::path::PathBuf;

use clap::Args;

use super::CliError;
use crate::pool::worker::{run_worker, WorkerOptions};

/// Flags of `pto worker` (the pool passes them).
#[derive(Args, Debug, Clone)]
pub struct WorkerArgs {
    /// The mailbox file the parent created under /dev/shm.
    #[arg(long)]
    pub mailbox: PathBuf,
    /// The device index this worker owns.
    #[arg(long)]
    pub chip: u32,
    /// The backend (`sim`).
    #[arg(long, default_value = "sim")]
    pub backend: String,
    /// Device memory of the simulated device, bytes.
    #[arg(long, default_value_t = crate::backend::sim::DEFAULT_POOL_CAPACITY)]
    pub device_memory: u64,
}

/// Runs the worker until shutdown; its exit code is the worker's (0 after a shutdown request).
pub fn run(args: &WorkerArgs) -> Result<(), CliError> {
    let opts = WorkerOptions {
        mailbox: args.mailbox.clone(),
        chip: args.chip,
        backend: args.backend.clone(),
        device_memory: args.device_memory,
    };
    match run_worker(&opts) {
        0 => Ok(()),
        // The worker already said why (in its mailbox, or on stderr).
        code => Err(CliError { exit_code: code, message: String::new() }),
    }
}
