/* A socketpair between a parent and its child: Unix-socket traffic that stays inside the VE.
 * Built static by the test that runs it in a VE. */
#include <stdio.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void)
{
	int sv[2];
	char buf[16];
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
		perror("socketpair");
		return 1;
	}
	pid_t p = fork();
	if (p == 0) {
		close(sv[0]);
		return write(sv[1], "hello", 5) == 5 ? 0 : 1;
	}
	close(sv[1]);
	ssize_t n = read(sv[0], buf, sizeof buf);
	int st = 0;
	waitpid(p, &st, 0);
	printf("%zd\n", n);
	return n == 5 && st == 0 ? 0 : 1;
}
