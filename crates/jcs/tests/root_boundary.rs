//! Channels between VEs and between a VE and the host, tried as a hostile application would:
//! a static C probe (`tests/data/boundary.c`) moves known bytes; for each channel the test
//! shows the bytes crossed (the negative control: they arrived) and that `jcs track back` of
//! the receiving side names the sending VE.

mod common;

use common::{wait_for, Env};

use std::path::PathBuf;

fn data(env: &Env) -> PathBuf {
    env.home().join("persist/web/data")
}

/// Runs `server` in a VE in the background until it says it is ready, then `client` in
/// another; returns when both ended (the server is VE 1, the client VE 2).
fn serve_and_send(env: &Env, server: &[&str], client: &[&str]) {
    let _ = std::fs::remove_file(data(env).join("ready"));
    let mut s = env
        .cmd(&[&["run", "web", "--"], server].concat())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        wait_for(20, || data(env).join("ready").exists()),
        "the server did not start"
    );
    let o = env.jcs(&[&["run", "web", "--"], client].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(s.wait().unwrap().success(), "the server failed");
}

#[test]
fn root_a_unix_socket_between_two_ves_carries_the_senders_data() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    common::static_helper(&env, "boundary");
    serve_and_send(
        &env,
        &["/data/boundary", "unix-serve", "/dl/sock", "/data/got"],
        &["/data/boundary", "unix-send", "/dl/sock", "unix-secret"],
    );
    assert_eq!(
        std::fs::read_to_string(data(&env).join("got")).unwrap(),
        "unix-secret"
    );
    let back = env.reached(&["back", "persist:web:/data/got"]);
    assert!(back.contains(&"ve:2".to_string()), "{back:?}");
    // The socket is the file its bind made (named as the server named it).
    assert!(back.contains(&"file:/dl/sock".to_string()), "{back:?}");
    env.assert_clean();
}

#[test]
fn root_a_pipe_passed_to_another_ve_carries_the_writers_data() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    common::static_helper(&env, "boundary");
    serve_and_send(
        &env,
        &["/data/boundary", "pipe-recv", "/dl/sock", "/data/got"],
        &["/data/boundary", "pipe-send", "/dl/sock", "pipe-secret"],
    );
    assert_eq!(
        std::fs::read_to_string(data(&env).join("got")).unwrap(),
        "pipe-secret"
    );
    let back = env.reached(&["back", "persist:web:/data/got"]);
    assert!(back.contains(&"ve:2".to_string()), "{back:?}");
    env.assert_clean();
}

/// A file of the VE's own (a memfd, a file of its /dev/shm, of its dirties, one made with
/// O_TMPFILE) written, then its descriptor passed to another VE, which reads it: the writes
/// came before the file left the VE, and the reader's data is the writer's.
#[test]
fn root_an_own_file_written_then_passed_to_another_ve_carries_the_writers_data() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    common::static_helper(&env, "boundary");
    for (i, file) in ["memfd", "/dev/shm/x", "/tmp/x"].iter().enumerate() {
        let got = format!("/data/got{i}");
        serve_and_send(
            &env,
            &["/data/boundary", "pipe-recv", "/dl/sock", &got],
            &["/data/boundary", "fd-send", "/dl/sock", file, "own-secret"],
        );
        assert_eq!(
            std::fs::read_to_string(data(&env).join(format!("got{i}"))).unwrap(),
            "own-secret",
            "{file}: the bytes crossed"
        );
        let back = env.reached(&["back", &format!("persist:web:{got}")]);
        let sender = format!("ve:{}", 2 * i + 2);
        assert!(back.contains(&sender), "{file}: {back:?}");
    }
    env.assert_clean();
}

#[test]
fn root_a_fifo_in_persistent_storage_carries_the_writers_data() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    env.sh_ok("mkfifo /data/fifo && touch /data/ready");
    let _ = std::fs::remove_file(data(&env).join("ready"));
    let mut reader = env
        .cmd(&[
            "run",
            "web",
            "--",
            "/bin/sh",
            "-c",
            "touch /data/ready; cat /data/fifo > /data/got",
        ])
        .spawn()
        .unwrap();
    assert!(wait_for(20, || data(&env).join("ready").exists()));
    env.sh_ok("echo fifo-secret > /data/fifo");
    assert!(reader.wait().unwrap().success());
    assert_eq!(
        std::fs::read_to_string(data(&env).join("got")).unwrap(),
        "fifo-secret\n"
    );
    // VE 1 made the FIFO, VE 2 read it, VE 3 wrote into it.
    let back = env.reached(&["back", "persist:web:/data/got"]);
    assert!(back.contains(&"ve:3".to_string()), "{back:?}");
    env.assert_clean();
}

