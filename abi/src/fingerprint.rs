//! The ABI type registry and the compile-time ABI fingerprint derived from it.
//!
//! [`ABI_TYPES`] lists every struct that crosses the host/device boundary with its size, alignment
//! and every field's offset and size; [`ABI_CAPACITIES`] lists every compile-time capacity and
//! magic value. [`ABI_FINGERPRINT`] is an FNV-1a 64 hash over both, so any layout change changes it.
//! The same tables generate the golden assertions and the layout snapshot.

use core::fmt;
use core::mem::{align_of, offset_of, size_of};

use crate::addr::{DevAddr, ImageOffset};
use crate::callable::*;
use crate::consts::*;
use crate::emu::*;
use crate::image::*;
use crate::launch::*;
use crate::layout::*;
use crate::runtime::*;
use crate::sizing::*;
use crate::sm::*;
use crate::task::*;

/// Version of the ABI; bumped on any deliberate incompatible change.
pub const ABI_VERSION: u32 = 1;

/// One field of an ABI struct.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldLayout {
    /// Field name (`0` for a newtype's field).
    pub name: &'static str,
    /// Byte offset.
    pub offset: usize,
    /// Byte size.
    pub size: usize,
}

/// One ABI struct.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TypeLayout {
    /// Type name.
    pub name: &'static str,
    /// `size_of`.
    pub size: usize,
    /// `align_of`.
    pub align: usize,
    /// Every field, in declaration order.
    pub fields: &'static [FieldLayout],
}

const fn field_size<S, F>(_project: fn(&S) -> &F) -> usize {
    size_of::<F>()
}

macro_rules! abi_type {
    ($t:ident { $($f:tt),* $(,)? }) => {
        TypeLayout {
            name: stringify!($t),
            size: size_of::<$t>(),
            align: align_of::<$t>(),
            fields: &[$(FieldLayout {
                name: stringify!($f),
                offset: offset_of!($t, $f),
                size: field_size(|s: &$t| &s.$f),
            }),*],
        }
    };
}

