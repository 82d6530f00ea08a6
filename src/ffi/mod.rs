//! The C ABI. Every `extern "C"` function and every `unsafe` block of the crate's
//! API lives here (plus the socket syscalls in `net::socket`).
//!
//! Conventions: functions return `sfu_result`; out-parameters are written only on
//! success; input strings are copied before the call returns; a handle is an opaque
//! token looked up in a registry, so a freed or forged handle is reported as
//! `SFU_RESULT_SERVER_CLOSED` instead of being dereferenced.

#![allow(non_camel_case_types)]

mod callback;
mod guard;

use std::ffi::{c_char, c_void};
use std::sync::Arc;

use crate::server::Server;
use callback::{ForeignLogSink, ForeignSink};
use guard::{cstr_arg, opt_cstr_arg, run, set_last_error, LAST_ERROR};

/// Result of a call. Protocol-level failures (unknown room in a request, bad JSON
/// from a client...) are not call failures: they are JSON error responses.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum sfu_result {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullArgument = 1,
    /// A string argument was not valid UTF-8.
    InvalidUtf8 = 2,
    /// The configuration is invalid (the message names the key).
    InvalidConfig = 3,
    /// Another argument is invalid (room options, empty id...).
    InvalidArgument = 4,
    /// `sfu_server_create_room` with an id already in use.
    RoomExists = 5,
    /// No room with that id.
    RoomNotFound = 6,
    /// No peer with that name in the room.
    PeerNotFound = 7,
    /// The server handle was freed (or never valid), or the server is shutting down.
    ServerClosed = 8,
    /// An operating-system error (socket, thread).
    Io = 9,
    /// A panic was caught inside the library (a bug; the process keeps running).
    Internal = 10,
}

/// What a callback invocation carries.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum sfu_event_kind {
    /// The answer to a request: `{"ok":true,"data":{...}}` or
    /// `{"ok":false,"error":"<reason>"}`; `request_id` is the id the host gave.
    Response = 0,
    /// A mediasoup notification the host must deliver verbatim to `peer_name`;
    /// `request_id` is 0.
    Notification = 1,
    /// A host-facing event, not for the client: `{"event":"<name>", ...}` (e.g.
    /// `notificationError`, `transportClosed` with a reason, `roomClosed` after an
    /// internal error, `audioLevels`, `activeSpeaker`, `rtpStreamerClosed`);
    /// `peer_name` is empty for events about the room; `request_id` is 0.
    Host = 2,
    /// The answer to a host request (`sfu_server_host_request`): `{"ok":true,"data":...}`
    /// or `{"ok":false,"error":...}`; `request_id` is the id the host gave; `peer_name`
    /// is empty.
    HostResponse = 3,
}

/// The host's callback.
///
/// * `userdata`: the pointer given to `sfu_server_new`.
/// * `room_id`, `peer_name`, `json`: NUL-terminated UTF-8, borrowed: valid only until
///   the callback returns. Copy what you keep. `json_len` excludes the NUL.
///
/// Threading: called on one library-owned thread (the notifier), never concurrently
/// with itself. All callbacks of a server go through one queue, in the order they were
/// produced: per peer in production order, and everything a synchronous call
/// (`sfu_server_create_room`, `sfu_server_close_room`, `sfu_server_close_peer`)
/// produced comes before anything produced after it returned. It may call
/// `sfu_server_request`, `sfu_server_notify`, `sfu_server_create_room`,
/// `sfu_server_close_room` and `sfu_server_close_peer`; it must not call
/// `sfu_server_free` on its own server (if it does, the call returns without waiting,
/// no callback runs afterwards and `userdata_free` runs after the callback returns).
/// It must not unwind (no C++ exception, no longjmp) across the library.
pub type sfu_event_fn = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        kind: sfu_event_kind,
        room_id: *const c_char,
        peer_name: *const c_char,
        request_id: u64,
        json: *const c_char,
        json_len: usize,
    ),
>;

/// Finalizer for `userdata`, run exactly once after the last callback.
pub type sfu_userdata_free_fn = Option<unsafe extern "C" fn(userdata: *mut c_void)>;

