//! Typed identifiers. Internal keys (never reused, unique in a server) and the protocol's
//! ids (chosen by the client or by the server, unique per peer or per room) are distinct
//! types, so that one cannot be passed where another is expected.

use std::fmt;
use std::sync::Arc;

macro_rules! id_type {
    ($(#[$m:meta])* $name:ident($inner:ty)) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub $inner);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// A transport inside the server (one engine). Its top byte is the worker that runs
    /// its engine, the next one the worker whose room owns it.
    TransportKey(u64)
);

impl TransportKey {
    /// The worker whose media host runs this transport's engine.
    pub fn engine_worker(self) -> usize {
        (self.0 >> 56) as usize
    }

    /// The worker whose room owns this transport.
    pub fn home_worker(self) -> usize {
        ((self.0 >> 48) & 0xff) as usize
    }
}
id_type!(
    /// A producer inside the server.
    ProducerKey(u64)
);
id_type!(
    /// A room's place in its worker.
    RoomSlot(u32)
);
id_type!(
    /// `createTransport.id`: chosen by the client, unique per peer.
    TransportId(u64)
);
id_type!(
    /// `createProducer.id`: chosen by the client, unique per peer.
    ProducerId(u64)
);
id_type!(
    /// A consumer's id: chosen by the server, unique in its room.
    ConsumerId(u64)
);

/// A peer's name as the host gave it: shared, cheap to clone.
pub type PeerName = Arc<str>;

/// Hands out internal keys. Each worker owns one, seeded with its index in the key's
/// second byte, so keys are unique in the whole server and never reused.
#[derive(Debug)]
pub struct KeyGen {
    worker: u64,
    next: u64,
}

impl KeyGen {
    pub fn new(worker: usize) -> KeyGen {
        KeyGen { worker: worker as u64 & 0xff, next: 1 }
    }

    fn next(&mut self) -> u64 {
        let k = (self.worker << 48) | (self.next & ((1 << 48) - 1));
        self.next += 1;
        k
    }

    /// A transport whose engine runs on this worker.
    pub fn transport(&mut self) -> TransportKey {
        self.transport_on(self.worker as usize)
    }

    /// A transport of a room of this worker whose engine runs on worker `engine`.
    pub fn transport_on(&mut self, engine: usize) -> TransportKey {
        TransportKey(((engine as u64 & 0xff) << 56) | self.next())
    }

    pub fn producer(&mut self) -> ProducerKey {
        ProducerKey(self.next())
    }
}