/// Every ABI struct with every field.
pub const ABI_TYPES: &[TypeLayout] = &[
    abi_type!(DevAddr { 0 }),
    abi_type!(ImageOffset { 0 }),
    abi_type!(ArenaSizingKey { task_window_sizes, heap_sizes, dep_pool_capacities }),
    abi_type!(Region { offset, size }),
    abi_type!(ArenaOffsets {
        image_header,
        runtime_header,
        sm_handle,
        orch_state,
        scope_stack,
        scope_tasks,
        ring_sched,
        sched_threads,
        ready_queues,
        tensor_map_buckets,
        tensor_map_entries,
        dep_pools,
        mailbox,
        core_registers,
        handshakes,
        core_payloads,
        ready_queue_capacity,
        tensor_map_entry_count,
        tensor_map_bucket_count,
        scope_task_capacity,
        mailbox_capacity,
        arena_size,
    }),
    abi_type!(RuntimeArenaLayout { sizing, offsets }),
    abi_type!(ImageHeader {
        magic,
        abi_version,
        header_size,
        abi_fingerprint,
        image_size,
        built_arena_base,
        built_sm_base,
        built_heap_base,
        sm_size,
        heap_size,
        runtime_header_offset,
        _pad,
        layout,
        _pad_tail,
    }),
    abi_type!(SmRingHeader {
        task_window,
        window_mask,
        heap_size,
        heap_offset,
        descriptors_offset,
        payloads_offset,
        slot_states_offset,
        _pad,
    }),
    abi_type!(RingFlowControl { current_task_index, _pad0, last_task_alive, heap_tail, _pad1 }),
    abi_type!(OrchErrorWord { orchestrator_done, code, ring, _pad0, detail, tasks_submitted, _pad1 }),
    abi_type!(SchedErrorWord { code, thread, stall_class, _pad0, stall_task, tasks_completed, tasks_ready, _pad1 }),
    abi_type!(SmHeader { magic, abi_fingerprint, total_size, ring_count, _pad0, rings, flow, orch, sched }),
    abi_type!(TensorDesc {
        buffer,
        buffer_bytes,
        view_offset,
        view_bytes,
        creator_task,
        dtype,
        ndims,
        shape,
        strides,
        direction,
        _pad,
    }),
    abi_type!(TaskDescriptor {
        task_id,
        kernel_ids,
        block_num,
        lane_mask,
        flags,
        packed_buffer_base,
        packed_buffer_end,
        heap_end_pos,
        scope_serial,
        _pad,
    }),
    abi_type!(TaskPayload {
        tensor_count,
        scalar_count,
        fanin_count,
        fanin_spill_count,
        fanin_spill_head,
        _pad0,
        tensors,
        scalars,
        fanin,
    }),
    abi_type!(SlotState {
        task_id,
        fanout_lock,
        fanout_count,
        fanout_head,
        task_state,
        fanin_count,
        fanin_refcount,
        fanout_refcount,
        lane_mask,
        flags,
        dep_pool_mark,
        subtask_total,
        subtask_done,
        next_block,
        tensormap_chain,
    }),
    abi_type!(DepListEntry { task_id, next, _pad }),
    abi_type!(RuntimeHeader {
        magic,
        abi_fingerprint,
        epoch,
        boot_count,
        ready,
        boot_status,
        _pad0,
        arena_base,
        image_header,
        sm_handle,
        orch_state,
        scope_stack,
        scope_tasks,
        ring_sched,
        sched_threads,
        ready_queues,
        tensor_map_buckets,
        tensor_map_entries,
        dep_pools,
        mailbox,
        core_registers,
        handshakes,
        core_payloads,
        sm_base,
        heap_base,
        ring_descriptors,
        ring_payloads,
        ring_slot_states,
        ring_heaps,
        cluster_count,
        core_count,
        sched_thread_count,
        _pad1,
        _pad2,
    }),
    abi_type!(SmHandle { sm_base, sm_size, heap_base, heap_size, _pad }),
    abi_type!(OrchRingState {
        heap_head,
        heap_floor,
        heap_wraps,
        dep_pool_head,
        dep_pool_cursor,
        tensormap_cleaned,
        _pad
    }),
    abi_type!(OrchState {
        scope_depth,
        scope_tasks_top,
        tensor_map_free,
        tensor_map_fresh,
        tensor_map_used,
        scope_serial,
        _pad,
        rings
    }),
    abi_type!(ScopeFrame { first_task, ring, kind, serial }),
    abi_type!(RingSchedState { advance_lock, advance_pending, dep_pool_tail, _pad }),
    abi_type!(SchedThreadState {
        tasks_dispatched,
        tasks_completed,
        last_progress_ns,
        running,
        cores_not_exited,
        kernel_faults,
        first_fault_task,
        cores_busy,
        _pad
    }),
    abi_type!(ReadyQueueHeader { capacity, mask, _pad0, enqueue_pos, _pad1, dequeue_pos, _pad2 }),
    abi_type!(ReadyQueueCell { sequence, task_id }),
    abi_type!(TensorMapEntry {
        buffer,
        range_start,
        range_end,
        producer_task,
        next_in_bucket,
        prev_in_bucket,
        next_in_task,
        bucket,
        live,
        _pad,
    }),
    abi_type!(MailboxHeader { capacity, _pad0, head, _pad1, tail, _pad2 }),
    abi_type!(MailboxMessage { sequence, task_id, kind, thread, _pad }),
    abi_type!(LaunchDescriptor {
        magic,
        abi_fingerprint,
        arena_base,
        arena_region_size,
        sm_base,
        sm_region_size,
        heap_base,
        heap_region_size,
        orchestration,
        orch_args,
        orch_arg_count,
        aicpu_thread_count,
        cluster_count,
        func_count,
        orch_timeout_ns,
        sched_timeout_ns,
        flags,
        boot_report,
        image_bytes,
        _pad,
        func_table,
    }),
    abi_type!(OrchArg { value, bytes, kind, dtype }),
    abi_type!(BootReport { state, code, expected, found, limit, epoch, boot_count, _pad, subject }),
    abi_type!(KernelArgs {
        runtime_desc,
        register_table,
        handshake_table,
        core_payloads,
        core_count,
        block_dim,
        flags,
        reserved,
    }),
    abi_type!(CoreRegisters { dispatch, _pad0, condition, _pad1 }),
    abi_type!(HandshakeRecord { core_id, lane, cluster, online, registers, payloads, faults, _pad }),
    abi_type!(AicorePayload { kernel, task_id, block_idx, block_num, arg_count, _pad0, args, _pad1 }),
    abi_type!(ChipCallableHeader {
        magic,
        version,
        arg_count,
        child_count,
        total_size,
        orchestration_offset,
        orchestration_size,
        _pad0,
        signature,
        orchestration_name,
        config_name,
        child_func_ids,
        child_offsets,
    }),
    abi_type!(CoreCallableHeader { magic, arg_count, binary_size, resolved_addr, signature, name, reserved }),
    abi_type!(EmuAbiRecord {
        magic,
        abi_version,
        record_size,
        abi_fingerprint,
        ram_base,
        image_base,
        image_limit,
        control_block,
        control_block_size,
        log_ring,
        log_ring_size,
        heap_base,
        mapped_ram_end,
        min_ram_bytes,
        names_offset,
        name_count,
        name_entry_size,
        min_vcpus,
        max_vcpus,
        launch_slots,
    }),
    abi_type!(EmuNameEntry { name, kind, index }),
    abi_type!(EmuControlBlock {
        magic,
        ready,
        vcpu_count,
        aicpu_vcpus,
        aicore_vcpus,
        cntfrq,
        ready_ticks,
        launches_taken,
        _pad0,
        doorbell,
        shutdown,
        _pad1,
        fault,
        panic,
        launches,
    }),
    abi_type!(EmuFaultRecord { valid, core, vector, claimed, esr, elr, far, spsr, launch_seq, _pad }),
    abi_type!(EmuPanicRecord {
        valid,
        core,
        line,
        column,
        launch_seq,
        claimed,
        message_len,
        file_len,
        _pad,
        file,
        message
    }),
    abi_type!(EmuLaunchSlot {
        seq,
        program,
        block_dim,
        kernel_args,
        abort,
        _pad0,
        done_seq,
        status,
        failed_block,
        detail,
        started_seq,
        start_ticks,
        end_ticks,
        _pad1,
    }),
    abi_type!(EmuLogHeader { magic, capacity, write, dropped_frames, written_frames, _pad0, read, _pad1 }),
];

