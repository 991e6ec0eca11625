//! Every exit status README's table documents, each produced for real: what a script can rely
//! on. (122, a VE whose recording is incomplete, needs a killed daemon or a flood: root_record
//! and root_disk_full check it.)

mod common;
use common::Env;

/// `jcs ARGS`: its exit status and stderr.
fn status(env: &Env, args: &[&str]) -> (Option<i32>, String) {
    let o = env.jcs(args);
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn root_every_documented_exit_status() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    let cases: &[(&[&str], i32, &str)] = &[
        (&["run", "web", "--", "true"], 0, ""),
        // The command's own status, and 128+N for a signal.
        (&["run", "web", "--", "/bin/sh", "-c", "exit 7"], 7, ""),
        (
            &["run", "web", "--", "/bin/sh", "-c", "kill -9 $$"],
            137,
            "",
        ),
        // Bad input: one line.
        (&["inspect", "999"], 1, "999"),
        (&["log", "--since", "yesterday"], 1, "yesterday"),
        (&["run", "nosuchapp"], 1, "unknown app"),
        // A usage error: one line and a hint, 2.
        (&["run", "--rm", "web"], 2, "--rm-dirties"),
        (&["run", "web", "sh"], 2, "goes after --"),
        (&["log", "--bogus"], 2, "--bogus"),
        // The VE cannot be built, the command cannot be executed, is not found.
        (
            &["run", "-u", "nosuchuser", "web", "--", "true"],
            125,
            "nosuchuser",
        ),
        (&["run", "web", "--", "/etc/passwd"], 126, "cannot execute"),
        (&["run", "web", "--", "no-such-program"], 127, "not found"),
        // A check that finds a problem.
        (&["verify", "--strict-nothing"], 2, "--strict-nothing"),
    ];
    for (args, want, says) in cases {
        let (code, err) = status(&env, args);
        assert_eq!(code, Some(*want), "jcs {args:?}: {err}");
        assert!(err.contains(says), "jcs {args:?}: {err}");
        if *want == 1 || *want == 2 {
            let lines = err.lines().count();
            assert!(
                (1..=2).contains(&lines) && err.starts_with("jcs: "),
                "jcs {args:?}: one line (and a hint): {err}"
            );
        }
    }
    // A damaged journal: jcs verify exits 1 (control: 0 before).
    assert_eq!(status(&env, &["verify"]).0, Some(0));
    let seg = std::fs::read_dir(env.home().join("journal"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "seg"))
        .expect("a journal segment");
    env.stop_daemon();
    let mut bytes = std::fs::read(&seg).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    std::fs::write(&seg, bytes).unwrap();
    assert_eq!(status(&env, &["verify"]).0, Some(1));
    env.assert_clean();
}
