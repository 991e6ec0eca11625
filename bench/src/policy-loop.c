/* Loops for bench/policy-cost.sh, timed from inside; prints nanoseconds per iteration.
 *   policy-loop connect N PORT   connect() a UDP socket to 127.0.0.1:PORT N times (each runs the
 *                                cgroup connect4 hook; a denied one fails with EPERM)
 *   policy-loop openclose N FILE open(O_RDONLY) and close FILE N times
 *   policy-loop exec N PROG      fork, execve PROG (with the argument "noop"), wait: N times
 *   policy-loop getppid N -      getppid N times
 *   policy-loop wopen N FILE     open(O_WRONLY) and close FILE N times (a write-intent open:
 *                                the pre-image supervisor answers it)
 *   policy-loop firstwrite N DIR open DIR/f0..f(N-1) for writing once each (each open keeps
 *                                a pre-image under the supervisor)
 *   policy-loop noop             exit 0 (what `exec` runs)
 * Built static so that it runs in a VE of any template. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "noop"))
		return 0;
	if (argc != 4) {
		fprintf(stderr, "usage: policy-loop connect|openclose|exec|getppid N ARG\n");
		return 2;
	}
	long n = atol(argv[2]);
	double t0 = now_ns();
	if (!strcmp(argv[1], "connect")) {
		int s = socket(AF_INET, SOCK_DGRAM, 0);
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[3])) };
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		t0 = now_ns();
		for (long i = 0; i < n; i++)
			if (connect(s, (void *)&a, sizeof(a)) && errno != EPERM) {
				perror("connect");
				return 1;
			}
	} else if (!strcmp(argv[1], "openclose")) {
		for (long i = 0; i < n; i++) {
			int fd = open(argv[3], O_RDONLY);
			if (fd < 0) {
				perror(argv[3]);
				return 1;
			}
			close(fd);
		}
	} else if (!strcmp(argv[1], "exec")) {
		for (long i = 0; i < n; i++) {
			pid_t p = fork();
			if (p == 0) {
				execl(argv[3], argv[3], "noop", (char *)0);
				_exit(127);
			}
			int st;
			waitpid(p, &st, 0);
			if (!WIFEXITED(st) || WEXITSTATUS(st)) {
				fprintf(stderr, "exec %s failed\n", argv[3]);
				return 1;
			}
		}
	} else if (!strcmp(argv[1], "wopen") || !strcmp(argv[1], "firstwrite")) {
		int first = !strcmp(argv[1], "firstwrite");
		char p[4096];
		for (long i = 0; i < n; i++) {
			if (first)
				snprintf(p, sizeof(p), "%s/f%ld", argv[3], i);
			int fd = open(first ? p : argv[3], O_WRONLY);
			if (fd < 0) {
				perror(first ? p : argv[3]);
				return 1;
			}
			close(fd);
		}
	} else if (!strcmp(argv[1], "getppid")) {
		for (long i = 0; i < n; i++)
			getppid();
	} else {
		return 2;
	}
	printf("%.0f\n", (now_ns() - t0) / n);
	return 0;
}
