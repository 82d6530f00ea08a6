//! Log records of one server.
//!
//! A record is produced where something happens (a room, the worker core) as an output
//! of the sans-IO core (`Output::Log`, in production order with everything else),
//! only if the server's `logLevel` lets it through: below the level nothing is
//! formatted or allocated. The worker thread passes records to the notifier thread
//! through the server's one callback queue (at most [`MAX_QUEUED_RECORDS`] at a time:
//! further records are dropped and counted, a worker never waits for logging), and
//! the notifier hands each to the host's log callback or, without one, writes it to
//! stderr. So every record belongs to one server, and each server has its own level.

pub use crate::config::LogLevel;

/// Log records waiting in a server's callback queue, at most; more are dropped
/// (`sfu_log_records_dropped_total`).
pub const MAX_QUEUED_RECORDS: usize = 1024;

/// One log record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// `Error`, `Warn` or `Debug` (never `None`).
    pub level: LogLevel,
    /// The part of the library that logged: its module path, e.g. `sfu::room`.
    pub target: &'static str,
    pub message: String,
}

/// A host's log callback (the Rust API; the C API wraps its function pointer in one).
/// Runs on the server's notifier thread, never concurrently with itself or with the
/// event callback.
pub type LogSink = Box<dyn FnMut(&LogRecord) + Send>;

impl LogLevel {
    /// The `logLevel` spelling: "none", "error", "warn", "debug".
    pub fn name(self) -> &'static str {
        match self {
            LogLevel::None => "none",
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Debug => "debug",
        }
    }

    /// Whether a record of `level` passes this threshold.
    pub fn allows(self, level: LogLevel) -> bool {
        level != LogLevel::None && level <= self
    }
}

/// Where a record goes when the host set no log callback.
pub fn to_stderr(r: &LogRecord) {
    eprintln!("sfu [{}] {}: {}", r.level.name(), r.target, r.message);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_threshold_lets_through_its_level_and_the_more_severe_ones() {
        assert!(LogLevel::Warn.allows(LogLevel::Error));
        assert!(LogLevel::Warn.allows(LogLevel::Warn));
        assert!(!LogLevel::Warn.allows(LogLevel::Debug));
        assert!(LogLevel::Debug.allows(LogLevel::Debug));
        assert!(!LogLevel::None.allows(LogLevel::Error));
        assert!(!LogLevel::Debug.allows(LogLevel::None), "`None` is a threshold, never a record's level");
    }
}
