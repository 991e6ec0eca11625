//! Network set-up of a VE before its app starts (the `--net bridge` mode).

use crate::store::Store;
use anyhow::{bail, Result};
use model::NetMode;
use ve::launch::Hooks;

/// The hooks that connect a VE to its network, if its mode needs any.
pub fn hooks_for(_store: &Store, net: NetMode) -> Result<Option<Box<dyn Hooks>>> {
    match net {
        NetMode::None | NetMode::Host => Ok(None),
        NetMode::Bridge => bail!("--net bridge is not available in this build yet; use --net none"),
    }
}
