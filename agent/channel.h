/* channel.h — the agent's connection to its collector.
 *
 * Opened lazily at the first message, so programs that never write a checkpoint never
 * connect. Sends never block the program: a message the socket cannot take now waits
 * in a bounded queue that the next send (or the exit flush) drains; when the queue is
 * full, or no collector answers, messages are dropped and counted. All I/O is raw
 * system calls, so none of it passes through the agent's own wrappers.
 */
#ifndef CKMON_CHANNEL_H
#define CKMON_CHANNEL_H

#include <stdbool.h>

#include "core/wire.h"

#define CHANNEL_QUEUE_BYTES (4u << 20)

/* Encodes and sends one message (core/wire.h); the caller keeps what m points to. */
void channel_send(const struct wire_message *m);
/* Where the socket's descriptor goes: the highest free number below the soft
 * RLIMIT_NOFILE, capped so that the kernel's descriptor table stays small (8 bytes a
 * slot). Under CHANNEL_SMALL_FD_LIMIT the agent holds no socket until exit. */
#define CHANNEL_FD_CEILING     4096
#define CHANNEL_SMALL_FD_LIMIT 64
/* The program ran out of descriptors (EMFILE): closes the socket if there is one (true:
 * the program may try again) and holds none until exit. */
bool channel_release_fd(void);
/* The program is about to close or replace descriptors first..last: if the channel's is
 * among them, forget it (the program closes it) and reconnect at the next message. */
void channel_yield_fds(unsigned first, unsigned last);
/* At process exit (and before exec): waits at most CHANNEL_EXIT_WAIT_MS for queued
 * messages to leave. With nothing queued it returns at once without connecting. */
#define CHANNEL_EXIT_WAIT_MS 2000
void channel_flush(void);
/* In a forked child: the parent's connection and queue are the parent's. */
void channel_after_fork_child(void);

#endif
