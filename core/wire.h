/* wire.h — the messages an agent sends to its collector, as types.
 *
 * Transport: a Unix-domain SOCK_SEQPACKET connection, so every message is one packet
 * (no framing to get wrong) and the collector sees EOF when a process dies, which is
 * how a torn checkpoint is noticed. Each packet is one JSON object with a "t" member
 * naming its kind. A process opens its connection lazily, at its first checkpoint, and
 * says hello first. File ids are unique within one connection.
 *
 *   hello   {"t":"hello","pid":123,"program":"python3","host":"h","job":"j","run":"r",
 *            "rank":3,"local_rank":1,"world_size":8,"sample":0.1,"keys":["epoch"]}
 *                                              run, rank, local_rank, world_size only
 *                                              when known (CKMON_RUN_ID, launchers);
 *                                              sample and keys (CKMON_SAMPLE, CKMON_KEYS)
 *                                              for the files the collector parses itself
 *                                              "dropped":N when N messages were lost (no
 *                                              collector, queue full) since the last hello;
 *                                              "session":"<16 hex>", the process's own
 *                                              random name, when its messages are numbered
 *   open    {"t":"open","id":7,"path":"/abs/x.pt","time_us":1700000000123456}
 *   data    {"t":"data","id":7,"bytes":4096,"writes":3,"format":"pickle",
 *            "values":{...},"tensors":[...],"errors":[...]}
 *                                              progress (sent when the format is
 *                                              decided, and at most every 250 ms) and
 *                                              findings so far, each part optional;
 *                                              the collector merges them in order.
 *                                              "reset":true first discards the findings
 *                                              so far (the file is being parsed again)
 *   close   {"t":"close","id":7,"time_us":...,"path":"/abs/final","written_as":"/abs/tmp",
 *            "format":"pickle","bytes":N,"writes":N,"seconds":0.01,"complete":true,
 *            "parsed":"stream"}
 *                                              written_as only when renamed while open;
 *                                              parsed "reread" when the agent parsed the
 *                                              finished file again; "candidate":true
 *                                              when the file was followed for its first
 *                                              bytes and its name matches no glob: the
 *                                              collector drops the record unless a rename
 *                                              gives it a checkpoint name (a torn one is
 *                                              recorded all the same); "lost_tensors":N,
 *                                              "lost_values":N when the agent dropped data
 *                                              messages holding that many (its queue was
 *                                              full): the record's errors say so;
 *                                              "dev", "ino", "mtime_us": the file as
 *                                              fstat saw it at the close (when it could),
 *                                              so that --digest hashes that file only;
 *                                              "crc_left":true when the agent left the
 *                                              zip members' CRC-32s to the collector,
 *                                              which checks the finished file
 *   rename  {"t":"rename","from":"/abs/x.tmp","to":"/abs/x.pt"}
 *                                              a checkpoint this process closed less than
 *                                              RENAME_WINDOW_US ago was renamed
 *   exec    {"t":"exec","kept":[7]}       the process is about to exec: the new program
 *                                              keeps files 7 (its agent reports them); exec
 *                                              closes the others, so when this connection
 *                                              ends the collector parses them from disk
 *   exec_failed {"t":"exec_failed"}            it did not happen after all
 *   adopt   {"t":"adopt","from":"/abs/x.tmp","to":"/abs/x.pt","time_us":...}
 *                                              a file that matched no glob was renamed
 *                                              onto a checkpoint name: the collector
 *                                              parses the finished file from disk
 *   unmatched {"t":"unmatched","paths":["/abs/model.bin"]}
 *                                              at exit, from a process that wrote no
 *                                              checkpoint: the first files it created that
 *                                              matched no glob, so that `ckmon run` can
 *                                              name them when nothing matched
 *   verified {"t":"verified","record":{"event":"verify",...}}
 *                                              from `ckmon verify`, not an agent: a file
 *                                              that failed verification, as the verify
 *                                              record the collector writes to its log
 *   load    {"t":"load","path":"/abs/x.pt","time_us":...,"bytes":N,"mtime_us":...}
 *                                              a checkpoint was opened for reading (once
 *                                              per open, nothing per read): its size and
 *                                              modification time from fstat at the open
 *                                              (absent when fstat failed), so that the
 *                                              collector can tell whether it is still what
 *                                              its record describes
 *
 * Delivery (docs/security.md, "Collector killed"): every message but the hello carries
 * "seq":N, numbered from 1 in the order the process queued them. The collector answers
 * on the same connection with
 *   ack     {"t":"ack","seq":N}               every message up to N is in the log or the
 *                                              state dir's journal, or needs no record
 * and the agent keeps what is not acknowledged (bounded), sends it again, in order, on
 * its next connection (to a new collector), or spools it at exit. A collector skips a
 * message whose seq it has already taken from the same session (a connection that
 * broke, or a spool file written while the collector was stopped), and drops the record
 * of a close (or adopt) that a killed collector had already journaled.
 *
 * A file still open when its connection ends is torn: the collector writes its record
 * with "complete": false and the size on disk, and when the agent had found nothing in
 * it yet, parses what is on disk itself (up to 256 MiB).
 *
 * A data or close message for an id the collector never saw opened (the connection was
 * replaced while the file was open) starts a record from what the message carries.
 *
 * The collector holds a closed record for RENAME_WINDOW_US so that a rename (from any
 * process) can still give it its final path, then writes it.
 *
 * Each kind is a struct below, written by wire_encode and read by wire_decode (wire.c),
 * which both sides use: the member names live in one file. An optional member that is
 * absent is NULL (strings), WIRE_ABSENT (integers) or NaN (fractions); the encoder
 * leaves those out, the decoder sets them so for members missing or of the wrong type.
 */
