//! One identity per file (device, inode, generation), with names as an attribute in time:
//! real VEs rename, link, unlink, reuse inode numbers, read through other mount points and
//! symbolic links, and exec what another VE wrote; `jcs track` must follow the file, not the
//! name. Each test also shows the data really crossed (the negative control: without the
//! identity the answer would be wrong or empty).

mod common;

use common::Env;

#[test]
fn root_a_renamed_or_relinked_file_is_still_the_file_its_writer_wrote() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    // VE 1 writes a; VE 2 renames it to b (a name VE 1 never used); VE 3 links b as c and
    // removes b; VE 4 reads c.
    env.sh_ok("echo secret > /data/a");
    env.sh_ok("mv /data/a /data/b");
    env.sh_ok("ln /data/b /data/c && rm /data/b");
    let got = env.sh_ok("cat /data/c");
    assert_eq!(got, "secret\n", "the data crossed from VE 1 to VE 4");
    for name in ["file:/data/c", "persist:web:/data/c"] {
        let back = env.reached(&["back", name]);
        assert!(back.contains(&"ve:1".to_string()), "{name}: {back:?}");
    }
    // The old names resolve to the file that last had them.
    let back = env.reached(&["back", "file:/data/b"]);
    assert!(back.contains(&"ve:1".to_string()), "{back:?}");
    // Forward from the writer reaches the reader, through one variable.
    let fwd = env.reached(&["forward", "ve:1"]);
    assert!(fwd.contains(&"ve:4".to_string()), "{fwd:?}");
    // The rename, the link and the unlink are on the file's one variable (its identity),
    // each printed by the name it gave or took away.
    let id = env
        .log(1)
        .iter()
        .find(|a| a["op"] == "write" && a["dst"] == "file:/data/a")
        .map(|a| a["dst_id"].clone())
        .expect("VE 1's write");
    assert!(id.as_str().is_some_and(|i| i.starts_with("file:[")), "{id}");
    for (ve, op, name) in [
        (2, "rename", "file:/data/b"),
        (3, "link", "file:/data/c"),
        (3, "unlink", "file:/data/b"),
    ] {
        assert!(
            env.log(ve)
                .iter()
                .any(|a| a["op"] == op && a["dst"] == name && a["dst_id"] == id),
            "VE {ve} {op}: {:#?}",
            env.log(ve)
        );
    }
    env.assert_clean();
}

/// renameat2 with RENAME_EXCHANGE swaps two files' names: both files changed, and each has
/// the other's name from then on. VE 1 writes a and b; VE 2 swaps them; VE 3 changes /data/a's
/// mode by name (a call the translator resolves through the names it saw).
#[test]
fn root_an_exchange_of_two_names_changes_both_files() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    common::static_helper(&env, "boundary");
    env.sh_ok("echo one > /data/a; echo two > /data/b"); // VE 1
    env.ok(&[
        "run",
        "web",
        "--",
        "/data/boundary",
        "exchange",
        "/data/a",
        "/data/b",
    ]); // VE 2
    env.sh_ok("chmod 600 /data/a"); // VE 3
    assert_eq!(env.sh_ok("cat /data/a"), "two\n", "the names swapped files"); // VE 4
    let id = |name: &str| {
        env.log(1)
            .iter()
            .find(|a| a["op"] == "write" && a["dst"] == name)
            .map(|a| a["dst_id"].clone())
            .expect("VE 1's write")
    };
    let (one, two) = (id("file:/data/a"), id("file:/data/b"));
    assert_ne!(one, two);
    // Both files changed in VE 2 (what it did reaches both), each under its new name.
    let renames: Vec<_> = env
        .log(2)
        .into_iter()
        .filter(|a| a["op"] == "rename")
        .map(|a| (a["dst_id"].clone(), a["dst"].clone()))
        .collect();
    assert!(
        renames.contains(&(one.clone(), "file:/data/b".into())),
        "{renames:?}"
    );
    assert!(
        renames.contains(&(two.clone(), "file:/data/a".into())),
        "{renames:?}"
    );
    // VE 3's chmod of /data/a is on the file that had that name then: "two"'s.
    let chmods: Vec<_> = env
        .log(3)
        .into_iter()
        .filter(|a| a["op"] == "chmod")
        .map(|a| a["dst_id"].clone())
        .collect();
    assert_eq!(chmods, std::slice::from_ref(&two));
    // And /data/a names "two"'s file now, /data/b "one"'s.
    let fwd = env.reached(&["forward", "ve:2"]);
    assert!(fwd.contains(&"file:/data/a".to_string()), "{fwd:?}");
    assert!(fwd.contains(&"file:/data/b".to_string()), "{fwd:?}");
    env.assert_clean();
}

