//! The chip-worker mailbox: the shared-memory page through which a host process (the parent, a
//! chip pool) drives one worker process that owns one device.
//!
//! One mailbox is one [`ChipMailbox`] header at offset 0 followed by an arguments region of
//! [`MAILBOX_ARGS_CAPACITY`] bytes at [`MAILBOX_ARGS_OFFSET`]. Both processes map the same file;
//! they are the same program (the worker is the parent's executable re-executed), so this struct is
//! the whole contract, pinned by the golden assertions and the ABI fingerprint like every other.
//!
//! # States and who writes what
//!
//! The [`state`](ChipMailbox::state) word holds a [`MailboxState`]. Every transition has exactly one
//! writer, and the writer of a transition also owns every frame word it publishes with it; the other
//! side reads them only after it has observed the new state (release store, acquire load):
//!
//! | transition | writer | words it owns before the store |
//! |---|---|---|
//! | `STARTING` → `INIT_READY` / `INIT_FAILED` | worker | the response words (an init failure's cause) |
//! | `INIT_READY` → `IDLE` | parent | nothing (the startup barrier passed) |
//! | `IDLE` → `TASK_READY` | parent | the request words (a RUN frame) and the arguments region |
//! | `IDLE` → `CONTROL_REQUEST` | parent | the request words (PREPARE, UNREGISTER, PING) and the arguments region |
//! | `TASK_READY` → `TASK_DONE` | worker | the response words and the RUN's output tensors in the arguments region |
//! | `CONTROL_REQUEST` → `CONTROL_DONE` | worker | the response words |
//! | `TASK_DONE` / `CONTROL_DONE` → `IDLE` | parent | nothing (it has read the response) |
//! | `IDLE` → `SHUTDOWN` | worker | nothing; its last write before it exits |
//!
//! The identity words (magic, fingerprint, protocol version, chip, sizes) are written once by the
//! parent before the worker starts and never again.
//!
//! # The shutdown word
//!
//! [`shutdown`](ChipMailbox::shutdown) is written by the parent only, only from 0 to
//! [`SHUTDOWN_REQUESTED`], and never back: no other writer exists, so nothing can cancel a shutdown.
//! The worker reads the shutdown word before the state word, so it serves every frame the parent
//! posted before it set the word; once the parent has acknowledged the last answer (state `IDLE`)
//! the worker stores `SHUTDOWN` and exits. The worker never leaves a state the parent owns, so the
//! state word never has two writers at once.
//!
//! # Frames
//!
//! Every request carries the protocol version and a generation the parent increases by one per
//! frame; the worker refuses a frame of another protocol version ([`MailboxError::BadProtocol`]) or
//! with a generation not above the last one it served ([`MailboxError::StaleGeneration`]), and
//! answers with the generation and run id it served, so the parent never takes an old answer for a
//! new request.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::sizing::ArenaSizingKey;

/// `ChipMailbox::magic`: "PTOMBOX1".
pub const MAILBOX_MAGIC: u64 = u64::from_le_bytes(*b"PTOMBOX1");
/// Version of the request/response protocol carried in every frame.
pub const MAILBOX_PROTOCOL_VERSION: u32 = 1;
/// Byte offset of the arguments region from the start of the mailbox.
pub const MAILBOX_ARGS_OFFSET: u64 = 4096;
/// Capacity of the arguments region in bytes (tensors of a RUN, the blob of a PREPARE).
pub const MAILBOX_ARGS_CAPACITY: u64 = 1 << 20;
/// Alignment of every tensor inside the arguments region.
pub const MAILBOX_ARG_ALIGN: u64 = 64;
/// Argument descriptors a frame holds.
pub const MAILBOX_MAX_ARGS: usize = 32;
/// Bytes of the error message.
pub const MAILBOX_ERROR_BYTES: usize = 512;
/// Bytes of the error code's name.
pub const MAILBOX_CODE_NAME_BYTES: usize = 32;
/// The value of the shutdown word once the parent asked the worker to stop.
pub const SHUTDOWN_REQUESTED: u32 = 1;

crate::abi_enum! {
    /// The mailbox state word.
    pub enum MailboxState {
        /// The parent created the mailbox; the worker has not reported yet.
        Starting = 0,
        /// The worker owns its device and waits for the parent's barrier.
        InitReady = 1,
        /// The worker could not start; the response words say why.
        InitFailed = 2,
        /// Nothing is pending; the parent may post a frame.
        Idle = 3,
        /// The parent posted a RUN frame.
        TaskReady = 4,
        /// The worker answered the RUN frame.
        TaskDone = 5,
        /// The parent posted a control frame (PREPARE, UNREGISTER, PING).
        ControlRequest = 6,
        /// The worker answered the control frame.
        ControlDone = 7,
        /// The worker stopped; nothing follows.
        Shutdown = 8,
    }
}

