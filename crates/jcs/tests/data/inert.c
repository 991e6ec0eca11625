/* Files whose data stays inside the VE or belongs to the kernel's views: an eventfd between
 * two threads' worth of calls, /dev/null, /dev/zero, /dev/urandom, /proc/self/status,
 * /proc/version, /sys/devices/system/cpu/online. Prints how many calls succeeded. Built static by
 * the test that runs it in a VE. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <unistd.h>

static int ok;

static void read_some(const char *path)
{
	char buf[256];
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return;
	if (read(fd, buf, sizeof buf) > 0)
		ok++;
	close(fd);
}

int main(void)
{
	uint64_t v = 1;
	int e = eventfd(0, 0);
	if (e >= 0 && write(e, &v, 8) == 8 && read(e, &v, 8) == 8)
		ok++;
	int n = open("/dev/null", O_WRONLY);
	if (n >= 0 && write(n, "gone", 4) == 4)
		ok++;
	close(n);
	read_some("/dev/zero");
	read_some("/dev/urandom");
	read_some("/proc/self/status");
	read_some("/proc/version");
	read_some("/sys/devices/system/cpu/online");
	printf("%d\n", ok);
	return ok == 7 ? 0 : 1;
}
