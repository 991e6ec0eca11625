//! `--net bridge`: a veth pair per VE into the JCS bridge, with addresses from a private range.
//!
//! Everything goes through rtnetlink, hand-built here (a few message types). Links are
//! addressed by ifindex once they exist; the only lookups by name are of names JCS itself
//! created (the bridge, the host end of a VE's veth). The VE end is created directly inside
//! the VE's network namespace with ifindex 2 and configured by the VE's init from there.
//! JCS never touches an interface it did not create.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_PID: u16 = 19;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const NLA_F_NESTED: u16 = 0x8000;
const IFF_UP: u32 = 1;

/// The ifindex the VE end of the veth gets inside the VE (a fresh namespace has only lo = 1).
pub const VE_IFINDEX: i32 = 2;
/// Default name of the JCS bridge.
pub const BRIDGE: &str = "jcs0";
/// Default private range (`JCS_BRIDGE_CIDR` overrides it).
pub const DEFAULT_CIDR: &str = "10.231.0.0/16";

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("bridge range {0:?} is not an IPv4 CIDR such as 10.231.0.0/16 (prefix 8 to 28)")]
    Cidr(String),
    #[error("netlink {what}: {source}")]
    Netlink { what: String, source: io::Error },
    #[error("{0} exists but is not a bridge; JCS does not touch interfaces it did not create")]
    NotBridge(String),
    #[error("nftables: {0}")]
    Nft(String),
}

fn nl_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> NetError {
    let what = what.into();
    move |source| NetError::Netlink { what, source }
}

/// A bridge network: the bridge's name and its IPv4 range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeNet {
    pub bridge: String,
    pub network: Ipv4Addr,
    pub prefix: u8,
}

impl BridgeNet {
    pub fn parse(bridge: &str, cidr: &str) -> Result<BridgeNet, NetError> {
        let bad = || NetError::Cidr(cidr.to_string());
        let (a, p) = cidr.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = a.parse().map_err(|_| bad())?;
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        if !(8..=28).contains(&prefix) {
            return Err(bad());
        }
        let mask = u32::MAX << (32 - prefix);
        Ok(BridgeNet {
            bridge: bridge.to_string(),
            network: Ipv4Addr::from(u32::from(addr) & mask),
            prefix,
        })
    }

    /// The bridge's own address: the first host of the range.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }

    /// VE `id`'s address: hosts 2.. of the range, by id (wrapping for very large ids).
    pub fn ve_address(&self, id: u64) -> Ipv4Addr {
        let hosts = (1u64 << (32 - self.prefix)) - 3; // minus network, gateway, broadcast
        Ipv4Addr::from(u32::from(self.network) + 2 + (id.saturating_sub(1) % hosts) as u32)
    }
}

/// A netlink request under construction.
struct Msg {
    buf: Vec<u8>,
    nests: Vec<usize>,
}

impl Msg {
    fn new(ty: u16, flags: u16) -> Msg {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length, patched in finish()
        buf.extend_from_slice(&ty.to_ne_bytes());
        buf.extend_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        buf.extend_from_slice(&1u32.to_ne_bytes()); // seq
        buf.extend_from_slice(&0u32.to_ne_bytes()); // pid
        Msg { buf, nests: vec![] }
    }

