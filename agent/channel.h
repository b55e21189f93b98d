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
/* The program is about to close or replace descriptors first..last: if the channel's is
 * among them, forget it (the program closes it) and reconnect at the next message. */
void channel_yield_fds(unsigned first, unsigned last);
/* Waits up to timeout_ms for queued messages to leave (at process exit). */
void channel_flush(int timeout_ms);
/* In a forked child: the parent's connection and queue are the parent's. */
void channel_after_fork_child(void);

#endif
