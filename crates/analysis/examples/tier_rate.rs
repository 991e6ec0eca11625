//! How fast each tier summarizes, on one core: N flows of a realistic shape (200 VEs working
//! in streaks, files read and written with a skew — 50 hot files of 5,000 —, endpoints),
//! T1, T1F and T2 timed three times each; prints flows per second and the records kept.
//!   cargo run --release -p analysis --example tier_rate -- [N]
use analysis::summary::{t1f, t2, T1};
use analysis::{Flow, Graph};
use std::collections::HashSet;
use std::time::Instant;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    // Variables: VE memories 1..=200, files 1_000.., endpoints 100_000.. (volatile).
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = move |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    let mut flows = Vec::with_capacity(n);
    let mut off = vec![0u64; 5_000];
    // What each VE did last (kind, file, endpoint): programs work in streaks — a file copied
    // in chunks, a download received in pieces —, so 4 in 5 calls repeat the VE's last.
    let mut last = vec![(0u64, 0usize, 0u32); 201];
    for i in 0..n {
        let ve = 1 + rnd(200) as u32;
        // A skew: half the file traffic goes to 50 hot files.
        let f = if rnd(2) == 0 { rnd(50) } else { rnd(5_000) } as usize;
        let mut pick = (rnd(10), f, 100_000 + rnd(300) as u32);
        if i > 0 && rnd(5) != 0 && last[ve as usize] != (0, 0, 0) {
            pick = last[ve as usize];
        }
        last[ve as usize] = pick;
        let (kind, f, ep) = pick;
        let file = 1_000 + f as u32;
        let len = 1 + rnd(4096);
        let (src, dst, src_range, dst_range) = match kind {
            0..=3 => (file, ve, Some((off[f] / 2, off[f] / 2 + len)), None),
            4..=6 => {
                let a = off[f];
                off[f] += len;
                (ve, file, None, Some((a, a + len)))
            }
            7 | 8 => (ep, ve, None, None),
            _ => (ve, ep, None, None),
        };
        flows.push(Flow {
            time: i as u64 * 1_000,
            src,
            dst,
            src_range,
            dst_range,
            len,
            at: i,
        });
    }
    let volatile: HashSet<u32> = (100_000..100_300).collect();
    let g = Graph::new(flows.clone(), volatile);
    println!("| tier | records | flows/s (3 runs) |");
    println!("|---|---|---|");
    let time = |name: &str, f: &dyn Fn() -> usize| {
        let mut rates = Vec::new();
        let mut kept = 0;
        for _ in 0..3 {
            let t = Instant::now();
            kept = f();
            rates.push(format!(
                "{:.2} M",
                n as f64 / t.elapsed().as_secs_f64() / 1e6
            ));
        }
        println!("| {name} | {kept} | {} |", rates.join(", "));
    };
    time("T1", &|| T1::new(&g).sts.len());
    time("T1F", &|| t1f(&g).len());
    time("T2", &|| t2(&flows).len());
}
