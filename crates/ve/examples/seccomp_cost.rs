//! What installing the VE's seccomp filters costs a process: `N` children each set
//! no_new_privs, install the filters (`ve::seccomp::install`) and report the time it took
//! (CLOCK_MONOTONIC around the call); prints the median and quartiles in µs, and the filters'
//! lengths. `cargo run --release -p ve --example seccomp_cost -- [N]`
fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let progs = ve::seccomp::compile().expect("compile the filters");
    let lens: Vec<usize> = progs.iter().map(Vec::len).collect();
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let mut fds = [0; 2];
        // SAFETY: pipe writes two descriptors into the array.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: the child only makes system calls and exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            // SAFETY: prctl with integer arguments.
            unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
            let t = std::time::Instant::now();
            let ok = ve::seccomp::install(&progs).is_ok();
            let ns = if ok {
                t.elapsed().as_nanos() as u64
            } else {
                u64::MAX
            };
            // SAFETY: writes 8 bytes from a live u64; _exit ends the child.
            unsafe {
                libc::write(fds[1], (&ns as *const u64).cast(), 8);
                libc::_exit(0);
            }
        }
        let mut ns = 0u64;
        // SAFETY: reads 8 bytes into a live u64; waits for the child.
        unsafe {
            libc::close(fds[1]);
            libc::read(fds[0], (&mut ns as *mut u64).cast(), 8);
            libc::close(fds[0]);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
        assert_ne!(ns, u64::MAX, "install failed");
        times.push(ns);
    }
    times.sort_unstable();
    let q = |f: f64| times[((times.len() - 1) as f64 * f) as usize] as f64 / 1000.0;
    println!(
        "filters {lens:?} instructions; install: median {:.1} µs (q1 {:.1}, q3 {:.1}), {n} runs",
        q(0.5),
        q(0.25),
        q(0.75)
    );
}
