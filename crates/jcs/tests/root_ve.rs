//! Privileged tests of the VE runtime: real templates, real overlay mounts, namespaces and
//! cgroups, real programs. They run as root (CI is root) and each uses its own store.

mod common;

use common::{processes_with, tree_digest, wait_for, Env};
use std::io::Write;
use std::process::Stdio;

#[test]
fn root_writes_land_in_their_branches() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let template = env.home().join("templates/bb/1");
    let before = tree_digest(&template);
    let out = env.sh_ok("echo trojan > /bin/ps && chmod 755 /bin/ps && echo persisted > /data/p.txt && echo shared > /dl/s.txt \
         && rm /etc/passwd && echo extra >> /etc/group && mkdir /opt && echo hi > /opt/new && rm -rf /home && mkdir /home && echo done");
    assert_eq!(out.trim(), "done");
    // Each write landed where the branch rules say.
    assert_eq!(
        std::fs::read_to_string(env.home().join("ve/1/dirties/bin/ps")).unwrap(),
        "trojan\n"
    );
    assert_eq!(
        std::fs::read_to_string(env.home().join("persist/web/data/p.txt")).unwrap(),
        "persisted\n"
    );
    assert_eq!(
        std::fs::read_to_string(env.home().join("shared/downloads/s.txt")).unwrap(),
        "shared\n"
    );
    assert!(
        !env.home().join("ve/1/dirties/data").exists(),
        "persistent write leaked into the dirties"
    );
    // The template is pristine.
    assert_eq!(tree_digest(&template), before, "the template changed");

    let r = env.json(&["inspect", "1", "--json"]);
    let entries = r["dirties"].as_array().unwrap();
    let find = |p: &str| {
        entries
            .iter()
            .find(|e| e["path"] == p)
            .unwrap_or_else(|| panic!("{p} not in {r:#}"))
    };
    let ps = find("/bin/ps");
    assert_eq!(ps["kind"], "added");
    assert_eq!(ps["flags"]["executable"], true);
    assert_eq!(ps["flags"]["system_path"], true);
    assert_eq!(ps["size"], 7);
    // The sha256 agrees with coreutils' sha256sum of the same bytes.
    assert_eq!(ps["sha256"], sha256_hex(b"trojan\n").as_str());
    assert_eq!(find("/etc/passwd")["kind"], "deleted");
    assert_eq!(find("/etc/passwd")["shadows"], "template bb v1");
    assert_eq!(find("/etc/group")["kind"], "modified");
    assert_eq!(find("/etc/group")["shadows"], "template bb v1");
    assert_eq!(find("/opt")["kind"], "added");
    // A directory of the template deleted and made anew is opaque.
    assert_eq!(find("/home")["kind"], "opaque");
    assert_eq!(find("/home")["shadows"], "template bb v1");
    assert_eq!(find("/opt/new")["flags"]["system_path"], false);
    let storage = r["storage"].as_array().unwrap();
    let paths: Vec<(&str, &str, &str)> = storage
        .iter()
        .map(|c| {
            (
                c["storage"].as_str().unwrap(),
                c["path"].as_str().unwrap(),
                c["change"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        paths,
        vec![
            ("persist", "/data/p.txt", "added"),
            ("shared", "/dl/s.txt", "added")
        ]
    );
    // The human form says the same.
    let text = env.ok(&["inspect", "1"]);
    assert!(text.contains("added     /bin/ps"), "{text}");
    assert!(text.contains("exec,system"), "{text}");
    env.assert_clean();
}

/// What the VE of [`storage_changes_of`] does: change files of its storage in every way a VE
/// can — through a descriptor, by name, through symbolic links (one it makes and removes, one
/// in storage, one in its template) —, read or open others, and wait on a FIFO while the host
/// changes one.
const STORAGE_SCRIPT: &str = "cat /data/read.txt > /dev/null \
    && : >> /data/untouched.txt \
    && echo more >> /data/write.txt \
    && : > /data/trunc.txt \
    && chmod 600 /data/chmod.txt \
    && touch /data/touch.txt \
    && rm /data/gone.txt \
    && echo new > /data/tmp && mv /data/tmp /data/replaced.txt \
    && echo x > /data/new.txt \
    && mkdir /data/newdir \
    && ln -s linked.txt /data/link && echo y >> /data/link \
    && ln /data/hard.txt /data/hard2 && echo z >> /data/hard2 \
    && rm -rf /data/dir \
    && ln -s /data /tmp/d && chmod 600 /tmp/d/viatmp.txt && rm /tmp/d \
    && touch /data/lnk/insub.txt \
    && chmod 600 /statelink/viatemplate.txt \
    && echo s > /dl/s.txt \
    && read go < /data/sync && echo done";

/// Runs [`STORAGE_SCRIPT`] in a VE (with `vars` in jcs run's environment), changing
/// /data/other.txt from the host while the VE waits on its FIFO; returns the storage
/// changes `jcs inspect` lists (storage, path, change) and its notes.
fn storage_changes_of(
    env: &Env,
    vars: &[(&str, &str)],
    policy: Option<&str>,
) -> (Vec<(String, String, String)>, Vec<String>) {
    env.standard_app();
    if let Some(p) = policy {
        let f = env.home().join("policy.toml");
        std::fs::write(&f, p).unwrap();
        env.ok(&["app", "policy", "web", f.to_str().unwrap()]);
    }
    let data = env.home().join("persist/web/data");
    for d in ["dir/sub", "sub", "tpl"] {
        std::fs::create_dir_all(data.join(d)).unwrap();
    }
    for f in [
        "read.txt",
        "untouched.txt",
        "write.txt",
        "trunc.txt",
        "chmod.txt",
        "touch.txt",
        "gone.txt",
        "replaced.txt",
        "linked.txt",
        "hard.txt",
        "other.txt",
        "dir/sub/f",
        "viatmp.txt",
        "sub/insub.txt",
        "tpl/viatemplate.txt",
    ] {
        std::fs::write(data.join(f), "before\n").unwrap();
    }
    std::os::unix::fs::symlink("sub", data.join("lnk")).unwrap();
    let tpl = env.home().join("templates/bb/1/statelink");
    std::os::unix::fs::symlink("/data/tpl", tpl).unwrap();
    // (Old times, so that a touch shows in the stamps of an unrecorded run too.)
    let st = std::process::Command::new("touch")
        .args(["-d", "2020-01-01"])
        .arg(data.join("touch.txt"))
        .arg(data.join("sub/insub.txt"))
        .status()
        .unwrap();
    assert!(st.success());
    let fifo = data.join("sync");
    let st = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(st.success());
    let child = env
        .sh_cmd(STORAGE_SCRIPT)
        .envs(vars.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Opening the FIFO waits for the VE to open it: by then it made its changes. The host
    // changes a file of its storage before letting it go on.
    let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    std::fs::OpenOptions::new()
        .append(true)
        .open(data.join("other.txt"))
        .unwrap()
        .write_all(b"by the host\n")
        .unwrap();
    w.write_all(b"go\n").unwrap();
    drop(w);
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "done");
    let r = env.json(&["inspect", "1", "--json"]);
    let changes = r["storage"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["storage"].as_str().unwrap().to_string(),
                c["path"].as_str().unwrap().to_string(),
                c["change"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let notes = r["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect();
    (changes, notes)
}

/// What every way of changing storage in [`STORAGE_SCRIPT`] must list.
fn the_ves_storage_changes() -> Vec<(String, String, String)> {
    [
        ("persist", "/data/chmod.txt", "modified"),
        ("persist", "/data/dir", "deleted"),
        ("persist", "/data/dir/sub", "deleted"),
        ("persist", "/data/dir/sub/f", "deleted"),
        ("persist", "/data/gone.txt", "deleted"),
        ("persist", "/data/hard.txt", "modified"),
        ("persist", "/data/hard2", "added"),
        ("persist", "/data/link", "added"),
        ("persist", "/data/linked.txt", "modified"),
        ("persist", "/data/new.txt", "added"),
        ("persist", "/data/newdir", "added"),
        ("persist", "/data/replaced.txt", "modified"),
        ("persist", "/data/sub/insub.txt", "modified"),
        ("persist", "/data/touch.txt", "modified"),
        ("persist", "/data/tpl/viatemplate.txt", "modified"),
        ("persist", "/data/trunc.txt", "modified"),
        ("persist", "/data/viatmp.txt", "modified"),
        ("persist", "/data/write.txt", "modified"),
        ("shared", "/dl/s.txt", "added"),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect()
}

/// A recorded VE's storage changes are its own: names compared before and after, files that
/// kept their names listed when its recording says it changed them — every way of changing
/// one (descriptor, name, symbolic link, hard link, truncation, attributes, replacement by a
/// rename), none that it only read or opened, and not a file the host changed meanwhile
/// (which the unrecorded run below, comparing stamps, lists: the negative control).
#[test]
fn root_a_recorded_ves_storage_changes_are_its_own() {
    let Some(env) = Env::new() else { return };
    let (changes, notes) = storage_changes_of(&env, &[], None);
    assert_eq!(changes, the_ves_storage_changes(), "notes: {notes:?}");
    assert!(
        notes
            .iter()
            .any(|n| n.contains("names added or removed in shared storage")),
        "{notes:?}"
    );
    assert!(!notes.iter().any(|n| n.contains("incomplete")), "{notes:?}");
    env.assert_clean();
}

/// The same with pre-images kept (`[recovery]`): the VE's calls that change storage are
/// performed by its supervisor, and are still the VE's, in the recording and in the report.
#[test]
fn root_a_supervised_ves_storage_changes_are_its_own() {
    let Some(env) = Env::new() else { return };
    let (changes, notes) = storage_changes_of(&env, &[], Some("[recovery]\npreimages = true\n"));
    assert_eq!(changes, the_ves_storage_changes(), "notes: {notes:?}");
    assert!(!notes.iter().any(|n| n.contains("incomplete")), "{notes:?}");
    env.assert_clean();
}

/// The names a store keeps of a storage tree between VEs are a cache: after a VE they are
/// there, and damaged they are listed anew — the next VE's report is still exactly its own.
#[test]
fn root_damaged_kept_names_are_listed_anew() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    env.sh_ok("mkdir /data/d && echo 1 > /data/d/kept && echo 1 > /data/d/old");
    let cache = env.home().join("cache/names");
    let kept: Vec<_> = std::fs::read_dir(&cache)
        .unwrap_or_else(|e| panic!("{}: {e}", cache.display()))
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!kept.is_empty(), "no names kept after a VE");
    for f in &kept {
        std::fs::write(f, b"JCSNAMES1\n\xff\xff").unwrap();
    }
    env.sh_ok("echo 2 >> /data/d/old && echo 1 > /data/d/new");
    let r = env.json(&["inspect", "2", "--json"]);
    let changes: Vec<(String, String)> = r["storage"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["path"].as_str().unwrap().to_string(),
                c["change"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        vec![
            ("/data/d/new".to_string(), "added".to_string()),
            ("/data/d/old".to_string(), "modified".to_string())
        ]
    );
    // Kept again, readable.
    assert!(kept
        .iter()
        .all(|f| std::fs::read(f).unwrap().len() > b"JCSNAMES1\n\xff\xff".len()));
    env.assert_clean();
}

/// Without the recorder (`JCS_MONITOR=off`) the report compares stamps of every entry: the
/// VE's changes, and the host's changes of /data/other.txt and of the FIFO (its write gave
/// it a new mtime), which it cannot tell apart.
#[test]
fn root_an_unrecorded_ves_storage_changes_compare_stamps() {
    let Some(env) = Env::new() else { return };
    let (changes, notes) = storage_changes_of(&env, &[("JCS_MONITOR", "off")], None);
    let mut expected = the_ves_storage_changes();
    for by_host in ["/data/other.txt", "/data/sync"] {
        expected.push(("persist".into(), by_host.into(), "modified".into()));
    }
    expected.sort();
    assert_eq!(changes, expected);
    assert!(
        notes.iter().any(|n| n.contains("it ran unrecorded")),
        "{notes:?}"
    );
    env.assert_clean();
}

fn sha256_hex(b: &[u8]) -> String {
    use std::process::Command;
    let mut c = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(b).unwrap();
    let o = c.wait_with_output().unwrap();
    String::from_utf8(o.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn root_exit_code_stdio_and_missing_command() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let o = env.sh("echo out; echo err >&2; exit 7");
    assert_eq!(o.status.code(), Some(7));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "err\n");
    // stdin passes through.
    let mut c = env
        .cmd(&["run", "web", "--", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin
        .take()
        .unwrap()
        .write_all(b"hello from the host\n")
        .unwrap();
    let o = c.wait_with_output().unwrap();
    assert!(o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stdout), "hello from the host\n");
    // A command that does not exist in the VE: one clear line, exit 127.
    let o = env.jcs(&["run", "web", "--", "no-such-program"]);
    assert_eq!(o.status.code(), Some(127));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("command not found in the VE: no-such-program"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    // No default command: clear error.
    let err = env.fails(&["run", "web"]);
    assert!(err.contains("has no default command"), "{err}");
    env.assert_clean();
}

#[test]
fn root_ve_sees_its_own_world() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let out = env.sh_ok("hostname; echo pid=$$; ls /proc | grep -c '^[0-9]'; cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '; \
         grep CapEff /proc/self/status; grep NoNewPrivs /proc/self/status; cat /proc/self/cgroup | grep '^0::'");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "ve-1");
    assert_eq!(lines[1], "pid=2", "the app is pid 2 under the VE's init");
    // Only lo in a --net none VE.
    assert_eq!(lines[3], "lo");
    assert_eq!(lines.len(), 7, "{out}");
    // Capabilities are the container default set (no CAP_SYS_ADMIN, bit 21).
    let eff = u64::from_str_radix(lines[4].split_whitespace().nth(1).unwrap(), 16).unwrap();
    assert_eq!(eff & (1 << 21), 0);
    assert_eq!(eff, ve::caps::keep_mask());
    assert_eq!(lines[5].split_whitespace().nth(1), Some("1"));
    assert_eq!(
        lines[6], "0::/",
        "the cgroup namespace is rooted at the VE's cgroup"
    );
    // The host-wide parts of /proc are read-only: root in a VE is the host's uid 0. (Writing
    // the hostname sysctl is harmless even if it worked: the VE has its own uts namespace.)
    let o = env.sh("echo other > /proc/sys/kernel/hostname");
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("Read-only file system"));
    let mounts = env.sh_ok("cat /proc/self/mountinfo");
    let sys = mounts
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/proc/sys"))
        .expect("/proc/sys is a mount");
    assert!(
        sys.split(' ').nth(5).unwrap().split(',').any(|o| o == "ro"),
        "{sys}"
    );
    env.assert_clean();
}

#[test]
fn root_forbidden_syscalls_fail() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    for (what, cmd) in [
        ("mount", "mount -t tmpfs none /mnt"),
        ("unshare", "unshare -n true"),
        ("chroot-escape via pivot_root", "pivot_root / /"),
    ] {
        let o = env.sh(&format!("mkdir -p /mnt; {cmd}"));
        assert!(!o.status.success(), "{what} succeeded inside the VE");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("Operation not permitted") || err.contains("permission denied"),
            "{what}: {err}"
        );
    }
    env.assert_clean();
}

#[test]
fn root_concurrent_ves_are_isolated() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    // VE 1 idles until the test lets it go.
    let a = env.spawn_until_go("readlink /proc/self/ns/net > /data/a.net", "echo a-alive");
    let persist = env.home().join("persist/web/data");
    // The host pids of VE 1's processes.
    let v2 =
        std::path::Path::new("/sys/fs/cgroup/unified/jcs").join(format!("{}-1", env.store_id()));
    let v2 = if v2.exists() {
        v2
    } else {
        std::path::Path::new("/sys/fs/cgroup/jcs").join(format!("{}-1", env.store_id()))
    };
    let pids: Vec<String> = std::fs::read_to_string(v2.join("cgroup.procs"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert!(!pids.is_empty());
    let kill_all = pids
        .iter()
        .map(|p| format!("kill -9 {p} 2>&1;"))
        .collect::<String>();
    let o = env.sh(&format!("readlink /proc/self/ns/net; cat /proc/[0-9]*/cmdline | tr '\\0' ' ' | grep -c 'wh[i]le'; {kill_all} echo b-done"));
    let out = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    let a_net = std::fs::read_to_string(persist.join("a.net")).unwrap();
    assert_ne!(lines[0], a_net.trim(), "both VEs share a network namespace");
    assert_ne!(
        lines[0],
        std::fs::read_link("/proc/self/ns/net")
            .unwrap()
            .to_string_lossy(),
        "VE 2 uses the host's network"
    );
    // VE 2 sees no process of VE 1 (whose command line has the only "while").
    assert_eq!(lines[1], "0", "{out}");
    // kill of VE 1's host pids fails inside VE 2: those pids do not exist there.
    for l in &lines[2..lines.len() - 1] {
        assert!(l.contains("No such process"), "{out}");
    }
    assert_eq!(lines.last(), Some(&"b-done"));
    // VE 1 is still alive and finishes normally.
    env.go();
    let o = a.wait_with_output().unwrap();
    assert!(o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stdout), "a-alive\n");
    env.assert_clean();
}

#[test]
fn root_ve_ids_never_reused() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    env.ok(&["run", "web", "--", "true"]);
    env.ok(&["run", "web", "--", "true"]);
    env.ok(&["rm", "2"]);
    env.ok(&["gc"]);
    env.ok(&["run", "web", "--", "true"]);
    let ps = env.json(&["ps", "--all", "--json"])["ves"].clone();
    let ids: Vec<u64> = ps
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["ve"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![1, 2, 3]);
    assert!(!env.home().join("ve/2").exists() && !env.home().join("ve/1").exists());
    assert!(env.home().join("ve/3/dirties").exists());
    let err = env.fails(&["inspect", "2"]);
    assert!(err.contains("removed"), "{err}");
    env.assert_clean();
}

#[test]
fn root_maintenance_publishes_a_new_version() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    // A VE of version 1 that is running while the update happens.
    let a = env.spawn_until_go("true", "cat /opt/marker 2>/dev/null || echo absent");
    // A failing maintenance command publishes nothing.
    let o = env.jcs(&[
        "app",
        "update",
        "web",
        "--net",
        "none",
        "--",
        "/bin/sh",
        "-c",
        "mkdir /opt; echo bad > /opt/marker; exit 4",
    ]);
    assert_eq!(o.status.code(), Some(4));
    assert_eq!(
        env.json(&["app", "show", "web", "--json"])["versions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    env.ok(&[
        "app",
        "update",
        "web",
        "--net",
        "none",
        "--",
        "/bin/sh",
        "-c",
        "mkdir -p /opt && echo v2 > /opt/marker && rm /usr/bin/vi",
    ]);
    let show = env.json(&["app", "show", "web", "--json"]);
    assert_eq!(show["versions"].as_array().unwrap().len(), 2);
    assert_eq!(
        std::fs::read_to_string(env.home().join("apps/web/2/opt/marker")).unwrap(),
        "v2\n"
    );
    // The running VE keeps version 1.
    env.go();
    let o = a.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "absent\n");
    // A new VE gets version 2, with the deletion applied.
    let out = env.sh_ok("cat /opt/marker; [ -e /usr/bin/vi ] && echo vi || echo no-vi");
    assert_eq!(out, "v2\nno-vi\n");
    let ps = env.json(&["ps", "--all", "--json"])["ves"].clone();
    let last = ps.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["app_version"], 2);
    // The maintenance VE's report shows what it changed in the new layer.
    let maint = ps
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["kind"] == "maintenance" && v["exit_code"] == 0)
        .unwrap();
    let r = env.json(&["inspect", &maint["ve"].to_string(), "--json"]);
    let kinds: Vec<(String, String)> = r["dirties"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["path"].as_str().unwrap().into(),
                e["kind"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        kinds.contains(&("/opt/marker".into(), "added".into())),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("/usr/bin/vi".into(), "deleted".into())),
        "{kinds:?}"
    );
    env.assert_clean();
}

