//! Datagrams the kernel dropped because a worker's socket receive queue was full.
//!
//! Linux counts them per socket (`sk_drops`) and shows them in the `drops` column of
//! `/proc/<pid>/net/udp` (and `udp6`), on the line of the socket's inode. Read by the
//! metrics call (the caller's thread), never by a worker. Elsewhere, or when `/proc`
//! is not mounted, the figure is absent and the series is left out.

use std::collections::HashMap;
use std::os::fd::RawFd;

/// The inode of a socket, from `/proc/self/fd/<fd>` -> `socket:[<inode>]`.
pub fn socket_inode(fd: RawFd) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).ok()?;
    let s = link.to_str()?;
    s.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

/// The drop counts of the sockets with these inodes (the same order); `None` when no
/// table could be read. A socket missing from the tables counts 0.
pub fn udp_drops(inodes: &[u64]) -> Option<Vec<u64>> {
    let found = udp_table()?;
    Some(inodes.iter().map(|i| found.get(i).copied().unwrap_or(0)).collect())
}

/// inode -> drops of every UDP socket of this network namespace.
fn udp_table() -> Option<HashMap<u64, u64>> {
    let mut found = HashMap::new();
    let mut any = false;
    for table in ["/proc/self/net/udp", "/proc/self/net/udp6"] {
        if let Ok(text) = std::fs::read_to_string(table) {
            any = true;
            parse_into(&text, &mut found);
        }
    }
    any.then_some(found)
}

/// Lines: `sl local rem st tx:rx tr:tm retrnsmt uid timeout inode ref pointer drops`.
fn parse_into(text: &str, out: &mut HashMap<u64, u64>) {
    for line in text.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 13 {
            continue;
        }
        if let (Ok(inode), Ok(drops)) = (cols[9].parse::<u64>(), cols[12].parse::<u64>()) {
            out.insert(inode, drops);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_drops_column_is_read_by_inode() {
        let text = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
          1043: 0100007F:9C41 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 7001 2 0000000000000000 0\n\
          2210: 0100007F:2711 00000000:0000 07 00000000:00000D00 00:00000000 00000000  1000        0 7002 2 0000000000000000 2018\n";
        let mut m = HashMap::new();
        parse_into(text, &mut m);
        assert_eq!(m.get(&7001), Some(&0));
        assert_eq!(m.get(&7002), Some(&2018));
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn a_live_socket_is_found_in_the_table() {
        use std::os::fd::AsRawFd;
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let Some(inode) = socket_inode(s.as_raw_fd()) else {
            return; // no /proc: nothing to check
        };
        assert_eq!(udp_table().expect("/proc/self/net/udp").get(&inode), Some(&0), "the socket's line, no drops");
    }
}