/// Every compile-time capacity, alignment and magic value that shapes the ABI.
pub const ABI_CAPACITIES: &[(&str, u64)] = &[
    ("RING_COUNT", RING_COUNT as u64),
    ("REGION_BASE_ALIGN", REGION_BASE_ALIGN),
    ("CACHE_LINE", CACHE_LINE),
    ("HEAP_OUTPUT_ALIGN", HEAP_OUTPUT_ALIGN),
    ("LANE_COUNT", LANE_COUNT as u64),
    ("MAX_TENSOR_ARGS", MAX_TENSOR_ARGS as u64),
    ("MAX_SCALAR_ARGS", MAX_SCALAR_ARGS as u64),
    ("INLINE_FANIN", INLINE_FANIN as u64),
    ("MAX_TENSOR_DIMS", MAX_TENSOR_DIMS as u64),
    ("MAX_AICPU_THREADS", MAX_AICPU_THREADS as u64),
    ("MAX_CLUSTERS", MAX_CLUSTERS as u64),
    ("MAX_CORES", MAX_CORES as u64),
    ("MAX_SCOPE_DEPTH", MAX_SCOPE_DEPTH as u64),
    ("MAX_FUNC_IDS", MAX_FUNC_IDS as u64),
    ("MAX_KERNEL_ARGS", MAX_KERNEL_ARGS as u64),
    ("READY_QUEUE_COUNT", READY_QUEUE_COUNT as u64),
    ("TENSORMAP_ENTRIES_PER_TASK", TENSORMAP_ENTRIES_PER_TASK),
    ("TENSORMAP_MIN_ENTRIES", TENSORMAP_MIN_ENTRIES),
    ("MIN_TASK_WINDOW", MIN_TASK_WINDOW),
    ("MAX_TASK_WINDOW", MAX_TASK_WINDOW),
    ("HEAP_GRANULE", HEAP_GRANULE),
    ("MIN_DEP_POOL_CAPACITY", MIN_DEP_POOL_CAPACITY as u64),
    ("MAX_DEP_POOL_CAPACITY", MAX_DEP_POOL_CAPACITY as u64),
    ("IMAGE_MAGIC", IMAGE_MAGIC),
    ("SM_MAGIC", SM_MAGIC),
    ("RUNTIME_MAGIC", RUNTIME_MAGIC),
    ("LAUNCH_MAGIC", LAUNCH_MAGIC),
    ("DISPATCH_IDLE", DISPATCH_IDLE),
    ("DISPATCH_EXIT", DISPATCH_EXIT),
    ("COND_ACK", COND_ACK),
    ("COND_FIN", COND_FIN),
    ("COND_EXITED", COND_EXITED),
    ("COND_FAULT", COND_FAULT),
    ("FAULT_REASON_BITS", FAULT_REASON_BITS as u64),
    ("LAUNCH_FLAG_DETERMINISTIC", LAUNCH_FLAG_DETERMINISTIC),
    ("LAUNCH_FLAG_NOOP_CORES", LAUNCH_FLAG_NOOP_CORES),
    ("THREAD_NOT_STARTED", THREAD_NOT_STARTED as u64),
    ("THREAD_RUNNING", THREAD_RUNNING as u64),
    ("THREAD_EXITED", THREAD_EXITED as u64),
    ("ORCH_ARG_TENSOR", ORCH_ARG_TENSOR as u64),
    ("ORCH_ARG_SCALAR", ORCH_ARG_SCALAR as u64),
    ("BOOT_STATE_PENDING", BOOT_STATE_PENDING as u64),
    ("BOOT_STATE_READY", BOOT_STATE_READY as u64),
    ("BOOT_STATE_FAILED", BOOT_STATE_FAILED as u64),
    ("BOOT_SUBJECT_BYTES", BOOT_SUBJECT_BYTES as u64),
    ("MAX_CHIP_ARGS", MAX_CHIP_ARGS as u64),
    ("MAX_CHILDREN", MAX_CHILDREN as u64),
    ("MAX_CORE_ARGS", MAX_CORE_ARGS as u64),
    ("NAME_BYTES", NAME_BYTES as u64),
    ("CORE_CODE_OFFSET", CORE_CODE_OFFSET),
    ("CHILD_ALIGN", CHILD_ALIGN),
    ("CHIP_CALLABLE_MAGIC", CHIP_CALLABLE_MAGIC as u64),
    ("CORE_CALLABLE_MAGIC", CORE_CALLABLE_MAGIC as u64),
    ("CALLABLE_FORMAT_VERSION", CALLABLE_FORMAT_VERSION as u64),
    ("EMU_GUEST_RAM_BASE", EMU_GUEST_RAM_BASE),
    ("EMU_ABI_MAGIC", EMU_ABI_MAGIC),
    ("EMU_CONTROL_MAGIC", EMU_CONTROL_MAGIC),
    ("EMU_LOG_MAGIC", EMU_LOG_MAGIC),
    ("EMU_LAUNCH_SLOTS", EMU_LAUNCH_SLOTS as u64),
    ("EMU_MAX_VCPUS", EMU_MAX_VCPUS as u64),
    ("EMU_MIN_VCPUS", EMU_MIN_VCPUS as u64),
    ("EMU_PANIC_FILE_BYTES", EMU_PANIC_FILE_BYTES as u64),
    ("EMU_PANIC_MESSAGE_BYTES", EMU_PANIC_MESSAGE_BYTES as u64),
    ("EMU_READY", EMU_READY as u64),
    ("EMU_SHUTDOWN_REQUESTED", EMU_SHUTDOWN_REQUESTED as u64),
    ("EMU_ABORT_REQUESTED", EMU_ABORT_REQUESTED as u64),
    ("EMU_NO_BLOCK", EMU_NO_BLOCK as u64),
    ("EMU_RECORD_VALID", EMU_RECORD_VALID as u64),
];

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 64 over `bytes`, continuing from `hash`.
pub const fn fnv1a64(mut hash: u64, bytes: &[u8]) -> u64 {
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(FNV_PRIME);
        i += 1;
    }
    hash
}

