//! `jcs run -p [ADDR:]HOSTPORT:VEPORT`: a TCP port of the host side published to a port of a
//! VE on the bridge. `jcs run` itself accepts on the host side and relays each connection to
//! the VE's address (a userland proxy, like docker's for loopback): it works for the host's
//! loopback too, needs no NAT rule, and ends with the VE. What the VE receives is recorded as
//! any connection from the bridge's address.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// One published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Publish {
    /// Where the host side listens (default 0.0.0.0).
    pub listen: SocketAddr,
    /// The VE's port.
    pub ve_port: u16,
}

impl Publish {
    /// `HOSTPORT:VEPORT`, `ADDR:HOSTPORT:VEPORT`, with an optional `/tcp`.
    pub fn parse(spec: &str) -> Result<Publish, String> {
        let bad = |why: &str| {
            format!("--publish {spec:?}: {why} (expected [ADDR:]HOSTPORT:VEPORT[/tcp], TCP only)")
        };
        let s = spec.strip_suffix("/tcp").unwrap_or(spec);
        if s.ends_with("/udp") {
            return Err(bad("UDP ports are not published"));
        }
        let parts: Vec<&str> = s.split(':').collect();
        let (addr, host, ve) = match parts[..] {
            [h, v] => ("0.0.0.0", h, v),
            [a, h, v] => (a, h, v),
            _ => return Err(bad("not [ADDR:]HOSTPORT:VEPORT")),
        };
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| bad("ADDR is not an IPv4 address"))?;
        let port = |p: &str| match p.parse::<u16>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(bad(&format!("{p:?} is not a port"))),
        };
        Ok(Publish {
            listen: SocketAddr::new(addr.into(), port(host)?),
            ve_port: port(ve)?,
        })
    }
}

/// The listening sockets, bound before the VE is built (a port in use fails the run before
/// anything exists), then relaying once the VE has its address.
#[derive(Debug)]
pub struct Publisher {
    listeners: Vec<(TcpListener, u16)>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Publisher {
    pub fn bind(ports: &[Publish]) -> Result<Publisher, String> {
        let mut listeners = Vec::new();
        for p in ports {
            let l =
                TcpListener::bind(p.listen).map_err(|e| format!("--publish {}: {e}", p.listen))?;
            l.set_nonblocking(true)
                .map_err(|e| format!("--publish {}: {e}", p.listen))?;
            listeners.push((l, p.ve_port));
        }
        Ok(Publisher {
            listeners,
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
        })
    }

    /// Relays every connection to `ve`'s published port, until [`Publisher::stop`].
    pub fn start(&mut self, ve: Ipv4Addr) {
        for (l, port) in std::mem::take(&mut self.listeners) {
            let stop = self.stop.clone();
            let to = SocketAddr::new(ve.into(), port);
            self.threads
                .push(std::thread::spawn(move || accept_loop(l, to, &stop)));
        }
    }

    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

fn accept_loop(l: TcpListener, to: SocketAddr, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match l.accept() {
            Ok((client, _)) => {
                let _ = client.set_nonblocking(false);
                std::thread::spawn(move || relay(client, to));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                tracing::warn!("publish {to}: accept: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Copies both ways until each side has said all (a half-close passes on).
fn relay(client: TcpStream, to: SocketAddr) {
    let Ok(server) = TcpStream::connect_timeout(&to, Duration::from_secs(5)) else {
        return; // The client sees the connection close: nothing listens in the VE.
    };
    let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let up = std::thread::spawn(move || pipe(client, server));
    pipe(s2, c2);
    let _ = up.join();
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16384];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        let p = Publish::parse("8080:80").unwrap();
        assert_eq!(
            (p.listen.to_string(), p.ve_port),
            ("0.0.0.0:8080".into(), 80)
        );
        let p = Publish::parse("127.0.0.1:8080:80/tcp").unwrap();
        assert_eq!(p.listen.to_string(), "127.0.0.1:8080");
        for bad in [
            "80",
            "x:80",
            "8080:0",
            "8080:80/udp",
            "1.2.3:1:2",
            "a:b:c:d",
        ] {
            assert!(Publish::parse(bad).is_err(), "{bad}");
        }
    }
}
