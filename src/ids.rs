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
    /// A transport inside the server (one str0m `Rtc`).
    TransportKey(u64)
);
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

/// Hands out internal keys. Each worker owns one, seeded with its index in the top bits,
/// so keys are unique in the whole server and never reused.
#[derive(Debug)]
pub struct KeyGen {
    next: u64,
}

impl KeyGen {
    pub fn new(worker: usize) -> KeyGen {
        KeyGen {
            next: ((worker as u64) << 48) | 1,
        }
    }

    fn next(&mut self) -> u64 {
        let k = self.next;
        self.next += 1;
        k
    }

    pub fn transport(&mut self) -> TransportKey {
        TransportKey(self.next())
    }

    pub fn producer(&mut self) -> ProducerKey {
        ProducerKey(self.next())
    }
}
