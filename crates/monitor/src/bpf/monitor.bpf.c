// SPDX-License-Identifier: GPL-2.0
/* JCS monitor: records the interactions of the tasks of watched cgroups (VEs).
 * Every program starts with the cgroup filter, so tasks outside VEs cost one hash lookup. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "monitor.h"

char LICENSE[] SEC("license") = "GPL";

/* Force a wake-up of the consumer only once this much is queued (docs/benchmarks.md: per-record
 * wake-ups cost ≈ 2.5 µs each); the consumer also polls with a short timeout. */
const volatile __u64 wakeup_bytes = 1024 * 1024;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64); /* cgroup id */
	__type(value, struct jcs_ve);
} watched SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct jcs_count_key);
	__type(value, __u64);
} counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, JCS_MAX_SYSCALL);
	__type(key, __u32);
	__type(value, __u32); /* enum jcs_capture flags; 0 = not recorded */
} interest SEC(".maps");

struct inflight {
	__u64 args[6];
	__u64 dev;
	__u64 ino;
	__s64 pos;
	__u64 dev2;
	__u64 ino2;
	__s64 pos2;
	__u64 size;
	__u64 enter_ns;
	__u32 gen;
	__u32 gen2;
	__u32 nr;
	__u32 flags;   /* enum jcs_capture */
	__u32 evflags; /* enum jcs_flag */
	__u32 peer_len;
	__u8 peer[112]; /* a socket's remote end: struct sockaddr_in, sockaddr_in6 or sockaddr_un */
	__u8 local[28]; /* an IP socket's local end at entry (a closing connection loses its port) */
	__u32 local_len;
	__u32 local_flags;
	__u32 sockinfo; /* SI_STREAM: connection-oriented (a named address is ignored once
	                 * connected); SI_HOSTNET: in the host's network namespace */
	__u32 active;  /* 1 from a recorded call's entry to its exit */
	__u32 budget;  /* the VE has a byte budget (its sends' exits look its counters up) */
	__u64 count_slot; /* the VE's `count_slot` */
	__u64 cgroup;  /* the task's cgroup at the call's entry (its record's; looked up once) */
};

/* The call a task is in, from sys_enter to sys_exit: task-local storage, so that a task that
 * is not recorded costs sys_exit one pointer check, not a hash lookup. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct inflight);
} inflight SEC(".maps");

#define RING_BYTES (16 * 1024 * 1024)

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, RING_BYTES);
} events SEC(".maps");

/* A VE's share while the ring is under pressure: an eighth of a quarter of the ring, in bytes
 * (records are variable-length: a share counted in whole structs let eight VEs of head-only
 * records use less than half of what the ring takes, and lose the rest: bench/monitor.sh),
 * per quarter drained. Eight VEs over their share at once still leave the ring room. */
#define FAIR_SHARE ((RING_BYTES / 4) / 8)

/* Settings from user space: [0] the host's devpts device (kernel dev_t; ~0 = unknown); [1] the
 * inode number of the host's network namespace (0 = unknown): its loopback is the host's. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} settings SEC(".maps");

/* Pipes made by tasks of watched cgroups: the pipe's inode → the cgroup. A pipe stays inside a
 * VE only when the VE made it and it never left (LRU: a pipe forgotten is treated as made
 * outside, so it is recorded, never wrongly dropped). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u64);
} pipes SEC(".maps");

/* Pipes and sockets whose descriptor a VE passed out (SCM_RIGHTS over a socket that crosses
 * its boundary): their data crosses from then on, whoever made them. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u8);
} escaped SEC(".maps");

/* The network policy of the VEs that have one (`struct jcs_policy_key`). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct jcs_policy_key);
	__type(value, struct jcs_rules);
} policy SEC(".maps");

/* Denials per VE and rule: exact, whatever the ring buffer loses. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct jcs_deny_key);
	__type(value, __u64);
} denials SEC(".maps");

/* System calls per VE row (`count_slot`) and number, entered and dropped: read and cleared by
 * the recorder through a mapping when the VE ends. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, JCS_COUNT_SLOTS * JCS_MAX_SYSCALL * 2);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u64);
} call_counts SEC(".maps");

/* The VEs the kernel denied something (a network rule, the byte budget): slot = VE id modulo
 * JCS_TAINT_SLOTS, value = that VE's id. A VE with `abort_on_close` has its supervisor read
 * its slot through a read-only mapping of this map at each close. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, JCS_TAINT_SLOTS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u64);
} tainted SEC(".maps");

/* The source of the last UDP datagram that reached each VE socket (by socket cookie), from
 * the VE's cgroup_skb/ingress program: the source of a recv that had to wait for its
 * datagram (nothing was queued at its entry). */
struct dgram_src {
	__u8 addr[28];
	__u32 len;
};
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct dgram_src);
} dgram_src SEC(".maps");

/* A call a sock_addr program denied, until its sys_exit names the rule in its record: the
 * thread (pid_tgid) → the rule and when (a denial older than the call's entry is stale). */
struct denied_call {
	__u32 rule;
	__u32 pad;
	__u64 when;
};
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct denied_call);
} denied_calls SEC(".maps");

/* Denials of calls the VE's pre-image supervisor made for the app (a bind): by the socket's
 * cookie, where the app's own record of the call finds them (the denying program sees the
 * supervisor's thread, not the app's). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct denied_call);
} denied_socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, JCS_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

static __always_inline void count(__u32 which)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &which);
	if (v)
		*v += 1;
}

static __always_inline struct jcs_ve *watched_task(void)
{
	__u64 cg = bpf_get_current_cgroup_id();
	return bpf_map_lookup_elem(&watched, &cg);
}

/* The same, and the cgroup id in `*cg` (a recorded call's record carries it). */
static __always_inline struct jcs_ve *watched_cgroup(__u64 *cg)
{
	*cg = bpf_get_current_cgroup_id();
	return bpf_map_lookup_elem(&watched, cg);
}

/* Counts system call `nr` of the current task's cgroup. */
/* Adds one to the u64 counter at `key` of hash map `map` (made at 1 when missing; another
 * CPU making it meanwhile is counted on). */
static __always_inline void bump(void *map, const void *key)
{
	__u64 *v = bpf_map_lookup_elem(map, key);
	if (v) {
		__sync_fetch_and_add(v, 1);
	} else {
		__u64 one = 1;
		if (bpf_map_update_elem(map, key, &one, BPF_NOEXIST) != 0) {
			v = bpf_map_lookup_elem(map, key);
			if (v)
				__sync_fetch_and_add(v, 1);
		}
	}
}

/* Counts system call `nr` (entered, or dropped by classification) of the current task's VE:
 * an atomic add in the VE's row of the `call_counts` array (no hash update on the hot path),
 * or in the `counts` hash map when the VE has no row. */
static __always_inline void count_call(__u64 slot, __u32 nr, __u32 dropped)
{
	if (slot && slot <= JCS_COUNT_SLOTS && nr < JCS_MAX_SYSCALL) {
		__u32 i = (((__u32)slot - 1) * JCS_MAX_SYSCALL + nr) * 2 + (dropped ? 1 : 0);
		__u64 *v = bpf_map_lookup_elem(&call_counts, &i);
		if (v)
			__sync_fetch_and_add(v, 1);
		return;
	}
	struct jcs_count_key k = { .cgroup_id = bpf_get_current_cgroup_id(), .nr = nr, .dropped = dropped };
	bump(&counts, &k);
}

/* Submits a record of `size` bytes. The consumer is woken once, by the record that makes the
 * queued bytes cross `wakeup_bytes` (what is queued includes this record and its 8-byte
 * header), not by every record while they stay above it: each forced wake-up queues an
 * irq_work (an interrupt on this CPU), and a consumer woken again while it drains runs once
 * more for a handful of records. Two producers racing over the threshold may both miss
 * it; the consumer's 10 ms poll takes what they queued. */
static __always_inline void submit(void *e, __u64 size)
{
	__u64 avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	int cross = avail >= wakeup_bytes && avail < wakeup_bytes + size + 8;
	bpf_ringbuf_submit(e, cross ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
	count(JCS_STAT_EMITTED);
}

/* Whether the current task's VE may add a record of `size` bytes: always while the ring is at
 * most half full; under pressure, only within its share of the current epoch. Counts a refusal
 * as the VE's loss. */
static __always_inline int within_share(__u64 size)
{
	if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) <= RING_BYTES / 2)
		return 1;
	struct jcs_ve *w = watched_task();
	if (!w)
		return 1;
	__u64 epoch = bpf_ringbuf_query(&events, BPF_RB_CONS_POS) / (RING_BYTES / 4);
	if (w->epoch != epoch) {
		w->epoch = epoch;
		w->used = 0;
	}
	if (w->used >= FAIR_SHARE) {
		count(JCS_STAT_LOST);
		__sync_fetch_and_add(&w->lost, 1);
		return 0;
	}
	__sync_fetch_and_add(&w->used, size + 8); /* (the ring's header per record) */
	return 1;
}

/* Reserves a record of `size` bytes (a constant: the whole struct, or JCS_HEAD_SIZE for one
 * without path data; the verifier holds every access to it) and fills in its head; `cg` is
 * the task's cgroup when the caller knows it (0: looked up here). */