#[test]
fn root_limits_apply() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let o = env.jcs(&[
        "run",
        "web",
        "--pids",
        "4",
        "--",
        "/bin/sh",
        "-c",
        "for i in 1 2 3 4 5 6; do sleep 1 & done; wait; echo end",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("can't fork") || err.contains("Resource temporarily unavailable"),
        "pids limit not applied: {err}"
    );
    // The memory limit is visible on the host while the VE runs.
    let c = env
        .cmd(&[
            "run",
            "web",
            "--memory",
            "64M",
            "--",
            "/bin/sh",
            "-c",
            "touch /data/up; sleep 30",
        ])
        .spawn()
        .unwrap();
    let persist = env.home().join("persist/web/data");
    assert!(wait_for(10, || persist.join("up").exists()));
    let name = format!("{}-2", env.store_id());
    let v1 = std::path::Path::new("/sys/fs/cgroup/memory/jcs")
        .join(&name)
        .join("memory.limit_in_bytes");
    let v2 = std::path::Path::new("/sys/fs/cgroup/jcs")
        .join(&name)
        .join("memory.max");
    let limit = std::fs::read_to_string(&v1)
        .or_else(|_| std::fs::read_to_string(&v2))
        .unwrap();
    assert_eq!(limit.trim(), (64u64 << 20).to_string());
    // SIGTERM to jcs run tears the VE down.
    // SAFETY: signal to the jcs run this test started.
    unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
    let mut c = c;
    let st = c.wait().unwrap();
    assert_eq!(st.code(), Some(143));
    let ps = env.json(&["ps", "--all", "--json"])["ves"].clone();
    assert_eq!(ps[1]["exit_code"], 143);
    assert_eq!(ps[1]["state"], "exited");
    env.assert_clean();
}