    fn align(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    /// struct ifinfomsg
    fn ifinfo(mut self, index: i32, flags: u32, change: u32) -> Msg {
        self.buf
            .extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
        self.buf.extend_from_slice(&index.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&change.to_ne_bytes());
        self
    }

    fn attr(&mut self, ty: u16, data: &[u8]) -> &mut Msg {
        self.align();
        self.buf
            .extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.align();
        self
    }

    fn attr_str(&mut self, ty: u16, s: &str) -> &mut Msg {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.attr(ty, &v)
    }

    fn begin(&mut self, ty: u16) -> &mut Msg {
        self.align();
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        self
    }

    fn end(&mut self) -> &mut Msg {
        let start = self.nests.pop().expect("balanced nests");
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        self
    }

    fn finish(mut self) -> Vec<u8> {
        self.align();
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

/// RTM_NEWLINK creating a bridge.
fn new_bridge(name: &str) -> Vec<u8> {
    let mut m = Msg::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL).ifinfo(0, 0, 0);
    m.attr_str(IFLA_IFNAME, name)
        .begin(IFLA_LINKINFO)
        .attr_str(IFLA_INFO_KIND, "bridge")
        .end();
    m.finish()
}

/// RTM_NEWLINK creating a veth pair whose peer is born in the network namespace of `pid`,
/// named `peer_name` with ifindex `peer_index` there.
fn new_veth(name: &str, peer_name: &str, peer_index: i32, peer_mac: [u8; 6], pid: i32) -> Vec<u8> {
    let mut m = Msg::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL).ifinfo(0, 0, 0);
    m.attr_str(IFLA_IFNAME, name)
        .begin(IFLA_LINKINFO)
        .attr_str(IFLA_INFO_KIND, "veth")
        .begin(IFLA_INFO_DATA)
        .begin(VETH_INFO_PEER);
    // The peer's struct ifinfomsg, then its attributes.
    m.buf.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
    m.buf.extend_from_slice(&peer_index.to_ne_bytes());
    m.buf.extend_from_slice(&0u32.to_ne_bytes());
    m.buf.extend_from_slice(&0u32.to_ne_bytes());
    m.attr_str(IFLA_IFNAME, peer_name)
        .attr(IFLA_ADDRESS, &peer_mac)
        .attr(IFLA_NET_NS_PID, &(pid as u32).to_ne_bytes());
    m.end().end().end();
    m.finish()
}

/// RTM_NEWLINK changing link `index`: up, and optionally its master.
fn set_link(index: i32, master: Option<i32>) -> Vec<u8> {
    let mut m = Msg::new(RTM_NEWLINK, 0).ifinfo(index, IFF_UP, IFF_UP);
    if let Some(mi) = master {
        m.attr(IFLA_MASTER, &(mi as u32).to_ne_bytes());
    }
    m.finish()
}

fn del_link(index: i32) -> Vec<u8> {
    Msg::new(RTM_DELLINK, 0).ifinfo(index, 0, 0).finish()
}

fn get_link_by_name(name: &str) -> Vec<u8> {
    let mut m = Msg::new(RTM_GETLINK, 0).ifinfo(0, 0, 0);
    m.attr_str(IFLA_IFNAME, name);
    m.finish()
}

fn new_addr(index: i32, addr: Ipv4Addr, prefix: u8) -> Vec<u8> {
    let mut m = Msg::new(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
    m.buf
        .extend_from_slice(&[libc::AF_INET as u8, prefix, 0, 0]);
    m.buf.extend_from_slice(&(index as u32).to_ne_bytes());
    m.attr(IFA_LOCAL, &addr.octets())
        .attr(IFA_ADDRESS, &addr.octets());
    m.finish()
}

fn default_route(index: i32, gw: Ipv4Addr) -> Vec<u8> {
    let mut m = Msg::new(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL);
    // struct rtmsg: family, dst_len, src_len, tos, table=main, protocol=boot, scope=universe, type=unicast, flags
    m.buf
        .extend_from_slice(&[libc::AF_INET as u8, 0, 0, 0, 254, 3, 0, 1]);
    m.buf.extend_from_slice(&0u32.to_ne_bytes());
    m.attr(RTA_GATEWAY, &gw.octets())
        .attr(RTA_OIF, &(index as u32).to_ne_bytes());
    m.finish()
}

/// A route netlink socket of the calling thread's network namespace.
struct Netlink {
    fd: OwnedFd,
}

impl Netlink {
    fn open() -> io::Result<Netlink> {
        // SAFETY: socket(2) with constant arguments; the fd is owned right away.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Netlink {
            // SAFETY: fd is a fresh, valid descriptor that nothing else owns.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Sends a request and returns the reply messages up to and including the ACK; an error
    /// ACK becomes an io::Error with its errno.
    fn request(&self, msg: &[u8]) -> io::Result<Vec<u8>> {
        // SAFETY: sends our own buffer on our own socket (kernel as the destination).
        let n = unsafe { libc::send(self.fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut replies = Vec::new();
        let mut buf = vec![0u8; 16384];
        loop {
            // SAFETY: receives into a buffer of the stated length.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let mut off = 0usize;
            let n = n as usize;
            while off + 16 <= n {
                let len =
                    u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap_or_default()) as usize;
                let ty = u16::from_ne_bytes(buf[off + 4..off + 6].try_into().unwrap_or_default());
                if len < 16 || off + len > n {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "truncated netlink reply",
                    ));
                }
                if ty == NLMSG_ERROR {
                    let errno =
                        i32::from_ne_bytes(buf[off + 16..off + 20].try_into().unwrap_or_default());
                    if errno != 0 {
                        return Err(io::Error::from_raw_os_error(-errno));
                    }
                    return Ok(replies);
                }
                replies.extend_from_slice(&buf[off..off + len]);
                off += (len + 3) & !3;
            }
        }
    }
}

/// From an RTM_NEWLINK reply: the ifindex and the IFLA_INFO_KIND, if any.
fn parse_link(reply: &[u8]) -> Option<(i32, Option<String>)> {
    if reply.len() < 32 {
        return None;
    }
    let index = i32::from_ne_bytes(reply[20..24].try_into().ok()?);
    let mut kind = None;
    let mut off = 32;
    let attrs = |data: &[u8], mut f: &mut dyn FnMut(u16, &[u8])| {
        let mut o = 0;
        while o + 4 <= data.len() {
            let l = u16::from_ne_bytes([data[o], data[o + 1]]) as usize;
            let t = u16::from_ne_bytes([data[o + 2], data[o + 3]]) & !NLA_F_NESTED;
            if l < 4 || o + l > data.len() {
                break;
            }
            (f)(t, &data[o + 4..o + l]);
            o += (l + 3) & !3;
        }
        let _ = &mut f;
    };
    let len = (u32::from_ne_bytes(reply[0..4].try_into().ok()?) as usize).min(reply.len());
    off = off.min(len);
    attrs(&reply[off..len], &mut |t, d| {
        if t == IFLA_LINKINFO {
            attrs(d, &mut |t2, d2| {
                if t2 == IFLA_INFO_KIND {
                    kind = Some(
                        String::from_utf8_lossy(d2)
                            .trim_end_matches('\0')
                            .to_string(),
                    );
                }
            });
        }
    });
    Some((index, kind))
}

/// The host end of a VE's veth, created by [`attach`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    pub host_ifindex: i32,
    pub bridge_ifindex: i32,
    /// What the VE's port may send (nftables, `netfilter`).
    pub port: crate::netfilter::Port,
}

fn lookup(nl: &Netlink, name: &str) -> Result<Option<(i32, Option<String>)>, NetError> {
    match nl.request(&get_link_by_name(name)) {
        Ok(r) => Ok(parse_link(&r)),
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(nl_err(format!("look up {name}"))(e)),
    }
}

/// Makes sure the JCS bridge exists, has its address, and is up; returns its ifindex.
fn ensure_bridge(nl: &Netlink, net: &BridgeNet) -> Result<i32, NetError> {
    match nl.request(&new_bridge(&net.bridge)) {
        Ok(_) => {}
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
        Err(e) => return Err(nl_err(format!("create bridge {}", net.bridge))(e)),
    }
    let (index, kind) = lookup(nl, &net.bridge)?.ok_or_else(|| NetError::Netlink {
        what: format!("find bridge {}", net.bridge),
        source: io::Error::from_raw_os_error(libc::ENODEV),
    })?;
    if kind.as_deref() != Some("bridge") {
        return Err(NetError::NotBridge(net.bridge.clone()));
    }
    match nl.request(&new_addr(index, net.gateway(), net.prefix)) {
        Ok(_) => {}
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
        Err(e) => {
            return Err(nl_err(format!(
                "address {} on {}",
                net.gateway(),
                net.bridge
            ))(e))
        }
    }
    nl.request(&set_link(index, None))
        .map_err(nl_err(format!("bring up {}", net.bridge)))?;
    Ok(index)
}

/// Connects the VE whose init is `pid` to the bridge: a veth pair `host_name` ↔ `eth0`
/// (ifindex 2 inside the VE, MAC from `addr`), the host end enslaved to the bridge and up,
/// and the port's filter (`netfilter`: only the VE's MAC and `addr`, only the bridge's own
/// address of the host).
pub fn attach(
    net: &BridgeNet,
    host_name: &str,
    addr: Ipv4Addr,
    pid: i32,
) -> Result<Attached, NetError> {
    let nl = Netlink::open().map_err(nl_err("open a route socket"))?;
    let bridge_ifindex = ensure_bridge(&nl, net)?;
    let mac = crate::netfilter::ve_mac(addr);
    nl.request(&new_veth(host_name, "eth0", VE_IFINDEX, mac, pid))
        .map_err(nl_err(format!("create veth {host_name}")))?;
    let (host_ifindex, _) = lookup(&nl, host_name)?.ok_or_else(|| NetError::Netlink {
        what: format!("find veth {host_name}"),
        source: io::Error::from_raw_os_error(libc::ENODEV),
    })?;
    let port = crate::netfilter::Port {
        chain: host_name.to_string(),
        ifindex: host_ifindex,
        addr,
        mac,
    };
    // The filter before the port is up: no frame of the VE passes unfiltered.
    if let Err(e) = crate::netfilter::apply(&crate::netfilter::add_script(
        bridge_ifindex,
        net.gateway(),
        &port,
    )) {
        let _ = nl.request(&del_link(host_ifindex));
        return Err(e);
    }
    if let Err(e) = nl.request(&set_link(host_ifindex, Some(bridge_ifindex))) {
        let _ = nl.request(&del_link(host_ifindex));
        let _ = crate::netfilter::apply(&crate::netfilter::remove_script(&port));
        return Err(nl_err(format!("attach {host_name} to {}", net.bridge))(e));
    }
    Ok(Attached {
        host_ifindex,
        bridge_ifindex,
        port,
    })
}

/// Deletes the veth pair of a VE (both ends) by the host end's ifindex.
pub fn detach(a: &Attached) -> Result<(), NetError> {
    let nl = Netlink::open().map_err(nl_err("open a route socket"))?;
    let filter = crate::netfilter::remove(&a.port);
    match nl.request(&del_link(a.host_ifindex)) {
        Ok(_) => filter,
        // Already gone with the VE's network namespace.
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => filter,
        Err(e) => Err(nl_err(format!("delete veth ifindex {}", a.host_ifindex))(e)),
    }
}

/// Inside the VE (its own network namespace): address, up, default route on ifindex 2.
pub fn configure_ve_side(addr: Ipv4Addr, prefix: u8, gw: Ipv4Addr) -> Result<(), NetError> {
    let nl = Netlink::open().map_err(nl_err("open a route socket"))?;
    nl.request(&new_addr(VE_IFINDEX, addr, prefix))
        .map_err(nl_err(format!("address {addr}/{prefix} on eth0")))?;
    nl.request(&set_link(VE_IFINDEX, None))
        .map_err(nl_err("bring up eth0"))?;
    nl.request(&default_route(VE_IFINDEX, gw))
        .map_err(nl_err(format!("default route via {gw}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_and_addresses() {
        let n = BridgeNet::parse("jcs0", "10.231.7.9/16").unwrap();
        assert_eq!(n.network, Ipv4Addr::new(10, 231, 0, 0));
        assert_eq!(n.gateway(), Ipv4Addr::new(10, 231, 0, 1));
        assert_eq!(n.ve_address(1), Ipv4Addr::new(10, 231, 0, 2));
        assert_eq!(n.ve_address(300), Ipv4Addr::new(10, 231, 1, 45));
        let small = BridgeNet::parse("b", "192.168.5.0/28").unwrap();
        // 13 usable VE addresses, then it wraps.
        assert_eq!(small.ve_address(13), Ipv4Addr::new(192, 168, 5, 14));
        assert_eq!(small.ve_address(14), Ipv4Addr::new(192, 168, 5, 2));
        for bad in ["10.0.0.0", "10.0.0.0/33", "10.0.0.0/4", "x/16", "10.0.0/16"] {
            assert!(BridgeNet::parse("b", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn messages_are_well_formed() {
        for m in [
            new_bridge("jcs0"),
            new_veth("vj1", "eth0", 2, [2, 0x4a, 0x43, 0, 0, 2], 1234),
            set_link(5, Some(3)),
            new_addr(2, Ipv4Addr::new(10, 0, 0, 2), 16),
            default_route(2, Ipv4Addr::new(10, 0, 0, 1)),
            del_link(7),
        ] {
            let len = u32::from_ne_bytes(m[0..4].try_into().unwrap()) as usize;
            assert_eq!(len, m.len());
            assert_eq!(len % 4, 0);
            let flags = u16::from_ne_bytes(m[6..8].try_into().unwrap());
            assert_ne!(flags & NLM_F_REQUEST, 0);
            assert_ne!(flags & NLM_F_ACK, 0);
        }
        // The veth request nests LINKINFO > INFO_DATA > PEER; the peer carries its netns pid
        // and its MAC.
        let mac = [2, 0x4a, 0x43, 7, 0, 9];
        let v = new_veth("vj1", "eth0", 2, mac, 0x01020304);
        let needle = 0x01020304u32.to_ne_bytes();
        assert!(v.windows(4).any(|w| w == needle));
        assert!(v.windows(6).any(|w| w == mac));
        let (index, kind) = parse_link(&{
            // A synthetic RTM_NEWLINK reply for ifindex 9 of kind "bridge".
            let mut m = Msg::new(RTM_NEWLINK, 0).ifinfo(9, 0, 0);
            m.attr_str(IFLA_IFNAME, "jcs0")
                .begin(IFLA_LINKINFO)
                .attr_str(IFLA_INFO_KIND, "bridge")
                .end();
            m.finish()
        })
        .unwrap();
        assert_eq!((index, kind.as_deref()), (9, Some("bridge")));
    }
}
