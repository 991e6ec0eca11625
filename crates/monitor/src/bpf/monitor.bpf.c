// SPDX-License-Identifier: GPL-2.0
/* JCS monitor: records the interactions of the tasks of watched cgroups (VEs).
 * Every program starts with the cgroup filter, so tasks outside VEs cost one hash lookup. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "monitor.h"

char LICENSE[] SEC("license") = "GPL";

/* Force a wake-up of the consumer only once this much is queued (DESIGN: per-record
 * wake-ups cost ≈ 2.5 µs each); the consumer also polls with a short timeout. */
const volatile __u64 wakeup_bytes = 256 * 1024;

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
	__type(value, __u16); /* enum jcs_capture flags; 0 = not recorded */
} interest SEC(".maps");

struct inflight {
	__u64 args[6];
	__u64 dev;
	__u64 ino;
	__s64 pos;
	__u32 nr;
	__u32 flags;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32); /* tid */
	__type(value, struct inflight);
} inflight SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 * 1024 * 1024);
} events SEC(".maps");

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

/* Counts system call `nr` of the current task's cgroup. */
static __always_inline void count_call(__u32 nr, __u32 dropped)
{
	struct jcs_count_key k = { .cgroup_id = bpf_get_current_cgroup_id(), .nr = nr, .dropped = dropped };
	__u64 *v = bpf_map_lookup_elem(&counts, &k);
	if (v) {
		__sync_fetch_and_add(v, 1);
	} else {
		__u64 one = 1;
		if (bpf_map_update_elem(&counts, &k, &one, BPF_NOEXIST) != 0) {
			v = bpf_map_lookup_elem(&counts, &k);
			if (v)
				__sync_fetch_and_add(v, 1);
		}
	}
}

static __always_inline void submit(struct jcs_event *e)
{
	__u64 avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	bpf_ringbuf_submit(e, avail >= wakeup_bytes ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
	count(JCS_STAT_EMITTED);
	struct jcs_ve *w = watched_task();
	if (w)
		__sync_fetch_and_add(&w->emitted, 1);
}

static __always_inline struct jcs_event *reserve(__u32 kind)
{
	struct jcs_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(JCS_STAT_LOST);
		struct jcs_ve *w = watched_task();
		if (w)
			__sync_fetch_and_add(&w->lost, 1);
		return NULL;
	}
	__u64 id = bpf_get_current_pid_tgid();
	e->time_ns = bpf_ktime_get_ns();
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->pid = id >> 32;
	e->tid = (__u32)id;
	e->kind = kind;
	e->nr = 0;
	e->ret = 0;
	e->dev = 0;
	e->ino = 0;
	e->pos = -1;
	e->path_len = 0;
	e->pad = 0;
	for (int i = 0; i < 6; i++)
		e->args[i] = 0;
	return e;
}

#define OVERLAYFS_SUPER_MAGIC 0x794c7630
#define PIPEFS_MAGIC 0x50495045

/* The struct file behind descriptor `fd` of task `t`, or NULL. */
static __always_inline struct file *fd_file(struct task_struct *t, unsigned int fd)
{
	unsigned int max = BPF_CORE_READ(t, files, fdt, max_fds);
	if (fd >= max)
		return NULL;
	struct file **fds = BPF_CORE_READ(t, files, fdt, fd);
	struct file *file = NULL;
	bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]);
	return file;
}

/* Whether `file` exists only in a read-only branch of an overlay (a VE's template or app
 * layers): an overlay inode without an upper dentry. Such a file is pristine by construction,
 * so reading it carries no contamination and is not recorded. */
static __always_inline int lower_only(struct file *file)
{
	struct inode *inode = BPF_CORE_READ(file, f_inode);
	if (BPF_CORE_READ(inode, i_sb, s_magic) != OVERLAYFS_SUPER_MAGIC)
		return 0;
	struct ovl_inode *oi = (void *)inode - bpf_core_field_offset(struct ovl_inode, vfs_inode);
	return BPF_CORE_READ(oi, __upperdentry) == NULL;
}

/* The identity (device, inode) and position of a file. */
static __always_inline void file_identity(struct file *file, __u64 *dev, __u64 *ino, __s64 *pos)
{
	if (!file)
		return;
	*ino = BPF_CORE_READ(file, f_inode, i_ino);
	*dev = BPF_CORE_READ(file, f_inode, i_sb, s_dev);
	*pos = BPF_CORE_READ(file, f_pos);
}

/* A call classification drops: counted, never emitted. */
static __always_inline int drop_call(struct jcs_ve *w, __u32 nr)
{
	count(JCS_STAT_DROPPED);
	__sync_fetch_and_add(&w->dropped, 1);
	count_call(nr, 1);
	return 0;
}

/* Copies a sockaddr of `len` bytes from user memory into the record. A constant-size read
 * keeps the verifier simple: 128 bytes (sockaddr_storage), or 16 (sockaddr_in) when the
 * larger read would cross into unmapped memory. */
