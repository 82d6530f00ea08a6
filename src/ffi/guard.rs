//! Argument checks, the handle registry, panic containment and the last error.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::{sfu_result, sfu_server};
use crate::error::SfuError;
use crate::server::Server;

thread_local! {
    pub(crate) static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

pub(crate) fn set_last_error(msg: &str) {
    let c = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

pub(crate) type FfiResult = Result<(), (sfu_result, String)>;

/// Run an export body: panics are caught (never unwind into C), errors recorded.
pub(crate) fn run(f: impl FnOnce() -> FfiResult) -> sfu_result {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => sfu_result::Ok,
        Ok(Err((code, msg))) => {
            set_last_error(&msg);
            code
        }
        Err(p) => {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".into());
            set_last_error(&format!("internal error: {what}"));
            sfu_result::Internal
        }
    }
}

pub(crate) fn map_err(e: SfuError) -> (sfu_result, String) {
    let code = match &e {
        SfuError::InvalidConfig(_) => sfu_result::InvalidConfig,
        SfuError::InvalidArgument(_) => sfu_result::InvalidArgument,
        SfuError::RoomExists(_) => sfu_result::RoomExists,
        SfuError::RoomNotFound(_) => sfu_result::RoomNotFound,
        SfuError::PeerNotFound(_) => sfu_result::PeerNotFound,
        SfuError::ServerClosed => sfu_result::ServerClosed,
        SfuError::Io(_) => sfu_result::Io,
        SfuError::Internal(_) => sfu_result::Internal,
    };
    (code, e.to_string())
}

/// A required NUL-terminated UTF-8 string argument, borrowed for the call.
pub(crate) fn cstr_arg<'a>(p: *const c_char, name: &str) -> Result<&'a str, (sfu_result, String)> {
    if p.is_null() {
        return Err((sfu_result::NullArgument, format!("`{name}` is NULL")));
    }
    // SAFETY: non-NULL and NUL-terminated per the API contract; only read during the call.
    let c = unsafe { CStr::from_ptr(p) };
    c.to_str().map_err(|_| {
        (
            sfu_result::InvalidUtf8,
            format!("`{name}` is not valid UTF-8"),
        )
    })
}

pub(crate) fn opt_cstr_arg<'a>(
    p: *const c_char,
    name: &str,
) -> Result<Option<&'a str>, (sfu_result, String)> {
    if p.is_null() {
        return Ok(None);
    }
    cstr_arg(p, name).map(Some)
}

/// A JSON text argument. Invalid UTF-8 in JSON is the client's fault, not the host's:
/// it is passed on and answered with a JSON error; only NULL is a call failure.
pub(crate) fn bytes_arg<'a>(
    p: *const c_char,
    name: &str,
) -> Result<&'a [u8], (sfu_result, String)> {
    if p.is_null() {
        return Err((sfu_result::NullArgument, format!("`{name}` is NULL")));
    }
    // SAFETY: as in `cstr_arg`.
    Ok(unsafe { CStr::from_ptr(p) }.to_bytes())
}

/// Live servers by handle. Handles are never reused, so a freed handle is found
/// missing instead of being dereferenced.
static REGISTRY: Mutex<Option<HashMap<usize, Arc<Server>>>> = Mutex::new(None);
static NEXT_HANDLE: AtomicU64 = AtomicU64::new(1);

pub(crate) fn register(s: Arc<Server>) -> *mut sfu_server {
    let id = NEXT_HANDLE.fetch_add(1, Ordering::Relaxed) as usize;
    // An aligned, non-NULL token; never dereferenced.
    let token = 0x1000_0000usize.wrapping_add(id << 4);
    REGISTRY
        .lock()
        .get_or_insert_with(HashMap::new)
        .insert(token, s);
    token as *mut sfu_server
}

pub(crate) fn lookup(h: *mut sfu_server) -> Result<Arc<Server>, (sfu_result, String)> {
    if h.is_null() {
        return Err((sfu_result::NullArgument, "`server` is NULL".into()));
    }
    REGISTRY
        .lock()
        .as_ref()
        .and_then(|m| m.get(&(h as usize)).cloned())
        .ok_or_else(|| {
            (
                sfu_result::ServerClosed,
                "the server was freed or is not a server handle".into(),
            )
        })
}

pub(crate) fn unregister(h: *mut sfu_server) -> Option<Arc<Server>> {
    if h.is_null() {
        return None;
    }
    REGISTRY
        .lock()
        .as_mut()
        .and_then(|m| m.remove(&(h as usize)))
}
