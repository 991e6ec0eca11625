//! Pre-images and `jcs abort`: before a VE first changes a file of persistent or shared
//! storage, its content is kept (whatever way the VE reaches the file: threads racing, a
//! vfork child, a /proc/self/fd magic link, a symbolic link in its own files, a path buffer
//! flipped under the call); `jcs abort` puts everything back in place. Every test first shows
//! the VE really changed the files (the control), then that the pre-images and the abort are
//! exact.

mod common;

use common::Env;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::PathBuf;

const PREIMAGES: &str = "[recovery]\npreimages = true\n";

fn data(env: &Env) -> PathBuf {
    env.home().join("persist/web/data")
}

fn keep_preimages(env: &Env) {
    let f = env.home().join("p.toml");
    std::fs::write(&f, PREIMAGES).unwrap();
    env.ok(&["app", "policy", "web", f.to_str().unwrap()]);
}

fn undo(env: &Env, ve: u64) -> Vec<serde_json::Value> {
    let p = env.home().join(format!("versions/undo/{ve}.jsonl"));
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn object(env: &Env, u: &serde_json::Value) -> String {
    let h = u["object"].as_str().expect("an object");
    std::fs::read_to_string(env.home().join("versions/objects").join(h)).unwrap()
}

fn read(env: &Env, rel: &str) -> String {
    std::fs::read_to_string(data(env).join(rel)).unwrap()
}

#[test]
fn root_abort_puts_back_what_a_ve_changed_in_place() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    keep_preimages(&env);
    let d = data(&env);
    for f in ["a", "b", "c"] {
        std::fs::write(d.join(f), format!("orig-{f}")).unwrap();
    }
    std::fs::hard_link(d.join("a"), d.join("a-link")).unwrap();
    std::fs::set_permissions(
        d.join("a"),
        std::os::unix::fs::PermissionsExt::from_mode(0o640),
    )
    .unwrap();
    let before = std::fs::metadata(d.join("a")).unwrap();
    env.sh_ok(
        "echo new > /data/a; echo more >> /data/b; rm /data/c; echo e > /data/e; \
         mkdir /data/dir; mv /data/b /data/moved",
    );
    // Control: the VE changed all of it.
    assert_eq!(read(&env, "a"), "new\n");
    assert_eq!(read(&env, "a-link"), "new\n");
    assert!(!d.join("c").exists() && !d.join("b").exists());
    assert_eq!(read(&env, "moved"), "orig-bmore\n");
    assert!(d.join("e").exists() && d.join("dir").is_dir());

    let plan = env.json(&["abort", "1", "--dry-run", "--json"]);
    let actions: Vec<&str> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["rename", "remove", "remove", "recreate", "restore", "restore"],
        "{plan}"
    );
    assert_eq!(read(&env, "a"), "new\n", "a dry run changes nothing");

    let out = env.json(&["abort", "1", "--json"]);
    assert!(
        out["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["result"] == "done"),
        "{out}"
    );
    for f in ["a", "b", "c"] {
        assert_eq!(read(&env, f), format!("orig-{f}"));
    }
    assert_eq!(
        read(&env, "a-link"),
        "orig-a",
        "restored in place: the hard link sees it"
    );
    let after = std::fs::metadata(d.join("a")).unwrap();
    assert_eq!(after.ino(), before.ino());
    assert_eq!(after.mode() & 0o7777, 0o640);
    assert_eq!(after.mtime(), before.mtime());
    assert!(!d.join("e").exists() && !d.join("dir").exists() && !d.join("moved").exists());
    // The journal says what was put back, by whom, for which VE.
    let restores: Vec<serde_json::Value> = env
        .log(1)
        .into_iter()
        .filter_map(|e| e.get("restore").cloned())
        .collect();
    assert_eq!(restores.len(), 6, "{restores:?}");
    assert!(restores
        .iter()
        .all(|r| r["by"] == "abort ve 1" && r["ve"] == 1));
    assert!(restores
        .iter()
        .any(|r| r["action"] == "restore" && r["file"] == "persist:web:/data/a"));
    // Again: nothing left to do.
    let again = env.json(&["abort", "1", "--json"]);
    assert!(
        again["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["result"] == "already"),
        "{again}"
    );
    env.assert_clean();
}

#[test]
fn root_a_later_change_by_another_ve_is_a_conflict_left_alone() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    keep_preimages(&env);
    std::fs::write(data(&env).join("a"), "orig").unwrap();
    env.sh_ok("echo first > /data/a");
    env.sh_ok("echo second > /data/a");
    let o = env.jcs(&["abort", "1", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["steps"][0]["conflict"], "VE 2 changed it later", "{v}");
    assert_eq!(v["steps"][0]["result"], "skipped");
    assert_eq!(
        read(&env, "a"),
        "second\n",
        "a conflict is never overwritten silently"
    );
    env.ok(&["abort", "1", "--force"]);
    assert_eq!(read(&env, "a"), "orig");
    // Aborting VE 2 instead would have given VE 1's version back.
    env.assert_clean();
}

#[test]
fn root_ten_thousand_write_opens_keep_one_preimage() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    keep_preimages(&env);
    std::fs::write(data(&env).join("f"), "orig-f").unwrap();
    env.sh_ok("i=0; while [ $i -lt 10000 ]; do echo $i > /data/f; i=$((i+1)); done");
    assert_eq!(read(&env, "f"), "9999\n");
    let u = undo(&env, 1);
    assert_eq!(u.len(), 1, "{u:?}");
    assert_eq!(object(&env, &u[0]), "orig-f");
    let s = env.json(&["stats", "--json"]);
    assert_eq!(
        s["version_store"],
        serde_json::json!({"objects": 1, "bytes": 6}),
        "{s}"
    );
    env.assert_clean();
}

