#include "failpoint.h"

#ifdef TB_FAILPOINTS

#include "log.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void failpoint(const char *step)
{
	static const char *armed;
	static int read;

	if (!read) {
		armed = getenv("TIMEBANKD_FAILPOINT");
		read = 1;
	}
	if (armed != NULL && strcmp(armed, step) == 0) {
		log_warn("failpoint %s: exiting now", step);
		_exit(FAILPOINT_EXIT);
	}
}

#endif
