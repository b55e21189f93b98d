/* distcp.c — PyTorch Distributed Checkpoint data files (`__<rank>_<n>.distcp`).
 *
 * torch's FileSystemWriter writes each rank's items into one stream, back to back: every
 * tensor with torch.save, every other object torch.save'd into a buffer and written raw.
 * So a .distcp file is a sequence of torch.save archives, and each archive is parsed as a
 * torch file is (torch.c), its end found by its end-of-central-directory record. Bytes
 * that do not begin an archive are a raw item: with the set's .metadata known (distcp.h)
 * its length is too and it is skipped; without it, nothing says where the next item
 * starts, and the rest of the file is not read (no error: raw items are legitimate).
 *
 * Each item's findings are named by its fully qualified name from the .metadata when it
 * is known (a tensor `layers.0.weight`, an object `step`, a dict's members below it),
 * else by its byte offset in the file (`@0`, `@700`): the agent parses the file as it is
 * written, before the .metadata exists. The record's format is "torch".
 */
#include "distcp.h"
#include "parser.h"
#include "torch.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ITEM_NAME_MAX 1024 /* a longer name from the .metadata: named by offset instead */

struct distcp {
    struct parser base;
    struct report *report;
    const struct parse_options *options;
    /* The archives' options: their CRCs are checked as they stream even in the agent,
     * since zip_check.h reads one archive at the start of its file, not a stream of them. */
    struct parse_options archive_options;
    struct parser *archive; /* the item being parsed, or NULL between items */
    uint64_t offset;        /* bytes of the file taken */
    uint64_t item_at;       /* where the current item began */
    uint64_t skip;          /* of a raw item, bytes left; UINT64_MAX: the rest of the file */
    uint8_t head[4];        /* the next item's first bytes */
    size_t head_len;
    bool broken; /* an archive was malformed or cut short */
    char name[ITEM_NAME_MAX + 24];
};

const struct distcp_item *distcp_item_at(const struct distcp_items *items, uint64_t offset)
{
    size_t lo = 0, hi = items ? items->count : 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (items->at[mid].offset < offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < (items ? items->count : 0) && items->at[lo].offset == offset ? &items->at[lo]
                                                                             : NULL;
}

static void start_item(struct distcp *d)
{
    const struct distcp_item *known =
        distcp_item_at(d->options ? d->options->distcp : NULL, d->item_at);
    if (known && strlen(known->name) <= ITEM_NAME_MAX)
        snprintf(d->name, sizeof d->name, "%s", known->name);
    else
        snprintf(d->name, sizeof d->name, "@%" PRIu64, d->item_at);
    if (memcmp(d->head, "PK\3\4", 4) != 0) {
        /* raw bytes: known ones are skipped, unknown ones end what can be read */
        d->skip =
            known && known->length >= sizeof d->head ? known->length - sizeof d->head : UINT64_MAX;
        d->head_len = 0;
        return;
    }
    d->archive = parser_torch_new(d->report, &d->archive_options);
    if (!d->archive) {
        report_error(d->report, "distcp: out of memory");
        d->broken = true;
        d->skip = UINT64_MAX;
        return;
    }
    d->report->root_name = d->name;
    torch_feed_archive(d->archive, d->head, d->head_len);
    d->head_len = 0;
}

/* The archive's end record is in, or the file ended: its verdict. */
static bool end_archive(struct distcp *d)
{
    bool whole = d->archive->finish(d->archive);
    d->archive->destroy(d->archive);
    d->archive = NULL;
    d->report->root_name = NULL;
    if (!whole) d->broken = true;
    return whole;
}

static void distcp_feed(struct parser *p, const uint8_t *data, size_t len)
{
    struct distcp *d = (struct distcp *)p;
    while (len > 0) {
        size_t n;
        if (d->archive) {
            n = torch_feed_archive(d->archive, data, len);
            if (torch_archive_ended(d->archive)) end_archive(d);
        } else if (d->skip) {
            n = d->skip < len ? (size_t)d->skip : len;
            if (d->skip != UINT64_MAX) d->skip -= n;
        } else {
            if (d->head_len == 0) d->item_at = d->offset;
            n = sizeof d->head - d->head_len < len ? sizeof d->head - d->head_len : len;
            memcpy(d->head + d->head_len, data, n);
            d->head_len += n;
            if (d->head_len == sizeof d->head) start_item(d);
        }
        data += n;
        len -= n;
        d->offset += n;
    }
}

static bool distcp_finish(struct parser *p)
{
    struct distcp *d = (struct distcp *)p;
    if (d->archive && !end_archive(d)) {
        report_error(d->report, "distcp: the item at byte %" PRIu64 " is cut short", d->item_at);
        return false;
    }
    if (d->head_len) {
        report_error(d->report, "distcp: %zu stray bytes at byte %" PRIu64, d->head_len,
                     d->item_at);
        return false;
    }
    return !d->broken;
}

static void distcp_destroy(struct parser *p)
{
    struct distcp *d = (struct distcp *)p;
    if (d->archive) {
        d->archive->destroy(d->archive);
        d->report->root_name = NULL;
    }
    free(d);
}

struct parser *parser_distcp_new(struct report *r, const struct parse_options *o)
{
    struct distcp *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    d->base = (struct parser){.format = "torch",
                              .feed = distcp_feed,
                              .finish = distcp_finish,
                              .destroy = distcp_destroy,
                              .tolerates_rewrites = true};
    d->report = r;
    d->options = o;
    d->archive_options = o ? *o : (struct parse_options){.sample = 1};
    d->archive_options.crc_after_close = false;
    return &d->base;
}
