/* npy.h — one NumPy .npy stream (magic, header, data), embeddable.
 *
 * A .npy file is one such stream; an .npz archive holds one per member. struct
 * npy_array parses a stream from its first byte, takes only the bytes that belong to
 * it (so an embedder can tell where the array ends) and reports the array under the
 * name it was given. The "npy" parser (parser_npy_new in parser.h) wraps one.
 */
#ifndef CKMON_NPY_H
#define CKMON_NPY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "parser.h"
#include "report.h"
#include "tensor.h"

/* Headers longer than this are refused (NumPy itself writes a few hundred bytes). */
#define NPY_MAX_HEADER (1u << 20)

enum npy_state {
    NPY_PREAMBLE, /* magic, version, header length */
    NPY_HEADER,
    NPY_DATA,
    NPY_DONE,
    NPY_PICKLED, /* an object array's data: a pickle, which ends at its STOP (else as UNSIZED) */
    NPY_UNSIZED, /* data of a size the header does not give (structured): take the rest */
    NPY_FAILED,  /* reported why; takes the rest */
};

struct pickle_walker;

struct npy_array {
    struct report *report;
    const struct parse_options *options;
    char name[sizeof((struct tensor_reader *)0)->name];
    enum npy_state state;
    uint64_t offset; /* bytes taken since the stream's start, for error messages */
    uint8_t preamble[12];
    size_t preamble_len, preamble_need;
    char *header;
    size_t header_len, header_have;
    struct tensor_head head;      /* a Fortran-order array's head in C order */
    struct pickle_walker *pickle; /* NPY_PICKLED */
    struct report quiet;          /* where its findings go: they are not the record's */
    struct tensor_reader tensor;  /* last: it ends in a large buffer */
};

void npy_array_init(struct npy_array *a, struct report *r, const struct parse_options *o,
                    const char *name);
/* Takes the next bytes of the stream; returns how many belong to it. Fewer than len
 * means the array ended (npy_array_done). After a failure, or for an array whose data
 * size the header does not give (object or structured dtypes), it takes everything. */
size_t npy_array_feed(struct npy_array *a, const uint8_t *data, size_t len);
static inline bool npy_array_done(const struct npy_array *a)
{
    return a->state == NPY_DONE;
}
/* The stream ended: reports what is missing; true when the array was whole. */
bool npy_array_finish(struct npy_array *a);
void npy_array_free(struct npy_array *a);

/* The "npy" parser with the array named `name` (the contract: the file's base name
 * without extension); parser_npy_new, and an empty name, use "array". */
struct parser *parser_npy_named_new(struct report *r, const struct parse_options *o,
                                    const char *name);

#endif
