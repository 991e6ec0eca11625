//! What a VE on the bridge may send, enforced by nftables in the bridge's network namespace
//! (tables of JCS's own, `bridge jcs` and `inet jcs`; nothing else is touched):
//! - anti-spoofing, per veth: a frame from a VE's port must carry the VE's MAC (which JCS sets
//!   when it creates the veth) and, for IPv4 and ARP, the VE's address; IPv6 is dropped (JCS
//!   gives VEs none). The port is matched by ifindex, through a verdict map from the port to
//!   the VE's own chain, so adding and removing a VE touches only its element and chain.
//! - the host: from the bridge, only the bridge's own address is reachable (other VEs are
//!   reached through the bridge, not the host's stack).
//!
//! Scripts are built here (pure, unit-tested) and applied with `nft -f -` as one transaction.

use crate::net::NetError;
use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

/// The MAC JCS gives the VE end of a veth: locally administered, from the VE's address.
pub fn ve_mac(addr: Ipv4Addr) -> [u8; 6] {
    let o = addr.octets();
    [0x02, 0x4a, 0x43, o[1], o[2], o[3]]
}

fn mac_str(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// What one VE's port is allowed to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    /// The VE's chain (the host end's name: unique per store and VE).
    pub chain: String,
    /// ifindex of the host end of the veth (the bridge port).
    pub ifindex: i32,
    pub addr: Ipv4Addr,
    pub mac: [u8; 6],
}

/// The script that creates (or refreshes) the tables and adds `port`. `bridge_ifindex` and
/// `bridge_addr`: the bridge and its own address, the only one of the host a VE may reach.
pub fn add_script(bridge_ifindex: i32, bridge_addr: Ipv4Addr, port: &Port) -> String {
    let (c, i, a, m) = (&port.chain, port.ifindex, port.addr, mac_str(port.mac));
    format!(
        "add table bridge jcs
add chain bridge jcs ports {{ type filter hook prerouting priority -300; policy accept; }}
add map bridge jcs port_chains {{ type iface_index : verdict; }}
flush chain bridge jcs ports
add rule bridge jcs ports iif vmap @port_chains
add chain bridge jcs {c}
flush chain bridge jcs {c}
add rule bridge jcs {c} ether saddr != {m} drop
add rule bridge jcs {c} ether type arp arp saddr ether != {m} drop
add rule bridge jcs {c} ether type arp arp saddr ip != {a} drop
add rule bridge jcs {c} ether type ip ip saddr != {a} drop
add rule bridge jcs {c} ether type ip6 drop
add element bridge jcs port_chains {{ {i} : jump {c} }}
add table inet jcs
add chain inet jcs input {{ type filter hook input priority 0; policy accept; }}
flush chain inet jcs input
add rule inet jcs input iif {bridge_ifindex} meta nfproto ipv4 ip daddr != {bridge_addr} drop
add rule inet jcs input iif {bridge_ifindex} meta nfproto ipv6 drop
"
    )
}

/// The script that removes `port` (its map element and chain).
pub fn remove_script(port: &Port) -> String {
    format!(
        "delete element bridge jcs port_chains {{ {} }}
delete chain bridge jcs {}
",
        port.ifindex, port.chain
    )
}

/// Removes `port` from the filter. Its map element may be gone already (the map flushed by
/// an operator): then the chain alone goes.
pub fn remove(port: &Port) -> Result<(), NetError> {
    apply(&remove_script(port)).or_else(|_| {
        apply(&format!(
            "flush chain bridge jcs {c}\ndelete chain bridge jcs {c}\n",
            c = port.chain
        ))
    })
}

/// Applies a script with `nft -f -` (one transaction: all of it or nothing).
pub fn apply(script: &str) -> Result<(), NetError> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            NetError::Nft(format!(
                "cannot run nft ({e}); --net bridge needs nftables (apt-get install nftables)"
            ))
        })?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(script.as_bytes())
        .map_err(|e| NetError::Nft(format!("write to nft: {e}")))?;
    let out = child
        .wait_with_output()
        .map_err(|e| NetError::Nft(format!("wait for nft: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(NetError::Nft(
            err.lines()
                .find(|l| l.contains("Error"))
                .unwrap_or(err.trim())
                .to_string(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_name_the_port_by_ifindex_and_the_ve_by_address_and_mac() {
        let a: Ipv4Addr = "10.77.0.2".parse().unwrap();
        assert_eq!(mac_str(ve_mac(a)), "02:4a:43:4d:00:02");
        let p = Port {
            chain: "vjab127".into(),
            ifindex: 42,
            addr: a,
            mac: ve_mac(a),
        };
        let s = add_script(5, "10.77.0.1".parse().unwrap(), &p);
        for line in [
            "add rule bridge jcs vjab127 ether saddr != 02:4a:43:4d:00:02 drop",
            "add rule bridge jcs vjab127 ether type ip ip saddr != 10.77.0.2 drop",
            "add rule bridge jcs vjab127 ether type arp arp saddr ip != 10.77.0.2 drop",
            "add element bridge jcs port_chains { 42 : jump vjab127 }",
            "add rule inet jcs input iif 5 meta nfproto ipv4 ip daddr != 10.77.0.1 drop",
        ] {
            assert!(s.lines().any(|l| l == line), "missing {line:?} in\n{s}");
        }
        // No interface is named: ports and the bridge are matched by ifindex.
        assert!(!s.contains("iifname"));
        assert_eq!(
            remove_script(&p),
            "delete element bridge jcs port_chains { 42 }\ndelete chain bridge jcs vjab127\n"
        );
    }
}