#[test]
fn root_racing_threads_each_first_write_has_its_exact_preimage() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    keep_preimages(&env);
    common::static_helper(&env, "preimage");
    let r = data(&env).join("r");
    std::fs::create_dir(&r).unwrap();
    for i in 0..100 {
        std::fs::write(r.join(format!("f{i}")), format!("orig-{i}")).unwrap();
    }
    env.ok(&[
        "run",
        "web",
        "--",
        "/data/preimage",
        "race",
        "/data/r",
        "100",
        "8",
    ]);
    assert!(read(&env, "r/f42").starts_with('t'), "the threads wrote");
    let u = undo(&env, 1);
    assert_eq!(u.len(), 100, "one pre-image per file");
    for e in &u {
        let i = e["rel"].as_str().unwrap().strip_prefix("r/f").unwrap();
        assert_eq!(object(&env, e), format!("orig-{i}"));
    }
    env.ok(&["abort", "1"]);
    for i in 0..100 {
        assert_eq!(read(&env, &format!("r/f{i}")), format!("orig-{i}"));
    }
    env.assert_clean();
}

#[test]
fn root_detours_to_a_file_still_keep_its_preimage() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    keep_preimages(&env);
    common::static_helper(&env, "preimage");
    for f in ["m", "s", "v", "x", "y"] {
        std::fs::write(data(&env).join(f), format!("orig-{f}")).unwrap();
    }
    env.ok(&["run", "web", "--", "/data/preimage", "magic", "/data/m"]);
    env.sh_ok("ln -s /data/s /tmp/l && echo via-link > /tmp/l");
    env.ok(&["run", "web", "--", "/data/preimage", "vfork", "/data/v"]);
    env.ok(&[
        "run",
        "web",
        "--",
        "/data/preimage",
        "flip",
        "/data/x",
        "/data/y",
        "300",
    ]);
    // Control: every way reached its file.
    assert_eq!(read(&env, "m"), "magic\n");
    assert_eq!(read(&env, "s"), "via-link\n");
    assert_eq!(read(&env, "v"), "vfork\n");
    let flipped: Vec<&str> = ["x", "y"]
        .into_iter()
        .filter(|f| read(&env, f) == "flipped\n")
        .collect();
    assert!(!flipped.is_empty());
    // Each changed file has its pre-image, with its original content.
    for (ve, files) in [
        (1u64, vec!["m"]),
        (2, vec!["s"]),
        (3, vec!["v"]),
        (4, flipped.clone()),
    ] {
        let u = undo(&env, ve);
        for f in files {
            let e = u
                .iter()
                .find(|e| e["rel"] == f)
                .unwrap_or_else(|| panic!("no pre-image of {f} in VE {ve}: {u:?}"));
            assert_eq!(object(&env, e), format!("orig-{f}"));
        }
    }
    for ve in ["4", "3", "2", "1"] {
        env.ok(&["abort", ve]);
    }
    for f in ["m", "s", "v", "x", "y"] {
        assert_eq!(read(&env, f), format!("orig-{f}"));
    }
    env.assert_clean();
}

#[test]
fn root_without_preimages_there_is_nothing_to_abort() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    std::fs::write(data(&env).join("a"), "orig").unwrap();
    env.sh_ok("echo new > /data/a");
    assert!(!env.home().join("versions/undo/1.jsonl").exists());
    let e = env.fails(&["abort", "1"]);
    assert!(e.contains("preimages = true"), "{e}");
    assert_eq!(read(&env, "a"), "new\n");
    let e = env.fails(&["abort", "99"]);
    assert!(e.contains("no VE 99"), "{e}");
    env.assert_clean();
}

