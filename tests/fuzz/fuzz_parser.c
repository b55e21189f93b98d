/* fuzz_parser.c — one format's parser against arbitrary bytes (libFuzzer target).
 *
 * Built once per format with -DFORMAT=<name> (parser_<name>_new). Each input is parsed
 * twice: whole, and cut into pieces at points derived from the input's own bytes, so
 * that every state a streaming parser can stop in (mid-header, mid-string, mid-tensor)
 * is reached without a separate corpus. The two records must be the same: a parser
 * whose result depends on where write() happened to split the data is a bug even when
 * it does not crash. Numbers may differ in their last bits (statistics accumulate in
 * blocks, and a different split rounds differently), nothing else. The same entry point replays
 * regression files (regress_main.c).
 *
 * Half the inputs (by their last byte) are parsed at the default sampling plan instead of
 * exactly, so that a header declaring a tensor of more than 64 KiB (which the plan then
 * samples, in pieces of up to 4 KiB past 4 MiB) drives the sampled reader too, on data
 * that may end anywhere.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/parsers/npy.h"
#include "core/parsers/parser.h"
#include "collector/record.h"

#define CONSTRUCTOR_(f) parser_##f##_new
#define CONSTRUCTOR(f)  CONSTRUCTOR_(f)
#define NAME_(f)        #f
#define NAME(f)         NAME_(f)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void take(struct report *r, struct record *rec)
{
    cJSON *found = cJSON_CreateObject();
    report_take(r, found);
    record_take_findings(rec, found);
    cJSON_Delete(found);
}

/* The next piece length: mostly small (parsers' boundary cases), sometimes large. */
static size_t next_piece(uint64_t *state, size_t left)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    size_t n = *state % 8 == 0 ? (size_t)(*state >> 8) % 65536 : (size_t)(*state >> 8) % 17;
    n += 1;
    return n < left ? n : left;
}

/* The record's findings as one JSON text (malloc'd), merged the way the collector
 * merges the agent's data messages, and the finish() result. */
static char *parse(const uint8_t *data, size_t size, bool split)
{
    struct parse_options options = {.sample = size && data[size - 1] & 1 ? DEFAULT_SAMPLE : 1.0};
    struct identity who = {0};
    struct record *rec = record_new(&who, "fuzz");
    struct report r;
    report_init(&r, NULL);
    struct parser *p = CONSTRUCTOR(FORMAT)(&r, &options);
    if (!p || !rec) abort();
    uint64_t state = 0x9e3779b97f4a7c15ULL;
    for (size_t i = 0; i < size; i++)
        state = (state ^ data[i]) * 0x100000001b3ULL;
    for (size_t at = 0; at < size;) {
        size_t n = split ? next_piece(&state, size - at) : size - at;
        p->feed(p, data + at, n);
        at += n;
        take(&r, rec); /* as the agent does after every write */
    }
    rec->complete = p->finish(p);
    take(&r, rec);
    p->destroy(p);
    report_free(&r);
    record_settle(rec);
    size_t len;
    char *text = record_to_line(rec, &len);
    record_free(rec);
    return text;
}

/* The size of a tensor's elements: a mean or std summed from values of that size is
 * rounded relative to it, not to itself (a mean near 0 from values near +-2). */
static double magnitude(const cJSON *tensor)
{
    const cJSON *min = cJSON_GetObjectItem(tensor, "min"),
                *max = cJSON_GetObjectItem(tensor, "max");
    return cJSON_IsNumber(min) && cJSON_IsNumber(max)
               ? fmax(fabs(min->valuedouble), fabs(max->valuedouble))
               : 0;
}

/* Equal JSON, numbers within a relative 1e-9 of themselves or of scale. */
static bool same(const cJSON *a, const cJSON *b, double scale)
{
    if (!a || !b) return a == b;
    if ((a->type & 0xff) != (b->type & 0xff)) return false;
    if ((a->string || b->string) && (!a->string || !b->string || strcmp(a->string, b->string)))
        return false;
    if (cJSON_IsNumber(a))
        return a->valuedouble == b->valuedouble ||
               fabs(a->valuedouble - b->valuedouble) <=
                   1e-9 * fmax(scale, fmax(fabs(a->valuedouble), fabs(b->valuedouble)));
    if (cJSON_IsString(a)) return !strcmp(a->valuestring, b->valuestring);
    double inner = cJSON_IsObject(a) ? magnitude(a) : 0;
    const cJSON *x = a->child, *y = b->child;
    for (; x && y; x = x->next, y = y->next)
        if (!same(x, y, inner)) return false;
    return !x && !y;
}

static bool same_text(const char *a, const char *b)
{
    cJSON *x = cJSON_Parse(a), *y = cJSON_Parse(b);
    bool equal = x && y && same(x, y, 0);
    cJSON_Delete(x);
    cJSON_Delete(y);
    return equal;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *whole = parse(data, size, false);
    char *pieces = parse(data, size, true);
    if (whole && pieces && strcmp(whole, pieces) != 0 && !same_text(whole, pieces)) {
        fprintf(
            stderr,
            "%s: findings depend on how the input was split:\nwhole:  %.2000s\npieces: %.2000s\n",
            NAME(FORMAT), whole, pieces);
        abort();
    }
    free(whole);
    free(pieces);
    return 0;
}
