/* report.h — where parsers put what they find.
 *
 * Every parser, whether it runs inside a monitored program or in `ckmon inspect`, hands
 * its findings to a report: scalar values by flattened key, tensors with their
 * statistics, and error strings. The report applies the --keys filter and the record's
 * rules for non-finite numbers, and keeps the findings until the owner takes them: the
 * agent takes them after each write and sends them to the collector (so a torn
 * checkpoint keeps whatever was found before the process died); inspect takes them once
 * at the end. The JSON shapes are the record's own (docs/records.md). Values and errors
 * are kept as cJSON; tensors, of which a checkpoint may hold 10^5, as the text the wire
 * carries, written once per tensor with no tree in between (struct tensor_texts).
 */
#ifndef CKMON_REPORT_H
#define CKMON_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "../stats.h"
#include "../strbuf.h"

/* --keys: fnmatch patterns (no flags, so '*' crosses '.'); empty means everything. */
struct key_filter {
    char **patterns;
    size_t count;
};

struct tensor_reader;

/* Sees the data bytes of every tensor read with a tensor_reader (tensor.h) as they pass,
 * `at` bytes into the tensor's data: `ckmon diff` pairs two files' elements with it. */
typedef void tensor_tap(void *ctx, const struct tensor_reader *tr, uint64_t at, const uint8_t *data,
                        size_t len);

/* Tensors reported and not yet taken, as the wire's text (core/wire.h): text is "[" and
 * then one JSON object per tensor, separated by commas, its numbers as the hex of their
 * bits (jsontext.h, json_add_hex_number: json_tensor_from_hex reads them back); the i-th
 * object ends at ends[i], and starts one byte after the end of the one before (after
 * the "[" for the first). */
struct tensor_texts {
    struct strbuf text;
    size_t *ends;
    size_t count, cap;
};

struct report {
    const struct key_filter *keys; /* NULL or empty: keep all */
    cJSON *values;                 /* object, findings not yet taken */
    struct tensor_texts tensors;
    cJSON *errors;          /* array of strings */
    unsigned error_count;   /* all errors ever reported, taken or not */
    unsigned long findings; /* values and tensors ever reported, taken or not */
    /* Some zip member's CRC-32 was left for the finished file (parse_options'
     * crc_after_close): whoever has the file checks it (zip_check.h). */
    bool crc_left;

    /* What flatten (flatten.h) names a document's root, and puts before the names in
     * it; NULL: the record's rule. A parser of many documents in one file sets it. */
    const char *root_name;

    tensor_tap *tap; /* NULL: none */
    void *tap_ctx;
};

/* Values plus tensors one file may report; later ones are dropped with one error. This
 * bounds the memory and the messages a hostile file (a list that holds itself twice
 * through the pickle memo flattens into millions of names) can cost. */
#define REPORT_MAX_FINDINGS 100000

void report_init(struct report *r, const struct key_filter *keys);
void report_free(struct report *r);

/* Whether --keys lets this value/tensor name through; parsers may skip work when not. */
bool report_wants(const struct report *r, const char *name);

void report_int(struct report *r, const char *key, int64_t v);
void report_float(struct report *r, const char *key, double v); /* NaN/Inf become strings */
void report_bool(struct report *r, const char *key, bool v);
void report_null(struct report *r, const char *key);
/* Strings longer than REPORT_MAX_STRING bytes are not values (the contract's rule). */
#define REPORT_MAX_STRING 256
void report_string(struct report *r, const char *key, const char *s, size_t len);

/* A tensor: shape has ndim entries; sampled is the fraction of elements fed to st. */
void report_tensor(struct report *r, const char *name, const char *dtype, const int64_t *shape,
                   int ndim, const struct tensor_stats *st, double sampled);

/* A tensor found elsewhere, already in the record's shape (a reader process's line:
 * collector/hdf5.c); kept as it is, not counted against REPORT_MAX_FINDINGS again. */
void report_tensor_json(struct report *r, const cJSON *tensor);

void report_error(struct report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* In a values object, for each key present more than once, the last value takes the
 * first one's place and the others go: O(n log n), by sorting. Without memory for the
 * sort, the duplicates are left as they are. */
void report_drop_replaced(cJSON *values);

/* True when findings wait to be taken. */
bool report_pending(const struct report *r);
/* Moves pending findings into obj as "values"/"tensors"/"errors" members (only the
 * non-empty ones), the tensors parsed from their text; the report starts empty again. */
void report_take(struct report *r, cJSON *obj);
/* The same for the values and errors only: the tensors' text stays in r->tensors for
 * the caller to send as it is (the agent), who then empties it with
 * report_clear_tensors. */
void report_take_but_tensors(struct report *r, cJSON *obj);
void report_clear_tensors(struct report *r);
/* The pending tensors as a cJSON array (the caller's; NULL when there are none or no
 * memory), their numbers the doubles reported; the report keeps no tensors. */
cJSON *report_take_tensors(struct report *r);

#endif
