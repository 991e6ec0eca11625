//! `jcs`, the Journaling Computing System command: templates, apps, VEs and their integrity
//! reports. This binary wires the pure crates to the OS; it prints every error once, as one
//! line, and exits nonzero.

mod commands;
mod config;
mod json;
mod output;
mod queries;
mod report;
mod svg;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use model::limits::parse_size;
use model::{Limits, Name, NetMode};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "jcs",
    version,
    about = "Journaling Computing System: run every application instance in its own fresh VE and report what crossed its boundary",
    long_about = "Journaling Computing System.\n\nEvery application instance runs in its own freshly built, never reused container (a VE) whose root file system is a union of branches: the VE's dirties (writable, kept after exit), the app's persistent and shared storage, the app branch and the template (read-only). Whatever a VE writes outside its persistent storage lands in its dirties, where `jcs inspect` reports it. What crosses a VE's boundary (files outside read-only branches, sockets, processes) is recorded by an eBPF monitor (`jcs daemon`, started on demand) into a tamper-evident journal: `jcs log`, `jcs stats`, `jcs verify`. JCS_MONITOR=off runs VEs unrecorded.\n\nThe store lives in /var/lib/jcs, or in $JCS_HOME, or where --home says. jcs needs root."
)]
struct Cli {
    /// Store directory (default: $JCS_HOME, else /var/lib/jcs)
    #[arg(long, global = true, value_name = "DIR")]
    home: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
#[command(defer = true)]
enum TrackCmd {
    /// Every variable whose data could have flowed into VAR by time --at (default: now)
    Back {
        /// file:PATH, persist:APP:PATH, shared:NAME/PATH, file:[DEV:INO:GEN],
        /// endpoint:tcp/ADDR:PORT or ve:N
        var: String,
        /// Only flows up to this TIME (a file name: the file that had it then)
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        #[command(flatten)]
        out: TrackOut,
    },
    /// Everything VAR's data could have reached from time --from (default: the beginning)
    Forward {
        /// file:PATH, persist:APP:PATH, shared:NAME/PATH, file:[DEV:INO:GEN],
        /// endpoint:tcp/ADDR:PORT or ve:N
        var: String,
        /// Only flows from this TIME on (a file name: the file that had it then)
        #[arg(long, value_name = "TIME")]
        from: Option<String>,
        #[command(flatten)]
        out: TrackOut,
    },
}

#[derive(clap::Args, Debug)]
struct TrackOut {
    /// JSON instead of a tree
    #[arg(long, conflicts_with = "dot")]
    json: bool,
    /// Graphviz DOT instead of a tree
    #[arg(long)]
    dot: bool,
    /// Draw the graph as an SVG picture into FILE (large fan-outs grouped; no Graphviz needed)
    #[arg(long, value_name = "FILE", conflicts_with_all = ["json", "dot"])]
    svg: Option<std::path::PathBuf>,
    /// Answer from summaries of the transactions: T1 (the same answers), T1F (the same at file
    /// granularity: byte ranges widened to whole files) or T2 (may add false dependencies,
    /// never loses one)
    #[arg(long, value_parser = ["T1", "T1F", "T2"])]
    tier: Option<String>,
    /// Exit 1 when part of the journal could not be read (the answer says what it misses)
    #[arg(long)]
    strict: bool,
    /// A file:PATH is the path inside this VE
    #[arg(long, value_name = "N", conflicts_with = "app")]
    ve: Option<VeArg>,
    /// A file:PATH is the path inside this app's VEs
    #[arg(long, value_name = "APP")]
    app: Option<String>,
    /// Track across hosts: the transactions jcs collect loaded into this ClickHouse database
    /// (clickhouse://HOST:PORT[/DATABASE]); a connection between VEs of two hosts is followed
    /// from one to the other
    #[arg(long, value_name = "URL", conflicts_with = "app")]
    fleet: Option<String>,
    /// With --fleet: VAR (and --ve) is of this host (default: any host's)
    #[arg(long, value_name = "HOST", requires = "fleet")]
    host: Option<String>,
}

/// A transaction's status, as `--status` names it.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum StatusArg {
    Committed,
    Aborted,
    Failed,
}

