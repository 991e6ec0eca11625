//! Loads a BPF object file and attaches the named programs (all when none is named), then
//! holds them for SECONDS: what `bench/hook-cost.sh` uses to compare hook mechanisms.
//!   cargo run --release -p monitor --example attach -- OBJECT SECONDS [PROG,PROG…]
//! Prints one line per program: attached, or why not (a kernel that refuses the program type
//! says so here).

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(object), Some(secs)) = (args.next(), args.next()) else {
        eprintln!("usage: attach OBJECT SECONDS [PROG,PROG…]");
        std::process::exit(2);
    };
    let secs: u64 = secs.parse().unwrap_or(0);
    let only: Vec<String> = args
        .next()
        .map(|s| s.split(',').map(String::from).collect())
        .unwrap_or_default();
    let mut open = match libbpf_rs::ObjectBuilder::default().open_file(&object) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("attach: open {object}: {e}");
            std::process::exit(1);
        }
    };
    // Load only the programs asked for: another one the kernel refuses must not stop them.
    for mut p in open.progs_mut() {
        let name = p.name().to_string_lossy().to_string();
        p.set_autoload(only.is_empty() || only.contains(&name));
    }
    let obj = match open.load() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("attach: load {object}: {e}");
            std::process::exit(1);
        }
    };
    let mut links = Vec::new();
    for p in obj.progs_mut() {
        let name = p.name().to_string_lossy().to_string();
        if !only.is_empty() && !only.contains(&name) {
            continue;
        }
        match p.attach() {
            Ok(l) => {
                println!("{name}: attached");
                links.push(l);
            }
            Err(e) => {
                println!("{name}: not attached: {e}");
                std::process::exit(1);
            }
        }
    }
    std::thread::sleep(std::time::Duration::from_secs(secs));
}