static __always_inline struct jcs_event *reserve_cg(__u32 kind, __u64 size, __u64 cg)
{
	if (!within_share(size))
		return NULL;
	struct jcs_event *e = bpf_ringbuf_reserve(&events, size, 0);
	if (!e) {
		count(JCS_STAT_LOST);
		struct jcs_ve *w = watched_task();
		if (w)
			__sync_fetch_and_add(&w->lost, 1);
		return NULL;
	}
	__u64 id = bpf_get_current_pid_tgid();
	e->time_ns = bpf_ktime_get_ns();
	e->cgroup_id = cg ? cg : bpf_get_current_cgroup_id();
	e->pid = id >> 32;
	e->tid = (__u32)id;
	e->kind = kind;
	e->nr = 0;
	e->ret = 0;
	e->dev = 0;
	e->ino = 0;
	e->pos = -1;
	e->dev2 = 0;
	e->ino2 = 0;
	e->pos2 = -1;
	e->gen = 0;
	e->gen2 = 0;
	e->size = 0;
	e->enter_ns = e->time_ns;
	e->rule = 0;
	e->path_len = 0;
	e->path2_len = 0;
	e->flags = 0;
	for (int i = 0; i < 6; i++)
		e->args[i] = 0;
	return e;
}

#define reserve_n(kind, size) reserve_cg(kind, size, 0)
#define reserve(kind) reserve_cg(kind, sizeof(struct jcs_event), 0)
/* A system call's record: the cgroup its entry looked up. */
#define reserve_call(f) reserve_cg(JCS_EV_SYSCALL, sizeof(struct jcs_event), (f)->cgroup)

#define OVERLAYFS_SUPER_MAGIC 0x794c7630
#define PIPEFS_MAGIC 0x50495045
#define DEVPTS_SUPER_MAGIC 0x1cd1
#define ANON_INODE_FS_MAGIC 0x09041934
#define PROC_SUPER_MAGIC 0x9fa0
#define SYSFS_MAGIC 0x62656572
#define CGROUP_SUPER_MAGIC 0x27e0eb
#define CGROUP2_SUPER_MAGIC 0x63677270
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define S_IFCHR 0020000
#define FMODE_WRITE 0x2
#define EAGAIN 11
#define EPERM 1
#define EACCES 13
#define AF_UNIX 1
#define AF_INET 2
#define O_APPEND 02000
#define S_IFIFO 0010000
#define SOCK_STREAM 1
#define SOCK_SEQPACKET 5
#define SI_STREAM 1
#define SI_HOSTNET 2
#define SI_UNIX 4 /* a Unix socket */
#define AF_INET6 10

/* Reading the kernel's structures: the hot paths (every recorded call's descriptor, its file's
 * class and identity, a socket's ends) read fields with plain loads through pointers the
 * verifier knows the BTF type of (`t->files->fdt`: one instruction each, made fault-safe by
 * the kernel), not with BPF_CORE_READ, whose every field is a probe-read helper call (≈ 20 ns
 * each here; a recorded write's sys_enter made 35 of them: docs/benchmarks.md). A pointer read
 * as a number (from an array, a map, a probe read) gets its type back with bpf_core_cast.
 * Every function below that reads fields directly takes such pointers only. */

/* The struct file behind descriptor `fd` of task `t` (a BTF pointer), or NULL. */
static __always_inline struct file *fd_file(struct task_struct *t, unsigned int fd)
{
	struct fdtable *fdt = t->files->fdt;
	if (fd >= fdt->max_fds)
		return NULL;
	struct file **fds = fdt->fd;
	struct file *file = NULL;
	bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]);
	return file ? bpf_core_cast(file, struct file) : NULL;
}

/* What classification needs to know of a file, read once per call (each kernel read costs):
 *   JCS_FC_INSIDE    its data stays inside the VE both ways: a pipe; a pseudo-terminal of a
 *                    devpts instance other than the host's (the VE's own: it mounts a new one;
 *                    the host's terminal, inherited by `jcs run`, stays recorded); an anonymous
 *                    inode (eventfd, timerfd, signalfd, epoll, inotify: counters and notices
 *                    between the VE's own threads); a data-less character device (null, zero,
 *                    full, random, urandom); a process's own procfs entries (/proc/PID/...,
 *                    read or written: a process of the VE's pid namespace);
 *   JCS_FC_PRISTINE  reading it moves nothing across the boundary: a file that exists only in
 *                    a read-only branch of an overlay (the VE's template or app layers: an
 *                    overlay inode without an upper dentry, pristine by construction), or a
 *                    view of the kernel's state (procfs, sysfs, cgroupfs) opened for reading
 *                    only (the VE's pid namespace shows only its own processes; a descriptor
 *                    opened for writing changes kernel state and stays recorded, except a
 *                    process's own procfs entries, inside);
 *   JCS_FC_SOCKET    a socket;
 *   JCS_FC_TTY       a pseudo-terminal of the VE's devpts whose master JCS holds on the host
 *                    side (`jcs run -t`, `jcs exec -t`; the VE's `tty_mask`): the user's
 *                    terminal, so its data crosses and is recorded;
 *   JCS_FC_OWN       one of the VE's dirties: an overlay file with an upper file, on the
 *                    overlay that is the calling task's root (the VE's own, never reused),
 *                    whose descriptor was never passed out of the VE (`escaped`). What it holds
 *                    came from a pristine branch or from this VE's memory: reading it back
 *                    moves nothing across; writing it is an integrity event (DESIGN: dirties as
 *                    integrity records). */
#define JCS_FC_INSIDE 1
#define JCS_FC_PRISTINE 2
#define JCS_FC_SOCKET 4
#define JCS_FC_TTY 8
#define JCS_FC_OWN 16

/* The upper dentry of an overlay inode (NULL: the file exists only in a read-only layer). */
static __always_inline struct dentry *ovl_upper(struct inode *inode)
{
	void *oi = (void *)inode - bpf_core_field_offset(struct ovl_inode, vfs_inode);
	return bpf_core_cast(oi, struct ovl_inode)->__upperdentry;
}

static __always_inline __u32 inode_class(struct file *file, struct inode *inode)
{
	if (!file || !inode)
		return 0;
	struct super_block *sb = inode->i_sb;
	unsigned long magic = sb->s_magic;
	__u32 mode = inode->i_mode & S_IFMT;
	__u32 c = 0;
	if (mode == S_IFSOCK) {
		/* A route netlink socket: the kernel answering about its network state (the VE's
		 * own namespace; changing it needs CAP_NET_ADMIN, which a VE lacks), like a read of
		 * /proc/net: every name lookup asks it for the addresses (getaddrinfo). */
		struct socket *sock = bpf_core_cast(file->private_data, struct socket);
		struct sock *sk = sock->sk;
		if (sk && sk->__sk_common.skc_family == 16 /* AF_NETLINK */ &&
		    sk->sk_protocol == 0 /* NETLINK_ROUTE */)
			return JCS_FC_INSIDE;
		return JCS_FC_SOCKET;
	}
	if (mode == S_IFCHR) {
		__u32 rdev = inode->i_rdev;
		__u32 major = rdev >> 20, minor = rdev & 0xfffff;
		if (major == 1 &&
		    (minor == 3 || minor == 5 || minor == 7 || minor == 8 || minor == 9))
			c |= JCS_FC_INSIDE;
	}
	if (magic == PIPEFS_MAGIC) {
		/* Inside only when this VE made it and it never left. */
		__u64 key = (__u64)inode;
		__u64 *owner = bpf_map_lookup_elem(&pipes, &key);
		if (owner && *owner == bpf_get_current_cgroup_id() &&
		    !bpf_map_lookup_elem(&escaped, &key))
			c |= JCS_FC_INSIDE;
	} else if (magic == ANON_INODE_FS_MAGIC) {
		c |= JCS_FC_INSIDE;
	} else if (magic == DEVPTS_SUPER_MAGIC) {
		__u32 k = 0;
		__u64 *host = bpf_map_lookup_elem(&settings, &k);
		if (host && *host != ~0ULL && sb->s_dev != *host) {
			/* devpts numbers pts N's inode N + 3. */
			struct jcs_ve *w = watched_task();
			__u64 idx = inode->i_ino - 3;
			if (w && idx < 64 && (w->tty_mask & (1ULL << idx)))
				c |= JCS_FC_TTY;
			else
				c |= JCS_FC_INSIDE;
		}
	} else if (magic == OVERLAYFS_SUPER_MAGIC) {
		if (ovl_upper(inode) == NULL) {
			c |= JCS_FC_PRISTINE;
		} else {
			struct task_struct *t = bpf_get_current_task_btf();
			__u64 key = (__u64)inode;
			if (t->fs->root.dentry->d_sb == sb &&
			    !bpf_map_lookup_elem(&escaped, &key))
				c |= JCS_FC_OWN;
		}
	} else if (magic == PROC_SUPER_MAGIC) {
		/* A process's own entry (/proc/PID/...: oom_score_adj, comm, attr): the VE's pid
		 * namespace shows only its processes, so writing one changes a process of this VE
		 * (its memory variable), like reading it. */
		void *pi = (void *)inode - bpf_core_field_offset(struct proc_inode, vfs_inode);
		if (bpf_core_cast(pi, struct proc_inode)->pid)
			c |= JCS_FC_INSIDE;
		else if (!(file->f_mode & FMODE_WRITE))
			c |= JCS_FC_PRISTINE;
	} else if (magic == SYSFS_MAGIC || magic == CGROUP_SUPER_MAGIC ||
		   magic == CGROUP2_SUPER_MAGIC) {
		if (!(file->f_mode & FMODE_WRITE))
			c |= JCS_FC_PRISTINE;
	}
	return c;
}

static __always_inline __u32 file_class(struct file *file)
{
	return file ? inode_class(file, file->f_inode) : 0;
}