/// Severity of a log record. A server produces the records at or above its
/// configured `logLevel` ("error" by default; "none" produces none).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum sfu_log_level {
    /// Something failed inside the library (e.g. a room panicked and was closed).
    Error = 1,
    /// Something went wrong with a client (e.g. a transport closed after silence).
    Warn = 2,
    /// What the library does, step by step (every request and notification received,
    /// transports connecting). Never produced per media packet.
    Debug = 3,
}

/// The host's log callback (`sfu_server_set_log_callback`).
///
/// * `userdata`: the pointer given with the callback.
/// * `target`: the part of the library that logged, a module path such as
///   "sfu::room"; `message`: one line of text, no trailing newline. Both
///   NUL-terminated UTF-8, borrowed: valid only until the callback returns.
///
/// Threading: called on the server's notifier thread, the one that runs its
/// `sfu_event_fn`, never concurrently with that callback or with itself. Log records
/// go through the same queue as events, so they arrive in production order relative
/// to the events of the same worker (a request's debug record before its response).
/// A worker never waits for logging: when 1024 records are already queued, further
/// ones are dropped and counted (`sfu_log_records_dropped_total` in
/// `sfu_server_metrics`). It may call the same functions as `sfu_event_fn` (not
/// `sfu_server_free` on its own server). It must not unwind across the library.
pub type sfu_log_fn = Option<
    unsafe extern "C" fn(userdata: *mut c_void, level: sfu_log_level, target: *const c_char, message: *const c_char),
>;

/// An SFU server (opaque). Created by `sfu_server_new`, released by `sfu_server_free`.
pub struct sfu_server {
    _private: [u8; 0],
}

/// The library version, e.g. "0.1.0".
///
/// Ownership: a static string; never free it. Threading: any thread. Errors: none.
#[no_mangle]
pub extern "C" fn sfu_version() -> *const c_char {
    static V: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
    V.as_ptr() as *const c_char
}

/// The message of the last failed `sfu_` call on the calling thread ("" if none).
///
/// Ownership: owned by the library; valid until the next `sfu_` call on this thread.
/// Threading: per thread. Errors: none.
#[no_mangle]
pub extern "C" fn sfu_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// Start a server: worker threads (each with one UDP socket) and the notifier thread.
///
/// * `config_json`: NULL or a JSON object: `numWorkers`, `logLevel`, `rtcIPv4`,
///   `rtcAnnouncedIPv4`, `rtcMinPort`, `rtcMaxPort`, `dtlsCertificateFile`,
///   `dtlsPrivateKeyFile` (ECDSA P-256 PEM), `maxMessageSize`, `transportTimeout`
///   (see the README). Unknown keys and bad values fail with
///   `SFU_RESULT_INVALID_CONFIG` and a message naming the key.
/// * `on_event`: the callback (required); `userdata` is passed to it;
///   `userdata_free` (may be NULL) runs exactly once after the last callback, during
///   `sfu_server_free`.
/// * `out`: receives the server on success; untouched on failure.
///
/// Ownership: the caller owns the returned server and must release it with
/// `sfu_server_free`. `config_json` is only read during the call. On failure
/// `userdata_free` is not called: `userdata` stays the caller's.
/// Threading: any thread.
/// Errors: NULL_ARGUMENT (`on_event` or `out`), INVALID_UTF8, INVALID_CONFIG, IO.
#[no_mangle]
pub unsafe extern "C" fn sfu_server_new(
    config_json: *const c_char,
    on_event: sfu_event_fn,
    userdata: *mut c_void,
    userdata_free: sfu_userdata_free_fn,
    out: *mut *mut sfu_server,
) -> sfu_result {
    run(|| {
        if out.is_null() {
            return Err((sfu_result::NullArgument, "`out` is NULL".into()));
        }
        let Some(cb) = on_event else {
            return Err((sfu_result::NullArgument, "`on_event` is NULL".into()));
        };
        let config = opt_cstr_arg(config_json, "config_json")?;
        let (sink, armed) = ForeignSink::new(cb, userdata, userdata_free);
        // Until the server exists the finalizer is disarmed: on failure the sink is
        // dropped without calling `userdata_free`.
        let server = Server::new(config, sink.into_event_sink()).map_err(guard::map_err)?;
        armed.store(true, std::sync::atomic::Ordering::Release);
        let handle = guard::register(Arc::new(server));
        // SAFETY: `out` is non-NULL (checked) and points to writable storage per the contract.
        unsafe { *out = handle };
        Ok(())
    })
}

