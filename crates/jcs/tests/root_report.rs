//! `jcs report`: one self-contained HTML page, opened in a real browser (headless Chromium from
//! Debian), which finds its pictures laid out and its sections; and `jcs track --svg` without
//! Graphviz.

mod common;
use common::Env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Debian's headless Chromium (scripts/install-deps.sh installs it).
fn browser() -> PathBuf {
    for b in [
        "/usr/bin/chromium-headless-shell",
        "/usr/lib/chromium/chromium-headless-shell",
        "/usr/bin/chromium",
    ] {
        if Path::new(b).exists() {
            return b.into();
        }
    }
    panic!("no headless Chromium: scripts/install-deps.sh installs chromium-headless-shell");
}

/// The page's DOM after a real browser loaded it and ran its script.
fn dom(page: &Path) -> String {
    let profile = tempfile::tempdir().unwrap();
    let o = Command::new(browser())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--virtual-time-budget=2000", "--dump-dom"])
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// The value of attribute `attr` of the page's <html> element.
fn html_attr<'a>(dom: &'a str, attr: &str) -> &'a str {
    let start = dom.find("<html").expect("an html element");
    let tag = &dom[start..start + dom[start..].find('>').unwrap()];
    let at = tag
        .find(&format!("{attr}=\""))
        .unwrap_or_else(|| panic!("no {attr} in {tag}"));
    let v = &tag[at + attr.len() + 2..];
    &v[..v.find('"').unwrap()]
}

#[test]
fn root_a_report_opens_in_a_browser_with_every_part() {
    let Some(env) = Env::new() else { return };
    env.standard_app();
    // A VE that reads a download, writes 30 files of one directory (a fan-out) and one
    // elsewhere, and leaves an executable in its dirties (a flag).
    std::fs::create_dir_all(env.home().join("shared/downloads")).unwrap();
    std::fs::write(env.home().join("shared/downloads/in.txt"), "payload\n").unwrap();
    env.sh_ok(
        "mkdir -p /data/cache; for i in $(seq 1 30); do cat /dl/in.txt > /data/cache/f$i; done; \
         cat /dl/in.txt > /data/report.txt; echo x > /tmp/tool; chmod +x /tmp/tool",
    );
    let page = env.home().join("ve1.html");
    env.ok(&["report", "1", "--html", page.to_str().unwrap()]);
    let html = std::fs::read_to_string(&page).unwrap();
    // Self-contained: nothing is fetched.
    for bad in [
        "src=\"http",
        "href=\"http",
        "<link",
        "@import",
        "<script src",
    ] {
        assert!(!html.contains(bad), "the page fetches something: {bad}");
    }
    // The fan-out is one box.
    assert!(
        html.contains("30 files in /data/cache"),
        "no group in the graph"
    );
    let d = dom(&page);
    assert_eq!(
        html_attr(&d, "data-rendered"),
        "ok",
        "a picture has no size"
    );
    // Timeline, two graphs.
    assert_eq!(html_attr(&d, "data-pictures"), "3");
    let nodes: usize = html_attr(&d, "data-nodes").parse().unwrap();
    assert!((4..=20).contains(&nodes), "{nodes} boxes");
    for id in [
        "id=\"timeline-1\"",
        "id=\"integrity\"",
        "id=\"depends\"",
        "id=\"contaminated\"",
        "class=\"tick p committed\"",
        "class=\"dirty flagged\"",
    ] {
        assert!(d.contains(id), "the browser's DOM has no {id}");
    }
    assert!(d.contains("/tmp/tool"));

    // From a source: where the download went, and the VE it reached.
    let page = env.home().join("from.html");
    env.ok(&[
        "report",
        "--from",
        "shared:downloads/in.txt",
        "--html",
        page.to_str().unwrap(),
    ]);
    let d = dom(&page);
    assert_eq!(html_attr(&d, "data-rendered"), "ok");
    assert!(
        d.contains("id=\"ve-1\"") && d.contains("id=\"integrity-1\""),
        "VE 1 not shown"
    );
    assert!(d.contains("file:/data/report.txt"), "the file it reached");

    // Control: a page whose picture is broken is caught by the same check.
    let broken = env.home().join("broken.html");
    std::fs::write(
        &broken,
        html.replacen("<svg ", "<svg style=\"display:none\" ", 1),
    )
    .unwrap();
    assert_eq!(html_attr(&dom(&broken), "data-rendered"), "failed");

    // jcs track --svg: the same drawing, no Graphviz.
    let svg = env.home().join("t.svg");
    env.ok(&[
        "track",
        "forward",
        "shared:downloads/in.txt",
        "--svg",
        svg.to_str().unwrap(),
    ]);
    let s = std::fs::read_to_string(&svg).unwrap();
    assert!(
        s.starts_with("<svg") && s.contains("30 files in /data/cache"),
        "{s}"
    );
    // Errors: no such VE; no VE and no --from.
    let e = env.fails(&["report", "99", "--html", "/dev/null"]);
    assert!(e.contains("99"), "{e}");
    let o = env.jcs(&["report", "--html", "/dev/null"]);
    assert_eq!(o.status.code(), Some(2));
    env.assert_clean();
}
