//! A failed run in words: the error code's name and description, where, and what to change.

use std::fmt;

use pto_abi::error::{BootErrorCode, DeviceErrorCode, RuntimeErrorCode, StallClass};
use pto_abi::sm::SmHeader;
use pto_device::orch::InvalidArgs;

/// The error a run's device threads latched, read back from the SM error words (or the boot
/// report).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceFailure {
    /// The raw code (the run status is its negation).
    pub code: u32,
    /// The code's name, e.g. `HEAP_RING_DEADLOCK`.
    pub name: &'static str,
    /// What the code means.
    pub description: &'static str,
    /// The ring concerned, if any.
    pub ring: Option<u32>,
    /// The code-specific detail word.
    pub detail: u64,
    /// For `SCHEDULER_TIMEOUT`: the stall class.
    pub stall: Option<StallClass>,
    /// What to change.
    pub hint: String,
}

impl DeviceFailure {
    /// The failure latched in an SM header, orchestrator word first; `None` when both are clear.
    pub fn from_sm(sm: &SmHeader) -> Option<DeviceFailure> {
        if sm.orch.code != 0 {
            let ring = (sm.orch.ring != u32::MAX).then_some(sm.orch.ring);
            Some(Self::new(sm.orch.code, ring, sm.orch.detail, None))
        } else if sm.sched.code != 0 {
            let stall = StallClass::try_from(sm.sched.stall_class).ok();
            Some(Self::new(sm.sched.code, None, sm.sched.stall_task, stall))
        } else {
            None
        }
    }

    /// A failed boot.
    pub fn boot(code: BootErrorCode, detail: String) -> DeviceFailure {
        DeviceFailure {
            code: code as u32,
            name: code.name(),
            description: code.description(),
            ring: None,
            detail: 0,
            stall: None,
            hint: detail,
        }
    }

    fn new(code: u32, ring: Option<u32>, detail: u64, stall: Option<StallClass>) -> DeviceFailure {
        let (name, description) = match DeviceErrorCode::from_raw(code) {
            Ok(c) => (c.name(), c.description()),
            Err(_) => ("UNKNOWN", "the device reported a code this host does not know"),
        };
        let r = ring.map(|r| r.to_string()).unwrap_or_else(|| "?".into());
        let hint = match RuntimeErrorCode::try_from(code) {
            Ok(RuntimeErrorCode::ScopeDeadlock) => format!(
                "a scope submitted more tasks than ring {r}'s task window holds; enlarge --window for ring {r} \
                 or end scopes sooner"
            ),
            Ok(RuntimeErrorCode::HeapRingDeadlock) => format!(
                "ring {r}'s output heap cannot hold the outputs its open scope pins ({detail} bytes requested); \
                 enlarge --heap for ring {r}"
            ),
            Ok(RuntimeErrorCode::FlowControlDeadlock) => format!(
                "ring {r}'s task window stayed full for the whole orchestrator budget; enlarge --window for ring {r} \
                 or raise the orchestrator budget"
            ),
            Ok(RuntimeErrorCode::DepPoolOverflow) => format!(
                "ring {r}'s dep-list pool cannot hold the {detail} edge(s) needed; enlarge --dep-pool for ring {r}"
            ),
            Ok(RuntimeErrorCode::InvalidArgs) => match InvalidArgs::from_detail(detail) {
                Some(reason) => format!("{} (argument {})", reason.describe(), detail as u32),
                None => format!("invalid argument (detail {detail:#x})"),
            },
            Ok(RuntimeErrorCode::ExplicitOrchFatal) if detail == pto_device::aicpu::ORCH_ABORT_DETAIL => {
                "the orchestration aborted (it panicked) instead of returning".to_string()
            }
            Ok(RuntimeErrorCode::ExplicitOrchFatal) => format!("the orchestration stopped itself with detail {detail:#x}"),
            Ok(RuntimeErrorCode::TensormapOverflow) => {
                "the tensor map is full (it holds 2 entries per task-window slot); enlarge --window or end scopes sooner"
                    .to_string()
            }
            Ok(RuntimeErrorCode::SlotLockTimeout) => format!(
                "the fanout lock of task {detail:#x} (ring {}, task {}) stayed held for the whole budget: a device \
                 thread stopped while holding it or device memory holding it was overwritten; the run stopped \
                 without touching that task's slot",
                pto_abi::task::task_id_ring(detail),
                pto_abi::task::task_id_local(detail)
            ),
            Ok(RuntimeErrorCode::SchedulerTimeout) => {
                let class = match stall {
                    Some(StallClass::RunningStalled) => format!("a kernel of task {detail:#x} ran past the budget"),
                    Some(StallClass::ReadyButIdle) => "ready tasks found no core that could run them".to_string(),
                    Some(StallClass::DependencyDeadlock) => "pending tasks wait for producers that never complete".to_string(),
                    Some(StallClass::OrchestratorStarvation) => "the orchestrator submitted nothing for the whole budget".to_string(),
                    _ => "no progress".to_string(),
                };
                format!("{class}; raise the scheduler budget if the work is just slow")
            }
            _ => String::new(),
        };
        DeviceFailure { code, name, description, ring, detail, stall, hint }
    }

    /// The run status: `-(code)`.
    pub fn status(&self) -> i64 {
        -(self.code as i64)
    }
}

impl fmt::Display for DeviceFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "run failed with {} ({}): {}", self.name, self.code, self.description)?;
        if let Some(r) = self.ring {
            write!(f, " [ring {r}]")?;
        }
        if !self.hint.is_empty() {
            write!(f, "; {}", self.hint)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use pto_abi::task::make_task_id;
    use zerocopy::FromZeros;

    use super::*;

    #[test]
    fn a_slot_lock_timeout_is_reported_with_its_task_from_either_error_word() {
        let task = make_task_id(2, 7);
        let mut sm = SmHeader::new_zeroed();
        sm.sched.code = RuntimeErrorCode::SlotLockTimeout as u32;
        sm.sched.stall_task = task;
        let f = DeviceFailure::from_sm(&sm).unwrap();
        assert_eq!((f.name, f.code, f.status()), ("SLOT_LOCK_TIMEOUT", 101, -101));
        let text = f.to_string();
        assert!(text.contains("fanout lock stayed held"), "{text}");
        assert!(text.contains("task 0x200000007 (ring 2, task 7)"), "{text}");

        let mut sm = SmHeader::new_zeroed();
        sm.orch.code = RuntimeErrorCode::SlotLockTimeout as u32;
        sm.orch.ring = 2;
        sm.orch.detail = task;
        let f = DeviceFailure::from_sm(&sm).unwrap();
        assert_eq!((f.ring, f.detail), (Some(2), task));
        assert!(f.to_string().contains("(ring 2, task 7)"), "{f}");
    }

    #[test]
    fn pto_error_knows_the_slot_lock_code_by_name_and_number() {
        use crate::cli::info::{find_code, hint};
        let c = find_code("slot_lock_timeout").unwrap();
        assert_eq!(find_code("-101"), Ok(c));
        assert_eq!(c, DeviceErrorCode::Runtime(RuntimeErrorCode::SlotLockTimeout));
        assert!(hint(c).contains("lock stayed held"));
    }
}