/// Create a room, synchronously.
///
/// * `room_id`: non-empty, unique in this server.
/// * `options_json`: NULL for the default codecs (opus; VP8; VP9; H264
///   packetization-mode 1 profile-level-id 42e01f; video with RTX, nack, pli, fir,
///   transport-cc), or `{"mediaCodecs":[{kind,name,clockRate,channels?,parameters?}]}`
///   in mediasoup v2's room format.
///
/// Ownership: strings are copied. Threading: any thread, including the callback.
/// Errors: NULL_ARGUMENT, INVALID_UTF8, INVALID_ARGUMENT (bad options: the message
/// says which codec), ROOM_EXISTS, SERVER_CLOSED.
#[no_mangle]
pub unsafe extern "C" fn sfu_server_create_room(
    server: *mut sfu_server,
    room_id: *const c_char,
    options_json: *const c_char,
) -> sfu_result {
    run(|| {
        let s = guard::lookup(server)?;
        let room = cstr_arg(room_id, "room_id")?;
        let opts = opt_cstr_arg(options_json, "options_json")?;
        s.create_room(room, opts).map_err(guard::map_err)
    })
}

/// Close a room, synchronously: every peer gets `closed` (and `roomClosed` if it
/// joined with the seed's message shapes); its transports stop.
///
/// Ownership: `room_id` is copied. Threading: any thread, including the callback.
/// Errors: NULL_ARGUMENT, INVALID_UTF8, ROOM_NOT_FOUND, SERVER_CLOSED.
#[no_mangle]
pub unsafe extern "C" fn sfu_server_close_room(
    server: *mut sfu_server,
    room_id: *const c_char,
) -> sfu_result {
    run(|| {
        let s = guard::lookup(server)?;
        let room = cstr_arg(room_id, "room_id")?;
        s.close_room(room).map_err(guard::map_err)
    })
}

/// Close one peer, synchronously: it gets `closed`; the others get `peerClosed`; its
/// producers, consumers and transports are released.
///
/// Ownership: strings are copied. Threading: any thread, including the callback.
/// Errors: NULL_ARGUMENT, INVALID_UTF8, ROOM_NOT_FOUND, PEER_NOT_FOUND, SERVER_CLOSED.
#[no_mangle]
pub unsafe extern "C" fn sfu_server_close_peer(
    server: *mut sfu_server,
    room_id: *const c_char,
    peer_name: *const c_char,
) -> sfu_result {
    run(|| {
        let s = guard::lookup(server)?;
        let room = cstr_arg(room_id, "room_id")?;
        let peer = cstr_arg(peer_name, "peer_name")?;
        s.close_peer(room, peer).map_err(guard::map_err)
    })
}

/// Pass a request a client sent (a mediasoup v2 request object, JSON text) from
/// `peer_name` in `room_id`. Asynchronous: the JSON is copied and queued, and exactly
/// one `SFU_EVENT_KIND_RESPONSE` with this `request_id` follows through the callback
/// — an error response for an unknown room, a peer that has not joined, bad JSON, an
/// unknown method or invalid fields. The peer's name is the host's: `join.peerName`
/// is ignored.
///
/// Ownership: strings are copied. Threading: any thread, including the callback.
/// Errors (call misuse only): NULL_ARGUMENT, INVALID_UTF8, SERVER_CLOSED.
#[no_mangle]
pub unsafe extern "C" fn sfu_server_request(
    server: *mut sfu_server,
    room_id: *const c_char,
    peer_name: *const c_char,
    request_id: u64,
    request_json: *const c_char,
) -> sfu_result {
    run(|| {
        let s = guard::lookup(server)?;
        let room = cstr_arg(room_id, "room_id")?;
        let peer = cstr_arg(peer_name, "peer_name")?;
        let json = guard::bytes_arg(request_json, "request_json")?;
        s.request(room, peer, request_id, json)
            .map_err(guard::map_err)
    })
}