#[test]
fn root_rm_refuses_a_running_ve() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let c = env.spawn_until_go("true", "true");
    let err = env.fails(&["rm", "1"]);
    assert!(err.contains("VE 1 is running"), "{err}");
    let gc = env.json(&["gc", "--json"]);
    assert_eq!(gc["running"][0], 1);
    assert!(env.home().join("ve/1/dirties").exists());
    let ps = env.ok(&["ps"]);
    assert!(ps.lines().nth(1).unwrap().contains("running"), "{ps}");
    env.go();
    assert!(c.wait_with_output().unwrap().status.success());
    let gc = env.json(&["gc", "--json"]);
    assert_eq!(gc["removed"][0], 1);
    assert!(!env.home().join("ve/1").exists());
    env.assert_clean();
}

#[test]
fn root_templates_from_tar_and_dir_and_versions() {
    let Some(env) = Env::new() else { return };
    env.ok(&["template", "create", "bb", "--busybox"]);
    let src = env.home().join("templates/bb/1");
    let tar = env.home().join("rootfs.tar");
    let st = std::process::Command::new("tar")
        .arg("-cf")
        .arg(&tar)
        .arg("-C")
        .arg(&src)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    env.ok(&[
        "template",
        "create",
        "fromtar",
        "--from-tar",
        tar.to_str().unwrap(),
    ]);
    env.ok(&[
        "template",
        "create",
        "fromdir",
        "--from-dir",
        src.to_str().unwrap(),
    ]);
    // A second create of the same name is its next version.
    env.ok(&[
        "template",
        "create",
        "fromdir",
        "--from-dir",
        src.to_str().unwrap(),
    ]);
    let list = env.json(&["template", "list", "--json"])["templates"].clone();
    let rows: Vec<(String, u64)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().into(),
                r["version"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("bb".into(), 1),
            ("fromdir".into(), 1),
            ("fromdir".into(), 2),
            ("fromtar".into(), 1)
        ]
    );
    env.ok(&[
        "app",
        "create",
        "a",
        "--template",
        "fromtar",
        "--cmd",
        "/bin/sh",
        "-c",
        "echo from-tar",
    ]);
    assert_eq!(env.ok(&["run", "a"]), "from-tar\n");
    env.ok(&[
        "app",
        "create",
        "b",
        "--template",
        "fromdir:1",
        "--cmd",
        "/bin/sh",
        "-c",
        "echo from-dir",
    ]);
    assert_eq!(
        env.json(&["app", "show", "b", "--json"])["app"]["template_version"],
        1
    );
    assert_eq!(env.ok(&["run", "b"]), "from-dir\n");
    // A version an app does not use can go; the one it uses cannot.
    env.ok(&["template", "rm", "fromdir", "--version", "2"]);
    let e = env.fails(&["template", "rm", "fromdir", "--version", "1"]);
    assert!(e.contains("used by app(s) b"), "{e}");
    env.assert_clean();
}

#[test]
fn root_killed_jcs_run_takes_its_ve_along_and_gc_cleans_up() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let mut c = env.spawn_until_go("true", "true");
    assert_eq!(env.json(&["ps", "--json"])["ves"][0]["state"], "running");
    // SAFETY: SIGKILL to the jcs run this test started.
    unsafe { libc::kill(c.id() as i32, libc::SIGKILL) };
    c.wait().unwrap();
    // The VE's init dies with its parent (PR_SET_PDEATHSIG), and the pid namespace with it.
    let procs = || {
        env.cgroups()
            .iter()
            .filter(|p| {
                p.starts_with("/sys/fs/cgroup/unified")
                    || p.parent() == Some(std::path::Path::new("/sys/fs/cgroup/jcs"))
            })
            .map(|p| std::fs::read_to_string(p.join("cgroup.procs")).unwrap_or_default())
            .collect::<String>()
    };
    assert!(
        wait_for(10, || procs().trim().is_empty()),
        "VE processes survived: {}",
        procs()
    );
    let ps = env.json(&["ps", "--all", "--json"])["ves"].clone();
    assert_eq!(ps[0]["state"], "lost");
    assert!(
        !env.cgroups().is_empty(),
        "the cgroup of a lost VE stays until gc"
    );
    let gc = env.json(&["gc", "--json"]);
    assert_eq!(gc["removed"][0], 1);
    assert_eq!(
        env.json(&["ps", "--all", "--json"])["ves"][0]["state"],
        "lost"
    );
    env.assert_clean();
}

/// A VE whose `jcs run` was killed and that `jcs gc` keeps as evidence (its integrity report
/// flags a write into the system's directories) still has its cgroup removed by gc, and is
/// lost; its dirties stay.
#[test]
fn root_gc_cleans_up_after_a_killed_run_it_keeps_as_evidence() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let mut c = env.spawn_until_go("echo evil > /bin/evil", "true");
    // SAFETY: SIGKILL to the jcs run this test started.
    unsafe { libc::kill(c.id() as i32, libc::SIGKILL) };
    c.wait().unwrap();
    assert!(
        !env.cgroups().is_empty(),
        "the lost VE's cgroup is there before gc"
    );
    let gc = env.json(&["gc", "--json"]);
    assert_eq!(gc["removed"], serde_json::json!([]), "{gc}");
    assert_eq!(gc["flagged"][0][0], 1, "{gc}");
    assert!(
        env.cgroups().is_empty(),
        "gc left the cgroup of a VE it keeps: {:?}",
        env.cgroups()
    );
    assert_eq!(
        env.json(&["ps", "--all", "--json"])["ves"][0]["state"],
        "lost"
    );
    assert!(env.home().join("ve/1/dirties/bin/evil").exists());
    env.ok(&["rm", "1"]);
    env.assert_clean();
}

