//! Routing tables of one worker: local ufrag -> transport, remote address -> transport.

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::room::TKey;

/// Where a transport lives: (room slot in the worker, transport key).
pub type Route = (usize, TKey);

#[derive(Default)]
pub struct Routes {
    by_ufrag: HashMap<String, Route>,
    by_addr: HashMap<SocketAddr, Route>,
}

impl Routes {
    pub fn add_ufrag(&mut self, ufrag: String, r: Route) {
        self.by_ufrag.insert(ufrag, r);
    }
    pub fn remove_ufrag(&mut self, ufrag: &str) {
        self.by_ufrag.remove(ufrag);
    }
    pub fn add_addr(&mut self, a: SocketAddr, r: Route) {
        self.by_addr.insert(a, r);
    }
    pub fn by_addr(&self, a: &SocketAddr) -> Option<Route> {
        self.by_addr.get(a).copied()
    }
    pub fn by_ufrag(&self, u: &str) -> Option<Route> {
        self.by_ufrag.get(u).copied()
    }
    /// Forget every route to one transport.
    pub fn remove_transport(&mut self, r: Route) {
        self.by_ufrag.retain(|_, v| *v != r);
        self.by_addr.retain(|_, v| *v != r);
    }
    /// Forget every route into one room.
    pub fn remove_room(&mut self, slot: usize) {
        self.by_ufrag.retain(|_, v| v.0 != slot);
        self.by_addr.retain(|_, v| v.0 != slot);
    }
    pub fn len(&self) -> (usize, usize) {
        (self.by_ufrag.len(), self.by_addr.len())
    }
}
