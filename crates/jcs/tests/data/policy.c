/* Tries what a policy may deny (tests/root_policy.rs), on the VE's own loopback, each attempt
 * next to one that the policy allows (the control: the network really works):
 *   tcp PORT_DENIED PORT_ALLOWED  listen on both 127.0.0.1 ports, connect to each; prints
 *                                 "denied=<errno name> allowed=<errno name or ok>"
 *   udp PORT_DENIED PORT_ALLOWED  bind UDP sockets on both, send one datagram to each; prints
 *                                 "denied=... allowed=..." (allowed=ok: the datagram arrived)
 *   flood PORT N                  N connects to 127.0.0.1:PORT from one socket; prints
 *                                 "eperm=<count>"
 *   budget ADDR PORT N SIZE       N datagrams of SIZE bytes to ADDR:PORT (sendto), then one
 *                                 write on a UDP socket connected before them, one TCP connect to
 *                                 ADDR:PORT, and one datagram to the VE's own loopback; prints
 *                                 "sent=<ok sends> first_eperm=<index or -1> write=... connect=...
 *                                 loopback=..."
 *   stream ADDR PORT N SIZE       connect TCP to ADDR:PORT, write "before\n", spend the
 *                                 budget with N datagrams of SIZE bytes to ADDR:PORT+1, write
 *                                 "after\n"; prints "before=... after=..." (what write said)
 * Exit status 0 when it could try, 1 otherwise. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static struct sockaddr_in lo(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return a;
}

static const char *res(int r)
{
	if (r >= 0)
		return "ok";
	return errno == EPERM ? "EPERM" : strerror(errno);
}

static int listener(int port)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = lo(port);
	int one = 1;
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(s, (void *)&a, sizeof(a)) || listen(s, 4)) {
		perror("listen");
		exit(1);
	}
	return s;
}

static int try_connect(int port)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = lo(port);
	int r = connect(s, (void *)&a, sizeof(a));
	close(s);
	return r;
}

static int try_udp(int port)
{
	int r = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in a = lo(port);
	if (bind(r, (void *)&a, sizeof(a))) {
		perror("bind udp");
		exit(1);
	}
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	if (sendto(s, "x", 1, 0, (void *)&a, sizeof(a)) < 0)
		return -1;
	char b[4];
	struct timeval tv = { .tv_sec = 2 };
	setsockopt(r, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return recv(r, b, sizeof(b), 0) == 1 ? 0 : -1;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "tcp")) {
		listener(atoi(argv[2]));
		listener(atoi(argv[3]));
		int d = try_connect(atoi(argv[2]));
		const char *dn = res(d);
		int a = try_connect(atoi(argv[3]));
		printf("denied=%s allowed=%s\n", dn, res(a));
		return 0;
	}
	if (argc == 4 && !strcmp(argv[1], "udp")) {
		int d = try_udp(atoi(argv[2]));
		const char *dn = res(d);
		int a = try_udp(atoi(argv[3]));
		printf("denied=%s allowed=%s\n", dn, res(a));
		return 0;
	}
	if (argc == 4 && !strcmp(argv[1], "flood")) {
		long n = atol(argv[3]), eperm = 0;
		int s = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in a = lo(atoi(argv[2]));
		for (long i = 0; i < n; i++)
			if (connect(s, (void *)&a, sizeof(a)) < 0 && errno == EPERM)
				eperm++;
		printf("eperm=%ld\n", eperm);
		return 0;
	}
	if (argc == 6 && !strcmp(argv[1], "budget")) {
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[3])) };
		inet_pton(AF_INET, argv[2], &a.sin_addr);
		long n = atol(argv[4]), size = atol(argv[5]), ok = 0, first = -1;
		char *buf = calloc(1, size);
		int s = socket(AF_INET, SOCK_DGRAM, 0);
		int c = socket(AF_INET, SOCK_DGRAM, 0);
		connect(c, (void *)&a, sizeof(a)); /* before the budget runs out */
		for (long i = 0; i < n; i++) {
			if (sendto(s, buf, size, 0, (void *)&a, sizeof(a)) == size)
				ok++;
			else if (errno == EPERM && first < 0)
				first = i;
		}
		const char *w = res(write(c, buf, size) == size ? 0 : -1);
		int t = socket(AF_INET, SOCK_STREAM, 0);
		struct timeval tv = { .tv_sec = 3 };
		setsockopt(t, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		const char *tc = res(connect(t, (void *)&a, sizeof(a)));
		int l = try_udp(atoi(argv[3]) + 1);
		printf("sent=%ld first_eperm=%ld write=%s connect=%s loopback=%s\n", ok, first, w,
		       tc, res(l));
		return 0;
	}
	if (argc == 6 && !strcmp(argv[1], "stream")) {
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[3])) };
		inet_pton(AF_INET, argv[2], &a.sin_addr);
		int t = socket(AF_INET, SOCK_STREAM, 0);
		if (connect(t, (void *)&a, sizeof(a))) {
			perror("connect");
			return 1;
		}
		const char *b = res(write(t, "before\n", 7) == 7 ? 0 : -1);
		usleep(300000);
		long n = atol(argv[4]), size = atol(argv[5]);
		char *buf = calloc(1, size);
		int s = socket(AF_INET, SOCK_DGRAM, 0);
		a.sin_port = htons(atoi(argv[3]) + 1);
		for (long i = 0; i < n; i++)
			sendto(s, buf, size, 0, (void *)&a, sizeof(a));
		const char *f = res(write(t, "after\n", 6) == 6 ? 0 : -1);
		printf("before=%s after=%s\n", b, f);
		return 0;
	}
	fprintf(stderr, "usage: policy tcp|udp PORT_DENIED PORT_ALLOWED | flood PORT N | "
			"budget ADDR PORT N SIZE\n");
	return 1;
}