#[test]
fn root_gc_removes_what_killed_builds_left() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    // A template build whose process is gone (pid 0x7fffffff cannot exist), a finished app
    // update's layer, and one of a live process (this test) that must stay.
    let dead = env.home().join("templates/bb/.2.partial-2147483647");
    let update = env.home().join("apps/web/.2.partial");
    let live = env
        .home()
        .join(format!("templates/bb/.3.partial-{}", std::process::id()));
    for d in [&dead, &update, &live] {
        std::fs::create_dir_all(d.join("etc")).unwrap();
    }
    let gc = env.json(&["gc", "--json"]);
    assert_eq!(gc["partials"].as_array().unwrap().len(), 2, "{gc}");
    assert!(!dead.exists() && !update.exists());
    assert!(live.exists(), "a build in progress was removed");
    assert!(env.home().join("templates/bb/1/bin/busybox").exists());
    std::fs::remove_dir_all(&live).unwrap();
    env.assert_clean();
}

/// SIGTERM to `jcs run` at any moment of the VE's start ends the VE at once: one that came
/// while `jcs run` was between two blocking calls (its handler ran, no call was interrupted)
/// used to leave the VE running to its end. Each attempt must end within seconds, not the 20 s
/// the VE would sleep; nothing of a VE stays.
#[test]
fn root_a_signal_during_the_start_ends_the_ve() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    env.sh_ok("true");
    for delay_ms in (0..64).step_by(4) {
        let mut c = env
            .sh_cmd("sleep 20")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let t = std::time::Instant::now();
        // SAFETY: signal to the jcs run this test started.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let st = loop {
            if let Some(st) = c.try_wait().unwrap() {
                break st;
            }
            if t.elapsed() > std::time::Duration::from_secs(8) {
                let _ = c.kill();
                panic!("SIGTERM {delay_ms} ms into the start: jcs run still runs 8 s later");
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        // Ended by the VE's teardown (143), or by the signal itself when it came before
        // jcs run handled it.
        use std::os::unix::process::ExitStatusExt;
        assert!(
            st.code() == Some(143) || st.signal() == Some(libc::SIGTERM),
            "{delay_ms} ms: {st:?}"
        );
    }
    env.ok(&["gc"]);
    env.assert_clean();
}

/// SIGTERM, SIGINT (Ctrl-C without -t) or SIGHUP to `jcs run` reach the app first, as they
/// would reach a program run without JCS: an app that handles it shuts down cleanly and its
/// status is `jcs run`'s; one that ignores it is killed after `--stop-timeout`; a second
/// signal kills the VE at once.
#[test]
fn root_a_signal_to_jcs_run_reaches_the_app_first() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let data = env.home().join("persist/web/data");
    let start = |script: &str, extra: &[&str]| {
        let _ = std::fs::remove_file(data.join("up"));
        let mut args = vec!["run"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["web", "--", "/bin/sh", "-c", script]);
        let c = env
            .cmd(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        assert!(
            wait_for(10, || data.join("up").exists()),
            "{script}: not up"
        );
        c
    };
    let signal = |c: &std::process::Child, sig: i32| {
        // SAFETY: a signal to the jcs run this test started, by its pid.
        assert_eq!(unsafe { libc::kill(c.id() as i32, sig) }, 0);
    };
    let ended = |c: &mut std::process::Child, secs: u64| {
        let t = std::time::Instant::now();
        let mut st = None;
        wait_for(secs, || {
            st = c.try_wait().unwrap();
            st.is_some()
        });
        (st.and_then(|s| s.code()), t.elapsed())
    };
    for (sig, name) in [
        (libc::SIGTERM, "TERM"),
        (libc::SIGINT, "INT"),
        (libc::SIGHUP, "HUP"),
    ] {
        let mut c = start(
            &format!(
                "trap 'echo {name} > /data/bye; exit 3' {name}; touch /data/up; while :; do sleep 0.05; done"
            ),
            &[],
        );
        signal(&c, sig);
        let (code, took) = ended(&mut c, 10);
        assert_eq!(
            code,
            Some(3),
            "SIG{name}: the app's own exit status ({took:?})"
        );
        assert_eq!(
            std::fs::read_to_string(data.join("bye")).unwrap(),
            format!("{name}\n"),
            "SIG{name}: the app's handler ran"
        );
    }
    // An app that ignores it: killed after the stop timeout, with the signal's status.
    let mut c = start(
        "trap '' TERM; touch /data/up; while :; do sleep 0.05; done",
        &["--stop-timeout", "1"],
    );
    signal(&c, libc::SIGTERM);
    let (code, took) = ended(&mut c, 10);
    assert_eq!(code, Some(143));
    assert!(
        took >= std::time::Duration::from_millis(900) && took < std::time::Duration::from_secs(5),
        "{took:?}"
    );
    // A second signal: at once, whatever the timeout.
    let mut c = start(
        "trap 'echo once >> /data/count' INT; touch /data/up; while :; do sleep 0.05; done",
        &[],
    );
    signal(&c, libc::SIGINT);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        c.try_wait().unwrap().is_none(),
        "a handled SIGINT ended the VE"
    );
    signal(&c, libc::SIGINT);
    let (code, took) = ended(&mut c, 5);
    assert_eq!(code, Some(130), "{took:?}");
    assert_eq!(
        std::fs::read_to_string(data.join("count")).unwrap(),
        "once\n"
    );
    env.assert_clean();
}

/// A VE of an app without storage has no storage report: no `storage.json` is written at its
/// end, and `jcs inspect` says nothing is missing (no storage changes, no note about them).
#[test]
fn root_a_ve_without_storage_has_no_storage_report() {
    let Some(env) = Env::new() else { return };
    env.ok(&["template", "create", "bb", "--busybox"]);
    env.ok(&["app", "create", "plain", "--template", "bb"]);
    env.ok(&["run", "plain", "--", "/bin/sh", "-c", "echo x > /tmp/x"]);
    assert!(!env.home().join("ve/1/meta/storage.json").exists());
    assert!(env.home().join("ve/1/meta/ve.json").exists());
    let r = env.json(&["inspect", "1", "--json"]);
    assert_eq!(r["storage"], serde_json::json!([]), "{r}");
    assert!(r["dirties"].to_string().contains("/tmp/x"), "{r}");
    assert!(!r["notes"].to_string().contains("storage"), "{r}");
    env.assert_clean();
}

