//! Minimal logging to stderr, gated by the server's `logLevel`.

use std::sync::atomic::{AtomicU8, Ordering};

use crate::config::LogLevel;

static LEVEL: AtomicU8 = AtomicU8::new(LogLevel::Error as u8);

/// Set the process-wide level (the last server created wins).
pub fn set_level(l: LogLevel) {
    LEVEL.store(l as u8, Ordering::Relaxed);
}

/// Log `msg()` if `level` is enabled; the closure runs only then.
pub fn log(level: LogLevel, msg: impl FnOnce() -> String) {
    if level != LogLevel::None && level as u8 <= LEVEL.load(Ordering::Relaxed) {
        eprintln!(
            "sfu [{}] {}",
            match level {
                LogLevel::Error => "error",
                LogLevel::Warn => "warn",
                _ => "debug",
            },
            msg()
        );
    }
}