static __always_inline void read_addr(struct jcs_event *e, __u64 uaddr, __u64 len)
{
	if (!len)
		return;
	if (bpf_probe_read_user(e->path, 128, (void *)uaddr) == 0)
		e->path_len = len > 128 ? 128 : len;
	else if (bpf_probe_read_user(e->path, 16, (void *)uaddr) == 0)
		e->path_len = len > 16 ? 16 : len;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(jcs_sys_enter, struct pt_regs *regs, long id)
{
	struct jcs_ve *w = watched_task();
	if (!w)
		return 0;
	count(JCS_STAT_SEEN);
	__sync_fetch_and_add(&w->seen, 1);
	__u32 nr = id;
	count_call(nr, 0);
	__u16 *want = bpf_map_lookup_elem(&interest, &nr);
	if (!want || !(*want & JCS_CAP_RECORD)) {
		count(JCS_STAT_SKIPPED);
		return 0;
	}
	struct inflight f = {};
	f.nr = nr;
	f.flags = *want;
	f.pos = -1;
	f.args[0] = PT_REGS_PARM1_CORE_SYSCALL(regs);
	f.args[1] = PT_REGS_PARM2_CORE_SYSCALL(regs);
	f.args[2] = PT_REGS_PARM3_CORE_SYSCALL(regs);
	f.args[3] = PT_REGS_PARM4_CORE_SYSCALL(regs);
	f.args[4] = PT_REGS_PARM5_CORE_SYSCALL(regs);
	f.args[5] = PT_REGS_PARM6_CORE_SYSCALL(regs);
	if (f.flags & (JCS_CAP_FD0 | JCS_CAP_FD4)) {
		/* One descriptor-table lookup serves classification and the file's identity. */
		int fd = (f.flags & JCS_CAP_FD4) ? (int)f.args[4] : (int)f.args[0];
		if (fd < 0) {
			/* An anonymous mapping: no file, nothing crosses the boundary. */
			count(JCS_STAT_SKIPPED);
			return 0;
		}
		struct file *file = fd_file(bpf_get_current_task_btf(), fd);
		if (file) {
			/* A pipe: data between processes of the same VE never crosses its boundary. */
			if (BPF_CORE_READ(file, f_inode, i_sb, s_magic) == PIPEFS_MAGIC)
				return drop_call(w, nr);
			/* mmap reads its file unless the mapping is shared and writable. */
			int writes = (f.flags & JCS_CAP_FD4) && (f.args[3] & 0x01) && (f.args[2] & 0x2);
			if ((f.flags & JCS_CAP_READ) && !writes && lower_only(file))
				return drop_call(w, nr);
		}
		file_identity(file, &f.dev, &f.ino, &f.pos);
	}
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	bpf_map_update_elem(&inflight, &tid, &f, BPF_ANY);
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(jcs_sys_exit, struct pt_regs *regs, long ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct inflight *f = bpf_map_lookup_elem(&inflight, &tid);
	if (!f)
		return 0;
	struct jcs_event *e = reserve(JCS_EV_SYSCALL);
	if (e) {
		e->nr = f->nr;
		e->ret = ret;
		for (int i = 0; i < 6; i++)
			e->args[i] = f->args[i];
		e->dev = f->dev;
		e->ino = f->ino;
		e->pos = f->pos;
		__u32 fl = f->flags;
		if (fl & (JCS_CAP_PATH0 | JCS_CAP_PATH1)) {
			__u64 up = (fl & JCS_CAP_PATH1) ? f->args[1] : f->args[0];
			long n = bpf_probe_read_user_str(e->path, sizeof(e->path), (void *)up);
			e->path_len = n > 0 ? n : 0;
		} else if (fl & JCS_CAP_ADDR1) {
			__u32 len = f->args[2];
			if (fl & JCS_CAP_ADDRLENP) {
				len = 0;
				if (f->args[2])
					bpf_probe_read_user(&len, sizeof(len), (void *)f->args[2]);
			}
			if (f->args[1] && ret >= 0)
				read_addr(e, f->args[1], len);
		} else if ((fl & JCS_CAP_ADDR4) && f->args[4]) {
			read_addr(e, f->args[4], f->args[5]);
		}
		if ((fl & JCS_CAP_NEWFD) && ret >= 0)
			file_identity(fd_file(bpf_get_current_task_btf(), ret), &e->dev, &e->ino, &e->pos);
		submit(e);
	}
	bpf_map_delete_elem(&inflight, &tid);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(jcs_fork, struct task_struct *parent, struct task_struct *child)
{
	if (!watched_task())
		return 0;
	struct jcs_event *e = reserve(JCS_EV_FORK);
	if (e) {
		e->ret = BPF_CORE_READ(child, pid);
		submit(e);
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
		long n = bpf_probe_read_kernel_str(e->path, sizeof(e->path), name);
		e->path_len = n > 0 ? n : 0;
		submit(e);
	}
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(jcs_exit, struct task_struct *p)
{
	if (!watched_task())
		return 0;
	struct jcs_event *e = reserve(JCS_EV_EXIT);
	if (e) {
		e->ret = BPF_CORE_READ(p, exit_code) >> 8;
		submit(e);
	}
	return 0;
}
