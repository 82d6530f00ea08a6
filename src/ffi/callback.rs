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