#[test]
fn root_a_host_pipe_on_the_ves_stdout_is_a_crossing() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    env.sh_ok("echo stdout-secret > /data/secret");
    // The caller's stdout is a pipe (Command::output): what the VE prints leaves it.
    let out = env.sh_ok("cat /data/secret");
    assert_eq!(out, "stdout-secret\n", "the bytes reached the host");
    let log: Vec<serde_json::Value> = env
        .ok(&["log", "--ve", "2", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let to_host = log
        .iter()
        .find(|a| a["op"] == "write" && a["src"] == "ve:2" && a["len"] == 14)
        .unwrap_or_else(|| panic!("no write of the 14 bytes to the host pipe: {log:#?}"));
    // Named as what it is for the VE: the caller's stdout.
    assert_eq!(to_host["dst"], "host:stdout", "{to_host}");
    // And forward tracking from the file reaches that pipe.
    let dst = to_host["dst"].as_str().unwrap().to_string();
    let fwd = env.reached(&["forward", "persist:web:/data/secret"]);
    assert!(fwd.contains(&dst), "{dst} not in {fwd:?}: {log:#?}");
    env.assert_clean();
}

#[test]
fn root_a_ves_own_pipe_stays_inside() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    // The shell's pipe between two of the VE's processes: counted, not recorded.
    env.sh_ok("echo inside | cat > /dev/null");
    let log = env.ok(&["log", "--ve", "1", "--json"]);
    assert!(
        !log.lines()
            .any(|l| l.contains("\"len\":7") && l.contains("\"op\":\"write\"")),
        "{log}"
    );
    let stats = env.json(&["stats", "--ve", "1", "--json"]);
    let dropped = &stats["ves"][0]["dropped_by_name"];
    assert!(
        dropped["write"].as_u64().unwrap_or(0) >= 1 && dropped["pipe2"].as_u64().unwrap_or(0) >= 1,
        "{stats}"
    );
    env.assert_clean();
}

#[test]
fn root_a_read_only_shared_mapping_made_writable_writes_the_file() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    common::static_helper(&env, "boundary");
    env.sh_ok("head -c 4096 /dev/zero > /data/m");
    env.sh_ok("/data/boundary mprotect-write /data/m mapped-secret");
    let on_host = std::fs::read(data(&env).join("m")).unwrap();
    assert!(
        on_host.starts_with(b"mapped-secret"),
        "the bytes reached the file"
    );
    let log: Vec<serde_json::Value> = env
        .ok(&["log", "--ve", "2", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        log.iter().any(|a| a["op"] == "mmap"
            && a["src"] == "ve:2"
            && a["dst"] == "file:/data/m"
            && a["len"] == 4096),
        "{log:#?}"
    );
    let back = env.reached(&["back", "persist:web:/data/m"]);
    assert!(back.contains(&"ve:2".to_string()), "{back:?}");
    env.assert_clean();
}

/// An extended attribute as a channel: VE 1 sets it on a file of persistent storage (a file
/// it never wrote), VE 2 reads it into another file.
#[test]
fn root_an_extended_attribute_carries_one_ves_data_to_another() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    common::static_helper(&env, "boundary");
    env.sh_ok("touch /data/x");
    env.sh_ok("/data/boundary xattr-set /data/x xattr-secret");
    env.sh_ok("/data/boundary xattr-get /data/x /data/got");
    assert_eq!(
        std::fs::read_to_string(data(&env).join("got")).unwrap(),
        "xattr-secret",
        "the bytes crossed"
    );
    let back = env.reached(&["back", "persist:web:/data/got"]);
    assert!(back.contains(&"ve:2".to_string()), "{back:?}");
    assert!(back.contains(&"file:/data/x".to_string()), "{back:?}");
    env.assert_clean();
}

