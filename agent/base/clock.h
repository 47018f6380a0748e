/* clock.h — the two clocks the agent reads: wall time for what is stored and
 * shown (last success, snapshot times), monotonic time for durations. */
#ifndef IA_CLOCK_H
#define IA_CLOCK_H
#include <stdint.h>

int64_t clock_wall_ms(void);   /* unix milliseconds */
int64_t clock_mono_ms(void);   /* milliseconds since an arbitrary start */
double clock_mono_s(void);     /* seconds since an arbitrary start */

#endif
