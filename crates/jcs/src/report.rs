//! `jcs report`: one self-contained HTML page (inline CSS, SVG and a little script; nothing
//! fetched) about a VE — its timeline, its integrity report, what it depended on and what it
//! contaminated — or about a source — where its data went, and the VEs it reached.

use crate::svg::{self, esc, Tick};
use anyhow::Result;
use model::report::IntegrityReport;
use query::log::{Entry, Filter, Log};
use query::track::{Direction, Source, TrackJson};
use std::fmt::Write;
use store::Store;

/// VEs of a `--from` report shown in full (timeline and integrity report).
const MAX_VES: usize = 8;

const STYLE: &str = r#"
body { font: 14px/1.45 "DejaVu Sans", sans-serif; margin: 24px; color: #222; max-width: 1400px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #ddd; }
.meta { color: #555; } .warn { color: #b00020; font-weight: bold; }
table { border-collapse: collapse; margin: 6px 0; } th, td { text-align: left; padding: 3px 10px 3px 0; vertical-align: top; }
th { border-bottom: 1px solid #ccc; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.flagged td { background: #fff1f0; } code, td.path { font-family: "DejaVu Sans Mono", monospace; font-size: 12.5px; }
.picture { overflow-x: auto; border: 1px solid #eee; padding: 6px; }
.node:hover rect { stroke-width: 3; } .hl rect { stroke-width: 3.5 !important; }
input#filter { margin: 4px 0; padding: 3px 6px; width: 320px; }
"#;

/// Marks the page rendered once every picture has a size (what a browser test checks), and
/// lets the integrity table be filtered and a variable be picked out in every graph.
const SCRIPT: &str = r#"
(function () {
  var svgs = document.querySelectorAll('svg'), ok = svgs.length > 0;
  svgs.forEach(function (s) { var b = s.getBBox(); if (!(b.width > 0 && b.height > 0)) ok = false; });
  document.documentElement.setAttribute('data-pictures', String(svgs.length));
  document.documentElement.setAttribute('data-nodes', String(document.querySelectorAll('g.node').length));
  document.documentElement.setAttribute('data-rendered', ok ? 'ok' : 'failed');
  var f = document.getElementById('filter');
  if (f) f.addEventListener('input', function () {
    var q = f.value.toLowerCase();
    document.querySelectorAll('table.integrity tbody tr').forEach(function (r) {
      r.style.display = r.textContent.toLowerCase().indexOf(q) >= 0 ? '' : 'none';
    });
  });
  document.querySelectorAll('g.node').forEach(function (n) {
    n.addEventListener('click', function () {
      var v = n.getAttribute('data-var');
      document.querySelectorAll('g.node').forEach(function (m) {
        m.classList.toggle('hl', m.getAttribute('data-var') === v);
      });
    });
  });
})();
"#;

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
         <style>{STYLE}</style></head><body>\n{body}\n<p class=\"meta\">Made by jcs {} on {}. \
         Every picture is drawn from the journal; hover for details.</p>\
         <script>{SCRIPT}</script></body></html>\n",
        esc(title),
        env!("CARGO_PKG_VERSION"),
        query::time::time_us(query::time::now_ns())
    )
}

/// The first and last instants of a timeline (None: nothing happened).
type Span = Option<(u64, u64)>;

/// The VE's transactions as timeline marks, and the first and last instants.
fn ticks(store: &Store, ve: u64) -> Result<(Vec<Tick>, Span)> {
    let filter = Filter {
        ves: Some([ve].into()),
        ..Filter::default()
    };
    let mut log = Log::open(store, filter)?;
    let mut out = vec![];
    log.read_new(&mut |e| {
        if let Entry::At { at, src, dst, .. } = e {
            out.push(Tick {
                time_ns: at.time_ns,
                pid: at.pid,
                op: at.op.name().to_string(),
                what: format!("{src} -> {dst}"),
                status: format!("{:?}", at.status).to_lowercase(),
            });
        }
        Ok::<(), anyhow::Error>(())
    })?;
    let span = out
        .iter()
        .map(|t| t.time_ns)
        .min()
        .zip(out.iter().map(|t| t.time_ns).max());
    Ok((out, span))
}

fn track(store: &Store, dir: Direction, var: &str, at_ns: Option<u64>) -> Result<TrackJson> {
    let q = record::VarQuery::parse(var)?;
    Ok(query::track::track_store(store, dir, &q, at_ns, None, Source::Transactions)?.to_json())
}

fn integrity_table(r: &IntegrityReport, id: &str) -> String {
    let mut h = String::new();
    let flagged = r
        .dirties
        .iter()
        .filter(|e| !e.flags.labels().is_empty())
        .count();
    let _ = write!(
        h,
        "<p>{} entries in its dirties ({} flagged), {} changes to persistent and shared storage.</p>",
        r.dirties.len(),
        flagged,
        r.storage.len()
    );
    let _ = write!(
        h,
        "<table class=\"integrity\" id=\"{id}\"><thead><tr><th>where</th><th>change</th><th>path</th><th>type</th>\
         <th>size</th><th>mode</th><th>flags</th><th>sha256</th></tr></thead><tbody>"
    );
    for e in &r.dirties {
        use model::DirtyKind::*;
        let change = match &e.kind {
            Added => "added",
            Modified { .. } => "modified",
            Deleted { .. } => "deleted",
            Opaque { .. } => "opaque",
        };
        let flags = e.flags.labels().join(", ");
        let _ = write!(
            h,
            "<tr class=\"dirty{}\"><td>dirties</td><td>{change}</td><td class=\"path\">{}</td><td>{}</td>\
             <td class=\"num\">{}</td><td><code>{:04o}</code></td><td>{}</td><td><code>{}</code></td></tr>",
            if flags.is_empty() { "" } else { " flagged" },
            esc(&e.path),
            format!("{:?}", e.file_type).to_lowercase(),
            e.size,
            e.mode,
            esc(&flags),
            e.sha256.as_deref().map_or("", |s| &s[..16.min(s.len())])
        );
    }
    for c in &r.storage {
        let _ = write!(
            h,
            "<tr class=\"storage\"><td>{}</td><td>{}</td><td class=\"path\">{}</td><td>{}</td>\
             <td class=\"num\">{}</td><td></td><td></td><td><code>{}</code></td></tr>",
            esc(&c.storage),
            format!("{:?}", c.change).to_lowercase(),
            esc(&c.path),
            format!("{:?}", c.file_type).to_lowercase(),
            c.size,
            c.sha256.as_deref().map_or("", |s| &s[..16.min(s.len())])
        );
    }
    h.push_str("</tbody></table>");
    for n in &r.notes {
        let _ = write!(h, "<p class=\"meta\">note: {}</p>", esc(n));
    }
    h
}

fn graph_section(id: &str, title: &str, a: &TrackJson) -> String {
    let mut h = format!("<h2 id=\"{id}-title\">{}</h2>", esc(title));
    if !a.complete {
        let _ = write!(
            h,
            "<p class=\"warn\">INCOMPLETE: {} gap(s) in the record and {} unreadable stretch(es) \
             may hide flows (jcs track … --json lists them).</p>",
            a.gaps.len(),
            a.skipped.len()
        );
    }
    let _ = write!(
        h,
        "<div class=\"picture\" id=\"{id}\">{}</div>",
        svg::graph_svg(a)
    );
    h
}

fn timeline_section(store: &Store, ve: u64, row: &store::VeRow) -> Result<String> {
    let (ticks, span) = ticks(store, ve)?;
    // The span of its transactions (its set-up before the first is JCS's, not the VE's),
    // with a little room on each side; without any, its life in the catalog.
    let (start, end) = match span {
        Some((a, b)) => {
            let pad = (b - a) / 50 + 1_000;
            (a.saturating_sub(pad), b + pad)
        }
        None => (
            row.started_ms.max(0) as u64 * 1_000_000,
            row.ended_ms
                .map_or_else(query::time::now_ns, |e| e.max(0) as u64 * 1_000_000),
        ),
    };
    Ok(format!(
        "<div class=\"picture\" id=\"timeline-{ve}\">{}</div>",
        svg::timeline_svg(&ticks, start, end)
    ))
}

fn ve_header(row: &store::VeRow) -> String {
    let state = match row.exit_code {
        Some(c) => format!("{} (exit {c})", row.state),
        None => row.state.clone(),
    };
    format!(
        "<p class=\"meta\">app <b>{}</b> v{} · {} · started {} · ended {} · <code>{}</code></p>",
        esc(&row.app),
        row.app_version,
        esc(&state),
        query::time::time_ms(row.started_ms),
        row.ended_ms.map_or("-".into(), query::time::time_ms),
        esc(&row.cmd.join(" "))
    )
}

fn ve_row(store: &Store, ve: u64) -> Result<store::VeRow> {
    store
        .catalog
        .ve(model::VeId(ve))?
        .ok_or_else(|| anyhow::anyhow!("no VE {ve} (see jcs ps --all)"))
}

/// The integrity report, or why there is none (a removed VE, or not root).
fn integrity(store: &Store, ve: u64, table_id: &str) -> String {
    match lifecycle::ves::report(store, ve) {
        Ok(r) => integrity_table(&r, table_id),
        Err(e) => format!(
            "<p class=\"meta\">no integrity report: {}</p>",
            esc(&format!("{e:#}"))
        ),
    }
}

/// `jcs report VE`.
pub fn ve_report(store: &Store, ve: u64) -> Result<String> {
    let row = ve_row(store, ve)?;
    let var = format!("ve:{ve}");
    let back = track(store, Direction::Back, &var, None)?;
    let forward = track(store, Direction::Forward, &var, None)?;
    let mut b = format!(
        "<h1>VE {ve}{}</h1>",
        row.name
            .as_deref()
            .map_or(String::new(), |n| format!(" ({})", esc(n)))
    );
    b.push_str(&ve_header(&row));
    b.push_str("<h2 id=\"timeline-title\">Timeline</h2>");
    b.push_str(&timeline_section(store, ve, &row)?);
    b.push_str("<h2 id=\"integrity-title\">Integrity report</h2>");
    b.push_str("<input id=\"filter\" placeholder=\"filter the table\">");
    b.push_str(&integrity(store, ve, "integrity"));
    b.push_str(&graph_section(
        "depends",
        "What it depended on (track back)",
        &back,
    ));
    b.push_str(&graph_section(
        "contaminated",
        "What it contaminated (track forward)",
        &forward,
    ));
    Ok(page(&format!("JCS report: VE {ve}"), &b))
}

/// `jcs report --from VAR`.
pub fn from_report(store: &Store, var: &str, at_ns: Option<u64>) -> Result<String> {
    let forward = track(store, Direction::Forward, var, at_ns)?;
    let mut ves: Vec<u64> = forward.edges.iter().map(|e| e.ve).collect();
    ves.sort_unstable();
    ves.dedup();
    let mut b = format!("<h1>Where {} went</h1>", esc(var));
    let _ = write!(
        b,
        "<p class=\"meta\">{} variables reached through {} VE(s){}.</p>",
        forward.reached.len(),
        ves.len(),
        at_ns.map_or(String::new(), |t| format!(
            " from {}",
            query::time::time_us(t)
        ))
    );
    b.push_str(&graph_section("contaminated", "Tracked forward", &forward));
    b.push_str("<input id=\"filter\" placeholder=\"filter the tables\">");
    for (i, &ve) in ves.iter().enumerate() {
        if i == MAX_VES {
            let _ = write!(
                b,
                "<p class=\"meta\">… and {} more VE(s): jcs report VE for each.</p>",
                ves.len() - MAX_VES
            );
            break;
        }
        let Ok(row) = ve_row(store, ve) else { continue };
        let _ = write!(b, "<h2 id=\"ve-{ve}\">VE {ve}</h2>");
        b.push_str(&ve_header(&row));
        b.push_str(&timeline_section(store, ve, &row)?);
        b.push_str(&integrity(store, ve, &format!("integrity-{ve}")));
    }
    Ok(page(&format!("JCS report: {var}"), &b))
}