/* f_mode's bit for a file embedded in a backing_file: 1 << 25 from Linux 6.5, 1 << 24 since
 * 6.14 (where 1 << 25 became a fanotify bit). Either is only a hint; see mapped_inode. */
#define JCS_FMODE_BACKING_ANY ((1U << 24) | (1U << 25))

/* The inode a mapping's file stands for. overlayfs maps its real file (the upper one, or a
 * lower one) into the memory and puts it in the vma as a "backing file", whose user path is
 * the overlay's file the VE opened: the inode every other call of the VE names (its identity,
 * its class — one of the VE's dirties, say). A file is taken for a backing file only when its
 * user path is an overlay inode whose upper file, if it has one, is the file's own inode.
 * Any other file stands for itself. */
static __always_inline struct inode *mapped_inode(struct file *file)
{
	if (file->f_mode & JCS_FMODE_BACKING_ANY) {
		struct backing_file *bf = bpf_core_cast(file, struct backing_file);
		struct dentry *d = bf->user_path.dentry;
		struct inode *user = d ? d->d_inode : NULL;
		if (user && user->i_sb->s_magic == OVERLAYFS_SUPER_MAGIC) {
			struct dentry *upper = ovl_upper(user);
			if (!upper || upper->d_inode == file->f_inode)
				return user;
		}
	}
	return file->f_inode;
}

/* The identity of an inode: device, inode number and generation. An overlay inode keeps its
 * own device and number (what the VE's stat shows, the same before and after copy-up); its
 * generation is its upper file's (0 while it has none: a file of a read-only layer, which
 * never changes), so that a number the upper file system reuses is a new file. */
static __always_inline void inode_identity(struct inode *inode, __u64 *dev, __u64 *ino, __u32 *gen)
{
	if (!inode)
		return;
	*ino = inode->i_ino;
	struct super_block *sb = inode->i_sb;
	*dev = sb->s_dev;
	if (sb->s_magic == OVERLAYFS_SUPER_MAGIC) {
		struct dentry *upper = ovl_upper(inode);
		*gen = upper ? upper->d_inode->i_generation : 0;
	} else {
		*gen = inode->i_generation;
	}
}

/* The identity (device, inode, generation) and position of a file. */
static __always_inline void file_identity(struct file *file, __u64 *dev, __u64 *ino, __u32 *gen,
					  __s64 *pos)
{
	if (!file)
		return;
	inode_identity(file->f_inode, dev, ino, gen);
	*pos = file->f_pos;
}

static __always_inline int v4_loopback(__be32 a)
{
	return (bpf_ntohl(a) >> 24) == 127;
}

/* ::1, or an IPv4-mapped 127/8 address. */
static __always_inline int v6_loopback(const __u8 *a)
{
	__u64 hi, lo;
	__builtin_memcpy(&hi, a, 8);
	__builtin_memcpy(&lo, a + 8, 8);
	if (hi != 0)
		return 0;
	if (lo == bpf_cpu_to_be64(1))
		return 1;
	return a[8] == 0 && a[9] == 0 && a[10] == 0xff && a[11] == 0xff && a[12] == 127;
}

/* Whether a struct sockaddr (from user memory, already copied) names a loopback address:
 * traffic that stays inside the VE's own network namespace. As a destination (`dest`: connect,
 * sendto) the unspecified address counts too: Linux takes 0.0.0.0 or :: there to mean this
 * host (getaddrinfo's sorting connects a datagram socket to the wildcard address a server will
 * listen on); as a local end (bind) it means every interface, and does not. */
static __always_inline int addr_loopback(const char *p, int dest)
{
	__u16 family;
	__builtin_memcpy(&family, p, 2);
	if (family == AF_INET) {
		__u32 a;
		__builtin_memcpy(&a, p + 4, 4);
		return (dest && a == 0) || (__u8)p[4] == 127;
	}
	if (family == AF_INET6) {
		__u64 hi, lo;
		__builtin_memcpy(&hi, p + 8, 8);
		__builtin_memcpy(&lo, p + 16, 8);
		return (dest && (hi | lo) == 0) || v6_loopback((const __u8 *)p + 8);
	}
	return 0;
}

/* The cgroup of the process a Unix socket's peer credentials name (the listener for a client,
 * the client for an accepted socket, the creator for a socketpair), 0 when it has exited. */
static __always_inline __u64 peer_pid_cgroup(struct sock *sk)
{
	struct pid *pp = sk->sk_peer_pid;
	if (!pp)
		return 0;
	struct hlist_node *first = pp->tasks[0].first; /* PIDTYPE_PID */
	if (!first)
		return 0;
	void *t = (void *)first - bpf_core_field_offset(struct task_struct, pid_links[0]);
	return bpf_core_cast(t, struct task_struct)->cgroups->dfl_cgrp->kn->id;
}

/* The inode of a socket (`struct socket_alloc`): the key of `escaped`. */
static __always_inline __u64 sock_inode(struct socket *sock)
{
	return sock ? (__u64)sock + bpf_core_field_offset(struct socket_alloc, vfs_inode) : 0;
}

/* Copies a Unix socket's bound name (struct sockaddr_un) into `buf` (112 bytes); its length. */
static __always_inline int unix_name(struct sock *sk, __u8 *buf)
{
	struct unix_address *a = bpf_core_cast(sk, struct unix_sock)->addr;
	if (!a)
		return 0;
	int len = a->len;
	if (len <= 2)
		return 0;
	if (len > 110)
		len = 110;
	if (bpf_probe_read_kernel(buf, 110, (void *)a + bpf_core_field_offset(struct unix_address, name)))
		return 0;
	return len;
}

/* The file a Unix socket is bound to (a path name, not an abstract one): its identity in the
 * record's second file (JCS_F_UNIXFILE), the same for every socket of one rendezvous whatever
 * name (relative, through another mount point) each end used. Returns whether it had one. */
static __always_inline int unix_file(struct sock *sk, struct jcs_event *e)
{
	if (!sk)
		return 0;
	struct dentry *d = bpf_core_cast(sk, struct unix_sock)->path.dentry;
	if (!d)
		return 0;
	struct inode *i = d->d_inode;
	if (!i)
		return 0;
	inode_identity(i, &e->dev2, &e->ino2, &e->gen2);
	e->flags |= JCS_F_UNIXFILE;
	return 1;
}

/* The rendezvous file of a Unix socket call, after it: a bind's own file; the peer's for a call
 * that named its destination (a connect; a sendto on a connected socket); else the file of the
 * socket whose name the record holds (sock_peer: its own, else its peer's). */
static __always_inline void add_unix_file(struct jcs_event *e, struct file *file, int bind,
					  int named)
{
	if (!file || !(file_class(file) & JCS_FC_SOCKET))
		return;
	struct socket *sock = bpf_core_cast(file->private_data, struct socket);
	struct sock *sk = sock->sk;
	if (!sk || sk->__sk_common.skc_family != AF_UNIX)
		return;
	struct unix_sock *u = bpf_core_cast(sk, struct unix_sock);
	if (bind)
		unix_file(sk, e);
	else if (named || !u->addr)
		unix_file(u->peer, e);
	else
		unix_file(sk, e);
}

/* Whether the task's network namespace is the host's (its loopback reaches the host). */
static __always_inline int host_net(struct sock *sk)
{
	__u32 k = 1;
	__u64 *host = bpf_map_lookup_elem(&settings, &k);
	return host && *host && sk->__sk_common.skc_net.net->ns.inum == *host;
}

/* The remote end of the socket behind `file`, from the kernel's sock, as a struct sockaddr in
 * `buf` (112 bytes). Returns its length; 0 when there is none to name (not connected); -1
 * when the socket's traffic stays inside the VE: loopback-only in the VE's own network
 * namespace, or a Unix socket whose other end is a process of this VE (and that no VE passed
 * out). A Unix socket that crosses is named by its rendezvous: the name it or its peer was
 * bound to (a listener's path), the same at both ends. `*info` gets SI_STREAM and SI_HOSTNET. */
static __always_inline int sock_peer(struct file *file, __u8 *buf, __u32 *info)
{
	struct socket *sock = bpf_core_cast(file->private_data, struct socket);
	struct sock *sk = sock->sk;
	if (!sk)
		return 0;
	__u16 type = sk->sk_type;
	*info = (type == SOCK_STREAM || type == SOCK_SEQPACKET ? SI_STREAM : 0) |
		(host_net(sk) ? SI_HOSTNET : 0);
	__u16 family = sk->__sk_common.skc_family;
	if (family == AF_UNIX) {
		*info |= SI_UNIX;
		struct sock *peer = bpf_core_cast(sk, struct unix_sock)->peer;
		__u64 me = sock_inode(sock);
		__u64 other = peer ? sock_inode(peer->sk_socket) : 0;
		int left = bpf_map_lookup_elem(&escaped, &me) ||
			   (other && bpf_map_lookup_elem(&escaped, &other));
		__u64 cg = bpf_get_current_cgroup_id();
		__u64 pcg = peer_pid_cgroup(sk);
		if (!left && peer &&
		    (pcg ? pcg == cg : peer->sk_cgrp_data.cgroup->kn->id == cg))
			return -1;
		int n = unix_name(sk, buf);
		if (!n && peer)
			n = unix_name(peer, buf);
		return n;
	}
	int lo_inside = !(*info & SI_HOSTNET);
	__be16 port = sk->__sk_common.skc_dport;
	if (family == AF_INET) {
		__be32 d = sk->__sk_common.skc_daddr;
		__be32 l = sk->__sk_common.skc_rcv_saddr;
		if (lo_inside && (d ? v4_loopback(d) : (l && v4_loopback(l))))
			return -1;
		if (!d)
			return 0;
		__builtin_memcpy(buf, &family, 2);
		__builtin_memcpy(buf + 2, &port, 2);
		__builtin_memcpy(buf + 4, &d, 4);
		return 16;
	}
	if (family == AF_INET6) {
		struct in6_addr d = sk->__sk_common.skc_v6_daddr;
		struct in6_addr l = sk->__sk_common.skc_v6_rcv_saddr;
		__u64 dz[2], lz[2];
		__builtin_memcpy(dz, &d, 16);
		__builtin_memcpy(lz, &l, 16);
		int connected = dz[0] | dz[1];
		if (lo_inside &&
		    (connected ? v6_loopback((__u8 *)&d) : ((lz[0] | lz[1]) && v6_loopback((__u8 *)&l))))
			return -1;
		if (!connected)
			return 0;
		__builtin_memset(buf, 0, 28);
		__builtin_memcpy(buf, &family, 2);
		__builtin_memcpy(buf + 2, &port, 2);
		__builtin_memcpy(buf + 8, &d, 16);
		return 28;
	}
	return 0;
}

