/* signals.h — whether this thread is running one of the program's signal handlers.
 *
 * Set by the trampoline in wrap_signal.c around every handler the program installs. A
 * handler that leaves by siglongjmp never clears it, so the frame it ran in is kept, and
 * a thread whose stack pointer is above it (an older frame: the jump landed there) is
 * not in a handler any more. Only a handler on an alternate stack that lies above the
 * thread's own stack, left by siglongjmp, can leave a thread marked: its tracked writes
 * are then counted by re-reading the file at close, which is still right.
 */
#ifndef CKMON_SIGNALS_H
#define CKMON_SIGNALS_H

#include <stdbool.h>

extern __thread void *signal_frame __attribute__((tls_model("initial-exec")));

static inline __attribute__((always_inline)) bool in_signal_handler(void)
{
    void *frame = signal_frame;
    if (__builtin_expect(frame == 0, 1)) return false;
    if ((char *)__builtin_frame_address(0) < (char *)frame) return true;
    signal_frame = 0; /* left by a jump */
    return false;
}

#endif
