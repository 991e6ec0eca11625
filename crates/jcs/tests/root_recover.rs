//! The seed paper's recovery scenario, end to end with real VEs: a malicious server (in a
//! namespace the test makes) → a browser VE downloads into shared storage → an office VE
//! reads it and writes a report into its persistent storage → an unrelated VE edits its own
//! files → the user edits the report later (appending, reading nothing contaminated).
//! `jcs recover --from endpoint:… --plan` names exactly the download and the report (the
//! user's edit as a change lost with it), not the unrelated file; `--apply` puts both back
//! byte for byte, and running it again changes nothing.

mod common;

use common::{Env, NetNs};
use std::process::Stdio;

#[test]
fn root_recover_from_a_malicious_endpoint_restores_what_it_reached() {
    let Some(env) = Env::new() else { return };
    let ns = NetNs::new();
    env.ok(&["template", "create", "bb", "--busybox"]);
    let policy = env.home().join("pre.toml");
    std::fs::write(&policy, "[recovery]\npreimages = true\n").unwrap();
    for (app, extra) in [
        ("browser", &["--net", "bridge"][..]),
        ("office", &["--persist", "/docs"][..]),
        ("other", &["--persist", "/docs"][..]),
    ] {
        env.ok(&[
            &[
                "app",
                "create",
                app,
                "--template",
                "bb",
                "--share",
                "/dl=downloads",
                "--policy",
                policy.to_str().unwrap(),
            ],
            extra,
        ]
        .concat());
    }
    let docs = env.home().join("persist/office/docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(docs.join("report.txt"), "clean report\n").unwrap();
    let other = env.home().join("persist/other/docs");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("other.txt"), "other before\n").unwrap();
    let run = |app: &str, script: &str| {
        let o = ns
            .cmd(
                common::jcs_bin(),
                &["run", app, "--", "/bin/sh", "-c", script],
            )
            .env("JCS_HOME", env.home())
            .env("JCS_RUN_DIR", env.run_dir())
            .env("JCS_BRIDGE_CIDR", "10.81.0.0/24")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{app}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    // VE 1 makes the bridge; then the malicious server comes up on its host side.
    run("browser", "true");
    let site = env.home().join("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("evil.doc"), "EVIL MACRO\n").unwrap();
    let mut server = ns
        .cmd(
            "busybox",
            &["httpd", "-f", "-p", "8000", "-h", site.to_str().unwrap()],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    run(
        "browser",
        "wget -q -O /dl/evil.doc http://10.81.0.1:8000/evil.doc",
    ); // VE 2
       // SAFETY: SIGKILL to the server this test started, by its pid.
    unsafe { libc::kill(server.id() as i32, libc::SIGKILL) };
    let _ = server.wait();
    run(
        "office",
        "(echo report; cat /dl/evil.doc) > /docs/report.txt",
    ); // VE 3
    run("other", "echo unrelated > /docs/other.txt"); // VE 4
    run("office", "echo 'user edit' >> /docs/report.txt"); // VE 5: reads nothing
                                                           // Control: the attack and the edits happened.
    let dl = env.home().join("shared/downloads/evil.doc");
    assert_eq!(std::fs::read_to_string(&dl).unwrap(), "EVIL MACRO\n");
    assert_eq!(
        std::fs::read_to_string(docs.join("report.txt")).unwrap(),
        "report\nEVIL MACRO\nuser edit\n"
    );

    let from = "endpoint:tcp/10.81.0.1:8000";
    let plan = env.json(&["recover", "--from", from, "--plan", "--json"]);
    let files = plan["files"].as_array().unwrap();
    let paths: Vec<&str> = files.iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert_eq!(paths.len(), 2, "{plan}");
    assert!(paths.contains(&"shared:downloads/evil.doc"), "{plan}");
    assert!(paths.contains(&"persist:office:/docs/report.txt"), "{plan}");
    let dlfix = files
        .iter()
        .find(|f| f["path"] == "shared:downloads/evil.doc")
        .unwrap();
    assert_eq!(
        (dlfix["action"].as_str(), dlfix["contaminated_by"].as_u64()),
        (Some("remove"), Some(2))
    );
    let rep = files
        .iter()
        .find(|f| f["path"] == "persist:office:/docs/report.txt")
        .unwrap();
    assert_eq!(
        (rep["action"].as_str(), rep["contaminated_by"].as_u64()),
        (Some("restore"), Some(3))
    );
    assert_eq!(
        rep["lost_changes"],
        serde_json::json!([{"ve": 5, "first_ns": rep["lost_changes"][0]["first_ns"],
            "first": rep["lost_changes"][0]["first"], "contaminated": false}]),
        "{plan}"
    );
    let ves: Vec<u64> = plan["ves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["ve"].as_u64().unwrap())
        .collect();
    assert_eq!(ves, [2, 3], "{plan}");
    // The plan changed nothing.
    assert!(dl.exists());

    let applied = env.json(&["recover", "--from", from, "--apply", "--json"]);
    assert!(
        applied["files"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["result"] == "done"),
        "{applied}"
    );
    assert!(!dl.exists(), "the download is gone");
    assert_eq!(
        std::fs::read_to_string(docs.join("report.txt")).unwrap(),
        "clean report\n"
    );
    assert_eq!(
        std::fs::read_to_string(other.join("other.txt")).unwrap(),
        "unrelated\n",
        "not touched"
    );
    for ve in [2, 3] {
        assert!(env
            .home()
            .join(format!("ve/{ve}/meta/quarantined.json"))
            .exists());
    }
    assert!(!env.home().join("ve/5/meta/quarantined.json").exists());
    // The journal says what the recovery put back.
    let text = env.ok(&["log", "--ve", "3"]);
    assert!(
        text.contains("restore persist:office:/docs/report.txt (by recover endpoint:"),
        "{text}"
    );
    // The recovery journal, and a second run that converges: nothing left to do.
    assert_eq!(
        std::fs::read_dir(env.home().join("versions/recover"))
            .unwrap()
            .count(),
        1
    );
    let again = env.json(&["recover", "--from", from, "--apply", "--json"]);
    assert!(
        again["files"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["result"] == "already"),
        "{again}"
    );
    assert!(
        again["ves"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["result"] == "already"),
        "{again}"
    );
    env.assert_clean();
}

/// A contaminated file that a later VE renamed is restored at its name now, not recreated at
/// the name the contaminating VE wrote it under.
#[test]
fn root_recover_restores_a_renamed_file_at_its_current_name() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let policy = env.home().join("pre.toml");
    std::fs::write(&policy, "[recovery]\npreimages = true\n").unwrap();
    env.ok(&["app", "policy", "web", policy.to_str().unwrap()]);
    let d = env.home().join("persist/web/data");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("src"), "evil\n").unwrap();
    std::fs::write(d.join("report"), "clean\n").unwrap();
    env.sh_ok("cat /data/src > /data/report");
    env.sh_ok("mv /data/report /data/final");
    assert_eq!(std::fs::read_to_string(d.join("final")).unwrap(), "evil\n");
    let plan = env.json(&[
        "recover",
        "--from",
        "persist:web:/data/src",
        "--plan",
        "--json",
    ]);
    let files = plan["files"].as_array().unwrap();
    let f = files
        .iter()
        .find(|f| {
            f["renamed_from"]
                .as_str()
                .is_some_and(|r| r.ends_with("/data/report"))
        })
        .unwrap_or_else(|| panic!("{plan}"));
    assert!(
        f["path"].as_str().unwrap().ends_with("/data/final"),
        "{plan}"
    );
    env.ok(&["recover", "--from", "persist:web:/data/src", "--apply"]);
    assert_eq!(std::fs::read_to_string(d.join("final")).unwrap(), "clean\n");
    assert!(!d.join("report").exists(), "not recreated at its old name");
    env.assert_clean();
}