/// FNV-1a 64 offset basis (the hash of nothing).
pub const FNV1A64_INIT: u64 = FNV_OFFSET;

const fn mix_str(h: u64, s: &str) -> u64 {
    // A terminator keeps ("ab","c") and ("a","bc") apart.
    fnv1a64(fnv1a64(h, s.as_bytes()), &[0xff])
}

const fn mix_u64(h: u64, v: u64) -> u64 {
    fnv1a64(h, &v.to_le_bytes())
}

/// The fingerprint of an ABI described by a version, a type table and a capacity table.
pub const fn fingerprint(version: u32, types: &[TypeLayout], capacities: &[(&str, u64)]) -> u64 {
    let mut h = mix_u64(FNV_OFFSET, version as u64);
    let mut t = 0;
    while t < types.len() {
        let ty = &types[t];
        h = mix_str(h, ty.name);
        h = mix_u64(h, ty.size as u64);
        h = mix_u64(h, ty.align as u64);
        let mut f = 0;
        while f < ty.fields.len() {
            let field = &ty.fields[f];
            h = mix_str(h, field.name);
            h = mix_u64(h, field.offset as u64);
            h = mix_u64(h, field.size as u64);
            f += 1;
        }
        t += 1;
    }
    let mut c = 0;
    while c < capacities.len() {
        h = mix_str(h, capacities[c].0);
        h = mix_u64(h, capacities[c].1);
        c += 1;
    }
    h
}