/* The local end of an IP socket as a struct sockaddr in `buf` (28 bytes): its length, 0 when
 * it is not an IP socket. Sets JCS_F_UDP in `*flags` for a datagram socket. */
static __always_inline int sock_local(struct file *file, __u8 *buf, __u32 *flags)
{
	if (!file)
		return 0;
	struct socket *sock = bpf_core_cast(file->private_data, struct socket);
	struct sock *sk = sock->sk;
	if (!sk)
		return 0;
	__u16 family = sk->__sk_common.skc_family;
	if (family != AF_INET && family != AF_INET6)
		return 0;
	if (sk->sk_type != SOCK_STREAM)
		*flags |= JCS_F_UDP;
	__be16 port = bpf_htons(sk->__sk_common.skc_num);
	__builtin_memset(buf, 0, 28);
	__builtin_memcpy(buf, &family, 2);
	__builtin_memcpy(buf + 2, &port, 2);
	if (family == AF_INET) {
		__be32 l = sk->__sk_common.skc_rcv_saddr;
		__builtin_memcpy(buf + 4, &l, 4);
		return 16;
	}
	struct in6_addr l = sk->__sk_common.skc_v6_rcv_saddr;
	__builtin_memcpy(buf + 8, &l, 16);
	return 28;
}

/* Adds a socket's local end to the record (JCS_F_LOCAL): as it was at the call's entry when it
 * had a port then (the common case: no second descriptor lookup; a connection that closes
 * during the call loses its port), else as it is now (connect and a first sendto bind it during
 * the call; `file`, when given: an accepted socket). None without a port. */
static __always_inline void add_local(struct jcs_event *e, struct inflight *f, struct file *file)
{
	__u8 *buf = (__u8 *)e->path + JCS_PATH_HALF;
	__u16 port = 0;
	if (f && f->local_len) {
		__builtin_memcpy(&port, f->local + 2, 2);
		if (port) {
			__builtin_memcpy(buf, f->local, 28);
			e->path2_len = f->local_len;
			e->flags |= JCS_F_LOCAL | f->local_flags;
			return;
		}
	}
	if (!file && f)
		file = fd_file(bpf_get_current_task_btf(), (int)f->args[0]);
	__u32 fl = 0;
	int n = sock_local(file, buf, &fl);
	if (n > 0)
		__builtin_memcpy(&port, buf + 2, 2);
	if (n > 0 && port) {
		e->path2_len = n;
		e->flags |= JCS_F_LOCAL | fl;
	}
}

/* A call classification drops: counted, never emitted. */
static __always_inline int drop_call(struct inflight *f)
{
	count(JCS_STAT_DROPPED);
	count_call(f->count_slot, f->nr, 1);
	return 0;
}

/* A reserved record that classification drops after all (a loopback address the call named). */
static __always_inline void discard(struct jcs_event *e, struct inflight *f)
{
	bpf_ringbuf_discard(e, 0);
	drop_call(f);
}

/* Copies a sockaddr of `len` bytes from user memory into the record. A constant-size read
 * keeps the verifier simple: 128 bytes (sockaddr_storage), or 16 (sockaddr_in) when the
 * larger read would cross into unmapped memory. Returns whether an address was read. */
/* A receive on an unconnected UDP socket (recv and read name no source): the datagram it will
 * take is the head of the socket's queue (udp's reader_queue, then its receive queue), when
 * one is queued at the call's entry (after poll or epoll, or on a busy socket); its source
 * becomes the call's remote end. A call that has to wait for its datagram finds none here. */
/* A datagram's source as a struct sockaddr_in (`alen` 4) or sockaddr_in6 (16) in `buf`;
 * returns its length. */
static __always_inline __u32 put_source(__u8 *buf, __be16 port, const void *addr, int alen)
{
	__u16 fam = alen == 4 ? AF_INET : AF_INET6;
	__builtin_memset(buf, 0, 28);
	__builtin_memcpy(buf, &fam, 2);
	__builtin_memcpy(buf + 2, &port, 2);
	if (alen == 4) {
		__builtin_memcpy(buf + 4, addr, 4);
		return 16;
	}
	__builtin_memcpy(buf + 8, addr, 16);
	return 28;
}

static __always_inline void peek_datagram(struct file *file, struct inflight *f)
{
	struct socket *sock = BPF_CORE_READ(file, private_data);
	struct sock *sk = BPF_CORE_READ(sock, sk);
	if (!sk || BPF_CORE_READ(sk, sk_protocol) != 17)
		return;
	struct udp_sock *up = (struct udp_sock *)sk;
	struct sk_buff *skb = BPF_CORE_READ(up, reader_queue.next);
	if ((void *)skb == (void *)&up->reader_queue) {
		skb = BPF_CORE_READ(sk, sk_receive_queue.next);
		if ((void *)skb == (void *)&sk->sk_receive_queue)
			return;
	}
	if (!skb)
		return;
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 nh = BPF_CORE_READ(skb, network_header);
	__u16 th = BPF_CORE_READ(skb, transport_header);
	if (!head || nh == (__u16)~0U || th == (__u16)~0U)
		return;
	__u8 v = 0;
	bpf_probe_read_kernel(&v, 1, head + nh);
	__be16 sport = 0;
	if ((v >> 4) == 4) {
		__be32 saddr = 0;
		if (bpf_probe_read_kernel(&saddr, 4, head + nh + 12))
			return;
		bpf_probe_read_kernel(&sport, 2, head + th);
		f->peer_len = put_source(f->peer, sport, &saddr, 4);
	} else if ((v >> 4) == 6) {
		__u8 saddr[16];
		if (bpf_probe_read_kernel(saddr, 16, head + nh + 8))
			return;
		bpf_probe_read_kernel(&sport, 2, head + th);
		f->peer_len = put_source(f->peer, sport, saddr, 16);
	}
}

static __always_inline int read_addr(struct jcs_event *e, __u64 uaddr, __u64 len)
{
	if (!len || !uaddr)
		return 0;
	if (bpf_probe_read_user(e->path, 128, (void *)uaddr) == 0)
		e->path_len = len > 128 ? 128 : len;
	else if (bpf_probe_read_user(e->path, 16, (void *)uaddr) == 0)
		e->path_len = len > 16 ? 16 : len;
	else
		return 0;
	return 1;
}

/* Classifies a transfer between two descriptors (sendfile, copy_file_range, splice, tee) at entry:
 * either side that stays inside the VE gets no transaction; if neither crosses, the call is
 * dropped. Returns 0 when dropped. */
static __always_inline int enter_transfer(struct inflight *f)
{
	struct task_struct *t = bpf_get_current_task_btf();
	int sendfile = f->flags & JCS_CAP_XFER1;
	int tee = f->flags & JCS_CAP_XFER3;
	struct file *a = fd_file(t, (int)f->args[0]);
	struct file *b = fd_file(t, (sendfile || tee) ? (int)f->args[1] : (int)f->args[2]);
	__u32 ca = file_class(a), cb = file_class(b);
	__u32 cin = sendfile ? cb : ca;
	__u32 cout = sendfile ? ca : cb;
	if (cin & (JCS_FC_INSIDE | JCS_FC_PRISTINE | JCS_FC_OWN))
		f->evflags |= JCS_F_NO_IN;
	if (cout & JCS_FC_INSIDE)
		f->evflags |= JCS_F_NO_OUT;
	if (cout & JCS_FC_OWN)
		f->evflags |= JCS_F_OWN_OUT;
	if (ca & JCS_FC_SOCKET) {
		f->evflags |= JCS_F_SOCKET;
		int n = sock_peer(a, f->peer, &f->sockinfo);
		if (n < 0)
			f->evflags |= sendfile ? JCS_F_NO_OUT : JCS_F_NO_IN;
		else
			f->peer_len = n;
	}
	if (cb & JCS_FC_SOCKET) {
		f->evflags |= JCS_F_SOCKET2;
		if (!f->peer_len) {
			int n = sock_peer(b, f->peer, &f->sockinfo);
			if (n < 0)
				f->evflags |= sendfile ? JCS_F_NO_IN : JCS_F_NO_OUT;
			else
				f->peer_len = n;
		}
	}
	if ((f->evflags & (JCS_F_NO_IN | JCS_F_NO_OUT)) == (JCS_F_NO_IN | JCS_F_NO_OUT))
		return drop_call(f);
	file_identity(a, &f->dev, &f->ino, &f->gen, &f->pos);
	file_identity(b, &f->dev2, &f->ino2, &f->gen2, &f->pos2);
	/* An offset pointer replaces the file position for its side. */
	__u64 pa = (sendfile || tee) ? 0 : f->args[1];
	__u64 pb = sendfile ? f->args[2] : tee ? 0 : f->args[3];
	__s64 v;
	if (pa && bpf_probe_read_user(&v, sizeof(v), (void *)pa) == 0)
		f->pos = v;
	if (pb && bpf_probe_read_user(&v, sizeof(v), (void *)pb) == 0)
		f->pos2 = v;
	return 1;
}

