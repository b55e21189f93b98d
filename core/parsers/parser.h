/* parser.h — the one interface every checkpoint format implements.
 *
 * A parser sees the file's bytes once, in file order, in pieces of any size (a single
 * byte per call must work), and never more than a bounded amount of memory: it keeps
 * only the state it needs, not the file. It reports findings to a struct report as
 * soon as they are final. The same parsers serve the agent (bytes as the program
 * writes them) and `ckmon inspect` (bytes read from a finished file).
 */
#ifndef CKMON_PARSER_H
#define CKMON_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "report.h"

/* parse_options.sample when nobody says otherwise: the agent, `inspect` and the
 * collector alike, so that a file gives the same record however it is parsed. */
#define DEFAULT_SAMPLE 0.0625

struct budget;
struct distcp_items;

struct parse_options {
    double sample; /* the sampling plan's fraction (tensor.h), (0, 1]; 1 = exact */
    /* The agent's safety net for this file (../budget.h), NULL: none. Only ever cuts
     * when the machine is overloaded; a cut is reported. */
    struct budget *budget;
    /* A .distcp file's items as its set's .metadata names them (distcp.h); NULL: not
     * known (the agent: the .metadata comes after), items are named by byte offset. */
    const struct distcp_items *distcp;
    /* Leave the CRC-32s of zip members unchecked (the report's crc_left says when some
     * were): the agent's, whose collector checks the finished file instead (zip_check.h). */
    bool crc_after_close;
};

struct parser {
    const char *format; /* as in the record: "json", "pickle", ... */
    /* The next bytes of the file. Once a parser has given up (malformed input, over a
     * cap) it has reported why and ignores the rest; feed never fails outward. */
    void (*feed)(struct parser *p, const uint8_t *data, size_t len);
    /* The data ended. Reports whatever was still pending; returns true when the bytes
     * formed a whole document of this format (false: truncated or malformed). */
    bool (*finish)(struct parser *p);
    void (*destroy)(struct parser *p);
    /* Whether rewriting bytes already fed (seek back, overwrite) leaves this parser's
     * findings valid; zip writers rewrite local headers and the parser does not need them. */
    bool tolerates_rewrites;
    /* The format cannot be parsed from a stream (HDF5): the parser only recognises it and
     * wants no more bytes; whoever parses finished files reads it from disk (the collector,
     * docs/formats.md). Readers of a finished file stop feeding once it is set. */
    bool on_disk;
};

/* One constructor per format, each in its own file. */
struct parser *parser_json_new(struct report *r, const struct parse_options *o);
struct parser *parser_pickle_new(struct report *r, const struct parse_options *o);
struct parser *parser_safetensors_new(struct report *r, const struct parse_options *o);
struct parser *parser_npy_new(struct report *r, const struct parse_options *o);
struct parser *parser_gguf_new(struct report *r, const struct parse_options *o);
struct parser *parser_torch_new(struct report *r, const struct parse_options *o);
struct parser *parser_torch_legacy_new(struct report *r, const struct parse_options *o);
struct parser *parser_torchscript_new(struct report *r, const struct parse_options *o);
struct parser *parser_npz_new(struct report *r, const struct parse_options *o);
struct parser *parser_joblib_new(struct report *r, const struct parse_options *o);
struct parser *parser_hdf5_new(struct report *r, const struct parse_options *o);
struct parser *parser_distcp_new(struct report *r, const struct parse_options *o);

/* A parser that looks at the first bytes (and the path's extension when the bytes do
 * not decide) and then hands everything to the right format's parser; its format is
 * "unknown" until then and stays so for data no parser claims. */
struct parser *parser_detect_new(const char *path, struct report *r, const struct parse_options *o);

/* Whether a file's first n bytes say, with no help from its name, that it is a
 * checkpoint: a torch zip (data.pkl its first member), a pickle of protocol 2 to 5, NumPy's
 * magic, GGUF, or a safetensors header. The agent follows such a file written under a name
 * no glob matches (docs/agent.md, "Saves under a temporary name"). */
bool parser_certain(const uint8_t *head, size_t n);

/* Convenience for finished files (inspect, re-reading a file written out of order):
 * runs a detect parser over an open descriptor with pread, from offset 0 to EOF.
 * Returns the parser's finish() result; *format gets the detected format. */
bool parse_fd(int fd, const char *path, struct report *r, const struct parse_options *o,
              const char **format);

/* How parse_fd_with gets a file's bytes to the parser: everything from offset `from` to
 * EOF. Returns false after reporting a read error. */
typedef bool parse_source(int fd, off_t from, struct parser *p, struct report *r);

/* parse_fd's own source: pread into a buffer (safe anywhere, including in the agent). */
bool parse_feed_pread(int fd, off_t from, struct parser *p, struct report *r);

/* The pieces of parse_feed_pread, for a caller that parses a file a slice at a time.
 * Reads are PARSE_READ_CHUNK bytes: small enough that each chunk is still in the L2
 * cache when the statistics read it (with 1 MiB, inspect ran at half the speed). */
#define PARSE_READ_CHUNK (1u << 17)
/* A page-aligned buffer of PARSE_READ_CHUNK bytes (free it), or NULL. */
uint8_t *parse_read_buffer(void);
enum parse_slice { PARSE_MORE, PARSE_AT_END, PARSE_READ_FAILED };
/* Feeds the file from *offset (advanced) up to stop; PARSE_AT_END when the file ended
 * first, PARSE_READ_FAILED after reporting a read error. */
enum parse_slice parse_feed_slice(int fd, off_t *offset, off_t stop, uint8_t *buf, struct parser *p,
                                  struct report *r);

/* parse_fd with another source (the collector's, collector/readahead.h). */
bool parse_fd_with(int fd, const char *path, struct report *r, const struct parse_options *o,
                   const char **format, parse_source *source);

#endif
