/* bench/daemon-memory.sh: N connects, each to an endpoint of its own (10.99.0.0/16, no route:
 * each fails at once, toward its address), starting at index BASE.
 *   connect-spray N BASE */
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>
int main(int argc, char **argv) {
	int n = atoi(argv[1]), base = atoi(argv[2]);
	int s = socket(AF_INET, SOCK_STREAM, 0);
	for (int i = 0; i < n; i++) {
		int k = base + i;
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(1 + k % 60000) };
		a.sin_addr.s_addr = htonl(0x0a630000 | (k / 60000));
		connect(s, (struct sockaddr *)&a, sizeof(a));
		if (i % 10 == 0) usleep(200);
	}
	printf("%d connects\n", n);
	return 0;
}
