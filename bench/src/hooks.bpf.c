/* Hook mechanisms for system calls, for bench/hook-cost.sh: the same gate ("is this task in a
 * watched VE?") under each way a BPF program can see system calls on this kernel, and the
 * floors. None of these programs records anything; a host process never passes the gate. */
#include "../../crates/monitor/src/bpf/vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u64);
	__type(value, __u64);
} watched SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u64);
} tasks SEC(".maps");

/* The monitor's gate today: the task's cgroup looked up in the watched map. */
static __always_inline int by_cgroup(void)
{
	__u64 cg = bpf_get_current_cgroup_id();
	__u64 *w = bpf_map_lookup_elem(&watched, &cg);
	if (w)
		__sync_fetch_and_add(w, 1);
	return 0;
}

/* A gate on task-local storage (a VE's tasks would carry it from their fork). */
static __always_inline int by_task(void)
{
	__u64 *v = bpf_task_storage_get(&tasks, bpf_get_current_task_btf(), 0, 0);
	if (v)
		*v += 1;
	return 0;
}

/* Every system call, through the BTF raw tracepoints (what the monitor attaches). */
SEC("tp_btf/sys_enter") int BPF_PROG(raw_enter_empty, struct pt_regs *r, long id) { return 0; }
SEC("tp_btf/sys_exit") int BPF_PROG(raw_exit_empty, struct pt_regs *r, long ret) { return 0; }
SEC("tp_btf/sys_enter") int BPF_PROG(raw_enter_task, struct pt_regs *r, long id) { return by_task(); }
SEC("tp_btf/sys_exit") int BPF_PROG(raw_exit_task, struct pt_regs *r, long ret) { return by_task(); }
SEC("tp_btf/sys_enter") int BPF_PROG(raw_enter_cgroup, struct pt_regs *r, long id) { return by_cgroup(); }
SEC("tp_btf/sys_exit") int BPF_PROG(raw_exit_cgroup, struct pt_regs *r, long ret) { return by_cgroup(); }

/* One system call (write), through its own tracepoints: others pay only the kernel's syscall
 * tracing slow path. */
SEC("tracepoint/syscalls/sys_enter_write") int write_enter_cgroup(void *ctx) { return by_cgroup(); }
SEC("tracepoint/syscalls/sys_exit_write") int write_exit_cgroup(void *ctx) { return by_cgroup(); }

/* Per function (a trampoline on the call's implementation) and BPF LSM: zero cost for
 * every other call, when the kernel allows them. */
SEC("fentry/ksys_write") int BPF_PROG(write_fentry, unsigned int fd, const char *buf, size_t n) { return by_cgroup(); }
SEC("lsm/file_permission") int BPF_PROG(lsm_file_permission, struct file *f, int mask) { return by_cgroup(); }
