//! The notifier thread: the only thread that calls the host back — its event callback
//! and its log callback, from one queue, in the order things were produced.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crossbeam_channel::Receiver;

use super::{Event, EventSink, Inner};
use crate::log::{self, LogRecord, LogSink};
use crate::output::HostMessage;

pub(crate) enum NotifierMsg {
    Message(HostMessage),
    /// A log record (counted in `Inner::logs_queued` while queued).
    Log(LogRecord),
    /// From now on, records go to this sink (`None`: stderr). The previous sink is
    /// dropped here, after its last record: its finalizer runs on this thread.
    SetLogSink(Option<LogSink>),
    Stop,
}

pub(crate) fn run(rx: Receiver<NotifierMsg>, mut sink: EventSink, inner: Arc<Inner>) {
    let mut log_sink: Option<LogSink> = None;
    while let Ok(msg) = rx.recv() {
        if inner.stop_now.load(Ordering::Acquire) {
            break; // the server was freed from inside the callback
        }
        match msg {
            NotifierMsg::Message(m) => {
                let ev = Event {
                    kind: m.kind,
                    room_id: &m.room,
                    peer_name: &m.peer,
                    request_id: m.request_id,
                    json: &m.json,
                };
                // A panicking Rust sink must not take the notifier down.
                let _ = catch_unwind(AssertUnwindSafe(|| sink(ev)));
            }
            NotifierMsg::Log(r) => {
                inner.logs_queued.fetch_sub(1, Ordering::Relaxed);
                match log_sink.as_mut() {
                    Some(f) => {
                        let _ = catch_unwind(AssertUnwindSafe(|| f(&r)));
                    }
                    None => log::to_stderr(&r),
                }
            }
            NotifierMsg::SetLogSink(s) => {
                let old = std::mem::replace(&mut log_sink, s);
                let _ = catch_unwind(AssertUnwindSafe(move || drop(old)));
            }
            NotifierMsg::Stop => break,
        }
        if inner.stop_now.load(Ordering::Acquire) {
            // The callback freed the server: end now, without waiting for another
            // message that may never come.
            break;
        }
    }
    // The host's finalizers run here, exactly once each: the log callback's first
    // (after its last record), then the event callback's.
    let _ = catch_unwind(AssertUnwindSafe(move || drop(log_sink)));
    drop(sink);
}
