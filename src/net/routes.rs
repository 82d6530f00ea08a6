//! A worker's routing table: which transport a datagram is for. STUN binding requests are
//! routed by the local ICE ufrag they name; everything else by a remote address that an
//! authenticated binding request has proven. Each value's routes are indexed, so removing
//! a transport costs O(its routes), not O(table).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::SocketAddr;

use crate::output::Proto;

/// Where packets come from: the protocol and the remote address.
pub type Source = (Proto, SocketAddr);

#[derive(Debug)]
pub struct Routes<V> {
    by_ufrag: HashMap<String, V>,
    by_addr: HashMap<Source, V>,
    /// Every route of a value, for removal.
    of: HashMap<V, (Vec<String>, Vec<Source>)>,
}

impl<V> Default for Routes<V> {
    fn default() -> Self {
        Routes {
            by_ufrag: HashMap::new(),
            by_addr: HashMap::new(),
            of: HashMap::new(),
        }
    }
}

/// Remote addresses kept per value: a browser changes address rarely (ICE restart, a
/// new interface); older ones are forgotten first.
const MAX_ADDRS: usize = 8;

impl<V: Copy + Eq + Hash> Routes<V> {
    pub fn add_ufrag(&mut self, ufrag: &str, v: V) {
        self.by_ufrag.insert(ufrag.to_string(), v);
        self.of.entry(v).or_default().0.push(ufrag.to_string());
    }

    pub fn remove_ufrag(&mut self, ufrag: &str) {
        if let Some(v) = self.by_ufrag.remove(ufrag) {
            if let Some((u, _)) = self.of.get_mut(&v) {
                u.retain(|x| x != ufrag);
            }
        }
    }

    pub fn add_addr(&mut self, a: Source, v: V) {
        if let Some(old) = self.by_addr.insert(a, v) {
            if old != v {
                if let Some((_, addrs)) = self.of.get_mut(&old) {
                    addrs.retain(|x| *x != a);
                }
            }
        }
        let addrs = &mut self.of.entry(v).or_default().1;
        if !addrs.contains(&a) {
            if addrs.len() == MAX_ADDRS {
                let gone = addrs.remove(0);
                if self.by_addr.get(&gone) == Some(&v) {
                    self.by_addr.remove(&gone);
                }
            }
            addrs.push(a);
        }
    }

    pub fn by_ufrag(&self, u: &str) -> Option<V> {
        self.by_ufrag.get(u).copied()
    }

    pub fn by_addr(&self, a: &Source) -> Option<V> {
        self.by_addr.get(a).copied()
    }

    /// Forget every route to `v`.
    pub fn remove(&mut self, v: V) {
        let Some((ufrags, addrs)) = self.of.remove(&v) else {
            return;
        };
        for u in ufrags {
            if self.by_ufrag.get(&u) == Some(&v) {
                self.by_ufrag.remove(&u);
            }
        }
        for a in addrs {
            if self.by_addr.get(&a) == Some(&v) {
                self.by_addr.remove(&a);
            }
        }
    }

    /// (ufrag routes, address routes).
    pub fn len(&self) -> (usize, usize) {
        (self.by_ufrag.len(), self.by_addr.len())
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.by_ufrag.is_empty() && self.by_addr.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removal_forgets_every_route_of_a_value_only() {
        let a = (Proto::Udp, "127.0.0.1:1000".parse().unwrap());
        let b = (Proto::Udp, "127.0.0.1:1001".parse().unwrap());
        let b_tcp = (Proto::Tcp, b.1);
        let mut r = Routes::default();
        r.add_ufrag("u1", 1u32);
        r.add_ufrag("u2", 2);
        r.add_addr(a, 1);
        r.add_addr(b, 2);
        r.add_addr(b, 1); // the address moved to 1
        r.add_addr(b_tcp, 2);
        assert_eq!(r.by_addr(&b_tcp), Some(2), "the same address over TCP is another source");
        r.remove(2);
        assert_eq!(r.by_addr(&b_tcp), None);
        assert_eq!(r.by_ufrag("u2"), None);
        assert_eq!(r.by_addr(&b), Some(1), "an address taken over is not removed with its old owner");
        r.remove(1);
        assert!(r.is_empty());
        assert!(r.of.is_empty());
    }
}