#ifndef CKMON_WIRE_H
#define CKMON_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "strbuf.h"
#include "wire_tensors.h"

#define WIRE_MAX_MESSAGE (64 * 1024) /* a data message is split to stay under this */
#define RENAME_WINDOW_US 1000000LL   /* the contract: "after a rename within 1 s of close" */
#define WIRE_ABSENT      INT64_MIN   /* an integer member not sent (never a decoded value) */

enum wire_kind {
    WIRE_HELLO,
    WIRE_OPEN,
    WIRE_DATA,
    WIRE_CLOSE,
    WIRE_RENAME,
    WIRE_EXEC,
    WIRE_EXEC_FAILED,
    WIRE_ADOPT,
    WIRE_UNMATCHED,
    WIRE_VERIFIED,
    WIRE_LOAD,
    WIRE_ACK,
    WIRE_KINDS
};

struct wire_hello {
    int64_t pid;
    const char *program, *host, *job;
    const char *run;                      /* NULL: not known, not sent */
    const char *session;                  /* NULL: messages not numbered */
    int64_t rank, local_rank, world_size; /* WIRE_ABSENT unless the launcher set them */
    double sample;                        /* NaN: not sent */
    int64_t dropped;                      /* sent only when above 0 */
    char *const *keys;                    /* key_count strings; "keys" is always sent */
    size_t key_count;
};

struct wire_open {
    int64_t id;       /* required */
    const char *path; /* required */
    int64_t time_us;
};

struct wire_data {
    int64_t id; /* required */
    int64_t bytes, writes;
    const char *format;
    bool reset;
    /* Findings, each NULL or a container whose children are sent: an object of values,
     * arrays of tensors and of errors. Decoded ones belong to the message; a taker may
     * move their children out. */
    cJSON *values, *tensors, *errors;
    /* Decoded tensors as records print them (wire_tensors.h), the message's; NULL when
     * they are in tensors. */
    struct printed_tensors *texts;
};

struct wire_close {
    int64_t id; /* required */
    int64_t time_us, bytes, writes;
    /* The file as the close saw it (fstat), so that the collector can tell it from a file
     * put in its place later (--digest): WIRE_ABSENT when unknown. */
    int64_t dev, ino, mtime_us;
    const char *path, *written_as, *format;
    const char *parsed; /* "stream" or "reread" */
    double seconds;
    bool complete;
    bool candidate; /* followed for its bytes, under no glob's name: kept only if renamed */
    bool crc_left;  /* zip CRC-32s not checked: for the collector to check (zip_check.h) */
    int64_t lost_tensors, lost_values; /* findings the agent dropped; sent only above 0 */
};

/* rename and adopt: from and to required. */
struct wire_rename {
    const char *from, *to;
    int64_t time_us; /* adopt only */
};

struct wire_exec {
    const int64_t *kept; /* ids of files the new program keeps; decoded: integers only */
    size_t kept_count;
};

struct wire_verified {
    const cJSON *record; /* required: an object whose "event" is "verify" */
};

struct wire_unmatched {
    char *const *paths; /* path_count strings */
    size_t path_count;
};

struct wire_load {
    const char *path; /* required */
    int64_t time_us, bytes, mtime_us;
};

struct wire_message {
    enum wire_kind kind;
    int64_t seq; /* 0: none (a hello, an agent that does not number its messages) */
    union {
        struct wire_hello hello;
        struct wire_open open;
        struct wire_data data;
        struct wire_close close;
        struct wire_rename rename; /* WIRE_RENAME and WIRE_ADOPT */
        struct wire_exec exec;
        struct wire_unmatched unmatched;
        struct wire_verified verified;
        struct wire_load load;
        /* WIRE_EXEC_FAILED, WIRE_ACK: no members but seq */
    };
    /* A decoded message's own: the parsed packet and the list its keys, kept or paths point
     * to (or the format of a data message read without a tree), which its other pointers
     * lead into (wire_message_free). */
    cJSON *tree;
    void *list;
    struct printed_tensors texts; /* a data message's tensors, when read so */
};

/* The kind's name, the "t" of its packets. */
const char *wire_kind_name(enum wire_kind kind);

/* Appends m as one packet's text to out; false when out overflowed (its limit, which
 * should be WIRE_MAX_MESSAGE, or memory). */
bool wire_encode(const struct wire_message *m, struct strbuf *out);

enum wire_status {
    WIRE_OK,
    WIRE_MALFORMED, /* not JSON, no "t", or without the members its kind needs */
    WIRE_UNKNOWN    /* a "t" this side does not know: to be ignored */
};

/* Reads one packet into m. Unless WIRE_OK, m holds nothing; otherwise its strings and
 * findings live until wire_message_free(m). */
enum wire_status wire_decode(const char *data, size_t len, struct wire_message *m);
void wire_message_free(struct wire_message *m);

#endif
