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

/* What may wait in the queue: findings (data messages) up to CHANNEL_QUEUE_BYTES (or
 * CKMON_QUEUE_MB, agent/config.h), enough
 * for the statistics of some 10^5 tensors written faster than the collector takes them;
 * the other kinds (open, close, rename...) up to CHANNEL_RESERVE_BYTES more, so that a
 * queue full of findings never costs a file its close (a torn record). */
#define CHANNEL_QUEUE_BYTES   (64u << 20)
#define CHANNEL_RESERVE_BYTES (1u << 20)

/* Encodes and sends one message (core/wire.h); the caller keeps what m points to.
 * Returns false when the message was dropped (queue full, too large, no memory). */
bool channel_send(const struct wire_message *m);
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
/* At process exit (and before exec): waits for queued messages to leave as long as the
 * collector takes some at least every CHANNEL_EXIT_WAIT_MS, and CHANNEL_EXIT_MAX_MS at
 * most in all (a large checkpoint's findings, read by a busy collector). With nothing
 * queued it returns at once without connecting. */
#define CHANNEL_EXIT_WAIT_MS 5000
#define CHANNEL_EXIT_MAX_MS  30000
/* Whether messages wait to be sent (the collector is behind): findings may then be
 * gathered into fewer, larger messages. A hint, read without the lock. */
bool channel_congested(void);
void channel_flush(void);
/* In a forked child: the parent's connection and queue are the parent's. */
void channel_after_fork_child(void);

#endif