/// A symbolic link's content as a channel: VE 2 reads a secret and makes it the target of a
/// link in persistent storage (a dangling one: the content is just bytes), VE 3 reads the link
/// with readlink and writes what it got into another file. And a link whose target is a file
/// the recorder knows: the link is the variable written, not its target.
#[test]
fn root_a_symbolic_links_content_carries_one_ves_data_to_another() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    env.sh_ok("echo link-secret > /data/secret"); // VE 1
    env.sh_ok("ln -s \"$(cat /data/secret)\" /data/l"); // VE 2
    env.sh_ok("readlink /data/l > /data/got"); // VE 3
    assert_eq!(
        std::fs::read_to_string(data(&env).join("got")).unwrap(),
        "link-secret\n",
        "the bytes crossed"
    );
    let back = env.reached(&["back", "persist:web:/data/got"]);
    assert!(back.contains(&"ve:2".to_string()), "{back:?}");
    assert!(back.contains(&"file:/data/secret".to_string()), "{back:?}");
    // The readlink is a read of the link, recorded as such.
    let reads: Vec<_> = env
        .log(3)
        .into_iter()
        .filter(|a| a["op"] == "read" && a["src"] == "file:/data/l")
        .collect();
    assert_eq!(reads.len(), 1, "{reads:?}");
    assert_eq!(reads[0]["len"], 11, "{reads:?}");

    // A link to a file the recorder saw (VE 4 links /data/secret, VE 5 reads the link): the
    // link carries VE 4's data, /data/secret is not written.
    env.sh_ok("ln -s /data/secret /data/l2"); // VE 4
    env.sh_ok("readlink /data/l2 > /data/got2"); // VE 5
    let back = env.reached(&["back", "persist:web:/data/got2"]);
    assert!(back.contains(&"ve:4".to_string()), "{back:?}");
    let fwd = env.reached(&["forward", "ve:4"]);
    assert!(
        !fwd.contains(&"file:/data/secret".to_string()),
        "the link's target is not what the symlink call wrote: {fwd:?}"
    );
    env.assert_clean();
}

/// A file system of its own, made by `mkfs` (with `options`) in an image file and mounted at
/// `dir` while it lives.
struct LoopFs {
    dir: PathBuf,
}

impl LoopFs {
    fn mount(
        mkfs: &str,
        options: &[&str],
        image: &std::path::Path,
        dir: &std::path::Path,
    ) -> LoopFs {
        let run = |cmd: &str, args: &[&str]| {
            let o = std::process::Command::new(cmd)
                .args(args)
                .output()
                .unwrap_or_else(|e| {
                    panic!("{cmd}: {e} (scripts/install-deps.sh installs xfsprogs)")
                });
            assert!(
                o.status.success(),
                "{cmd} {args:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        };
        std::fs::File::create(image)
            .unwrap()
            .set_len(320 << 20)
            .unwrap();
        run(mkfs, &[options, &[image.to_str().unwrap()]].concat());
        std::fs::create_dir_all(dir).unwrap();
        run(
            "mount",
            &["-o", "loop", image.to_str().unwrap(), dir.to_str().unwrap()],
        );
        LoopFs {
            dir: dir.to_path_buf(),
        }
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.dir).status();
    }
}

/// A reflink copy moves a file's data into another with no read and no write the monitor
/// could see (FICLONE, FICLONERANGE; FIDEDUPERANGE compares two files' bytes). Persistent
/// storage on XFS: on the host the clone works (the control); in a VE all three fail with
/// EOPNOTSUPP, as on a file system without reflinks, so data moves only by calls that are
/// recorded.
#[test]
fn root_a_ve_cannot_clone_a_files_data_into_another() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let xfs = LoopFs::mount(
        "mkfs.xfs",
        &["-q", "-m", "reflink=1"],
        &env.home().join("xfs.img"),
        &data(&env),
    );
    let probe = common::static_helper(&env, "boundary");
    std::fs::write(data(&env).join("secret"), "clone-secret\n".repeat(400)).unwrap();
    let host = std::process::Command::new(&probe)
        .arg("clone")
        .arg(data(&env).join("secret"))
        .arg(data(&env).join("host-copy"))
        .output()
        .unwrap();
    assert!(host.status.success(), "{host:?}");
    assert_eq!(
        std::fs::read(data(&env).join("host-copy")).unwrap(),
        std::fs::read(data(&env).join("secret")).unwrap(),
        "the control: on the host, the clone copies the file"
    );
    for how in ["clone", "clone-range", "dedupe"] {
        let o = env.jcs(&[
            "run",
            "web",
            "--",
            "/data/boundary",
            how,
            "/data/secret",
            "/data/copy",
        ]);
        assert_eq!(o.status.code(), Some(3), "{how}: {o:?}");
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            "Operation not supported",
            "{how}"
        );
    }
    assert_eq!(std::fs::read(data(&env).join("copy")).unwrap(), b"");
    drop(xfs);
    env.assert_clean();
}