/// The app of a VE (and a `jcs exec` command) starts with the signal dispositions of whoever
/// ran jcs, not jcs's own: SIGPIPE is not ignored (Rust's runtime ignores it in jcs; `yes |
/// head` in a VE must end `yes` by the signal, silently), and a signal jcs was started
/// ignoring (`nohup`'s SIGHUP) stays ignored in the app and is not passed on to it.
#[test]
fn root_the_app_gets_the_callers_signal_dispositions() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let ignored = |out: &str| -> u64 {
        let line = out
            .lines()
            .find(|l| l.starts_with("SigIgn:"))
            .unwrap_or_else(|| panic!("no SigIgn in {out:?}"));
        // (The standard signals: glibc's own real-time ones, 32 and 33, vary with how a
        // process was spawned.)
        u64::from_str_radix(line.trim_start_matches("SigIgn:").trim(), 16).unwrap() & 0x7fff_ffff
    };
    let pipe_bit = 1u64 << (libc::SIGPIPE - 1);
    let hup_bit = 1u64 << (libc::SIGHUP - 1);
    // What jcs gets from this test (std's Command gives children SIGPIPE's default; the rest
    // of this process's dispositions pass through exec).
    let callers = ignored(&std::fs::read_to_string("/proc/self/status").unwrap()) & !pipe_bit;
    let o = env.sh("grep SigIgn /proc/self/status; yes | head -c 1 > /dev/null");
    assert!(o.status.success(), "{o:?}");
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(ignored(&out), callers, "the app's ignored signals: {out}");
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!err.contains("Broken pipe"), "yes saw EPIPE: {err}");
    // jcs exec's command too.
    let child = env.spawn_until_go("true", "true");
    let out = env.ok(&[
        "exec",
        "2",
        "--",
        "/bin/sh",
        "-c",
        "grep SigIgn /proc/self/status",
    ]);
    assert_eq!(
        ignored(&out) & pipe_bit,
        0,
        "the exec'd command ignores SIGPIPE: {out}"
    );
    env.go();
    assert!(child.wait_with_output().unwrap().status.success());
    // nohup: SIGHUP ignored by the caller stays ignored in the app, and is not passed on.
    let data = env.home().join("persist/web/data");
    let mut c = env.sh_cmd(
        "grep SigIgn /proc/self/status > /data/ign; touch /data/hup-up; sleep 1; echo alive > /data/alive",
    );
    c.stdout(Stdio::null()).stderr(Stdio::null());
    common::ignoring(&mut c, libc::SIGHUP);
    let mut c = c.spawn().unwrap();
    assert!(wait_for(10, || data.join("hup-up").exists()));
    // SAFETY: a signal to the jcs run this test started.
    unsafe { libc::kill(c.id() as i32, libc::SIGHUP) };
    assert_eq!(c.wait().unwrap().code(), Some(0));
    assert_eq!(
        std::fs::read_to_string(data.join("alive")).unwrap(),
        "alive\n"
    );
    let ign = ignored(&std::fs::read_to_string(data.join("ign")).unwrap());
    assert_eq!(
        ign,
        callers | hup_bit,
        "the app ignores SIGHUP as well: {ign:x}"
    );
    // SIGCHLD ignored by the caller (its children reaped by the kernel): jcs, the VE's init and
    // jcs exec still learn their children's status; the app and the command get it ignored.
    let chld_bit = 1u64 << (libc::SIGCHLD - 1);
    let ignoring_chld = |args: &[&str]| {
        let mut c = env.cmd(args);
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        common::ignoring(&mut c, libc::SIGCHLD);
        let mut c = c.spawn().unwrap();
        let mut st = None;
        wait_for(20, || {
            st = c.try_wait().unwrap();
            st.is_some()
        });
        if st.is_none() {
            c.kill().unwrap();
            panic!("{args:?} with SIGCHLD ignored: still running 20 s later");
        }
        let o = c.wait_with_output().unwrap();
        (
            o.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        )
    };
    // Any jcs command that waits for a child (busybox --list-full here).
    let (code, out) = ignoring_chld(&["template", "create", "bb2", "--busybox"]);
    assert_eq!(code, Some(0), "{out}");
    // (The app itself reads its status: a shell would put SIGCHLD's default back.)
    let (code, out) = ignoring_chld(&["run", "web", "--", "grep", "SigIgn", "/proc/self/status"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(ignored(&out), callers | chld_bit, "{out}");
    let (code, out) = ignoring_chld(&["run", "web", "--", "/bin/sh", "-c", "exit 7"]);
    assert_eq!(code, Some(7), "{out}");
    // (The first VE's go is still there.)
    std::fs::remove_file(data.join("go")).unwrap();
    let child = env.spawn_until_go("true", "true");
    let (code, out) = ignoring_chld(&["exec", "6", "--", "grep", "SigIgn", "/proc/self/status"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(ignored(&out) & chld_bit, chld_bit, "{out}");
    let (code, out) = ignoring_chld(&["exec", "6", "--", "/bin/sh", "-c", "exit 5"]);
    assert_eq!(code, Some(5), "{out}");
    env.go();
    assert!(child.wait_with_output().unwrap().status.success());
    env.assert_clean();
}

/// SIGKILL of `jcs run` at any moment of the start leaves no process of it behind: not the
/// helper that makes the VE's network namespace (it shares `jcs run`'s memory, so it shows
/// the same command line), not the VE's init or app (all die with `jcs run`).
#[test]
fn root_a_killed_start_leaves_no_process() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    env.sh_ok("true");
    let marker = format!("sleep 21.{}", std::process::id());
    let survivors = || processes_with(&marker);
    for delay_ms in 0..60 {
        let mut c = env
            .sh_cmd(&marker)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        c.kill().unwrap();
        c.wait().unwrap();
        assert!(
            wait_for(5, || survivors().is_empty()),
            "SIGKILL {delay_ms} ms into the start left: {:?}",
            survivors()
        );
    }
    env.ok(&["gc"]);
}

/// `jcs gc` removes the storage listings the store kept (`cache/names/`) of directories no
/// app has as existing storage any more (and unfinished writes of them), never a live one's;
/// `--dry-run` only names them.
#[test]
fn root_gc_removes_kept_names_no_storage_has() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    env.sh_ok("echo x > /data/f");
    let cache = env.home().join("cache/names");
    let kept = || {
        let mut v: Vec<std::path::PathBuf> = std::fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v
    };
    let live = kept();
    // (web's /data and its shared directory)
    assert!(!live.is_empty(), "no storage listing was kept");
    let stale = [
        cache.join("0123456789abcdef"),
        cache.join("0123456789abcdef.77.tmp"),
    ];
    for f in &stale {
        std::fs::write(f, b"JCSNAMES1\n").unwrap();
    }
    let dry = env.json(&["gc", "--dry-run", "--json"]);
    let named: Vec<String> = dry["stale_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let want: Vec<String> = stale.iter().map(|p| p.display().to_string()).collect();
    assert_eq!(named, want, "{dry}");
    assert_eq!(kept().len(), live.len() + 2, "a dry run removed something");
    let gc = env.json(&["gc", "--json"]);
    assert_eq!(gc["stale_names"].as_array().unwrap().len(), 2, "{gc}");
    assert_eq!(
        kept(),
        live,
        "the live app's listing was removed, or a stale one kept"
    );
    // The storage directory deleted by hand: its listing goes too, the other stays.
    std::fs::remove_dir_all(env.home().join("persist/web/data")).unwrap();
    let gc = env.json(&["gc", "--json"]);
    assert_eq!(gc["stale_names"].as_array().unwrap().len(), 1, "{gc}");
    assert_eq!(kept().len(), live.len() - 1);
}

/// `jcs run --id-file FILE` writes the VE's id before the command starts; an existing file is
/// refused before anything is created.
#[test]
fn root_run_writes_its_ve_id_to_the_id_file() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let f = env.home().join("ve-id");
    let o = env.jcs(&[
        "run",
        "web",
        "--id-file",
        f.to_str().unwrap(),
        "--",
        "/bin/sh",
        "-c",
        "echo $JCS_VE",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let id = std::fs::read_to_string(&f).unwrap();
    assert_eq!(
        id,
        String::from_utf8_lossy(&o.stdout),
        "the file names the VE that ran"
    );
    let e = env.fails(&["run", "web", "--id-file", f.to_str().unwrap(), "--", "true"]);
    assert!(e.contains("exists"), "{e}");
    assert_eq!(
        env.json(&["ps", "--all", "--json"])["ves"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    env.assert_clean();
}

/// `jcs run -d`: the id is printed once the VE runs (jcs ps lists it), its output goes to a log
/// that `jcs logs --follow` prints to its end; `jcs stop` ends it; a command that cannot run is
/// reported by `run -d` itself; a VE not started detached has no log, and says so.
#[test]
fn root_a_detached_run_prints_its_id_and_keeps_its_output() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let id = env.ok(&[
        "run",
        "-d",
        "web",
        "--",
        "/bin/sh",
        "-c",
        "echo out; echo err >&2; sleep 1; echo end",
    ]);
    let id = id.trim().to_string();
    let ps = env.json(&["ps", "--json"])["ves"].clone();
    assert!(
        ps.as_array()
            .unwrap()
            .iter()
            .any(
                |v| v["ve"].as_u64().map(|n| n.to_string()) == Some(id.clone())
                    && v["state"] == "running"
            ),
        "{ps}"
    );
    let out = env.ok(&["logs", &id, "--follow"]);
    assert!(
        out.contains("out\n") && out.contains("err\n") && out.ends_with("end\n"),
        "{out}"
    );
    // Stopped while it runs.
    let id2 = env.ok(&[
        "run",
        "-d",
        "web",
        "--",
        "/bin/sh",
        "-c",
        "echo up; sleep 600",
    ]);
    let id2 = id2.trim().to_string();
    env.ok(&["stop", &id2, "--timeout", "1"]);
    assert!(common::wait_for(20, || {
        env.json(&["ps", "--json"])["ves"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["ve"].as_u64().map(|n| n.to_string()) != Some(id2.clone()))
    }));
    assert!(env.ok(&["logs", &id2]).contains("up"));
    // A command that cannot run: the detached run says so, with the run's status.
    let o = env
        .cmd(&["run", "-d", "web", "--", "/nonexistent"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&o.stderr).contains("command not found"));
    // An ordinary run has no log.
    env.sh_ok("true");
    let last = env.json(&["ps", "--all", "--json"])["ves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["ve"].as_u64().unwrap())
        .max()
        .unwrap();
    assert!(env
        .fails(&["logs", &last.to_string()])
        .contains("only a VE started with jcs run -d"));
    assert!(env.fails(&["logs", "999"]).contains("unknown VE 999"));
    env.assert_clean();
}

/// The VE's /etc/hosts names it (its hostname resolves), in a branch of its own above the
/// template's: nothing is written into the VE's dirties unless the VE changes it, and `jcs
/// inspect` does not report it as the VE's change unless the VE changed it.
#[test]
fn root_etc_hosts_names_the_ve_and_is_not_its_change() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    // (ping's first line shows the name resolved, whether or not it may send.)
    let out = env.sh_ok("cat /etc/hosts; ping -c1 -W1 $(hostname) 2>&1 | head -1; true");
    assert!(
        out.contains("localhost") && out.contains("\tve-1\n"),
        "{out}"
    );
    assert!(out.contains("PING ve-1 (127.0.1.1)"), "{out}");
    let r = env.json(&["inspect", "1", "--json"]);
    assert!(
        !r["dirties"].to_string().contains("/etc/hosts"),
        "JCS's file is not the VE's change: {r}"
    );
    assert!(r["notes"].to_string().contains("/etc/hosts"), "{r}");
    let dirties = |ve: u32| env.home().join(format!("ve/{ve}/dirties"));
    assert!(
        !dirties(1).join("etc").exists(),
        "nothing of JCS's in the dirties"
    );
    // The rest of the template's /etc is there.
    assert!(env.sh_ok("cat /etc/passwd").starts_with("root:"));
    // Changed by the VE: its change, in its dirties.
    env.sh_ok("echo '10.0.0.9 db' >> /etc/hosts");
    let r = env.json(&["inspect", "3", "--json"]);
    assert!(r["dirties"].to_string().contains("/etc/hosts"), "{r}");
    let kept = std::fs::read_to_string(dirties(3).join("etc/hosts")).unwrap();
    assert!(
        kept.contains("\tve-3\n") && kept.ends_with("10.0.0.9 db\n"),
        "{kept}"
    );
    // Its /etc changed (a file made there), its /etc/hosts not: only the new file is its.
    env.sh_ok("echo x > /etc/new.conf");
    let r = env.json(&["inspect", "4", "--json"]);
    let d = r["dirties"].to_string();
    assert!(
        d.contains("/etc/new.conf") && !d.contains("/etc/hosts"),
        "{r}"
    );
    env.assert_clean();
}

/// `--user USER[:GROUP]`: names from the VE's own /etc/passwd, numbers as given; the command
/// runs with those ids and no capabilities, so what root may do in the VE it may not (the
/// control: the same write as root succeeds); an unknown name stops the start, clearly.
#[test]
fn root_run_as_another_user() {
    use std::os::unix::fs::MetadataExt;
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let data = env.home().join("persist/web/data");
    std::fs::create_dir_all(data.join("open")).unwrap();
    std::fs::set_permissions(
        data.join("open"),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let script = "id; grep CapEff /proc/self/status; echo x > /data/root-only && echo wrote-root; \
                  echo y > /data/open/mine && echo wrote-open";
    let root = env.sh_ok(script);
    assert!(
        root.contains("uid=0(root)") && root.contains("wrote-root"),
        "{root}"
    );
    std::fs::remove_file(data.join("open/mine")).unwrap();
    let o = env
        .cmd(&[
            "run", "web", "--user", "nobody", "--", "/bin/sh", "-c", script,
        ])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.starts_with("uid=65534(nobody) gid=65534"), "{out}");
    assert!(out.contains("CapEff:\t0000000000000000"), "{out}");
    assert!(
        !out.contains("wrote-root") && out.contains("wrote-open"),
        "{out} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        std::fs::metadata(data.join("open/mine")).unwrap().uid(),
        65534
    );
    std::fs::remove_file(data.join("open/mine")).unwrap();
    env.ok(&[
        "run",
        "web",
        "-u",
        "1234:55",
        "--",
        "/bin/sh",
        "-c",
        "echo z > /data/open/num",
    ]);
    let m = std::fs::metadata(data.join("open/num")).unwrap();
    assert_eq!((m.uid(), m.gid()), (1234, 55));
    let e = env.fails(&["run", "web", "--user", "ghost", "--", "true"]);
    assert!(
        e.contains("no user \"ghost\" in the VE's /etc/passwd"),
        "{e}"
    );
    assert!(env
        .fails(&["run", "web", "--user", "a:b:c", "--", "true"])
        .contains("--user"));
    env.assert_clean();
}

/// `-e KEY=VALUE` (and `-e KEY`: this process's value) and `-w DIR` (made when missing), as
/// docker has them; bad ones refused before anything is created.
#[test]
fn root_run_sets_environment_and_working_directory() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let o = env
        .cmd(&[
            "run",
            "web",
            "-e",
            "FOO=bar baz",
            "-e",
            "FROM_HOST",
            "-e",
            "HOME=/data",
            "-w",
            "/srv/app/work",
            "--",
            "/bin/sh",
            "-c",
            "echo \"$FOO|$FROM_HOST|$HOME\"; pwd",
        ])
        .env("FROM_HOST", "host-value")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "bar baz|host-value|/data\n/srv/app/work\n"
    );
    for (args, want) in [
        (&["run", "web", "-e", "=x", "--", "true"][..], "--env"),
        (&["run", "web", "-w", "rel/dir", "--", "true"], "--workdir"),
        (&["run", "web", "-w", "/a/../b", "--", "true"], "--workdir"),
    ] {
        let e = env.fails(args);
        assert!(e.contains(want), "{args:?}: {e}");
    }
    assert_eq!(
        env.json(&["ps", "--all", "--json"])["ves"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    env.assert_clean();
}

/// A detached VE's output log is capped (JCS_LOGS_MAX): past the cap its older half goes, and
/// a line says how much; the newest output is all there. Control: under the default cap the
/// same output is kept whole.
#[test]
fn root_a_detached_ves_output_log_is_capped() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let script = "i=0; while [ $i -lt 2000 ]; do echo line-$i-xxxxxxxxxxxx; i=$((i+1)); done";
    let run = |max: Option<&str>| -> String {
        let mut c = env.cmd(&["run", "-d", "web", "--", "/bin/sh", "-c", script]);
        if let Some(m) = max {
            c.env("JCS_LOGS_MAX", m);
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
        let log = env.home().join(format!("ve/{id}/output.log"));
        // Until the VE has ended and its writer has the last line.
        assert!(common::wait_for(20, || std::fs::read_to_string(&log)
            .is_ok_and(|t| t.ends_with("line-1999-xxxxxxxxxxxx\n"))));
        std::fs::read_to_string(&log).unwrap()
    };
    let whole = run(None);
    assert_eq!(whole.lines().count(), 2000);
    assert!(whole.starts_with("line-0-"));
    let capped = run(Some("8K"));
    assert!(capped.len() <= 8192 + 100, "{} bytes", capped.len());
    let first = capped.lines().next().unwrap();
    assert!(first.contains("bytes of earlier output dropped"), "{first}");
    assert!(!capped.contains("line-0-"));
    // `jcs logs` prints it.
    let id = env.json(&["ps", "--all", "--json"])["ves"][1]["ve"].to_string();
    assert_eq!(env.ok(&["logs", &id]), capped);
    env.assert_clean();
}

/// `--env-file`: KEY=VALUE lines (comments, blank lines skipped; KEY alone: the caller's
/// value), overridden by -e; a bad line is one error naming the file and line.
#[test]
fn root_run_reads_env_files() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let f = env.home().join("vars.env");
    std::fs::write(&f, "# settings\nA=from file\n\nB=file\nFROM_HOST\nEMPTY=\n").unwrap();
    let fs = f.to_str().unwrap();
    let o = env
        .cmd(&[
            "run",
            "web",
            "--env-file",
            fs,
            "-e",
            "B=flag",
            "--",
            "/bin/sh",
            "-c",
            "echo \"$A|$B|$FROM_HOST|${EMPTY-unset}|\"",
        ])
        .env("FROM_HOST", "host-value")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "from file|flag|host-value||\n"
    );
    std::fs::write(&f, "OK=1\n=bad\n").unwrap();
    let e = env.fails(&["run", "web", "--env-file", fs, "--", "true"]);
    assert!(e.contains("line 2"), "{e}");
    let e = env.fails(&["run", "web", "--env-file", "/nonexistent.env", "--", "true"]);
    assert!(e.contains("/nonexistent.env"), "{e}");
    env.assert_clean();
}

/// `--rm-dirties` (docker's --rm): a VE's dirties and metadata go once it ends, like `jcs rm`;
/// a VE whose integrity report flags something keeps them (evidence), and says so; the
/// journal keeps what both did.
#[test]
fn root_rm_dirties_removes_all_but_evidence() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    // Control: without the flag the dirties stay.
    env.sh_ok("echo plain > /tmp/plain");
    assert!(env.home().join("ve/1/dirties/tmp/plain").exists());
    let o = env.jcs(&[
        "run",
        "--rm-dirties",
        "web",
        "--",
        "/bin/sh",
        "-c",
        "echo plain > /tmp/plain",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!env.home().join("ve/2").exists(), "dirties left");
    let ps = env.json(&["ps", "--all", "--json"])["ves"].clone();
    assert_eq!(ps[1]["removed"], true, "{ps}");
    let o = env.jcs(&[
        "run",
        "--rm-dirties",
        "web",
        "--",
        "/bin/sh",
        "-c",
        "echo tool > /tmp/tool && chmod +x /tmp/tool; exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3), "the command's status");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("kept VE 3") && err.contains("/tmp/tool"),
        "{err}"
    );
    assert!(env.home().join("ve/3/dirties/tmp/tool").exists());
    // The journal still has what the removed VE did.
    assert!(!env.log(2).is_empty());
    env.assert_clean();
}

/// `jcs gc` keeps evidence: the dirties of a VE whose integrity report flags something (an
/// executable, a system path) stay unless `--include-flagged`; `--dry-run` removes nothing and
/// says what it would; `--older-than` spares recent VEs.
#[test]
fn root_gc_keeps_flagged_dirties_and_dry_runs() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    env.sh_ok("echo plain > /tmp/plain");
    env.sh_ok("echo tool > /tmp/tool && chmod +x /tmp/tool");
    env.sh_ok("echo evil > /etc/evil");
    let ids = |v: &serde_json::Value| -> Vec<u64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().or_else(|| x[0].as_u64()).unwrap())
            .collect()
    };
    let dry = env.json(&["gc", "--dry-run", "--json"]);
    assert_eq!(ids(&dry["removed"]), [1], "{dry}");
    assert_eq!(ids(&dry["flagged"]), [2, 3], "{dry}");
    assert!(
        dry["flagged"][0][1].as_str().unwrap().contains("/tmp/tool"),
        "{dry}"
    );
    assert!(
        env.home().join("ve/1/dirties").exists(),
        "a dry run removed something"
    );
    let text = env.ok(&["gc", "--dry-run"]);
    assert!(text.contains("would remove VE(s): 1"), "{text}");
    let recent = env.json(&["gc", "--older-than", "1h", "--json"]);
    assert_eq!(ids(&recent["recent"]), [1, 2, 3], "{recent}");
    assert!(env.home().join("ve/1/dirties").exists());
    let gc = env.json(&["gc", "--json"]);
    assert_eq!(ids(&gc["removed"]), [1], "{gc}");
    assert!(!env.home().join("ve/1").exists());
    assert!(
        env.home().join("ve/2/dirties/tmp/tool").exists(),
        "evidence removed"
    );
    assert!(
        env.home().join("ve/3/dirties/etc/evil").exists(),
        "evidence removed"
    );
    let all = env.json(&["gc", "--include-flagged", "--json"]);
    assert_eq!(ids(&all["removed"]), [2, 3], "{all}");
    assert!(!env.home().join("ve/2").exists() && !env.home().join("ve/3").exists());
    env.assert_clean();
}

