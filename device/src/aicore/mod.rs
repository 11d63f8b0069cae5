//! The AICore protocol: how AICPU scheduler threads hand tasks to AICore cores.
//!
//! Per core, in the runtime arena ([`tables`]):
//!
//! * a **dispatch register** written only by the owning scheduler thread: a per-core token
//!   `1, 2, 3, …` (never [`DISPATCH_IDLE`](pto_abi::launch::DISPATCH_IDLE) = 0 nor
//!   [`DISPATCH_EXIT`](pto_abi::launch::DISPATCH_EXIT));
//! * a **condition register** written only by the core: `ACK | t`, `FIN | t`, `FAULT | t` or
//!   `EXITED` ([`signal`]);
//! * two **payload buffers**, chosen by token parity, written only by the scheduler thread;
//! * a 64-byte **handshake record** written by the core: identity, `online`, and one fault word per
//!   parity.
//!
//! Boot resets the registers and handshakes ([`reset_core_tables`]) before it publishes "runtime
//! ready"; cores wait for that ([`wait_for_boot`]), so tokens restart at 1 every run and nothing
//! stale from an earlier run is ever read.
//!
//! [`core_side`] is the loop a core runs; [`channel`] is the scheduler's API ([`CoreChannels`]:
//! `prepare` / `publish` / `poll` / `shutdown`); [`ownership`] says which scheduler owns which
//! cores.
//!
//! **Faults.** A core that cannot run a payload (unknown kernel address, too many arguments) or
//! whose kernel fails (a panic on the simulated device) writes the reason into its fault word of
//! the token's parity and then `FAULT | t` instead of `FIN | t`, and stays in service. The
//! scheduler sees a [`Completion`] with [`TaskOutcome::Faulted`]; no hang, no panic.

pub mod channel;
pub mod core_side;
pub mod ownership;
pub mod signal;
pub mod tables;

pub use channel::{
    ChannelError, Completion, CoreChannels, CorePoll, Dispatch, HandshakeError, ShutdownError, TaskOutcome,
};
pub use core_side::{
    run_core, wait_for_boot, CoreEndpoint, CoreExit, CoreReport, CoreWait, EndpointError, KernelResolver, Step,
};
pub use ownership::{cluster_cores, core_index, owned_cores, scheduler_of_cluster, CoreMask, OwnershipError};
pub use tables::{reset_core_tables, CoreTables};

#[cfg(test)]
mod tests;
