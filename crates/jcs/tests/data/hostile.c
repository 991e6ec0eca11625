/* What a hostile application tries from inside a VE, one attempt per run:
 *   hostile ATTEMPT [ARG]
 * prints "ESCAPED <detail>" when the attempt worked and "DENIED <errno text>" when it failed,
 * and exits 0 either way. The tests run it inside a VE (every attempt must be DENIED) and on
 * the host under the same conditions (the negative control: it must have ESCAPED there, so a
 * probe that silently does nothing cannot pass). Built static by the tests. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static int result(int ok, const char *detail)
{
	if (ok)
		printf("ESCAPED %s\n", detail);
	else
		printf("DENIED %s\n", strerror(errno));
	return 0;
}

static int sock(int domain, int type, int proto)
{
	int s = socket(domain, type, proto);
	if (s >= 0)
		close(s);
	return result(s >= 0, "socket opened");
}

int main(int argc, char **argv)
{
	const char *a = argc > 1 ? argv[1] : "";
	const char *arg = argc > 2 ? argv[2] : "";
	if (!strcmp(a, "mknod")) {
		/* /dev/kvm's numbers */
		int r = mknod(arg, S_IFCHR | 0600, makedev(10, 232));
		if (r == 0)
			unlink(arg);
		return result(r == 0, "device node made");
	}
	if (!strcmp(a, "open")) {
		/* an existing device node (or any file) opened for reading */
		int fd = open(arg, O_RDONLY | O_NONBLOCK);
		if (fd >= 0)
			close(fd);
		return result(fd >= 0, "opened");
	}
	if (!strcmp(a, "tiocsti")) {
		char c = '#';
		return result(ioctl(0, TIOCSTI, &c) == 0, "pushed a byte into the terminal");
	}
	if (!strcmp(a, "fds")) {
		char open_fds[512] = "";
		for (int fd = 3; fd < 1024; fd++)
			if (fcntl(fd, F_GETFD) >= 0)
				snprintf(open_fds + strlen(open_fds), sizeof open_fds - strlen(open_fds), "%d ", fd);
		errno = EBADF;
		return result(open_fds[0] != 0, open_fds);
	}
	if (!strcmp(a, "raw"))
		return sock(AF_INET, SOCK_RAW, IPPROTO_ICMP);
	if (!strcmp(a, "packet"))
		return sock(AF_PACKET, SOCK_RAW, htons(3 /* ETH_P_ALL */));
	if (!strcmp(a, "audit"))
		return sock(AF_NETLINK, SOCK_RAW, NETLINK_AUDIT);
	if (!strcmp(a, "personality")) {
		int old = personality(0xffffffff);
		int r = personality(READ_IMPLIES_EXEC);
		if (r != -1)
			personality(old);
		return result(r != -1, "READ_IMPLIES_EXEC set");
	}
	if (!strcmp(a, "aio")) {
		/* A Linux AIO context: its io_submit writes happen after the call returns. */
		unsigned long ctx = 0;
		int r = syscall(SYS_io_setup, 8, &ctx);
		if (r == 0)
			syscall(SYS_io_destroy, ctx);
		return result(r == 0, "made an AIO context");
	}
	if (!strcmp(a, "pidfd_getfd")) {
		int pfd = syscall(SYS_pidfd_open, getpid(), 0);
		int fd = pfd < 0 ? -1 : syscall(SYS_pidfd_getfd, pfd, 1, 0);
		return result(fd >= 0, "took a descriptor of a process");
	}
	if (!strcmp(a, "udp") && argc == 6) {
		/* hostile udp SRC DST PORT PAYLOAD: a datagram from SRC (any address: IP_FREEBIND),
		 * to DST:PORT. Whether it arrives is for the receiver to say. */
		int s = socket(AF_INET, SOCK_DGRAM, 0), one = 1;
		struct sockaddr_in src = {.sin_family = AF_INET}, dst = {.sin_family = AF_INET};
		inet_pton(AF_INET, argv[2], &src.sin_addr);
		inet_pton(AF_INET, argv[3], &dst.sin_addr);
		dst.sin_port = htons(atoi(argv[4]));
		setsockopt(s, IPPROTO_IP, IP_FREEBIND, &one, sizeof one);
		/* Sending from a foreign address also needs IP_TRANSPARENT (CAP_NET_ADMIN or
		 * CAP_NET_RAW): a VE has neither, a root process in its network namespace has. */
		setsockopt(s, IPPROTO_IP, IP_TRANSPARENT, &one, sizeof one);
		int r = bind(s, (struct sockaddr *)&src, sizeof src);
		if (r == 0)
			r = sendto(s, argv[5], strlen(argv[5]), 0, (struct sockaddr *)&dst, sizeof dst) < 0 ? -1 : 0;
		return result(r == 0, "sent");
	}
	fprintf(stderr, "hostile: unknown attempt %s\n", a);
	return 2;
}
