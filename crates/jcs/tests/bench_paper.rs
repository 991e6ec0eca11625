//! Smoke test of the paper benchmark's table maker (bench/paper/table.py): a small recorded
//! sample (bench/paper/testdata/sample.jsonl, a test fixture, not results) becomes the Figure 3
//! and Figure 4 tables; malformed input is refused with a clear message.

use std::process::Command;

fn table(input: &std::path::Path) -> std::process::Output {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    Command::new("python3")
        .arg(repo.join("bench/paper/table.py"))
        .arg(input)
        .output()
        .expect("python3 (scripts/install-deps.sh installs it)")
}

#[test]
fn the_paper_tables_come_out_of_a_recorded_sample() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let o = table(&repo.join("bench/paper/testdata/sample.jsonl"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let t = String::from_utf8(o.stdout).unwrap();
    // Ratios computed from the sample: 412,345 / 2,410 and 20,312 / 2,410.
    assert!(
        t.contains("| apache | 60 | 412,345 | 20,312 | 2,410 | 17,902 | 171.1× | 8.4× | pending | pending |"),
        "{t}"
    );
    assert!(
        t.contains("| sqlite | 2 | 10,345 | 8,123 | 310 | 7,813 | 33.4× | 26.2× | 300 | 12 |"),
        "{t}"
    );
    assert!(t.contains("| apache | 3,120 | 0 |"), "{t}");
    assert!(t.contains("Figure 4: start-up"), "{t}");
    // A workload's other VE (a driver) gets its own row, apart from the workload's VE.
    assert!(t.contains("| sqlite | driver | 640 | 55 |"), "{t}");
}

#[test]
fn malformed_results_are_refused_with_where_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"workload\": \"x\"}\nnot json\n").unwrap();
    let o = table(&bad);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("bad.jsonl:2: not JSON"), "{e}");
    std::fs::write(&bad, "{\"workload\": \"x\", \"seconds\": 1}\n").unwrap();
    let e = String::from_utf8_lossy(&table(&bad).stderr).to_string();
    assert!(e.contains("workload x lacks host_set"), "{e}");
}
