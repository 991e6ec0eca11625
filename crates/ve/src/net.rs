//! `--net bridge`: a veth pair per VE into the JCS bridge, with addresses from a private range.
//!
//! Everything goes through rtnetlink: messages built and parsed by `netlink-packet-route`,
//! sent on a `netlink-sys` socket. Links are
//! addressed by ifindex once they exist; the only lookups by name are of names JCS itself
//! created (the bridge, the host end of a VE's veth). The VE end is created directly inside
//! the VE's network namespace with ifindex 2 and configured by the VE's init from there.
//! JCS never touches an interface it did not create.

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use std::io;
use std::net::{IpAddr, Ipv4Addr};

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

/// A route netlink request: `msg` with the request and ACK flags and `flags`.
fn request(msg: RouteNetlinkMessage, flags: u16) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
    header.sequence_number = 1;
    let mut m = NetlinkMessage::new(header, NetlinkPayload::from(msg));
    m.finalize();
    let mut buf = vec![0u8; m.buffer_len()];
    m.serialize(&mut buf);
    buf
}

/// A link message for ifindex `index` (0: none yet) with `attributes`.
fn link(index: u32, attributes: Vec<LinkAttribute>) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.header.index = index;
    m.attributes = attributes;
    m
}

/// RTM_NEWLINK creating a bridge.
fn new_bridge(name: &str) -> Vec<u8> {
    let m = link(
        0,
        vec![
            LinkAttribute::IfName(name.into()),
            LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Bridge)]),
        ],
    );
    request(RouteNetlinkMessage::NewLink(m), NLM_F_CREATE | NLM_F_EXCL)
}

/// RTM_NEWLINK creating a veth pair whose peer is born in the network namespace of `pid`,
/// named `peer_name` with ifindex `peer_index` there.
fn new_veth(name: &str, peer_name: &str, peer_index: i32, peer_mac: [u8; 6], pid: i32) -> Vec<u8> {
    let peer = link(
        peer_index as u32,
        vec![
            LinkAttribute::IfName(peer_name.into()),
            LinkAttribute::Address(peer_mac.to_vec()),
            LinkAttribute::NetNsPid(pid as u32),
        ],
    );
    let m = link(
        0,
        vec![
            LinkAttribute::IfName(name.into()),
            LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::Veth),
                LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
            ]),
        ],
    );
    request(RouteNetlinkMessage::NewLink(m), NLM_F_CREATE | NLM_F_EXCL)
}

/// RTM_NEWLINK changing link `index`: up, and optionally its master.
fn set_link(index: i32, master: Option<i32>) -> Vec<u8> {
    let mut m = link(
        index as u32,
        master
            .map(|mi| vec![LinkAttribute::Controller(mi as u32)])
            .unwrap_or_default(),
    );
    m.header.flags = LinkFlags::Up;
    m.header.change_mask = LinkFlags::Up;
    request(RouteNetlinkMessage::NewLink(m), 0)
}

fn del_link(index: i32) -> Vec<u8> {
    request(RouteNetlinkMessage::DelLink(link(index as u32, vec![])), 0)
}

fn get_link_by_name(name: &str) -> Vec<u8> {
    let m = link(0, vec![LinkAttribute::IfName(name.into())]);
    request(RouteNetlinkMessage::GetLink(m), 0)
}

fn new_addr(index: i32, addr: Ipv4Addr, prefix: u8) -> Vec<u8> {
    let mut m = AddressMessage::default();
    m.header.family = AddressFamily::Inet;
    m.header.prefix_len = prefix;
    m.header.scope = AddressScope::Universe;
    m.header.index = index as u32;
    m.attributes = vec![
        AddressAttribute::Local(IpAddr::V4(addr)),
        AddressAttribute::Address(IpAddr::V4(addr)),
    ];
    request(
        RouteNetlinkMessage::NewAddress(m),
        NLM_F_CREATE | NLM_F_EXCL,
    )
}