#[test]
fn root_an_open_with_o_trunc_changes_the_file() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    env.sh_ok("echo one > /data/f");
    // `>` opens with O_TRUNC: the file was changed even if nothing is written.
    env.sh_ok(": > /data/f");
    let ats = env.log(2);
    assert!(
        ats.iter()
            .any(|a| a["op"] == "truncate" && a["src"] == "ve:2" && a["dst"] == "file:/data/f"),
        "{ats:#?}"
    );
    assert!(env
        .reached(&["back", "file:/data/f"])
        .contains(&"ve:2".to_string()));
    env.assert_clean();
}

/// A small ext4 file system mounted (with `mount -o loop`) over a directory for one test:
/// on a fresh file system a freed inode number is the next one handed out.
struct FreshExt4 {
    dir: std::path::PathBuf,
    _image: tempfile::TempDir,
}

impl FreshExt4 {
    fn over(dir: &std::path::Path) -> FreshExt4 {
        let image = tempfile::tempdir().unwrap();
        let img = image.path().join("fs.img");
        let f = std::fs::File::create(&img).unwrap();
        f.set_len(16 << 20).unwrap();
        let ok = |c: &mut std::process::Command| assert!(c.status().unwrap().success(), "{c:?}");
        ok(std::process::Command::new("mkfs.ext4")
            .args(["-q", "-F"])
            .arg(&img));
        std::fs::create_dir_all(dir).unwrap();
        ok(std::process::Command::new("mount")
            .args(["-o", "loop"])
            .arg(&img)
            .arg(dir));
        FreshExt4 {
            dir: dir.to_path_buf(),
            _image: image,
        }
    }
}

impl Drop for FreshExt4 {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.dir).status();
    }
}

#[test]
fn root_a_reused_inode_number_is_a_new_file() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let fs = FreshExt4::over(&env.home().join("persist/web/data"));
    // VE 1 writes a secret and deletes it; VE 2 creates another file, which this fresh file
    // system gives the freed inode number.
    let ino_x = env.sh_ok("echo secret > /data/x; stat -c %i /data/x; rm /data/x");
    let ino_y = env.sh_ok("echo public > /data/y; stat -c %i /data/y");
    assert_eq!(ino_x, ino_y, "the control: the inode number was reused");
    let back = env.reached(&["back", "file:/data/y"]);
    assert!(back.contains(&"ve:2".to_string()), "{back:?}");
    assert!(
        !back.contains(&"ve:1".to_string()),
        "VE 1's deleted file is not /data/y: {back:?}"
    );
    // Two variables: the deleted file keeps its own.
    let old = env.reached(&["forward", "ve:1"]);
    assert!(!old.contains(&"ve:2".to_string()), "{old:?}");
    drop(fs);
    env.assert_clean();
}