/// A file is its identity (device, inode, generation): on ext4 without metadata checksums
/// the owner may set an inode's generation (FS_IOC_SETVERSION), and the file would look like
/// a new one with no past — what VE 1 wrote into /data/f would not be reached from what VE 3
/// reads there. On the host the ioctl works (the control); in a VE it fails with EPERM.
#[test]
fn root_a_ve_cannot_change_a_files_generation() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let fs = LoopFs::mount(
        "mkfs.ext4",
        &["-q", "-O", "^metadata_csum"],
        &env.home().join("ext4.img"),
        &data(&env),
    );
    let probe = common::static_helper(&env, "boundary");
    std::fs::write(data(&env).join("host-file"), "x").unwrap();
    let host = std::process::Command::new(&probe)
        .arg("setversion")
        .arg(data(&env).join("host-file"))
        .output()
        .unwrap();
    assert!(host.status.success(), "the control: {host:?}");
    env.sh_ok("echo gen-secret > /data/f"); // VE 1
    let o = env.jcs(&[
        "run",
        "web",
        "--",
        "/data/boundary",
        "setversion",
        "/data/f",
    ]); // VE 2
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "Operation not permitted"
    );
    env.sh_ok("cat /data/f > /data/out"); // VE 3
    let back = env.reached(&["back", "persist:web:/data/out"]);
    assert!(back.contains(&"ve:1".to_string()), "{back:?}");
    drop(fs);
    env.assert_clean();
}

/// Files made by mknod (a FIFO, a regular file) in persistent storage are creations like an
/// open with O_CREAT: recorded, by name; a device node the VE may not make is a failed one.
#[test]
fn root_mknod_in_persistent_storage_is_recorded() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    common::static_helper(&env, "boundary");
    env.sh_ok("mkfifo /data/ff && /data/boundary mknod-reg /data/f3; mknod /data/dev c 1 3; true");
    let ats = env.log(1);
    let made: Vec<_> = ats.iter().filter(|a| a["op"] == "mknod").collect();
    let named = |name: &str, status: &str| {
        made.iter()
            .any(|a| a["dst"] == format!("file:/data/{name}") && a["status"] == status)
    };
    assert!(named("ff", "committed"), "{made:#?}");
    assert!(named("f3", "committed"), "{made:#?}");
    assert!(named("dev", "failed"), "{made:#?}");
    assert!(data(&env).join("f3").is_file() && !data(&env).join("dev").exists());
    env.assert_clean();
}

#[test]
fn root_a_shared_mapping_links_memory_and_file_while_it_lasts() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    common::static_helper(&env, "boundary");
    env.sh_ok("echo map-secret > /data/secret; head -c 4096 /dev/zero > /data/m");
    // VE 2 maps /data/m, and only then reads the secret and copies it into the mapping.
    env.sh_ok("/data/boundary map-then-copy /data/m /data/secret");
    assert!(std::fs::read(data(&env).join("m"))
        .unwrap()
        .starts_with(b"map-secret\n"));
    let back = env.reached(&["back", "persist:web:/data/m"]);
    assert!(
        back.contains(&"file:/data/secret".to_string()),
        "the secret reached the file through the mapping after it was made: {back:?}"
    );
    env.assert_clean();
}

/// Runs `args` in a VE in the background; waits until `ready` (in /data) exists.
fn spawn_until(env: &Env, args: &[&str], ready: &str) -> std::process::Child {
    let c = env
        .cmd(&[&["run", "web", "--"], args].concat())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        wait_for(20, || data(env).join(ready).exists()),
        "{args:?} did not get ready"
    );
    c
}

/// VE `map-read-wait` of /data/m into /data/out (see boundary.c), in the background until it
/// has mapped the file (`ready` in /data).
fn map_watcher(env: &Env, ready: &str) -> std::process::Child {
    let ready_path = format!("/data/{ready}");
    spawn_until(
        env,
        &[
            "/data/boundary",
            "map-read-wait",
            "/data/m",
            "/data/out",
            &ready_path,
        ],
        ready,
    )
}