/// Pass a notification a client sent (e.g. `leave`, `updateTransport`,
/// `pauseProducer`). Asynchronous; no response. A notification that cannot be
/// applied is reported as an `SFU_EVENT_KIND_HOST` event `notificationError`.
///
/// Ownership: strings are copied. Threading: any thread, including the callback.
/// Errors (call misuse only): NULL_ARGUMENT, INVALID_UTF8, SERVER_CLOSED.
#[no_mangle]
pub unsafe extern "C" fn sfu_server_notify(
    server: *mut sfu_server,
    room_id: *const c_char,
    peer_name: *const c_char,
    notification_json: *const c_char,
) -> sfu_result {
    run(|| {
        let s = guard::lookup(server)?;
        let room = cstr_arg(room_id, "room_id")?;
        let peer = cstr_arg(peer_name, "peer_name")?;
        let json = guard::bytes_arg(notification_json, "notification_json")?;
        s.notify(room, peer, json).map_err(guard::map_err)
    })
}

/// Send this server's log records to `log_fn` instead of stderr (each server has its
/// own destination and its own `logLevel`).
///
/// * `log_fn`: the callback, or NULL to write records to stderr again (the default:
///   one line per record, `sfu [<level>] <target>: <message>`).
/// * `userdata` is passed to `log_fn`; `userdata_free` (may be NULL) runs exactly
///   once, on the notifier thread, when this callback is replaced by a later call or
///   when the server is freed — after the callback's last record either way. With
///   `log_fn` NULL it runs too, right after the change (in queue order).
///
/// Ordering: the change travels through the notifier's queue. Records produced before
/// this call returned but still queued go to the previous destination; every record
/// produced after it returned goes to the new one. During `sfu_server_free`, the
/// records of the shutdown are delivered, then the log callback's `userdata_free` runs
/// (before the event callback's); after `sfu_server_free` returns no log callback
/// runs. (If the server is freed from inside a callback, records still queued are
/// discarded, not delivered.)
///
/// Ownership: on success the library holds `userdata` until `userdata_free`; on
/// failure `userdata_free` is not called and `userdata` stays the caller's.
/// Threading: any thread, including the callbacks.
/// Errors: NULL_ARGUMENT (`server`), SERVER_CLOSED.
#[no_mangle]
pub unsafe extern "C" fn sfu_server_set_log_callback(
    server: *mut sfu_server,
    log_fn: sfu_log_fn,
    userdata: *mut c_void,
    userdata_free: sfu_userdata_free_fn,
) -> sfu_result {
    run(|| {
        let s = guard::lookup(server)?;
        let sink = if log_fn.is_none() && userdata_free.is_none() {
            None
        } else {
            let (sink, armed) = ForeignLogSink::new(log_fn, userdata, userdata_free);
            Some((sink.into_log_sink(), armed))
        };
        let (sink, armed) = match sink {
            Some((s, a)) => (Some(s), Some(a)),
            None => (None, None),
        };
        match s.try_set_log_sink(sink) {
            Ok(()) => {
                if log_fn.is_none() && userdata_free.is_some() {
                    // Only a finalizer: replace it right away, so it runs now (in
                    // queue order) rather than at the next change. (Should the server
                    // close in between, it runs at the end of the notifier instead.)
                    let _ = s.set_log_sink(None);
                }
                Ok(())
            }
            Err((e, back)) => {
                // Never reached the server: the userdata stays the caller's.
                if let Some(a) = armed {
                    a.store(false, std::sync::atomic::Ordering::Release);
                }
                drop(back);
                Err(guard::map_err(e))
            }
        }
    })
}

