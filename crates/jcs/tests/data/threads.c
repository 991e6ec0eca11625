/* Three threads, each appending one line to /data/threads.out. Built static (with -pthread)
 * by the test that runs it in a VE. */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

static int fd;

static void *work(void *arg)
{
	(void)arg;
	return write(fd, "thread\n", 7) == 7 ? NULL : (void *)1;
}

int main(void)
{
	pthread_t t[3];
	fd = open("/data/threads.out", O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (fd < 0)
		return 1;
	for (int i = 0; i < 3; i++)
		pthread_create(&t[i], NULL, work, NULL);
	int bad = 0;
	for (int i = 0; i < 3; i++) {
		void *r;
		pthread_join(t[i], &r);
		bad += r != NULL;
	}
	printf("%d\n", 3 - bad);
	return bad;
}