/// `jcs run -v HOST:PATH[:ro]`: a host directory mounted into one VE is storage like a shared
/// directory: what crosses it is recorded under `volume:HOST/…` and tracked; `:ro` is enforced
/// by the kernel; a volume may not overlap the app's storage, nor be (in) the store.
#[test]
fn root_volumes_are_recorded_storage() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let host = tempfile::Builder::new()
        .prefix("jcs-test-vol-")
        .tempdir()
        .unwrap();
    std::fs::write(host.path().join("in"), "host-secret\n").unwrap();
    let spec = format!("{}:/mnt/v", host.path().display());
    // Control: without the volume the VE does not see the directory.
    let o = env.jcs(&["run", "web", "--", "cat", "/mnt/v/in"]);
    assert!(!o.status.success());
    let out = env.ok(&[
        "run",
        "-v",
        &spec,
        "web",
        "--",
        "sh",
        "-c",
        "cat /mnt/v/in && echo from-ve > /mnt/v/out",
    ]);
    assert_eq!(out, "host-secret\n");
    assert_eq!(
        std::fs::read_to_string(host.path().join("out")).unwrap(),
        "from-ve\n"
    );
    let var = format!("volume:{}/out", host.path().display());
    let back = env.reached(&["back", &var]);
    assert!(back.contains(&"ve:2".to_string()), "{back:?}");
    assert!(back.iter().any(|v| v == "file:/mnt/v/in"), "{back:?}");
    // Read-only: the kernel refuses the write; the host directory is unchanged.
    let ro = format!("{spec}:ro");
    let o = env.jcs(&[
        "run",
        "-v",
        &ro,
        "web",
        "--",
        "sh",
        "-c",
        "echo x > /mnt/v/w",
    ]);
    assert!(!o.status.success());
    assert!(!host.path().join("w").exists());
    // Refused: overlapping the app's persistent /data, the store itself, a relative path.
    for (v, why) in [
        (format!("{}:/data/sub", host.path().display()), "overlaps"),
        (format!("{}:/mnt/s", env.home().display()), "JCS store"),
        ("tmp:/mnt/t".to_string(), "absolute"),
    ] {
        let e = env.fails(&["run", "-v", &v, "web", "--", "true"]);
        assert!(e.contains(why), "{v}: {e}");
    }
    env.assert_clean();
}

