//! A catalog written by the version-2 schema (frozen from the first round's jcs, with a
//! busybox template, an app and two VEs that wrote files) opens, is upgraded in place, and
//! finds its variables by key.

use model::at::VarDef;
use record::VarQuery;
use store::Catalog;

#[test]
fn version_2_catalog_is_upgraded_and_keeps_everything() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("catalog.db");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/catalog-v2.db"),
        &p,
    )
    .unwrap();
    let c = Catalog::open(&p).unwrap();
    assert_eq!(c.ves().unwrap().len(), 2);
    assert_eq!(c.apps().unwrap().len(), 1);
    let ids = c
        .var_ids(&VarQuery::parse("file:/data/in.txt").unwrap().key().unwrap())
        .unwrap();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert!(matches!(
        c.var(ids[0]).unwrap(),
        Some(VarDef::File { path: Some(ref p), .. }) if p == "/data/in.txt"
    ));
    let ve1 = c
        .var_ids(&VarQuery::parse("ve:1").unwrap().key().unwrap())
        .unwrap();
    assert_eq!(ve1.len(), 1);
    drop(c);
    // Opened again: already at the current version, nothing to upgrade.
    let c = Catalog::open(&p).unwrap();
    assert_eq!(
        c.var_ids(&VarQuery::parse("ve:2").unwrap().key().unwrap())
            .unwrap()
            .len(),
        1
    );
}