#[test]
fn root_a_dead_supervisor_fails_writes_closed_and_reads_go_on() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    keep_preimages(&env);
    std::fs::write(data(&env).join("orig"), "still readable").unwrap();
    // The supervisor answers two calls, then is gone.
    let o = env
        .cmd(&[
            "run",
            "web",
            "--",
            "/bin/sh",
            "-c",
            "echo a > /data/x; echo b > /data/y; echo c > /data/z; echo \"z=$?\"; cat /data/orig",
        ])
        .env("JCS_TEST_SUPERVISOR_EXIT_AFTER", "2")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("z=1"), "{out}");
    assert!(out.contains("still readable"), "{out}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("Function not implemented"));
    // Control: the two answered writes happened; the third never reached the file system.
    assert_eq!(read(&env, "x"), "a\n");
    assert_eq!(read(&env, "y"), "b\n");
    assert!(!data(&env).join("z").exists());
    // The journal has the refused open, failed with ENOSYS.
    let log = env.log(1);
    assert!(
        log.iter().any(|e| e["op"] == "open"
            && e["error"] == "ENOSYS"
            && e["src"].as_str().is_some_and(|s| s.contains("/data/z"))),
        "{log:?}"
    );
    env.assert_clean();
}

#[test]
fn root_aborting_a_running_ve_ends_it_first() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    keep_preimages(&env);
    std::fs::write(data(&env).join("a"), "orig").unwrap();
    let mut run = env
        .cmd(&[
            "run",
            "web",
            "--",
            "/bin/sh",
            "-c",
            "echo x > /data/a; touch /data/ready; sleep 100",
        ])
        .spawn()
        .unwrap();
    assert!(common::wait_for(20, || data(&env).join("ready").exists()));
    assert_eq!(read(&env, "a"), "x\n");
    let e = env.fails(&["abort", "1", "--dry-run"]);
    assert!(e.contains("is running"), "{e}");
    let v = env.json(&["abort", "1", "--json"]);
    assert_eq!(v["killed"], true, "{v}");
    assert_eq!(read(&env, "a"), "orig");
    // Its jcs run ended with the VE (killed: 128 + 9).
    let st = run.wait().unwrap();
    assert_eq!(st.code(), Some(137));
    env.assert_clean();
}

#[test]
fn root_versions_gc_keeps_what_recent_ves_need() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    keep_preimages(&env);
    std::fs::write(data(&env).join("a"), "orig-a").unwrap();
    std::fs::write(data(&env).join("b"), "orig-b").unwrap();
    env.sh_ok("echo x > /data/a");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    env.sh_ok("echo y > /data/b");
    let s = env.json(&["stats", "--json"]);
    assert_eq!(s["version_store"]["objects"], 2, "{s}");
    // Keep 1 s: VE 1's pre-image goes, VE 2's stays.
    let c = env.json(&["versions", "gc", "--keep", "1s", "--dry-run", "--json"]);
    assert_eq!(c["ves"], serde_json::json!([1]), "{c}");
    assert_eq!(
        env.json(&["stats", "--json"])["version_store"]["objects"],
        2
    );
    let c = env.json(&["versions", "gc", "--keep", "1s", "--json"]);
    assert_eq!(
        (c["objects"].as_u64(), c["kept_objects"].as_u64()),
        (Some(1), Some(1)),
        "{c}"
    );
    let e = env.fails(&["abort", "1"]);
    assert!(e.contains("no undo log"), "{e}");
    env.ok(&["abort", "2"]);
    assert_eq!(read(&env, "b"), "orig-b");
    env.assert_clean();
}

#[test]
fn root_attribute_changes_and_new_links_are_undone_too() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    keep_preimages(&env);
    let d = data(&env);
    for f in ["m", "n"] {
        std::fs::write(d.join(f), format!("orig-{f}")).unwrap();
        std::fs::set_permissions(
            d.join(f),
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        )
        .unwrap();
    }
    // Known times, an hour back.
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for f in ["m", "n"] {
        std::fs::File::options()
            .write(true)
            .open(d.join(f))
            .unwrap()
            .set_times(
                std::fs::FileTimes::new()
                    .set_modified(old)
                    .set_accessed(old),
            )
            .unwrap();
    }
    let before: Vec<std::fs::Metadata> = ["m", "n"]
        .iter()
        .map(|f| std::fs::metadata(d.join(f)).unwrap())
        .collect();
    env.sh_ok("chmod 600 /data/m && chown 1000:1000 /data/m && touch /data/n && ln /data/m /data/hard && ln -s /data/m /data/soft");
    // Control: all of it happened.
    let m = std::fs::metadata(d.join("m")).unwrap();
    assert_eq!((m.mode() & 0o7777, m.uid()), (0o600, 1000));
    assert_ne!(
        std::fs::metadata(d.join("n")).unwrap().mtime(),
        before[1].mtime()
    );
    assert!(d.join("hard").exists() && std::fs::symlink_metadata(d.join("soft")).is_ok());
    let u = undo(&env, 1);
    assert!(
        u.iter().any(|e| e["what"] == "attrs" && e["rel"] == "m"),
        "{u:?}"
    );
    assert_eq!(
        u.iter()
            .filter(|e| e["what"] == "attrs" && e["rel"] == "m")
            .count(),
        1,
        "kept once: {u:?}"
    );

    env.ok(&["abort", "1"]);
    let m = std::fs::metadata(d.join("m")).unwrap();
    assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o644, 0, 0));
    assert_eq!(m.mtime(), before[0].mtime());
    assert_eq!(
        std::fs::metadata(d.join("n")).unwrap().mtime(),
        before[1].mtime()
    );
    assert!(!d.join("hard").exists() && std::fs::symlink_metadata(d.join("soft")).is_err());
    assert_eq!(read(&env, "m"), "orig-m");
    // The same changes through a descriptor (fchmod, fchown, futimens).
    common::static_helper(&env, "preimage");
    env.ok(&["run", "web", "--", "/data/preimage", "fdattrs", "/data/m"]);
    let m = std::fs::metadata(d.join("m")).unwrap();
    assert_eq!((m.mode() & 0o7777, m.uid()), (0o600, 1000), "control");
    let u = undo(&env, 2);
    assert_eq!(u.len(), 1, "{u:?}");
    assert_eq!(u[0]["what"], "attrs");
    // The journal has the fchmod on the file itself (the monitor records the answered call).
    let log = env.log(2);
    assert!(
        log.iter().any(|e| e["op"] == "chmod" && e["dst"].as_str().is_some_and(|s| s.contains("/data/m"))),
        "{log:?}"
    );
    env.ok(&["abort", "2"]);
    let m = std::fs::metadata(d.join("m")).unwrap();
    assert_eq!((m.mode() & 0o7777, m.uid()), (0o644, 0));
    assert_eq!(m.mtime(), before[0].mtime());
    env.assert_clean();
}

