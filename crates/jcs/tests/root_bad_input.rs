//! Bad input gets one clear error line, a nonzero exit, and leaves nothing half-created.

mod common;

use common::Env;

fn one_line(err: &str) -> &str {
    assert_eq!(
        err.trim().lines().count(),
        1,
        "expected one line, got: {err}"
    );
    assert!(err.starts_with("jcs: "), "{err}");
    err.trim()
}

#[test]
fn root_unknown_names() {
    let Some(env) = Env::new() else { return };
    // No store there yet (a typo in --home): every command but `template create` says so and
    // makes none.
    for args in [
        &["run", "nope", "--", "true"][..],
        &["log"],
        &["ps"],
        &["app", "create", "a", "--template", "nope"],
        &["gc"],
    ] {
        let e = env.fails(args);
        assert!(one_line(&e).contains("no JCS store at"), "{args:?}: {e}");
    }
    assert!(
        std::fs::read_dir(env.home()).unwrap().next().is_none(),
        "a command made a store"
    );
    env.ok(&["template", "create", "bb", "--busybox"]);
    let e = env.fails(&["run", "nope", "--", "true"]);
    assert!(one_line(&e).contains("unknown app nope"), "{e}");
    let e = env.fails(&["app", "create", "a", "--template", "nope"]);
    assert!(one_line(&e).contains("unknown template nope"), "{e}");
    let e = env.fails(&["app", "create", "../x", "--template", "nope"]);
    assert!(one_line(&e).contains("may only contain"), "{e}");
    let e = env.fails(&["inspect", "42"]);
    assert!(one_line(&e).contains("unknown VE 42"), "{e}");
    // A query about a VE or app the store never had: an error, not an empty answer.
    for (args, want) in [
        (&["log", "--ve", "999"][..], "unknown VE 999"),
        (&["log", "--app", "nosuch"], "unknown app nosuch"),
        (&["stats", "--ve", "99999"], "unknown VE 99999"),
        (&["track", "back", "file:/x", "--ve", "5"], "unknown VE 5"),
        (
            &["track", "back", "file:/x", "--app", "nosuch"],
            "unknown app nosuch",
        ),
    ] {
        let e = env.fails(args);
        assert!(one_line(&e).contains(want), "{args:?}: {e}");
    }
    // The command without `--`: clap's error and what to write instead.
    let o = env.jcs(&["run", "web", "/bin/sh", "-c", "true"]);
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("goes after --") && e.contains("APP -- CMD"),
        "{e}"
    );
    let e = env.fails(&["run", "nope", "--memory", "lots", "--", "true"]);
    assert!(one_line(&e).contains("--memory"), "{e}");
    assert!(!env.home().join("apps/a").exists());
}

#[test]
fn root_template_in_use_and_bad_paths() {
    let Some(env) = Env::new() else { return };
    env.ok(&["template", "create", "bb", "--busybox"]);
    env.ok(&["app", "create", "web", "--template", "bb"]);
    let e = env.fails(&["template", "rm", "bb"]);
    assert!(one_line(&e).contains("used by app(s) web"), "{e}");
    assert!(env.home().join("templates/bb/1/bin/busybox").exists());
    for (arg, msg) in [
        ("/data/../../etc", "outside the VE root"),
        ("data", "must be absolute"),
        ("/proc/x", "mounts itself"),
        ("/", "VE root itself"),
    ] {
        let e = env.fails(&["app", "create", "x", "--template", "bb", "--persist", arg]);
        assert!(one_line(&e).contains(msg), "{arg}: {e}");
    }
    let e = env.fails(&[
        "app",
        "create",
        "x",
        "--template",
        "bb",
        "--persist",
        "/a",
        "--share",
        "/a/b=s",
    ]);
    assert!(one_line(&e).contains("overlap"), "{e}");
    let e = env.fails(&[
        "app",
        "create",
        "x",
        "--template",
        "bb",
        "--persist",
        "/etc/passwd",
    ]);
    assert!(one_line(&e).contains("not a directory"), "{e}");
    // Nothing of app x exists.
    assert!(!env.home().join("apps/x").exists());
    assert!(!env.home().join("persist/x").exists());
    assert!(
        env.json(&["app", "list", "--json"])["apps"]
            .as_array()
            .unwrap()
            .len()
            == 1
    );
    let e = env.fails(&["template", "create", "t2", "--from-tar", "/nonexistent.tar"]);
    assert!(
        one_line(&e).contains("/nonexistent.tar is not a file"),
        "{e}"
    );
    assert!(!env
        .home()
        .join("templates/t2")
        .read_dir()
        .map(|mut d| d.next().is_some())
        .unwrap_or(false));
    // After removing the app, the template can go.
    env.ok(&["app", "rm", "web"]);
    env.ok(&["template", "rm", "bb"]);
    assert!(!env.home().join("templates/bb").exists());
}

