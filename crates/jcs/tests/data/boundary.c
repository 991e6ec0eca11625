/* Channels between VEs (tests/root_boundary.rs). Each subcommand moves known bytes one way:
 *   unix-serve PATH OUT        accept one connection on the Unix socket PATH, copy what it
 *                              sends into OUT
 *   unix-send PATH TEXT        connect to PATH, send TEXT
 *   unix-serve-at DIR NAME OUT the same as unix-serve, bound to NAME relative to DIR
 *   udgram-serve DIR NAME OUT  bind a Unix datagram socket to NAME relative to DIR, receive one
 *                              datagram, copy it into OUT
 *   udgram-send PATH TEXT      send TEXT in a datagram to the Unix socket PATH (unbound)
 *   udgram-send-from PATH TEXT FROM
 *                              the same from a socket bound to FROM
 *   pipe-recv PATH OUT         accept one connection on PATH, receive a descriptor over it
 *                              (SCM_RIGHTS), copy what can be read from it into OUT
 *   pipe-send PATH TEXT        make a pipe, pass its read end to PATH, then write TEXT into it
 *   fd-send PATH FILE TEXT     write TEXT into FILE (made anew; "memfd": a memfd), seek back to
 *                              its start, pass the descriptor to PATH
 *   file-lend PATH FILE OUT    accept one connection on PATH, create FILE, pass its descriptor
 *                              over the connection, wait until the peer closes it, then copy
 *                              what FILE holds into OUT
 *   file-fill PATH TEXT        connect to PATH, receive a descriptor, pwrite TEXT at 0 into it
 *   tcp-sendto-lo HOST PORT TEXT
 *                              connect to HOST:PORT, send TEXT with sendto naming 127.0.0.1
 *                              (the kernel ignores the address of a connected stream socket)
 *   tcp-serve PORT OUT         accept one TCP connection on PORT, copy what it sends into OUT
 *   mprotect-write FILE TEXT   map FILE shared and read-only, make the mapping writable with
 *                              mprotect, copy TEXT into it
 *   udp-recv-plain PORT OUT    the same with a recv() that waits (it names no source)
 *   udp-recv-polled PORT OUT   the same, but poll until a datagram is queued, then recv()
 *                              (which names no source)
 *   udp-recv PORT OUT          bind a UDP socket to PORT on every address, receive one
 *                              datagram (recvfrom, with its source), copy it into OUT
 *   udp-send HOST PORT TEXT    send TEXT in a datagram (sendto) from an unbound socket, three
 *                              times 100 ms apart, then wait 2 s (the receiver takes the first
 *                              that arrives; it gives up after 20 s)
 *   udp-sendmmsg HOST PORT TEXT
 *                              the same with sendmmsg (one datagram per call)
 *   tcp-sendfile HOST PORT FILE
 *                              connect to HOST:PORT, send FILE's bytes with sendfile
 *   exchange A B               swap the files named A and B (renameat2 RENAME_EXCHANGE)
 *   udp-spray N                send a datagram to each of N ports of 10.99.0.1 (no route: each
 *                              send fails, toward an endpoint of its own)
 *   setversion FILE            add one to FILE's inode generation (FS_IOC_SETVERSION); on
 *                              failure print the error and exit 3
 *   mknod-reg FILE             make FILE, a regular file, with mknod
 *   clone SRC DST              ioctl FICLONE: DST shares SRC's data (a reflink copy); on failure
 *                              print the error and exit 3. clone-range: FICLONERANGE (all of
 *                              SRC); dedupe: FIDEDUPERANGE of SRC's first 4 KiB into DST
 *   flood SECONDS FILE         pwrite one byte to FILE as fast as it can for SECONDS
 *   quiet N FILE               pwrite N bytes to FILE, one call each, 10 ms apart
 *   xattr-set FILE VALUE       set the extended attribute user.jcs of FILE to VALUE
 *   xattr-get FILE OUT         copy FILE's user.jcs into OUT
 *   map-write-hold FILE SRC READY DONE
 *                              map FILE shared and writable, then read SRC and store what it
 *                              holds into the mapping (no call writes FILE), create READY, wait
 *                              until DONE exists, exit (the mapping ends with the process)
 *   map-read-wait FILE OUT READY
 *                              map FILE private and read-only (its first page read), create
 *                              READY, wait until the mapping's first byte changes (another
 *                              process wrote the file), write what it holds into OUT
 *   map-then-copy FILE SRC     map FILE shared and writable, then read SRC and copy what it
 *                              holds into the mapping (after the mmap call)
 *   mremap-copy FILE SRC       map FILE's first page shared and writable, grow the mapping to
 *                              two pages with mremap (it may move), copy what SRC holds into
 *                              the second page, unmap it
 *   mremap-copy-keep FILE SRC  the same, but exit with the mapping still there
 *   tee-out TEXT               put TEXT in a pipe of its own, tee it to stdout, drain the pipe
 *   vmsplice-out TEXT          vmsplice TEXT into stdout (a pipe)
 *   vmsplice-in OUT            vmsplice what stdin (a pipe) holds into memory, write it to OUT
 *   openat2-trunc FILE         openat2 FILE with O_WRONLY|O_TRUNC (no write), close it
 * Exit status 0 when the bytes moved, 1 (with a message) when not. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <linux/openat2.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <sys/un.h>
#include <unistd.h>

static int die(const char *what)
{
	fprintf(stderr, "boundary: %s: %s\n", what, strerror(errno));
	exit(1);
}

static struct sockaddr_un addr_of(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	strncpy(a.sun_path, path, sizeof(a.sun_path) - 1);
	return a;
}

/* FILE's first page, mapped shared and writable. */
static char *map_shared(const char *file)
{
	int fd = open(file, O_RDWR);
	if (fd < 0)
		die("open");
	char *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		die("mmap");
	return m;
}

