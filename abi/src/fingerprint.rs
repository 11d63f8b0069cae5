//! The ABI type registry and the compile-time ABI fingerprint derived from it.
//!
//! [`ABI_TYPES`] lists every struct that crosses the host/device boundary with its size, alignment
//! and every field's offset and size; [`ABI_CAPACITIES`] lists every compile-time capacity and
//! magic value. [`ABI_FINGERPRINT`] is an FNV-1a 64 hash ([`crate::hash`]) over both, so any
//! layout change changes it; every image, launch descriptor and SM header carries it, and the
//! device refuses a fingerprint other than its own.
//!
//! The same tables generate the two golden files: the layout snapshot (`abi/layout.snapshot`, for
//! review) and the const assertions (`abi/src/generated/assert_layouts.rs`), which fail the build
//! on every target when a struct no longer matches them, with a message naming the type, the field,
//! the golden and the found value, and the re-bless command. A const check here also fails the
//! build when a struct has a byte not covered by a field listed in [`ABI_TYPES`].

use core::fmt;
use core::mem::{align_of, offset_of, size_of};

use crate::{addr, arena, callable, consts, emu, image, launch, mailbox, runtime, sizing, sm, task, trace};

pub use crate::drift::REBLESS_COMMAND;
pub use crate::hash::{fnv1a64, FNV1A64_INIT};

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
    /// The module of `pto_abi` that defines it (`launch` for `LaunchDescriptor`).
    pub module: &'static str,
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
    ($m:ident :: $t:ident { $($f:tt),* $(,)? }) => {
        TypeLayout {
            name: stringify!($t),
            module: stringify!($m),
            size: size_of::<$m::$t>(),
            align: align_of::<$m::$t>(),
            fields: &[$(FieldLayout {
                name: stringify!($f),
                offset: offset_of!($m::$t, $f),
                size: field_size(|s: &$m::$t| &s.$f),
            }),*],
        }
    };
}

macro_rules! abi_capacities {
    ($($m:ident :: $c:ident),* $(,)?) => {
        &[$((stringify!($c), $m::$c as u64)),*]
    };
}