/// A mapping is a channel for as long as it lasts, not only at its ends. VE 2 maps /data/m
/// (private, read-only) and waits; VE 3 maps it shared and writable, reads a secret and stores
/// it in the mapping — no system call writes the file — and stays; VE 2 sees the secret in its
/// mapping and writes it out; VE 4 reads /data/m with read() while VE 3's mapping lasts.
#[test]
fn root_a_live_shared_mapping_carries_data_while_it_lasts() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    common::static_helper(&env, "boundary");
    env.sh_ok("echo live-secret > /data/secret; head -c 4096 /dev/zero > /data/m"); // VE 1
    let watcher = map_watcher(&env, "ready2"); // VE 2
    let holder = spawn_until(
        &env,
        &[
            "/data/boundary",
            "map-write-hold",
            "/data/m",
            "/data/secret",
            "/data/ready3",
            "/data/done",
        ],
        "ready3",
    ); // VE 3
    let o = watcher.wait_with_output().unwrap();
    assert!(o.status.success(), "{o:?}");
    env.sh_ok("head -c 12 /data/m > /data/got; touch /data/done"); // VE 4
    assert!(holder.wait_with_output().unwrap().status.success());
    for out in ["out", "got"] {
        assert_eq!(
            std::fs::read_to_string(data(&env).join(out)).unwrap(),
            "live-secret\n",
            "the bytes crossed into {out}"
        );
        let back = env.reached(&["back", &format!("persist:web:/data/{out}")]);
        assert!(back.contains(&"ve:3".to_string()), "{out}: {back:?}");
        assert!(
            back.contains(&"file:/data/secret".to_string()),
            "{out}: {back:?}"
        );
    }
    env.assert_clean();
}

/// A mapping made before another VE writes the file sees the write (even a private one, for
/// pages it did not change): VE 2 maps /data/m and waits, VE 3 writes a secret into /data/m
/// with write(), VE 2 finds it in its mapping and writes it out.
#[test]
fn root_a_mapping_made_before_a_write_sees_it() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    common::static_helper(&env, "boundary");
    env.sh_ok("echo seen-secret > /data/secret; head -c 4096 /dev/zero > /data/m"); // VE 1
    let watcher = map_watcher(&env, "ready"); // VE 2
    env.sh_ok("dd if=/data/secret of=/data/m conv=notrunc 2>/dev/null"); // VE 3
    let o = watcher.wait_with_output().unwrap();
    assert!(o.status.success(), "{o:?}");
    assert_eq!(
        std::fs::read_to_string(data(&env).join("out")).unwrap(),
        "seen-secret\n"
    );
    let back = env.reached(&["back", "persist:web:/data/out"]);
    assert!(back.contains(&"ve:3".to_string()), "{back:?}");
    assert!(back.contains(&"file:/data/secret".to_string()), "{back:?}");
    env.assert_clean();
}

