/* A loop of one kind of system call, timed from inside: `syscall-loop write N FILE` writes one
 * byte N times to FILE (opened once, O_TRUNC); `syscall-loop openclose N FILE` opens and
 * closes FILE N times; `syscall-loop create N DIR` creates N new files in DIR (each open creates
 * one: a new variable and a name), closing each; `syscall-loop getppid N -` calls getppid N times (a call JCS counts but
 * does not record: the cost of the filter alone). Prints the nanoseconds per iteration. Built static by bench/syscall-cost.sh
 * so that it runs unchanged inside a VE of any template. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

static double now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: syscall-loop write|openclose|create|getppid N FILE\n");
		return 2;
	}
	long n = atol(argv[2]);
	const char *file = argv[3];
	double t0, t1;
	if (strcmp(argv[1], "write") == 0) {
		int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0) {
			perror(file);
			return 1;
		}
		t0 = now_ns();
		for (long i = 0; i < n; i++)
			if (write(fd, "x", 1) != 1) {
				perror("write");
				return 1;
			}
		t1 = now_ns();
		close(fd);
	} else if (strcmp(argv[1], "openclose") == 0) {
		int fd = open(file, O_WRONLY | O_CREAT, 0644);
		if (fd < 0) {
			perror(file);
			return 1;
		}
		close(fd);
		t0 = now_ns();
		for (long i = 0; i < n; i++) {
			fd = open(file, O_RDONLY);
			if (fd < 0) {
				perror(file);
				return 1;
			}
			close(fd);
		}
		t1 = now_ns();
	} else if (strcmp(argv[1], "create") == 0) {
		/* FILE is a directory (made here): each iteration creates a new file in it and
		 * closes it (a new variable and a name each time). */
		char name[4096];
		mkdir(file, 0755);
		t0 = now_ns();
		for (long i = 0; i < n; i++) {
			snprintf(name, sizeof(name), "%s/f%ld", file, i);
			int fd = open(name, O_WRONLY | O_CREAT | O_EXCL, 0644);
			if (fd < 0) {
				perror(name);
				return 1;
			}
			close(fd);
		}
		t1 = now_ns();
	} else if (strcmp(argv[1], "getppid") == 0) {
		(void)file;
		t0 = now_ns();
		for (long i = 0; i < n; i++)
			getppid();
		t1 = now_ns();
	} else {
		fprintf(stderr, "unknown loop %s\n", argv[1]);
		return 2;
	}
	printf("%.1f\n", (t1 - t0) / n);
	return 0;
}
