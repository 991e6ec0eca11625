//! Connecting to NATS and the stream's settings.

use crate::{FleetError, Result};
use async_nats::jetstream;
use std::time::Duration;

/// The stream journals go to unless named.
pub const DEFAULT_STREAM: &str = "JOURNAL";
/// Every shipped piece's subject starts with this token.
pub const SUBJECT_PREFIX: &str = "journal";
/// How long JetStream remembers message ids to drop a re-sent piece.
pub(crate) const DUPLICATE_WINDOW: Duration = Duration::from_secs(3600);

pub(crate) fn nats_err(servers: &str) -> impl Fn(&dyn std::fmt::Display) -> FleetError + '_ {
    move |e| FleetError::Nats {
        servers: servers.to_string(),
        what: e.to_string(),
    }
}

/// `nats://HOST:PORT[,…]` (or `HOST:PORT[,…]`) → the servers to try.
pub(crate) fn servers(spec: &str) -> Result<Vec<async_nats::ServerAddr>> {
    let v: Vec<_> = spec
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let url = if s.contains("://") {
                s.to_string()
            } else {
                format!("nats://{s}")
            };
            url.parse::<async_nats::ServerAddr>()
                .map_err(|e| FleetError::Usage(format!("NATS server {s:?}: {e}")))
        })
        .collect::<Result<_>>()?;
    if v.is_empty() {
        return Err(FleetError::Usage(
            "name at least one NATS server: nats://HOST:PORT[,nats://HOST:PORT…]".into(),
        ));
    }
    Ok(v)
}

/// A client that reconnects to any of `spec`'s servers for as long as it lives, and its
/// JetStream context (acks awaited at most `timeout`).
pub(crate) async fn connect(
    spec: &str,
    timeout: Duration,
) -> Result<(async_nats::Client, jetstream::Context)> {
    let addrs = servers(spec)?;
    let client = async_nats::ConnectOptions::new()
        .name("jcs")
        .connection_timeout(Duration::from_secs(5))
        .max_reconnects(None)
        .reconnect_delay_callback(|n| Duration::from_millis((50 * n as u64).min(1000)))
        .connect(addrs)
        .await
        .map_err(|e| nats_err(spec)(&e))?;
    let js = jetstream::context::ContextBuilder::new()
        .timeout(timeout)
        .max_ack_inflight(8192)
        .backpressure_on_inflight(true)
        .build(client.clone());
    Ok((client, js))
}

/// The stream `name` (created when missing: every `journal.>` subject, file storage,
/// `replicas` copies, an hour's duplicate window).
pub(crate) async fn stream(
    js: &jetstream::Context,
    spec: &str,
    name: &str,
    replicas: usize,
    create: bool,
) -> Result<jetstream::stream::Stream> {
    if !create {
        return js.get_stream(name).await.map_err(|e| FleetError::Nats {
            servers: spec.to_string(),
            what: if e.to_string().contains("stream not found") {
                format!("there is no stream {name}: no host has shipped to it yet (jcs ship, jcs daemon --ship)")
            } else {
                format!("stream {name}: {e}")
            },
        });
    }
    let config = jetstream::stream::Config {
        name: name.to_string(),
        subjects: vec![format!("{SUBJECT_PREFIX}.>")],
        storage: jetstream::stream::StorageType::File,
        num_replicas: replicas,
        duplicate_window: DUPLICATE_WINDOW,
        ..Default::default()
    };
    js.get_or_create_stream(config)
        .await
        .map_err(|e| FleetError::Nats {
            servers: spec.to_string(),
            what: format!(
                "create stream {name} with {replicas} replica(s): {e}{}",
                if replicas > 1 {
                    " (a server without a JetStream cluster takes --replicas 1)"
                } else {
                    ""
                }
            ),
        })
}

/// The most a piece's part may carry: the server's limit less room for headers.
pub(crate) fn max_part(client: &async_nats::Client) -> usize {
    let max = client.server_info().max_payload;
    if max == 0 { 1 << 20 } else { max }
        .saturating_sub(4096)
        .max(4096)
}