#[derive(Subcommand, Debug)]
#[command(defer = true)]
enum Cmd {
    /// Check the kernel features JCS needs and whether each is present
    Doctor {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Manage templates: read-only, versioned base file systems
    #[command(subcommand)]
    Template(TemplateCmd),
    /// Manage apps: an app branch on a template, with persistent and shared storage
    #[command(subcommand)]
    App(AppCmd),
    /// Check a policy file, or run one over the journal's past (what it would have aborted)
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Build a fresh VE of APP and run a command in it; exits with the command's exit code
    #[command(
        after_help = "Examples:\n  jcs run web -- /bin/sh -c 'echo hi > /tmp/x'\n  jcs run web --memory 256M --pids 64\n  jcs run -d web -- /usr/sbin/nginx -g 'daemon off;'   (prints the VE's id; jcs logs, jcs stop)\n  jcs run -u nobody web -- id\n  jcs run -v /srv/in:/in:ro -v /srv/out:/out web -- sh -c 'cp /in/* /out/'\n  jcs run -d -p 8080:80 --net bridge web -- httpd -f -p 80\n\nCtrl-C (without -t), SIGTERM or SIGHUP is passed to the command first (as if it ran without JCS);
what has not ended after --stop-timeout, or at a second signal, is killed with the whole VE.
With -t, Ctrl-C reaches the command through its terminal. Its dirties stay in the store until
jcs rm or jcs gc.\n\nExit status: the command's; 1 for bad input, 2 for a usage error, 125 when the VE cannot be built, 126 when the command cannot be executed, 127 when it is not found, 122 when the VE ran but its recording is incomplete (README: Exit status)."
    )]
    Run {
        /// App to run
        app: String,
        /// Memory limit of the VE (e.g. 512M, 2G)
        #[arg(long, default_value = "1G")]
        memory: String,
        /// Maximum number of processes and threads in the VE
        #[arg(long, default_value_t = 1024)]
        pids: u64,
        /// CPU time the VE may use, in CPUs (e.g. 0.5, 2); default: no limit
        #[arg(long, value_name = "N")]
        cpus: Option<String>,
        /// Bytes the VE may write into its dirties (e.g. 512M): a file system of that size of
        /// its own, kept after the VE; default: no limit but the store's disk
        #[arg(long, value_name = "SIZE")]
        disk: Option<String>,
        /// Network of this VE, instead of the app's: none (only lo) or bridge
        #[arg(long)]
        net: Option<NetMode>,
        /// Give back a capability the VE does not get by default: NET_RAW (raw sockets, ping;
        /// packet sockets stay denied) or AUDIT_WRITE (repeatable)
        #[arg(long, value_name = "CAP")]
        cap_add: Vec<String>,
        /// Give the VE its own terminal (a pty of its own, proxied to this one: job control,
        /// window size); the default when stdin is a terminal
        #[arg(short = 't', long, conflicts_with = "no_tty")]
        tty: bool,
        /// Never give the VE a terminal (its stdin, stdout and stderr are this command's)
        #[arg(short = 'T', long)]
        no_tty: bool,
        /// Pass descriptors 3..3+N of this process into the VE (by default only 0, 1 and 2
        /// pass; every other descriptor is closed before the VE runs)
        #[arg(long, value_name = "N", default_value_t = 0)]
        preserve_fds: u32,
        /// After Ctrl-C, SIGTERM or SIGHUP (passed to the command), how long the command has to
        /// end before the VE is killed; a second signal kills it at once
        #[arg(long, value_name = "SECS", default_value_t = 10)]
        stop_timeout: u64,
        /// Write the VE's id to FILE (a new file) as soon as it has one, before the command
        /// starts: what scripts use to find their VE (`jcs log --ve $(cat FILE)`)
        #[arg(long, value_name = "FILE")]
        id_file: Option<PathBuf>,
        /// Set an environment variable of the command (KEY alone: this process's value);
        /// repeatable, over the defaults (PATH, HOME, TERM, HOSTNAME, JCS_VE)
        #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
        env: Vec<String>,
        /// Read environment variables from FILE: a KEY=VALUE per line (KEY alone: this
        /// process's value; # comments and blank lines skipped; no quoting); --env wins
        #[arg(long, value_name = "FILE")]
        env_file: Vec<PathBuf>,
        /// The command's working directory inside the VE (absolute; made when missing)
        #[arg(short = 'w', long, value_name = "DIR")]
        workdir: Option<String>,
        /// Mount the host directory HOST at PATH in the VE (`:ro`: read-only); repeatable. It is
        /// storage like a shared directory: what crosses it is recorded, named `volume:HOST/…`
        #[arg(short = 'v', long = "volume", value_name = "HOST:PATH[:ro]")]
        volume: Vec<String>,
        /// Publish the VE's TCP port VEPORT on the host side's HOSTPORT (all addresses, or
        /// ADDR; loopback too): jcs run relays each connection; the VE must be on the bridge;
        /// repeatable
        #[arg(short = 'p', long = "publish", value_name = "[ADDR:]HOSTPORT:VEPORT")]
        publish: Vec<String>,
        /// Name the VE: every command that takes a VE takes this name too (unique among the
        /// VEs not removed: `jcs rm` frees it; letters, digits, '.', '_', '-', not only digits)
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// Detach: print the VE's id once it has one and return; the VE runs on, its output
        /// going to a log (`jcs logs VE`), `jcs stop VE` ends it
        #[arg(short = 'd', long, conflicts_with = "tty")]
        detach: bool,
        /// Run the command as USER (a name of the VE's /etc/passwd, or a number) and GROUP (of
        /// its /etc/group, or a number; default: the user's group), with the groups /etc/group
        /// gives the user; a user other than root has no capabilities
        #[arg(short = 'u', long, value_name = "USER[:GROUP]")]
        user: Option<String>,
        /// Exit 122 when the monitor dropped any of the VE's records (by default: a warning;
        /// the journal has a gap either way)
        #[arg(long)]
        strict_recording: bool,
        /// Remove the VE's dirties and metadata once it has ended, as `jcs rm` does (docker's
        /// --rm) — unless its integrity report flags something: that evidence is kept (and
        /// said); the journal keeps what it did either way
        #[arg(long)]
        rm_dirties: bool,
        /// Command and arguments (default: the app's --cmd)
        #[arg(last = true)]
        cmd: Vec<String>,
    },
    /// Undo what a VE changed in persistent and shared storage (its app keeps pre-images)
    #[command(
        after_help = "Examples:\n  jcs abort 7 --dry-run\n  jcs abort 7\n\nThe VE's work is one transaction, aborted: every file of persistent or shared storage it\nchanged gets back its content (in place: same inode), mode, owner and time; what it created is\nremoved, what it deleted recreated, what it renamed renamed back. A running VE is ended first.\nNeeds the pre-images its\napp keeps with `[recovery] preimages = true` in its policy (docs/policy.md).\nA file changed later by another VE, or modified after the VE ended, is a conflict: listed and\nleft alone unless --force. Running it again completes an abort that was cut short.\nExit status: 0, or 1 when a step was skipped (conflict) or failed."
    )]
    Abort {
        /// The VE
        ve: VeArg,
        /// Only list what would be done
        #[arg(long)]
        dry_run: bool,
        /// Also overwrite files changed after the VE (the conflicts)
        #[arg(long)]
        force: bool,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Recover from an attack: track a source forward and put every file it contaminated back
    #[command(
        after_help = "Examples:\n  jcs recover --from endpoint:tcp/10.80.0.1:8000 --plan\n  jcs recover --from shared:downloads/evil.doc --at 2h --apply\n\nThe journal is tracked forward from VAR (as jcs track forward names it): every file of persistent\nor shared storage its data reached goes back to its content before the first VE that\ncontaminated it changed it (that VE's pre-image: its app keeps them with [recovery] preimages =\ntrue), or is removed when that VE created it; the later changes to it by other VEs are listed\nas lost with it. The contaminated VEs' dirties are quarantined (ve/N/meta/quarantined.json); a\nrunning one must be ended first. Memory is not restored: VEs are never reused.\n--apply keeps a recovery journal (versions/recover/ID.json); run it again after a crash.\nExit status: 0; 1 when a file could not be put back (no pre-image, a failed step)."
    )]
    Recover {
        /// Where the contamination came from: endpoint:…, file:…, shared:…, persist:…, ve:N
        #[arg(long, value_name = "VAR")]
        from: String,
        /// Only what it reached at or after TIME
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        /// Only show the plan
        #[arg(long, conflicts_with = "apply", required_unless_present = "apply")]
        plan: bool,
        /// Carry the plan out
        #[arg(long)]
        apply: bool,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// The version store (pre-images): retention
    #[command(subcommand)]
    Versions(VersionsCmd),
    /// List VEs: running ones, or all with --all
    Ps {
        /// Include finished, failed and removed VEs
        #[arg(long)]
        all: bool,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Integrity report of a VE: what it wrote into its dirties and its storage
    #[command(
        after_help = "Dirties: every entry of the VE's writable branch, with what it shadows in the app's layers.\nStorage: what the VE added, modified and deleted in its persistent and shared storage and\nvolumes, as of its end — names compared before and after it, and the files its recording\nsays it changed (through a descriptor, or by a name, through any symbolic link). A file\nanother process changed meanwhile is not listed — unless the recording was incomplete: then\nevery storage file whose status changed while the VE ran is, and a note says so (another\nnote when names in shared storage may be another VE's). A VE run with JCS_MONITOR=off is\ncompared entry by entry (every change, whoever made it).\n\nExamples:\n  jcs inspect 7\n  jcs inspect web-1 --json"
    )]
    Inspect {
        /// The VE: its id (see jcs ps --all) or its name
        ve: VeArg,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Stop running VEs: SIGTERM to every process, SIGKILL to what is left after --timeout
    #[command(
        after_help = "Examples:\n  jcs stop 7\n  jcs stop 7 8 --timeout 2\n\nThe VE's jcs run tears it down and exits with the command's status (143 after SIGTERM,\n137 after SIGKILL). Exit status: 0; 1 when a VE was not running."
    )]
    Stop {
        /// VEs: ids, or names given with jcs run --name
        #[arg(required = true)]
        ves: Vec<VeArg>,
        /// Seconds between SIGTERM and SIGKILL
        #[arg(long, default_value_t = 10)]
        timeout: u64,
    },
    /// Run a command in a running VE: a new process with the VE's namespaces, cgroups, limits,
    /// seccomp filter and capabilities, recorded as the VE's
    #[command(
        after_help = "Examples:\n  jcs exec 7 -- ps\n  jcs exec api -u nobody -w /srv -- sh -c 'ls -l'\n\nThe command runs in a session of its own: with -t (the default when stdin is a terminal) its\ncontrolling terminal is a pty of the VE's, proxied to this one; otherwise it gets this command's\nstdin, stdout and stderr. Only descriptors 0-2 pass. Refused for a VE whose app keeps\npre-images. It returns once what the command did is in the journal (as jcs run does).\nSIGINT (Ctrl-C without -t), SIGTERM and SIGHUP sent to jcs exec are passed to the command; if\njcs exec is killed, the command gets SIGHUP.\nExit status: the command's (128+N when signal N ended it); 125 when it could not be set up,\n126/127 when it could not be executed."
    )]
    Exec {
        /// The VE: its id or its name
        ve: VeArg,
        /// Set an environment variable (KEY alone: this process's value); repeatable
        #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
        env: Vec<String>,
        /// The command's working directory inside the VE (absolute)
        #[arg(short = 'w', long, value_name = "DIR")]
        workdir: Option<String>,
        /// Run as USER[:GROUP] of the VE's /etc/passwd and /etc/group
        #[arg(short = 'u', long, value_name = "USER[:GROUP]")]
        user: Option<String>,
        /// Give the command a terminal of its own: a pty of the VE's, proxied to this one
        /// (raw mode, window size); the default when stdin is a terminal
        #[arg(short = 't', long, conflicts_with = "no_tty")]
        tty: bool,
        /// Never give the command a terminal (it gets this command's stdin, stdout, stderr)
        #[arg(short = 'T', long)]
        no_tty: bool,
        /// The command and its arguments
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// Print what a VE started with `jcs run -d` wrote to its stdout and stderr
    #[command(
        after_help = "Examples:\n  jcs logs 7\n  jcs logs 7 --follow\n\nThe output of a detached VE is kept in the store (ve/N/output.log) until jcs rm or jcs gc."
    )]
    Logs {
        /// The VE: its id or its name
        ve: VeArg,
        /// Keep printing what it writes until it ends
        #[arg(short, long)]
        follow: bool,
    },
    /// Kill running VEs at once (SIGKILL to every process, by the cgroup)
    Kill {
        /// VEs: ids, or names given with jcs run --name
        #[arg(required = true)]
        ves: Vec<VeArg>,
    },
    /// Remove finished VEs' dirties and metadata (never a running VE's)
    Rm {
        /// VEs: ids, or names given with jcs run --name
        #[arg(required = true)]
        ves: Vec<VeArg>,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    #[command(
        after_help = "Examples:\n  jcs completions bash > /usr/share/bash-completion/completions/jcs\n  jcs completions zsh > /usr/share/zsh/vendor-completions/_jcs\n\nThe .deb (scripts/package.sh) installs them."
    )]
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
    /// One self-contained HTML page about a VE or a source: timeline, integrity report, graphs
    #[command(
        after_help = "Examples:\n  jcs report 7 --html ve7.html\n  jcs report --from endpoint:tcp/10.80.0.1:8000 --html incident.html\n\nFor a VE: its timeline (a lane per process, a mark per transaction), its integrity report\n(what it wrote into its dirties and storage, flagged entries first in colour), and two graphs:\nwhat it depended on (jcs track back ve:N) and what it contaminated (jcs track forward ve:N).\nWith --from VAR: where VAR's data went (jcs track forward), and for each VE it reached (the\nfirst 8) its timeline and integrity report. The page fetches nothing: CSS, SVG and its script\nare inside; large fan-outs are grouped (\"23 files in /data/cache\"); hover for details."
    )]
    Report {
        /// The VE (an id, or a name given with jcs run --name)
        #[arg(required_unless_present = "from", conflicts_with = "from")]
        ve: Option<VeArg>,
        /// A source instead: file:PATH, persist:APP:PATH, endpoint:tcp/ADDR:PORT, ve:N, …
        #[arg(long, value_name = "VAR")]
        from: Option<String>,
        /// With --from: from this time on (TIME as jcs track takes it)
        #[arg(long, value_name = "TIME", requires = "from")]
        at: Option<String>,
        /// Write the page to FILE (- for stdout)
        #[arg(long, value_name = "FILE")]
        html: PathBuf,
    },
    /// (Internal) copy stdin into FILE, keeping it under MAX bytes: a detached VE's output
    #[command(name = "capture-output", hide = true)]
    CaptureOutput {
        /// The most bytes FILE holds: past it, the older half is dropped (and said so)
        #[arg(long)]
        max: u64,
        file: PathBuf,
    },
    /// Print the JSON Schema of a command's --json output (or, with no NAME, list them)
    #[command(
        after_help = "Examples:\n  jcs schema\n  jcs schema ps > ps.schema.json\n  jcs schema --write /usr/share/doc/jcs/schema\n\nEvery --json output follows one convention: one object (JSON lines for jcs log), a VE is\n`ve`, an instant is an integer `K_ns` (nanoseconds since the epoch) beside a string `K` (RFC 3339,\nUTC), a mode is an octal string. The schemas are JSON Schema 2020-12, generated from the types\nthat print the output; docs/schema/ has them too."
    )]
    Schema {
        /// The output: ps, log, inspect, track, … (`jcs schema` lists them)
        #[arg(conflicts_with = "write")]
        name: Option<String>,
        /// Write every schema into DIR as NAME.json (made when missing)
        #[arg(long, value_name = "DIR")]
        write: Option<PathBuf>,
    },
    /// Write the manual pages (jcs.1 and one per command) into DIR
    #[command(after_help = "Example:\n  jcs man /usr/share/man/man1 && man jcs-run")]
    Man {
        /// Where to write them (made when missing)
        dir: PathBuf,
    },
    /// Run the monitor: the eBPF programs and the journal writer (started by jcs run on demand)
    ///
    /// One daemon per host serves every store: it loads the eBPF programs once for all VEs of
    /// all stores, turns their records into atomic transactions and appends each to its own
    /// store's $JCS_HOME/journal; it indexes each journal segment once it is sealed, and keeps
    /// the variable dictionary in the store's catalog. When a daemon of this build already
    /// serves the host ($JCS_RUN_DIR/host.sock, default /run/jcs), jcs daemon hands this store
    /// to it and stays as its companion (shipping and retention run here) until it ends. Its
    /// log is $JCS_HOME/daemon.log of the store jcs run started it for.
    ///
    /// With --summarize online (or JCS_SUMMARIZE=online in the environment of the jcs run that
    /// starts it), repeated transfers reach the journal as T1 summaries: the same tracking
    /// answers, fewer records and bytes (a transfer that merges with nothing stays a
    /// transaction); jcs log then lists summaries. A summary is held in memory for at most a
    /// second, or until its VE ends (docs/summarization.md).
    ///
    /// Environment: JCS_SEGMENT_BYTES (journal segment size, default 64 MiB), JCS_SUMMARIZE,
    /// JCS_RUN_DIR (where the host's daemons meet: a store whose daemons meet elsewhere gets a
    /// daemon, and a set of eBPF programs, of its own).
    #[command(verbatim_doc_comment)]
    Daemon {
        /// `online`: summarize (T1) before records reach the journal
        #[arg(long, value_parser = ["online"])]
        summarize: Option<String>,
        /// Keep the journal older than each age in that tier, e.g. 'T1 after 1d, T4 after 30d'
        /// (default: $JCS_RETAIN, the configuration's retention.journal; none: everything is
        /// kept as recorded). Checked every hour ($JCS_RETAIN_EVERY, an age).
        #[arg(long, value_name = "POLICY")]
        retain: Option<String>,
        /// Ship the journal to these NATS servers as it grows, as `jcs ship --follow` does
        /// (default: $JCS_SHIP, the configuration's ship.to). Host name, stream and replicas:
        /// $JCS_SHIP_HOST, $JCS_SHIP_STREAM, $JCS_SHIP_REPLICAS (ship.host, ship.stream,
        /// ship.replicas).
        #[arg(long, value_name = "URLS")]
        ship: Option<String>,
        /// Serve Prometheus metrics on ADDR:PORT (GET /metrics; docs/metrics.md) (default:
        /// $JCS_METRICS, the configuration's metrics)
        #[arg(long, value_name = "ADDR:PORT")]
        metrics: Option<std::net::SocketAddr>,
    },
    /// Per VE: transactions by operation, system calls seen, not recorded, dropped by classification, lost
    #[command(
        after_help = "Dropped by classification: calls that JCS saw and counted but did not need to \
record, because nothing crossed the VE's boundary: opens, reads and closes of files that exist only in \
read-only branches; pipes, the VE's own ptys and socketpairs, loopback traffic; eventfds and other \
anonymous inodes; /dev/null, zero, full, random, urandom; reads of /proc, /sys and cgroupfs (and a process's own /proc/PID entries, written too); calls that \
returned EAGAIN; calls that failed (ENOENT, ENOTDIR, EEXIST, ENXIO) on names outside the VE's persistent and \
shared directories. Threads' starts and ends are not recorded either (process forks and exits are).\n\n\
INTEGRITY: integrity records, and in parentheses the writes they stand for: what the VE wrote into \
files of its dirties (its own copy-on-write layer), one record per file per second of writing, \
instead of a transaction per write; the VE's reads back of those files are dropped.\n\n\
T1 SUMMARIES (shown when a daemon ran with --summarize online): the T1 summaries the recorder wrote \
instead of transactions, and in parentheses the flows they stand for; NOT RECORDED leaves those out."
    )]
    Stats {
        /// Only this VE
        #[arg(long)]
        ve: Option<VeArg>,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
        /// Exit 1 when part of the journal could not be read (it is skipped with a warning)
        #[arg(long)]
        strict: bool,
    },
    /// The recorded atomic transactions, oldest first
    #[command(
        after_help = "Examples:\n  jcs log --ve 3\n  jcs log --app web --since 10m\n  jcs log --var file:/data/report.txt --json\n  jcs log --var 'persist:web:/data/*' --format csv\n  jcs log --var endpoint:tcp/10.231.0.2:8080 --follow\n\nA file is printed by the name it had in the VE when the call touched it (a rename or link by\nthe name it gave); its identity, one whatever its names, is src_id/dst_id in --json.\nTIME: 2026-11-28T05:00:00Z, 2026-11-28T06:00+01:00, 2026-11-28 06:00 (local time, TZ), 2026-11-28\n(local midnight), seconds since the epoch, or an age such as 90s, 10m, 2h, 7d.\nSummaries are listed as `FIRST – LAST TIER summary SRC -> DST ×COUNT BYTES B` (JSON: a \"summary\"\nfield): T1 from a daemon with --summarize online, and the integrity records — what a VE wrote\ninto one file of its dirties, one record per file and second of writing instead of each write.\nSegments rewritten by jcs summarize are not listed: see jcs track."
    )]
    Log {
        /// Only this VE's
        #[arg(long)]
        ve: Option<VeArg>,
        /// Only the VEs of this app
        #[arg(long)]
        app: Option<String>,
        /// Only transactions on this variable (a name with a final * — file:/data/* — every
        /// file that had a name under it): file:PATH (a file that had this path inside a
        /// VE), persist:APP:PATH, shared:NAME/PATH, file:[DEV:INO:GEN], endpoint:tcp/ADDR:PORT
        /// (its flows), unix:@NAME, unix:PATH or ve:N
        #[arg(long, value_name = "SPEC")]
        var: Option<String>,
        /// Only these operations (open, read, write, send, recv, exec, rename, gap, …;
        /// repeatable or comma-separated)
        #[arg(long, value_name = "OP", value_delimiter = ',')]
        op: Vec<String>,
        /// Only this process's transactions (its pid on the host)
        #[arg(long, value_name = "PID")]
        pid: Option<u32>,
        /// Only transactions of this status: committed, aborted (denied by the VE's policy;
        /// the rule is printed) or failed (the call returned an error)
        #[arg(long, value_name = "STATUS")]
        status: Option<StatusArg>,
        /// Only transactions at or after TIME
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Only transactions at or before TIME
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        /// Only the transactions of processes running this program: the executed file's name
        /// or path, or its argv[0] (`cat` for busybox's cat)
        #[arg(long, value_name = "PROGRAM")]
        exe: Option<String>,
        /// Keep printing new transactions as they are recorded (Ctrl-C ends)
        #[arg(long)]
        follow: bool,
        /// JSON lines instead of text (the same as --format json)
        #[arg(long, conflicts_with = "format")]
        json: bool,
        /// text, json (lines) or csv (a header, then one row per transaction or summary)
        #[arg(long, value_enum)]
        format: Option<queries::LogFormat>,
        /// Exit 1 when part of the journal could not be read (it is skipped with a warning)
        #[arg(long)]
        strict: bool,
    },
    /// Where data came from (back) or went (forward): time-respecting reachability over the
    /// recorded transactions
    #[command(
        after_help = "Examples:\n  jcs track back file:/data/report.txt\n  jcs track forward endpoint:tcp/10.231.0.1:8000 --from 1h\n  jcs track back ve:7 --dot > ve7.dot\n  jcs track back file:/data/report.txt --svg report.svg\n\nVAR: file:PATH (the file that had this path inside a VE: persistent, shared or dirties; narrow it\nwith --ve/--app and --at/--from), persist:APP:PATH or shared:NAME/PATH (a file of persistent or shared\nstorage, the same name in every VE), file:[DEV:INO:GEN] (a file by identity), endpoint:tcp/ADDR:PORT\n(every flow to or from it), unix:@NAME (an abstract Unix socket), unix:PATH (a Unix socket by its path: the file\na VE's bind made there, as file:PATH, or a socket no recorded bind made) or ve:N.\nA file is one variable whatever its names: after `mv a b`, file:PATH of b reaches what was written to a.\nA name two different files had is an error that lists them.\nTIME: 2026-11-28T05:00:00Z, 2026-11-28T06:00+01:00, 2026-11-28 06:00 (local time, TZ), 2026-11-28\n(local midnight), seconds since the epoch, or an age such as 90s, 10m, 2h, 7d.\nEach edge shows the VE, the operation, how many transactions, their time window and bytes.\nA file's bytes count: a read depends only on the writes that overlapped what it read.\nA connection is two flows (tcp:FROM->TO, one per direction), the same at both ends when both are VEs:\ntracking passes from the sender to the receiver. An endpoint known only by its address is volatile:\nwhat a VE sends to it does not flow back out of it.\nAn answer that a loss may have cut (a gap in a VE's record, or a damaged stretch of the journal\nthat could not be read) starts with INCOMPLETE and lists them (JSON: complete, gaps, skipped);\n--strict exits 1 when part of the journal could not be read."
    )]
    Track {
        #[command(subcommand)]
        dir: TrackCmd,
    },
    /// Rewrite the journal's sealed segments into summaries of one tier (--dry-run: only show
    /// what each tier would keep)
    #[command(
        after_help = "Tiers (docs/summarization.md): T0 lossless (the transactions that move data, delta-coded); T1 causal\n(repeated transfers with nothing in between merged: identical reachability); T1F causal at file\ngranularity (T1 with byte ranges widened to whole files: exact at file granularity, may add a dependency\nonly a byte range would have ruled out); T2 structural (one\nsummary per (source, target) pair: may add false dependencies, never loses one); T3 sources (per\nvariable, the endpoints and VEs its data came from); T4 fading (--policy FILE: exchanges with endpoints\nolder than `network AGE` become one record per (VE, endpoint), file bytes older than `files AGE` become\nwhole files; never loses a dependency). Without --dry-run, name one --tier (T1, T1F, T2 or T4): every sealed segment\n(all but the open one) is replaced by a summary file of that tier,\nwritten, synced and verified before the segments go; `jcs verify` still checks the chain across it.\nWhat the segments held beyond the summaries is gone: `jcs log` no longer lists those transactions."
    )]
    Summarize {
        /// The tier(s) to show besides T0
        #[arg(long, value_parser = ["T1", "T1F", "T2", "T3", "T4"], default_values = ["T1", "T1F", "T2", "T3"])]
        tier: Vec<String>,
        /// T4's fading policy: lines `network AGE` and `files AGE` (AGE: 90s, 10m, 2h, 7d)
        #[arg(long, value_name = "FILE")]
        policy: Option<std::path::PathBuf>,
        /// Only measure what each tier would keep; rewrite nothing
        #[arg(long)]
        dry_run: bool,
        /// JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Write the journal's transactions for other tools: JSON lines, CSV, Parquet or DARPA TC CDM
    #[command(
        after_help = "Examples:\n  jcs export --format parquet -o journal.parquet\n  jcs export --format cdm --since 1h > journal.cdm.json\n  jcs export --format csv --ve 3 -o ve3.csv\n\njsonl and csv are jcs log's --json and --format csv (docs/schema/log.json). parquet: one row per\ntransaction and per summary (kind, time_ns, last_ns, ve, pid, tid, op, status, src, dst, src_label,\ndst_label, off, len, result, count), every number a signed 64-bit integer, Snappy-compressed: DuckDB,\nSpark, ClickHouse and pandas read it. cdm: the DARPA Transparent Computing Common Data Model 18 in\nits JSON form (one datum per line: Host, Principal, a Subject per process, FileObject, NetFlowObject,\nSrcSinkObject per VE, an Event per transaction with size and offset), for SPADE-style tools.\nTIME: as jcs log takes it (an age such as 10m, or a date)."
    )]
    Export {
        /// jsonl, csv, parquet or cdm
        #[arg(long, value_parser = ["jsonl", "csv", "parquet", "cdm"])]
        format: String,
        /// Write into FILE (parquet needs one; the others default to stdout)
        #[arg(short = 'o', long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Only transactions at or after TIME
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Only transactions at or before TIME
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        /// Only this VE's (repeatable)
        #[arg(long)]
        ve: Vec<VeArg>,
        /// The host's name in CDM records (default: this host's name)
        #[arg(long)]
        host: Option<String>,
    },
    /// Publish the journal to a NATS JetStream stream, block by block and unchanged, exactly
    /// once (resumes where it stopped)
    #[command(
        after_help = "Examples:\n  jcs ship --to nats://10.0.0.5:4222,nats://10.0.0.6:4222,nats://10.0.0.7:4222\n  jcs ship --to nats://127.0.0.1:4222 --replicas 1 --follow\n\nEach segment or summary header and each block is one message (larger blocks are split into parts)\non subject journal.HOST.FILE with Nats-Msg-Id HOST/EPOCH/FILE/OFFSET: the stream drops a re-sent piece, and\nonly what was in flight when a server or the connection failed is re-sent. Where shipping stopped is\nkept in journal/ship-STREAM.state and checked against the stream on start; segments not yet shipped\nare never summarized (journal/ship-STREAM.mark). The stream is created when missing: subjects\njournal.>, file storage, --replicas copies. Only what is durable on this host is shipped.\nOn another machine, jcs collect receives it, checks the hash chain and rebuilds the journal files;\nthe head it prints is this host's `jcs verify` head (docs/fleet.md)."
    )]
    Ship {
        /// The NATS servers: nats://HOST:PORT[,nats://HOST:PORT…]
        #[arg(long, value_name = "URLS")]
        to: String,
        /// The JetStream stream
        #[arg(long, default_value = fleet::DEFAULT_STREAM)]
        stream: String,
        /// This host's name in subjects (letters, digits, '-', '_'; default: the host name)
        #[arg(long)]
        host: Option<String>,
        /// Copies the stream keeps when jcs ship creates it
        #[arg(long, default_value_t = 3)]
        replicas: usize,
        /// Keep shipping what the journal gains (Ctrl-C ends)
        #[arg(long)]
        follow: bool,
        /// Ship the whole journal again (after the stream was purged or made anew)
        #[arg(long)]
        from_start: bool,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Receive hosts' shipped journals from NATS, verify their hash chains, rebuild their files
    #[command(
        after_help = "Examples:\n  jcs collect --from nats://127.0.0.1:4222 --to /var/lib/jcs-fleet\n  jcs collect --from nats://127.0.0.1:4222 --to /var/lib/jcs-fleet --to clickhouse://127.0.0.1:8123 --follow\n\nFor each host (all the stream holds, or --host): DIR/HOST/journal/ is the host's journal file for file\n(`jcs verify --dir DIR/HOST/journal` checks it) and DIR/HOST/collect.state where collecting goes on.\nThe head printed is computed from what was received: compare it with the host's `jcs verify` head.\nExit status 3 is an alarm: what the stream holds does not continue the host's hash chain (the host's\njournal was rewritten, or pieces were lost); nothing after it is taken in."
    )]
    Collect {
        /// The NATS servers: nats://HOST:PORT[,nats://HOST:PORT…]
        #[arg(long, value_name = "URLS")]
        from: String,
        /// Where each host's copy and collecting state go (DIR/HOST/); again with
        /// clickhouse://HOST:PORT[/DATABASE] to also load a ClickHouse server (HTTP port;
        /// database jcs by default)
        #[arg(long, value_name = "DIR|URL", required = true)]
        to: Vec<String>,
        /// The JetStream stream
        #[arg(long, default_value = fleet::DEFAULT_STREAM)]
        stream: String,
        /// Only this host (repeatable; default: every host in the stream)
        #[arg(long)]
        host: Vec<String>,
        /// Keep collecting (every host, or the --host ones, each with a consumer of its own;
        /// hosts that start shipping later are joined within 5 s; Ctrl-C ends)
        #[arg(long)]
        follow: bool,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Check every block of the journal and its hash chain, and what queries read through
    /// besides (the segment indexes, the catalog's names); print the chain head
    #[command(
        after_help = "Exit status: 0 when the journal is intact, 1 when a problem was found.\nKeep the printed head elsewhere: a journal rewritten later will not end in it.\nEvery segment index a query would use is rebuilt from its segment's records and compared:\nan index is not part of the chain, and a wrong one would make jcs log --var, jcs track and\nthe others skip records. A wrong index is reported (exit 1); remove it, the daemon rebuilds it.\nThe catalog's variable definitions and names (what queries resolve names through) are\ncompared with the journal's: one the journal contradicts — a name bound to another file, a\nvariable defined as another — is reported (exit 1). Rows only one side has are counted: the\nrecorder writes the catalog just before the journal, and a killed one can leave rows behind."
    )]
    Verify {
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
        /// Verify the journal in DIR instead of the store's (a copy jcs collect rebuilt)
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Remove finished VEs' dirties (except evidence: VEs whose integrity report flags
    /// something), and clean up after VEs whose jcs run died
    #[command(
        after_help = "Examples:\n  jcs gc --dry-run\n  jcs gc --older-than 7d\n  jcs gc --include-flagged\n\nAGE: 90s, 10m, 2h, 7d. A VE is flagged when its dirties hold an executable, setuid or setgid\nfile, or anything under /bin, /sbin, /usr, /lib* or /etc (jcs inspect shows it), or when its\nreport cannot be read: its dirties are kept until jcs rm VE or jcs gc --include-flagged.\nRunning VEs are never touched. A VE whose jcs run died is lost: its cgroup goes at once, even\nwhen its dirties are kept. It also removes the listings the store keeps of storage\ndirectories between VEs (cache/names/) that no app's existing persistent or shared storage\nis any more (a --volume's too: the next VE with it lists it anew)."
    )]
    Gc {
        /// Only say what would be removed
        #[arg(long)]
        dry_run: bool,
        /// Only VEs that ended more than AGE ago (default: retention.dirties of the
        /// configuration, else every finished VE)
        #[arg(long, value_name = "AGE")]
        older_than: Option<String>,
        /// Also remove the dirties of VEs whose integrity report flags something
        #[arg(long)]
        include_flagged: bool,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
#[command(defer = true)]
enum TemplateCmd {
    /// Create a template (or its next version, when NAME exists)
    Create(TemplateCreate),
    /// Create a template from a container image tarball (the same as create --from-image)
    #[command(
        after_help = "Examples:\n  podman save --format oci-archive -o alpine.tar alpine\n  jcs template import alpine alpine.tar\n  docker save -o app.tar app:1 && jcs template import app app.tar"
    )]
    Import {
        /// Template name (letters, digits, '.', '_', '-')
        name: String,
        /// An OCI image layout or a docker archive, as one tarball
        file: PathBuf,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// List templates and their versions
    List {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Remove a template (all versions, or one); refused while an app uses it
    Rm {
        /// Template name
        name: String,
        /// Remove only this version
        #[arg(long)]
        version: Option<u32>,
    },
}

#[derive(Args, Debug)]
#[group(id = "source", required = true, multiple = false)]
struct TemplateSource {
    /// A tiny template from Debian's busybox-static (seconds; used by the tests)
    #[arg(long)]
    busybox: bool,
    /// A minimal Debian (debootstrap --variant=minbase SUITE), with progress
    #[arg(long, value_name = "SUITE")]
    debootstrap: Option<String>,
    /// Copy of a directory tree
    #[arg(long, value_name = "DIR")]
    from_dir: Option<PathBuf>,
    /// A root file system tarball (e.g. `docker export` output)
    #[arg(long, value_name = "FILE")]
    from_tar: Option<PathBuf>,
    /// A container image as one tarball: an OCI image layout (`podman save --format
    /// oci-archive`, `skopeo copy … oci-archive:FILE`) or a docker archive (`docker save`);
    /// its layers applied in order, every path resolved inside the template
    #[arg(long, value_name = "FILE")]
    from_image: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct TemplateCreate {
    /// Template name (letters, digits, '.', '_', '-')
    name: String,
    #[command(flatten)]
    source: TemplateSource,
    /// Debian mirror for --debootstrap
    #[arg(long, requires = "debootstrap")]
    mirror: Option<String>,
    /// Packages to add to --debootstrap's minbase (comma-separated or repeated), e.g.
    /// `--include python3,git,curl`
    #[arg(
        long,
        requires = "debootstrap",
        value_delimiter = ',',
        value_name = "PKG"
    )]
    include: Vec<String>,
    /// Print JSON instead of a table
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Debug)]
struct AppCreateArgs {
    /// Name of the app (letters, digits, '.', '_', '-')
    name: String,
    /// Template, as NAME or NAME:VERSION (default: its newest version)
    #[arg(long)]
    template: String,
    /// Initial content of the app branch
    #[arg(long, value_name = "DIR")]
    from_dir: Option<PathBuf>,
    /// Directory inside the VE that persists across this app's VEs (repeatable)
    #[arg(long, value_name = "PATH")]
    persist: Vec<String>,
    /// Mount the shared directory SHARED at PATH (repeatable); several apps can share one
    #[arg(long, value_name = "PATH=SHARED")]
    share: Vec<String>,
    /// Network: none (only lo) or bridge (veth into the JCS bridge)
    #[arg(long, default_value = "none")]
    net: NetMode,
    /// The app's policy: what its VEs may not do (network, storage writes, reads, execs),
    /// enforced by the kernel; see `jcs policy check --help`
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Default command of the app's VEs (takes the rest of the line)
    #[arg(long, num_args = 1.., allow_hyphen_values = true, value_name = "CMD")]
    cmd: Vec<String>,
}

