/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/* The one definition of what the kernel side of the JCS monitor sends to user space.
 * Rust never copies these numbers: libbpf-cargo generates `skel::types::{jcs_event, jcs_kind,
 * jcs_capture, jcs_flag, jcs_limit}` from the compiler's BTF of this header (monitor.bpf.c
 * declares one global of each so that they are emitted), and `decode.rs` reads through them. */
#ifndef JCS_MONITOR_H
#define JCS_MONITOR_H

/* Sizes: an enum, not #defines, so that BTF (and so the Rust skeleton) carries them. */
enum jcs_limit {
	JCS_PATH_MAX = 256,    /* bytes of `path` */
	JCS_HEAD_SIZE = 176,   /* bytes before `path`: a record that carries no path data (a read
	                        * or write of a file, a fork, an exit) is this long; the ring
	                        * buffer's sample length says which */
	JCS_PATH_HALF = 128,   /* two-path calls: the second path starts here */
	JCS_MMSG_MAX = 32,     /* datagrams itemized per sendmmsg/recvmmsg */
	JCS_MAX_SYSCALL = 512, /* entries of the `interest` map */
	JCS_RULES_MAX = 32,    /* network rules that apply to one prefix (`struct jcs_rules`) */
	JCS_COUNT_SLOTS = 64,  /* VEs whose system calls are counted in the `call_counts` array at
	                        * once (more: the `counts` hash map) */
};

enum jcs_kind {
	JCS_EV_SYSCALL = 1, /* an interesting system call of a watched cgroup, at its exit */
	JCS_EV_FORK = 2,    /* a task of a watched cgroup created a process or thread */
	JCS_EV_EXEC = 3,    /* a task of a watched cgroup exec'd a file (path = filename; identity:
	                     * the file the kernel ran, bprm->file) */
	JCS_EV_EXIT = 4,    /* a task of a watched cgroup exited */
};

