/* failpoint: for crash tests, in test builds only (make FAILPOINTS=1, which
 * make check uses); elsewhere a failpoint is nothing at all. When the
 * environment variable TIMEBANKD_FAILPOINT names a step, the daemon exits
 * there at once, as if killed: nothing is flushed, nothing is cleaned up.
 * Steps: reserve_before, reserve_after (recording a cross-bank exchange),
 * send_before, send_after (channel messages), apply_before, apply_after
 * (applying what a peer sent), recover_before, recover_after (holding our
 * messages a peer gave back after a restore).
 * Layer: core (src/core/); includes nothing. */
#ifndef TB_FAILPOINT_H
#define TB_FAILPOINT_H

#define FAILPOINT_EXIT 86

#ifdef TB_FAILPOINTS
void failpoint(const char *step);
#else
static inline void failpoint(const char *step)
{
	(void)step;
}
#endif

#endif
