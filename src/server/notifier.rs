//! The notifier thread: the only thread that calls the host back.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crossbeam_channel::Receiver;

use super::{Event, EventKind, EventSink, Inner};

pub(crate) enum NotifierMsg {
    Event {
        kind: EventKind,
        room: Arc<str>,
        peer: String,
        request_id: u64,
        json: String,
    },
    Stop,
}

impl NotifierMsg {
    pub fn event(kind: EventKind, room: &str, peer: &str, request_id: u64, json: String) -> Self {
        NotifierMsg::Event {
            kind,
            room: Arc::from(room),
            peer: peer.to_string(),
            request_id,
            json,
        }
    }
}

pub(crate) fn run(rx: Receiver<NotifierMsg>, mut sink: EventSink, inner: Arc<Inner>) {
    while let Ok(msg) = rx.recv() {
        if inner.stop_now.load(std::sync::atomic::Ordering::Acquire) {
            break; // the server was freed from inside the callback
        }
        match msg {
            NotifierMsg::Stop => break,
            NotifierMsg::Event {
                kind,
                room,
                peer,
                request_id,
                json,
            } => {
                let ev = Event {
                    kind,
                    room_id: &room,
                    peer_name: &peer,
                    request_id,
                    json: &json,
                };
                // A panicking Rust sink must not take the notifier down.
                let _ = catch_unwind(AssertUnwindSafe(|| sink(ev)));
                if inner.stop_now.load(std::sync::atomic::Ordering::Acquire) {
                    // The callback freed the server: end now, without waiting for
                    // another message that may never come.
                    break;
                }
            }
        }
    }
    // Dropping the sink runs the host's userdata finalizer, exactly once, here.
    drop(sink);
}
