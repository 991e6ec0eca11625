//! The analysts' group: its members read the journal and the catalog (ps, log, track, stats,
//! verify) without root, and nothing else of the store — not persistent storage, not the
//! dirties — and change nothing; everyone else is kept out of the store, with a clear error.

mod common;
use common::Env;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Output, Stdio};

const GROUP: &str = "4242";

/// `jcs ARGS` as user nobody, with `groups` as its supplementary groups (none: no member).
fn as_nobody(env: &Env, groups: Option<&str>, args: &[&str]) -> Output {
    let mut c = Command::new("setpriv");
    c.args(["--reuid", "65534", "--regid", "65534"]);
    match groups {
        Some(g) => c.args(["--groups", g]),
        None => c.arg("--clear-groups"),
    };
    c.arg(common::jcs_bin())
        .args(args)
        .env("JCS_HOME", env.home())
        .env("JCS_RUN_DIR", env.run_dir())
        .env("JCS_ANALYST_GROUP", GROUP)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn root_analysts_read_the_record_and_nothing_else() {
    let Some(env) = Env::new() else { return };
    let root = |args: &[&str]| {
        let o = env
            .cmd(args)
            .env("JCS_ANALYST_GROUP", GROUP)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    };
    root(&["template", "create", "bb", "--busybox"]);
    root(&[
        "app",
        "create",
        "web",
        "--template",
        "bb",
        "--persist",
        "/data",
    ]);
    root(&[
        "run",
        "web",
        "--",
        "/bin/sh",
        "-c",
        "echo secret > /data/secret",
    ]);
    let home = env.home();
    let m = std::fs::metadata(home).unwrap();
    assert_eq!(
        (m.mode() & 0o7777, m.gid()),
        (0o750, 4242),
        "the store's root"
    );
    for d in ["persist", "ve", "templates", "apps", "shared", "versions"] {
        let m = std::fs::metadata(home.join(d)).unwrap();
        assert_eq!(m.mode() & 0o777, 0o700, "{d}");
    }

    let analyst = Some(GROUP);
    for args in [
        &["ps", "--all", "--json"][..],
        &["log", "--ve", "1", "--json"],
        &["track", "back", "persist:web:/data/secret", "--json"],
        &["stats", "--json"],
        &["verify", "--json"],
    ] {
        let o = as_nobody(&env, analyst, args);
        assert!(
            o.status.success(),
            "analyst: jcs {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        common::validate_json(args, &String::from_utf8_lossy(&o.stdout));
    }
    let log = String::from_utf8(as_nobody(&env, analyst, &["log", "--ve", "1"]).stdout).unwrap();
    assert!(log.contains("/data/secret"), "{log}");
    // Not the data: persistent storage and the dirties are root's alone.
    let o = Command::new("setpriv")
        .args([
            "--reuid", "65534", "--regid", "65534", "--groups", GROUP, "cat",
        ])
        .arg(home.join("persist/web/data/secret"))
        .output()
        .unwrap();
    assert!(!o.status.success(), "an analyst read persistent storage");
    // Nothing changes: a run, rm, gc are refused, and the journal is as it was.
    let head = root(&["verify", "--json"]);
    for args in [&["run", "web", "--", "true"][..], &["rm", "1"], &["gc"]] {
        let o = as_nobody(&env, analyst, args);
        assert!(!o.status.success(), "analyst: jcs {args:?} succeeded");
    }
    assert_eq!(root(&["verify", "--json"]), head);
    assert!(home.join("ve/1").exists());

    // Someone else: kept out, told why.
    let o = as_nobody(&env, None, &["log"]);
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("not open to you") && e.contains(GROUP), "{e}");
    // Control: with the store's root as a plain 0755 directory, the same user reads it all;
    // the next command as root closes it again.
    std::fs::set_permissions(home, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    assert!(as_nobody(&env, None, &["log"]).status.success());
    root(&["ps"]);
    assert_eq!(std::fs::metadata(home).unwrap().mode() & 0o777, 0o750);
    assert!(!as_nobody(&env, None, &["log"]).status.success());
    // Without an analysts' group on the host, the store is root's alone.
    let o = env
        .cmd(&["ps"])
        .env("JCS_ANALYST_GROUP", "no-such-group-jcs")
        .output()
        .unwrap();
    assert!(o.status.success());
    let m = std::fs::metadata(home).unwrap();
    assert_eq!((m.mode() & 0o777, m.gid()), (0o700, 0));
    env.assert_clean();
}
