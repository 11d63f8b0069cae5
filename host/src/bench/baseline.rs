//! Baselines measured beside the figures: the memory traffic a graph task costs at the least.
//!
//! The tensor-map and ready-queue baselines live with their benchmarks
//! ([`super::tensor_map`], [`super::ready_queue`]).

use std::hint::black_box;
use std::mem::{offset_of, size_of};

use pto_abi::task::{SlotState, TaskDescriptor, TaskPayload, TensorDesc};
use pto_device::hostmem::HostRegion;

/// What one task of a graph shape publishes: tensor arguments and producers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskTraffic {
    /// Tensor arguments (each a [`TensorDesc`] in the payload).
    pub tensors: u32,
    /// Producers (each one inline fanin word in the payload).
    pub fanin: u32,
}

/// The baseline of the graph figures: per task, a `memcpy` of the bytes a submit publishes
/// (descriptor, payload counts, its fanin words and the used part of its tensor descriptors, slot
/// state) into arrays
/// laid out like one ring of shared memory with the same task window, so the cache footprint
/// matches the runtime's.
pub struct DescriptorTraffic {
    window: u64,
    descriptors: HostRegion,
    payloads: HostRegion,
    slots: HostRegion,
    template: Vec<u8>,
    /// Tasks published so far (a run continues where the last one stopped, like task ids).
    next: u64,
}

impl DescriptorTraffic {
    /// Arrays for a task window of `window` slots (a power of two).
    pub fn new(window: u64) -> Self {
        debug_assert!(window.is_power_of_two());
        let mut template = vec![0u8; size_of::<TaskPayload>()];
        for (i, b) in template.iter_mut().enumerate() {
            *b = i as u8;
        }
        DescriptorTraffic {
            window,
            descriptors: HostRegion::new(window * size_of::<TaskDescriptor>() as u64),
            payloads: HostRegion::new(window * size_of::<TaskPayload>() as u64),
            slots: HostRegion::new(window * size_of::<SlotState>() as u64),
            template,
            next: 0,
        }
    }

    /// Publishes `tasks` tasks following `pattern` cyclically; returns nanoseconds per task.
    pub fn run(&mut self, pattern: &[TaskTraffic], tasks: u64) -> f64 {
        let mask = self.window - 1;
        let src = self.template.as_ptr();
        let (d, p, s) = (self.descriptors.ptr(), self.payloads.ptr(), self.slots.ptr());
        let tensors_at = offset_of!(TaskPayload, tensors);
        let fanin_at = offset_of!(TaskPayload, fanin);
        let first = self.next;
        self.next += tasks;
        super::ns_per_item(tasks, || {
            for i in first..first + tasks {
                let t = pattern[((i - first) % pattern.len() as u64) as usize];
                let slot = (i & mask) as usize;
                // SAFETY: `slot < window`; every copy stays inside its array's element and reads
                // from the template, which is as large as a payload.
                unsafe {
                    let pay = black_box(p.add(slot * size_of::<TaskPayload>()));
                    std::ptr::copy_nonoverlapping(src, pay, fanin_at);
                    for k in 0..t.tensors as usize {
                        let at = tensors_at + k * size_of::<TensorDesc>();
                        std::ptr::copy_nonoverlapping(src.add(at), pay.add(at), super::lines::tensor_written());
                    }
                    std::ptr::copy_nonoverlapping(src.add(fanin_at), pay.add(fanin_at), t.fanin as usize * 8);
                    let desc = black_box(d.add(slot * size_of::<TaskDescriptor>()));
                    std::ptr::copy_nonoverlapping(src, desc, size_of::<TaskDescriptor>());
                    let st = black_box(s.add(slot * size_of::<SlotState>()));
                    std::ptr::copy_nonoverlapping(src, st, size_of::<SlotState>());
                }
            }
        })
    }

    /// Bytes one task of `t` copies.
    pub fn bytes_per_task(t: TaskTraffic) -> usize {
        offset_of!(TaskPayload, fanin)
            + t.tensors as usize * super::lines::tensor_written()
            + t.fanin as usize * 8
            + size_of::<TaskDescriptor>()
            + size_of::<SlotState>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copies_land_in_the_slot_of_each_task() {
        let mut b = DescriptorTraffic::new(4);
        b.run(&[TaskTraffic { tensors: 2, fanin: 1 }], 3);
        assert_eq!(b.next, 3, "the next run continues at task 3");
        let tensors_at = offset_of!(TaskPayload, tensors);
        let fanin_at = offset_of!(TaskPayload, fanin);
        let pay = |slot: usize, at: usize| {
            // SAFETY: inside the payload array of 4 slots.
            unsafe { *b.payloads.ptr().add(slot * size_of::<TaskPayload>() + at) }
        };
        for slot in 0..3 {
            let second = tensors_at + size_of::<TensorDesc>();
            let last_tensor_byte = second + crate::bench::lines::tensor_written() - 1;
            assert_eq!(pay(slot, last_tensor_byte), last_tensor_byte as u8);
            assert_eq!(pay(slot, last_tensor_byte + 1), 0, "the unused dimensions are not copied");
            assert_eq!(pay(slot, fanin_at + 7), (fanin_at + 7) as u8);
            assert_eq!(pay(slot, second + size_of::<TensorDesc>()), 0, "a third tensor is not copied");
        }
        assert_eq!(pay(3, 0), 0, "slot 3 untouched by 3 tasks");
        assert_eq!(
            DescriptorTraffic::bytes_per_task(TaskTraffic { tensors: 2, fanin: 1 }),
            offset_of!(TaskPayload, fanin) + 2 * 60 + 8 + 64 + 64
        );
    }
}
