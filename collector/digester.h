/* digester.h — hashing closed checkpoints on a thread of the collector's own (--digest).
 *
 * A record's digest is taken from the file after its last close, from the page cache,
 * by one worker thread at a lower priority, so that neither the monitored program (it
 * closed the file already) nor the collector's other agents wait for it. The file is
 * opened without following a symbolic link, read only, and must be the one its close
 * described (device, inode, size, modification time): a file replaced or changed since
 * has no digest, and the job says why. Jobs are done in the order they were started.
 */
#ifndef CKMON_DIGESTER_H
#define CKMON_DIGESTER_H

#include <stdbool.h>

#include "digest.h"

struct digester;
struct digest_job;

/* NULL when out of memory (libxxhash must be loaded: digest_load). */
struct digester *digester_new(void);
/* Cancels what is queued and stops the thread; drop every job first. */
void digester_free(struct digester *g);
/* A descriptor that becomes readable when a job is done (for poll); digester_done_clear
 * reads it empty. */
int digester_wake_fd(const struct digester *g);
void digester_done_clear(struct digester *g);

/* Queues the hashing of the file at path, which its close saw as closed (not known:
 * any regular file will do). NULL when out of memory. */
struct digest_job *digester_start(struct digester *g, const char *path,
                                  const struct file_id *closed);
bool digest_job_done(struct digest_job *j);
void digest_job_wait(struct digest_job *j);
/* Once done: the digest text, or NULL with *why saying why there is none. */
const char *digest_job_result(struct digest_job *j, const char **why);
/* The owner is done with j: cancels its hashing if it has not ended. */
void digest_job_drop(struct digest_job *j);

#endif
