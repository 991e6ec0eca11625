/* Races and detours around the pre-image supervisor (tests/root_preimages.rs):
 *   race DIR N THREADS   THREADS threads each open DIR/f0..f(N-1) for writing (O_TRUNC), each
 *                        in its own order, and write their number: the first write of every
 *                        file races with the others
 *   flip A B N           one thread flips a path buffer between A and B while the main thread
 *                        opens it N times for writing (O_TRUNC) and writes "flipped"
 *   magic FILE           opens FILE read-only, then /proc/self/fd/N for writing (O_TRUNC), and
 *                        writes "magic"
 *   vfork FILE           a vfork child opens FILE for writing (O_TRUNC), writes "vfork", exits
 *   fdattrs FILE         opens FILE read-only, then fchmod 0600, fchown 1000:1000 and futimens
 *                        (now) through that descriptor
 *   meta FILE FIFO       setxattr user.k=v2 and removexattr user.gone on FILE (by path, by
 *                        fd), utimes (legacy) to 1000000000 s, mknod FIFO (a named pipe); then
 *                        tries setxattr trusted.t and mknod FIFO.dev (a character device):
 *                        prints "trusted=<errno name or ok> dev=<...>"
 *   metaat FILE          setxattrat user.k=v3 and removexattrat user.gone on FILE (Linux
 *                        6.13's *xattrat calls, by number): prints "ok", or the errno name
 *   exchange A B         renameat2(A, B, RENAME_EXCHANGE): the two names swap files
 *   closerange FILE TEXT creates FILE, writes TEXT, ends every descriptor from 3 on with
 *                        close_range, then prints "FILE=there" or "FILE=gone" (before it exits)
 *   sockets DIR          with umask 027: binds unix sockets DIR/s1 (listening) and s2 in DIR/sub
 *                        (a path relative to the working directory), an abstract one, a TCP one
 *                        on 127.0.0.1; sends "hi" through DIR/s1; prints what it received, s1's
 *                        mode in octal and "tcp=<port bound: 1|0>"
 *   bindedge DIR         in DIR: a bind whose length is past a sockaddr_un, and one of a name
 *                        that fills sun_path (108 bytes, no NUL): prints "over=<errno name or
 *                        ok> full=<...>"
 *   bindport PORT        a TCP bind on 127.0.0.1:PORT: prints "bind=<errno name or ok>"
 *   binds DIR            a TCP bind on 127.0.0.1 and a unix one to DIR/s: prints "tcp=<errno
 *                        name or ok> unix=<...>"
 *   bindflip DIR N       N unix sockets each bound to DIR/bN while a thread flips the address's
 *                        first byte between '/' (a file) and NUL (an abstract name); on past N
 *                        until one bind made a file
 * Exit status 0 when it ran. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/xattr.h>
#include <errno.h>
#include <sys/wait.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>

static const char *dir;
static int n;

static void *racer(void *arg)
{
	long id = (long)arg;
	char p[4096], b[32];
	for (int k = 0; k < n; k++) {
		int i = (k * 7 + id * 13) % n;
		snprintf(p, sizeof(p), "%s/f%d", dir, i);
		int fd = open(p, O_WRONLY | O_TRUNC);
		if (fd < 0) {
			perror(p);
			exit(1);
		}
		int len = snprintf(b, sizeof(b), "t%ld\n", id);
		if (write(fd, b, len) != len)
			exit(1);
		close(fd);
	}
	return 0;
}

static char flip_buf[4096];
static const char *flip_a, *flip_b;
static volatile int flipping = 1;

static void *flipper(void *arg)
{
	(void)arg;
	while (flipping) {
		strcpy(flip_buf, flip_a);
		strcpy(flip_buf, flip_b);
	}
	return 0;
}

static struct sockaddr_un bind_addr;

static volatile int flipper_started;

static void *bind_flipper(void *arg)
{
	(void)arg;
	flipper_started = 1;
	while (flipping) {
		*(volatile char *)&bind_addr.sun_path[0] = '/';
		*(volatile char *)&bind_addr.sun_path[0] = 0;
	}
	return 0;
}

static int unix_bound(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a))) {
		perror(path);
		exit(1);
	}
	return s;
}

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], "race")) {
		dir = argv[2];
		n = atoi(argv[3]);
		int t = atoi(argv[4]);
		pthread_t th[64];
		for (long i = 0; i < t && i < 64; i++)
			pthread_create(&th[i], 0, racer, (void *)i);
		for (int i = 0; i < t && i < 64; i++)
			pthread_join(th[i], 0);
		return 0;
	}
	if (argc == 5 && !strcmp(argv[1], "flip")) {
		flip_a = argv[2];
		flip_b = argv[3];
		strcpy(flip_buf, flip_a);
		pthread_t th;
		pthread_create(&th, 0, flipper, 0);
		for (int i = 0; i < atoi(argv[4]); i++) {
			int fd = open(flip_buf, O_WRONLY | O_TRUNC);
			if (fd >= 0) {
				if (write(fd, "flipped\n", 8) != 8)
					return 1;
				close(fd);
			}
		}
		flipping = 0;
		pthread_join(th, 0);
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "magic")) {
		int r = open(argv[2], O_RDONLY);
		char p[64];
		snprintf(p, sizeof(p), "/proc/self/fd/%d", r);
		int fd = open(p, O_WRONLY | O_TRUNC);
		if (r < 0 || fd < 0) {
			perror(p);
			return 1;
		}
		return write(fd, "magic\n", 6) == 6 ? 0 : 1;
	}
	if (argc == 3 && !strcmp(argv[1], "vfork")) {
		pid_t p = vfork();
		if (p == 0) {
			int fd = open(argv[2], O_WRONLY | O_TRUNC);
			_exit(fd >= 0 && write(fd, "vfork\n", 6) == 6 ? 0 : 1);
		}
		int st;
		waitpid(p, &st, 0);
		return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
	}
	if (argc == 3 && !strcmp(argv[1], "fdattrs")) {
		int fd = open(argv[2], O_RDONLY);
		if (fd < 0 || fchmod(fd, 0600) || fchown(fd, 1000, 1000) || futimens(fd, 0)) {
			perror(argv[2]);
			return 1;
		}
		return 0;
	}
	if (argc == 4 && !strcmp(argv[1], "closerange")) {
		int fd = open(argv[2], O_CREAT | O_WRONLY | O_TRUNC, 0644);
		if (fd < 3 || write(fd, argv[3], strlen(argv[3])) < 0) {
			perror(argv[2]);
			return 1;
		}
		if (syscall(SYS_close_range, 3, ~0U, 0)) {
			perror("close_range");
			return 1;
		}
		printf("%s=%s\n", argv[2], access(argv[2], F_OK) ? "gone" : "there");
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "sockets")) {
		char p[200];
		umask(027);
		snprintf(p, sizeof(p), "%s/s1", argv[2]);
		int s1 = unix_bound(p);
		snprintf(p, sizeof(p), "%s/sub", argv[2]);
		if (listen(s1, 1) || chdir(p)) {
			perror("listen");
			return 1;
		}
		unix_bound("s2");
		struct sockaddr_un ab = { .sun_family = AF_UNIX, .sun_path = "\0jcs-abstract" };
		int a = socket(AF_UNIX, SOCK_STREAM, 0);
		struct sockaddr_in in = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
		socklen_t len = sizeof(in);
		int t = socket(AF_INET, SOCK_STREAM, 0);
		if (bind(a, (struct sockaddr *)&ab, sizeof(sa_family_t) + 14) ||
		    bind(t, (struct sockaddr *)&in, sizeof(in)) ||
		    getsockname(t, (struct sockaddr *)&in, &len)) {
			perror("bind");
			return 1;
		}
		struct sockaddr_un to = { .sun_family = AF_UNIX };
		snprintf(to.sun_path, sizeof(to.sun_path), "%s/s1", argv[2]);
		int c = socket(AF_UNIX, SOCK_STREAM, 0);
		char got[3] = "";
		struct stat st;
		snprintf(p, sizeof(p), "%s/s1", argv[2]);
		if (connect(c, (struct sockaddr *)&to, sizeof(to)) || write(c, "hi", 2) != 2 ||
		    read(accept(s1, 0, 0), got, 2) != 2 || stat(p, &st)) {
			perror("connect");
			return 1;
		}
		printf("%s %o tcp=%d\n", got, st.st_mode, in.sin_port != 0);
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "bindport")) {
		struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[2])),
					  .sin_addr.s_addr = htonl(0x7f000001) };
		int r = bind(socket(AF_INET, SOCK_STREAM, 0), (struct sockaddr *)&in, sizeof(in));
		printf("bind=%s\n", r ? strerrorname_np(errno) : "ok");
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "binds")) {
		struct sockaddr_in in = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
		int t = bind(socket(AF_INET, SOCK_STREAM, 0), (struct sockaddr *)&in, sizeof(in));
		int te = errno;
		struct sockaddr_un un = { .sun_family = AF_UNIX };
		snprintf(un.sun_path, sizeof(un.sun_path), "%s/s", argv[2]);
		int u = bind(socket(AF_UNIX, SOCK_STREAM, 0), (struct sockaddr *)&un, sizeof(un));
		int ue = errno;
		printf("tcp=%s unix=%s\n", t ? strerrorname_np(te) : "ok", u ? strerrorname_np(ue) : "ok");
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "bindedge")) {
		if (chdir(argv[2])) {
			perror("chdir");
			return 1;
		}
		struct {
			struct sockaddr_un a;
			char more[8];
		} big = { .a = { .sun_family = AF_UNIX, .sun_path = "over" } };
		int s = socket(AF_UNIX, SOCK_STREAM, 0);
		int o = bind(s, (struct sockaddr *)&big, sizeof(big));
		int oe = errno;
		struct sockaddr_un full = { .sun_family = AF_UNIX };
		memset(full.sun_path, 'f', sizeof(full.sun_path));
		int t = socket(AF_UNIX, SOCK_STREAM, 0);
		int f = bind(t, (struct sockaddr *)&full, sizeof(full));
		int fe = errno;
		printf("over=%s full=%s\n", o ? strerrorname_np(oe) : "ok", f ? strerrorname_np(fe) : "ok");
		return 0;
	}
	if (argc == 4 && !strcmp(argv[1], "bindflip")) {
		pthread_t th;
		int count = atoi(argv[3]);
		bind_addr.sun_family = AF_UNIX;
		pthread_create(&th, 0, bind_flipper, 0);
		while (!flipper_started)
			;
		/* N binds, and on (up to 200,000) until one of them made a file. */
		int files = 0;
		for (int i = 0; (i < count || !files) && i < 200000; i++) {
			int s = socket(AF_UNIX, SOCK_STREAM, 0);
			/* The name after the first byte, which the other thread flips. */
			snprintf(bind_addr.sun_path + 1, sizeof(bind_addr.sun_path) - 1, "%s/b%d",
				 argv[2] + 1, i);
			struct sockaddr_un got;
			socklen_t len = sizeof(got);
			if (!bind(s, (struct sockaddr *)&bind_addr, sizeof(bind_addr)) &&
			    !getsockname(s, (struct sockaddr *)&got, &len) && len > 2 && got.sun_path[0])
				files++;
			close(s);
		}
		flipping = 0;
		pthread_join(th, 0);
		return 0;
	}
	if (argc == 4 && !strcmp(argv[1], "exchange")) {
		if (renameat2(AT_FDCWD, argv[2], AT_FDCWD, argv[3], RENAME_EXCHANGE)) {
			perror("renameat2");
			return 1;
		}
		return 0;
	}
	if (argc == 4 && !strcmp(argv[1], "meta")) {
		int fd = open(argv[2], O_RDONLY);
		struct timeval tv[2] = { { .tv_sec = 1000000000 }, { .tv_sec = 1000000000 } };
		if (fd < 0 || setxattr(argv[2], "user.k", "v2", 2, 0) ||
		    fremovexattr(fd, "user.gone") || utimes(argv[2], tv) ||
		    mknod(argv[3], S_IFIFO | 0644, 0)) {
			perror(argv[2]);
			return 1;
		}
		char dev[4096];
		snprintf(dev, sizeof(dev), "%s.dev", argv[3]);
		int t = setxattr(argv[2], "trusted.t", "x", 1, 0);
		int te = errno;
		int d = mknod(dev, S_IFCHR | 0600, makedev(1, 3));
		int de = errno;
		printf("trusted=%s dev=%s\n", t ? strerrorname_np(te) : "ok", d ? strerrorname_np(de) : "ok");
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "metaat")) {
		struct {
			unsigned long long value;
			unsigned size, flags;
		} x = { (unsigned long)"v3", 2, 0 };
		if (syscall(463, AT_FDCWD, argv[2], 0, "user.k", &x, sizeof(x)) ||
		    syscall(466, AT_FDCWD, argv[2], 0, "user.gone")) {
			printf("%s\n", strerrorname_np(errno));
			return 0;
		}
		printf("ok\n");
		return 0;
	}
	fprintf(stderr, "usage: preimage race DIR N THREADS | flip A B N | magic FILE | vfork FILE\n");
	return 2;
}