/// `jcs template import` of an OCI image layout and of a docker archive (built by
/// `tests/data/make-image.sh`): layers applied in order (a whiteout removes, an opaque
/// directory empties), the result runs as an app; a layer that writes through a symbolic link
/// pointing out of the image (absolute, or up with `..`) writes inside the template, never on
/// the host. Control: plain `tar -x` of the same layers writes the host's file.
#[test]
fn root_images_import_with_every_path_inside_the_template() {
    let Some(env) = Env::new() else { return };
    let work = tempfile::Builder::new()
        .prefix("jcs-test-img-")
        .tempdir()
        .unwrap();
    let esc = work.path().join("host-target");
    std::fs::create_dir(&esc).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/make-image.sh");
    let st = std::process::Command::new("sh")
        .arg(script)
        .arg(work.path().join("img"))
        .arg(&esc)
        .status()
        .unwrap();
    assert!(st.success());
    let img = work.path().join("img");
    // Control: GNU tar, layer after layer, follows the link onto the host.
    let scratch = work.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    for l in ["l1.tar", "l2.tar.gz"] {
        let _ = std::process::Command::new("tar")
            .arg("-xf")
            .arg(img.join(l))
            .arg("-C")
            .arg(&scratch)
            .stderr(std::process::Stdio::null())
            .status();
    }
    assert!(esc.join("pwned").exists(), "the control did not escape");
    std::fs::remove_file(esc.join("pwned")).unwrap();
    for (t, file) in [("oci", "oci.tar"), ("dock", "docker.tar")] {
        let out = env.ok(&["template", "import", t, img.join(file).to_str().unwrap()]);
        assert!(out.contains(&format!("template {t} version 1")), "{out}");
        let root = env.home().join(format!("templates/{t}/1"));
        let read = |p: &str| std::fs::read_to_string(root.join(p)).ok();
        assert_eq!(read("etc/x").as_deref(), Some("one\n"));
        assert_eq!(read("etc/y").as_deref(), Some("two\n"));
        assert!(read("etc/gone").is_none(), "the whiteout");
        assert!(read("opq/a").is_none(), "the opaque directory");
        assert_eq!(read("opq/b").as_deref(), Some("b\n"));
        // Written through the links: inside the template, where the links lead in it.
        let inside = root.join(esc.strip_prefix("/").unwrap());
        assert!(inside.join("pwned").exists(), "{}", inside.display());
        assert!(
            !esc.join("pwned").exists(),
            "{t}: a layer wrote on the host"
        );
        assert!(!std::path::Path::new(&format!("{}-up", esc.display())).exists());
    }
    env.ok(&["app", "create", "fromimg", "--template", "oci"]);
    let out = env.ok(&["run", "fromimg", "--", "sh", "-c", "cat /etc/y; ls /opq"]);
    assert_eq!(out, "two\nb\n");
    // Not an image: a clear error, no template.
    std::fs::write(work.path().join("junk.tar"), "junk").unwrap();
    let e = env.fails(&[
        "template",
        "import",
        "junk",
        work.path().join("junk.tar").to_str().unwrap(),
    ]);
    assert!(e.contains("not a readable tarball"), "{e}");
    assert!(!env.home().join("templates/junk/1").exists());
    env.assert_clean();
}

/// `jcs run --name`: every command that takes a VE takes its name; a name is unique among the
/// VEs not removed (`jcs rm` frees it); a name of digits only, or one in use, is refused.
#[test]
fn root_named_ves() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    env.ok(&[
        "run",
        "--name",
        "job-a",
        "web",
        "--",
        "sh",
        "-c",
        "echo a > /data/a",
    ]);
    let ps = env.json(&["ps", "--all", "--json"])["ves"].clone();
    assert_eq!(ps[0]["name"], "job-a", "{ps}");
    assert!(env.ok(&["ps", "--all"]).contains("job-a"));
    // By name: log, stats, inspect (and the id gives the same).
    let by_name = env.ok(&["log", "--ve", "job-a", "--json"]);
    assert_eq!(by_name, env.ok(&["log", "--ve", "1", "--json"]));
    assert!(by_name.contains("/data/a"));
    env.ok(&["stats", "--ve", "job-a"]);
    env.ok(&["inspect", "job-a"]);
    // In use: refused before a VE exists; digits only: refused.
    let e = env.fails(&["run", "--name", "job-a", "web", "--", "true"]);
    assert!(e.contains("in use by VE 1"), "{e}");
    let e = env.fails(&["run", "--name", "42", "web", "--", "true"]);
    assert!(e.contains("only digits"), "{e}");
    let e = env.fails(&["inspect", "nosuch"]);
    assert!(e.contains("unknown VE nosuch"), "{e}");
    assert_eq!(
        env.json(&["ps", "--all", "--json"])["ves"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Removed: the name is free again, and names the new VE.
    env.ok(&["rm", "job-a"]);
    env.ok(&["run", "--name", "job-a", "web", "--", "true"]);
    let ps = env.json(&["ps", "--all", "--json"])["ves"].clone();
    assert_eq!(ps[1]["name"], "job-a", "{ps}");
    assert_eq!(ps[1]["ve"], 2, "{ps}");
    env.ok(&["inspect", "job-a"]);
    env.assert_clean();
}

/// `jcs exec`: a new process in a running VE has exactly what the VE's own processes have
/// (namespaces, cgroup, capabilities, seccomp, no_new_privs, descriptors 0-2 only), and what it
/// does is recorded as the VE's. A VE that is not running is refused; an unknown command
/// exits 127.
/// `jcs exec -t` (the default on a terminal): the command's terminal is a pty of the VE's
/// own devpts, with the caller's window size and typed input, in a session of its own; the
/// caller's terminal is restored; with -T the command has no terminal.
#[test]
fn root_exec_on_a_terminal_gets_a_pty_of_the_ves() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let child = env.spawn_until_go("true", "true");
    let script = "tty; stty size; read x; echo got:$x";
    let cmd = env.cmd(&["exec", "1", "--", "/bin/sh", "-c", script]);
    let (status, text, restored) =
        common::drive_on_pty(cmd, (41, 97), "41 97", b"typed\r", "got:typed");
    assert!(status.success(), "{status}: {text:?}");
    assert!(text.contains("/dev/pts/"), "no pty: {text:?}");
    assert!(
        text.contains("41 97"),
        "the window size did not pass: {text:?}"
    );
    assert!(
        text.contains("got:typed"),
        "typed input did not arrive: {text:?}"
    );
    assert!(restored, "the caller's terminal is left in raw mode");
    // What crossed it is recorded as the user's terminal.
    let typed_in: u64 = env
        .log(1)
        .iter()
        .filter(|t| t["op"] == "read" && t["src"] == "host:pty")
        .map(|t| t["len"].as_u64().unwrap())
        .sum();
    assert!(
        typed_in >= "typed\n".len() as u64,
        "the typed line is not recorded"
    );
    // The pty is the VE's: its devpts lists it while the command runs.
    let cmd = env.cmd(&["exec", "1", "--", "/bin/sh", "-c", "ls /dev/pts; tty"]);
    let (status, text, _) = common::drive_on_pty(cmd, (24, 80), "\u{0}", b"", "/dev/pts/");
    assert!(status.success(), "{text:?}");
    let name = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("/dev/pts/"))
        .unwrap_or_else(|| panic!("{text:?}"))
        .to_string();
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().any(|w| w == name)),
        "pts {name} is not in the VE's /dev/pts: {text:?}"
    );
    // -T: no terminal, though this one is.
    let cmd = env.cmd(&["exec", "-T", "1", "--", "/bin/sh", "-c", "tty; echo done"]);
    let (status, text, _) = common::drive_on_pty(cmd, (24, 80), "\u{0}", b"", "done");
    assert!(!text.contains("/dev/pts/"), "{status} {text:?}");
    env.go();
    assert!(child.wait_with_output().unwrap().status.success());
    env.assert_clean();
}

