//! Who opened a loopback TCP connection: the kernel's socket tables
//! (`/proc/net/tcp`) give the inode of the client socket, and the process
//! whose `/proc/<pid>/fd` links to `socket:[inode]` owns it. The proxies use
//! this to apply partition rules per source member (see [`super::proxy`]).
//! Linux only; IPv4 only (members are addressed as 127.0.0.1).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The inode of the socket whose local address is `client` and remote
/// address is `server` — the client end of a connection the proxy accepted
/// (`client` = the accepted connection's peer, `server` = its local address).
pub fn socket_inode(client: SocketAddr, server: SocketAddr) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let local = parse_addr(cols.get(1)?)?;
        let remote = parse_addr(cols.get(2)?)?;
        if local == client && remote == server {
            cols.get(9)?.parse().ok()
        } else {
            None
        }
    })
}

/// Which of `pids` holds the socket `inode` open.
pub fn owner(inode: u64, pids: &[u32]) -> Option<u32> {
    let wanted = format!("socket:[{inode}]");
    pids.iter().copied().find(|pid| {
        let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            return false;
        };
        dir.flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| target.as_os_str() == wanted.as_str()))
    })
}

/// `0100007F:1F90` → 127.0.0.1:8080 (address in host byte order, port big-endian).
fn parse_addr(text: &str) -> Option<SocketAddr> {
    let (ip, port) = text.split_once(':')?;
    if ip.len() != 8 {
        return None;
    }
    let ip = u32::from_str_radix(ip, 16).ok()?;
    let port = u16::from_str_radix(port, 16).ok()?;
    Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip.to_le_bytes())), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kernel_addresses() {
        assert_eq!(parse_addr("0100007F:1F90"), Some("127.0.0.1:8080".parse().unwrap()));
    }

    #[test]
    fn finds_this_process_as_owner_of_its_connection() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, peer) = listener.accept().unwrap();
        let inode = socket_inode(peer, accepted.local_addr().unwrap()).expect("inode");
        assert_eq!(owner(inode, &[std::process::id()]), Some(std::process::id()));
        assert_eq!(owner(inode, &[1]), None);
        drop(client);
    }
}
