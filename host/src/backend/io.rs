//! Typed reads and writes at a device address: [`DeviceIo`], one small trait over two byte copies.
//!
//! Every [`DeviceBackend`] is a [`DeviceIo`] (its `copy_from_device` / `copy_to_device`), so host
//! code reads a device structure as `backend.read_obj::<SmHeader>(addr)?` instead of a helper per
//! type. What is read is a copy: device memory is untrusted input, and every field read this way is
//! checked before it is believed.

use pto_abi::DevAddr;
use zerocopy::{FromBytes, Immutable, IntoBytes};

use super::{BackendError, DeviceBackend};

/// Byte copies between the host and device memory, with typed reads and writes on top.
pub trait DeviceIo {
    /// Copies device memory at `src` into `dst`.
    fn read_bytes(&self, src: DevAddr, dst: &mut [u8]) -> Result<(), BackendError>;
    /// Copies `src` to device memory at `dst`.
    fn write_bytes(&self, dst: DevAddr, src: &[u8]) -> Result<(), BackendError>;

    /// Reads a `T` at `addr` (one copy of `size_of::<T>()` bytes).
    fn read_obj<T: FromBytes + IntoBytes>(&self, addr: DevAddr) -> Result<T, BackendError> {
        let mut v = T::new_zeroed();
        self.read_bytes(addr, v.as_mut_bytes())?;
        Ok(v)
    }

    /// Reads `out.len()` consecutive `T`s at `addr` (one copy).
    fn read_slice<T: FromBytes + IntoBytes>(&self, addr: DevAddr, out: &mut [T]) -> Result<(), BackendError> {
        self.read_bytes(addr, out.as_mut_bytes())
    }

    /// Writes `value` at `addr` (one copy).
    fn write_obj<T: IntoBytes + Immutable + ?Sized>(&self, addr: DevAddr, value: &T) -> Result<(), BackendError> {
        self.write_bytes(addr, value.as_bytes())
    }
}

impl<B: DeviceBackend + ?Sized> DeviceIo for B {
    fn read_bytes(&self, src: DevAddr, dst: &mut [u8]) -> Result<(), BackendError> {
        self.copy_from_device(src, dst)
    }

    fn write_bytes(&self, dst: DevAddr, src: &[u8]) -> Result<(), BackendError> {
        self.copy_to_device(dst, src)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::BackendOp;
    use std::cell::RefCell;

    /// Device memory as a host vector starting at address 0x1000.
    struct VecMemory(RefCell<Vec<u8>>);

    const BASE: u64 = 0x1000;

    impl VecMemory {
        fn range(&self, op: BackendOp, addr: DevAddr, len: usize) -> Result<std::ops::Range<usize>, BackendError> {
            let bad = BackendError::InvalidRange { op, addr, len: len as u64 };
            let start = addr.get().checked_sub(BASE).ok_or(bad.clone())? as usize;
            let end = start.checked_add(len).filter(|&e| e <= self.0.borrow().len()).ok_or(bad)?;
            Ok(start..end)
        }
    }

    impl DeviceIo for VecMemory {
        fn read_bytes(&self, src: DevAddr, dst: &mut [u8]) -> Result<(), BackendError> {
            let r = self.range(BackendOp::CopyFromDevice, src, dst.len())?;
            dst.copy_from_slice(&self.0.borrow()[r]);
            Ok(())
        }

        fn write_bytes(&self, dst: DevAddr, src: &[u8]) -> Result<(), BackendError> {
            let r = self.range(BackendOp::CopyToDevice, dst, src.len())?;
            self.0.borrow_mut()[r].copy_from_slice(src);
            Ok(())
        }
    }

    #[test]
    fn typed_reads_and_writes_are_byte_copies_at_the_address() {
        let mem = VecMemory(RefCell::new(vec![0; 64]));
        mem.write_obj(DevAddr(BASE + 8), &0x0102_0304_0506_0708u64).unwrap();
        assert_eq!(mem.read_obj::<u64>(DevAddr(BASE + 8)).unwrap(), 0x0102_0304_0506_0708);
        assert_eq!(mem.read_obj::<u32>(DevAddr(BASE + 8)).unwrap(), 0x0506_0708, "little-endian bytes");
        mem.write_obj(DevAddr(BASE + 16), &[1u32, 2, 3][..]).unwrap();
        let mut back = [0u32; 3];
        mem.read_slice(DevAddr(BASE + 16), &mut back).unwrap();
        assert_eq!(back, [1, 2, 3]);
        let e = mem.read_obj::<u64>(DevAddr(BASE + 60)).unwrap_err();
        assert!(matches!(e, BackendError::InvalidRange { op: BackendOp::CopyFromDevice, len: 8, .. }), "{e}");
    }
}