struct vma_ctx {
	__u64 addr;
	struct file *file;
	__s64 off;
	__u64 flags;
};

#define VM_SHARED 0x8
/* openat2 has one number on every architecture. */
#define JCS_NR_OPENAT2 437
#define PROT_WRITE 0x2
#define VM_WRITE 0x2

static long vma_cb(struct task_struct *t, struct vm_area_struct *vma, void *data)
{
	struct vma_ctx *c = data;
	if (!(BPF_CORE_READ(vma, vm_flags) & VM_SHARED))
		return 0;
	c->file = BPF_CORE_READ(vma, vm_file);
	c->flags = BPF_CORE_READ(vma, vm_flags);
	c->off = (BPF_CORE_READ(vma, vm_pgoff) << 12) + (c->addr - BPF_CORE_READ(vma, vm_start));
	return 0;
}

/* mprotect making memory writable: the shared file mapping it belongs to, if any. Returns 0
 * when the call is skipped (not writable, private or anonymous memory, or what stays inside). */
static __always_inline int enter_mprotect(struct inflight *f, struct task_struct *task)
{
	int unmap = f->flags & JCS_CAP_UNMAP;
	if (!unmap && !(f->args[2] & PROT_WRITE))
		return 0;
	struct vma_ctx c = { .addr = f->args[0] };
	if (bpf_find_vma(task, f->args[0], vma_cb, &c, 0) || !c.file)
		return 0;
	/* munmap: only the end of a writable shared mapping links memory and file. */
	if (unmap && !(c.flags & VM_WRITE))
		return 0;
	struct file *file = bpf_core_cast(c.file, struct file);
	struct inode *inode = mapped_inode(file);
	if (inode_class(file, inode) & JCS_FC_INSIDE)
		return 0;
	inode_identity(inode, &f->dev, &f->ino, &f->gen);
	f->pos = c.off;
	return 1;
}

/* A recorded call's in-flight state, from its number, capture flags and registers. */
static __always_inline void begin(struct inflight *f, __u32 nr, __u32 want, struct pt_regs *regs)
{
	f->enter_ns = bpf_ktime_get_ns();
	f->nr = nr;
	f->flags = want;
	f->evflags = 0;
	f->peer_len = 0;
	f->local_len = 0;
	f->sockinfo = 0;
	f->dev = f->ino = f->dev2 = f->ino2 = f->size = 0;
	f->gen = f->gen2 = 0;
	f->pos = -1;
	f->pos2 = -1;
	f->args[0] = PT_REGS_PARM1_SYSCALL(regs);
	f->args[1] = PT_REGS_PARM2_SYSCALL(regs);
	f->args[2] = PT_REGS_PARM3_SYSCALL(regs);
	f->args[3] = PT_REGS_PARM4_SYSCALL(regs);
	f->args[4] = PT_REGS_PARM5_SYSCALL(regs);
	f->args[5] = PT_REGS_PARM6_SYSCALL(regs);
}

SEC("tp_btf/sys_enter")
int BPF_PROG(jcs_sys_enter, struct pt_regs *regs, long id)
{
	__u64 cg;
	struct jcs_ve *w = watched_cgroup(&cg);
	if (!w)
		return 0;
	/* The VE's init builds the VE before the app starts, then reaps and (pre-images) performs
	 * the app's write-intent calls for it, which the app's own records show: its calls, all
	 * its threads', are JCS's, not the VE's. */
	if (w->init_tid && w->init_tid == (__u32)(bpf_get_current_pid_tgid() >> 32))
		return 0;
	count(JCS_STAT_SEEN);
	__u32 nr = id;
	count_call(w->count_slot, nr, 0);
	struct task_struct *task = bpf_get_current_task_btf();
	__u32 *want = bpf_map_lookup_elem(&interest, &nr);
	if (!want || !(*want & JCS_CAP_RECORD)) {
		/* (Nothing in flight to clear: sys_exit ignores the calls JCS never records.) */
		count(JCS_STAT_SKIPPED);
		return 0;
	}
	struct inflight *f =
		bpf_task_storage_get(&inflight, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!f)
		return 0;
	f->active = 0;
	begin(f, nr, *want, regs);
	f->count_slot = w->count_slot;
	f->cgroup = cg;
	f->budget = w->budget != 0;
	if (f->flags & (JCS_CAP_VMA | JCS_CAP_UNMAP)) {
		if (!enter_mprotect(f, task)) {
			count(JCS_STAT_SKIPPED);
			return 0;
		}
	} else if (f->flags & (JCS_CAP_XFER1 | JCS_CAP_XFER2 | JCS_CAP_XFER3)) {
		if (!enter_transfer(f))
			return 0;
	} else if (f->flags & (JCS_CAP_FD0 | JCS_CAP_FD4)) {
		/* One descriptor-table lookup serves classification and the file's identity. */
		int fd = (f->flags & JCS_CAP_FD4) ? (int)f->args[4] : (int)f->args[0];
		if (fd < 0) {
			/* An anonymous mapping: no file, nothing crosses the boundary. */
			count(JCS_STAT_SKIPPED);
			return 0;
		}
		struct file *file = fd_file(task, fd);
		__u32 c = file_class(file);
		if (c & JCS_FC_INSIDE)
			return drop_call(f);
		if (c & JCS_FC_TTY)
			f->evflags |= JCS_F_TTY;
		if (c & JCS_FC_SOCKET) {
			f->evflags |= JCS_F_SOCKET;
			int n = sock_peer(file, f->peer, &f->sockinfo);
			if (n < 0)
				return drop_call(f);
			f->peer_len = n;
			if (!n && !(f->sockinfo & SI_STREAM) && !(f->flags & JCS_CAP_OUT))
				peek_datagram(file, f);
			f->local_flags = 0;
			f->local_len = sock_local(file, f->local, &f->local_flags);
		} else if (file) {
			/* mmap reads its file unless the mapping is shared and writable. */
			int writes = (f->flags & JCS_CAP_FD4) && (f->args[3] & 0x01) && (f->args[2] & 0x2);
			if ((f->flags & JCS_CAP_READ) && !writes && (c & (JCS_FC_PRISTINE | JCS_FC_OWN)))
				return drop_call(f);
			if (c & JCS_FC_OWN)
				f->evflags |= JCS_F_OWN;
			if ((f->flags & JCS_CAP_FMODE) && (file->f_mode & FMODE_WRITE))
				f->evflags |= JCS_F_WRITE_END;
		}
		file_identity(file, &f->dev, &f->ino, &f->gen, &f->pos);
		/* A write lands at the file's end when it was opened O_APPEND (whatever offset a
		 * pwrite names) or with RWF_APPEND: its size at entry says where. */
		if (file && !(f->flags & JCS_CAP_READ)) {
			f->size = file->f_inode->i_size;
			if (file->f_flags & O_APPEND) {
				f->evflags |= JCS_F_APPEND;
				f->pos = f->size;
			}
		}
	}
	f->active = 1;
	return 0;
}

/* The fields every record of a system call carries, in its head. */
static __always_inline void fill_head(struct jcs_event *e, struct inflight *f, long ret)
{
	e->nr = f->nr;
	e->ret = ret;
	for (int i = 0; i < 6; i++)
		e->args[i] = f->args[i];
	e->dev = f->dev;
	e->ino = f->ino;
	e->pos = f->pos;
	e->dev2 = f->dev2;
	e->ino2 = f->ino2;
	e->pos2 = f->pos2;
	e->gen = f->gen;
	e->gen2 = f->gen2;
	e->size = f->size;
	e->enter_ns = f->enter_ns;
	e->flags = f->evflags;
}

/* ... and the socket's remote end the call's entry found. */
static __always_inline void fill(struct jcs_event *e, struct inflight *f, long ret)
{
	fill_head(e, f, ret);
	if (f->peer_len) {
		__builtin_memcpy(e->path, f->peer, sizeof(f->peer));
		e->path_len = f->peer_len > sizeof(f->peer) ? sizeof(f->peer) : f->peer_len;
	}
}

/* sendmmsg/recvmmsg: one record per datagram, each with its own remote end and length. */
static __always_inline void exit_mmsg(struct inflight *f, long ret)
{
	for (int i = 0; i < JCS_MMSG_MAX; i++) {
		if (i >= ret)
			return;
		__u64 hdr = f->args[1] + (__u64)i * 64; /* sizeof(struct mmsghdr) */
		__u64 name = 0;
		__u32 namelen = 0, len = 0;
		bpf_probe_read_user(&name, sizeof(name), (void *)hdr);
		bpf_probe_read_user(&namelen, sizeof(namelen), (void *)(hdr + 8));
		bpf_probe_read_user(&len, sizeof(len), (void *)(hdr + 56));
		struct jcs_event *e = reserve_call(f);
		if (!e)
			continue;
		fill(e, f, len);
		e->flags |= JCS_F_DGRAM;
		e->pos = i;
		if (read_addr(e, name, namelen) && addr_loopback(e->path, 1) &&
		    !(f->sockinfo & SI_HOSTNET)) {
			discard(e, f);
			continue;
		}
		add_local(e, f, NULL);
		submit(e, sizeof(*e));
	}
	if (ret > JCS_MMSG_MAX) {
		struct jcs_event *e = reserve_call(f);
		if (e) {
			fill(e, f, ret - JCS_MMSG_MAX);
			e->flags |= JCS_F_MORE;
			submit(e, sizeof(*e));
		}
	}
}