#[test]
fn root_missing_kernel_feature_is_detected() {
    let Some(env) = Env::new() else { return };
    env.ok(&["template", "create", "bb", "--busybox"]);
    env.ok(&["app", "create", "web", "--template", "bb"]);
    // A host without cgroup2: mountinfo lists no cgroup2 file system.
    let fake = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(fake.path().join("self")).unwrap();
    std::fs::write(
        fake.path().join("self/mountinfo"),
        "22 1 8:1 / / rw - ext4 /dev/vda rw\n",
    )
    .unwrap();
    let o = env
        .cmd(&["run", "web", "--", "true"])
        .env("JCS_PROC_ROOT", fake.path())
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        one_line(&e).contains("no cgroup2 file system is mounted"),
        "{e}"
    );
    assert_eq!(
        std::fs::read_dir(env.home().join("ve")).unwrap().count(),
        0,
        "a VE directory was left behind"
    );
    let o = env
        .cmd(&["doctor", "--json"])
        .env("JCS_PROC_ROOT", fake.path())
        .env("JCS_SYS_ROOT", fake.path())
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(1),
        "doctor must fail when a required feature is missing"
    );
    let out = String::from_utf8_lossy(&o.stdout);
    common::validate_json(&["doctor", "--json"], &out);
    let doctor: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doctor["ok"], false, "{doctor}");
    let cg = doctor["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "cgroup v2")
        .unwrap();
    assert_eq!(cg["ok"], false);
    // On this real host, doctor passes.
    let doctor = env.json(&["doctor", "--json"]);
    assert_eq!(doctor["ok"], true, "{doctor}");
    let checks = &doctor["checks"];
    for c in checks.as_array().unwrap() {
        if c["required"] == true {
            assert_eq!(c["ok"], true, "{c}");
        }
    }
    env.assert_clean();
}

#[test]
fn root_full_disk_leaves_nothing() {
    let Some(env) = Env::new() else { return };
    // A store on a 1 MiB tmpfs: the busybox template (about 2 MiB) cannot fit.
    let small = env.home().join("small");
    std::fs::create_dir(&small).unwrap();
    let st = std::process::Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=1m",
            "jcs-test",
            small.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(st.success());
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(small.clone());
    let store = small.join("store");
    let o = std::process::Command::new(common::jcs_bin())
        .args(["template", "create", "bb", "--busybox"])
        .env("JCS_HOME", &store)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(one_line(&e).contains("No space left on device"), "{e}");
    let left: Vec<_> = std::fs::read_dir(store.join("templates"))
        .unwrap()
        .flatten()
        .flat_map(|d| {
            std::fs::read_dir(d.path())
                .unwrap()
                .flatten()
                .map(|e| e.path())
        })
        .collect();
    assert!(left.is_empty(), "half-created template left: {left:?}");
    let o = std::process::Command::new(common::jcs_bin())
        .args(["template", "list", "--json"])
        .env("JCS_HOME", &store)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    common::validate_json(&["template", "list", "--json"], &out);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap(),
        serde_json::json!({"templates": []})
    );
}

#[test]
fn root_missing_template_directory() {
    let Some(env) = Env::new() else { return };
    env.ok(&["template", "create", "bb", "--busybox"]);
    env.ok(&["app", "create", "web", "--template", "bb"]);
    std::fs::rename(
        env.home().join("templates/bb/1"),
        env.home().join("templates/bb/moved"),
    )
    .unwrap();
    let e = env.fails(&["run", "web", "--", "true"]);
    assert!(
        one_line(&e).contains("template bb v1 is missing from the store"),
        "{e}"
    );
    assert_eq!(std::fs::read_dir(env.home().join("ve")).unwrap().count(), 0);
    assert_eq!(
        env.json(&["ps", "--all", "--json"])["ves"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    env.assert_clean();
}
