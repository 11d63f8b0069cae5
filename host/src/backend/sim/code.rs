//! The code space of the simulated device: which Rust kernel and which orchestration runs at which
//! code address.
//!
//! Real hardware fetches a kernel's machine code from its device address; the simulated device
//! cannot run those bytes, so code is *loaded* here instead: a [`SimProgram`] (kernel addresses →
//! Rust kernels, orchestration address → orchestration function) stays resolvable for as long as
//! its [`CodeGuard`] guard lives. Loads are counted per address, so two runs sharing a kernel
//! address load and unload independently. The AICore and AICPU entries ([`super::firmware`])
//! resolve through this space.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use pto_abi::DevAddr;
use pto_device::orch::OrchestrationFn;

use super::cores::SimKernelTable;
use crate::backend::{CodeError, CodeKind, KernelFn};

/// Code one run needs: its orchestration and its kernels, by code address.
#[derive(Clone, Copy, Debug)]
pub struct SimProgram<'a> {
    /// Orchestration entry address and function.
    pub orchestration: (DevAddr, OrchestrationFn),
    /// Kernel code address → Rust kernel.
    pub kernels: &'a SimKernelTable,
}

#[derive(Default)]
struct Loaded {
    kernels: HashMap<DevAddr, (KernelFn, u32)>,
    orchestrations: HashMap<DevAddr, (OrchestrationFn, u32)>,
}

/// Addresses → code of one simulated device.
#[derive(Default)]
pub struct SimCodeSpace {
    loaded: Mutex<Loaded>,
    /// The kernels of `loaded`, rebuilt on every change: cores take a snapshot when they start
    /// and resolve without a lock.
    kernels: RwLock<Arc<SimKernelTable>>,
}

impl std::fmt::Debug for SimCodeSpace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let l = self.lock();
        f.debug_struct("SimCodeSpace")
            .field("kernels", &l.kernels.len())
            .field("orchestrations", &l.orchestrations.len())
            .finish()
    }
}

fn check<F: Copy + PartialEq>(
    map: &HashMap<DevAddr, (F, u32)>,
    addr: DevAddr,
    f: F,
    kind: CodeKind,
) -> Result<(), CodeError> {
    if addr.is_null() {
        return Err(CodeError::Null);
    }
    match map.get(&addr) {
        Some(&(g, loads)) if g != f => Err(CodeError::Conflict { addr, kind, loads }),
        _ => Ok(()),
    }
}

fn add<F: Copy>(map: &mut HashMap<DevAddr, (F, u32)>, addr: DevAddr, f: F) {
    map.entry(addr).or_insert((f, 0)).1 += 1;
}

fn remove<F>(map: &mut HashMap<DevAddr, (F, u32)>, addr: DevAddr) {
    if let Some(e) = map.get_mut(&addr) {
        e.1 -= 1;
        if e.1 == 0 {
            map.remove(&addr);
        }
    }
}

impl SimCodeSpace {
    fn lock(&self) -> MutexGuard<'_, Loaded> {
        // Every update below completes before the guard drops; a panic cannot leave half of one.
        self.loaded.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Loads `program`: its code stays resolvable until the returned guard drops. Nothing is
    /// loaded when an address would get a second meaning.
    pub fn load(self: &Arc<Self>, program: &SimProgram<'_>) -> Result<CodeGuard, CodeError> {
        let mut l = self.lock();
        let (orch_addr, orch) = program.orchestration;
        check(&l.orchestrations, orch_addr, orch, CodeKind::Orchestration)?;
        for (addr, f) in program.kernels.iter() {
            check(&l.kernels, addr, f, CodeKind::Kernel)?;
        }
        add(&mut l.orchestrations, orch_addr, orch);
        let kernels: Vec<DevAddr> = program.kernels.iter().map(|(a, _)| a).collect();
        for (addr, f) in program.kernels.iter() {
            add(&mut l.kernels, addr, f);
        }
        self.publish(&l);
        Ok(CodeGuard { space: self.clone(), orchestration: orch_addr, kernels })
    }

    fn unload(&self, orchestration: DevAddr, kernels: &[DevAddr]) {
        let mut l = self.lock();
        remove(&mut l.orchestrations, orchestration);
        for &addr in kernels {
            remove(&mut l.kernels, addr);
        }
        self.publish(&l);
    }

    fn publish(&self, l: &Loaded) {
        let mut table = SimKernelTable::new();
        for (&addr, &(f, _)) in &l.kernels {
            table.insert(addr, f);
        }
        *self.kernels.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(table);
    }

    /// The kernels loaded now (a snapshot: later loads do not change it).
    pub fn kernels(&self) -> Arc<SimKernelTable> {
        self.kernels.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The orchestration loaded at `addr`, if any.
    pub fn orchestration(&self, addr: DevAddr) -> Option<OrchestrationFn> {
        self.lock().orchestrations.get(&addr).map(|&(f, _)| f)
    }

    /// Addresses with loaded code: (kernels, orchestrations).
    pub fn loaded_counts(&self) -> (usize, usize) {
        let l = self.lock();
        (l.kernels.len(), l.orchestrations.len())
    }
}

/// Code loaded by [`SimCodeSpace::load`]; unloaded when dropped.
#[derive(Debug)]
pub struct CodeGuard {
    space: Arc<SimCodeSpace>,
    orchestration: DevAddr,
    kernels: Vec<DevAddr>,
}

impl Drop for CodeGuard {
    fn drop(&mut self) {
        self.space.unload(self.orchestration, &self.kernels);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pto_device::kernel::KernelInvocation;
    use pto_device::orch::{OrchArgs, OrchError, Orchestrator};

    fn k1(_: &KernelInvocation<'_>) {}
    fn k2(_: &KernelInvocation<'_>) {
        std::hint::black_box(2);
    }
    fn orch(_: &mut Orchestrator<'_, '_>, _: &OrchArgs<'_>) -> Result<(), OrchError> {
        Ok(())
    }

    #[test]
    fn loads_are_counted_per_address_and_a_conflict_loads_nothing() {
        let space = Arc::new(SimCodeSpace::default());
        let mut a = SimKernelTable::new();
        a.insert(DevAddr(0x100), k1);
        let mut b = SimKernelTable::new();
        b.insert(DevAddr(0x100), k1);
        b.insert(DevAddr(0x200), k2);
        let first = space.load(&SimProgram { orchestration: (DevAddr(0x10), orch), kernels: &a }).unwrap();
        let second = space.load(&SimProgram { orchestration: (DevAddr(0x10), orch), kernels: &b }).unwrap();
        assert_eq!(space.loaded_counts(), (2, 1));
        drop(first);
        use pto_device::aicore::KernelResolver;
        assert!(space.kernels().resolve(DevAddr(0x100)).is_some(), "still loaded by the second program");

        let mut clash = SimKernelTable::new();
        clash.insert(DevAddr(0x100), k2);
        clash.insert(DevAddr(0x300), k1);
        let e = space.load(&SimProgram { orchestration: (DevAddr(0x20), orch), kernels: &clash }).unwrap_err();
        assert_eq!(e, CodeError::Conflict { addr: DevAddr(0x100), kind: CodeKind::Kernel, loads: 1 });
        assert!(space.kernels().resolve(DevAddr(0x300)).is_none() && space.orchestration(DevAddr(0x20)).is_none());

        drop(second);
        assert_eq!(space.loaded_counts(), (0, 0));
        assert!(space.orchestration(DevAddr(0x10)).is_none());
    }
}
