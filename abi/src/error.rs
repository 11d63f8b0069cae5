//! Error codes the device reports: runtime codes latched by the orchestrator or a scheduler while
//! running, and boot/image codes found before anything in an image is trusted.
//!
//! Runtime codes are below 1000; boot codes start at [`BOOT_ERROR_BASE`], so they never collide.
//! A run's status is `-(code)`.

/// First code of the boot/image range.
pub const BOOT_ERROR_BASE: u32 = 1000;

crate::abi_enum! {
    /// Errors latched by the orchestrator or a scheduler while running.
    pub enum RuntimeErrorCode {
        /// A scope holds window-1 tasks and can never release them.
        ScopeDeadlock = 1 => "SCOPE_DEADLOCK", "a scope holds window-1 tasks and can never release them",
        /// The ring heap cannot satisfy an allocation and never will.
        HeapRingDeadlock = 2 => "HEAP_RING_DEADLOCK", "a ring heap is full and the tasks pinning it can never be consumed",
        /// The task window is full and never drains.
        FlowControlDeadlock = 3 => "FLOW_CONTROL_DEADLOCK", "a ring's task window is full and never drains",
        /// The dep-list pool is exhausted.
        DepPoolOverflow = 4 => "DEP_POOL_OVERFLOW", "a ring's dep-list pool is exhausted",
        /// A submit had invalid arguments.
        InvalidArgs = 5 => "INVALID_ARGS", "a submit had invalid arguments",
        /// A require-sync-start request was invalid.
        RequireSyncStartInvalid = 7 => "REQUIRE_SYNC_START_INVALID", "a require-sync-start request was invalid",
        /// Waiting for a tensor timed out.
        TensorWaitTimeout = 8 => "TENSOR_WAIT_TIMEOUT", "waiting for a tensor's producer timed out",
        /// The orchestration reported a fatal error.
        ExplicitOrchFatal = 9 => "EXPLICIT_ORCH_FATAL", "the orchestration reported a fatal error",
        /// A scope holds more tasks than the scope task list can track.
        ScopeTasksOverflow = 10 => "SCOPE_TASKS_OVERFLOW", "open scopes hold more tasks than the scope task list tracks",
        /// The tensor-map entry pool is exhausted.
        TensormapOverflow = 11 => "TENSORMAP_OVERFLOW", "the tensor-map entry pool is exhausted",
        /// A scheduler made no progress within its budget.
        SchedulerTimeout = 100 => "SCHEDULER_TIMEOUT", "a scheduler made no progress within its budget",
        /// A task slot's fanout lock stayed held for a whole budget (a stuck holder or overwritten
        /// device memory); the waiting thread (orchestrator or scheduler) took nothing and stopped.
        SlotLockTimeout = 101 => "SLOT_LOCK_TIMEOUT", "a task slot's fanout lock stayed held for a whole budget",
    }
}

crate::abi_enum! {
    /// Sub-class of [`RuntimeErrorCode::SchedulerTimeout`].
    pub enum StallClass {
        /// No stall recorded.
        None = 0,
        /// Tasks are running on cores but none finishes.
        RunningStalled = 1,
        /// Tasks are ready but no core takes them.
        ReadyButIdle = 2,
        /// Pending tasks wait on producers that can never complete.
        DependencyDeadlock = 3,
        /// Schedulers wait for an orchestrator that submits nothing.
        OrchestratorStarvation = 4,
    }
}