/// Every ABI struct with every field.
pub const ABI_TYPES: &[TypeLayout] = &[
    abi_type!(addr::DevAddr { 0 }),
    abi_type!(addr::ImageOffset { 0 }),
    abi_type!(sizing::ArenaSizingKey { task_window_sizes, heap_sizes, dep_pool_capacities }),
    abi_type!(arena::Region { offset, size }),
    abi_type!(arena::ArenaOffsets {
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
    abi_type!(arena::RuntimeArenaLayout { sizing, offsets }),
    abi_type!(image::ImageHeader {
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
        checksum,
        _pad,
        layout,
        _pad_tail,
    }),
    abi_type!(sm::SmRingHeader {
        task_window,
        window_mask,
        heap_size,
        heap_offset,
        descriptors_offset,
        payloads_offset,
        slot_states_offset,
        _pad,
    }),
    abi_type!(sm::RingFlowControl { current_task_index, _pad0, last_task_alive, heap_tail, _pad1 }),
    abi_type!(sm::OrchErrorWord { orchestrator_done, code, ring, _pad0, detail, tasks_submitted, _pad1 }),
    abi_type!(sm::SchedErrorWord { code, thread, stall_class, _pad0, stall_task, tasks_completed, tasks_ready, _pad1 }),
    abi_type!(sm::SmHeader { magic, abi_fingerprint, total_size, ring_count, _pad0, rings, flow, orch, sched }),
    abi_type!(task::TensorDesc {
        buffer,
        buffer_bytes,
        view_offset,
        view_bytes,
        creator_task,
        dtype,
        ndims,
        direction,
        dims,
        _pad,
    }),
    abi_type!(task::TensorDim { extent, stride }),
    abi_type!(task::TaskDescriptor {
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
    abi_type!(task::TaskPayload {
        tensor_count,
        scalar_count,
        fanin_count,
        fanin_spill_count,
        fanin_spill_head,
        _pad0,
        fanin,
        _pad1,
        tensors,
        scalars,
    }),
    abi_type!(task::SlotState {
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
    abi_type!(task::DepListEntry { task_id, next, _pad }),
    abi_type!(runtime::RuntimeHeader {
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
    abi_type!(runtime::SmHandle { sm_base, sm_size, heap_base, heap_size, _pad }),
    abi_type!(runtime::OrchRingState {
        heap_head,
        heap_floor,
        heap_wraps,
        dep_pool_head,
        dep_pool_cursor,
        tensormap_cleaned,
        _pad
    }),
    abi_type!(runtime::OrchState {
        scope_depth,
        scope_tasks_top,
        tensor_map_free,
        tensor_map_fresh,
        tensor_map_used,
        scope_serial,
        _pad,
        rings
    }),
    abi_type!(runtime::ScopeFrame { first_task, ring, kind, serial }),
    abi_type!(runtime::RingSchedState { advance_lock, advance_pending, dep_pool_tail, _pad }),
    abi_type!(runtime::SchedThreadState {
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
    abi_type!(runtime::ReadyQueueHeader { capacity, mask, written, _pad0, enqueue_pos, _pad1, dequeue_pos, _pad2 }),
    abi_type!(runtime::ReadyQueueCell { sequence, task_id }),
    abi_type!(runtime::TensorMapEntry {
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
    abi_type!(runtime::MailboxHeader { capacity, _pad0, head, _pad1, tail, _pad2 }),
    abi_type!(runtime::MailboxMessage { sequence, task_id, kind, thread, _pad }),
    abi_type!(launch::LaunchDescriptor {
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
        trace_base,
        trace_bytes,
        trace_level,
        _pad0,
        _pad,
        func_table,
    }),
    abi_type!(launch::OrchArg { value, bytes, kind, dtype }),
    abi_type!(launch::BootReport { state, code, expected, found, limit, epoch, boot_count, _pad, subject }),
    abi_type!(launch::KernelArgs {
        runtime_desc,
        register_table,
        handshake_table,
        core_payloads,
        core_count,
        block_dim,
        flags,
        reserved,
    }),
    abi_type!(launch::CoreRegisters { dispatch, _pad0, condition, start_ns, end_ns, _pad1 }),
    abi_type!(launch::HandshakeRecord { core_id, lane, cluster, online, registers, payloads, faults, _pad }),
    abi_type!(launch::AicorePayload { kernel, task_id, block_idx, block_num, arg_count, flags, args, _pad1 }),
    abi_type!(callable::ChipCallableHeader {
        magic,
        version,
        arg_count,
        child_count,
        total_size,
        orchestration_offset,
        orchestration_size,
        checksum,
        _pad0,
        signature,
        orchestration_name,
        config_name,
        child_func_ids,
        child_offsets,
    }),
    abi_type!(callable::CoreCallableHeader { magic, arg_count, binary_size, resolved_addr, signature, name, reserved }),
    abi_type!(mailbox::MailboxRunConfig { sizing, mode, threads, clusters, _pad, orch_budget_ns, sched_budget_ns }),
    abi_type!(mailbox::MailboxArg { kind, dtype, offset, bytes, scalar }),
    abi_type!(mailbox::ChipMailbox {
        magic,
        abi_fingerprint,
        protocol_version,
        chip,
        total_size,
        args_offset,
        args_capacity,
        _pad0,
        state,
        _pad1,
        shutdown,
        _pad2,
        frame_version,
        command,
        generation,
        run_id,
        cid,
        arg_count,
        content_hash,
        blob_bytes,
        _pad3,
        config,
        args,
        done_generation,
        done_run_id,
        error,
        error_len,
        error_words,
        code_name,
        error_message,
        tasks_submitted,
        tasks_completed,
        bind_ns,
        run_ns,
        cache_hit,
        _pad4,
    }),
    abi_type!(emu::EmuAbiRecord {
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
    abi_type!(emu::EmuNameEntry { name, kind, index }),
    abi_type!(emu::EmuControlBlock {
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
    abi_type!(emu::EmuFaultRecord { valid, core, vector, claimed, esr, elr, far, spsr, launch_seq, _pad }),
    abi_type!(emu::EmuPanicRecord {
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
    abi_type!(emu::EmuLaunchSlot {
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
    abi_type!(emu::EmuLogHeader { magic, capacity, write, dropped_frames, written_frames, _pad0, read, _pad1 }),
    abi_type!(trace::TraceSection { offset, capacity, cursor, dropped }),
    abi_type!(trace::TraceHeader { magic, region_bytes, level, _pad0, epoch_ns, _pad1, sections, _pad2 }),
    abi_type!(trace::BlockRecord {
        task_id,
        func_ids,
        core,
        block_idx,
        block_num,
        thread,
        _pad,
        dispatch_ns,
        start_ns,
        end_ns,
        finish_ns,
    }),
    abi_type!(trace::PhaseRecord { thread, _pad, start_ns, complete_ns, dispatch_ns, release_ns, idle_ns }),
    abi_type!(trace::SubmitRecord { task_id, start_ns, end_ns, producers, scope_serial }),
    abi_type!(trace::EdgeRecord { producer, consumer, tensor, reason, flags, _pad }),
    abi_type!(trace::ScopeRecord {
        serial,
        ring,
        tasks,
        peak_ring_fill,
        ring_window,
        peak_heap,
        heap_size,
        peak_dep_pool,
        dep_pool_capacity,
    }),
];

/// Every compile-time capacity, alignment and magic value that shapes the ABI.
pub const ABI_CAPACITIES: &[(&str, u64)] = abi_capacities![
    consts::RING_COUNT,
    consts::REGION_BASE_ALIGN,
    consts::CACHE_LINE,
    consts::HEAP_OUTPUT_ALIGN,
    consts::LANE_COUNT,
    consts::MAX_TENSOR_ARGS,
    consts::MAX_SCALAR_ARGS,
    consts::INLINE_FANIN,
    consts::MAX_TENSOR_DIMS,
    consts::MAX_AICPU_THREADS,
    consts::MAX_CLUSTERS,
    consts::MAX_CORES,
    consts::MAX_SCOPE_DEPTH,
    consts::MAX_FUNC_IDS,
    consts::MAX_KERNEL_ARGS,
    consts::READY_QUEUE_COUNT,
    consts::TENSORMAP_ENTRIES_PER_TASK,
    consts::TENSORMAP_MIN_ENTRIES,
    sizing::MIN_TASK_WINDOW,
    sizing::MAX_TASK_WINDOW,
    sizing::HEAP_GRANULE,
    sizing::MIN_DEP_POOL_CAPACITY,
    sizing::MAX_DEP_POOL_CAPACITY,
    image::IMAGE_MAGIC,
    sm::SM_MAGIC,
    runtime::RUNTIME_MAGIC,
    launch::LAUNCH_MAGIC,
    launch::DISPATCH_IDLE,
    launch::DISPATCH_EXIT,
    launch::PAYLOAD_FLAG_STAMP,
    launch::COND_ACK,
    launch::COND_FIN,
    launch::COND_EXITED,
    launch::COND_FAULT,
    launch::FAULT_REASON_BITS,
    launch::LAUNCH_FLAG_DETERMINISTIC,
    launch::LAUNCH_FLAG_NOOP_CORES,
    // Integrity: the image checksum's flag and algorithm (issue 14).
    launch::LAUNCH_FLAG_VERIFY_IMAGE,
    image::IMAGE_CHECKSUM_OFFSET,
    image::IMAGE_CHECKSUM_CHECK_VALUE,
    callable::CALLABLE_CHECKSUM_OFFSET,
    runtime::THREAD_NOT_STARTED,
    runtime::THREAD_RUNNING,
    runtime::THREAD_EXITED,
    launch::ORCH_ARG_TENSOR,
    launch::ORCH_ARG_SCALAR,
    launch::BOOT_STATE_PENDING,
    launch::BOOT_STATE_READY,
    launch::BOOT_STATE_FAILED,
    launch::BOOT_SUBJECT_BYTES,
    callable::MAX_CHIP_ARGS,
    callable::MAX_CHILDREN,
    callable::MAX_CORE_ARGS,
    callable::NAME_BYTES,
    callable::CORE_CODE_OFFSET,
    callable::CHILD_ALIGN,
    callable::CHIP_CALLABLE_MAGIC,
    callable::CORE_CALLABLE_MAGIC,
    callable::CALLABLE_FORMAT_VERSION,
    mailbox::MAILBOX_MAGIC,
    mailbox::MAILBOX_PROTOCOL_VERSION,
    mailbox::MAILBOX_ARGS_OFFSET,
    mailbox::MAILBOX_ARGS_CAPACITY,
    mailbox::MAILBOX_ARG_ALIGN,
    mailbox::MAILBOX_MAX_ARGS,
    mailbox::MAILBOX_ERROR_BYTES,
    mailbox::MAILBOX_CODE_NAME_BYTES,
    mailbox::SHUTDOWN_REQUESTED,
    emu::EMU_GUEST_RAM_BASE,
    emu::EMU_ABI_MAGIC,
    emu::EMU_CONTROL_MAGIC,
    emu::EMU_LOG_MAGIC,
    emu::EMU_LAUNCH_SLOTS,
    emu::EMU_MAX_VCPUS,
    emu::EMU_MIN_VCPUS,
    emu::EMU_PANIC_FILE_BYTES,
    emu::EMU_PANIC_MESSAGE_BYTES,
    emu::EMU_READY,
    emu::EMU_SHUTDOWN_REQUESTED,
    emu::EMU_ABORT_REQUESTED,
    emu::EMU_NO_BLOCK,
    emu::EMU_RECORD_VALID,
    trace::TRACE_MAGIC,
    trace::MAX_TRACE_LEVEL,
    trace::TRACE_KIND_COUNT,
    trace::TRACE_KIND_BLOCK,
    trace::TRACE_KIND_PHASE,
    trace::TRACE_KIND_SUBMIT,
    trace::TRACE_KIND_EDGE,
    trace::TRACE_KIND_SCOPE,
    trace::EDGE_REASON_CREATOR,
    trace::EDGE_REASON_OVERLAP,
    trace::EDGE_REASON_EXPLICIT,
    trace::EDGE_FLAG_RETIRED,
    trace::VIRTUAL_CORE,
];

const fn mix_str(h: u64, s: &str) -> u64 {
    // A terminator keeps ("ab","c") and ("a","bc") apart.
    fnv1a64(fnv1a64(h, s.as_bytes()), &[0xff])
}

const fn mix_u64(h: u64, v: u64) -> u64 {
    fnv1a64(h, &v.to_le_bytes())
}

/// The fingerprint of an ABI described by a version, a type table and a capacity table.
pub const fn fingerprint(version: u32, types: &[TypeLayout], capacities: &[(&str, u64)]) -> u64 {
    let mut h = mix_u64(FNV1A64_INIT, version as u64);
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
    writeln!(
        out,
        "// @generated by `abi/tests/abi_golden.rs` from `ABI_TYPES` (abi/src/fingerprint.rs). Do not edit by hand."
    )?;
    writeln!(out, "//! Golden size, alignment and field-offset assertions for every ABI struct, and the golden")?;
    writeln!(out, "//! fingerprint. A struct that drifted fails the build with a message naming the type, the field,")?;
    writeln!(out, "//! the offset found and the golden one, and the re-bless command:")?;
    writeln!(out, "//! `{REBLESS_COMMAND}`.")?;
    writeln!(out)?;
    writeln!(out, "use crate::drift::{{assert_fingerprint, assert_layout, assert_offset}};")?;
    for ty in ABI_TYPES {
        let (m, t) = (ty.module, ty.name);
        writeln!(out)?;
        writeln!(out, "assert_layout!({m}::{t}, size = {}, align = {});", ty.size, ty.align)?;
        for f in ty.fields {
            writeln!(out, "assert_offset!({m}::{t}.{} == {});", f.name, f.offset)?;
        }
    }
    writeln!(out)?;
    writeln!(out, "assert_fingerprint!(fingerprint::ABI_FINGERPRINT == {ABI_FINGERPRINT:#018x});")
}

/// Why the registry does not describe a struct byte for byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegistryProblem {
    /// Bytes `[from, to)` of `ty` are not covered by any listed field: a field is missing from
    /// [`ABI_TYPES`] (`before` names the listed field after the gap, `None` for trailing bytes).
    Uncovered {
        /// The type.
        ty: &'static str,
        /// First uncovered byte.
        from: usize,
        /// End of the uncovered bytes.
        to: usize,
        /// The listed field after the gap, if any.
        before: Option<&'static str>,
    },
    /// `field` starts before the end of the field listed before it: fields are listed out of
    /// declaration order, or twice.
    OutOfOrder {
        /// The type.
        ty: &'static str,
        /// The field.
        field: &'static str,
        /// Its offset.
        offset: usize,
        /// Where the previous listed field ends.
        previous_end: usize,
    },
}

impl RegistryProblem {
    const fn message(&self) -> crate::drift::Message {
        let m = crate::drift::Message::new().str("pto-abi: ABI registry: ");
        let m = match *self {
            RegistryProblem::Uncovered { ty, from, to, before } => {
                let m = m.str(ty).str(" bytes ").dec(from as u64).str("..").dec(to as u64);
                let m = match before {
                    Some(field) => m.str(" (before field ").str(field).str(")"),
                    None => m.str(" (after the last listed field)"),
                };
                m.str(" are not covered by a field listed in ABI_TYPES")
            }
            RegistryProblem::OutOfOrder { ty, field, offset, previous_end } => m
                .str(ty)
                .str(".")
                .str(field)
                .str(" at offset ")
                .dec(offset as u64)
                .str(" starts before the previous listed field ends (")
                .dec(previous_end as u64)
                .str("): fields are listed out of declaration order or twice"),
        };
        m.str(". List every field of the struct, `_pad` fields included, in declaration order in ABI_TYPES (abi/src/fingerprint.rs)")
    }
}

impl fmt::Display for RegistryProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message().as_str())
    }
}

/// Checks that the fields listed for each type cover every byte of it, in order, with no gap.
///
/// Together with zerocopy's `IntoBytes` derive (no hidden padding) this proves that every byte of
/// every ABI struct is a field the fingerprint and the golden files see.
pub const fn check_registry(types: &[TypeLayout]) -> Result<(), RegistryProblem> {
    let mut t = 0;
    while t < types.len() {
        let ty = &types[t];
        let mut at = 0;
        let mut f = 0;
        while f < ty.fields.len() {
            let field = &ty.fields[f];
            if field.offset > at {
                return Err(RegistryProblem::Uncovered {
                    ty: ty.name,
                    from: at,
                    to: field.offset,
                    before: Some(field.name),
                });
            }
            if field.offset < at {
                return Err(RegistryProblem::OutOfOrder {
                    ty: ty.name,
                    field: field.name,
                    offset: field.offset,
                    previous_end: at,
                });
            }
            at += field.size;
            f += 1;
        }
        if at < ty.size {
            return Err(RegistryProblem::Uncovered { ty: ty.name, from: at, to: ty.size, before: None });
        }
        t += 1;
    }
    Ok(())
}

const _: () = match check_registry(ABI_TYPES) {
    Ok(()) => {}
    Err(problem) => panic!("{}", problem.message().as_str()),
};
