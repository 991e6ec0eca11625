//! The package: `scripts/package.sh` builds a .deb of this build's jcs; installed with
//! `dpkg --root` into a scratch root, it holds /usr/bin/jcs (which runs), the systemd units
//! pointing at it, completions and manual pages.

mod common;

use common::Env;
use std::process::Command;

#[test]
fn root_the_deb_installs_into_a_scratch_root_and_runs() {
    let Some(_env) = Env::new() else { return };
    let work = tempfile::Builder::new()
        .prefix("jcs-test-deb-")
        .tempdir()
        .unwrap();
    let out = work.path().join("out");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/package.sh");
    let o = Command::new(script)
        .args(["--binary", common::jcs_bin(), "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let deb = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(deb.ends_with(".deb"), "{deb}");
    // A scratch root with an empty dpkg database.
    let root = work.path().join("root");
    std::fs::create_dir_all(root.join("var/lib/dpkg/info")).unwrap();
    std::fs::create_dir_all(root.join("var/lib/dpkg/updates")).unwrap();
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    // What the maintainer script finds in its chroot: a shell and grep (busybox), an
    // /etc/group without the analysts' group, and in place of adduser's addgroup (a
    // dependency, not installed here) a stand-in that notes how it was asked and adds the
    // line.
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("usr/sbin")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for a in ["sh", "grep"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(a)).unwrap();
    }
    std::fs::write(root.join("etc/group"), "root:x:0:\n").unwrap();
    std::fs::write(
        root.join("usr/sbin/addgroup"),
        "#!/bin/sh\necho \"$*\" > /addgroup.args\necho \"$3:x:999:\" >> /etc/group\n",
    )
    .unwrap();
    std::fs::set_permissions(
        root.join("usr/sbin/addgroup"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let o = Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args(["--force-depends", "-i", &deb])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = Command::new(root.join("usr/bin/jcs"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("jcs "));
    let unit = std::fs::read_to_string(root.join("lib/systemd/system/jcs-daemon.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/jcs daemon"), "{unit}");
    for f in [
        "usr/share/bash-completion/completions/jcs",
        "usr/share/zsh/vendor-completions/_jcs",
        "usr/share/fish/vendor_completions.d/jcs.fish",
        "usr/share/man/man1/jcs.1.gz",
        "usr/share/man/man1/jcs-run.1.gz",
        "usr/share/doc/jcs/README.md",
        "usr/share/doc/jcs/schema/log.json",
        "etc/jcs/config.toml",
    ] {
        assert!(root.join(f).exists(), "{f} is not in the package");
    }
    let bash =
        std::fs::read_to_string(root.join("usr/share/bash-completion/completions/jcs")).unwrap();
    assert!(
        bash.contains("--publish"),
        "the completions know jcs run's options"
    );
    // The configuration it installs is valid as it is (every setting commented out), and a
    // conffile: dpkg keeps the admin's changes.
    let o = Command::new(root.join("usr/bin/jcs"))
        .args(["schema"])
        .env("JCS_CONFIG", root.join("etc/jcs/config.toml"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let conffiles = std::fs::read_to_string(root.join("var/lib/dpkg/info/jcs.conffiles")).unwrap();
    assert!(conffiles.contains("/etc/jcs/config.toml"), "{conffiles}");
    // The postinst made the analysts' group, a system group.
    let args = std::fs::read_to_string(root.join("addgroup.args")).unwrap();
    assert_eq!(args.trim(), "--system --quiet jcs-analyst");
    let group = std::fs::read_to_string(root.join("etc/group")).unwrap();
    assert!(group.contains("\njcs-analyst:x:"), "{group}");
    // Configured again (an upgrade), it leaves the existing group alone.
    std::fs::remove_file(root.join("addgroup.args")).unwrap();
    let o = Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args(["--force-depends", "-i", &deb])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!root.join("addgroup.args").exists(), "addgroup ran again");
    let listed = Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args(["-s", "jcs"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&listed.stdout).contains("Status: install ok installed"));
}