/* What to capture for a system call: the value of the `interest` map, per number. */
enum jcs_capture {
	JCS_CAP_RECORD = 1,    /* record it */
	JCS_CAP_FD0 = 2,       /* identity and position of the fd in args[0], at entry; for a
	                        * socket: its peer (from the kernel's sock), loopback dropped */
	JCS_CAP_FD4 = 4,       /* identity of the fd in args[4] (mmap; -1 = not a file: skipped) */
	JCS_CAP_PATH0 = 8,     /* the user string at args[0], at exit */
	JCS_CAP_PATH1 = 16,    /* the user string at args[1], at exit */
	JCS_CAP_ADDR1 = 32,    /* the sockaddr at args[1] (length args[2]), at exit */
	JCS_CAP_NEWFD = 64,    /* identity of the fd the call returned, at exit (a socket: its peer) */
	JCS_CAP_ADDR4 = 128,   /* the sockaddr at args[4] (length args[5]), at exit (sendto, recvfrom) */
	JCS_CAP_ADDRLENP = 256, /* the sockaddr's length argument is a pointer (accept, recvfrom) */
	JCS_CAP_READ = 512,    /* moves data from the fd's file into the VE (or closes it): dropped
	                        * when the file exists only in a read-only branch (classification);
	                        * so is an open (NEWFD) whose new file exists only there */
	JCS_CAP_XFER1 = 1024,  /* a transfer between two fds: out = args[0], in = args[1], the in
	                        * offset pointer at args[2] (sendfile) */
	JCS_CAP_XFER2 = 2048,  /* a transfer: in = args[0] (offset pointer args[1]), out = args[2]
	                        * (offset pointer args[3]) (copy_file_range, splice) */
	JCS_CAP_PATHB1 = 4096, /* a second path, at args[1], into path[128..] (rename, link, symlink) */
	JCS_CAP_PATHB2 = 8192, /* ... at args[2] (symlinkat) */
	JCS_CAP_PATHB3 = 16384, /* ... at args[3] (renameat*, linkat) */
	JCS_CAP_MSGHDR = 32768, /* args[1] is a struct msghdr: its msg_name, at exit (sendmsg, recvmsg) */
	JCS_CAP_MMSG = 65536,  /* args[1] is an array of struct mmsghdr, ret of them used: one record
	                        * per datagram (sendmmsg, recvmmsg) */
	JCS_CAP_PIPE = 131072, /* args[0] points to two new descriptors (pipe, pipe2): remembered as
	                        * made in the task's VE (the `pipes` map), not recorded */
	JCS_CAP_SCM = 262144,  /* sendmsg: descriptors passed in SCM_RIGHTS leave the VE (the
	                        * `escaped` map) */
	JCS_CAP_VMA = 524288,  /* mprotect: made writable, a shared mapping of a file writes it:
	                        * the file behind args[0] (identity; pos = its offset there);
	                        * anything else is skipped */
	JCS_CAP_UNMAP = 1048576, /* munmap: the end of a writable shared mapping of a file (the
	                        * file behind args[0], as for JCS_CAP_VMA); anything else skipped */
	JCS_CAP_FAILED = 2097152, /* recorded only when it fails (execve, execveat: a success is the
	                        * JCS_EV_EXEC record) */
	JCS_CAP_NOTIFIED = 4194304, /* may be answered by the VE's pre-image supervisor (seccomp user
	                        * notification), which skips sys_enter: its record is then built at
	                        * sys_exit from the registers (path calls: nothing is read at entry) */
	JCS_CAP_OUT = 8388608, /* moves data out through the fd in args[0] (write, send*): once
	                        * the VE's byte budget ran out, a socket's such call is aborted */
	JCS_CAP_XFER3 = 16777216, /* a transfer between two pipes: in = args[0], out = args[1], no
	                        * offsets (tee) */
	JCS_CAP_FMODE = 33554432, /* whether the fd in args[0] was opened for writing
	                        * (JCS_F_WRITE_END): vmsplice moves memory into a pipe's write end,
	                        * a read end's contents into memory */
	JCS_CAP_BIND = 67108864, /* the address the call names is a local end (bind): the
	                        * unspecified address there means every interface, not this host */
};

/* Facts the kernel attaches to a record (`flags`). */
enum jcs_flag {
	JCS_F_SOCKET = 1,   /* the (first) fd is a socket; `path` holds its peer's sockaddr if known */
	JCS_F_NO_IN = 2,    /* a transfer whose input side stays inside the VE (a pipe, or a file of
	                     * a read-only branch): no transaction for it */
	JCS_F_NO_OUT = 4,   /* a transfer whose output side is a pipe: no transaction for it */
	JCS_F_DGRAM = 8,    /* one datagram of sendmmsg/recvmmsg: ret = its length, pos = its index */
	JCS_F_MORE = 16,    /* after JCS_MMSG_MAX datagrams: ret = the number not itemized */
	JCS_F_SOCKET2 = 32, /* the second fd of a transfer is a socket */
	JCS_F_APPEND = 64,  /* a write to a file opened O_APPEND: the kernel writes at its end */
	JCS_F_DNAME = 128,  /* an open: `path + JCS_PATH_HALF` holds the final name of the file
	                     * the kernel opened (its dentry), to tell a symbolic link's name */
	JCS_F_LOCAL = 256,  /* an IP socket's call: `path + JCS_PATH_HALF` holds its local end (a
	                     * struct sockaddr_in or sockaddr_in6), read at exit */
	JCS_F_UDP = 512,    /* the socket is a datagram socket (else a stream: TCP) */
	JCS_F_WRITE_END = 1024, /* JCS_CAP_FMODE: the descriptor was opened for writing */
	JCS_F_ARGV = 2048,  /* an exec: `path + JCS_PATH_HALF` holds the start of its argument
	                     * strings (NUL-separated), args[0..4] uid, euid, gid, parent's pid */
	JCS_F_ARGV_CUT = 4096, /* ... and there were more than fit */
	JCS_F_TTY = 8192,   /* the file is a pseudo-terminal of the VE's whose master JCS holds on
	                     * the host side (`jcs run -t`, `jcs exec -t`): what crosses it is the
	                     * user's terminal, named `host:pty` */
	JCS_F_OWN = 16384,  /* the (first) file is one of the VE's dirties (an overlay file with an
	                     * upper file, of the VE's own root, never passed out): writing it is an
	                     * integrity event, not a flow; reading it is dropped in the kernel */
	JCS_F_OWN_OUT = 32768, /* a transfer whose output side is one of the VE's dirties */
	JCS_F_UNIXFILE = 65536, /* a Unix socket call: dev2, ino2, gen2 are the file its rendezvous
	                         * socket is bound to (sockets bound to a path name) */
};


