//! Where a core's registers, handshake record and payload buffers are, and their reset at boot.
//!
//! Three arena regions hold `MAX_CORES` entries each, indexed by core: [`CoreRegisters`],
//! [`HandshakeRecord`] and two [`AicorePayload`]s (buffer `2 * core + parity`).

use core::mem::size_of;
use core::ptr;

use pto_abi::consts::MAX_CORES;
use pto_abi::launch::{AicorePayload, CoreRegisters, HandshakeRecord, DISPATCH_IDLE};
use pto_abi::layout::ArenaOffsets;
use pto_abi::runtime::RuntimeHeader;
use pto_abi::DevAddr;

/// The pointer a device address stands for (identity on the firmware and on the simulated
/// device). Local so that this module, which boot's reset calls, does not depend on boot.
const fn dev_ptr<T>(addr: DevAddr) -> *mut T {
    addr.get() as usize as *mut T
}

/// Device addresses of the three per-core tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoreTables {
    /// `MAX_CORES` × [`CoreRegisters`].
    pub registers: DevAddr,
    /// `MAX_CORES` × [`HandshakeRecord`].
    pub handshakes: DevAddr,
    /// `MAX_CORES` × 2 × [`AicorePayload`].
    pub payloads: DevAddr,
}

/// Bytes of each table, in the order registers, handshakes, payloads.
pub const TABLE_BYTES: [u64; 3] = [
    (MAX_CORES * size_of::<CoreRegisters>()) as u64,
    (MAX_CORES * size_of::<HandshakeRecord>()) as u64,
    (2 * MAX_CORES * size_of::<AicorePayload>()) as u64,
];

impl CoreTables {
    /// The tables a wired runtime header points to.
    pub fn from_header(h: &RuntimeHeader) -> CoreTables {
        CoreTables { registers: h.core_registers, handshakes: h.handshakes, payloads: h.core_payloads }
    }

    /// The tables of an arena at `arena_base` with these layout offsets (what boot wires).
    pub fn from_arena(arena_base: DevAddr, offsets: &ArenaOffsets) -> CoreTables {
        let at = |offset: u64| DevAddr(arena_base.get().wrapping_add(offset));
        CoreTables {
            registers: at(offsets.core_registers.offset),
            handshakes: at(offsets.handshakes.offset),
            payloads: at(offsets.core_payloads.offset),
        }
    }

    /// The registers of `core` (`core < MAX_CORES`, checked by the callers in this module).
    #[inline]
    pub(crate) fn registers_of(&self, core: u32) -> *mut CoreRegisters {
        dev_ptr::<CoreRegisters>(self.registers).wrapping_add(core as usize)
    }

    /// The handshake record of `core`.
    #[inline]
    pub(crate) fn handshake_of(&self, core: u32) -> *mut HandshakeRecord {
        dev_ptr::<HandshakeRecord>(self.handshakes).wrapping_add(core as usize)
    }

    /// Payload buffer `parity` (0 or 1) of `core`.
    #[inline]
    pub(crate) fn payload_of(&self, core: u32, parity: usize) -> *mut AicorePayload {
        dev_ptr::<AicorePayload>(self.payloads).wrapping_add(2 * core as usize + parity)
    }

    /// True when every table base is non-null and 64-byte aligned.
    pub fn is_well_formed(&self) -> bool {
        [self.registers, self.handshakes, self.payloads].iter().all(|a| !a.is_null() && a.is_aligned(64))
    }
}

/// Puts every core's registers and handshake record in their boot state: dispatch
/// [`DISPATCH_IDLE`], condition 0 ("nothing"), handshake offline with no faults and with the
/// addresses of the core's registers and payloads. Payload buffers are left as they are (the AICPU
/// writes one before each token that uses it). O(`MAX_CORES`).
///
/// Boot calls it before publishing "runtime ready"; cores wait for that before they touch their
/// registers, so each run starts with tokens from [`FIRST_TOKEN`](super::signal::FIRST_TOKEN).
///
/// # Safety
/// `tables` must describe the three writable tables of `MAX_CORES` entries, and no core or AICPU
/// thread may use them concurrently.
pub unsafe fn reset_core_tables(tables: &CoreTables) {
    for core in 0..MAX_CORES as u32 {
        let regs = CoreRegisters {
            dispatch: DISPATCH_IDLE,
            _pad0: [0; 56],
            condition: 0,
            start_ns: [0; 2],
            end_ns: [0; 2],
            _pad1: [0; 24],
        };
        let hs = HandshakeRecord {
            core_id: 0,
            lane: 0,
            cluster: 0,
            online: 0,
            registers: DevAddr(tables.registers_of(core) as u64),
            payloads: DevAddr(tables.payload_of(core, 0) as u64),
            faults: [0; 2],
            _pad: [0; 16],
        };
        // SAFETY: the caller guarantees the tables hold MAX_CORES writable, aligned entries that
        // nobody else touches now; volatile because cores and the host read them later.
        unsafe {
            ptr::write_volatile(tables.registers_of(core), regs);
            ptr::write_volatile(tables.handshake_of(core), hs);
        }
    }
}