crate::abi_enum! {
    /// What a frame asks for.
    pub enum MailboxCommand {
        /// Run a prepared callable (posted with `TASK_READY`).
        Run = 1,
        /// Register the callable blob in the arguments region under a cid, by content hash, once.
        Prepare = 2,
        /// Unregister a cid.
        Unregister = 3,
        /// Answer without doing anything (a liveness check).
        Ping = 4,
    }
}

crate::abi_enum! {
    /// How the device runs a task graph (`MailboxRunConfig::mode`).
    pub enum MailboxRunMode {
        /// AICPU threads and AICore threads.
        Threaded = 0,
        /// One AICPU thread drives virtual cores itself.
        Deterministic = 1,
        /// Deterministic, and virtual cores complete tasks without running kernels.
        DeterministicNoop = 2,
    }
}

crate::abi_enum! {
    /// A frame argument's kind (`MailboxArg::kind`).
    pub enum MailboxArgKind {
        /// Tensor bytes the parent wrote; the worker copies them to the device.
        Input = 1,
        /// A tensor the worker writes back after the run (zeroed on the device before it).
        Output = 2,
        /// Tensor bytes copied in before the run and written back after it.
        InOut = 3,
        /// A 64-bit scalar in `MailboxArg::scalar`.
        Scalar = 4,
    }
}

crate::abi_enum! {
    /// The response's error word (`ChipMailbox::error`); 0 means success.
    pub enum MailboxError {
        /// The frame's protocol version is not this worker's.
        BadProtocol = 1 => "BAD_PROTOCOL", "the frame's protocol version is not the worker's",
        /// The frame's generation is not above the last one served.
        StaleGeneration = 2 => "STALE_GENERATION", "the frame's generation is not above the last one served",
        /// The command does not fit the state it was posted with, or is unknown.
        BadCommand = 3 => "BAD_COMMAND", "the command is unknown or does not fit the state it was posted with",
        /// A RUN or UNREGISTER names a cid that was never prepared.
        NotPrepared = 4 => "NOT_PREPARED", "the callable id was never prepared on this worker",
        /// The blob's bytes do not hash to the frame's content hash.
        HashMismatch = 5 => "HASH_MISMATCH", "the blob does not hash to the frame's content hash",
        /// The cid already holds a different blob.
        CidInUse = 6 => "CID_IN_USE", "the callable id already holds a different blob",
        /// The frame's arguments do not fit the arguments region, or are malformed.
        BadArgs = 7 => "BAD_ARGS", "an argument is malformed or lies outside the arguments region",
        /// The blob is malformed or the device refused to register it.
        PrepareFailed = 8 => "PREPARE_FAILED", "the callable could not be registered",
        /// The run failed; the words carry the device's code.
        RunFailed = 9 => "RUN_FAILED", "the run failed",
        /// The worker could not start (backend, device).
        InitFailed = 10 => "INIT_FAILED", "the worker could not start",
        /// Unregistering failed on the device.
        UnregisterFailed = 11 => "UNREGISTER_FAILED", "the callable could not be unregistered",
    }
}

/// How a RUN frame runs its callable.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct MailboxRunConfig {
    /// Arena sizing.
    pub sizing: ArenaSizingKey,
    /// A [`MailboxRunMode`].
    pub mode: u32,
    /// AICPU threads of the threaded mode.
    pub threads: u32,
    /// AICore clusters of the threaded mode.
    pub clusters: u32,
    /// Explicit padding.
    pub _pad: [u8; 4],
    /// Orchestrator no-progress budget, nanoseconds.
    pub orch_budget_ns: u64,
    /// Scheduler no-progress budget, nanoseconds.
    pub sched_budget_ns: u64,
}

/// One argument of a RUN frame.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct MailboxArg {
    /// A [`MailboxArgKind`].
    pub kind: u32,
    /// A `DType` (tensors).
    pub dtype: u32,
    /// Tensors: offset of the bytes inside the arguments region ([`MAILBOX_ARG_ALIGN`]-aligned).
    pub offset: u64,
    /// Tensors: byte count.
    pub bytes: u64,
    /// Scalars: the value.
    pub scalar: u64,
}