/// `jcs exec` returns once what its command did is in the journal (as `jcs run` does): the
/// journal read right after it has the command's write, every time, while the VE runs on.
/// (Without the flush, the records reached the journal a batch later: 10 ms and more.)
#[test]
fn root_exec_returns_once_its_commands_records_are_in_the_journal() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let child = env.spawn_until_go("true", "true");
    for i in 0..8 {
        let file = format!("/data/exec-{i}");
        env.ok(&["exec", "1", "--", "sh", "-c", &format!("echo {i} > {file}")]);
        let name = format!("file:{file}");
        let written = env.log(1).iter().any(|t| {
            t["op"] == "write" && t["dst"] == name.as_str() && t["len"].as_u64() == Some(2)
        });
        assert!(
            written,
            "exec {i}: its write of {file} is not in the journal yet:\n{}",
            env.ok(&["log", "--ve", "1", "--json"])
        );
    }
    env.go();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    env.assert_clean();
}

#[test]
fn root_exec_joins_a_running_ve_with_its_restrictions() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let status = "grep -E '^(CapEff|CapBnd|CapPrm|Seccomp|NoNewPrivs):' /proc/self/status";
    let child = env.spawn_until_go(
        &format!("{status} > /data/own; hostname > /data/host"),
        "true",
    );
    let own = std::fs::read_to_string(data_dir(&env).join("own")).unwrap();
    // A descriptor of this process beyond 0-2 (inheritable: not close-on-exec) must not
    // reach the command.
    let dir = std::fs::File::open("/").unwrap();
    // SAFETY: dup of a descriptor this test owns; the copy has no close-on-exec flag.
    let extra = unsafe { libc::dup(std::os::fd::AsRawFd::as_raw_fd(&dir)) };
    assert!(extra > 2);
    let o = env
        .cmd(&[
            "exec",
            "1",
            "--",
            "sh",
            "-c",
            &format!("{status}; hostname; echo exec-secret > /data/e; ls /proc/self/fd | wc -l"),
        ])
        .output()
        .unwrap();
    // SAFETY: closing the copy made above.
    unsafe { libc::close(extra) };
    drop(dir);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        out.starts_with(&own),
        "exec'd:\n{out}\nthe VE's own:\n{own}"
    );
    let host = std::fs::read_to_string(data_dir(&env).join("host")).unwrap();
    assert!(out.contains(&host), "the VE's hostname {host:?}: {out}");
    // 0, 1, 2, and the one ls opens to list them.
    assert!(out.trim_end().ends_with('4'), "{out}");
    assert_eq!(
        std::fs::read_to_string(data_dir(&env).join("e")).unwrap(),
        "exec-secret\n"
    );
    let o = env
        .cmd(&["exec", "1", "--", "nosuchcommand"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(127));
    env.go();
    assert!(child.wait_with_output().unwrap().status.success());
    // Recorded as the VE's.
    let log = env.log(1);
    assert!(
        log.iter()
            .any(|a| a["op"] == "write" && a["dst"] == "file:/data/e" && a["len"] == 12),
        "{log:#?}"
    );
    let e = env.fails(&["exec", "1", "--", "true"]);
    assert!(e.contains("not running"), "{e}");
    env.assert_clean();
}

/// SIGINT, SIGTERM and SIGHUP sent to `jcs exec` reach its command in the VE (which has a
/// session of its own, out of reach of the caller's terminal), and `jcs exec` returns the
/// command's status; a killed `jcs exec` leaves no command running in the VE (SIGHUP); a
/// signal `jcs exec` was started ignoring is not passed on.
#[test]
fn root_exec_passes_signals_on_to_its_command() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let child = env.spawn_until_go("true", "true");
    let data = data_dir(&env);
    // (A number busybox's sleep takes, unique to this test and case.)
    let marker = |case: u32| format!("sleep 31.{}{case}", std::process::id());
    // Starts `jcs exec 1 -- sh -c SCRIPT` and returns once SCRIPT said it is up (it touches
    // /data/NAME-up).
    let exec = |name: &str, script: &str, ignore_int: bool| {
        let mut c = env.cmd(&["exec", "1", "--", "/bin/sh", "-c", script]);
        c.stdout(Stdio::null()).stderr(Stdio::piped());
        if ignore_int {
            common::ignoring(&mut c, libc::SIGINT);
        }
        let p = c.spawn().unwrap();
        let up = data.join(format!("{name}-up"));
        assert!(
            wait_for(10, || up.exists()),
            "{name}: the command did not start"
        );
        p
    };
    let ended = |p: &mut std::process::Child| -> Option<std::process::ExitStatus> {
        let mut st = None;
        wait_for(10, || {
            st = p.try_wait().unwrap();
            st.is_some()
        });
        st
    };
    let signal = |p: &std::process::Child, sig: i32| {
        // SAFETY: a signal to our own child, by its pid (not reaped yet).
        assert_eq!(unsafe { libc::kill(p.id() as i32, sig) }, 0);
    };
    // A command that handles SIGINT: it runs its handler, and its status is jcs exec's.
    let trap = |name: &str| {
        format!(
            "trap 'echo caught > /data/{name}-caught; exit 7' INT TERM HUP; touch /data/{name}-up; while :; do sleep 0.05; done"
        )
    };
    let mut p = exec("int", &trap("int"), false);
    signal(&p, libc::SIGINT);
    let st = ended(&mut p).unwrap_or_else(|| {
        p.kill().unwrap();
        panic!("SIGINT: jcs exec still runs 10 s later")
    });
    assert_eq!(st.code(), Some(7), "SIGINT: {st:?}");
    assert_eq!(
        std::fs::read_to_string(data.join("int-caught")).unwrap(),
        "caught\n"
    );
    // One that does not: the signal ends it, 128 + N, and nothing of it is left.
    for (case, name, sig) in [(1, "term", libc::SIGTERM), (2, "hup", libc::SIGHUP)] {
        let arg = marker(case);
        // (The command's own command line, not jcs exec's that names it.)
        let m = arg.replace(' ', "\0");
        let mut p = exec(name, &format!("touch /data/{name}-up; exec {arg}"), false);
        assert!(
            wait_for(5, || processes_with(&m).len() == 1),
            "{name}: {:?}",
            processes_with(&m)
        );
        signal(&p, sig);
        let st = ended(&mut p).unwrap_or_else(|| {
            p.kill().unwrap();
            panic!("{name}: jcs exec still runs 10 s later")
        });
        assert_eq!(st.code(), Some(128 + sig), "{name}: {st:?}");
        assert!(
            wait_for(5, || processes_with(&m).is_empty()),
            "{name}: left {:?}",
            processes_with(&m)
        );
    }
    // A killed jcs exec: its command gets SIGHUP.
    let mut p = exec("killed", &trap("killed"), false);
    p.kill().unwrap();
    p.wait().unwrap();
    let caught = data.join("killed-caught");
    assert!(
        wait_for(5, || caught.exists()),
        "SIGKILL of jcs exec: its command got no signal"
    );
    // Started with SIGINT ignored (a shell script's background job): not passed on.
    let mut p = exec("ignored", &trap("ignored"), true);
    signal(&p, libc::SIGINT);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        p.try_wait().unwrap().is_none(),
        "an ignored SIGINT ended jcs exec"
    );
    assert!(
        !data.join("ignored-caught").exists(),
        "an ignored SIGINT was passed on"
    );
    signal(&p, libc::SIGTERM);
    assert_eq!(ended(&mut p).and_then(|s| s.code()), Some(7));
    env.go();
    assert!(child.wait_with_output().unwrap().status.success());
    env.assert_clean();
}

fn data_dir(env: &Env) -> std::path::PathBuf {
    env.home().join("persist/web/data")
}
