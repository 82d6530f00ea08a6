//! Errors of the host-facing API (`SfuError`, mapped to `sfu_result` at the C boundary)
//! and of request processing (`ReqError`, sent to the client as a reason string).

use std::fmt;

/// A failure of a host API call (not of a client request: those are answered
/// with a JSON error response through the callback).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SfuError {
    /// The configuration JSON is invalid; the message names the key.
    InvalidConfig(String),
    /// An argument is invalid (bad room options, empty id, bad JSON...).
    InvalidArgument(String),
    /// `create_room` with an id that exists.
    RoomExists(String),
    /// No room with that id.
    RoomNotFound(String),
    /// No peer with that name in the room.
    PeerNotFound(String),
    /// The server is shutting down or was freed.
    ServerClosed,
    /// An operating-system error (socket, thread).
    Io(String),
    /// A panic was caught inside the library.
    Internal(String),
}

impl fmt::Display for SfuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SfuError::InvalidConfig(m) => write!(f, "invalid config: {m}"),
            SfuError::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
            SfuError::RoomExists(r) => write!(f, "room already exists: {r}"),
            SfuError::RoomNotFound(r) => write!(f, "room not found: {r}"),
            SfuError::PeerNotFound(p) => write!(f, "peer not found: {p}"),
            SfuError::ServerClosed => write!(f, "server closed"),
            SfuError::Io(m) => write!(f, "I/O error: {m}"),
            SfuError::Internal(m) => write!(f, "internal error: {m}"),
        }
    }
}

impl std::error::Error for SfuError {}

/// A request that cannot be carried out; the string is the reason sent to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReqError(pub String);

impl ReqError {
    pub fn new(s: impl Into<String>) -> Self {
        ReqError(s.into())
    }
}

impl fmt::Display for ReqError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for ReqError {
    fn from(s: String) -> Self {
        ReqError(s)
    }
}

impl From<&str> for ReqError {
    fn from(s: &str) -> Self {
        ReqError(s.to_string())
    }
}

/// Shorthand for request processing results.
pub type ReqResult<T> = Result<T, ReqError>;
