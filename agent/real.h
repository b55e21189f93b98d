/* real.h — the C library's own versions of the functions the agent wraps.
 *
 * Every wrapper ends in the real function, found once with dlsym(RTLD_NEXT) for the
 * whole table (never per call, and never from inside another wrapper's dlsym), so the
 * agent cannot recurse into itself and adds one well-predicted load per call. The
 * thread-local `agent_busy` flag marks a thread that is inside the agent: anything it
 * writes (or a signal handler interrupting it writes) goes straight to the real call.
 */
#ifndef CKMON_REAL_H
#define CKMON_REAL_H

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h> /* _Exit, wrapped in REAL_FUNCTIONS */
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

/* Fortified and internal entry points the headers do not declare. */
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
int __openat_2(int dirfd, const char *path, int flags);
int __openat64_2(int dirfd, const char *path, int flags);
int __fprintf_chk(FILE *stream, int flag, const char *format, ...);
int __vfprintf_chk(FILE *stream, int flag, const char *format, va_list ap);

#define REAL_FUNCTIONS(X)                                                                          \
    X(open)                                                                                        \
    X(open64)                                                                                      \
    X(__open_2) X(__open64_2) X(openat) X(openat64) X(__openat_2) X(__openat64_2) X(creat)         \
        X(creat64) X(fopen) X(fopen64) X(freopen) X(freopen64) X(fdopen) X(write) X(pwrite)        \
            X(pwrite64) X(writev) X(pwritev) X(pwritev64) X(pwritev2) X(fwrite) X(fwrite_unlocked) \
                X(fputs) X(fputs_unlocked) X(fputc) X(fputc_unlocked) X(putc) X(putc_unlocked)     \
                    X(vfprintf) X(__vfprintf_chk) X(vdprintf) X(lseek) X(lseek64) X(fseek)         \
                        X(fseeko) X(fseeko64) X(rewind) X(fsetpos) X(fsetpos64) X(ftruncate)       \
                            X(ftruncate64) X(dup) X(dup2) X(dup3) X(fcntl) X(fcntl64) X(close)     \
                                X(close_range) X(closefrom) X(fclose) X(rename) X(renameat)        \
                                    X(renameat2) X(_exit) X(_Exit) X(fflush) X(fsync) X(fdatasync) \
                                        X(execve) X(execvpe) X(fexecve) X(posix_spawn)             \
                                            X(posix_spawnp) X(sigaction) X(signal)

struct real_functions {
#define REAL_POINTER(name) __typeof__(name) *name;
    REAL_FUNCTIONS(REAL_POINTER)
#undef REAL_POINTER
    bool ready;
};

extern struct real_functions real_fn;
void real_resolve(void);

#define REAL(name)                                                                                 \
    (__builtin_expect(real_fn.ready, 1) ? real_fn.name : (real_resolve(), real_fn.name))

extern __thread bool agent_busy __attribute__((tls_model("initial-exec")));

#define EXPORT __attribute__((visibility("default")))

#endif
