//! The callable registry of a runner: callable ids (`cid` 0..64) → prepared artifacts, over a store
//! of device copies deduplicated by content hash with a refcount.
//!
//! Registering asks the backend to resolve every name first
//! ([`DeviceBackend::check_code`](crate::backend::DeviceBackend::check_code): nothing touches the
//! device for a blob that cannot run), then reuses a resident device copy of an identical blob or uploads a new one. Unregistering the
//! last user of a device copy frees it.

use std::collections::HashMap;

use pto_abi::callable::ChipCallableView;
use pto_abi::task::TensorDirection;
use pto_abi::DevAddr;

use super::blob::ChipCallable;
use super::memory::DeviceMemory;
use super::upload::{upload_and_collect_child_addrs, UploadError, UploadedCallable};
use crate::backend::{func_table, BackendError, CodeError, CodeRef, RunCode};

/// Number of callable ids; valid ids are `0..MAX_CALLABLE_IDS`.
pub const MAX_CALLABLE_IDS: u32 = 64;

/// One child kernel of a registered callable.
#[derive(Clone, Debug)]
pub struct PreparedChild {
    /// Func id.
    pub func_id: u32,
    /// Device address of the kernel code.
    pub code_addr: DevAddr,
    /// Name in the child header.
    pub name: String,
    /// The child's binary (what the backend resolves or runs).
    pub binary: Vec<u8>,
    /// Argument directions.
    pub signature: Vec<TensorDirection>,
}

/// Everything a run of a registered callable needs, as a value.
#[derive(Clone, Debug)]
pub struct PreparedCallableArtifacts {
    /// The callable id.
    pub cid: u32,
    /// FNV-1a 64 over the blob.
    pub content_hash: u64,
    /// FNV-1a 64 over the children.
    pub aicore_image_hash: u64,
    /// Device address of the blob's device copy.
    pub device_base: DevAddr,
    /// Bytes of the device copy.
    pub device_size: u64,
    /// Device address of the orchestration bytes.
    pub orchestration_addr: DevAddr,
    /// Bytes of orchestration.
    pub orchestration_size: u64,
    /// Orchestration name.
    pub orchestration_name: String,
    /// The orchestration bytes the blob carries.
    pub orchestration_bytes: Vec<u8>,
    /// Config name.
    pub config_name: String,
    /// Chip argument directions.
    pub signature: Vec<TensorDirection>,
    /// Every child, in table order.
    pub children: Vec<PreparedChild>,
}

impl PreparedCallableArtifacts {
    /// `(func_id, code address)` per child.
    pub fn child_addrs(&self) -> impl Iterator<Item = (u32, DevAddr)> + '_ {
        self.children.iter().map(|c| (c.func_id, c.code_addr))
    }

    /// The func-id table of a run of this callable (see [`func_table`]): entry `f` is the code
    /// address of the child with func id `f`.
    pub fn func_table(&self) -> Result<Vec<DevAddr>, CodeError> {
        func_table(self.child_addrs())
    }

    /// The code of a run of this callable, named for the backend: the orchestration and every
    /// child at their addresses in the device copy.
    pub fn code(&self) -> RunCode<'_> {
        RunCode {
            orchestration: CodeRef::Callable {
                name: &self.orchestration_name,
                bytes: &self.orchestration_bytes,
                addr: self.orchestration_addr,
            },
            kernels: self
                .children
                .iter()
                .map(|c| (c.func_id, CodeRef::Callable { name: &c.name, bytes: &c.binary, addr: c.code_addr }))
                .collect(),
        }
    }
}

/// The code of `view` before its upload (every address null), for the backend's check.
fn unplaced_code<'a>(view: &ChipCallableView<'a>) -> RunCode<'a> {
    RunCode {
        orchestration: CodeRef::Callable {
            name: view.orchestration_name(),
            bytes: view.orchestration_bytes(),
            addr: DevAddr::NULL,
        },
        kernels: view
            .children()
            .map(|c| (c.func_id, CodeRef::Callable { name: c.name, bytes: c.code, addr: DevAddr::NULL }))
            .collect(),
    }
}