#[test]
fn root_a_full_descriptor_table_fails_the_open_and_never_hangs() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    keep_preimages(&env);
    // With 3 descriptors allowed and 0-2 open, the supervisor's descriptor cannot be given to
    // the shell: its open fails (EMFILE) instead of waiting forever.
    let t = std::time::Instant::now();
    let o = env.sh("ulimit -n 3; echo x > /data/f; echo \"rc=$?\"");
    assert!(t.elapsed() < std::time::Duration::from_secs(20));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("rc=1"),
        "{out} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Control: with room, the same write goes through.
    env.sh_ok("echo y > /data/g");
    assert_eq!(read(&env, "g"), "y\n");
    env.assert_clean();
}

/// The supervisor runs as the VE's init, with every capability and the version store open:
/// a path through the init's own descriptors (`/proc/1/fd/N`) must not reach them.
#[test]
fn root_the_supervisor_does_not_open_the_inits_descriptors_for_the_app() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    keep_preimages(&env);
    std::fs::write(data(&env).join("a"), "orig").unwrap();
    let _ = std::fs::remove_file(data(&env).join("ready"));
    let run = env
        .cmd(&[
            "run",
            "web",
            "--",
            "/bin/sh",
            "-c",
            "echo x > /data/a; touch /data/ready; sleep 2; \
             for n in 3 4 5 6 7 8 9 10 11 12; do echo pwn > /proc/1/fd/$n 2>/dev/null && echo fd$n; done; \
             echo tried",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert!(common::wait_for(20, || data(&env).join("ready").exists()));
    // Control: the init does hold the undo log open, among its descriptors 3-12.
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.home().join("ve/1/meta/ve.json")).unwrap())
            .unwrap();
    let init = meta["init_pid"].as_i64().unwrap();
    let held: Vec<String> = std::fs::read_dir(format!("/proc/{init}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|p| p.display().to_string())
        .collect();
    assert!(
        held.iter().any(|p| p.ends_with("versions/undo/1.jsonl")),
        "{held:?}"
    );
    let out = run.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.trim(),
        "tried",
        "the app wrote through an init descriptor: {out}"
    );
    // The undo log is intact: a's pre-image and the creation of ready, nothing written into it.
    let raw = std::fs::read_to_string(env.home().join("versions/undo/1.jsonl")).unwrap();
    assert!(!raw.contains("pwn"), "{raw}");
    let u = undo(&env, 1);
    let what: Vec<(&str, &str)> = u
        .iter()
        .map(|e| (e["what"].as_str().unwrap(), e["rel"].as_str().unwrap()))
        .collect();
    assert_eq!(what, [("content", "a"), ("created", "ready")]);
    assert_eq!(object(&env, &u[0]), "orig");
    env.assert_clean();
}

