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
