//! The host's callback and userdata, wrapped as an `EventSink`.

use std::ffi::{c_void, CString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::{sfu_event_kind, sfu_userdata_free_fn};
use crate::server::{Event, EventKind, EventSink};

type RawCallback = unsafe extern "C" fn(
    *mut c_void,
    sfu_event_kind,
    *const std::ffi::c_char,
    *const std::ffi::c_char,
    u64,
    *const std::ffi::c_char,
    usize,
);

/// Callback + userdata + finalizer. The finalizer runs exactly once, when the sink is
/// dropped (at the end of the notifier thread), and only once `armed` (the server
/// was created: on a failed `sfu_server_new` the userdata stays the caller's).
pub(crate) struct ForeignSink {
    cb: RawCallback,
    userdata: *mut c_void,
    free: sfu_userdata_free_fn,
    armed: Arc<AtomicBool>,
}

// SAFETY: the host promises (header) that its callback and userdata may be used from
// the library's notifier thread; they are only ever used from one thread at a time.
unsafe impl Send for ForeignSink {}

impl ForeignSink {
    pub fn new(
        cb: RawCallback,
        userdata: *mut c_void,
        free: sfu_userdata_free_fn,
    ) -> (Self, Arc<AtomicBool>) {
        let armed = Arc::new(AtomicBool::new(false));
        (
            ForeignSink {
                cb,
                userdata,
                free,
                armed: armed.clone(),
            },
            armed,
        )
    }

    pub fn into_event_sink(self) -> EventSink {
        Box::new(move |ev: Event<'_>| self.deliver(ev))
    }

    fn deliver(&self, ev: Event<'_>) {
        let kind = match ev.kind {
            EventKind::Response => sfu_event_kind::Response,
            EventKind::Notification => sfu_event_kind::Notification,
            EventKind::Host => sfu_event_kind::Host,
            EventKind::HostResponse => sfu_event_kind::HostResponse,
        };
        let c = |s: &str| {
            CString::new(s)
                .unwrap_or_else(|_| CString::new(s.replace('\0', "")).unwrap_or_default())
        };
        let (room, peer, json) = (c(ev.room_id), c(ev.peer_name), c(ev.json));
        // SAFETY: the callback is the host's, called with valid NUL-terminated strings
        // that outlive the call.
        unsafe {
            (self.cb)(
                self.userdata,
                kind,
                room.as_ptr(),
                peer.as_ptr(),
                ev.request_id,
                json.as_ptr(),
                json.as_bytes().len(),
            );
        }
    }
}

impl Drop for ForeignSink {
    fn drop(&mut self) {
        if self.armed.load(Ordering::Acquire) {
            if let Some(f) = self.free.take() {
                // SAFETY: the host's finalizer for its own userdata, called once.
                unsafe { f(self.userdata) };
            }
        }
    }
}

type RawLogCallback = unsafe extern "C" fn(*mut c_void, super::sfu_log_level, *const std::ffi::c_char, *const std::ffi::c_char);

/// A log callback + userdata + finalizer. The finalizer runs exactly once, when the
/// sink is dropped (on the notifier thread, after its last record), unless it was
/// disarmed because the sink never reached the server.
pub(crate) struct ForeignLogSink {
    cb: Option<RawLogCallback>,
    userdata: *mut c_void,
    free: sfu_userdata_free_fn,
    armed: Arc<AtomicBool>,
}

// SAFETY: as for `ForeignSink`: the host promises its log callback and userdata may be
// used from the notifier thread; only that thread uses them, one call at a time.
unsafe impl Send for ForeignLogSink {}

impl ForeignLogSink {
    /// Armed from the start: the caller disarms it if the server refuses it.
    pub fn new(cb: Option<RawLogCallback>, userdata: *mut c_void, free: sfu_userdata_free_fn) -> (Self, Arc<AtomicBool>) {
        let armed = Arc::new(AtomicBool::new(true));
        (ForeignLogSink { cb, userdata, free, armed: armed.clone() }, armed)
    }

    pub fn into_log_sink(self) -> crate::log::LogSink {
        Box::new(move |r: &crate::log::LogRecord| self.deliver(r))
    }

    fn deliver(&self, r: &crate::log::LogRecord) {
        let Some(cb) = self.cb else {
            crate::log::to_stderr(r);
            return;
        };
        let level = match r.level {
            crate::log::LogLevel::Debug => super::sfu_log_level::Debug,
            crate::log::LogLevel::Warn => super::sfu_log_level::Warn,
            _ => super::sfu_log_level::Error,
        };
        let c = |s: &str| CString::new(s).unwrap_or_else(|_| CString::new(s.replace('\0', "")).unwrap_or_default());
        let (target, message) = (c(r.target), c(&r.message));
        // SAFETY: the host's callback, called with valid NUL-terminated strings that
        // outlive the call.
        unsafe { cb(self.userdata, level, target.as_ptr(), message.as_ptr()) };
    }
}

impl Drop for ForeignLogSink {
    fn drop(&mut self) {
        if self.armed.load(Ordering::Acquire) {
            if let Some(f) = self.free.take() {
                // SAFETY: the host's finalizer for its own userdata, called once.
                unsafe { f(self.userdata) };
            }
        }
    }
}
