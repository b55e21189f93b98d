/* digester.h — reading closed checkpoints on a thread of the collector's own: their
 * digest (--digest) and the zip CRC-32s their agent left unchecked (zip_check.h).
 *
 * Both are taken from the file after its last close, from the page cache, by one worker
 * thread at a lower priority, so that neither the monitored program (it closed the file
 * already) nor the collector's other agents wait for them. The file is opened without
 * following a symbolic link, read only, and must be the one its close described (device,
 * inode, size, modification time): a file replaced or changed since has no digest and
 * no CRC check, and the job says why; the CRCs are checked through the file opened at
 * its close when the tracker could, so a file deleted or replaced since is checked
 * all the same. A file that gets both is read once: the digest is fed from the CRC
 * check's reads (digest_follow, digest.h). Jobs are done in the order they were started.
 */
#ifndef CKMON_DIGESTER_H
#define CKMON_DIGESTER_H

#include <stdbool.h>

#include <cjson/cJSON.h>

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

/* What a job does with the file: hash it (libxxhash must be loaded: digest_load), check
 * its zip CRC-32s (crc_format: the record's format, for the errors; NULL: not), from
 * crc_fd when it is not -1 (the file opened at its close; the job owns it once started). */
struct digest_work {
    bool hash;
    const char *crc_format;
    int crc_fd;
};

/* Queues the work on the file at path, which its close saw as closed (not known: any
 * regular file will do). NULL when out of memory (crc_fd is then still the caller's). */
struct digest_job *digester_start(struct digester *g, const char *path,
                                  const struct file_id *closed, struct digest_work work);
bool digest_job_done(struct digest_job *j);
void digest_job_wait(struct digest_job *j);
/* Once done: the digest text, or NULL with *why saying why there is none (hashing
 * asked). */
const char *digest_job_result(struct digest_job *j, const char **why);
/* Once done, with a CRC check asked: the check's errors (an array of strings, the job's;
 * NULL or empty when the CRCs matched), or NULL with *why saying why the file could not
 * be checked. */
const cJSON *digest_job_crc_errors(const struct digest_job *j, const char **why);
/* The owner is done with j: cancels its hashing if it has not ended. */
void digest_job_drop(struct digest_job *j);

#endif