/// `jcs abort` works on the host: a symbolic link another VE put where a directory was must
/// not lead it out of the storage directory.
#[test]
fn root_abort_does_not_follow_a_symlink_left_in_storage() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    keep_preimages(&env);
    let d = data(&env);
    std::fs::create_dir(d.join("d")).unwrap();
    std::fs::write(d.join("d/f"), "orig").unwrap();
    let outside = env.home().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("f"), "host file").unwrap();
    env.sh_ok("echo changed > /data/d/f");
    env.sh_ok(&format!(
        "mv /data/d /data/d-moved && ln -s {} /data/d",
        outside.display()
    ));
    // Control: a host-side path through /data/d reaches the host file.
    assert_eq!(std::fs::read_to_string(d.join("d/f")).unwrap(), "host file");
    let o = env.jcs(&["abort", "1", "--force", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        v["steps"][0]["result"]
            .as_str()
            .unwrap()
            .starts_with("failed"),
        "{v}"
    );
    assert_eq!(
        std::fs::read_to_string(outside.join("f")).unwrap(),
        "host file"
    );
    assert_eq!(
        std::fs::read_to_string(d.join("d-moved/f")).unwrap(),
        "changed\n"
    );
    env.assert_clean();
}

/// A process that chrooted inside the VE names paths the supervisor would resolve in the
/// wrong root: its write-intent calls are refused (EPERM), never performed elsewhere.
#[test]
fn root_a_chrooted_process_cannot_write_through_the_supervisor() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    keep_preimages(&env);
    common::static_helper(&env, "preimage");
    let jail = data(&env).join("jail");
    std::fs::create_dir(&jail).unwrap();
    std::fs::copy(data(&env).join("preimage"), jail.join("preimage")).unwrap();
    std::fs::write(jail.join("v"), "orig").unwrap();
    std::fs::write(data(&env).join("v"), "orig").unwrap();
    // Control: unchrooted, the same write goes through.
    env.ok(&[
        "run",
        "web",
        "--",
        "/data/jail/preimage",
        "vfork",
        "/data/jail/v",
    ]);
    assert_eq!(read(&env, "jail/v"), "vfork\n");
    std::fs::write(jail.join("v"), "orig").unwrap();
    // Control: the chroot itself works (the probe runs in the jail: its usage, exit 2).
    let o = env.sh("chroot /data/jail /preimage; echo \"rc=$?\"");
    assert!(String::from_utf8_lossy(&o.stdout).contains("rc=2"), "{o:?}");
    let o = env.sh("chroot /data/jail /preimage vfork /v; echo \"rc=$?\"");
    assert!(String::from_utf8_lossy(&o.stdout).contains("rc=1"), "{o:?}");
    // Neither the jail's file nor the one the root-relative path names elsewhere changed.
    assert_eq!(read(&env, "jail/v"), "orig");
    assert_eq!(read(&env, "v"), "orig");
    // A bind that names no path works chrooted too; one that makes a socket file does not.
    let out = env.ok(&["run", "web", "--", "/data/jail/preimage", "binds", "/data"]);
    assert_eq!(out.trim(), "tcp=ok unix=ok", "control: unchrooted");
    let out = env.sh_ok("chroot /data/jail /preimage binds /");
    assert_eq!(out.trim(), "tcp=ok unix=EPERM");
    assert!(!jail.join("s").exists());
    env.assert_clean();
}