/// The ABI fingerprint of this build; host and firmware built from the same source agree on it.
pub const ABI_FINGERPRINT: u64 = fingerprint(ABI_VERSION, ABI_TYPES, ABI_CAPACITIES);

/// Writes the layout snapshot: one line per type and per field (`type field offset size`).
pub fn write_layout_snapshot(out: &mut dyn fmt::Write) -> fmt::Result {
    writeln!(out, "# ABI layout snapshot. Regenerate: see abi/tests/abi_golden.rs.")?;
    writeln!(out, "# type                     field                      offset   size")?;
    for ty in ABI_TYPES {
        writeln!(out, "{:<26} {:<26} {:>6} {:>6}  align={}", ty.name, "<type>", 0, ty.size, ty.align)?;
        for f in ty.fields {
            writeln!(out, "{:<26} {:<26} {:>6} {:>6}", ty.name, f.name, f.offset, f.size)?;
        }
    }
    for (name, value) in ABI_CAPACITIES {
        writeln!(out, "const {name} = {value:#x}")?;
    }
    writeln!(out, "ABI_VERSION = {ABI_VERSION}")?;
    writeln!(out, "ABI_FINGERPRINT = {ABI_FINGERPRINT:#018x}")
}

/// Writes the golden assertion file `abi/src/generated/assert_layouts.rs`.
pub fn write_assert_layouts(out: &mut dyn fmt::Write) -> fmt::Result {
    writeln!(out, "// @generated by `abi/tests/abi_golden.rs` (see there to regenerate). Do not edit by hand.")?;
    writeln!(out, "//! Golden size, alignment and field-offset assertions for every ABI struct.")?;
    writeln!(out)?;
    writeln!(out, "#![allow(unused_imports)]")?;
    writeln!(out, "use core::mem::{{align_of, offset_of, size_of}};")?;
    writeln!(out, "use static_assertions::const_assert_eq;")?;
    writeln!(out)?;
    writeln!(out, "use crate::addr::*;")?;
    writeln!(out, "use crate::callable::*;")?;
    writeln!(out, "use crate::emu::*;")?;
    writeln!(out, "use crate::image::*;")?;
    writeln!(out, "use crate::launch::*;")?;
    writeln!(out, "use crate::layout::*;")?;
    writeln!(out, "use crate::runtime::*;")?;
    writeln!(out, "use crate::sizing::*;")?;
    writeln!(out, "use crate::sm::*;")?;
    writeln!(out, "use crate::task::*;")?;
    for ty in ABI_TYPES {
        writeln!(out)?;
        writeln!(out, "const_assert_eq!(size_of::<{}>(), {});", ty.name, ty.size)?;
        writeln!(out, "const_assert_eq!(align_of::<{}>(), {});", ty.name, ty.align)?;
        for f in ty.fields {
            writeln!(out, "const_assert_eq!(offset_of!({}, {}), {});", ty.name, f.name, f.offset)?;
        }
    }
    writeln!(out)?;
    writeln!(out, "const_assert_eq!(crate::ABI_FINGERPRINT, {:#018x});", ABI_FINGERPRINT)
}