#[derive(Subcommand, Debug)]
#[command(defer = true)]
enum VersionsCmd {
    /// Remove the pre-images of VEs that ended more than AGE ago (they can no longer be
    /// aborted, nor their changes recovered), and every object no remaining VE needs
    #[command(
        after_help = "Examples:\n  jcs versions gc --keep 30d --dry-run\n  jcs versions gc --keep 7d\n\nAGE: 90s, 10m, 2h, 7d. Running VEs and those that ended within AGE keep theirs; jcs stats\nshows the version store's size."
    )]
    Gc {
        /// Keep the pre-images of VEs that ended within AGE (default: retention.preimages of
        /// the configuration)
        #[arg(long, value_name = "AGE")]
        keep: Option<String>,
        /// Only say what would go
        #[arg(long)]
        dry_run: bool,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
#[command(defer = true)]
enum PolicyCmd {
    /// Validate a policy file and list its rules (errors name the line and column)
    #[command(after_help = POLICY_HELP)]
    Check {
        /// The policy file (TOML)
        file: PathBuf,
        /// Print the rules as JSON
        #[arg(long)]
        json: bool,
    },
    /// Run a policy over the journal's past: which VEs and calls it would have aborted
    #[command(
        after_help = "Examples:\n  jcs policy replay strict.toml\n  jcs policy replay strict.toml --app web --since 7d --json\n\nNetwork calls are decided from their flow or endpoint; file calls from the path the file had\nin that VE then: writes to persistent or shared storage outside the writable trees, reads of\nhidden paths, execs outside the allow-list. Summarized history has no transactions to replay."
    )]
    Replay {
        /// The policy file (TOML)
        file: PathBuf,
        /// Only the VEs of this app
        #[arg(long)]
        app: Option<String>,
        /// Only this VE
        #[arg(long)]
        ve: Option<VeArg>,
        /// Only transactions at or after TIME (2026-11-28T05:00:00Z, epoch seconds, or 90s, 10m, 2h, 7d)
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

const POLICY_HELP: &str = "A policy (TOML; docs/policy.md):\n\n  [network]\n  default = \"allow\"              # or \"deny\": what no rule matches\n  [[network.rule]]\n  name = \"no-smtp\"                # optional, printed with each denial\n  action = \"deny\"                 # allow | deny; the first rule that matches decides\n  to = [\"10.0.0.0/8\", \"::1\"]       # CIDRs (default: every address; for bind: the local one)\n  ports = [25, \"8000-8100\"]        # default: every port\n  proto = \"tcp\"                    # tcp | udp | any (default)\n  on = [\"connect\", \"send\"]         # connect | send | bind (default: connect, send)\n\n  [files]\n  writable = [\"/data/out\"]         # the only writable trees of persistent/shared storage\n  deny_read = [\"/root/.ssh\"]       # hidden from the VE (an empty, read-only directory or file)\n\n  [exec]\n  allow = [\"/bin\", \"/usr/bin/python3\"]   # the only files the VE may execute\n\n  [budget]\n  bytes_sent = \"10 MiB\"            # IP bytes the VE may send out; then EPERM, streams stall\n  files_written = 100              # storage files it may create/write/remove; then EDQUOT\n\n  [recovery]\n  preimages = true                 # keep storage files before the VE changes them (jcs abort)\n  abort_on_close = \"denied\"        # once denied anything, each file it writes goes back at close\n\nEnforced by the kernel: network by cgroup sock_addr programs (EPERM), storage by read-only\nmounts (EROFS), hidden paths by empty read-only mounts, exec by Landlock (EACCES), the byte\nbudget by a cgroup egress program; the files budget and abort_on_close by the VE's\nsupervisor. Each denial is an aborted transaction naming its rule (jcs log --status aborted);\nnetwork and byte-budget denials are also counted exactly in the kernel (jcs stats). A policy this kernel cannot enforce stops the VE's start.";

#[derive(Subcommand, Debug)]
#[command(defer = true)]
enum AppCmd {
    /// Create an app on a template
    #[command(
        after_help = "Example:\n  jcs app create browser --template busybox --persist /root/.config --share /root/Downloads=downloads --cmd /bin/sh -l\n\n--cmd takes everything after it, so give it last."
    )]
    Create {
        #[command(flatten)]
        args: AppCreateArgs,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// List apps
    List {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Show an app: template, storage, versions
    Show {
        /// App name
        name: String,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Remove an app (its persistent storage stays unless --purge)
    Rm {
        /// App name
        name: String,
        /// Also delete the app's persistent storage
        #[arg(long)]
        purge: bool,
    },
    /// Give the app a new policy (or none): publishes a new app version; running VEs keep theirs
    #[command(
        after_help = "Examples:\n  jcs app policy web web-policy.toml\n  jcs app policy web --none\n\nThe file is checked first (jcs policy check). Maintenance VEs (jcs app update) run without the policy."
    )]
    Policy {
        /// App name
        name: String,
        /// The policy file (TOML)
        #[arg(required_unless_present = "none", conflicts_with = "none")]
        file: Option<PathBuf>,
        /// Remove the app's policy
        #[arg(long)]
        none: bool,
    },
    /// Maintenance mode: run CMD with the app branch writable, publish the result as a new version
    #[command(
        after_help = "Example:\n  jcs app update web -- apt-get install -y hello\n\nRunning VEs keep the version they started with; new VEs get the new one. A command that fails publishes nothing."
    )]
    Update {
        /// App name
        name: String,
        /// Network of the maintenance VE: host (needed to download packages) or none
        #[arg(long, default_value = "host")]
        net: NetMode,
        /// Memory limit of the maintenance VE
        #[arg(long, default_value = "2G")]
        memory: String,
        /// Maximum number of processes and threads in the maintenance VE
        #[arg(long, default_value_t = 4096)]
        pids: u64,
        /// The maintenance command and its arguments
        #[arg(last = true)]
        cmd: Vec<String>,
    },
}