/// `abort_on_close = "denied"`: once the kernel denied the VE a connect, every storage file it
/// closes after writing goes back to what it was before that open–close transaction — the
/// report written across the denial to its pre-image, a file it created to nothing (closed
/// with close, replaced by dup2, ended by close_range, left open at exit, or by a process
/// killed by a signal) — while a transaction that committed
/// before the denial stays. Controls: the same script without abort_on_close keeps
/// everything, and with it but no denial too.
#[test]
fn root_abort_on_close_restores_what_a_denied_ve_wrote() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    common::static_helper(&env, "policy");
    common::static_helper(&env, "preimage");
    let d = data(&env);
    let rule =
        "[[network.rule]]\nname = \"no-smtp\"\naction = \"deny\"\nproto = \"tcp\"\nports = [25]\n";
    let policy = |extra: &str| {
        let f = env.home().join("p.toml");
        std::fs::write(&f, format!("{rule}[recovery]\npreimages = true\n{extra}")).unwrap();
        env.ok(&["app", "policy", "web", f.to_str().unwrap()]);
    };
    let reset = || {
        std::fs::write(d.join("report"), "clean\n").unwrap();
        for f in ["a", "b", "c", "k", "r"] {
            let _ = std::fs::remove_file(d.join(f));
        }
    };
    // `deny` = the port the probe tries first: 25 is denied, 27 is not.
    let script = |deny: u16| {
        format!(
            "echo committed > /data/a; exec 3>>/data/report; echo tainted-1 >&3; \
             /data/policy tcp {deny} 26; echo more >&3; exec 3>&-; echo new > /data/b; \
             /bin/sh -c 'exec 4>/data/c; echo left-open >&4; exit 0'; \
             /bin/sh -c 'exec 5>/data/k; echo killed >&5; kill -9 $$'; \
             /data/preimage closerange /data/r ranged; echo done"
        )
    };
    let everything_stays = |env: &Env| {
        assert_eq!(read(env, "a"), "committed\n");
        assert_eq!(read(env, "report"), "clean\ntainted-1\nmore\n");
        assert_eq!(read(env, "b"), "new\n");
        assert_eq!(read(env, "c"), "left-open\n");
        assert_eq!(read(env, "k"), "killed\n");
        assert_eq!(read(env, "r"), "ranged");
    };
    // Control 1: pre-images but no abort_on_close.
    policy("");
    reset();
    let out = env.sh_ok(&script(25));
    assert!(
        out.contains("denied=EPERM") && out.ends_with("done\n"),
        "{out}"
    );
    assert!(out.contains("/data/r=there"), "{out}");
    everything_stays(&env);
    // Control 2: abort_on_close, but nothing denied.
    policy("abort_on_close = \"denied\"\n");
    reset();
    let out = env.sh_ok(&script(27));
    assert!(
        out.contains("denied=ok") && out.contains("/data/r=there"),
        "{out}"
    );
    everything_stays(&env);
    // Denied: every transaction that ends after the denial is aborted.
    reset();
    let out = env.sh_ok(&script(25));
    assert!(
        out.contains("denied=EPERM") && out.ends_with("done\n"),
        "{out}"
    );
    assert_eq!(read(&env, "a"), "committed\n", "closed before the denial");
    assert_eq!(read(&env, "report"), "clean\n");
    assert!(!d.join("b").exists(), "created after the denial");
    assert!(!d.join("c").exists(), "left open at exit");
    // Killed by a signal: no call closed it; the VE's end did.
    assert!(!d.join("k").exists(), "left open by a killed process");
    // Ended by close_range: gone before the process went on (control runs: there).
    assert!(out.contains("/data/r=gone"), "{out}");
    assert!(!d.join("r").exists());
    // The undo log and the journal say what was put back.
    let u: Vec<serde_json::Value> = undo(&env, 3)
        .into_iter()
        .filter(|u| u["what"] == "aborted-on-close")
        .collect();
    let all: Vec<&str> = u.iter().filter_map(|u| u["rel"].as_str()).collect();
    assert!(all.contains(&"r"), "{u:?}");
    let rels: Vec<&str> = all.into_iter().filter(|r| *r != "r").collect();
    assert_eq!(rels, ["report", "b", "c", "k"], "{u:?}");
    let log = env.ok(&["log", "--ve", "3"]);
    assert!(log.contains("abort-on-close"), "{log}");
    env.assert_clean();
}