/// Counters of device work done by the registry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegistryCounters {
    /// Blobs uploaded (device copies created).
    pub uploads: u64,
    /// Registrations served by an already resident device copy.
    pub dedup_hits: u64,
    /// Device copies freed.
    pub frees: u64,
    /// Orchestrations registered with the device (one per device copy).
    pub orchestration_registrations: u64,
}

/// A failed register or unregister.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// A cid outside `0..MAX_CALLABLE_IDS`.
    #[error("callable id {cid} is out of range (callable ids are 0..{max})")]
    CidOutOfRange {
        /// The cid.
        cid: u32,
        /// Number of cids.
        max: u32,
    },
    /// The cid already holds a callable.
    #[error("callable id {cid} is already registered (content hash {content_hash:#018x}); unregister it first")]
    CidInUse {
        /// The cid.
        cid: u32,
        /// Content hash of the callable it holds.
        content_hash: u64,
    },
    /// The cid holds no callable.
    #[error("callable id {cid} is not registered")]
    NotRegistered {
        /// The cid.
        cid: u32,
    },
    /// The backend cannot resolve the blob's code.
    #[error("callable id {cid}: {source}")]
    Code {
        /// The cid.
        cid: u32,
        /// Why the code does not resolve.
        #[source]
        source: CodeError,
    },
    /// The upload failed; nothing stays on the device.
    #[error("callable id {cid}: {source}")]
    Upload {
        /// The cid.
        cid: u32,
        /// The upload error.
        #[source]
        source: UploadError,
    },
    /// Freeing the last device copy failed; the registry forgot it anyway (its memory is abandoned).
    #[error("callable id {cid}: freeing the device copy at {base}: {source}")]
    Free {
        /// The cid.
        cid: u32,
        /// Device address of the copy.
        base: DevAddr,
        /// The backend's error.
        #[source]
        source: BackendError,
    },
}

/// One device copy of a blob and how many cids use it.
#[derive(Debug)]
struct ResidentBlob {
    blob: ChipCallable,
    uploaded: UploadedCallable,
    users: u32,
}

/// Callable ids → prepared artifacts, over deduplicated device copies.
#[derive(Debug)]
pub struct CallableRegistry {
    slots: Vec<Option<PreparedCallableArtifacts>>,
    resident: HashMap<u64, Vec<ResidentBlob>>,
    counters: RegistryCounters,
}

impl Default for CallableRegistry {
    fn default() -> Self {
        Self::new()
    }
}

fn check_cid(cid: u32) -> Result<usize, RegistryError> {
    if cid >= MAX_CALLABLE_IDS {
        return Err(RegistryError::CidOutOfRange { cid, max: MAX_CALLABLE_IDS });
    }
    Ok(cid as usize)
}