/* Creates FILE (empty). */
static void touch(const char *file)
{
	int fd = open(file, O_CREAT | O_WRONLY, 0644);
	if (fd < 0)
		die("touch");
	close(fd);
}

/* Waits up to 20 s until FILE exists. */
static void wait_for_file(const char *file)
{
	for (int i = 0; i < 2000 && access(file, F_OK); i++)
		usleep(10000);
	if (access(file, F_OK))
		die("wait");
}

/* Reads up to SIZE bytes of FILE (at least one) into BUF. */
static ssize_t read_source(const char *file, char *buf, size_t size)
{
	int src = open(file, O_RDONLY);
	ssize_t n = src < 0 ? -1 : read(src, buf, size);
	if (n <= 0)
		die("read the source");
	return n;
}

/* Tells the test it may start the client (/data/ready). */
static void ready(void)
{
	int r = open("/data/ready", O_CREAT | O_WRONLY, 0644);
	if (r >= 0)
		close(r);
}

/* Listens on the bound socket `s`, says so, and returns the one connection it accepts. */
static int serve_one(int s)
{
	if (listen(s, 1))
		die("listen");
	ready();
	int c = accept(s, NULL, NULL);
	if (c < 0)
		die("accept");
	return c;
}

static int listen_unix(const char *path)
{
	unlink(path);
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un a = addr_of(path);
	if (s < 0 || bind(s, (void *)&a, sizeof(a)))
		die("bind");
	return serve_one(s);
}

static int connect_unix(const char *path)
{
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un a = addr_of(path);
	if (s < 0 || connect(s, (void *)&a, sizeof(a)))
		die("connect");
	return s;
}

static void copy(int from, const char *out)
{
	int o = open(out, O_CREAT | O_TRUNC | O_WRONLY, 0644);
	if (o < 0)
		die("open the output");
	char buf[65536];
	ssize_t n;
	while ((n = read(from, buf, sizeof(buf))) > 0)
		if (write(o, buf, n) != n)
			die("write");
	close(o);
}

/* Passes descriptor FD over the connected Unix socket S (SCM_RIGHTS, with one byte). */
static void send_fd(int s, int fd)
{
	char byte = 'x';
	char ctl[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { &byte, 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
			    .msg_controllen = sizeof(ctl) };
	struct cmsghdr *h = CMSG_FIRSTHDR(&m);
	h->cmsg_level = SOL_SOCKET;
	h->cmsg_type = SCM_RIGHTS;
	h->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(h), &fd, sizeof(int));
	if (sendmsg(s, &m, 0) != 1)
		die("sendmsg");
}

