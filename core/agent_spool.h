/* agent_spool.h — where an agent leaves the messages no collector took, and their form.
 *
 * An agent that cannot hand its queue to a collector at exit (or before an exec) — none
 * listening on its socket, or one that did not read within the exit bound — writes the
 * queue to a file in its user's spool directory beside the socket. The next collector
 * started on that socket imports the files meant for it, each as if it were one
 * connection, and removes them. Both sides use this file: the agent writes, the
 * collector reads (docs/security.md, "Agent spool").
 *
 * Directory  <directory of the socket>/ckmon-agent-spool-<uid>/, mode 0700. The agent
 *            creates it (mkdir 0700) and uses it only when, opened with
 *            O_DIRECTORY|O_NOFOLLOW, it is a directory owned by its effective uid that
 *            no one else may read, write or enter; a collector imports from it only on
 *            the same conditions (for its own uid).
 * File       <pid>-<16 hex digits>.spool, first written under the same name plus ".part"
 *            (openat O_CREAT|O_EXCL|O_NOFOLLOW, 0600) and renamed when complete, so a
 *            collector never reads half a file. A collector reads only regular "*.spool"
 *            files owned by its uid, of at most AGENT_SPOOL_MAX_FILE bytes, opened with
 *            O_NOFOLLOW relative to the directory, and may remove stale ".part" files.
 * Contents   (integers little-endian)
 *              "CKMSPOOL"            8 bytes
 *              version               u32, AGENT_SPOOL_VERSION
 *              socket path length L  u32, 1..107
 *              socket path           L bytes: the socket the agent was sent to, as it was
 *                                    given to the agent; a collector imports only files
 *                                    naming its own socket
 *            then packets, each
 *              length N              u32, 1..WIRE_MAX_MESSAGE
 *              message               N bytes: one wire message (core/wire.h) exactly as
 *                                    it would have been sent
 *            The first packet is the process's hello (its "dropped" counts what was lost
 *            before); the others follow in the order they were queued. A file that ends
 *            inside a packet ends before it.
 * Bounds     a file holds at most AGENT_SPOOL_MAX_FILE bytes (the agent's queue is
 *            smaller); an agent writes no file when the directory already holds
 *            AGENT_SPOOL_MAX_FILES entries or AGENT_SPOOL_MAX_BYTES bytes; what it could
 *            not spool is lost.
 */
#ifndef CKMON_AGENT_SPOOL_H
#define CKMON_AGENT_SPOOL_H

#include <stdbool.h>
#include <stddef.h>

#define AGENT_SPOOL_DIR_FORMAT "ckmon-agent-spool-%u"
#define AGENT_SPOOL_SUFFIX     ".spool"
#define AGENT_SPOOL_PART       ".part"
#define AGENT_SPOOL_MAGIC      "CKMSPOOL"
#define AGENT_SPOOL_VERSION    1u
#define AGENT_SPOOL_MAX_FILE   (5u << 20)
#define AGENT_SPOOL_MAX_FILES  1024u
#define AGENT_SPOOL_MAX_BYTES  (256u << 20)
#define AGENT_SPOOL_HEADER_MAX (8 + 4 + 4 + 108)

/* The spool directory for a socket path and uid into out; false when it does not fit. */
bool agent_spool_dir(const char *socket_path, unsigned uid, char *out, size_t size);

/* The file header naming socket_path, into out (AGENT_SPOOL_HEADER_MAX bytes do); its
 * length, or 0 when the path is empty or too long. */
size_t agent_spool_header(const char *socket_path, unsigned char *out, size_t size);

/* A packet's length prefix. */
void agent_spool_length(size_t len, unsigned char out[4]);

/* Reading a whole spool file held in memory. */
struct agent_spool_reader {
    const unsigned char *data;
    size_t len, pos;
};
/* False when data is not a spool file of this version naming socket_path. */
bool agent_spool_open(struct agent_spool_reader *r, const void *data, size_t len,
                      const char *socket_path);
/* The next packet, or false at the end (or at a packet the file does not hold whole, or
 * one of a length the wire does not allow). */
bool agent_spool_next(struct agent_spool_reader *r, const char **packet, size_t *len);

#endif