/// Extended attributes, the legacy utimes and mknod go through the supervisor too: the
/// attributes are kept before the first change and `jcs abort` puts them back, the named pipe it
/// made is removed. The supervisor acts with no more than the app's capabilities: a trusted.*
/// attribute (CAP_SYS_ADMIN) and a device node (CAP_MKNOD) stay refused, as without it.
#[test]
fn root_xattrs_utimes_and_mknod_are_kept_and_undone_within_the_apps_capabilities() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    common::static_helper(&env, "preimage");
    let d = data(&env);
    let setup = || {
        // (trusted.h: the host, with CAP_SYS_ADMIN, may set trusted.* here.)
        file_with_xattrs(
            &d.join("x"),
            &[("user.k", "v1"), ("user.gone", "g"), ("trusted.h", "h")],
        );
        let _ = std::fs::remove_file(d.join("fifo"));
    };
    let xattrs = || -> Vec<String> {
        let mut v: Vec<String> = xattr_list(&d.join("x"));
        v.sort();
        v
    };
    // Control: without pre-images, the changes are made, and the kernel refuses the others.
    setup();
    let out = env.ok(&[
        "run",
        "web",
        "--",
        "/data/preimage",
        "meta",
        "/data/x",
        "/data/fifo",
    ]);
    assert_eq!(out.trim(), "trusted=EPERM dev=EPERM");
    assert_eq!(xattrs(), ["user.k=v2"]);
    setup();
    keep_preimages(&env);
    let before = std::fs::metadata(d.join("x")).unwrap();
    let out = env.ok(&[
        "run",
        "web",
        "--",
        "/data/preimage",
        "meta",
        "/data/x",
        "/data/fifo",
    ]);
    assert_eq!(
        out.trim(),
        "trusted=EPERM dev=EPERM",
        "no more than the app may"
    );
    assert_eq!(xattrs(), ["user.k=v2"]);
    assert_eq!(
        std::fs::metadata(d.join("x")).unwrap().mtime(),
        1_000_000_000
    );
    assert!(std::fs::symlink_metadata(d.join("fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    let u = undo(&env, 2);
    assert_eq!(u[0]["what"], "attrs", "{u:?}");
    assert!(u[0]["xattrs"].to_string().contains("user.gone"), "{u:?}");
    assert!(
        u.iter()
            .any(|e| e["what"] == "created" && e["rel"] == "fifo"),
        "{u:?}"
    );
    env.ok(&["abort", "2"]);
    assert_eq!(xattrs(), ["user.gone=g", "user.k=v1"]);
    assert_eq!(
        std::fs::metadata(d.join("x")).unwrap().mtime(),
        before.mtime()
    );
    assert!(!d.join("fifo").exists());
    env.assert_clean();
}

/// Linux 6.13's setxattrat and removexattrat go to the supervisor like the other xattr
/// calls: the attributes are kept before the change and `jcs abort` puts them back.
#[test]
fn root_xattrat_calls_are_kept_and_undone() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    common::static_helper(&env, "preimage");
    let d = data(&env);
    let setup = || file_with_xattrs(&d.join("x"), &[("user.k", "v1"), ("user.gone", "g")]);
    let xattrs = || {
        let mut v = xattr_list(&d.join("x"));
        v.sort();
        v
    };
    let run = || env.ok(&["run", "web", "--", "/data/preimage", "metaat", "/data/x"]);
    // Control: without pre-images the calls change the file (this kernel has them).
    setup();
    assert_eq!(run().trim(), "ok");
    assert_eq!(xattrs(), ["user.k=v3"]);
    setup();
    keep_preimages(&env);
    assert_eq!(run().trim(), "ok", "the supervisor performs them");
    assert_eq!(xattrs(), ["user.k=v3"]);
    let u = undo(&env, 2);
    assert_eq!(u[0]["what"], "attrs", "{u:?}");
    env.ok(&["abort", "2"]);
    assert_eq!(xattrs(), ["user.gone=g", "user.k=v1"]);
    env.assert_clean();
}

/// Writes file `p` ("x") with these extended attributes, as the host.
fn file_with_xattrs(p: &std::path::Path, attrs: &[(&str, &str)]) {
    std::fs::write(p, "x").unwrap();
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    for (k, v) in attrs {
        let k = std::ffi::CString::new(*k).unwrap();
        // SAFETY: NUL-terminated strings, a value of the length given.
        let r = unsafe { libc::setxattr(c.as_ptr(), k.as_ptr(), v.as_ptr().cast(), v.len(), 0) };
        assert_eq!(r, 0, "the host sets {k:?} here");
    }
}

fn xattr_list(p: &std::path::Path) -> Vec<String> {
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    let mut names = vec![0u8; 4096];
    // SAFETY: a NUL-terminated path and a buffer of the length given.
    let n = unsafe { libc::listxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    assert!(n >= 0);
    names[..n as usize]
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty() && n.starts_with(b"user."))
        .map(|n| {
            let k = std::ffi::CString::new(n).unwrap();
            let mut v = vec![0u8; 256];
            // SAFETY: as above.
            let m =
                unsafe { libc::getxattr(c.as_ptr(), k.as_ptr(), v.as_mut_ptr().cast(), v.len()) };
            format!(
                "{}={}",
                String::from_utf8_lossy(n),
                String::from_utf8_lossy(&v[..m.max(0) as usize])
            )
        })
        .collect()
}

/// `renameat2(RENAME_EXCHANGE)`: the two names swap files; the abort swaps them back (once:
/// run again, it is done already).
#[test]
fn root_an_exchange_of_two_names_is_swapped_back() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    common::static_helper(&env, "preimage");
    keep_preimages(&env);
    let d = data(&env);
    std::fs::write(d.join("p"), "P").unwrap();
    std::fs::write(d.join("q"), "Q").unwrap();
    let ino = |f: &str| std::fs::metadata(d.join(f)).unwrap().ino();
    let (ip, iq) = (ino("p"), ino("q"));
    env.ok(&[
        "run",
        "web",
        "--",
        "/data/preimage",
        "exchange",
        "/data/p",
        "/data/q",
    ]);
    assert_eq!(
        (read(&env, "p"), read(&env, "q")),
        ("Q".into(), "P".into()),
        "control"
    );
    let u = undo(&env, 1);
    assert!(
        u.iter()
            .any(|e| e["what"] == "renamed" && e["exchanged"] == true),
        "{u:?}"
    );
    env.ok(&["abort", "1"]);
    assert_eq!((read(&env, "p"), read(&env, "q")), ("P".into(), "Q".into()));
    assert_eq!((ino("p"), ino("q")), (ip, iq), "the same files, not copies");
    let again = env.json(&["abort", "1", "--json"]);
    assert!(
        again["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["result"] == "already"),
        "{again}"
    );
    assert_eq!((read(&env, "p"), read(&env, "q")), ("P".into(), "Q".into()));
    env.assert_clean();
}

/// `jcs exec` into a VE whose app keeps pre-images is refused (its supervisor serves only the
/// VE's own processes: a process added from outside would write unsupervised); the same VE
/// without pre-images takes it (the control).
#[test]
fn root_exec_into_a_supervised_ve_is_refused() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let control = env.spawn_until_go("true", "true");
    env.ok(&["exec", "1", "--", "true"]);
    env.go();
    assert!(control.wait_with_output().unwrap().status.success());
    std::fs::remove_file(data(&env).join("go")).unwrap();
    keep_preimages(&env);
    let child = env.spawn_until_go("true", "true");
    let e = env.fails(&["exec", "2", "--", "sh", "-c", "echo x > /data/unsupervised"]);
    assert!(e.contains("pre-images"), "{e}");
    assert!(!data(&env).join("unsupervised").exists());
    env.go();
    assert!(child.wait_with_output().unwrap().status.success());
    env.assert_clean();
}