/// Two VEs on the bridge of `cidr` (app `srv` is VE 1 at .2, app `cli` VE 2): runs `server`
/// in the background until it is ready, then `client`; returns when both ended.
fn two_bridge_ves(env: &Env, cidr: &str, server: &[&str], client: &[&str]) {
    let ns = common::NetNs::new();
    env.bridge_app("srv");
    env.bridge_app("cli");
    let probe = common::static_helper(env, "boundary");
    for app in ["srv", "cli"] {
        let d = env.home().join(format!("persist/{app}/data"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::copy(&probe, d.join("boundary")).unwrap();
    }
    let run = |app: &str, args: &[&str]| {
        let mut c = ns.cmd(common::jcs_bin(), &[&["run", app, "--"], args].concat());
        c.env("JCS_HOME", env.home())
            .env("JCS_RUN_DIR", env.run_dir())
            .env("JCS_BRIDGE_CIDR", cidr)
            .stdin(std::process::Stdio::null());
        c
    };
    let srv_data = env.home().join("persist/srv/data");
    let mut s = run("srv", server).spawn().unwrap();
    assert!(wait_for(20, || srv_data.join("ready").exists()));
    let o = run("cli", client).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(s.wait().unwrap().success());
}

/// A connected TCP socket's sendto naming 127.0.0.1: the kernel sends to the real peer (a VE
/// on the bridge), so the bytes cross; they are recorded on the connection, not dropped as
/// loopback.
#[test]
fn root_sendto_naming_loopback_on_a_connection_goes_to_the_peer() {
    let Some(env) = Env::new() else { return };
    two_bridge_ves(
        &env,
        "10.76.0.0/24",
        &["/data/boundary", "tcp-serve", "8000", "/data/got"],
        &[
            "/data/boundary",
            "tcp-sendto-lo",
            "10.76.0.2",
            "8000",
            "lo-secret",
        ],
    );
    assert_eq!(
        std::fs::read_to_string(env.home().join("persist/srv/data/got")).unwrap(),
        "lo-secret",
        "the bytes went to the peer, not to loopback"
    );
    let back = env.reached(&["back", "persist:srv:/data/got"]);
    assert!(back.contains(&"ve:2".to_string()), "{back:?}");
    env.assert_clean();
}

/// A datagram received with a recv() that waits for it, on an unconnected socket: the call
/// names no source and nothing was queued at its entry; the VE's ingress program kept the
/// source of the datagram that reached the socket, so the receiver's data is tracked back to
/// the sender.
#[test]
fn root_a_waited_for_datagram_received_without_its_address_has_its_source() {
    let Some(env) = Env::new() else { return };
    datagram_reaches_the_receiver_from_the_sender(&env, "10.74", "udp-recv-plain");
    env.assert_clean();
}

/// One datagram from VE 2 to VE 1 on a bridge `NET.0.0/24`, received by the probe's `mode`;
/// the file VE 1 writes it to is tracked back to VE 2. Returns what tracking reached.
fn datagram_reaches_the_receiver_from_the_sender(env: &Env, net: &str, mode: &str) -> Vec<String> {
    let secret = format!("{mode}-secret");
    two_bridge_ves(
        env,
        &format!("{net}.0.0/24"),
        &["/data/boundary", mode, "7000", "/data/got"],
        &[
            "/data/boundary",
            "udp-send",
            &format!("{net}.0.2"),
            "7000",
            &secret,
        ],
    );
    assert_eq!(
        std::fs::read_to_string(env.home().join("persist/srv/data/got")).unwrap(),
        secret
    );
    let back = env.reached(&["back", "persist:srv:/data/got"]);
    assert!(
        back.contains(&"ve:2".to_string()),
        "{back:?}\n{}",
        env.ok(&["log"])
    );
    back
}

/// A datagram received with recv() on an unconnected socket, after poll said one is queued:
/// the call names no source; the monitor takes it from the head of the socket's queue at the
/// call's entry, so the receiver's data is tracked back to the sender.
#[test]
fn root_a_polled_datagram_received_without_its_address_has_its_source() {
    let Some(env) = Env::new() else { return };
    datagram_reaches_the_receiver_from_the_sender(&env, "10.76", "udp-recv-polled");
    env.assert_clean();
}

/// A datagram from an unbound socket (its source address is chosen when routed) to a socket
/// bound to every address (which names no address of its own): the two ends still name one
/// flow, so the receiver's data is tracked back to the sender.
#[test]
fn root_a_datagram_between_wildcard_ends_is_joined() {
    let Some(env) = Env::new() else { return };
    let back = datagram_reaches_the_receiver_from_the_sender(&env, "10.75", "udp-recv");
    assert!(
        back.iter()
            .any(|v| v.starts_with("udp:") && v.ends_with(":7000")),
        "{back:?}"
    );
    env.assert_clean();
}

/// The VE's transactions, as JSON.
fn log_of(env: &Env, ve: u64) -> Vec<serde_json::Value> {
    env.ok(&["log", "--ve", &ve.to_string(), "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// tee from the VE's own pipe into the caller's, and vmsplice of memory into it: bytes that
/// leave the VE without a write call. Each is a write of the pipe the caller reads.
#[test]
fn root_tee_and_vmsplice_into_the_callers_pipe_are_crossings() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    common::static_helper(&env, "boundary");
    for (ve, how, text) in [
        (1, "tee-out", "tee-secret"),
        (2, "vmsplice-out", "vms-secret"),
    ] {
        // The caller's stdout is a pipe (Command::output): the bytes reached the host.
        let out = env.ok(&["run", "web", "--", "/data/boundary", how, text]);
        assert_eq!(out, text, "{how}: the bytes crossed");
        let log = log_of(&env, ve);
        let w = log
            .iter()
            .find(|a| a["op"] == "write" && a["src"] == format!("ve:{ve}") && a["len"] == 10)
            .unwrap_or_else(|| panic!("{how}: no write of the 10 bytes: {log:#?}"));
        // The caller's pipe, named as such (its identity in dst_id).
        assert_eq!(w["dst"], "host:stdout", "{w}");
        assert!(w["dst_id"].as_str().unwrap().starts_with("file:["), "{w}");
        // The VE's own pipe (tee's input) stays inside: no read of it is recorded.
        assert!(!log.iter().any(|a| a["op"] == "read"), "{how}: {log:#?}");
    }
    env.assert_clean();
}

/// vmsplice from the caller's pipe on stdin into the VE's memory: a read of that pipe, which
/// tracking follows into the file the VE wrote.
#[test]
fn root_vmsplice_from_the_callers_pipe_is_a_read() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    common::static_helper(&env, "boundary");
    let mut c = env
        .cmd(&[
            "run",
            "web",
            "--",
            "/data/boundary",
            "vmsplice-in",
            "/data/in",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut c.stdin.take().unwrap(), b"in-secret").unwrap();
    let o = c.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read(data(&env).join("in")).unwrap(), b"in-secret");
    let log = log_of(&env, 1);
    let r = log
        .iter()
        .find(|a| a["op"] == "read" && a["dst"] == "ve:1" && a["len"] == 9)
        .unwrap_or_else(|| panic!("no read of the 9 bytes: {log:#?}"));
    let pipe = r["src"].as_str().unwrap().to_string();
    assert_eq!(pipe, "host:stdin", "{r}");
    let back = env.reached(&["back", "persist:web:/data/in"]);
    assert!(back.contains(&pipe), "{pipe} not in {back:?}");
    env.assert_clean();
}

/// openat2 with O_TRUNC empties a file without writing it: the open changed the file.
#[test]
fn root_openat2_with_o_trunc_changes_the_file() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    common::static_helper(&env, "boundary");
    env.sh_ok("echo one > /data/f");
    env.sh_ok("/data/boundary openat2-trunc /data/f");
    assert_eq!(
        std::fs::read(data(&env).join("f")).unwrap(),
        b"",
        "truncated"
    );
    let log = log_of(&env, 2);
    assert!(
        log.iter()
            .any(|a| a["op"] == "truncate" && a["src"] == "ve:2" && a["dst"] == "file:/data/f"),
        "{log:#?}"
    );
    assert!(env
        .reached(&["back", "persist:web:/data/f"])
        .contains(&"ve:2".to_string()));
    env.assert_clean();
}

/// A shared writable mapping grown with mremap (and moved): what reaches the new part of the
/// mapping reaches the file, whether the mapping ends with munmap or with the process.
#[test]
fn root_a_shared_mapping_grown_by_mremap_still_links_memory_and_file() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    common::static_helper(&env, "boundary");
    env.sh_ok(
        "echo remap-secret > /data/secret; head -c 8192 /dev/zero > /data/m; \
         head -c 8192 /dev/zero > /data/k",
    );
    for (ve, how, file) in [(2, "mremap-copy", "m"), (3, "mremap-copy-keep", "k")] {
        env.sh_ok(&format!("/data/boundary {how} /data/{file} /data/secret"));
        let m = std::fs::read(data(&env).join(file)).unwrap();
        assert!(
            m[4096..].starts_with(b"remap-secret\n"),
            "{how}: the bytes crossed"
        );
        let log = log_of(&env, ve);
        let back = env.reached(&["back", &format!("persist:web:/data/{file}")]);
        assert!(
            back.contains(&"file:/data/secret".to_string()),
            "{how}: the secret reached the file through the grown mapping: {back:?} {log:#?}"
        );
        // The mapping's end covers both pages.
        assert!(
            log.iter().any(|a| a["op"] == "mmap"
                && a["src"] == format!("ve:{ve}")
                && a["dst"] == format!("file:/data/{file}")
                && a["off"] == 0
                && a["len"].as_u64().unwrap() >= 8192
                && a["time_ns"].as_u64()
                    > log
                        .iter()
                        .find(|r| r["op"] == "read")
                        .and_then(|r| r["time_ns"].as_u64())),
            "{how}: {log:#?}"
        );
    }
    env.assert_clean();
}

/// Datagrams of sendmmsg between two VEs: each a transaction on the flow the receiver's end
/// names too, so tracking passes from the sender's VE to the receiver's.
#[test]
fn root_datagrams_of_sendmmsg_are_joined_to_the_receiver() {
    let Some(env) = Env::new() else { return };
    two_bridge_ves(
        &env,
        "10.73.0.0/24",
        &["/data/boundary", "udp-recv", "7000", "/data/got"],
        &[
            "/data/boundary",
            "udp-sendmmsg",
            "10.73.0.2",
            "7000",
            "mmsg-secret",
        ],
    );
    assert_eq!(
        std::fs::read_to_string(env.home().join("persist/srv/data/got")).unwrap(),
        "mmsg-secret",
        "the bytes crossed"
    );
    let sent: Vec<serde_json::Value> = log_of(&env, 2)
        .into_iter()
        .filter(|a| a["op"] == "send")
        .collect();
    assert!(
        !sent.is_empty()
            && sent
                .iter()
                .all(|a| a["dst"].as_str().unwrap().starts_with("udp:")),
        "each datagram on a flow: {sent:#?}"
    );
    let back = env.reached(&["back", "persist:srv:/data/got"]);
    assert!(back.contains(&"ve:2".to_string()), "{back:?}");
    env.assert_clean();
}

/// sendfile of a storage file into a TCP connection to another VE: a read of the file and a
/// send on the connection's flow, which the receiver's end names too, so forward tracking
/// from the file reaches the receiving VE.
#[test]
fn root_sendfile_to_another_ve_is_joined_to_the_receiver() {
    let Some(env) = Env::new() else { return };
    let cli = env.home().join("persist/cli/data");
    std::fs::create_dir_all(&cli).unwrap();
    std::fs::write(cli.join("doc"), "sendfile-secret").unwrap();
    two_bridge_ves(
        &env,
        "10.72.0.0/24",
        &["/data/boundary", "tcp-serve", "8000", "/data/got"],
        &[
            "/data/boundary",
            "tcp-sendfile",
            "10.72.0.2",
            "8000",
            "/data/doc",
        ],
    );
    assert_eq!(
        std::fs::read_to_string(env.home().join("persist/srv/data/got")).unwrap(),
        "sendfile-secret",
        "the bytes crossed"
    );
    let log = log_of(&env, 2);
    assert!(
        log.iter().any(|a| a["op"] == "send"
            && a["len"] == 15
            && a["dst"].as_str().unwrap().starts_with("tcp:")),
        "the transfer's send is on the flow: {log:#?}"
    );
    let fwd = env.reached(&["forward", "persist:cli:/data/doc"]);
    assert!(fwd.contains(&"ve:1".to_string()), "{fwd:?}");
    env.assert_clean();
}

/// A Unix socket bound to a path is the file it made, whatever name each end uses: a server
/// binds by a name relative to its working directory, a VE of another app — the same shared
/// storage mounted elsewhere (`/mnt/dl`) — sends by its own absolute name; a datagram and a
/// stream each carry the sender's data, and track back of what the server wrote names the
/// sender. (Before, the two ends were `unix:dsock` and `unix:/mnt/dl/sub/dsock`: two variables,
/// and the datagram's sender was not reached.)
#[test]
fn root_a_unix_socket_is_its_file_whatever_name_each_end_uses() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    env.ok(&[
        "app",
        "create",
        "other",
        "--template",
        "bb",
        "--share",
        "/mnt/dl=downloads",
    ]);
    let helper = common::static_helper(&env, "boundary");
    let dl = env.home().join("shared/downloads");
    std::fs::create_dir_all(dl.join("sub")).unwrap();
    std::fs::copy(&helper, dl.join("boundary")).unwrap();
    // (The third sender is bound to a name of its own: the server's recvfrom names it as the
    // source; the rendezvous is still the server's socket.)
    let cases = [
        (
            "udgram-serve",
            "dsock",
            "udgram-send",
            "dgram-secret",
            "got1",
            None,
        ),
        (
            "unix-serve-at",
            "ssock",
            "unix-send",
            "stream-secret",
            "got2",
            None,
        ),
        (
            "udgram-serve",
            "bsock",
            "udgram-send-from",
            "bound-secret",
            "got3",
            Some("/mnt/dl/sub/csock"),
        ),
    ];
    for (i, (serve, name, send, secret, got, from)) in cases.into_iter().enumerate() {
        let _ = std::fs::remove_file(data(&env).join("ready"));
        let out = format!("/data/{got}");
        let mut s = env
            .cmd(&[
                "run",
                "web",
                "--",
                "/dl/boundary",
                serve,
                "/dl/sub",
                name,
                &out,
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        assert!(
            wait_for(20, || data(&env).join("ready").exists()),
            "the server did not start"
        );
        let to = format!("/mnt/dl/sub/{name}");
        let mut client = vec!["run", "other", "--", "/mnt/dl/boundary", send, &to, secret];
        client.extend(from);
        env.ok(&client);
        assert!(s.wait().unwrap().success(), "the server failed");
        assert_eq!(
            std::fs::read_to_string(data(&env).join(got)).unwrap(),
            secret,
            "the bytes crossed"
        );
        let sender = format!("ve:{}", 2 * i + 2);
        let back = env.reached(&["back", &format!("persist:web:{out}")]);
        assert!(back.contains(&sender), "{serve}: {back:?}");
        // The socket is the file its bind made, named by the server's absolute name; asked
        // for as unix:PATH too, it is found by that name.
        let file = format!("file:/dl/sub/{name}");
        assert!(back.contains(&file), "{serve}: {back:?}");
        let forward = env.reached(&["forward", &format!("unix:/dl/sub/{name}")]);
        assert!(
            forward.contains(&format!("file:{out}")),
            "{serve}: {forward:?}"
        );
        let log = env.ok(&["log", "--var", &format!("unix:/dl/sub/{name}"), "--json"]);
        assert!(log.contains("\"op\":\"bind\""), "{serve}: {log}");
    }
    env.assert_clean();
}
