//! `--net bridge`: VEs on the JCS bridge reach each other and a service on the host side of
//! the bridge. Every test runs jcs inside a network namespace the test creates (the bridge is
//! made there), and deletes it at the end, even on failure.

mod common;

use common::{wait_for, Env, NetNs};
use std::process::{Command, Stdio};

#[test]
fn root_bridge_connects_ves_and_host() {
    let Some(env) = Env::new() else { return };
    let ns = NetNs::new();
    env.ok(&["template", "create", "bb", "--busybox"]);
    env.ok(&[
        "app",
        "create",
        "srv",
        "--template",
        "bb",
        "--net",
        "bridge",
        "--persist",
        "/data",
    ]);
    env.ok(&[
        "app",
        "create",
        "cli",
        "--template",
        "bb",
        "--net",
        "bridge",
    ]);
    // `jcs run APP -- /bin/sh -c SCRIPT` inside the test's namespace.
    let sh = |app: &str, script: &str| {
        let mut c = ns.cmd(
            common::jcs_bin(),
            &["run", app, "--", "/bin/sh", "-c", script],
        );
        c.env("JCS_HOME", env.home())
            .env("JCS_BRIDGE_CIDR", "10.77.0.0/24")
            .stdin(Stdio::null());
        c
    };
    // VE 1 (10.77.0.2) serves one line on port 8080.
    let server = sh("srv", "ip -4 -o addr show eth0 > /data/addr; (echo from-server | nc -l -p 8080 > /data/got) & sleep 0.2; touch /data/ready; wait")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let data = env.home().join("persist/srv/data");
    assert!(
        wait_for(10, || data.join("ready").exists()),
        "server VE did not come up"
    );
    assert!(std::fs::read_to_string(data.join("addr"))
        .unwrap()
        .contains("10.77.0.2/24"));
    // VE 2 connects to VE 1.
    let o = sh("cli", "echo from-client | nc 10.77.0.2 8080")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "from-server\n");
    assert!(server.wait_with_output().unwrap().status.success());
    assert_eq!(
        std::fs::read_to_string(data.join("got")).unwrap(),
        "from-client\n"
    );
    // A service on the host side of the bridge (the gateway address).
    let host = ns
        .cmd("busybox", &["nc", "-l", "-p", "9000"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let o = sh("cli", "echo to-host | nc 10.77.0.1 9000")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = host.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&got.stdout), "to-host\n");
    // No veth of any VE is left; only lo and the bridge remain in the namespace.
    let links = ns.links();
    assert!(!links.contains("vj"), "veth left behind:\n{links}");
    assert!(links.contains("jcs0"), "{links}");
    // And nothing was created in the test's own network namespace.
    let own = String::from_utf8(
        Command::new("ip")
            .args(["-br", "link"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(
        !own.lines()
            .any(|l| l.starts_with(&format!("vj{}", &env.store_id()[..4]))),
        "{own}"
    );
    env.assert_clean();
}

#[test]
fn root_bad_bridge_range_is_refused() {
    let Some(env) = Env::new() else { return };
    env.ok(&["template", "create", "bb", "--busybox"]);
    let o = env
        .cmd(&["app", "create", "x", "--template", "bb", "--net", "bridge"])
        .env("JCS_BRIDGE_CIDR", "10.0.0.0/40")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("not an IPv4 CIDR"), "{e}");
    assert!(!env.home().join("apps/x").exists());
}