/* sendmsg over a socket that crosses the VE's boundary: the pipes and sockets whose descriptors
 * it passes (SCM_RIGHTS, in its first control message) leave the VE. */
static __always_inline void escape_fds(struct inflight *f)
{
	__u64 ctl = 0, ctllen = 0;
	bpf_probe_read_user(&ctl, 8, (void *)(f->args[1] + 32));
	bpf_probe_read_user(&ctllen, 8, (void *)(f->args[1] + 40));
	if (!ctl || ctllen < 20)
		return;
	struct {
		__u64 len;
		__s32 level;
		__s32 type;
	} h;
	if (bpf_probe_read_user(&h, sizeof(h), (void *)ctl))
		return;
	if (h.level != 1 || h.type != 1 || h.len < 20) /* SOL_SOCKET, SCM_RIGHTS */
		return;
	__u32 n = (h.len - 16) / 4;
	struct task_struct *t = bpf_get_current_task_btf();
	for (int i = 0; i < 16; i++) {
		if (i >= n)
			break;
		int fd;
		if (bpf_probe_read_user(&fd, 4, (void *)(ctl + 16 + 4 * i)))
			break;
		struct file *file = fd_file(t, fd);
		if (!file)
			continue;
		__u64 key = (__u64)BPF_CORE_READ(file, f_inode);
		__u8 one = 1;
		bpf_map_update_elem(&escaped, &key, &one, BPF_ANY);
	}
}

/* pipe, pipe2: the new pipe is this VE's. */
static __always_inline void remember_pipe(struct inflight *f)
{
	int fds[2] = {};
	if (bpf_probe_read_user(fds, sizeof(fds), (void *)f->args[0]))
		return;
	struct task_struct *t = bpf_get_current_task_btf();
	__u64 cg = bpf_get_current_cgroup_id();
	for (int i = 0; i < 2; i++) {
		struct file *file = fd_file(t, fds[i]);
		if (!file)
			continue;
		__u64 key = (__u64)BPF_CORE_READ(file, f_inode);
		bpf_map_update_elem(&pipes, &key, &cg, BPF_ANY);
		bpf_map_delete_elem(&escaped, &key);
	}
}

/* A call the kernel ran no sys_enter for: one the VE's pre-image supervisor answered (seccomp
 * skips the call, and sys_enter, when it answers). Its arguments are still in the registers. */