/// A unix socket bound to a path in storage makes a file there (mknod's S_IFSOCK): the
/// supervisor binds it on the app's socket, so that it is a creation `jcs abort` removes — a
/// path absolute or relative to the app's working directory, with the app's umask — and the
/// socket works as bound; abstract and IP addresses bind as before. An address flipped
/// between a path and an abstract name under the call binds what the supervisor read: every
/// file made is kept in the undo log.
#[test]
fn root_a_unix_socket_bound_in_storage_is_a_creation_undone_by_abort() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    common::static_helper(&env, "preimage");
    let d = data(&env);
    let run = || {
        std::fs::create_dir_all(d.join("sub")).unwrap();
        let out = env.ok(&["run", "web", "--", "/data/preimage", "sockets", "/data"]);
        env.ok(&[
            "run",
            "web",
            "--",
            "/data/preimage",
            "bindflip",
            "/data",
            "3000",
        ]);
        // The kernel's own answers at the edges: a length past a sockaddr_un, a name that
        // fills sun_path without a NUL.
        let edge = env.ok(&[
            "run",
            "web",
            "--",
            "/data/preimage",
            "bindedge",
            "/data/sub",
        ]);
        assert_eq!(edge.trim(), "over=EINVAL full=ok");
        std::fs::remove_file(d.join("sub").join("f".repeat(108))).unwrap();
        out
    };
    let sockets = || {
        let mut v: Vec<String> = walkdir(&d)
            .into_iter()
            .filter(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_socket()))
            .map(|p| p.strip_prefix(&d).unwrap().display().to_string())
            .collect();
        v.sort();
        v
    };
    // Control: without pre-images the sockets are made, and nothing keeps them.
    assert_eq!(run().trim(), "hi 140750 tcp=1");
    let made = sockets();
    assert!(made.contains(&"s1".to_string()), "{made:?}");
    assert!(made.contains(&"sub/s2".to_string()), "{made:?}");
    assert!(
        made.iter().any(|f| f.starts_with('b')),
        "the flipped address made files: {made:?}"
    );
    for f in &made {
        std::fs::remove_file(d.join(f)).unwrap();
    }
    keep_preimages(&env);
    assert_eq!(run().trim(), "hi 140750 tcp=1", "bound as the app would");
    let made = sockets();
    assert!(made.contains(&"s1".to_string()) && made.contains(&"sub/s2".to_string()));
    let mut u = undo(&env, 4);
    u.extend(undo(&env, 5));
    for rel in &made {
        assert!(
            u.iter()
                .any(|e| e["what"] == "created" && e["rel"] == rel.as_str()),
            "{rel}: {u:?}"
        );
    }
    let binds: Vec<_> = env
        .log(4)
        .into_iter()
        .filter(|e| e["op"] == "bind")
        .map(|e| e.to_string())
        .collect();
    assert!(
        binds.iter().any(|b| b.contains("file:/data/s1"))
            && binds.iter().any(|b| b.contains("unix:@jcs-abstract")),
        "the binds are recorded: {binds:?}"
    );
    env.ok(&["abort", "4"]);
    env.ok(&["abort", "5"]);
    env.ok(&["abort", "6"]);
    assert_eq!(
        sockets(),
        Vec::<String>::new(),
        "abort removes the sockets the VE made"
    );
    env.assert_clean();
}

/// A bind the supervisor makes acts with the caller's own capabilities, never the init's: a
/// user other than root gets no port below 1024 through it (EACCES, as without it), root does.
#[test]
fn root_a_supervised_bind_has_no_more_than_the_callers_capabilities() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    common::static_helper(&env, "preimage");
    let bind = |user: Option<&str>| {
        let mut args = vec!["run"];
        if let Some(u) = user {
            args.extend(["-u", u]);
        }
        args.extend(["web", "--", "/data/preimage", "bindport", "80"]);
        env.ok(&args).trim().to_string()
    };
    // Control: the kernel's answers without the supervisor.
    assert_eq!(bind(None), "bind=ok");
    assert_eq!(bind(Some("1000")), "bind=EACCES");
    keep_preimages(&env);
    assert_eq!(bind(None), "bind=ok");
    assert_eq!(
        bind(Some("1000")),
        "bind=EACCES",
        "not the supervisor's capabilities"
    );
    env.assert_clean();
}

fn walkdir(d: &std::path::Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(d).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() && !p.is_symlink() {
            out.extend(walkdir(&p));
        }
        out.push(p);
    }
    out
}
