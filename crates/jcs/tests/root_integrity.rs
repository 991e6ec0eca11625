//! The dirties as integrity records (docs/design.md, "Dirties as integrity records"): what a
//! VE writes into its own dirties is one record per file (per second), what it reads back is
//! not recorded, and every answer between its storage, endpoints and other VEs stays what it
//! was. A file of the dirties whose descriptor left the VE is recorded call by call.

mod common;

use common::{wait_for, Env};

/// A VE copies a persistent file into /tmp, appends to it 50 times, and copies the result
/// back into persistent storage: /tmp's file has one integrity record that counts every write
/// and byte, no transaction, and tracking still goes from the input to the output.
#[test]
fn root_writes_into_the_dirties_are_integrity_records() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let data = env.home().join("persist/web/data");
    std::fs::write(data.join("in"), "secret\n").unwrap();
    env.sh_ok(
        "cat /data/in > /tmp/x; i=0; while [ $i -lt 50 ]; do echo pad >> /tmp/x; i=$((i+1)); \
         done; md5sum /tmp/x > /dev/null; cat /tmp/x > /data/out",
    );
    let out = std::fs::read_to_string(data.join("out")).unwrap();
    assert_eq!(out.len(), 7 + 50 * 4, "the bytes went through /tmp/x");
    let log = env.log(1);
    let on_x = |a: &&serde_json::Value| a["src"] == "file:/tmp/x" || a["dst"] == "file:/tmp/x";
    let ats: Vec<_> = log
        .iter()
        .filter(|a| a["op"].is_string())
        .filter(on_x)
        .collect();
    assert!(ats.is_empty(), "no transaction on /tmp/x: {ats:#?}");
    let records: Vec<_> = log
        .iter()
        .filter(|a| a["summary"] == "integrity")
        .filter(on_x)
        .collect();
    assert!(!records.is_empty(), "{log:#?}");
    // The O_TRUNC of the first redirection, cat's copy and the 50 appends, every byte.
    let count: u64 = records.iter().map(|r| r["count"].as_u64().unwrap()).sum();
    let bytes: u64 = records.iter().map(|r| r["bytes"].as_u64().unwrap()).sum();
    assert_eq!((count, bytes), (52, 207), "{records:#?}");
    for r in &records {
        assert_eq!((&r["src"], &r["ve"]), (&"ve:1".into(), &1.into()), "{r}");
        assert!(r["first_ns"].as_u64() <= r["last_ns"].as_u64(), "{r}");
    }
    // (The control: 52 writes the shell made, written as at most a few records.)
    assert!(records.len() <= 3, "{records:#?}");
    // Tracking is unchanged: the output depends on the input, through the VE.
    let back = env.reached(&["back", "persist:web:/data/out"]);
    assert!(back.contains(&"file:/data/in".to_string()), "{back:?}");
    let fwd = env.reached(&["forward", "persist:web:/data/in"]);
    for v in ["ve:1", "file:/tmp/x", "file:/data/out"] {
        assert!(fwd.contains(&v.to_string()), "{v}: {fwd:?}");
    }
    // Forward from the dirties' file itself: the VE may have read it back.
    let fwd = env.reached(&["forward", "file:/tmp/x"]);
    assert!(fwd.contains(&"file:/data/out".to_string()), "{fwd:?}");
    // md5sum's reads back were counted, in the kernel, as dropped.
    let st = env.json(&["stats", "--ve", "1", "--json"]);
    assert!(
        st["ves"][0]["dropped_by_name"]["read"].as_u64().unwrap() > 0,
        "{st}"
    );
    // ... and stats counts the records and the writes they stand for.
    assert_eq!(st["ves"][0]["integrity_records"], records.len(), "{st}");
    assert_eq!(st["ves"][0]["integrity_writes"], 52, "{st}");
    env.assert_clean();
}

/// A VE lends a file of its dirties to another VE (its descriptor over a Unix socket in shared
/// storage), the other VE writes into it, and the first copies what it holds into persistent
/// storage: the file is no longer the VE's own, its reads and writes are transactions, and the
/// output is tracked back to the other VE. Were the read back dropped as the VE's own, the
/// answer would stop at VE 1 (`analysis::integrity::tests::a_file_another_ve_writes_is_not_own`).
#[test]
fn root_a_dirties_file_lent_to_another_ve_carries_its_writes() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let probe = common::static_helper(&env, "boundary");
    let data = env.home().join("persist/web/data");
    assert!(probe.starts_with(&data));
    let mut lender = env
        .cmd(&[
            "run",
            "web",
            "--",
            "/data/boundary",
            "file-lend",
            "/dl/sock",
            "/tmp/lent",
            "/data/got",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        wait_for(20, || data.join("ready").exists()),
        "the lender did not start"
    );
    env.ok(&[
        "run",
        "web",
        "--",
        "/data/boundary",
        "file-fill",
        "/dl/sock",
        "lent-secret",
    ]);
    assert!(lender.wait().unwrap().success());
    // The control: the bytes crossed, through a file of VE 1's dirties.
    assert_eq!(
        std::fs::read_to_string(data.join("got")).unwrap(),
        "lent-secret"
    );
    let back = env.reached(&["back", "persist:web:/data/got"]);
    assert!(back.contains(&"ve:2".to_string()), "{back:?}");
    // VE 2's write into it and VE 1's read of it are transactions.
    assert!(
        env.log(2)
            .iter()
            .any(|a| a["op"] == "write" && a["len"] == 11),
        "{:#?}",
        env.log(2)
    );
    assert!(
        env.log(1)
            .iter()
            .any(|a| a["op"] == "read" && a["len"] == 11 && a["src"] == "file:/tmp/lent"),
        "{:#?}",
        env.log(1)
    );
    env.assert_clean();
}

/// A VE maps a file of its dirties shared and writable, copies a persistent secret into it
/// and unmaps it, then copies the file into persistent storage. overlayfs puts the upper file
/// (a "backing file", another device and inode) in the mapping: the unmapping must still name
/// the file the VE opened — one of its dirties, so part of its integrity record — not a file
/// with no name (what it was before: `mmap ve:1 -> file:[DEV:INO:GEN]`, both ways, every
/// shared mapping Chromium makes of its scratch files). Tracking goes through the file.
#[test]
fn root_unmapping_a_file_of_the_dirties_names_the_file_the_ve_mapped() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    common::static_helper(&env, "boundary");
    env.sh_ok("echo map-secret > /data/secret");
    env.sh_ok(
        "head -c 8192 /dev/zero > /tmp/m; /data/boundary mremap-copy /tmp/m /data/secret && \
         cat /tmp/m > /data/out",
    );
    let out = std::fs::read(env.home().join("persist/web/data/out")).unwrap();
    assert!(
        out[4096..].starts_with(b"map-secret\n"),
        "the control: the secret went through the mapping"
    );
    let log = env.log(2);
    let unnamed = common::with_an_end(&log, "file:[");
    assert!(unnamed.is_empty(), "a file with no name: {unnamed:#?}");
    let on_m: Vec<_> = log
        .iter()
        .filter(|a| a["op"].is_string() && (a["src"] == "file:/tmp/m" || a["dst"] == "file:/tmp/m"))
        .collect();
    assert!(on_m.is_empty(), "no transaction on /tmp/m: {on_m:#?}");
    assert!(
        log.iter()
            .any(|a| a["summary"] == "integrity" && a["dst"] == "file:/tmp/m"),
        "{log:#?}"
    );
    let back = env.reached(&["back", "persist:web:/data/out"]);
    assert!(back.contains(&"file:/data/secret".to_string()), "{back:?}");
    env.assert_clean();
}
