//! The notifier thread: the only thread that calls the host back.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crossbeam_channel::Receiver;

use super::{Event, EventSink, Inner};
use crate::output::HostMessage;

pub(crate) enum NotifierMsg {
    Message(HostMessage),
    Stop,
}

pub(crate) fn run(rx: Receiver<NotifierMsg>, mut sink: EventSink, inner: Arc<Inner>) {
    while let Ok(msg) = rx.recv() {
        if inner.stop_now.load(Ordering::Acquire) {
            break; // the server was freed from inside the callback
        }
        let NotifierMsg::Message(m) = msg else { break };
        let ev = Event {
            kind: m.kind,
            room_id: &m.room,
            peer_name: &m.peer,
            request_id: m.request_id,
            json: &m.json,
        };
        // A panicking Rust sink must not take the notifier down.
        let _ = catch_unwind(AssertUnwindSafe(|| sink(ev)));
        if inner.stop_now.load(Ordering::Acquire) {
            // The callback freed the server: end now, without waiting for another
            // message that may never come.
            break;
        }
    }
    // Dropping the sink runs the host's userdata finalizer, exactly once, here.
    drop(sink);
}