/// `jcs stop` and `jcs kill`: each VE ended (with `grace`: SIGTERM first); 1 when one was not
/// running.
/// `jcs run -d`: this same command, without `-d` and with no terminal, in a new session
/// whose stdout and stderr go to a log; prints the VE's id once the VE has one, and moves the
/// log to the VE's directory (`ve/N/output.log`). A VE that cannot start: its error, and its
/// exit status.
fn detached_run(store: &store::Store, id_file: Option<&std::path::Path>) -> Result<i32> {
    use std::os::unix::process::CommandExt;
    let logs = store.layout.root().join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("create {}", logs.display()))?;
    let tag = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    let log = logs.join(format!("detached-{tag}.log"));
    let ours = logs.join(format!("detached-{tag}.id"));
    let id_path = id_file
        .map(|p| p.to_path_buf())
        .unwrap_or_else(|| ours.clone());
    // The arguments again, without -d/--detach (before `--`), with -T and an id file.
    let mut args: Vec<String> = vec![];
    let mut after_dashes = false;
    for a in std::env::args().skip(1) {
        if a == "--" {
            after_dashes = true;
        }
        if !after_dashes && (a == "-d" || a == "--detach") {
            continue;
        }
        args.push(a);
    }
    let run_at = args
        .iter()
        .position(|a| a == "run")
        .context("jcs run -d: no run in the arguments")?;
    let mut extra = vec!["-T".to_string()];
    if id_file.is_none() {
        extra.push("--id-file".into());
        extra.push(ours.display().to_string());
    }
    args.splice(run_at + 1..run_at + 1, extra);
    std::fs::File::create(&log).with_context(|| format!("create {}", log.display()))?;
    // The VE's stdout and stderr: a pipe to a writer that keeps the log under its cap
    // (JCS_LOGS_MAX; it ends when the VE and its jcs run have closed the pipe).
    let (pipe_r, pipe_w) = std::io::pipe().context("a pipe for the VE's output")?;
    let mut writer = std::process::Command::new(std::env::current_exe()?)
        .arg("capture-output")
        .arg("--max")
        .arg(logs_max().to_string())
        .arg(&log)
        .stdin(pipe_r)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .context("start the detached VE's output writer")?;
    let child = std::process::Command::new(std::env::current_exe()?)
        .args(&args)
        .stdin(std::process::Stdio::null())
        .stdout(pipe_w.try_clone()?)
        .stderr(pipe_w)
        .process_group(0)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            let _ = writer.wait();
            return Err(e).context("start the detached jcs run");
        }
    };
    // What the run wrote, once it and the writer are done (the reason it could not start).
    let failed = |st: std::process::ExitStatus, writer: &mut std::process::Child| -> Result<i32> {
        let _ = writer.wait();
        eprint!("{}", std::fs::read_to_string(&log).unwrap_or_default());
        let _ = std::fs::remove_file(&log);
        Ok(st.code().unwrap_or(125))
    };
    // (The child is left running on purpose: it outlives this process.)
    let started = std::time::Instant::now();
    loop {
        if let Some(id) = std::fs::read_to_string(&id_path)
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
        {
            if id_file.is_none() {
                let _ = std::fs::remove_file(&ours);
            }
            // Until it runs (jcs ps lists it), or could not start (its error, its status).
            loop {
                if let Some(st) = child.try_wait()? {
                    if !st.success() {
                        return failed(st, &mut writer);
                    }
                    break;
                }
                let raw = store
                    .catalog
                    .ve(model::VeId(id))?
                    .map(|r| r.state)
                    .unwrap_or_default();
                if raw == "running" {
                    break;
                }
                if raw != "creating" {
                    // It ended before it ran: its jcs run ends too, with the reason.
                    let st = child.wait()?;
                    if !st.success() {
                        return failed(st, &mut writer);
                    }
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let dest = store.layout.ve(model::VeId(id)).join("output.log");
            if std::fs::rename(&log, &dest).is_err() {
                eprintln!("jcs: VE {id}'s output stays at {}", log.display());
            }
            println!("{id}");
            return Ok(0);
        }
        if let Some(st) = child.try_wait()? {
            return failed(st, &mut writer);
        }
        if started.elapsed() > std::time::Duration::from_secs(120) {
            bail!(
                "jcs run -d: the VE got no id within 2 minutes (its output: {})",
                log.display()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The most bytes a detached VE's output log keeps (`JCS_LOGS_MAX`, a size; default 16 MiB).
fn logs_max() -> u64 {
    std::env::var("JCS_LOGS_MAX")
        .ok()
        .and_then(|v| parse_size(&v).ok())
        .unwrap_or(16 << 20)
        .max(4096)
}

/// `jcs capture-output`: stdin into `file`, which never holds more than `max` bytes: once
/// past it, the older half goes (a line says how much); ends at the end of stdin.
fn capture_output(max: u64, file: &std::path::Path) -> Result<()> {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(file)
        .with_context(|| format!("open {}", file.display()))?;
    let mut len = f.seek(SeekFrom::End(0))?;
    let mut dropped = 0u64;
    let mut buf = vec![0u8; 64 << 10];
    let mut input = std::io::stdin().lock();
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        f.write_all(&buf[..n])?;
        len += n as u64;
        if len > max {
            // Keep the newer half, behind a line that says what went.
            let keep = max / 2;
            let mut tail = vec![0u8; keep as usize];
            f.seek(SeekFrom::Start(len - keep))?;
            f.read_exact(&mut tail)?;
            dropped += len - keep;
            let head = format!("[jcs: {dropped} bytes of earlier output dropped (JCS_LOGS_MAX)]\n");
            f.seek(SeekFrom::Start(0))?;
            f.write_all(head.as_bytes())?;
            f.write_all(&tail)?;
            len = head.len() as u64 + keep;
            f.set_len(len)?;
            f.seek(SeekFrom::Start(len))?;
        }
    }
}

/// `jcs logs VE [--follow]`.
fn logs(store: &store::Store, ve: u64, follow: bool) -> Result<i32> {
    use std::io::{Read, Write};
    let row = store
        .catalog
        .ve(model::VeId(ve))?
        .with_context(|| format!("unknown VE {ve} (see jcs ps --all)"))?;
    let path = store.layout.ve(model::VeId(ve)).join("output.log");
    let mut f = std::fs::File::open(&path).map_err(|_| {
        anyhow::anyhow!("VE {ve} has no output log: only a VE started with jcs run -d has one (the others' output went to their jcs run)")
    })?;
    let mut out = std::io::stdout().lock();
    let mut buf = vec![0u8; 64 << 10];
    let mut row = row;
    loop {
        let n = f.read(&mut buf)?;
        if n > 0 {
            out.write_all(&buf[..n])?;
            continue;
        }
        out.flush()?;
        // The log keeps under its cap by dropping its older half: from its start again.
        if f.metadata()?.len() < std::io::Seek::stream_position(&mut f)? {
            std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(0))?;
        }
        let state = store::meta::effective_state(&row);
        if !follow || !(state == "running" || state == "creating") {
            // (One more read: what it wrote as it ended.)
            let n = f.read(&mut buf)?;
            out.write_all(&buf[..n])?;
            return Ok(0);
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        row = store.catalog.ve(model::VeId(ve))?.unwrap_or(row);
    }
}

fn stop_all(store: &store::Store, ves: &[u64], grace: Option<std::time::Duration>) -> Result<i32> {
    let mut code = 0;
    for &v in ves {
        known_ve(store, v)?;
        if lifecycle::ves::stop(
            store,
            model::VeId(v),
            grace,
            std::time::Duration::from_secs(20),
        )? {
            println!("{v}");
        } else {
            eprintln!("jcs: VE {v} is not running");
            code = 1;
        }
    }
    Ok(code)
}

/// The VEs of app `a` (an error for an unknown app).
fn app_ves(store: &store::Store, a: &str) -> Result<std::collections::HashSet<u64>> {
    let a = name(a, "app")?;
    known_app(store, &a)?;
    Ok(store
        .catalog
        .ves()?
        .into_iter()
        .filter(|v| v.app == a.as_str())
        .map(|v| v.id)
        .collect())
}

fn name(s: &str, what: &str) -> Result<Name> {
    Name::parse(s).map_err(|e| anyhow::anyhow!("{what} {e}"))
}

fn limits(memory: &str, pids: u64, cpus: Option<&str>, disk: Option<&str>) -> Result<Limits> {
    if pids == 0 {
        bail!("--pids must be at least 1");
    }
    let disk_bytes = disk
        .map(|d| parse_size(d).map_err(|e| anyhow::anyhow!("--disk: {e}")))
        .transpose()?;
    if disk_bytes.is_some_and(|d| d < ve::disk::MIN_BYTES) {
        bail!("--disk must be at least 8M (the file system's own metadata needs room)");
    }
    Ok(Limits {
        memory_bytes: parse_size(memory).map_err(|e| anyhow::anyhow!("--memory: {e}"))?,
        pids,
        cpu_millis: cpus.map(model::limits::parse_cpus).transpose()?,
        disk_bytes,
    })
}

/// A VE id a query names must be one the store has had (removed ones included): a typo
/// gets an error, not an empty answer.
fn known_ve(store: &store::Store, ve: u64) -> Result<()> {
    if store.catalog.ve(model::VeId(ve))?.is_none() {
        bail!("unknown VE {ve} (see jcs ps --all)");
    }
    Ok(())
}

/// The same for an app name (an app that exists, or existed and ran VEs).
fn known_app(store: &store::Store, app: &model::Name) -> Result<()> {
    if store.catalog.app(app)?.is_none()
        && !store.catalog.ves()?.iter().any(|v| v.app == app.as_str())
    {
        bail!("unknown app {app} (see jcs app list)");
    }
    Ok(())
}

/// Opens the store, which must exist: a command never makes one by accident (a typo in
/// `--home` or `JCS_HOME` is an error, not an empty store that answers "nothing").
fn open_store(cli_home: Option<PathBuf>) -> Result<store::Store> {
    let root = store_root(cli_home)?;
    // (A journal alone, copied from a host for forensics, is a store too.)
    let layout = ve::Layout::new(&root);
    if let Err(e) = std::fs::read_dir(&root) {
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            bail!(
                "the store at {} is not open to you: root's, and readable (journal and catalog) by \
                 the members of the analysts' group ({}, or analyst_group in {})",
                root.display(),
                std::env::var("JCS_ANALYST_GROUP").unwrap_or_else(|_| store::ANALYST_GROUP.into()),
                config::DEFAULT_PATH
            );
        }
    }
    if !layout.catalog().exists() && !root.join("journal").is_dir() {
        bail!(
            "no JCS store at {} (check --home or JCS_HOME; `jcs template create` makes a new one)",
            root.display()
        );
    }
    let store = store::Store::open(&root)?;
    mark("catalog open");
    Ok(store)
}

/// Opens the store, making it when it does not exist yet (`jcs template create`).
fn open_or_create_store(cli_home: Option<PathBuf>) -> Result<store::Store> {
    let store = store::Store::open(&store_root(cli_home)?)?;
    mark("catalog open");
    Ok(store)
}

fn store_root(cli_home: Option<PathBuf>) -> Result<PathBuf> {
    let root = cli_home
        .or_else(|| std::env::var_os("JCS_HOME").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/var/lib/jcs"));
    Ok(if root.is_relative() {
        std::env::current_dir()?.join(root)
    } else {
        root
    })
}

/// Writes the manual page of `cmd` (named `name`: `jcs`, `jcs-run`, `jcs-app-create`) and of
/// every subcommand below it; returns how many.
fn write_man(cmd: &clap::Command, name: &str, dir: &std::path::Path) -> Result<usize> {
    let mut buf = Vec::new();
    // NAME says `jcs-run`, the SYNOPSIS `jcs run`.
    let page = cmd
        .clone()
        .name(name.to_string())
        .bin_name(name.replace('-', " "));
    clap_mangen::Man::new(page)
        .render(&mut buf)
        .with_context(|| format!("render the manual page of {name}"))?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, buf).with_context(|| format!("write {}", path.display()))?;
    let mut n = 1;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        n += write_man(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(n)
}

/// A VE as the user names it: its id, or the name `jcs run --name` gave it.
#[derive(Debug, Clone)]
enum VeArg {
    Id(u64),
    Name(String),
}

impl std::str::FromStr for VeArg {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if let Ok(n) = s.parse::<u64>() {
            return Ok(VeArg::Id(n));
        }
        model::Name::parse(s)
            .map(|_| VeArg::Name(s.to_string()))
            .map_err(|e| format!("{s:?} is neither a VE id nor a VE name: {e}"))
    }
}

impl VeArg {
    /// The VE's id (a name: the VE not removed that has it, else the last one that had it).
    fn id(&self, store: &store::Store) -> Result<u64> {
        match self {
            VeArg::Id(n) => Ok(*n),
            VeArg::Name(n) => store
                .catalog
                .ve_by_name(n)?
                .map(|r| r.id)
                .with_context(|| format!("unknown VE {n} (see jcs ps --all)")),
        }
    }

    fn ids(v: &[VeArg], store: &store::Store) -> Result<Vec<u64>> {
        v.iter().map(|a| a.id(store)).collect()
    }
}

fn need_root() -> Result<()> {
    if !rustix::process::geteuid().is_root() {
        bail!(
            "this command needs root (it changes the store, or creates namespaces, mounts and \
             cgroups); members of the analysts' group may read without it: ps, log, track, \
             stats, verify, policy replay"
        );
    }
    Ok(())
}

fn mark(what: &'static str) {
    lifecycle::timing::mark(what);
}

/// `JCS_TIMING=1`: where this process's time went, printed at exit.
fn print_marks() {
    let v = lifecycle::timing::marks();
    if !v.is_empty() {
        let s: Vec<String> = v.iter().map(|(w, us)| format!("{w}@{us}us")).collect();
        eprintln!("jcs: timeline {}", s.join(" "));
    }
    let mut by_ve: std::collections::BTreeMap<u64, Vec<String>> = Default::default();
    for (ve, n, us) in lifecycle::timing::phases() {
        by_ve.entry(ve).or_default().push(format!("{n} {us}us"));
    }
    for (ve, m) in by_ve {
        eprintln!("jcs: VE {ve} phases: {}", m.join(", "));
    }
}

/// Commands that only print end quietly when their reader goes away (`jcs log | head`), like
/// other command-line tools. Not for `run` or `daemon`, whose socket writes must fail with an
/// error instead of killing the process.
fn quiet_on_closed_pipe() {
    // SAFETY: restores the default disposition of SIGPIPE; no handler involved.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

/// How the libraries' `tracing` events reach the user of a command (the daemon has its own,
/// timestamped log): one line each on stderr, `jcs: MESSAGE`, `jcs: warning: MESSAGE`.
#[derive(Debug)]
struct Plain;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for Plain
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut w: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        // The NATS client's news (connected, reconnected) is not the user's business unless
        // it is a warning.
        if event.metadata().target().starts_with("async_nats")
            && *event.metadata().level() > tracing::Level::WARN
        {
            return Ok(());
        }
        let level = match *event.metadata().level() {
            tracing::Level::ERROR => "error: ",
            tracing::Level::WARN => "warning: ",
            _ => "",
        };
        write!(w, "jcs: {level}")?;
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

fn real_main() -> Result<i32> {
    std::sync::LazyLock::force(&lifecycle::timing::START);
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => usage_error(e),
    };
    mark("parse");
    // The host's configuration, before any thread: its settings become the environment
    // variables they stand for, where those are not set.
    let config = config::Config::load()?;
    config.export()?;
    mark("config");
    if !matches!(cli.cmd, Cmd::Daemon { .. }) {
        let _ = tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_max_level(tracing::Level::INFO)
            .event_format(Plain)
            .try_init();
    }
    if matches!(
        cli.cmd,
        Cmd::Log { .. }
            | Cmd::Track { .. }
            | Cmd::Summarize { .. }
            | Cmd::Stats { .. }
            | Cmd::Ps { .. }
            | Cmd::Inspect { .. }
            | Cmd::Verify { .. }
            | Cmd::Doctor { .. }
            | Cmd::Export { .. }
    ) {
        quiet_on_closed_pipe();
    }
    // Validate arguments before any system call that changes something.
    match cli.cmd {
        Cmd::Doctor { json } => {
            let host = store::Host::from_env();
            let checks = ve::doctor::run(&host.proc_root, &host.sys_root);
            let missing = checks.iter().filter(|c| c.required && !c.ok).count();
            if json {
                json::print(&json::Doctor {
                    ok: missing == 0,
                    checks,
                })?;
            } else {
                let mut t = output::Table::new(&["FEATURE", "STATUS", "DETAIL"]);
                for c in &checks {
                    let st = match (c.ok, c.required) {
                        (true, _) => "ok",
                        (false, true) => "MISSING",
                        (false, false) => "absent",
                    };
                    t.row(vec![c.name.clone(), st.into(), c.detail.clone()]);
                }
                t.print();
                if missing > 0 {
                    eprintln!(
                        "jcs: {missing} required feature(s) missing: VEs cannot run on this host"
                    );
                }
            }
            Ok(if missing > 0 { 1 } else { 0 })
        }
        Cmd::Stop { ves, timeout } => {
            need_root()?;
            let store = open_store(cli.home)?;
            let ves = VeArg::ids(&ves, &store)?;
            stop_all(&store, &ves, Some(std::time::Duration::from_secs(timeout)))
        }
        Cmd::Exec {
            ve,
            env,
            workdir,
            user,
            tty,
            no_tty,
            cmd,
        } => {
            let tty = tty || (!no_tty && std::io::IsTerminal::is_terminal(&std::io::stdin()));
            need_root()?;
            let env = env
                .iter()
                .map(|e| match e.split_once('=') {
                    Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
                    None if !e.is_empty() => Ok((e.clone(), std::env::var(e).unwrap_or_default())),
                    _ => Err(anyhow::anyhow!("--env {e:?}: expected KEY=VALUE (or KEY)")),
                })
                .collect::<Result<Vec<_>>>()?;
            if let Some(w) = &workdir {
                if !w.starts_with('/') {
                    bail!("--workdir {w:?}: an absolute path inside the VE");
                }
            }
            let store = open_store(cli.home)?;
            let id = ve.id(&store)?;
            Ok(lifecycle::ves::exec(
                &store, id, cmd, env, workdir, user, tty,
            )?)
        }
        Cmd::Logs { ve, follow } => {
            let store = open_store(cli.home)?;
            let ve = ve.id(&store)?;
            logs(&store, ve, follow)
        }
        Cmd::Kill { ves } => {
            need_root()?;
            let store = open_store(cli.home)?;
            let ves = VeArg::ids(&ves, &store)?;
            stop_all(&store, &ves, None)
        }
        Cmd::Abort {
            ve,
            dry_run,
            force,
            json,
        } => {
            if !dry_run {
                need_root()?;
            }
            let store = open_store(cli.home)?;
            let ve = ve.id(&store)?;
            let a = lifecycle::abort::abort(&store, model::VeId(ve), dry_run, force)?;
            if let Some(why) = &a.unjournaled {
                eprintln!("jcs: warning: the files are back, but the journal did not take the record of it: {why} (ve/{ve}/meta/aborted.json has it)");
            }
            if json {
                json::print(&a)?;
            } else {
                let mut t = output::Table::new(&["ACTION", "FILE", "CONFLICT", "RESULT"]);
                for s in &a.steps {
                    t.row(vec![
                        s.action.to_string(),
                        match &s.from {
                            Some(f) => format!("{} (now {f})", s.file),
                            None => s.file.clone(),
                        },
                        s.conflict.clone().unwrap_or_else(|| "-".into()),
                        s.result.clone(),
                    ]);
                }
                t.print();
                if a.conflicts > 0 && !force {
                    eprintln!(
                        "jcs: {} conflict(s) {}: changed after VE {ve}; --force overwrites them",
                        a.conflicts,
                        if dry_run {
                            "would be left alone"
                        } else {
                            "left alone"
                        }
                    );
                }
            }
            let skipped = a.steps.iter().any(|s| s.result == "skipped");
            Ok(if a.failed > 0 || skipped { 1 } else { 0 })
        }
        Cmd::Versions(VersionsCmd::Gc {
            keep,
            dry_run,
            json,
        }) => {
            let Some(keep) = keep.or(config.retention.preimages.clone()) else {
                bail!("--keep AGE: how long to keep pre-images (or retention.preimages in the configuration)");
            };
            let cut_ns = query::time::parse_time(&keep, query::time::now_ns())?;
            if !dry_run {
                need_root()?;
            }
            let store = open_store(cli.home)?;
            let c = lifecycle::versions::gc(&store, (cut_ns / 1_000_000) as i64, dry_run)?;
            if json {
                json::print(&c)?;
            } else {
                println!(
                    "{} the pre-images of {} VE(s): {} objects, {} bytes; {} objects kept",
                    if dry_run { "would remove" } else { "removed" },
                    c.ves.len(),
                    c.objects,
                    c.bytes,
                    c.kept_objects
                );
            }
            Ok(0)
        }
        Cmd::Recover {
            from,
            at,
            plan: _,
            apply,
            json,
        } => {
            let q = record::VarQuery::parse(&from)?;
            let at_ns = at
                .map(|t| query::time::parse_time(&t, query::time::now_ns()))
                .transpose()?;
            if apply {
                need_root()?;
            }
            let store = open_store(cli.home)?;
            let mut p = lifecycle::recover::plan(&store, &q, at_ns)?;
            if apply {
                lifecycle::recover::apply(&store, &mut p)?;
                if let Some(why) = &p.unjournaled {
                    eprintln!("jcs: warning: the files are back, but the journal did not take the record of it: {why} (versions/recover/ has it)");
                }
            }
            if json {
                json::print(&p)?;
            } else {
                if !p.complete {
                    println!("INCOMPLETE: a loss in the record may hide contamination (see jcs track forward {from})");
                }
                let mut t = output::Table::new(&[
                    "FILE",
                    "CONTAMINATED BY",
                    "ACTION",
                    "LOST CHANGES",
                    "RESULT",
                ]);
                for f in &p.files {
                    t.row(vec![
                        f.path.clone().unwrap_or_else(|| f.file.clone()),
                        format!("ve {}", f.contaminated_by),
                        match &f.problem {
                            Some(pr) => format!("none: {pr}"),
                            None => f.action.to_string(),
                        },
                        if f.lost_changes.is_empty() {
                            "-".into()
                        } else {
                            f.lost_changes
                                .iter()
                                .map(|c| {
                                    format!(
                                        "ve {}{}",
                                        c.ve,
                                        if c.contaminated {
                                            " (contaminated)"
                                        } else {
                                            ""
                                        }
                                    )
                                })
                                .collect::<Vec<_>>()
                                .join(", ")
                        },
                        f.result.clone(),
                    ]);
                }
                t.print();
                let mut t = output::Table::new(&["VE", "APP", "STATE", "ACTION", "RESULT"]);
                for v in &p.ves {
                    t.row(vec![
                        v.ve.to_string(),
                        v.app.clone(),
                        v.state.clone(),
                        v.action.to_string(),
                        v.result.clone(),
                    ]);
                }
                t.print();
            }
            let bad = p
                .files
                .iter()
                .any(|f| f.problem.is_some() || f.result.starts_with("failed"));
            Ok(if bad { 1 } else { 0 })
        }
        Cmd::Policy(PolicyCmd::Check { file, json }) => {
            let (_, p) = lifecycle::app::read_policy(&file)?;
            let rules = p.rules();
            if json {
                json::print(&json::PolicyCheck {
                    file,
                    ok: true,
                    rules,
                })?;
            } else {
                let mut t = output::Table::new(&["RULE", "NAME", "MEANING"]);
                for r in &rules {
                    t.row(vec![r.id.to_string(), r.name.clone(), r.text.clone()]);
                }
                t.print();
                println!("{}: ok", file.display());
            }
            Ok(0)
        }
        Cmd::Policy(PolicyCmd::Replay {
            file,
            app,
            ve,
            since,
            json,
        }) => {
            let (_, p) = lifecycle::app::read_policy(&file)?;
            let store = open_store(cli.home)?;
            let since_ns = since
                .map(|t| query::time::parse_time(&t, query::time::now_ns()))
                .transpose()?;
            let mut ves: Option<std::collections::HashSet<u64>> = None;
            if let Some(a) = app {
                ves = Some(app_ves(&store, &a)?);
            }
            if let Some(v) = ve {
                let v = v.id(&store)?;
                known_ve(&store, v)?;
                ves = Some(ves.map_or_else(
                    || [v].into(),
                    |s| s.into_iter().filter(|x| *x == v).collect(),
                ));
            }
            let r = query::replay::replay(&store.journal_dir(), &p, since_ns, ves.as_ref())?;
            if json {
                json::print(&r)?;
            } else {
                for h in &r.hits {
                    println!(
                        "ve {} pid {} {:<7} {}{} would be aborted by rule {} {}",
                        h.ve,
                        h.pid,
                        h.op,
                        h.var,
                        h.path
                            .as_ref()
                            .map(|p| format!(" ({p})"))
                            .unwrap_or_default(),
                        h.rule,
                        h.rule_name
                    );
                }
                println!(
                    "{} of {} transactions, in {} VE(s), would have been aborted",
                    r.hits.len(),
                    r.examined,
                    r.ves.len()
                );
            }
            Ok(0)
        }
        Cmd::Template(t) => {
            match t {
                TemplateCmd::Create(c) => {
                    let n = name(&c.name, "template")?;
                    let s = c.source;
                    let source = if s.busybox {
                        lifecycle::template::Source::Busybox(
                            std::env::var_os("JCS_BUSYBOX")
                                .map(PathBuf::from)
                                .unwrap_or_else(|| "/bin/busybox".into()),
                        )
                    } else if let Some(suite) = s.debootstrap {
                        lifecycle::template::Source::Debootstrap {
                            suite,
                            mirror: c.mirror,
                            include: c.include,
                        }
                    } else if let Some(d) = s.from_dir {
                        lifecycle::template::Source::Dir(d)
                    } else if let Some(f) = s.from_tar {
                        lifecycle::template::Source::Tar(f)
                    } else if let Some(f) = s.from_image {
                        lifecycle::template::Source::Image(f)
                    } else {
                        unreachable!("clap requires one source")
                    };
                    need_root()?;
                    commands::template_create(&open_or_create_store(cli.home)?, &n, source, c.json)?
                }
                TemplateCmd::Import {
                    name: t,
                    file,
                    json,
                } => {
                    let n = name(&t, "template")?;
                    need_root()?;
                    commands::template_create(
                        &open_or_create_store(cli.home)?,
                        &n,
                        lifecycle::template::Source::Image(file),
                        json,
                    )?
                }
                TemplateCmd::List { json } => {
                    commands::template_list(&open_store(cli.home)?, json)?
                }
                TemplateCmd::Rm { name: n, version } => {
                    let n = name(&n, "template")?;
                    commands::template_rm(&open_store(cli.home)?, &n, version)?
                }
            }
            Ok(0)
        }
        Cmd::App(a) => match a {
            AppCmd::Create { args, json } => {
                name(&args.name, "app")?;
                need_root()?;
                let args = lifecycle::app::CreateArgs {
                    name: args.name,
                    template: args.template,
                    from_dir: args.from_dir,
                    policy: match &args.policy {
                        Some(f) => Some((
                            f.display().to_string(),
                            std::fs::read_to_string(f)
                                .with_context(|| format!("read the policy {}", f.display()))?,
                        )),
                        None => None,
                    },
                    persist: args.persist,
                    share: args.share,
                    net: args.net,
                    cmd: args.cmd,
                };
                commands::app_create(&open_store(cli.home)?, args, json)?;
                Ok(0)
            }
            AppCmd::List { json } => commands::app_list(&open_store(cli.home)?, json).map(|_| 0),
            AppCmd::Show { name: n, json } => {
                commands::app_show(&open_store(cli.home)?, &name(&n, "app")?, json).map(|_| 0)
            }
            AppCmd::Rm { name: n, purge } => {
                need_root()?;
                commands::app_rm(&open_store(cli.home)?, &name(&n, "app")?, purge).map(|_| 0)
            }
            AppCmd::Policy {
                name: n,
                file,
                none,
            } => {
                let n = name(&n, "app")?;
                need_root()?;
                let store = open_store(cli.home)?;
                let v = match (file, none) {
                    (Some(f), false) => {
                        let text = std::fs::read_to_string(&f)
                            .with_context(|| format!("read the policy {}", f.display()))?;
                        lifecycle::app::set_policy(
                            &store,
                            &n,
                            Some(&text),
                            &f.display().to_string(),
                        )?
                    }
                    _ => lifecycle::app::set_policy(&store, &n, None, "--none")?,
                };
                println!(
                    "app {n} v{v}: {}",
                    if none { "no policy" } else { "new policy" }
                );
                Ok(0)
            }
            AppCmd::Update {
                name: n,
                net,
                memory,
                pids,
                cmd,
            } => {
                let n = name(&n, "app")?;
                let l = limits(&memory, pids, None, None)?;
                if net == NetMode::Bridge {
                    bail!("maintenance mode supports --net host or --net none");
                }
                need_root()?;
                commands::app_update(&open_store(cli.home)?, &n, cmd, net, l)
            }
        },
        Cmd::Run {
            app: a,
            memory,
            pids,
            cpus,
            disk,
            net,
            cap_add,
            tty,
            no_tty,
            preserve_fds,
            stop_timeout,
            id_file,
            env,
            workdir,
            volume,
            publish,
            name: ve_name,
            user,
            detach,
            strict_recording,
            rm_dirties,
            env_file,
            cmd,
        } => {
            if detach {
                need_root()?;
                let store = open_store(cli.home)?;
                return detached_run(&store, id_file.as_deref());
            }
            let env = run_env(&env_file, &env)?;
            if let Some(u) = &user {
                if u.is_empty() || u.contains('\0') || u.split(':').count() > 2 {
                    bail!("--user {u:?}: expected USER or USER:GROUP (names or numbers)");
                }
            }
            if let Some(w) = &workdir {
                if !w.starts_with('/') || w.split('/').any(|p| p == "..") {
                    bail!("--workdir {w:?}: an absolute path inside the VE, without ..");
                }
            }
            if let Some(f) = id_file.as_ref().filter(|f| f.exists()) {
                bail!(
                    "--id-file {}: the file exists (it would be overwritten)",
                    f.display()
                );
            }
            let volumes = volume
                .iter()
                .map(|v| lifecycle::ves::Volume::parse(v))
                .collect::<Result<Vec<_>, _>>()?;
            let publish = publish
                .iter()
                .map(|p| lifecycle::publish::Publish::parse(p).map_err(anyhow::Error::msg))
                .collect::<Result<Vec<_>>>()?;
            if let Some(n) = &ve_name {
                if n.chars().all(|c| c.is_ascii_digit()) {
                    bail!("--name {n}: a name may not be only digits (it would read as a VE id)");
                }
                model::Name::parse(n).map_err(|e| anyhow::anyhow!("--name {n:?}: {e}"))?;
            }
            let tty = tty || (!no_tty && std::io::IsTerminal::is_terminal(&std::io::stdin()));
            let mut extra_caps = 0u64;
            for c in &cap_add {
                let Some(n) = ve::caps::addable(c) else {
                    bail!("--cap-add {c}: only NET_RAW and AUDIT_WRITE can be given back to a VE");
                };
                extra_caps |= 1 << n;
            }
            let n = name(&a, "app")?;
            let l = limits(&memory, pids, cpus.as_deref(), disk.as_deref())?;
            if net == Some(NetMode::Host) {
                bail!("--net host is for maintenance mode (jcs app update); a VE runs with --net none or bridge");
            }
            need_root()?;
            mark("args");
            let store = open_store(cli.home)?;
            mark("store");
            let opts = lifecycle::ves::RunOptions {
                limits: l,
                net,
                extras: lifecycle::ves::Extras {
                    preserve_fds,
                    stop_timeout: Some(std::time::Duration::from_secs(stop_timeout)),
                    tty,
                    extra_caps,
                    id_file,
                    env,
                    workdir,
                    user,
                    strict_recording,
                    volumes,
                    publish,
                    name: ve_name,
                },
                rm_dirties,
            };
            Ok(lifecycle::ves::run(&store, &n, cmd, opts)?)
        }
        Cmd::Ps { all, json } => commands::ps(&open_store(cli.home)?, all, json).map(|_| 0),
        Cmd::Inspect { ve, json } => {
            let store = open_store(cli.home)?;
            let ve = ve.id(&store)?;
            commands::inspect(&store, ve, json).map(|_| 0)
        }
        Cmd::Rm { ves } => {
            need_root()?;
            let store = open_store(cli.home)?;
            let ids = VeArg::ids(&ves, &store)?;
            commands::rm(&store, &ids).map(|_| 0)
        }
        Cmd::Gc {
            dry_run,
            older_than,
            include_flagged,
            json,
        } => {
            if !dry_run {
                need_root()?;
            }
            let ended_before_ms = older_than
                .or(config.retention.dirties.clone())
                .map(|a| {
                    query::time::parse_time(&a, query::time::now_ns())
                        .map(|ns| (ns / 1_000_000) as i64)
                })
                .transpose()?;
            let o = lifecycle::ves::GcOptions {
                dry_run,
                ended_before_ms,
                include_flagged,
            };
            commands::gc(&open_store(cli.home)?, o, json).map(|_| 0)
        }
        Cmd::Verify { json, dir } => match dir {
            Some(dir) => queries::verify_dir(&dir, json),
            None => queries::verify(&open_store(cli.home)?, json),
        },
        Cmd::Export {
            format,
            output,
            since,
            until,
            ve,
            host,
        } => {
            let now = query::time::now_ns();
            let time = |t: Option<String>| t.map(|t| query::time::parse_time(&t, now)).transpose();
            let (since_ns, until_ns) = (time(since)?, time(until)?);
            if format == "parquet" && output.is_none() {
                usage_fail("--format parquet writes a file: name it with -o FILE");
            }
            let store = open_store(cli.home)?;
            let ves = if ve.is_empty() {
                None
            } else {
                let mut set = std::collections::HashSet::new();
                for v in &ve {
                    let v = v.id(&store)?;
                    known_ve(&store, v)?;
                    set.insert(v);
                }
                Some(set)
            };
            let host = host.unwrap_or_else(fleet::default_host);
            queries::export(
                &store,
                &format,
                output.as_deref(),
                since_ns,
                until_ns,
                ves,
                &host,
            )
        }
        Cmd::Ship {
            to,
            stream,
            host,
            replicas,
            follow,
            from_start,
            json,
        } => {
            let mut opts =
                fleet::ship::ShipOptions::new(&to, &host.unwrap_or_else(fleet::default_host));
            opts.stream = stream;
            opts.replicas = replicas;
            opts.follow = follow;
            opts.from_start = from_start;
            let store = open_store(cli.home)?;
            queries::ship(&store, &opts, json)
        }
        Cmd::Collect {
            from,
            to,
            stream,
            host,
            follow,
            json,
        } => {
            let (urls, dirs): (Vec<String>, Vec<String>) =
                to.into_iter().partition(|t| t.contains("://"));
            let [out] = dirs.as_slice() else {
                usage_fail(
                    "name one directory with --to (each host's copy and state), \
                     and any clickhouse://HOST:PORT[/DATABASE] with another --to",
                );
            };
            let clickhouse = match urls.as_slice() {
                [] => None,
                [u] => Some(fleet::clickhouse::ClickHouse::parse(u)?),
                _ => usage_fail("at most one clickhouse:// --to"),
            };
            let opts = fleet::collect::CollectOptions {
                servers: from,
                stream,
                hosts: host,
                out: PathBuf::from(out),
                follow,
                wait_at_end: fleet::collect::WAIT_AT_END,
            };
            queries::collect(&opts, clickhouse, json)
        }
        Cmd::Stats { ve, json, strict } => {
            let store = open_store(cli.home)?;
            let ve = ve.map(|v| v.id(&store)).transpose()?;
            if let Some(v) = ve {
                known_ve(&store, v)?;
            }
            queries::stats(&store, ve, json, strict)
        }
        Cmd::Log {
            ve,
            app,
            var,
            op,
            pid,
            status,
            since,
            until,
            exe,
            follow,
            json,
            format,
            strict,
        } => {
            let format = match (json, format) {
                (true, _) => queries::LogFormat::Json,
                (false, f) => f.unwrap_or(queries::LogFormat::Text),
            };
            let now = query::time::now_ns();
            let time = |t: Option<String>| t.map(|t| query::time::parse_time(&t, now)).transpose();
            let ops = op
                .iter()
                .map(|o| {
                    model::at::Op::from_name(o).ok_or_else(|| {
                        anyhow::anyhow!(
                            "--op {o}: not an operation (one of: {})",
                            model::at::Op::names().join(", ")
                        )
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let mut f = query::log::Filter {
                var: var.as_deref().map(record::VarQuery::parse).transpose()?,
                ops: (!ops.is_empty()).then_some(ops),
                pid,
                status: status.map(|s| match s {
                    StatusArg::Committed => model::at::Status::Committed,
                    StatusArg::Aborted => model::at::Status::Aborted,
                    StatusArg::Failed => model::at::Status::Failed,
                }),
                since_ns: time(since)?,
                until_ns: time(until)?,
                exe,
                ..Default::default()
            };
            let store = open_store(cli.home)?;
            let ve = ve.map(|v| v.id(&store)).transpose()?;
            if let Some(v) = ve {
                known_ve(&store, v)?;
            }
            if let Some(a) = app {
                f.ves = Some(app_ves(&store, &a)?);
            }
            if let Some(v) = ve {
                f.ves = Some(match f.ves {
                    Some(s) => s.into_iter().filter(|x| *x == v).collect(),
                    None => [v].into_iter().collect(),
                });
            }
            queries::log(&store, f, format, follow, strict)
        }
        Cmd::Summarize {
            tier,
            policy,
            dry_run,
            json,
        } => {
            let tiers: Vec<&str> = tier.iter().map(String::as_str).collect();
            let policy = match (tiers.contains(&"T4"), policy) {
                (true, None) => {
                    bail!("--tier T4 needs --policy FILE (lines `network 7d`, `files 30d`)")
                }
                (true, Some(p)) => {
                    let text = std::fs::read_to_string(&p)
                        .with_context(|| format!("read the policy {}", p.display()))?;
                    Some(
                        analysis::summary::FadePolicy::parse(&text)
                            .map_err(|e| anyhow::anyhow!("policy {}: {e}", p.display()))?,
                    )
                }
                (false, Some(_)) => bail!("--policy is T4's: add --tier T4"),
                (false, None) => None,
            };
            if dry_run {
                use query::summarize::View;
                let views: Vec<View> = tiers
                    .iter()
                    .map(|t| match *t {
                        "T1" => View::T1,
                        "T1F" => View::T1F,
                        "T2" => View::T2,
                        "T3" => View::T3,
                        _ => View::T4,
                    })
                    .collect();
                queries::summarize_dry_run(&open_store(cli.home)?, &views, policy.as_ref(), json)
                    .map(|_| 0)
            } else {
                let [tier] = tiers[..] else {
                    bail!("rewriting the journal takes one --tier (T1, T1F, T2 or T4); --dry-run shows them all");
                };
                let Some(tier) =
                    record::Tier::from_name(tier).filter(|t| *t != record::Tier::Integrity)
                else {
                    bail!("--tier {tier}: the journal can be rewritten into T1, T1F, T2 or T4 (T3 is a view: --dry-run)");
                };
                need_root()?;
                queries::summarize(&open_store(cli.home)?, tier, policy.as_ref(), json).map(|_| 0)
            }
        }
        Cmd::Track { dir } => {
            use query::track::{Direction, Source};
            let (d, var, t, out) = match dir {
                TrackCmd::Back { var, at, out } => (Direction::Back, var, at, out),
                TrackCmd::Forward { var, from, out } => (Direction::Forward, var, from, out),
            };
            let q = record::VarQuery::parse(&var)?;
            let t = t
                .as_deref()
                .map(|t| query::time::parse_time(t, query::time::now_ns()))
                .transpose()?;
            let format = if out.json {
                queries::Format::Json
            } else if out.dot {
                queries::Format::Dot
            } else {
                queries::Format::Tree
            };
            let source = match out.tier.as_deref() {
                Some("T1") => Source::T1,
                Some("T1F") => Source::T1F,
                Some(_) => Source::T2,
                None => Source::Transactions,
            };
            let print = queries::TrackPrint {
                format,
                svg: out.svg.as_deref(),
                strict: out.strict,
            };
            if let Some(url) = &out.fleet {
                let ch = fleet::clickhouse::ClickHouse::parse(url)?;
                let ves = match out.ve {
                    Some(VeArg::Id(v)) => Some(std::collections::HashSet::from([v])),
                    Some(VeArg::Name(n)) => {
                        usage_fail(&format!("--ve {n}: with --fleet, a VE by its number"))
                    }
                    None => None,
                };
                let a = fleet::track::track(&ch, d, &q, out.host.as_deref(), ves, t, source)?;
                return queries::print_answer(a, print);
            }
            let store = open_store(cli.home)?;
            let ves = match (out.ve, out.app.as_deref()) {
                (Some(v), _) => {
                    let v = v.id(&store)?;
                    known_ve(&store, v)?;
                    Some(std::collections::HashSet::from([v]))
                }
                (None, Some(a)) => {
                    let a = name(a, "app")?;
                    known_app(&store, &a)?;
                    Some(
                        store
                            .catalog
                            .ves()?
                            .into_iter()
                            .filter(|v| v.app == a.as_str())
                            .map(|v| v.id)
                            .collect(),
                    )
                }
                (None, None) => None,
            };
            queries::track(&store, d, &q, t, ves, source, print)
        }
        Cmd::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cmd, "jcs", &mut buf);
            // (A closed pipe, `| head`: an error, not a panic.)
            std::io::Write::write_all(&mut std::io::stdout(), &buf)
                .context("write the completion script")?;
            Ok(0)
        }
        Cmd::Schema { name, write } => schema(name, write),
        Cmd::CaptureOutput { max, file } => capture_output(max, &file).map(|_| 0),
        Cmd::Report { ve, from, at, html } => {
            let store = open_store(cli.home)?;
            let page = match (ve, from) {
                (Some(v), _) => report::ve_report(&store, v.id(&store)?)?,
                (None, Some(var)) => {
                    let at_ns = at
                        .map(|t| query::time::parse_time(&t, query::time::now_ns()))
                        .transpose()?;
                    report::from_report(&store, &var, at_ns)?
                }
                (None, None) => bail!("give a VE or --from VAR"),
            };
            if html.as_os_str() == "-" {
                std::io::Write::write_all(&mut std::io::stdout(), page.as_bytes())?;
            } else {
                std::fs::write(&html, page).with_context(|| format!("write {}", html.display()))?;
                eprintln!("jcs: wrote {}", html.display());
            }
            Ok(0)
        }
        Cmd::Man { dir } => {
            std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
            let n = write_man(&full_command(), "jcs", &dir)?;
            println!("{n} manual pages in {}", dir.display());
            Ok(0)
        }
        Cmd::Daemon {
            summarize,
            retain,
            ship,
            metrics,
        } => {
            let metrics = match metrics {
                Some(m) => Some(m),
                None => match std::env::var("JCS_METRICS") {
                    Ok(v) => Some(v.parse().map_err(|e| {
                        anyhow::anyhow!(
                            "JCS_METRICS={v:?}: {e} (an ADDR:PORT such as 127.0.0.1:9464)"
                        )
                    })?),
                    Err(_) => None,
                },
            };
            let ship = match ship.or_else(|| std::env::var("JCS_SHIP").ok()) {
                Some(to) => Some(ship_options_from_env(&to)?),
                None => None,
            };
            let retain = match retain.or_else(|| std::env::var("JCS_RETAIN").ok()) {
                Some(spec) => {
                    Some(query::summarize::Retention::parse(&spec).map_err(anyhow::Error::msg)?)
                }
                None => None,
            };
            let every = match std::env::var("JCS_RETAIN_EVERY") {
                Ok(v) => query::time::parse_age(&v)
                    .map_err(|e| anyhow::anyhow!("JCS_RETAIN_EVERY={v:?}: {e}"))?,
                Err(_) => 3_600_000_000_000,
            };
            need_root()?;
            let online = summarize.as_deref() == Some("online")
                || std::env::var("JCS_SUMMARIZE").is_ok_and(|v| v == "online");
            recorder::service::init_logging();
            let store = open_store(cli.home)?;
            if let Some(policy) = retain {
                queries::retain_in_background(store.journal_dir(), policy, every)?;
            }
            if let Some(opts) = ship {
                queries::ship_in_background(store.journal_dir(), opts)?;
            }
            let opts = recorder::service::Options {
                online_t1: online,
                metrics,
                segment_bytes: None,
            };
            recorder::service::run(&store, opts)?;
            Ok(0)
        }
    }
}

/// The daemon's shipping: `to`, and the rest from the environment (the configuration's
/// `[ship]` put it there).
fn ship_options_from_env(to: &str) -> Result<fleet::ship::ShipOptions> {
    let host = std::env::var("JCS_SHIP_HOST").unwrap_or_else(|_| fleet::default_host());
    fleet::check_host(&host).map_err(|e| anyhow::anyhow!("JCS_SHIP_HOST: {e}"))?;
    let mut opts = fleet::ship::ShipOptions::new(to, &host);
    opts.follow = true;
    if let Ok(s) = std::env::var("JCS_SHIP_STREAM") {
        fleet::ship::check_stream(&s).map_err(|e| anyhow::anyhow!("JCS_SHIP_STREAM: {e}"))?;
        opts.stream = s;
    }
    if let Ok(r) = std::env::var("JCS_SHIP_REPLICAS") {
        opts.replicas = r.parse().ok().filter(|&n: &usize| n > 0).ok_or_else(|| {
            anyhow::anyhow!("JCS_SHIP_REPLICAS={r:?}: a number of copies, at least 1")
        })?;
    }
    Ok(opts)
}

/// `jcs schema`: list the outputs, print one's schema, or write them all.
fn schema(name: Option<String>, write: Option<PathBuf>) -> Result<i32> {
    if let Some(dir) = write {
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        for o in json::OUTPUTS {
            let path = dir.join(format!("{}.json", o.name));
            let text = serde_json::to_string_pretty(&(o.schema)())? + "\n";
            std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
        }
        println!("{} schemas in {}", json::OUTPUTS.len(), dir.display());
        return Ok(0);
    }
    match name {
        None => {
            let mut t = output::Table::new(&["NAME", "OUTPUT OF", "SHAPE"]);
            for o in json::OUTPUTS {
                t.row(vec![
                    o.name.into(),
                    o.commands
                        .iter()
                        .map(|c| format!("jcs {c} --json"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    if o.lines { "JSON lines" } else { "one object" }.into(),
                ]);
            }
            t.print();
        }
        Some(n) => {
            let Some(o) = json::OUTPUTS.iter().find(|o| o.name == n) else {
                let names: Vec<&str> = json::OUTPUTS.iter().map(|o| o.name).collect();
                bail!("no output named {n:?}: one of {}", names.join(", "));
            };
            println!("{}", serde_json::to_string_pretty(&(o.schema)())?);
        }
    }
    Ok(0)
}

/// When an error says a disk is full (SQLite's "database or disk is full", ENOSPC), which
/// store it is and how much room it has: the store's own words, not only SQLite's.
fn disk_full_hint(msg: &str) -> Option<String> {
    if !(msg.contains("database or disk is full")
        || msg.contains("No space left on device")
        || msg.contains("os error 28"))
    {
        return None;
    }
    let home = std::env::args_os()
        .skip_while(|a| a != "--home")
        .nth(1)
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("JCS_HOME").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/var/lib/jcs"));
    let free = rustix::fs::statvfs(&home)
        .map(|s| (s.f_bavail * s.f_frsize).to_string())
        .unwrap_or_else(|_| "an unknown number of".into());
    Some(format!(
        "the disk of the store at {} is full ({free} bytes free): free space there, or remove \
         finished VEs (jcs rm, jcs gc) or summarize the journal (jcs summarize)",
        home.display()
    ))
}

/// A usage error (an unknown flag, a missing argument, a bad value): one line on stderr, a
/// hint when a docker habit or a missing `--` explains it, and exit 2. Help and version
/// print as clap has them (exit 0).
fn usage_error(e: clap::Error) -> ! {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit()
    }
    let text = e.render().to_string();
    let mut lines = text.lines();
    let mut msg = lines
        .next()
        .unwrap_or("")
        .trim_start_matches("error: ")
        .to_string();
    // "the following required arguments were not provided:" lists them on the next lines.
    if msg.ends_with(':') {
        let items: Vec<&str> = lines
            .clone()
            .take_while(|l| l.starts_with("  ") && !l.trim().is_empty())
            .map(str::trim)
            .collect();
        msg = format!("{} {}", msg, items.join(", "));
    }
    if let Some(ContextValue::Strings(s)) = e.get(ContextKind::SuggestedArg) {
        msg = format!("{msg}; did you mean {}?", s.join(" or "));
    } else if let Some(ContextValue::String(s)) = e.get(ContextKind::SuggestedArg) {
        msg = format!("{msg}; did you mean {s}?");
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = command_path(&args);
    let see: String = path.iter().map(|p| format!(" {p}")).collect();
    eprintln!("jcs: {msg} (see: jcs{see} --help)");
    let bad = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => s.split([' ', '=']).next().unwrap_or("").to_string(),
        _ => String::new(),
    };
    let sub = match e.get(ContextKind::InvalidSubcommand) {
        Some(ContextValue::String(s)) => s.clone(),
        _ => String::new(),
    };
    if let Some(h) = usage_hint(&path, &bad, &sub) {
        eprintln!("hint: {h}");
    }
    std::process::exit(2)
}

/// A usage error found after parsing (arguments that clap cannot check together): the same
/// one line and exit 2.
fn usage_fail(msg: &str) -> ! {
    let e = <Cli as clap::CommandFactory>::command()
        .error(clap::error::ErrorKind::ArgumentConflict, msg);
    usage_error(e)
}

/// Every command with its arguments. Subcommands are deferred (`#[command(defer = true)]`: a
/// `jcs run` builds only its own arguments, not every command's — 0.2 ms of each start); what
/// walks the tree (manual pages, usage hints, the schema test) builds it all first.
fn full_command() -> clap::Command {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    cmd.build();
    cmd
}

/// The subcommands named at the start of `args` (`["app", "create"]`).
fn command_path(args: &[String]) -> Vec<String> {
    let mut cmd = full_command();
    let mut path = vec![];
    for a in args {
        if a.starts_with('-') {
            continue;
        }
        match cmd.find_subcommand(a) {
            Some(c) => {
                path.push(c.get_name().to_string());
                cmd = c.clone();
            }
            None => break,
        }
    }
    path
}

/// What a docker or podman user meant, for a flag or command jcs does not have.
fn usage_hint(path: &[String], bad: &str, sub: &str) -> Option<String> {
    let run = path.first().is_some_and(|c| c == "run");
    let h = match (sub, bad) {
        ("images", _) => "templates are the images: jcs template list",
        ("pull" | "load" | "import", _) => {
            "jcs template import NAME FILE.tar (a docker-archive or OCI-layout tarball)"
        }
        ("build", _) => "jcs template create, then jcs app create NAME --template T",
        ("start" | "restart", _) => "a VE is never restarted: each jcs run builds a fresh one",
        ("container" | "top" | "attach", _) => "jcs ps, jcs exec VE -- CMD, jcs logs VE",
        (_, "--rm") if run => {
            "jcs run --rm-dirties removes the VE's dirties once it ends (flagged ones are kept)"
        }
        (_, "-i" | "--interactive") if run => {
            "stdin always passes into the VE; -t gives it a terminal"
        }
        (_, "--privileged") if run => {
            "a VE never runs privileged; --cap-add NET_RAW or AUDIT_WRITE gives one capability back"
        }
        (_, "--network") if run => "--net none or --net bridge",
        (_, "--mount") if run => "-v HOST:PATH[:ro]",
        (_, "--entrypoint") if run => "the command goes after --: jcs run APP -- CMD [ARGS]",
        (_, "--restart") if run => "a VE is never restarted: each jcs run builds a fresh one",
        (_, "-m") if run => "--memory SIZE",
        (_, b) if run && !b.is_empty() && !b.starts_with('-') => {
            "the VE's command goes after --: jcs run [OPTIONS] APP -- CMD [ARGS]..."
        }
        _ => return None,
    };
    Some(h.to_string())
}

/// The VE's environment from `--env-file` files, then `--env` (later wins): KEY=VALUE, or KEY
/// alone for this process's value.
fn run_env(files: &[PathBuf], env: &[String]) -> Result<Vec<(String, String)>> {
    let one = |e: &str, what: &str| -> Result<(String, String)> {
        let (k, v) = match e.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (e.to_string(), std::env::var(e).unwrap_or_default()),
        };
        if k.is_empty() || k.contains(['\0', ' ', '\t']) || v.contains('\0') {
            bail!("{what} {e:?}: expected KEY=VALUE (or KEY) with a non-empty KEY");
        }
        Ok((k, v))
    };
    let mut out: Vec<(String, String)> = vec![];
    let mut set = |kv: (String, String)| {
        out.retain(|(k, _)| *k != kv.0);
        out.push(kv);
    };
    for f in files {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("--env-file {}", f.display()))?;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            set(one(
                line,
                &format!("--env-file {} line {}:", f.display(), i + 1),
            )?);
        }
    }
    for e in env {
        set(one(e, "--env")?);
    }
    Ok(out)
}

/// `jcs run`'s exit code when the VE ran but its recording is incomplete.
const EXIT_UNRECORDED: i32 = 122;

fn main() {
    // A caller that ignores SIGCHLD would have the kernel reap jcs's children (the daemon's
    // start, debootstrap, a VE's init) and their status lost; the VE's app gets it back.
    ve::launch::take_caller_sigchld();
    match real_main() {
        Ok(code) => {
            print_marks();
            std::process::exit(code)
        }
        Err(e) => {
            // The chain once: a message that already ends with its cause's is not repeated.
            let mut msg = String::new();
            for c in e.chain() {
                let s = c.to_string();
                if !msg.ends_with(&s) {
                    if !msg.is_empty() {
                        msg.push_str(": ");
                    }
                    msg.push_str(&s);
                }
            }
            // (One line: the store and its free space follow a disk-full error.)
            match disk_full_hint(&msg) {
                Some(hint) => eprintln!("jcs: {msg}; {hint}"),
                None => eprintln!("jcs: {msg}"),
            }
            // Like a shell (and docker): 127 when the command is not found, 126 when it cannot
            // be executed, 125 when the VE cannot be built.
            // 122: the VE ran, but what it did is not all in the journal (the message says
            // the VE's own exit code); nobody should take its record as complete.
            let unrecorded = e.chain().any(|c| {
                matches!(
                    c.downcast_ref::<lifecycle::LifecycleError>(),
                    Some(lifecycle::LifecycleError::Unrecorded { .. })
                )
            });
            let code = match e.chain().find_map(|c| {
                c.downcast_ref::<ve::launch::LaunchError>().or_else(|| {
                    c.downcast_ref::<lifecycle::LifecycleError>()
                        .and_then(|l| l.launch())
                })
            }) {
                _ if unrecorded => EXIT_UNRECORDED,
                Some(ve::launch::LaunchError::Exec(_)) => 127,
                Some(ve::launch::LaunchError::CannotExec(_)) => 126,
                Some(_) => 125,
                None => 1,
            };
            std::process::exit(code);
        }
    }
}
