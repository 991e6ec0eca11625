/* Calls that would have waited (EAGAIN): accept on a non-blocking listening socket and
 * recvfrom on a non-blocking UDP socket, both on 0.0.0.0 (not loopback). Prints how many
 * returned EAGAIN. Built static by the test that runs it in a VE. */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>

int main(void)
{
	int n = 0;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(7411)};
	int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) != 0 || listen(l, 1) != 0) {
		perror("listen");
		return 1;
	}
	if (accept(l, NULL, NULL) < 0 && errno == EAGAIN)
		n++;
	int u = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	a.sin_port = htons(7412);
	char buf[8];
	if (u >= 0 && bind(u, (struct sockaddr *)&a, sizeof a) == 0 &&
	    recvfrom(u, buf, sizeof buf, 0, NULL, NULL) < 0 && errno == EAGAIN)
		n++;
	printf("%d\n", n);
	return n == 2 ? 0 : 1;
}
