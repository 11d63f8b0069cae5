//! `pto_log!`: the one log macro of device code.
//!
//! On the firmware (`target_os = "none"`) it is defmt (`pto_log!(warn, "ring {=u32} full", r)`,
//! defmt's format syntax), whose frames go into the log ring the host drains and decodes from the
//! same ELF. On the simulated device it compiles to nothing: the arguments are only borrowed, so
//! they still type-check and count as used.

/// Logs at `trace`, `debug`, `info`, `warn` or `error` (defmt on the firmware, nothing elsewhere).
#[cfg(target_os = "none")]
#[macro_export]
macro_rules! pto_log {
    (trace, $($t:tt)+) => { ::defmt::trace!($($t)+) };
    (debug, $($t:tt)+) => { ::defmt::debug!($($t)+) };
    (info, $($t:tt)+) => { ::defmt::info!($($t)+) };
    (warn, $($t:tt)+) => { ::defmt::warn!($($t)+) };
    (error, $($t:tt)+) => { ::defmt::error!($($t)+) };
}

/// Logs at `trace`, `debug`, `info`, `warn` or `error` (defmt on the firmware, nothing elsewhere).
#[cfg(not(target_os = "none"))]
#[macro_export]
macro_rules! pto_log {
    ($level:ident, $fmt:literal $(, $arg:expr)* $(,)?) => {{
        let _ = $fmt;
        $( let _ = &$arg; )*
    }};
}

#[cfg(test)]
mod tests {
    #[test]
    fn on_the_simulated_device_a_log_line_only_borrows_its_arguments() {
        let owned = [1u8, 2, 3];
        let n = 5u32;
        crate::pto_log!(warn, "ring {=u32} full: {=[u8]}", n, owned);
        crate::pto_log!(info, "no arguments");
        // Still usable: the macro neither moved nor consumed them.
        assert_eq!((owned.len(), n), (3, 5));
    }
}
