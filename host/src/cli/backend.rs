//! `--backend`: which device a subcommand runs on. Each backend this build has is one arm of
//! [`BackendKind`] and one arm of [`open`]; the simulated device is always there.

use std::sync::Arc;

use clap::{Args, ValueEnum};

use super::CliError;
use crate::backend::sim::SimBackend;
use crate::backend::DeviceBackend;
use crate::examples::define_vector_symbols;

/// The device backends this build can open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    /// The built-in simulated device: host memory, AICPU and AICore cores as host threads.
    #[default]
    Sim,
}

impl BackendKind {
    /// The name `--backend` takes.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Sim => "sim",
        }
    }
}

/// `--backend` of every subcommand that touches a device.
#[derive(Args, Debug, Clone, Copy, Default)]
pub struct BackendArgs {
    /// Device backend to run on.
    #[arg(long, value_enum, default_value_t = BackendKind::Sim)]
    pub backend: BackendKind,
}

/// An opened device: the backend and the names of the code it carries.
pub struct Device {
    /// The backend.
    pub backend: Arc<dyn DeviceBackend>,
    /// Which backend.
    pub kind: BackendKind,
}

/// Opens a backend with the built-in examples' code defined on it.
pub fn open(kind: BackendKind) -> Result<Device, CliError> {
    match kind {
        BackendKind::Sim => {
            let sim = SimBackend::new().map_err(|e| CliError::failed(format!("simulated device: {e}")))?;
            // The simulated device resolves a blob's names in its name tables.
            define_vector_symbols(&mut sim.symbols()).map_err(|e| CliError::failed(e.to_string()))?;
            Ok(Device { backend: Arc::new(sim), kind })
        }
    }
}

/// Every backend this build knows, and whether it can be opened on this host (`Err`: why not).
pub fn availability() -> Vec<(BackendKind, Result<(), String>)> {
    BackendKind::value_variants()
        .iter()
        .map(|&k| {
            let r = match k {
                BackendKind::Sim => SimBackend::new().map(|_| ()).map_err(|e| e.to_string()),
            };
            (k, r)
        })
        .collect()
}
