//! Last-resort text on qemu's serial port (the PL011 at `UART_BASE`): one line per fault or panic,
//! for a human reading qemu's output; the host learns everything from the records instead.

use core::fmt;

use super::layout::UART_BASE;

const UARTDR: u64 = 0x000;
const UARTFR: u64 = 0x018;
const FR_TXFF: u32 = 1 << 5;

/// Writes to the UART, waiting (boundedly) while its FIFO is full.
pub struct Uart;

impl fmt::Write for Uart {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            let mut budget = 100_000u32;
            // SAFETY: the PL011 registers are device memory mapped by the identity map; reads of
            // UARTFR and writes of UARTDR have no effect beyond the serial port.
            unsafe {
                while (core::ptr::read_volatile((UART_BASE + UARTFR) as *const u32) & FR_TXFF) != 0 && budget > 0 {
                    budget -= 1;
                }
                core::ptr::write_volatile((UART_BASE + UARTDR) as *mut u32, b as u32);
            }
        }
        Ok(())
    }
}