#[test]
fn root_one_shared_file_under_two_mount_points_is_one_variable() {
    let Some(env) = Env::new() else { return };
    env.ok(&["template", "create", "bb", "--busybox"]);
    env.ok(&[
        "app",
        "create",
        "browser",
        "--template",
        "bb",
        "--share",
        "/dl=downloads",
    ]);
    env.ok(&[
        "app",
        "create",
        "office",
        "--template",
        "bb",
        "--persist",
        "/data",
        "--share",
        "/inbox=downloads",
    ]);
    let run = |app: &str, script: &str| {
        let o = env.jcs(&["run", app, "--", "/bin/sh", "-c", script]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    run("browser", "echo evil > /dl/evil.doc");
    run("office", "cat /inbox/evil.doc > /data/report.txt");
    assert_eq!(
        std::fs::read_to_string(env.home().join("persist/office/data/report.txt")).unwrap(),
        "evil\n",
        "the data crossed"
    );
    // The office's name for the file, its store-level name, and the browser's name.
    for q in [
        &["back", "file:/data/report.txt"][..],
        &["back", "persist:office:/data/report.txt"],
    ] {
        let back = env.reached(q);
        assert!(back.contains(&"ve:1".to_string()), "{q:?}: {back:?}");
    }
    let fwd = env.reached(&["forward", "shared:downloads/evil.doc"]);
    assert!(fwd.contains(&"ve:2".to_string()), "{fwd:?}");
    let fwd = env.reached(&["forward", "file:/inbox/evil.doc", "--app", "office"]);
    assert!(fwd.contains(&"ve:2".to_string()), "{fwd:?}");
    env.assert_clean();
}

#[test]
fn root_two_apps_files_of_one_path_are_two_files() {
    let Some(env) = Env::new() else { return };
    env.ok(&["template", "create", "bb", "--busybox"]);
    for app in ["a", "b"] {
        env.ok(&[
            "app",
            "create",
            app,
            "--template",
            "bb",
            "--persist",
            "/data",
        ]);
        let o = env.jcs(&[
            "run",
            app,
            "--",
            "/bin/sh",
            "-c",
            "echo $JCS_VE > /data/report.txt",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    // By the inner path alone the name is ambiguous: an error that lists both files.
    let err = env.fails(&["track", "back", "file:/data/report.txt"]);
    assert!(err.contains("2 different files"), "{err}");
    assert!(err.matches("file:[").count() >= 2, "{err}");
    // Narrowed by app or by store-level name: one file, its own writer only.
    for q in [
        &["back", "file:/data/report.txt", "--app", "b"][..],
        &["back", "persist:b:/data/report.txt"],
    ] {
        let back = env.reached(q);
        assert!(back.contains(&"ve:2".to_string()), "{q:?}: {back:?}");
        assert!(!back.contains(&"ve:1".to_string()), "{q:?}: {back:?}");
    }
    env.assert_clean();
}

#[test]
fn root_exec_names_the_file_run_and_a_symlink_is_not_a_name() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    // VE 1 makes a program and a symbolic link to it; VE 2 runs it.
    // (Named echo: busybox runs the applet its file is named after.)
    env.sh_ok("cp /bin/busybox /data/echo && ln -s /data/echo /data/alias");
    let out = env.sh_ok("/data/echo ran");
    assert_eq!(out, "ran\n");
    let back = env.reached(&["back", "ve:2"]);
    assert!(
        back.contains(&"file:/data/echo".to_string()) && back.contains(&"ve:1".to_string()),
        "VE 2 ran what VE 1 wrote: {back:?}"
    );
    // Reading through the link reads the file: the same variable, not one named /data/alias.
    env.sh_ok("cat /data/alias > /dev/null");
    let ats = env.log(3);
    assert!(
        ats.iter()
            .any(|a| a["op"] == "read" && a["src"] == "file:/data/echo"),
        "{ats:#?}"
    );
    assert!(
        !ats.iter().any(|a| a["src"] == "file:/data/alias"),
        "{ats:#?}"
    );
    env.assert_clean();
}

#[test]
fn root_a_restarted_recorder_gives_a_file_the_variable_it_had() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    env.sh_ok("echo secret > /data/f");
    // A new recorder (the next run starts one) must not make the file a new variable: VE 2's
    // read is of what VE 1 wrote.
    env.stop_daemon();
    assert_eq!(env.sh_ok("cat /data/f"), "secret\n");
    let fwd = env.reached(&["forward", "ve:1"]);
    assert!(fwd.contains(&"ve:2".to_string()), "{fwd:?}");
    // ... and knows its names: a rename after another restart changes the file's name (the
    // catalog kept it), it does not make path variables.
    env.stop_daemon();
    env.sh_ok("mv /data/f /data/g");
    let renames: Vec<serde_json::Value> = env
        .log(3)
        .into_iter()
        .filter(|a| a["op"] == "rename")
        .collect();
    let written = env
        .log(1)
        .into_iter()
        .find(|a| a["op"] == "write")
        .expect("VE 1's write");
    assert!(
        renames.len() == 1
            && renames[0]["src"] == "ve:3"
            && renames[0]["dst"] == "file:/data/g"
            && renames[0]["dst_id"] == written["dst_id"],
        "{renames:#?} {written}"
    );
    // `jcs log --var` by the new name lists what was done to the file under its old one.
    let by_name = env.ok(&["log", "--var", "file:/data/g", "--json"]);
    assert!(
        by_name
            .lines()
            .any(|l| l.contains("\"op\":\"write\"") && l.contains("\"ve\":1")),
        "{by_name}"
    );
    env.assert_clean();
}

/// A long-running server touches new files and connections without end; the recorder keeps
/// what it knows of them by identity only up to a bound (here 40), then forgets it — and a
/// file it meets again is the same variable (found through the catalog), so what was written
/// before the forgetting still reaches what is read after it.
#[test]
fn root_what_the_recorder_forgets_is_the_same_variable_when_met_again() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    common::static_helper(&env, "boundary");
    let small = [("JCS_VARS_HELD_MAX", "40")];
    env.sh_ok_with(
        &small,
        "echo kept-secret > /data/x; /data/boundary udp-spray 300",
    ); // VE 1
    env.sh_ok_with(&small, "cat /data/x > /data/y"); // VE 2
    let log = std::fs::read_to_string(env.home().join("daemon.log")).unwrap();
    assert!(
        log.contains("forgot the variables known by identity"),
        "the bound was reached: {log}"
    );
    let back = env.reached(&["back", "persist:web:/data/y"]);
    assert!(back.contains(&"ve:1".to_string()), "{back:?}");
    // One variable for /data/x: VE 1's write and VE 2's read.
    let ids: std::collections::BTreeSet<String> = env
        .ok(&["log", "--var", "persist:web:/data/x", "--json"])
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|a| a["op"] == "write" || a["op"] == "read")
        .map(|a| {
            let id = if a["op"] == "write" {
                &a["dst_id"]
            } else {
                &a["src_id"]
            };
            id.as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    env.assert_clean();
}