/* Counters, one slot each in the per-CPU `stats` map. */
enum jcs_stat {
	JCS_STAT_SEEN = 0,    /* system calls entered by watched tasks */
	JCS_STAT_SKIPPED = 1, /* ... of no interest (not recorded) */
	JCS_STAT_EMITTED = 2, /* records submitted */
	JCS_STAT_LOST = 3,    /* records lost: the ring buffer was full */
	JCS_STAT_DROPPED = 4, /* calls dropped by classification */
	JCS_STAT_MAX = 5,
};

/* Value of the `watched` map: the VE, the records it lost (the ring buffer was full, or it
 * was over its share while the ring was under pressure), and its fair-share accounting.
 * What it entered and what classification dropped are in `counts`, per system call; what was
 * emitted is what user space receives: nothing else is counted per VE on the hot path. */
struct jcs_ve {
	__u64 ve;
	__u64 lost;
	/* Fair capture: while the ring buffer is more than half full, a VE adds at most its share
	 * of bytes per quarter of the ring the consumer drains (`epoch` counts those quarters,
	 * `used` the bytes of the VE's records in the current one); beyond it, its records are
	 * lost and charged to it, not to the VEs that stayed within their share. */
	__u64 epoch;
	__u64 used;
	/* The pid of the VE's init (JCS's own code that builds the VE, then reaps and supervises):
	 * the system calls of its threads are neither the app's nor counted as the VE's (0: none). */
	__u64 init_tid;
	/* budget.bytes_sent: the IP bytes the VE may send out of its network namespace (0: no
	 * budget), what it sent, when the budget ran out (0: not yet), and the rule's number. */
	__u64 budget;
	__u64 sent;
	__u64 exhausted_ns;
	__u64 budget_rule;
	/* The VE's slot in `call_counts`, plus one (0: none; its calls are counted in `counts`). */
	__u64 count_slot;
	/* The VE's pseudo-terminals whose master JCS holds on the host side, by index (bit N:
	 * /dev/pts/N of the VE's devpts): their data crosses the boundary. */
	__u64 tty_mask;
};

/* Key of the `counts` map: system calls entered, per VE (cgroup) and number, for a VE without
 * a slot in the `call_counts` array (whose index is
 * ((count_slot - 1) * JCS_MAX_SYSCALL + nr) * 2 + dropped). */
struct jcs_count_key {
	__u64 cgroup_id;
	__u32 nr;
	__u32 dropped; /* 0: calls entered; 1: calls dropped by classification */
};

