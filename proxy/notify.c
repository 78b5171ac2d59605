/* notify: sd_notify messages for systemd. Only the control thread calls
 * these, so the state is kept in plain statics. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "notify.h"

/* STATUS= is one line: text past a line end would be read as more
 * assignments by systemd. */
static void one_line(char *dst, size_t len, const char *src)
{
	snprintf(dst, len, "%s", src ? src : "");
	dst[strcspn(dst, "\r\n")] = '\0';
}

int notify_ready(const char *status)
{
	char line[256], msg[400];
	one_line(line, sizeof line, status);
	snprintf(msg, sizeof msg, "READY=1\nSTATUS=%s\nMAINPID=%ld", line, (long)getpid());
	return sd_notify(0, msg); /* 0 without NOTIFY_SOCKET */
}

int notify_reloading(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
		return -errno;
	char msg[160];
	snprintf(msg, sizeof msg, "RELOADING=1\nSTATUS=reloading the config\nMONOTONIC_USEC=%llu",
		 (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000u);
	return sd_notify(0, msg);
}

int notify_stopping(const char *status)
{
	char line[256], msg[300];
	one_line(line, sizeof line, status);
	snprintf(msg, sizeof msg, "STOPPING=1\nSTATUS=%s", line);
	return sd_notify(0, msg);
}