/// The mailbox header; the arguments region follows at [`MAILBOX_ARGS_OFFSET`].
///
/// Three groups on their own cache lines: identity (written once by the parent), the state word,
/// the shutdown word; then the request words (the parent's while it posts a frame) and the response
/// words (the worker's while it answers).
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct ChipMailbox {
    /// [`MAILBOX_MAGIC`].
    pub magic: u64,
    /// The parent's `ABI_FINGERPRINT`; the worker refuses another.
    pub abi_fingerprint: u64,
    /// [`MAILBOX_PROTOCOL_VERSION`] of the parent.
    pub protocol_version: u32,
    /// The device index this worker owns.
    pub chip: u32,
    /// Bytes of the whole mapping (header, gap, arguments region).
    pub total_size: u64,
    /// [`MAILBOX_ARGS_OFFSET`].
    pub args_offset: u64,
    /// [`MAILBOX_ARGS_CAPACITY`].
    pub args_capacity: u64,
    /// Explicit padding to the state line.
    pub _pad0: [u8; 16],
    /// A [`MailboxState`]; see the module docs for the writer of each transition.
    pub state: u32,
    /// Explicit padding: the state word's line.
    pub _pad1: [u8; 60],
    /// 0, or [`SHUTDOWN_REQUESTED`] (parent only, one way).
    pub shutdown: u32,
    /// Explicit padding: the shutdown word's line.
    pub _pad2: [u8; 60],
    /// Request: the frame's protocol version.
    pub frame_version: u32,
    /// Request: a [`MailboxCommand`].
    pub command: u32,
    /// Request: the frame's generation (increases by one per frame).
    pub generation: u64,
    /// Request: the parent's id of this run (RUN frames).
    pub run_id: u64,
    /// Request: the callable id.
    pub cid: u32,
    /// Request: arguments in use (RUN frames).
    pub arg_count: u32,
    /// Request: the blob's content hash (PREPARE frames).
    pub content_hash: u64,
    /// Request: bytes of the blob at offset 0 of the arguments region (PREPARE frames).
    pub blob_bytes: u64,
    /// Explicit padding to the configuration.
    pub _pad3: [u8; 16],
    /// Request: how the run runs (RUN frames).
    pub config: MailboxRunConfig,
    /// Request: the arguments (RUN frames).
    pub args: [MailboxArg; MAILBOX_MAX_ARGS],
    /// Response: the generation served.
    pub done_generation: u64,
    /// Response: the run id served.
    pub done_run_id: u64,
    /// Response: 0, or a [`MailboxError`].
    pub error: u32,
    /// Response: bytes of `error_message` in use.
    pub error_len: u32,
    /// Response: code-specific words (for `RUN_FAILED`: device code, detail, ring or `u64::MAX`,
    /// stall class or `u64::MAX`).
    pub error_words: [u64; 4],
    /// Response: the name of the underlying code (e.g. `HEAP_RING_DEADLOCK`), NUL-padded UTF-8.
    pub code_name: [u8; MAILBOX_CODE_NAME_BYTES],
    /// Response: what went wrong, UTF-8.
    pub error_message: [u8; MAILBOX_ERROR_BYTES],
    /// Response: tasks the orchestration submitted (RUN).
    pub tasks_submitted: u64,
    /// Response: tasks completed (RUN).
    pub tasks_completed: u64,
    /// Response: bind time, nanoseconds (RUN).
    pub bind_ns: u64,
    /// Response: run time, nanoseconds (RUN).
    pub run_ns: u64,
    /// Response: 1 when the resident image served the bind (RUN); for PREPARE, 1 when the cid
    /// already held this blob.
    pub cache_hit: u32,
    /// Explicit padding to the end of the line.
    pub _pad4: [u8; 20],
}

const _: () = assert!(core::mem::size_of::<ChipMailbox>() as u64 <= MAILBOX_ARGS_OFFSET);

/// Bytes of a whole mailbox mapping.
pub const MAILBOX_TOTAL_SIZE: u64 = MAILBOX_ARGS_OFFSET + MAILBOX_ARGS_CAPACITY;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_values_are_refused_and_every_known_one_round_trips() {
        for &s in MailboxState::ALL {
            assert_eq!(MailboxState::try_from(s as u32), Ok(s));
        }
        assert_eq!(MailboxState::try_from(9), Err(9));
        assert_eq!(MailboxCommand::try_from(0), Err(0));
        assert_eq!(MailboxArgKind::try_from(5), Err(5));
        assert_eq!(MailboxRunMode::try_from(3), Err(3));
        assert_eq!(MailboxError::try_from(0), Err(0), "0 is success, not an error");
        assert_eq!(MailboxError::StaleGeneration.name(), "STALE_GENERATION");
    }

    #[test]
    fn the_state_shutdown_and_request_words_sit_on_their_own_lines() {
        use core::mem::offset_of;
        assert_eq!(offset_of!(ChipMailbox, state), 64);
        assert_eq!(offset_of!(ChipMailbox, shutdown), 128);
        assert_eq!(offset_of!(ChipMailbox, frame_version), 192);
        assert_eq!(MAILBOX_TOTAL_SIZE, MAILBOX_ARGS_OFFSET + MAILBOX_ARGS_CAPACITY);
    }
}