static __always_inline int late_enter(struct inflight *f, struct pt_regs *regs, __u32 nr,
				      __u32 want)
{
	if (!(want & JCS_CAP_NOTIFIED))
		return 0;
	__u64 cg;
	struct jcs_ve *w = watched_cgroup(&cg);
	if (!w || (w->init_tid && w->init_tid == (__u32)(bpf_get_current_pid_tgid() >> 32)))
		return 0;
	count(JCS_STAT_SEEN);
	count_call(w->count_slot, nr, 0);
	begin(f, nr, want, regs);
	f->count_slot = w->count_slot;
	f->cgroup = cg;
	f->budget = w->budget != 0;
	/* A descriptor call (fchmod, fchown): the identity of its file, still open; a bind's
	 * socket. */
	if (f->flags & JCS_CAP_FD0) {
		struct file *file = fd_file(bpf_get_current_task_btf(), (int)f->args[0]);
		file_identity(file, &f->dev, &f->ino, &f->gen, &f->pos);
		if ((f->flags & JCS_CAP_BIND) && file && (file_class(file) & JCS_FC_SOCKET)) {
			struct socket *sock = bpf_core_cast(file->private_data, struct socket);
			if (sock->sk && sock->sk->__sk_common.skc_family == AF_UNIX)
				f->sockinfo |= SI_UNIX;
		}
	}
	return 1;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(jcs_sys_exit, struct pt_regs *regs, long ret)
{
	/* Every process of the host runs this while a VE is watched: a call JCS never records
	 * costs it one (inlined) array lookup, no task storage. */
#if defined(__TARGET_ARCH_x86)
	__u32 nr = regs->orig_ax;
#elif defined(__TARGET_ARCH_arm64)
	__u32 nr = regs->syscallno;
#endif
	__u32 *want = bpf_map_lookup_elem(&interest, &nr);
	if (!want || !(*want & (JCS_CAP_RECORD | JCS_CAP_NOTIFIED)))
		return 0;
	struct inflight *f = bpf_task_storage_get(&inflight, bpf_get_current_task_btf(), 0, 0);
	if (!f || (!f->active && !late_enter(f, regs, nr, *want)))
		return 0;
	f->active = 0;
	__u32 fl = f->flags;
	/* EAGAIN: nothing happened (a non-blocking read, accept or write that would have waited),
	 * nothing moved: counted, not recorded. */
	if (ret == -EAGAIN)
		return drop_call(f);
	/* An exec is recorded by the kernel's exec record when it succeeds; a failed one only when
	 * it was refused permission (EACCES: a policy's exec allow-list, a noexec mount). */
	if ((fl & JCS_CAP_FAILED) && ret != -EACCES)
		return drop_call(f);
	if (fl & JCS_CAP_PIPE) {
		if (ret == 0)
			remember_pipe(f);
		return drop_call(f);
	}
	if ((fl & JCS_CAP_SCM) && ret >= 0 && f->args[1])
		escape_fds(f);
	if ((fl & JCS_CAP_MMSG) && ret > 0) {
		exit_mmsg(f, ret);
		return 0;
	}
	/* A call a policy denied (EPERM from a sock_addr program): its record names the rule, and
	 * its address is read as for a call that succeeded. */
	__u32 rule = 0;
	if (ret == -EPERM) {
		__u64 t = bpf_get_current_pid_tgid();
		struct denied_call *d = bpf_map_lookup_elem(&denied_calls, &t);
		if (d) {
			if (d->when >= f->enter_ns)
				rule = d->rule;
			bpf_map_delete_elem(&denied_calls, &t);
		} else if ((fl & JCS_CAP_BIND) && (fl & JCS_CAP_NOTIFIED)) {
			/* A bind the supervisor made for this call: its denial is the socket's. */
			struct file *file = fd_file(bpf_get_current_task_btf(), (int)f->args[0]);
			struct socket *sock = file ? BPF_CORE_READ(file, private_data) : NULL;
			struct sock *sk = sock ? BPF_CORE_READ(sock, sk) : NULL;
			__u64 cookie = sk ? BPF_CORE_READ(sk, __sk_common.skc_cookie.counter) : 0;
			d = cookie ? bpf_map_lookup_elem(&denied_socks, &cookie) : NULL;
			if (d) {
				/* (Its sys_enter never ran: the call's start is not known here, and an
				 * entry is taken by the one call the supervisor made it in.) */
				rule = d->rule;
				bpf_map_delete_elem(&denied_socks, &cookie);
			}
		}
	}
	/* The VE's byte budget ran out: a send that failed (EPERM: its packet was dropped), or a
	 * stream send that the kernel took after that (its data never leaves: every packet of the
	 * VE is dropped), is aborted by the budget rule. (Refused connects and named sends are
	 * the sock_addr programs' denials, above.) Only sends on sockets look the VE up. */
	if (!rule && f->budget && (fl & JCS_CAP_OUT) && (f->evflags & JCS_F_SOCKET) &&
	    (ret == -EPERM || ret >= 0)) {
		struct jcs_ve *w = watched_task();
		__u64 ex = w ? w->exhausted_ns : 0;
		/* (A stream to an IP peer: a Unix socket's data does not go through the budget.) */
		int ip_peer = f->peer_len > 0 && (f->peer[0] == AF_INET || f->peer[0] == AF_INET6);
		if (ex && (ret == -EPERM || (ip_peer && ex < f->enter_ns)))
			rule = (__u32)w->budget_rule;
	}
	long okret = rule ? 0 : ret; /* what the capture conditions below look at */
	/* A call on a descriptor that is no socket and names no path or address (read, write,
	 * lseek, fsync... of a file) carries no path data: its record is the head alone. */
	if (!(fl & (JCS_CAP_PATH0 | JCS_CAP_PATH1 | JCS_CAP_ADDR1 | JCS_CAP_ADDR4 | JCS_CAP_MSGHDR |
		    JCS_CAP_NEWFD)) &&
	    !(f->evflags & (JCS_F_SOCKET | JCS_F_SOCKET2)) && !f->peer_len) {
		struct jcs_event *h = reserve_cg(JCS_EV_SYSCALL, JCS_HEAD_SIZE, f->cgroup);
		if (h) {
			fill_head(h, f, ret);
			h->rule = rule;
			submit(h, JCS_HEAD_SIZE);
		}
		return 0;
	}
	struct jcs_event *e = reserve_call(f);
	if (!e)
		goto out;
	fill(e, f, ret);
	e->rule = rule;
	int named = 0; /* the call named a remote address itself */
	/* An address the call gives (connect, sendto, sendmsg) is read whatever the result: a
	 * failed or still-connecting call names where it went; one the kernel fills in (accept,
	 * recvfrom, recvmsg) only when the call succeeded. */
	/* A connected stream socket's data goes to its peer whatever address the call names. */
	int peer_known = (f->sockinfo & SI_STREAM) && f->peer_len > 0;
	if (fl & (JCS_CAP_PATH0 | JCS_CAP_PATH1)) {
		__u64 up = (fl & JCS_CAP_PATH1) ? f->args[1] : f->args[0];
		if (fl & (JCS_CAP_PATHB1 | JCS_CAP_PATHB2 | JCS_CAP_PATHB3)) {
			__u64 up2 = (fl & JCS_CAP_PATHB1) ? f->args[1] :
				    (fl & JCS_CAP_PATHB2) ? f->args[2] : f->args[3];
			long n = bpf_probe_read_user_str(e->path, JCS_PATH_HALF, (void *)up);
			e->path_len = n > 0 ? n : 0;
			n = bpf_probe_read_user_str(e->path + JCS_PATH_HALF, JCS_PATH_HALF, (void *)up2);
			e->path2_len = n > 0 ? n : 0;
		} else {
			long n = bpf_probe_read_user_str(e->path, sizeof(e->path), (void *)up);
			e->path_len = n > 0 ? n : 0;
		}
	} else if ((fl & JCS_CAP_ADDR1) && (okret >= 0 || !(fl & JCS_CAP_ADDRLENP))) {
		__u32 len = f->args[2];
		if (fl & JCS_CAP_ADDRLENP) {
			len = 0;
			if (f->args[2])
				bpf_probe_read_user(&len, sizeof(len), (void *)f->args[2]);
		}
		named = read_addr(e, f->args[1], len);
	} else if ((fl & JCS_CAP_ADDR4) && (okret >= 0 || !(fl & JCS_CAP_ADDRLENP)) && !peer_known) {
		__u32 len = f->args[5];
		if (fl & JCS_CAP_ADDRLENP) {
			len = 0;
			if (f->args[5])
				bpf_probe_read_user(&len, sizeof(len), (void *)f->args[5]);
		}
		named = read_addr(e, f->args[4], len);
	} else if ((fl & JCS_CAP_MSGHDR) && (okret >= 0 || (fl & JCS_CAP_OUT)) && f->args[1] && !peer_known) {
		__u64 name = 0;
		__u32 namelen = 0;
		bpf_probe_read_user(&name, sizeof(name), (void *)f->args[1]);
		bpf_probe_read_user(&namelen, sizeof(namelen), (void *)(f->args[1] + 8));
		named = read_addr(e, name, namelen);
	}
	/* A datagram received without its address, which was not queued at the call's entry:
	 * the source of the last datagram that reached the socket (it woke the call). */
	if (!named && !e->path_len && (e->flags & JCS_F_SOCKET) && !(f->sockinfo & SI_STREAM) &&
	    !(fl & JCS_CAP_OUT) && okret > 0 && (fl & JCS_CAP_FD0)) {
		struct file *file = fd_file(bpf_get_current_task_btf(), (int)f->args[0]);
		struct socket *sock = file ? BPF_CORE_READ(file, private_data) : NULL;
		struct sock *sk = sock ? BPF_CORE_READ(sock, sk) : NULL;
		if (sk) {
			__u64 cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
			struct dgram_src *d = cookie ? bpf_map_lookup_elem(&dgram_src, &cookie) : NULL;
			if (d && d->len <= sizeof(d->addr)) {
				__builtin_memcpy(e->path, d->addr, sizeof(d->addr));
				e->path_len = d->len;
			}
		}
	}
	/* Loopback stays inside only in the VE's own network namespace (the address the call
	 * named, or the source of the datagram it received); an aborted call is always recorded. */
	if (!rule && (named || ((e->flags & JCS_F_SOCKET) && e->path_len >= 8)) &&
	    addr_loopback(e->path, named && !(fl & JCS_CAP_BIND)) &&
	    !(f->sockinfo & SI_HOSTNET)) {
		discard(e, f);
		goto out;
	}
	/* A socket's local end, now that the call bound it (connect, a first sendto). */
	if ((e->flags & JCS_F_SOCKET) && (fl & JCS_CAP_FD0) && !(fl & (JCS_CAP_PATH0 | JCS_CAP_PATH1)))
		add_local(e, f, NULL);
	/* A transfer to or from a socket: the local end of the socket whose peer the record
	 * holds (the first descriptor's when it is a socket). */
	else if ((fl & (JCS_CAP_XFER1 | JCS_CAP_XFER2)) && (e->flags & (JCS_F_SOCKET | JCS_F_SOCKET2))) {
		int sfd = (e->flags & JCS_F_SOCKET) ? (int)f->args[0] :
			  (fl & JCS_CAP_XFER1) ? (int)f->args[1] : (int)f->args[2];
		add_local(e, NULL, fd_file(bpf_get_current_task_btf(), sfd));
	}
	/* A Unix socket's rendezvous file (not for transfers: their second file is the other
	 * side's). The address a receive names is its source's, not the rendezvous: only a
	 * connect's or a send's names where the data goes. */
	if ((f->sockinfo & SI_UNIX) && okret >= 0 && (fl & JCS_CAP_FD0) &&
	    !(fl & (JCS_CAP_XFER1 | JCS_CAP_XFER2 | JCS_CAP_XFER3))) {
		int dest = named && ((fl & JCS_CAP_OUT) ||
				     ((fl & JCS_CAP_ADDR1) && !(fl & JCS_CAP_ADDRLENP)));
		add_unix_file(e, fd_file(bpf_get_current_task_btf(), (int)f->args[0]),
			      fl & JCS_CAP_BIND, dest);
	}
	if ((fl & JCS_CAP_NEWFD) && ret >= 0) {
		struct file *file = fd_file(bpf_get_current_task_btf(), ret);
		/* Opening a file of a read-only branch (an open for writing would have copied it
		 * up), or a kernel view for reading, moves no data: counted, not recorded, like the
		 * reads that may follow; so is opening what stays inside the VE. */
		__u32 c = file_class(file);
		if (!(fl & JCS_CAP_ADDR1) && (c & (JCS_FC_INSIDE | JCS_FC_PRISTINE))) {
			discard(e, f);
			goto out;
		}
		file_identity(file, &e->dev, &e->ino, &e->gen, &e->pos);
		if (c & JCS_FC_TTY)
			e->flags |= JCS_F_TTY;
		if (c & JCS_FC_OWN)
			e->flags |= JCS_F_OWN;
		/* openat2's flags are the first field of its struct open_how: in args[2] for the
		 * translator (O_TRUNC changed the file). */
		if (f->nr == JCS_NR_OPENAT2)
			bpf_probe_read_user(&e->args[2], sizeof(e->args[2]), (void *)f->args[2]);
		/* The name the kernel opened, when the path left room for it: a path whose last
		 * component differs went through a symbolic link. */
		if (file && !(c & JCS_FC_SOCKET) && e->path_len <= JCS_PATH_HALF) {
			const unsigned char *dn = BPF_CORE_READ(file, f_path.dentry, d_name.name);
			long n = bpf_probe_read_kernel_str(e->path + JCS_PATH_HALF, JCS_PATH_HALF, dn);
			if (n > 0) {
				e->path2_len = n;
				e->flags |= JCS_F_DNAME;
			}
		}
		if ((c & JCS_FC_SOCKET) && (fl & JCS_CAP_ADDR1)) {
			/* accept: the peer as the kernel knows it, even with a NULL address argument. */
			e->flags |= JCS_F_SOCKET;
			__u32 info = 0;
			int n = sock_peer(file, (__u8 *)e->path, &info);
			if (n < 0) {
				discard(e, f);
				goto out;
			}
			if (n > 0)
				e->path_len = n;
			add_local(e, NULL, file);
			if (info & SI_UNIX)
				add_unix_file(e, file, 0, 0);
		}
	}
	submit(e, sizeof(*e));
out:
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(jcs_fork, struct task_struct *parent, struct task_struct *child)
{
	if (!watched_task())
		return 0;
	/* Every task of a VE has its in-flight slot from the start, so that a call its first
	 * sys_enter never saw (one the pre-image supervisor answered) is still recorded. */
	struct inflight *slot = bpf_task_storage_get(&inflight, child, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (slot)
		slot->active = 0;
	/* A new thread shares its process's memory, descriptors and identity, and its calls carry
	 * the process's pid: its creation moves nothing and is not recorded (counted). */
	if (child->tgid == parent->tgid) {
		count(JCS_STAT_SKIPPED);
		return 0;
	}
	struct jcs_event *e = reserve_n(JCS_EV_FORK, JCS_HEAD_SIZE);
	if (e) {
		e->ret = child->pid;
		submit(e, JCS_HEAD_SIZE);
	}
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(jcs_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	if (!watched_task())
		return 0;
	struct jcs_event *e = reserve(JCS_EV_EXEC);
	if (e) {
		const char *name = BPF_CORE_READ(bprm, filename);
		long n = bpf_probe_read_kernel_str(e->path, JCS_PATH_HALF, name);
		e->path_len = n > 0 ? n : 0;
		file_identity(bprm->file, &e->dev, &e->ino, &e->gen, &e->pos);
		e->pos = -1;
		/* Who runs what: the new program's argument strings (from its stack, set up by
		 * now), its ids and its parent. */
		__u64 start = BPF_CORE_READ(p, mm, arg_start);
		__u64 end = BPF_CORE_READ(p, mm, arg_end);
		__u64 len = end > start ? end - start : 0;
		if (len > JCS_PATH_HALF - 1) {
			len = JCS_PATH_HALF - 1;
			e->flags |= JCS_F_ARGV_CUT;
		}
		if (len && bpf_probe_read_user(e->path + JCS_PATH_HALF, len & (JCS_PATH_HALF - 1),
					       (void *)start) == 0) {
			e->path2_len = len;
			e->flags |= JCS_F_ARGV;
		}
		__u64 ug = bpf_get_current_uid_gid();
		e->args[0] = (__u32)ug;
		e->args[1] = BPF_CORE_READ(p, cred, euid.val);
		e->args[2] = ug >> 32;
		e->args[3] = BPF_CORE_READ(p, real_parent, tgid);
		submit(e, sizeof(*e));
	}
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(jcs_exit, struct task_struct *p)
{
	if (!watched_task())
		return 0;
	/* A thread's end, like its start, is not recorded; the process's end is. */
	if (p->pid != p->tgid) {
		count(JCS_STAT_SKIPPED);
		return 0;
	}
	struct jcs_event *e = reserve_n(JCS_EV_EXIT, JCS_HEAD_SIZE);
	if (e) {
		/* The wait status: a normal exit's code in bits 8-15, a killing signal in 0-6. */
		e->ret = p->exit_code;
		submit(e, JCS_HEAD_SIZE);
	}
	return 0;
}

/* The network policy: cgroup sock_addr programs, attached to the cgroup of each VE that has a
 * network policy. The longest prefix holding the address has, in policy order, every rule that
 * can match it (model::policy::Policy::compile_net): the first match decides. A denial fails
 * the call with EPERM, is counted per (VE, rule), and is remembered for the call's record. */
/* Counts a denial of the VE's by `rule`. */
static __always_inline void count_denial(__u64 ve, __u32 rule)
{
	__u32 slot = (__u32)(ve % JCS_TAINT_SLOTS);
	__u64 *t = bpf_map_lookup_elem(&tainted, &slot);
	if (t)
		*t = ve;
	struct jcs_deny_key dk = { .ve = ve, .rule = rule };
	bump(&denials, &dk);
}

/* A call of the current thread denied by `rule`: counted, and remembered for its record — by
 * the socket when the thread is the VE's init (its supervisor binding for the app). */
static __always_inline void deny(struct bpf_sock_addr *ctx, struct jcs_ve *w, __u32 rule)
{
	count_denial(w->ve, rule);
	__u64 t = bpf_get_current_pid_tgid();
	struct denied_call d = { .rule = rule, .when = bpf_ktime_get_ns() };
	if (w->init_tid && w->init_tid == (__u32)(t >> 32)) {
		__u64 cookie = bpf_get_socket_cookie(ctx);
		bpf_map_update_elem(&denied_socks, &cookie, &d, BPF_ANY);
		return;
	}
	bpf_map_update_elem(&denied_calls, &t, &d, BPF_ANY);
}

static __always_inline int decide(struct bpf_sock_addr *ctx, int v6, __u8 op)
{
	__u64 cg = bpf_get_current_cgroup_id();
	struct jcs_ve *w = bpf_map_lookup_elem(&watched, &cg);
	if (!w)
		return 1;
	struct jcs_policy_key k = {};
	k.ve = (__u32)w->ve;
	if (!v6) {
		__u32 a = ctx->user_ip4;
		k.family = 4;
		__builtin_memcpy(k.addr, &a, 4);
		k.prefixlen = 64 + 32;
	} else {
		__u32 a[4];
		a[0] = ctx->user_ip6[0];
		a[1] = ctx->user_ip6[1];
		a[2] = ctx->user_ip6[2];
		a[3] = ctx->user_ip6[3];
		if (a[0] == 0 && a[1] == 0 && a[2] == bpf_htonl(0xffff)) {
			/* An IPv4-mapped address reaches that IPv4 address. */
			k.family = 4;
			__builtin_memcpy(k.addr, &a[3], 4);
			k.prefixlen = 64 + 32;
		} else {
			k.family = 6;
			__builtin_memcpy(k.addr, a, 16);
			k.prefixlen = 64 + 128;
		}
	}
	if (w->exhausted_ns && op != JCS_OP_BIND) {
		/* The byte budget ran out: nothing more goes out, new connections neither; the VE's
		 * own loopback is inside it. */
		int loop = k.family == 4 ? k.addr[0] == 127 :
			   (k.addr[15] == 1 && !(k.addr[0] | k.addr[1] | k.addr[2] | k.addr[3] |
			    k.addr[4] | k.addr[5] | k.addr[6] | k.addr[7] | k.addr[8] | k.addr[9] |
			    k.addr[10] | k.addr[11] | k.addr[12] | k.addr[13] | k.addr[14]));
		if (!loop) {
			deny(ctx, w, (__u32)w->budget_rule);
			return 0;
		}
	}
	struct jcs_rules *rs = bpf_map_lookup_elem(&policy, &k);
	if (!rs)
		return 1;
	__u16 port = bpf_ntohs(ctx->user_port);
	__u32 p = ctx->protocol;
	__u8 proto = p == 6 ? JCS_PROTO_TCP : p == 17 ? JCS_PROTO_UDP : JCS_PROTO_OTHER;
	for (int i = 0; i < JCS_RULES_MAX; i++) {
		if (i >= rs->n)
			break;
		struct jcs_rule *r = &rs->r[i];
		if (!(r->ops & op) || !(r->protos & proto) || port < r->port_lo || port > r->port_hi)
			continue;
		if (!r->deny)
			return 1;
		deny(ctx, w, r->id);
		return 0;
	}
	return 1;
}

SEC("cgroup/connect4")
int jcs_connect4(struct bpf_sock_addr *ctx) { return decide(ctx, 0, JCS_OP_CONNECT); }
SEC("cgroup/connect6")
int jcs_connect6(struct bpf_sock_addr *ctx) { return decide(ctx, 1, JCS_OP_CONNECT); }
SEC("cgroup/sendmsg4")
int jcs_sendmsg4(struct bpf_sock_addr *ctx) { return decide(ctx, 0, JCS_OP_SEND); }
SEC("cgroup/sendmsg6")
int jcs_sendmsg6(struct bpf_sock_addr *ctx) { return decide(ctx, 1, JCS_OP_SEND); }
SEC("cgroup/bind4")
int jcs_bind4(struct bpf_sock_addr *ctx) { return decide(ctx, 0, JCS_OP_BIND); }
SEC("cgroup/bind6")
int jcs_bind6(struct bpf_sock_addr *ctx) { return decide(ctx, 1, JCS_OP_BIND); }

/* budget.bytes_sent: counts the IP packets a VE's sockets send out of its network namespace
 * (loopback is the VE's own), headers included, and once the next one would pass the budget,
 * drops it and every later one (the sender gets EPERM, a stream stalls); the drops are counted
 * per (VE, rule) like denials. Attached to the VE's cgroup; the socket's cgroup names the VE
 * (in softirq context, the current task is anyone's). */
SEC("cgroup_skb/egress")
int jcs_egress(struct __sk_buff *skb)
{
	if (skb->ifindex == 1)
		return 1;
	__u64 cg = bpf_skb_cgroup_id(skb);
	struct jcs_ve *w = bpf_map_lookup_elem(&watched, &cg);
	if (!w || !w->budget)
		return 1;
	if (!w->exhausted_ns) {
		__u64 len = skb->len;
		__u64 sent = __sync_fetch_and_add(&w->sent, len) + len;
		if (sent <= w->budget)
			return 1;
		__sync_fetch_and_add(&w->sent, -len);
		w->exhausted_ns = bpf_ktime_get_ns();
	}
	count_denial(w->ve, (__u32)w->budget_rule);
	return 0;
}

/* Each UDP datagram that reaches a socket of the VE: its source, by the socket's cookie (see
 * `dgram_src`). Attached to every VE's cgroup; lets every packet pass. */
SEC("cgroup_skb/ingress")
int jcs_ingress(struct __sk_buff *skb)
{
	struct dgram_src d = {};
	__be16 sport = 0;
	if (skb->family == AF_INET) {
		__u8 vihl = 0, proto = 0;
		__be32 saddr = 0;
		if (bpf_skb_load_bytes(skb, 0, &vihl, 1) || bpf_skb_load_bytes(skb, 9, &proto, 1) ||
		    proto != 17 || bpf_skb_load_bytes(skb, 12, &saddr, 4) ||
		    bpf_skb_load_bytes(skb, (vihl & 15) * 4, &sport, 2))
			return 1;
		d.len = put_source(d.addr, sport, &saddr, 4);
	} else if (skb->family == AF_INET6) {
		__u8 next = 0, saddr[16];
		if (bpf_skb_load_bytes(skb, 6, &next, 1) || next != 17 ||
		    bpf_skb_load_bytes(skb, 8, saddr, 16) ||
		    bpf_skb_load_bytes(skb, 40, &sport, 2))
			return 1;
		d.len = put_source(d.addr, sport, saddr, 16);
	} else {
		return 1;
	}
	__u64 cookie = bpf_get_socket_cookie(skb);
	if (cookie)
		bpf_map_update_elem(&dgram_src, &cookie, &d, BPF_ANY);
	return 1;
}

/* Never used by the programs: these globals make libbpf-cargo generate, from the compiler's
 * BTF, the Rust view of the record and of its enums (`skel::types`), which is all that
 * `decode.rs` and `syscalls.rs` read: the layout of what the kernel sends is defined once. */
struct jcs_event jcs_abi_event;
struct jcs_ve jcs_abi_ve;
struct jcs_policy_key jcs_abi_policy_key;
struct jcs_rules jcs_abi_rules;
struct jcs_deny_key jcs_abi_deny_key;
enum jcs_kind jcs_abi_kind;
enum jcs_capture jcs_abi_capture;
enum jcs_flag jcs_abi_flag;
enum jcs_limit jcs_abi_limit;
