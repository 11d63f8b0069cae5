//! Atomic access to words of device memory that other threads (or the other side) may change.
//!
//! Arena and SM structures are plain `repr(C)` ABI structs; the fields several threads touch are
//! reached only through these helpers, which view a field as an atomic in place.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::platform::{Backoff, Platform};

/// Views a `u32` field of device memory as an atomic.
///
/// # Safety
/// `p` is non-null, 4-aligned and valid for reads and writes for `'a`, and every concurrent access
/// to it goes through atomics.
#[inline(always)]
pub unsafe fn atomic_u32<'a>(p: *mut u32) -> &'a AtomicU32 {
    // SAFETY: guaranteed by the caller.
    unsafe { AtomicU32::from_ptr(p) }
}

/// Views a `u64` field of device memory as an atomic.
///
/// # Safety
/// `p` is non-null, 8-aligned and valid for reads and writes for `'a`, and every concurrent access
/// to it goes through atomics.
#[inline(always)]
pub unsafe fn atomic_u64<'a>(p: *mut u64) -> &'a AtomicU64 {
    // SAFETY: guaranteed by the caller.
    unsafe { AtomicU64::from_ptr(p) }
}

/// A lock wait that outlasted its budget: the word stayed held the whole time (its holder stopped
/// while holding it, or device memory overwrote it). The waiter took nothing and wrote nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockTimeout;

/// A spin lock over one `u32` word (0 = free, 1 = held).
///
/// Taking it waits at most a budget: a holder keeps the lock for a handful of stores, so a word
/// that stays held for a whole budget belongs to a stuck holder (or was overwritten), and
/// [`WordLock::lock`] gives up with [`LockTimeout`] instead of waiting forever. It never clears a
/// word it did not set, so a stuck holder's word stays held.
#[derive(Clone, Copy)]
pub struct WordLock<'a> {
    word: &'a AtomicU32,
}

impl<'a> WordLock<'a> {
    /// Wraps a lock word.
    pub fn new(word: &'a AtomicU32) -> Self {
        WordLock { word }
    }

    /// Takes the lock, spinning then yielding while another thread holds it, for at most
    /// `budget_ns` of `platform`'s clock; [`LockTimeout`] when the word stayed held that long
    /// (nothing taken). An uncontended take reads no clock.
    #[inline]
    pub fn lock(self, platform: &dyn Platform, budget_ns: u64) -> Result<(), LockTimeout> {
        if self.word.compare_exchange_weak(0, 1, Ordering::Acquire, Ordering::Relaxed).is_ok() {
            return Ok(());
        }
        self.lock_slow(platform, budget_ns)
    }

    #[cold]
    fn lock_slow(self, platform: &dyn Platform, budget_ns: u64) -> Result<(), LockTimeout> {
        let mut backoff = Backoff::new();
        let since = platform.now_ns();
        loop {
            while self.word.load(Ordering::Relaxed) != 0 {
                if platform.now_ns().saturating_sub(since) > budget_ns {
                    return Err(LockTimeout);
                }
                backoff.snooze(platform);
            }
            if self.word.compare_exchange_weak(0, 1, Ordering::Acquire, Ordering::Relaxed).is_ok() {
                return Ok(());
            }
        }
    }

    /// Takes the lock if it is free; never waits.
    #[inline]
    pub fn try_lock(self) -> bool {
        self.word.compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed).is_ok()
    }

    /// Releases the lock.
    #[inline]
    pub fn unlock(self) {
        self.word.store(0, Ordering::Release);
    }
}

/// Hints the CPU to bring the cache line holding `p` into its cache for a write soon. A hint only:
/// it never faults and changes no memory, whatever `p` points at (on other targets it does
/// nothing).
#[inline(always)]
pub fn prefetch_write<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch neither faults nor writes; SSE is part of the x86_64 baseline.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_ET0 }>(p.cast())
    };
    #[cfg(target_arch = "aarch64")]
    // SAFETY: `prfm` is a hint: it neither faults nor writes memory.
    unsafe {
        core::arch::asm!("prfm pstl1keep, [{0}]", in(reg) p, options(nostack, preserves_flags, readonly))
    };
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::platform::HostPlatform;
    use std::sync::Arc;

    #[test]
    fn word_lock_excludes_concurrent_holders() {
        let word = Arc::new(AtomicU32::new(0));
        let counter = Arc::new(AtomicU64::new(0));
        let handles: std::vec::Vec<_> = (0..4)
            .map(|_| {
                let (word, counter) = (word.clone(), counter.clone());
                std::thread::spawn(move || {
                    let lock = WordLock::new(&word);
                    for _ in 0..2000 {
                        lock.lock(&HostPlatform, u64::MAX).unwrap();
                        // A non-atomic read-modify-write: lost updates would show without exclusion.
                        let v = counter.load(Ordering::Relaxed);
                        counter.store(v + 1, Ordering::Relaxed);
                        lock.unlock();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(counter.load(Ordering::Relaxed), 8000);
        let lock = WordLock::new(&word);
        assert!(lock.try_lock());
        assert!(!lock.try_lock());
        lock.unlock();
    }

    #[test]
    fn a_lock_word_left_held_times_out_and_stays_held() {
        // A holder that never comes back: the word is set and nobody will clear it.
        let word = AtomicU32::new(1);
        let lock = WordLock::new(&word);
        assert_eq!(lock.lock(&HostPlatform, 2_000_000), Err(LockTimeout));
        assert_eq!(word.load(Ordering::Relaxed), 1, "the waiter neither took nor cleared the word");
        lock.unlock();
        assert_eq!(lock.lock(&HostPlatform, 0), Ok(()), "a free word is taken without reading the clock");
        assert_eq!(word.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_lock_released_within_the_budget_is_taken() {
        let word = Arc::new(AtomicU32::new(1));
        let holder = {
            let word = word.clone();
            std::thread::spawn(move || {
                std::thread::yield_now();
                WordLock::new(&word).unlock();
            })
        };
        assert_eq!(WordLock::new(&word).lock(&HostPlatform, u64::MAX), Ok(()));
        holder.join().unwrap();
        assert_eq!(word.load(Ordering::Relaxed), 1, "held by the waiter now");
    }
}
