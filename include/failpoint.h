/* failpoint: for crash tests. When the environment variable
 * TIMEBANKD_FAILPOINT names a step, the daemon exits there at once, as if
 * killed: nothing is flushed, nothing is cleaned up. Unset, it costs one
 * comparison. Steps: reserve_before, reserve_after (recording a cross-bank
 * exchange), send_before, send_after (channel messages), apply_before,
 * apply_after (applying what a peer sent). */
#ifndef TB_FAILPOINT_H
#define TB_FAILPOINT_H

#define FAILPOINT_EXIT 86

void failpoint(const char *step);

#endif
