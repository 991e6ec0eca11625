//! The configuration file (`/etc/jcs/config.toml`, here `$JCS_CONFIG`): its store, bridge
//! range and retention are used; an environment variable and a flag win over it; a mistake
//! in it is one clear error for every command, and nothing is created.

mod common;
use common::{Env, NetNs};
use std::process::{Command, Stdio};

/// jcs with the configuration `config` and no JCS_HOME.
fn jcs(config: &std::path::Path, args: &[&str]) -> Command {
    let mut c = Command::new(common::jcs_bin());
    c.args(args)
        .env("JCS_CONFIG", config)
        .env_remove("JCS_HOME")
        .stdin(Stdio::null());
    c
}

fn ok(c: &mut Command) -> String {
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "{:?}: {}",
        c,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn root_the_configuration_file_sets_the_defaults() {
    let Some(env) = Env::new() else { return };
    // The test's own store (so that its guard cleans up the daemon and cgroups), named only
    // by the file.
    let store = env.home().to_path_buf();
    let cfg = env.home().join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "# the host's defaults\nstore = \"{}\"\nbridge_cidr = \"10.78.0.0/24\"\n\
             [retention]\ndirties = \"1h\"\n",
            store.display()
        ),
    )
    .unwrap();
    ok(jcs(&cfg, &["template", "create", "bb", "--busybox"]).arg("--json"));
    assert!(store.join("templates/bb").exists(), "store = … not used");
    ok(&mut jcs(
        &cfg,
        &[
            "app",
            "create",
            "web",
            "--template",
            "bb",
            "--net",
            "bridge",
        ],
    ));
    // The bridge range, in a network namespace of the test's own.
    let ns = NetNs::new();
    let mut c = ns.cmd(
        common::jcs_bin(),
        &[
            "run",
            "web",
            "--",
            "/bin/sh",
            "-c",
            "ip -4 -o addr show eth0",
        ],
    );
    c.env("JCS_CONFIG", &cfg)
        .env("JCS_RUN_DIR", env.run_dir())
        .env_remove("JCS_HOME")
        .env_remove("JCS_BRIDGE_CIDR");
    let addr = ok(&mut c);
    assert!(addr.contains("10.78.0.2/24"), "{addr}");
    // Retention: a VE that ended a moment ago is recent; --older-than 0s wins over the file.
    let gc = ok(&mut jcs(&cfg, &["gc", "--dry-run", "--json"]));
    let gc: serde_json::Value = serde_json::from_str(&gc).unwrap();
    assert_eq!(gc["recent"], serde_json::json!([1]), "{gc}");
    let gc = ok(&mut jcs(
        &cfg,
        &["gc", "--dry-run", "--older-than", "0s", "--json"],
    ));
    let gc: serde_json::Value = serde_json::from_str(&gc).unwrap();
    assert_eq!(gc["removed"], serde_json::json!([1]), "{gc}");
    // The environment wins over the file: JCS_HOME names another store.
    let o = jcs(&cfg, &["ps"])
        .env("JCS_HOME", env.home().join("none"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no JCS store"));
    // So does --home.
    let o = jcs(&cfg, &["--home", "/nonexistent-store", "ps"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent-store"));

    // A mistake: every command says where, exit 1; nothing is created.
    std::fs::write(
        &cfg,
        "store = \"/tmp/x\"\nretention = { dirtys = \"7d\" }\n",
    )
    .unwrap();
    for args in [&["ps"][..], &["run", "web", "--", "true"], &["doctor"]] {
        let o = jcs(&cfg, args).output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(
            e.contains("config.toml line 2") && e.contains("dirtys") && e.lines().count() == 1,
            "{args:?}: {e}"
        );
    }
    // A missing file named by JCS_CONFIG is an error too (not silently the defaults).
    let o = jcs(&env.home().join("nope.toml"), &["ps"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nope.toml"));
    // Help needs no configuration.
    assert!(jcs(&cfg, &["--help"]).output().unwrap().status.success());
    let _ = std::fs::remove_file(&cfg);
    env.assert_clean();
}