/// The server's metrics, in the Prometheus text exposition format (version 0.0.4):
/// rooms, peers, transports by protocol and state, producers, consumers, datagrams
/// and bytes in and out, RTP packets, NACKs, PLIs, FIRs, retransmissions, datagrams
/// dropped by reason, each worker's busy time and batch latency histogram (the README
/// lists every name). Serve it as `text/plain; version=0.0.4`.
///
/// Figures are what the workers last published: counters at the end of each worker
/// loop iteration, gauges too after a command and otherwise at most every 100 ms, so
/// a figure may lag what the callback already reported by a moment (up to about
/// 100 ms). The call never waits for a worker. Counters only grow for the life of the
/// server.
///
/// * `out`: receives a NUL-terminated UTF-8 string on success.
/// * `out_len`: may be NULL; else receives its length in bytes, without the NUL.
///
/// Ownership: the caller owns `*out` and must release it with `sfu_string_free`
/// (not `free`). Threading: any thread, including the callbacks.
/// Errors: NULL_ARGUMENT (`server`, `out`), SERVER_CLOSED.
#[no_mangle]
pub unsafe extern "C" fn sfu_server_metrics(server: *mut sfu_server, out: *mut *mut c_char, out_len: *mut usize) -> sfu_result {
    run(|| {
        let s = guard::lookup(server)?;
        if out.is_null() {
            return Err((sfu_result::NullArgument, "`out` is NULL".into()));
        }
        let text = s.metrics().map_err(guard::map_err)?;
        let c = std::ffi::CString::new(text).map_err(|_| (sfu_result::Internal, "metrics text contains NUL".to_string()))?;
        let len = c.as_bytes().len();
        // SAFETY: `out` is non-NULL (checked) and `out_len` NULL or writable, per the contract.
        unsafe {
            *out = c.into_raw();
            if !out_len.is_null() {
                *out_len = len;
            }
        }
        Ok(())
    })
}

/// Release a string the library returned (`sfu_server_metrics`). NULL is a no-op.
///
/// Ownership: `s` must come from this library and not have been freed yet; anything
/// else is undefined behaviour. Threading: any thread. Errors: none.
#[no_mangle]
pub unsafe extern "C" fn sfu_string_free(s: *mut c_char) {
    if s.is_null() {
        return;
    }
    let _ = run(|| {
        // SAFETY: per the contract, `s` came from `CString::into_raw` in this library.
        drop(unsafe { std::ffi::CString::from_raw(s) });
        Ok(())
    });
}

/// Make a request about a room as the host (not on behalf of a peer): `request_json` is
/// `{"method": ..., ...}` with one of the host methods of docs/PROTOCOL.md ("Host
/// requests"): `createRtpStreamer`, `closeRtpStreamer`, `enableAudioLevels`,
/// `disableAudioLevels`, `enableActiveSpeaker`, `disableActiveSpeaker`. Asynchronous,
/// like `sfu_server_request`: the JSON is copied and queued, and exactly one
/// `SFU_EVENT_KIND_HOST_RESPONSE` with this `request_id` follows through the callback —
/// an error response for an unknown room, bad JSON, an unknown method or invalid fields.
/// The events the room then produces (`audioLevels`, `activeSpeaker`,
/// `rtpStreamerClosed`) are `SFU_EVENT_KIND_HOST` events with an empty peer name.
///
/// Ownership: strings are copied. Threading: any thread, including the callback.
/// Errors (call misuse only): NULL_ARGUMENT, INVALID_UTF8, SERVER_CLOSED.
#[no_mangle]
pub unsafe extern "C" fn sfu_server_host_request(
    server: *mut sfu_server,
    room_id: *const c_char,
    request_id: u64,
    request_json: *const c_char,
) -> sfu_result {
    run(|| {
        let s = guard::lookup(server)?;
        let room = cstr_arg(room_id, "room_id")?;
        let json = guard::bytes_arg(request_json, "request_json")?;
        s.host_request(room, request_id, json).map_err(guard::map_err)
    })
}

/// Stop and release a server. Blocks until every library thread has stopped: queued
/// requests are answered ("server closed"), rooms send `closed` to their peers, the
/// notifier delivers what is queued; after it returns no callback runs, and
/// `userdata_free(userdata)` has run exactly once. NULL, or an already freed server,
/// is a no-op.
///
/// Ownership: the handle is invalid afterwards. Threading: any thread except the
/// callback (see `sfu_event_fn`). Errors: none.
#[no_mangle]
pub unsafe extern "C" fn sfu_server_free(server: *mut sfu_server) {
    let _ = run(|| {
        // Close while still registered: a concurrent second `sfu_server_free` finds
        // the server and waits in `close` until the first has finished.
        if let Ok(s) = guard::lookup(server) {
            s.close();
            drop(guard::unregister(server));
        }
        Ok(())
    });
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn f<T: Send + Sync>() {}
    f::<Server>();
    let _ = set_last_error;
}