/* The descriptor the peer of S passes. */
static int recv_fd(int s)
{
	char byte;
	char ctl[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { &byte, 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
			    .msg_controllen = sizeof(ctl) };
	if (recvmsg(s, &m, 0) != 1)
		die("recvmsg");
	struct cmsghdr *h = CMSG_FIRSTHDR(&m);
	if (!h || h->cmsg_type != SCM_RIGHTS)
		die("no descriptor");
	int fd;
	memcpy(&fd, CMSG_DATA(h), sizeof(fd));
	return fd;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "unix-serve")) {
		copy(listen_unix(argv[2]), argv[3]);
	} else if (argc == 5 && !strcmp(argv[1], "unix-serve-at")) {
		if (chdir(argv[2]))
			die("chdir");
		copy(listen_unix(argv[3]), argv[4]);
	} else if (argc == 5 && !strcmp(argv[1], "udgram-serve")) {
		if (chdir(argv[2]))
			die("chdir");
		unlink(argv[3]);
		int s = socket(AF_UNIX, SOCK_DGRAM, 0);
		struct sockaddr_un a = addr_of(argv[3]);
		if (s < 0 || bind(s, (void *)&a, sizeof(a)))
			die("bind");
		ready();
		char buf[4096];
		struct sockaddr_un from;
		socklen_t fromlen = sizeof(from);
		ssize_t n = recvfrom(s, buf, sizeof(buf), 0, (void *)&from, &fromlen);
		int o = open(argv[4], O_CREAT | O_TRUNC | O_WRONLY, 0644);
		if (n < 0 || o < 0 || write(o, buf, n) != n)
			die("receive");
		close(o);
	} else if ((argc == 4 && !strcmp(argv[1], "udgram-send")) ||
		   (argc == 5 && !strcmp(argv[1], "udgram-send-from"))) {
		int s = socket(AF_UNIX, SOCK_DGRAM, 0);
		if (argc == 5) {
			unlink(argv[4]);
			struct sockaddr_un f = addr_of(argv[4]);
			if (bind(s, (void *)&f, sizeof(f)))
				die("bind");
		}
		struct sockaddr_un a = addr_of(argv[2]);
		if (s < 0 || sendto(s, argv[3], strlen(argv[3]), 0, (void *)&a, sizeof(a)) < 0)
			die("sendto");
	} else if (argc == 4 && !strcmp(argv[1], "unix-send")) {
		int s = connect_unix(argv[2]);
		if (write(s, argv[3], strlen(argv[3])) != (ssize_t)strlen(argv[3]))
			die("send");
	} else if (argc == 4 && !strcmp(argv[1], "pipe-recv")) {
		copy(recv_fd(listen_unix(argv[2])), argv[3]);
	} else if (argc == 5 && !strcmp(argv[1], "fd-send")) {
		int fd = !strcmp(argv[3], "memfd") ? memfd_create("jcs-probe", 0)
						     : open(argv[3], O_CREAT | O_RDWR | O_TRUNC, 0600);
		if (fd < 0)
			die("open");
		if (write(fd, argv[4], strlen(argv[4])) != (ssize_t)strlen(argv[4]) ||
		    lseek(fd, 0, SEEK_SET))
			die("write");
		send_fd(connect_unix(argv[2]), fd);
		close(fd);
	} else if (argc == 4 && !strcmp(argv[1], "pipe-send")) {
		int p[2];
		if (pipe(p))
			die("pipe");
		send_fd(connect_unix(argv[2]), p[0]);
		close(p[0]);
		if (write(p[1], argv[3], strlen(argv[3])) != (ssize_t)strlen(argv[3]))
			die("write the pipe");
	} else if (argc == 5 && !strcmp(argv[1], "file-lend")) {
		int c = listen_unix(argv[2]);
		int fd = open(argv[3], O_RDWR | O_CREAT | O_TRUNC, 0644);
		if (fd < 0)
			die("create the file");
		send_fd(c, fd);
		char byte;
		while (read(c, &byte, 1) > 0)
			;
		if (lseek(fd, 0, SEEK_SET) != 0)
			die("lseek");
		copy(fd, argv[4]);
	} else if (argc == 4 && !strcmp(argv[1], "file-fill")) {
		int fd = recv_fd(connect_unix(argv[2]));
		size_t n = strlen(argv[3]);
		if (pwrite(fd, argv[3], n, 0) != (ssize_t)n)
			die("pwrite");
	} else if (argc == 5 && !strcmp(argv[1], "tcp-sendto-lo")) {
		int s = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[3])) };
		inet_pton(AF_INET, argv[2], &a.sin_addr);
		if (s < 0 || connect(s, (void *)&a, sizeof(a)))
			die("connect");
		struct sockaddr_in lo = { .sin_family = AF_INET, .sin_port = htons(9) };
		inet_pton(AF_INET, "127.0.0.1", &lo.sin_addr);
		size_t n = strlen(argv[4]);
		if (sendto(s, argv[4], n, 0, (void *)&lo, sizeof(lo)) != (ssize_t)n)
			die("sendto");
	} else if (argc == 4 && !strcmp(argv[1], "tcp-serve")) {
		int s = socket(AF_INET, SOCK_STREAM, 0);
		int one = 1;
		setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[2])) };
		if (s < 0 || bind(s, (void *)&a, sizeof(a)))
			die("bind");
		copy(serve_one(s), argv[3]);
	} else if (argc == 4 && !strcmp(argv[1], "mprotect-write")) {
		int fd = open(argv[2], O_RDWR);
		if (fd < 0)
			die("open");
		char *m = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
		if (m == MAP_FAILED)
			die("mmap");
		if (mprotect(m, 4096, PROT_READ | PROT_WRITE))
			die("mprotect");
		memcpy(m, argv[3], strlen(argv[3]));
		if (msync(m, 4096, MS_SYNC))
			die("msync");
		munmap(m, 4096);
	} else if (argc == 4 && (!strcmp(argv[1], "udp-recv") || !strcmp(argv[1], "udp-recv-polled") ||
				 !strcmp(argv[1], "udp-recv-plain"))) {
		int s = socket(AF_INET, SOCK_DGRAM, 0);
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[2])) };
		if (s < 0 || bind(s, (void *)&a, sizeof(a)))
			die("bind");
		/* A lost datagram fails the test after 20 s instead of hanging it. */
		struct timeval tv = { .tv_sec = 20 };
		setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		ready();
		char buf[512];
		struct sockaddr_in from;
		socklen_t fl = sizeof(from);
		/* udp-recv-polled: wait until a datagram is queued (poll), then recv(), which names
		 * no source (the monitor must find it). */
		ssize_t n;
		if (!strcmp(argv[1], "udp-recv-plain")) {
			n = recv(s, buf, sizeof(buf), 0);
		} else if (!strcmp(argv[1], "udp-recv-polled")) {
			struct pollfd p = { .fd = s, .events = POLLIN };
			if (poll(&p, 1, 20000) != 1)
				die("poll");
			n = recv(s, buf, sizeof(buf), 0);
		} else {
			n = recvfrom(s, buf, sizeof(buf), 0, (void *)&from, &fl);
		}
		if (n <= 0)
			die("recv");
		int o = open(argv[3], O_CREAT | O_TRUNC | O_WRONLY, 0644);
		if (o < 0 || write(o, buf, n) != n)
			die("write");
	} else if (argc == 5 && !strcmp(argv[1], "tcp-sendfile")) {
		int s = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[3])) };
		inet_pton(AF_INET, argv[2], &a.sin_addr);
		if (s < 0 || connect(s, (void *)&a, sizeof(a)))
			die("connect");
		int fd = open(argv[4], O_RDONLY);
		off_t size = fd < 0 ? -1 : lseek(fd, 0, SEEK_END);
		if (size <= 0 || sendfile(s, fd, &(off_t){ 0 }, size) != size)
			die("sendfile");
	} else if (argc == 5 && (!strcmp(argv[1], "udp-send") || !strcmp(argv[1], "udp-sendmmsg"))) {
		int s = socket(AF_INET, SOCK_DGRAM, 0);
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[3])) };
		inet_pton(AF_INET, argv[2], &a.sin_addr);
		size_t n = strlen(argv[4]);
		/* Three times, 100 ms apart, then stay 2 s: under load the neighbour entry of a new
		 * veth can take a retransmission (1 s) to resolve, and the datagrams queued meanwhile
		 * die with the VE if it ends first (seen 2 of 8 full runs); the receiver takes the
		 * first that arrives. */
		struct iovec v = { argv[4], n };
		struct mmsghdr m = { .msg_hdr = { .msg_name = &a, .msg_namelen = sizeof(a),
						  .msg_iov = &v, .msg_iovlen = 1 } };
		for (int i = 0; i < 3; i++) {
			if (s < 0)
				die("socket");
			if (!strcmp(argv[1], "udp-sendmmsg")) {
				if (sendmmsg(s, &m, 1, 0) != 1)
					die("sendmmsg");
			} else if (sendto(s, argv[4], n, 0, (void *)&a, sizeof(a)) != (ssize_t)n) {
				die("sendto");
			}
			usleep(100000);
		}
		sleep(2);
	} else if (argc == 4 && !strcmp(argv[1], "flood")) {
		int fd = open(argv[3], O_CREAT | O_WRONLY, 0644);
		if (fd < 0)
			die("open");
		time_t end = time(NULL) + atoi(argv[2]);
		while (time(NULL) < end)
			for (int i = 0; i < 1000; i++)
				if (pwrite(fd, "x", 1, 0) != 1)
					die("pwrite");
	} else if (argc == 4 && !strcmp(argv[1], "quiet")) {
		int fd = open(argv[3], O_CREAT | O_WRONLY, 0644);
		if (fd < 0)
			die("open");
		for (int i = 0; i < atoi(argv[2]); i++) {
			if (pwrite(fd, "q", 1, i) != 1)
				die("pwrite");
			usleep(10000);
		}
	} else if (argc == 4 && !strcmp(argv[1], "xattr-set")) {
		if (setxattr(argv[2], "user.jcs", argv[3], strlen(argv[3]), 0))
			die("setxattr");
	} else if (argc == 4 && !strcmp(argv[1], "xattr-get")) {
		char v[256];
		ssize_t n = getxattr(argv[2], "user.jcs", v, sizeof(v));
		if (n < 0)
			die("getxattr");
		int o = open(argv[3], O_CREAT | O_TRUNC | O_WRONLY, 0644);
		if (o < 0 || write(o, v, n) != n)
			die("write");
	} else if (argc == 6 && !strcmp(argv[1], "map-write-hold")) {
		char *m = map_shared(argv[2]);
		char buf[256] = { 0 };
		ssize_t n = read_source(argv[3], buf, sizeof(buf));
		memcpy(m, buf, n);
		touch(argv[4]);
		wait_for_file(argv[5]);
	} else if (argc == 5 && !strcmp(argv[1], "map-read-wait")) {
		int fd = open(argv[2], O_RDONLY);
		if (fd < 0)
			die("open");
		volatile char *m = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
		if (m == MAP_FAILED)
			die("mmap");
		char first = m[0]; /* the page is in the mapping before anything is written */
		touch(argv[4]);
		for (int i = 0; i < 2000 && m[0] == first; i++)
			usleep(10000);
		if (m[0] == first)
			die("nothing came");
		usleep(10000);
		int o = open(argv[3], O_CREAT | O_TRUNC | O_WRONLY, 0644);
		size_t n = strnlen((const char *)m, 4096);
		if (o < 0 || write(o, (const char *)m, n) != (ssize_t)n)
			die("write");
	} else if (argc == 4 && !strcmp(argv[1], "map-then-copy")) {
		char *m = map_shared(argv[2]);
		char buf[256] = { 0 };
		ssize_t n = read_source(argv[3], buf, sizeof(buf));
		memcpy(m, buf, n);
		if (msync(m, 4096, MS_SYNC))
			die("msync");
		munmap(m, 4096);
	} else if (argc == 4 && (!strcmp(argv[1], "mremap-copy") || !strcmp(argv[1], "mremap-copy-keep"))) {
		char *g = mremap(map_shared(argv[2]), 4096, 8192, MREMAP_MAYMOVE);
		if (g == MAP_FAILED)
			die("mremap");
		char buf[256] = { 0 };
		ssize_t n = read_source(argv[3], buf, sizeof(buf));
		memcpy(g + 4096, buf, n);
		if (msync(g, 8192, MS_SYNC))
			die("msync");
		if (!strcmp(argv[1], "mremap-copy"))
			munmap(g, 8192);
	} else if (argc == 3 && !strcmp(argv[1], "tee-out")) {
		int p[2];
		size_t len = strlen(argv[2]);
		if (pipe(p) || write(p[1], argv[2], len) != (ssize_t)len)
			die("fill the pipe");
		if (tee(p[0], 1, len, 0) != (ssize_t)len)
			die("tee");
		char buf[256];
		if (read(p[0], buf, sizeof(buf)) != (ssize_t)len)
			die("drain");
	} else if (argc == 3 && !strcmp(argv[1], "vmsplice-out")) {
		struct iovec v = { argv[2], strlen(argv[2]) };
		if (vmsplice(1, &v, 1, 0) != (ssize_t)v.iov_len)
			die("vmsplice");
	} else if (argc == 3 && !strcmp(argv[1], "vmsplice-in")) {
		static char buf[4096];
		struct iovec v = { buf, sizeof(buf) };
		ssize_t n = vmsplice(0, &v, 1, 0);
		if (n <= 0)
			die("vmsplice");
		int o = open(argv[2], O_CREAT | O_TRUNC | O_WRONLY, 0644);
		if (o < 0 || write(o, buf, n) != n)
			die("write");
	} else if (argc == 4 && (!strcmp(argv[1], "clone") || !strcmp(argv[1], "clone-range") ||
				 !strcmp(argv[1], "dedupe"))) {
		int in = open(argv[2], O_RDONLY);
		int out = open(argv[3], O_RDWR | O_CREAT, 0644);
		if (in < 0 || out < 0)
			die("open");
		int r;
		if (!strcmp(argv[1], "clone")) {
			r = ioctl(out, FICLONE, in);
		} else if (!strcmp(argv[1], "clone-range")) {
			struct file_clone_range fcr = { .src_fd = in };
			r = ioctl(out, FICLONERANGE, &fcr);
		} else {
			struct file_dedupe_range *d = calloc(1, sizeof(*d) + sizeof(d->info[0]));
			d->src_length = 4096;
			d->dest_count = 1;
			d->info[0].dest_fd = out;
			r = ioctl(in, FIDEDUPERANGE, d);
		}
		if (r) {
			printf("%s\n", strerror(errno));
			return 3;
		}
	} else if (argc == 3 && !strcmp(argv[1], "udp-spray")) {
		int s = socket(AF_INET, SOCK_DGRAM, 0);
		for (int i = 0; i < atoi(argv[2]); i++) {
			struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(1000 + i) };
			inet_pton(AF_INET, "10.99.0.1", &a.sin_addr);
			sendto(s, "x", 1, 0, (struct sockaddr *)&a, sizeof(a));
			usleep(100);
		}
	} else if (argc == 3 && !strcmp(argv[1], "setversion")) {
		int fd = open(argv[2], O_RDONLY);
		long v = 0;
		if (fd < 0 || ioctl(fd, FS_IOC_GETVERSION, &v))
			die("getversion");
		v += 1;
		if (ioctl(fd, FS_IOC_SETVERSION, &v)) {
			printf("%s\n", strerror(errno));
			return 3;
		}
	} else if (argc == 4 && !strcmp(argv[1], "exchange")) {
		if (syscall(SYS_renameat2, AT_FDCWD, argv[2], AT_FDCWD, argv[3], RENAME_EXCHANGE))
			die("renameat2");
	} else if (argc == 3 && !strcmp(argv[1], "mknod-reg")) {
		if (mknod(argv[2], S_IFREG | 0644, 0))
			die("mknod");
	} else if (argc == 3 && !strcmp(argv[1], "openat2-trunc")) {
		struct open_how how = { .flags = O_WRONLY | O_TRUNC };
		int fd = syscall(SYS_openat2, AT_FDCWD, argv[2], &how, sizeof(how));
		if (fd < 0)
			die("openat2");
		close(fd);
	} else {
		fprintf(stderr, "boundary: bad arguments\n");
		return 2;
	}
	return 0;
}
