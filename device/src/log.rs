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