struct jcs_event {
	__u64 time_ns;   /* 0   bpf_ktime_get_ns() at the exit of the call */
	__u64 cgroup_id; /* 8   cgroup2 id of the task */
	__u32 pid;       /* 16  tgid */
	__u32 tid;       /* 20 */
	__u32 kind;      /* 24  enum jcs_kind */
	__u32 nr;        /* 28  system call number (JCS_EV_SYSCALL) */
	__s64 ret;       /* 32  return value; child pid for JCS_EV_FORK; the wait status for
	                  *     JCS_EV_EXIT (exit code << 8, or the killing signal) */
	__u64 args[6];   /* 40  raw arguments */
	__u64 dev;       /* 88  file identity of the (first) fd argument, taken at entry (0 = none) */
	__u64 ino;       /* 96 */
	__s64 pos;       /* 104 its offset at entry: the call's offset pointer, else the file
	                  *     position (-1 = none) */
	__u64 dev2;      /* 112 the same for the second fd of a transfer */
	__u64 ino2;      /* 120 */
	__s64 pos2;      /* 128 */
	__u16 path_len;  /* 136 bytes used in `path` (0 = none) */
	__u16 path2_len; /* 138 bytes used in `path + JCS_PATH_HALF` (two-path calls) */
	__u32 flags;     /* 140 enum jcs_flag */
	__u32 gen;       /* 144 generation of the (first) file (i_generation; of the upper file on
	                  *     an overlay): with dev and ino, a file's identity */
	__u32 gen2;      /* 148 the same for the second file */
	__u64 size;      /* 152 a write's file size at entry (where O_APPEND/RWF_APPEND writes) */
	__u64 enter_ns;  /* 160 bpf_ktime_get_ns() at the entry of the call (= time_ns for the
	                  *     other kinds): what a call writes is visible to others from then on */
	__u32 rule;      /* 168 the policy rule that denied the call (a cgroup sock_addr program
	                  *     made it fail with EPERM), 0 = none */
	__u32 pad;       /* 172 */
	char path[JCS_PATH_MAX]; /* 176 a NUL-terminated path (openat; exec: the file name); two
	                          *     paths: the first in [0, 128), the second in [128, 256);
	                          *     sockets: the raw struct sockaddr of the remote end, and
	                          *     with JCS_F_LOCAL the local end at JCS_PATH_HALF */
};                       /* 432 bytes; JCS_HEAD_SIZE without `path` */

_Static_assert(sizeof(struct jcs_event) == 432, "the layout the comments above describe");
_Static_assert(__builtin_offsetof(struct jcs_event, path) == JCS_HEAD_SIZE, "the head's size");

/* The network policy (model::policy): per VE, a longest-prefix-match map from address prefix to
 * the rules that apply to it, in policy order, ending with the default. */
enum jcs_policy_bits {
	JCS_PROTO_TCP = 1,
	JCS_PROTO_UDP = 2,
	JCS_PROTO_OTHER = 4, /* any other protocol (ICMP datagram sockets...) */
	JCS_OP_CONNECT = 1,
	JCS_OP_SEND = 2,     /* a datagram sent to a named address (sendto, sendmsg) */
	JCS_OP_BIND = 4,
};

/* Key of the `policy` map: prefixlen counts the bits after itself (64 for ve and family, then
 * the prefix's). An IPv4 address (or an IPv4-mapped IPv6 one) is family 4 in addr[0..4]. */
struct jcs_policy_key {
	__u32 prefixlen;
	__u32 ve;        /* the VE id's low 32 bits */
	__u32 family;    /* 4 or 6 */
	__u8 addr[16];
};

struct jcs_rule {
	__u16 port_lo;   /* host order, inclusive */
	__u16 port_hi;
	__u8 protos;     /* JCS_PROTO_* */
	__u8 ops;        /* JCS_OP_* */
	__u8 deny;
	__u8 pad;
	__u32 id;        /* the rule's number in the policy */
};

struct jcs_rules {
	__u32 n;
	__u32 pad;
	struct jcs_rule r[JCS_RULES_MAX];
};

/* Key of the `denials` map: denials per VE and rule, counted in the kernel (exact whatever the
 * ring buffer loses). */
/* Slots of the `tainted` map (a VE's is its id modulo this). */
#define JCS_TAINT_SLOTS 65536

struct jcs_deny_key {
	__u64 ve;
	__u32 rule;
	__u32 pad;
};

#endif