impl CallableRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        CallableRegistry {
            slots: (0..MAX_CALLABLE_IDS).map(|_| None).collect(),
            resident: HashMap::new(),
            counters: RegistryCounters::default(),
        }
    }

    /// Counters so far.
    pub fn counters(&self) -> RegistryCounters {
        self.counters
    }

    /// Device copies currently resident.
    pub fn resident_count(&self) -> usize {
        self.resident.values().map(Vec::len).sum()
    }

    /// The artifacts of `cid`, if registered.
    pub fn artifacts(&self, cid: u32) -> Option<&PreparedCallableArtifacts> {
        self.slots.get(cid as usize)?.as_ref()
    }

    /// Registers `blob` as `cid`: has `mem`'s backend check that it resolves every name, uploads
    /// the blob (allocating from `mem`) unless an identical blob is resident, and returns its
    /// artifacts.
    pub fn register_callable(
        &mut self,
        mem: &mut dyn DeviceMemory,
        cid: u32,
        blob: &ChipCallable,
    ) -> Result<PreparedCallableArtifacts, RegistryError> {
        let slot = check_cid(cid)?;
        if let Some(held) = &self.slots[slot] {
            return Err(RegistryError::CidInUse { cid, content_hash: held.content_hash });
        }
        let view = blob.view();
        mem.backend().check_code(&unplaced_code(&view)).map_err(|source| RegistryError::Code { cid, source })?;

        let content_hash = view.content_hash();
        let uploaded = self.acquire(mem, cid, content_hash, blob)?;

        let artifacts = PreparedCallableArtifacts {
            cid,
            content_hash,
            aicore_image_hash: view.aicore_image_hash(),
            device_base: uploaded.base,
            device_size: uploaded.size,
            orchestration_addr: uploaded.orchestration_addr,
            orchestration_size: view.orchestration_bytes().len() as u64,
            orchestration_name: view.orchestration_name().to_owned(),
            orchestration_bytes: view.orchestration_bytes().to_vec(),
            config_name: view.config_name().to_owned(),
            signature: view.directions().collect(),
            children: view
                .children()
                .zip(&uploaded.child_addrs)
                .map(|(c, &(func_id, code_addr))| PreparedChild {
                    func_id,
                    code_addr,
                    name: c.name.to_owned(),
                    binary: c.code.to_vec(),
                    signature: c.directions().collect(),
                })
                .collect(),
        };
        self.slots[slot] = Some(artifacts.clone());
        Ok(artifacts)
    }

    /// A device copy of `blob`: a resident identical one (one more user) or a fresh upload.
    fn acquire(
        &mut self,
        mem: &mut dyn DeviceMemory,
        cid: u32,
        content_hash: u64,
        blob: &ChipCallable,
    ) -> Result<UploadedCallable, RegistryError> {
        let same_hash = self.resident.entry(content_hash).or_default();
        if let Some(resident) = same_hash.iter_mut().find(|r| r.blob == *blob) {
            resident.users += 1;
            self.counters.dedup_hits += 1;
            return Ok(resident.uploaded.clone());
        }
        let uploaded = match upload_and_collect_child_addrs(mem, blob) {
            Ok(uploaded) => uploaded,
            Err(source) => {
                if same_hash.is_empty() {
                    self.resident.remove(&content_hash);
                }
                return Err(RegistryError::Upload { cid, source });
            }
        };
        same_hash.push(ResidentBlob { blob: blob.clone(), uploaded: uploaded.clone(), users: 1 });
        self.counters.uploads += 1;
        // The device side registers the orchestration once per device copy.
        self.counters.orchestration_registrations += 1;
        Ok(uploaded)
    }

    /// Unregisters `cid`; frees its device copy when no other cid uses it.
    pub fn unregister_callable(&mut self, mem: &mut dyn DeviceMemory, cid: u32) -> Result<(), RegistryError> {
        let slot = check_cid(cid)?;
        let artifacts = self.slots[slot].take().ok_or(RegistryError::NotRegistered { cid })?;
        self.release(mem, cid, artifacts.content_hash, artifacts.device_base)
    }

    fn release(
        &mut self,
        mem: &mut dyn DeviceMemory,
        cid: u32,
        content_hash: u64,
        base: DevAddr,
    ) -> Result<(), RegistryError> {
        let Some(same_hash) = self.resident.get_mut(&content_hash) else { return Ok(()) };
        let Some(pos) = same_hash.iter().position(|r| r.uploaded.base == base) else { return Ok(()) };
        same_hash[pos].users -= 1;
        if same_hash[pos].users > 0 {
            return Ok(());
        }
        same_hash.swap_remove(pos);
        if same_hash.is_empty() {
            self.resident.remove(&content_hash);
        }
        self.counters.frees += 1;
        mem.free(base).map_err(|source| RegistryError::Free { cid, base, source })
    }

    /// Unregisters every cid and frees every device copy (runner teardown). Returns the first
    /// failure; every copy is forgotten either way.
    pub fn release_all(&mut self, mem: &mut dyn DeviceMemory) -> Result<(), RegistryError> {
        let mut first_error = Ok(());
        for cid in 0..MAX_CALLABLE_IDS {
            if self.slots[cid as usize].is_some() {
                let result = self.unregister_callable(mem, cid);
                if first_error.is_ok() {
                    first_error = result;
                }
            }
        }
        first_error
    }

    /// Forgets every cid and device copy without freeing (after a device fault the memory is
    /// abandoned, not freed).
    pub fn abandon_all(&mut self) {
        self.slots.iter_mut().for_each(|s| *s = None);
        self.resident.clear();
    }
}
