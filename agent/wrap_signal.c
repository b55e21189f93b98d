/* wrap_signal.c — sigaction and signal, so that the agent knows when a thread is inside
 * one of the program's signal handlers.
 *
 * A handler can interrupt its thread anywhere: inside malloc, or holding one of the
 * agent's locks. A write() from it is legal (write is async-signal-safe) but must not
 * reach the parser, which allocates, nor any lock. So every handler the program installs
 * is run through a trampoline that marks the thread as in a handler (signal_frame, an
 * initial-exec TLS pointer: one load on the tracked path, nothing on the untracked one)
 * around the program's own function. Everything else about the action (mask, SA_RESTART,
 * SA_ONSTACK, SA_NODEFER, SA_RESETHAND) goes to the kernel as the program gave it, and
 * sigaction and signal report the program's handler back as it set it. SIG_IGN and
 * SIG_DFL are installed as they are. Handlers installed by raw system call, sigset or
 * sysv_signal are not seen (docs/agent.md).
 */
#include <signal.h>

#include "real.h"
#include "signals.h"

__thread void *signal_frame __attribute__((tls_model("initial-exec")));

/* What the program asked for, per signal, while the kernel runs the trampoline for it.
 * Written by sigaction (itself async-signal-safe, so no lock); the trampoline reads one
 * entry's handler and flags once. */
static struct sigaction program_actions[_NSIG];

static void trampoline(int sig, siginfo_t *info, void *context)
{
    void *outer = signal_frame;
    signal_frame = __builtin_frame_address(0);
    int flags = __atomic_load_n(&program_actions[sig].sa_flags, __ATOMIC_ACQUIRE);
    if (flags & SA_SIGINFO) {
        void (*handler)(int, siginfo_t *, void *) =
            __atomic_load_n(&program_actions[sig].sa_sigaction, __ATOMIC_RELAXED);
        handler(sig, info, context);
    } else {
        void (*handler)(int) = __atomic_load_n(&program_actions[sig].sa_handler, __ATOMIC_RELAXED);
        handler(sig);
    }
    signal_frame = outer;
}

/* sa_handler and sa_sigaction share their storage: SIG_IGN and SIG_DFL read the same
 * through either. */
static bool is_function(const struct sigaction *act)
{
    return act->sa_handler != SIG_IGN && act->sa_handler != SIG_DFL;
}

EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    if (sig <= 0 || sig >= _NSIG) return REAL(sigaction)(sig, act, old);
    struct sigaction before = program_actions[sig], given, kernel_old;
    const struct sigaction *install = act;
    if (act && is_function(act)) {
        given = *act;
        given.sa_sigaction = trampoline;
        given.sa_flags |= SA_SIGINFO;
        install = &given;
        /* Stored first: a signal that arrives as soon as the kernel has the trampoline
         * finds the handler it is meant to run. */
        program_actions[sig] = *act;
        __atomic_thread_fence(__ATOMIC_RELEASE);
    }
    int r = REAL(sigaction)(sig, install, &kernel_old);
    if (r != 0) {
        program_actions[sig] = before;
        return r;
    }
    if (old) *old = kernel_old.sa_sigaction == trampoline ? before : kernel_old;
    return 0;
}

/* glibc's signal(): BSD semantics, the signal blocked during its handler, SA_RESTART. */
EXPORT sighandler_t signal(int sig, sighandler_t handler)
{
    struct sigaction act = {.sa_handler = handler, .sa_flags = SA_RESTART}, old;
    sigemptyset(&act.sa_mask);
    if (sig > 0 && sig < _NSIG) sigaddset(&act.sa_mask, sig);
    if (sigaction(sig, &act, &old) != 0) return SIG_ERR;
    return old.sa_handler;
}
