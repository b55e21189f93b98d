/* record.h — one checkpoint record, assembled from findings and written as one JSON line.
 *
 * The collector builds records from agent messages and `ckmon inspect` builds them
 * from a parse of a finished file; both go through this one type so that the member
 * order and formatting of the contract (docs/records.md) live in one place.
 */
#ifndef CKMON_RECORD_H
#define CKMON_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "core/parsers/parser.h"
#include "core/strbuf.h"
#include "digest.h"
#include "series.h"

/* Who wrote the file: what an agent's hello says, or inspect's own process. */
struct identity {
    char *host;
    char *program;
    char *job;
    char *run; /* NULL when unknown */
    long pid;
    bool has_rank, has_local_rank, has_world_size;
    long rank, local_rank, world_size;
};

/* How the findings were obtained (the record's "parsed"): from the program's writes as
 * they happened, from the agent reading the finished file back at close (writes out of
 * order or unseen), or by ckmon from the file on disk (inspect, adopted and torn files). */
enum record_parsed { PARSED_STREAM, PARSED_REREAD, PARSED_FILE };

/* A record's tensors as the record prints them, one after another with commas between,
 * and their summaries for the alert rules and the series, in the record's order. Kept
 * as a cJSON tree, a tensor took some 2.6 KB and dozens of allocations, each made, walked
 * and freed again, for a record of 10^5 tensors most of the collector's work; as text it
 * takes its printed length and is printed once. */
struct record_tensors {
    struct strbuf text;
    size_t count;
    struct tensor_list list;
};

struct record {
    struct identity who;
    int64_t time_us; /* when the file was closed, microseconds since the epoch */
    char *path;
    char *written_as; /* NULL unless renamed */
    char *format;
    int64_t bytes;
    int64_t writes;
    double seconds;
    bool complete;
    enum record_parsed parsed;
    cJSON *values; /* object */
    struct record_tensors tensors;
    cJSON *errors; /* array of strings */
    char *digest;  /* "xxh3-128:...", or NULL (--digest) */
    /* The file as its close saw it (the agent's fstat), to be sure the digest is taken
     * of that file; not known for files the collector parsed itself. */
    struct file_id closed;
    /* The agent left the file's zip CRC-32s unchecked: the collector checks them in the
     * finished file before the record is written (zip_check.h), through crc_fd, the file
     * opened at its close (so that a file deleted or replaced during the rename hold is
     * still checked), or by its path when it could not be opened then (-1). */
    bool crc_left;
    int crc_fd;
};

/* Copies of the identity's strings; returns false when out of memory. */
bool identity_copy(struct identity *dst, const struct identity *src);
void identity_free(struct identity *id);

/* An empty record for path (format "unknown"), owning a copy of who; NULL when out of
 * memory. */
struct record *record_new(const struct identity *who, const char *path);
void record_free(struct record *r);

/* *slot (malloc'd, or NULL) made a copy of value, or NULL; kept when already equal. False
 * when out of memory (*slot unchanged). */
bool record_set_string(char **slot, const char *value);
/* Moves the "values", "tensors" and "errors" members of findings into the record,
 * appended; findings keeps the rest. A value whose key came before replaces the earlier
 * one when the record is settled: merging by lookup here would cost time quadratic in
 * the number of values, which a hostile file makes large. */
void record_take_findings(struct record *r, cJSON *findings);
/* The same from the containers themselves (any may be NULL), emptied. */
void record_append_findings(struct record *r, cJSON *values, cJSON *tensors, cJSON *errors);
/* The same from another record's findings, for r without tensors (the agent found none). */
void record_move_findings(struct record *r, struct record *from);
/* Appends tensors a data message's reader printed (wire_tensors.h), their names taken. */
void record_append_printed(struct record *r, struct printed_tensors *p);
/* Resolves values reported more than once: the latest wins, in the first one's place.
 * Once, before the record is written. */
void record_settle(struct record *r);
void record_add_error(struct record *r, const char *message);
/* Sets r->parsed from its name ("stream", "reread", "file"); false for another name. */
bool record_set_parsed(struct record *r, const char *name);
/* Forgets the values, tensors and errors found so far (the file is parsed again). */
void record_clear_findings(struct record *r);

/* Formats the agent only recognises or leaves alone, read from the finished file here:
 * HDF5 (hdf5.h) and joblib compressed with xz, lzma or lz4 (compressed.h). For a file
 * the detect parser read (*format, *complete: its results); true when one of them
 * claimed the file and updated both. */
bool record_read_disk_formats(int fd, const char **format, bool *complete, struct report *r,
                              const struct parse_options *o);

/* Completes r for a finished file the collector parsed (st: the file's), taking what
 * report found: its time is the file's modification time, bytes its size. False when
 * out of memory. */
bool record_take_report(struct record *r, const struct stat *st, struct report *report,
                        const char *format, bool complete);
/* A record for a finished file, parsed from fd here and now (path names it in the
 * record). NULL when out of memory. */
struct record *record_from_file(const struct identity *who, int fd, const char *path,
                                const struct stat *st, const struct key_filter *keys,
                                const struct parse_options *parse);

/* The same, hashing the file's bytes as they are parsed when digest is true: the
 * record gets its digest, or an error saying why there is none (the file changed while
 * it was read). */
struct record *record_from_file_hashed(const struct identity *who, int fd, const char *path,
                                       const struct stat *st, const struct key_filter *keys,
                                       const struct parse_options *parse, bool digest);

/* "2026-11-23T21:42:00.123456Z"; size must be at least RFC3339_SIZE. */
#define RFC3339_SIZE 32
void format_rfc3339(int64_t time_us, char *out, size_t size);

/* The record as a JSON object in the contract's member order, but for its tensors (an
 * empty array there: record_print_line prints them); NULL when out of memory. */
cJSON *record_to_json(const struct record *r);
/* The record as one line, JSON + '\n', in place of line's text (json_print_line: a buffer
 * kept from record to record keeps its room); false when out of memory or when its
 * tensors' text overflowed. */
bool record_line(const struct record *r, struct strbuf *line);
/* The same of o, record_to_json(r) with perhaps its alerts added. */
bool record_print_line(const struct record *r, const cJSON *o, struct strbuf *line);
/* record_line in a buffer of its own, malloc'd; *len gets its length. */
char *record_to_line(const struct record *r, size_t *len);
/* Any JSON object as such a line. */
char *json_line(const cJSON *o, size_t *len);
/* Adds names (an array of rule names, taken over) to a record's JSON as its "alerts",
 * where the contract puts them: right after "tensors" (a set record's "values"). */
void record_json_add_alerts(cJSON *o, cJSON *names);

#endif
