//! Network set-up of a VE before its app starts (the `--net bridge` mode).
//!
//! The bridge (`jcs0`) lives in the network namespace `jcs run` runs in; its range comes from
//! `JCS_BRIDGE_CIDR` (default 10.231.0.0/16). VE N gets host N+1 of the range; the bridge is
//! host 1, so a service on the host is reachable from every bridged VE at that address.

use crate::Result;
use model::{NetMode, VeId};
use store::Store;
use ve::launch::{EthConfig, HookError, Hooks};
use ve::net::{Attached, BridgeNet};

/// The bridge network of this host (or of the network namespace jcs runs in).
pub fn bridge_net() -> Result<BridgeNet> {
    let cidr = std::env::var("JCS_BRIDGE_CIDR").unwrap_or_else(|_| ve::net::DEFAULT_CIDR.into());
    Ok(BridgeNet::parse(ve::net::BRIDGE, &cidr)?)
}

/// What VE `id` gets on the bridge.
pub fn eth_config(net: &BridgeNet, id: VeId) -> EthConfig {
    EthConfig {
        addr: net.ve_address(id.0),
        prefix: net.prefix,
        gateway: net.gateway(),
    }
}

/// Connects a VE to the bridge before its app starts, and removes its veth after it exits.
#[derive(Debug)]
pub struct BridgeHooks {
    net: BridgeNet,
    host_name: String,
    /// The VE's address on the bridge.
    addr: std::net::Ipv4Addr,
    attached: Option<Attached>,
}

impl Hooks for BridgeHooks {
    fn before_release(&mut self, pid: i32, _cgroup: &ve::VeCgroup) -> Result<(), HookError> {
        let a = ve::net::attach(&self.net, &self.host_name, self.addr, pid)?;
        self.attached = Some(a);
        Ok(())
    }

    fn after_exit(&mut self) -> Result<(), HookError> {
        if let Some(a) = self.attached.take() {
            ve::net::detach(&a)?;
        }
        Ok(())
    }
}

/// The hooks that connect VE `id` to its network, if its mode needs any.
pub fn hooks_for(store: &Store, net: NetMode, id: VeId) -> Result<Option<BridgeHooks>> {
    match net {
        NetMode::None | NetMode::Host => Ok(None),
        NetMode::Bridge => {
            let net = bridge_net()?;
            Ok(Some(BridgeHooks {
                addr: net.ve_address(id.0),
                net,
                // IFNAMSIZ is 16: "vj" + 4 hex digits of the store id + the VE id.
                host_name: format!("vj{}{}", &store.id[..4.min(store.id.len())], id),
                attached: None,
            }))
        }
    }
}
