/* spool.h — the agent's side of the agent spool (core/agent_spool.h): a process that
 * cannot hand its queue to a collector at exit writes it there for the next one.
 *
 * Everything is raw system calls on descriptors the agent opens and closes itself; no
 * allocation. A file is complete (renamed to its final name) or not there at all.
 */
#ifndef CKMON_SPOOL_H
#define CKMON_SPOOL_H

#include <stdbool.h>
#include <stddef.h>

struct spool_file {
    int dirfd, fd;
    char name[64]; /* final name; the file is name + AGENT_SPOOL_PART until committed */
    size_t bytes;
    bool failed;
};

/* Creates the part file (with its header) in the spool directory for socket_path.
 * False when the directory is not ours alone, is full, or anything fails. */
bool spool_begin(struct spool_file *f, const char *socket_path);
/* Appends one packet; a failure (or the size bound) fails the whole file. */
void spool_packet(struct spool_file *f, const void *data, size_t len);
/* Renames the file to its final name, or removes it after a failure; true when the
 * packets are there for the next collector. */
bool spool_end(struct spool_file *f);

#endif