crate::abi_enum! {
    /// Errors found while booting from an image, before anything in it is trusted.
    pub enum BootErrorCode {
        /// The launch descriptor's magic is wrong.
        BadLaunchDescriptor = 1000 => "BOOT_BAD_LAUNCH_DESCRIPTOR", "the launch descriptor's magic or fingerprint is wrong",
        /// The image header's magic is wrong.
        BadMagic = 1001 => "BOOT_BAD_MAGIC", "the image does not start with the image magic",
        /// The image was built for another ABI version.
        UnsupportedVersion = 1002 => "BOOT_UNSUPPORTED_VERSION", "the image was built for another ABI version",
        /// The image's ABI fingerprint differs from the firmware's.
        FingerprintMismatch = 1003 => "BOOT_FINGERPRINT_MISMATCH", "the image's ABI fingerprint differs from the firmware's",
        /// The image is shorter than its header or than the layout needs.
        ImageTruncated = 1004 => "BOOT_IMAGE_TRUNCATED", "the image is shorter than its header or layout needs",
        /// The image is larger than the arena region it lives in.
        ImageLargerThanRegion = 1005 => "BOOT_IMAGE_LARGER_THAN_REGION", "the image is larger than the arena region holding it",
        /// A region base is not 1024-aligned.
        MisalignedBase = 1006 => "BOOT_MISALIGNED_BASE", "a region base is not 1024-byte aligned",
        /// A region base is null.
        NullBase = 1007 => "BOOT_NULL_BASE", "a region base is null",
        /// The header size differs from the firmware's.
        HeaderSizeMismatch = 1008 => "BOOT_HEADER_SIZE_MISMATCH", "the image header size differs from the firmware's",
        /// The stored layout differs from the one the firmware computes from the stored sizing.
        LayoutMismatch = 1009 => "BOOT_LAYOUT_MISMATCH", "the stored layout differs from the one computed from its sizing",
        /// The stored sizing key is invalid.
        InvalidSizing = 1010 => "BOOT_INVALID_SIZING", "the stored sizing key breaks a sizing rule",
        /// The SM region is smaller than the layout needs.
        SmRegionTooSmall = 1011 => "BOOT_SM_REGION_TOO_SMALL", "the SM region is smaller than the layout needs",
        /// The GM heap region is smaller than the layout needs.
        HeapRegionTooSmall = 1012 => "BOOT_HEAP_REGION_TOO_SMALL", "the GM heap region is smaller than the layout needs",
        /// The runtime header's magic is wrong.
        BadRuntimeHeader = 1013 => "BOOT_BAD_RUNTIME_HEADER", "the runtime header's magic is wrong",
        /// A pointer audit found a field outside its region.
        PointerAuditFailed = 1014 => "BOOT_POINTER_AUDIT_FAILED", "a runtime pointer lands outside the region it must point into",
        /// The launch asks for more threads or clusters than the ABI supports.
        BadLaunchParameters = 1015 => "BOOT_BAD_LAUNCH_PARAMETERS", "the launch asks for more threads or clusters than supported",
        /// The launch's trace region (level, base, size or header) fails its checks.
        BadTraceRegion = 1016 => "BOOT_BAD_TRACE_REGION", "the launch's trace region is malformed",
        /// The image's bytes do not hash to the checksum in its header.
        ImageChecksumMismatch = 1017 => "BOOT_IMAGE_CHECKSUM_MISMATCH", "the image's bytes differ from the ones it was built with (its checksum does not match)",
    }
}

/// Any code the device reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeviceErrorCode {
    /// A runtime code (< 1000).
    Runtime(RuntimeErrorCode),
    /// A boot/image code (>= 1000).
    Boot(BootErrorCode),
}

impl DeviceErrorCode {
    /// Decodes a raw code; `Err` carries an unknown value.
    pub fn from_raw(v: u32) -> Result<Self, u32> {
        if v >= BOOT_ERROR_BASE {
            BootErrorCode::try_from(v).map(DeviceErrorCode::Boot)
        } else {
            RuntimeErrorCode::try_from(v).map(DeviceErrorCode::Runtime)
        }
    }

    /// The raw code.
    pub fn raw(self) -> u32 {
        match self {
            DeviceErrorCode::Runtime(c) => c as u32,
            DeviceErrorCode::Boot(c) => c as u32,
        }
    }

    /// The code's name.
    pub fn name(self) -> &'static str {
        match self {
            DeviceErrorCode::Runtime(c) => c.name(),
            DeviceErrorCode::Boot(c) => c.name(),
        }
    }

    /// One line saying what went wrong.
    pub fn description(self) -> &'static str {
        match self {
            DeviceErrorCode::Runtime(c) => c.description(),
            DeviceErrorCode::Boot(c) => c.description(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_do_not_collide() {
        for &c in RuntimeErrorCode::ALL {
            assert!((c as u32) < BOOT_ERROR_BASE);
            assert_eq!(RuntimeErrorCode::try_from(c as u32), Ok(c));
            assert_eq!(DeviceErrorCode::from_raw(c as u32), Ok(DeviceErrorCode::Runtime(c)));
        }
        for &c in BootErrorCode::ALL {
            assert!((c as u32) >= BOOT_ERROR_BASE);
            assert_eq!(DeviceErrorCode::from_raw(c as u32), Ok(DeviceErrorCode::Boot(c)));
        }
        assert_eq!(RuntimeErrorCode::try_from(6), Err(6));
        assert_eq!(DeviceErrorCode::from_raw(1999), Err(1999));
        assert_eq!(RuntimeErrorCode::SchedulerTimeout.name(), "SCHEDULER_TIMEOUT");
        assert_eq!(RuntimeErrorCode::try_from(101), Ok(RuntimeErrorCode::SlotLockTimeout));
        assert_eq!(RuntimeErrorCode::SlotLockTimeout.name(), "SLOT_LOCK_TIMEOUT");
    }
}