fn default_route(index: i32, gw: Ipv4Addr) -> Vec<u8> {
    let mut m = RouteMessage::default();
    m.header.address_family = AddressFamily::Inet;
    m.header.table = RouteHeader::RT_TABLE_MAIN;
    m.header.protocol = RouteProtocol::Boot;
    m.header.scope = RouteScope::Universe;
    m.header.kind = RouteType::Unicast;
    m.attributes = vec![
        RouteAttribute::Gateway(RouteAddress::Inet(gw)),
        RouteAttribute::Oif(index as u32),
    ];
    request(RouteNetlinkMessage::NewRoute(m), NLM_F_CREATE | NLM_F_EXCL)
}

/// A route netlink socket of the calling thread's network namespace.
struct Netlink {
    socket: netlink_sys::Socket,
}

impl Netlink {
    fn open() -> io::Result<Netlink> {
        Ok(Netlink {
            socket: netlink_sys::Socket::new(netlink_sys::protocols::NETLINK_ROUTE)?,
        })
    }

    /// Sends a request and returns the messages of the reply before its ACK; an error ACK
    /// becomes an io::Error with its errno.
    fn request(&self, msg: &[u8]) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.socket.send(msg, 0)?;
        let mut replies = Vec::new();
        loop {
            let mut buf = Vec::with_capacity(16384);
            let n = self.socket.recv(&mut buf, 0)?.min(buf.len());
            let mut off = 0usize;
            while off < n {
                let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[off..n])
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                let len = m.header.length as usize;
                match m.payload {
                    NetlinkPayload::Error(e) if e.code.is_some() => return Err(e.to_io()),
                    NetlinkPayload::Error(_) | NetlinkPayload::Done(_) => return Ok(replies),
                    NetlinkPayload::InnerMessage(r) => replies.push(r),
                    _ => {}
                }
                if len == 0 {
                    break;
                }
                off += (len + 3) & !3;
            }
        }
    }
}

/// From an RTM_NEWLINK reply: the ifindex and the link's kind (`bridge`, `veth`, …), if any.
fn parse_link(reply: &[RouteNetlinkMessage]) -> Option<(i32, Option<String>)> {
    reply.iter().find_map(|r| match r {
        RouteNetlinkMessage::NewLink(m) => {
            let kind = m.attributes.iter().find_map(|a| match a {
                LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
                    LinkInfo::Kind(k) => Some(k.to_string()),
                    _ => None,
                }),
                _ => None,
            });
            Some((m.header.index as i32, kind))
        }
        _ => None,
    })
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
        let parse = |m: &[u8]| NetlinkMessage::<RouteNetlinkMessage>::deserialize(m).unwrap();
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
            let p = parse(&m);
            assert_ne!(p.header.flags & NLM_F_REQUEST, 0);
            assert_ne!(p.header.flags & NLM_F_ACK, 0);
        }
        // The veth request nests LINKINFO > INFO_DATA > PEER; the peer, ifindex 2, carries its
        // netns pid and its MAC.
        let mac = [2, 0x4a, 0x43, 7, 0, 9];
        let v = parse(&new_veth("vj1", "eth0", 2, mac, 0x01020304));
        let NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l)) = v.payload else {
            panic!("not a NewLink");
        };
        let peer = l
            .attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::LinkInfo(i) => i.iter().find_map(|x| match x {
                    LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(p))) => Some(p.clone()),
                    _ => None,
                }),
                _ => None,
            })
            .expect("a peer");
        assert_eq!(peer.header.index, 2);
        assert!(peer
            .attributes
            .contains(&LinkAttribute::NetNsPid(0x01020304)));
        assert!(peer
            .attributes
            .contains(&LinkAttribute::Address(mac.to_vec())));
        let reply = vec![RouteNetlinkMessage::NewLink(link(
            9,
            vec![
                LinkAttribute::IfName("jcs0".into()),
                LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Bridge)]),
            ],
        ))];
        let (index, kind) = parse_link(&reply).unwrap();
        assert_eq!((index, kind.as_deref()), (9, Some("bridge")));
    }
}
