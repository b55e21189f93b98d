/* record.c — assembling a checkpoint record and printing it in the contract's order.
 *
 * Findings arrive as cJSON (from agent messages or from report_take()), so merging
 * moves nodes from one tree to another instead of copying them: a record with
 * thousands of tensors is merged in time proportional to what arrived. Tensors are the
 * exception: each is printed as it arrives and kept as its text and summary
 * (record_tensors in record.h).
 */
#include "record.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/jsontext.h"
#include "compressed.h"
#include "core/parsers/distcp.h"
#include "hdf5.h"
#include "readahead.h"
#include "set_layouts.h"

bool record_set_string(char **slot, const char *value)
{
    if (value && *slot && !strcmp(*slot, value)) return true; /* a format at every message */
    char *copy = value ? strdup(value) : NULL;
    if (value && !copy) return false;
    free(*slot);
    *slot = copy;
    return true;
}

bool identity_copy(struct identity *dst, const struct identity *src)
{
    *dst = *src;
    dst->host = dst->program = dst->job = dst->run = NULL;
    if (record_set_string(&dst->host, src->host) &&
        record_set_string(&dst->program, src->program) && record_set_string(&dst->job, src->job) &&
        record_set_string(&dst->run, src->run))
        return true;
    identity_free(dst);
    return false;
}

void identity_free(struct identity *id)
{
    free(id->host);
    free(id->program);
    free(id->job);
    free(id->run);
    id->host = id->program = id->job = id->run = NULL;
}

#define RECORD_TEXT_LIMIT ((size_t)1 << 30) /* as jsontext.c's: no record is printed above */

struct record *record_new(const struct identity *who, const char *path)
{
    struct record *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->values = cJSON_CreateObject();
    r->tensors.text.limit = RECORD_TEXT_LIMIT;
    r->errors = cJSON_CreateArray();
    r->crc_fd = -1;
    if (!identity_copy(&r->who, who) || !record_set_string(&r->path, path) ||
        !record_set_string(&r->format, "unknown") || !r->values || !r->errors) {
        record_free(r);
        return NULL;
    }
    return r;
}

void record_free(struct record *r)
{
    if (!r) return;
    identity_free(&r->who);
    free(r->path);
    free(r->written_as);
    free(r->format);
    cJSON_Delete(r->values);
    free(r->tensors.text.s);
    tensor_list_free(&r->tensors.list);
    cJSON_Delete(r->errors);
    free(r->digest);
    if (r->crc_fd >= 0) close(r->crc_fd);
    free(r);
}

static void append_all(cJSON *to, cJSON *from)
{
    cJSON *item;
    while ((item = from->child))
        cJSON_AddItemToArray(to, cJSON_DetachItemViaPointer(from, item));
}

/* Each of tensors' items printed onto the record's tensors, and summed up; emptied. Out
 * of memory, the text overflows (and the record cannot be printed) or a summary is
 * missing. */
static void append_tensors(struct record_tensors *to, cJSON *tensors)
{
    locale_t previous = json_c_locale_enter();
    for (cJSON *t; (t = tensors->child); cJSON_Delete(cJSON_DetachItemViaPointer(tensors, t))) {
        if (to->count++) sb_add(&to->text, ",", 1);
        json_add_item(&to->text, t);
        tensor_list_add(&to->list, t);
    }
    json_c_locale_leave(previous);
}

void record_append_findings(struct record *r, cJSON *values, cJSON *tensors, cJSON *errors)
{
    if (cJSON_IsObject(values)) append_all(r->values, values);
    if (cJSON_IsArray(tensors)) append_tensors(&r->tensors, tensors);
    if (cJSON_IsArray(errors)) append_all(r->errors, errors);
}

void record_append_printed(struct record *r, struct printed_tensors *p)
{
    struct record_tensors *to = &r->tensors;
    if (!p->count) return;
    if (to->count) sb_add(&to->text, ",", 1);
    if (p->text.overflow) to->text.overflow = true;
    sb_add(&to->text, p->text.s, p->text.len);
    to->count += p->count;
    for (size_t i = 0; i < p->brief_count; i++)
        tensor_list_add_brief(&to->list, &p->briefs[i]);
}

void record_move_findings(struct record *r, struct record *from)
{
    struct record_tensors none = r->tensors;
    record_append_findings(r, from->values, NULL, from->errors);
    r->tensors = from->tensors;
    from->tensors = none;
}

void record_take_findings(struct record *r, cJSON *findings)
{
    record_append_findings(r, cJSON_GetObjectItemCaseSensitive(findings, "values"),
                           cJSON_GetObjectItemCaseSensitive(findings, "tensors"),
                           cJSON_GetObjectItemCaseSensitive(findings, "errors"));
}

void record_settle(struct record *r)
{
    report_drop_replaced(r->values);
}

static void delete_children(cJSON *container)
{
    while (container->child)
        cJSON_Delete(cJSON_DetachItemViaPointer(container, container->child));
}

void record_clear_findings(struct record *r)
{
    delete_children(r->values);
    sb_truncate(&r->tensors.text, 0);
    r->tensors.count = 0;
    tensor_list_free(&r->tensors.list);
    delete_children(r->errors);
}

void record_add_error(struct record *r, const char *message)
{
    cJSON_AddItemToArray(r->errors, cJSON_CreateString(message));
}

static const char *const parsed_names[] = {
    [PARSED_STREAM] = "stream", [PARSED_REREAD] = "reread", [PARSED_FILE] = "file"};

bool record_set_parsed(struct record *r, const char *name)
{
    for (size_t i = 0; i < sizeof parsed_names / sizeof parsed_names[0]; i++)
        if (!strcmp(name, parsed_names[i])) {
            r->parsed = (enum record_parsed)i;
            return true;
        }
    return false;
}

bool record_take_report(struct record *r, const struct stat *st, struct report *report,
                        const char *format, bool complete)
{
    cJSON *findings = cJSON_CreateObject();
    bool ok = findings && record_set_string(&r->format, format);
    if (ok) {
        r->time_us = (int64_t)st->st_mtim.tv_sec * 1000000 + st->st_mtim.tv_nsec / 1000;
        r->bytes = st->st_size;
        r->complete = complete;
        r->parsed = PARSED_FILE;
        report_take(report, findings);
        record_take_findings(r, findings);
    }
    cJSON_Delete(findings);
    return ok;
}

bool record_read_disk_formats(int fd, const char **format, bool *complete, struct report *r,
                              const struct parse_options *o)
{
    return hdf5_read_claimed(fd, format, complete, r, o) ||
           compressed_read_claimed(fd, format, complete, r, o);
}

struct record *record_from_file(const struct identity *who, int fd, const char *path,
                                const struct stat *st, const struct key_filter *keys,
                                const struct parse_options *parse)
{
    return record_from_file_hashed(who, fd, path, st, keys, parse, false);
}

/* The digest a tap took while the file was read: its text, or an error when the file
 * is not what it was when the read began. */
static void take_digest(struct record *r, struct parser *tap, int fd, const struct stat *st)
{
    char text[DIGEST_TEXT_SIZE];
    struct stat now;
    struct file_id start;
    const char *differs = "state";
    file_id_of(&start, st);
    if (!digest_tap_text(tap, text)) return; /* no libxxhash, or no memory */
    if (fstat(fd, &now) == 0 && !(differs = file_id_differs(&start, &now))) {
        record_set_string(&r->digest, text);
        return;
    }
    char why[128];
    snprintf(why, sizeof why, "digest: none: the file changed while it was read (its %s differs)",
             differs);
    record_add_error(r, why);
}

struct record *record_from_file_hashed(const struct identity *who, int fd, const char *path,
                                       const struct stat *st, const struct key_filter *keys,
                                       const struct parse_options *parse, bool digest)
{
    struct report report;
    struct distcp_items items;
    struct parse_options named = *parse;
    if (dcp_items_of(path, &items)) named.distcp = &items; /* a committed DCP set's file */
    report_init(&report, keys);
    struct parser *p = parser_detect_new(path, &report, &named);
    if (p && digest) p = digest_tap_new(p);
    bool read_ok = p && parse_feed_readahead(fd, 0, p, &report);
    bool complete = p && p->finish(p) && read_ok;
    if (!p) report_error(&report, "out of memory");
    const char *format = p ? p->format : "unknown";
    record_read_disk_formats(fd, &format, &complete, &report, parse);
    struct record *r = record_new(who, path);
    if (r && !record_take_report(r, st, &report, format, complete)) {
        record_free(r);
        r = NULL;
    }
    if (r && digest && read_ok) take_digest(r, p, fd, st);
    if (p) p->destroy(p);
    if (named.distcp) dcp_items_free(&items);
    report_free(&report);
    return r;
}

void format_rfc3339(int64_t time_us, char *out, size_t size)
{
    /* Floor division, so times before 1970 still count microseconds forward. */
    int64_t micros = time_us % 1000000;
    if (micros < 0) micros += 1000000;
    time_t seconds = (time_t)((time_us - micros) / 1000000);
    struct tm tm;
    char date[24];
    if (!gmtime_r(&seconds, &tm) || !strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm))
        snprintf(date, sizeof date, "1970-01-01T00:00:00");
    snprintf(out, size, "%s.%06lldZ", date, (long long)micros);
}

cJSON *record_to_json(const struct record *r)
{
    char time_text[RFC3339_SIZE];
    format_rfc3339(r->time_us, time_text, sizeof time_text);
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddNumberToObject(o, "schema", 1);
    cJSON_AddStringToObject(o, "event", "checkpoint");
    cJSON_AddStringToObject(o, "time", time_text);
    cJSON_AddStringToObject(o, "host", r->who.host ? r->who.host : "unknown");
    cJSON_AddNumberToObject(o, "pid", (double)r->who.pid);
    cJSON_AddStringToObject(o, "program", r->who.program ? r->who.program : "unknown");
    cJSON_AddStringToObject(o, "job", r->who.job ? r->who.job : "unknown");
    if (r->who.run) cJSON_AddStringToObject(o, "run", r->who.run);
    if (r->who.has_rank) cJSON_AddNumberToObject(o, "rank", (double)r->who.rank);
    if (r->who.has_local_rank) cJSON_AddNumberToObject(o, "local_rank", (double)r->who.local_rank);
    if (r->who.has_world_size) cJSON_AddNumberToObject(o, "world_size", (double)r->who.world_size);
    cJSON_AddStringToObject(o, "path", r->path);
    if (r->written_as) cJSON_AddStringToObject(o, "written_as", r->written_as);
    cJSON_AddStringToObject(o, "format", r->format);
    cJSON_AddNumberToObject(o, "bytes", (double)r->bytes);
    cJSON_AddNumberToObject(o, "writes", (double)r->writes);
    cJSON_AddNumberToObject(o, "seconds", r->seconds);
    cJSON_AddBoolToObject(o, "complete", r->complete);
    cJSON_AddStringToObject(o, "parsed", parsed_names[r->parsed]);
    /* References: the record keeps its findings, the printout only borrows them. */
    cJSON_AddItemToObject(o, "values", cJSON_CreateObjectReference(r->values->child));
    cJSON_AddArrayToObject(o, "tensors"); /* its items are r's text: record_print_line */
    if (r->digest) cJSON_AddStringToObject(o, "digest", r->digest);
    if (r->errors->child)
        cJSON_AddItemToObject(o, "errors", cJSON_CreateArrayReference(r->errors->child));
    return o;
}

/* A line printed into a buffer of its own, handed over: NULL when it could not be. */
static char *handed_over(struct strbuf *line, bool printed, size_t *len)
{
    if (printed) {
        *len = line->len;
        return line->s;
    }
    free(line->s);
    return NULL;
}

char *json_line(const cJSON *o, size_t *len)
{
    struct strbuf line = {0};
    return handed_over(&line, o && json_print_line(&line, o, NULL), len);
}

bool record_print_line(const struct record *r, const cJSON *o, struct strbuf *line)
{
    const struct record_tensors *t = &r->tensors;
    struct json_piece piece = {cJSON_GetObjectItemCaseSensitive(o, "tensors"),
                               t->text.s ? t->text.s : "", t->text.len};
    return !t->text.overflow && json_print_line(line, o, &piece);
}

bool record_line(const struct record *r, struct strbuf *line)
{
    cJSON *o = record_to_json(r);
    bool printed = o && record_print_line(r, o, line);
    cJSON_Delete(o);
    return printed;
}

char *record_to_line(const struct record *r, size_t *len)
{
    struct strbuf line = {0};
    return handed_over(&line, record_line(r, &line), len);
}

void record_json_add_alerts(cJSON *o, cJSON *names)
{
    cJSON *tensors = cJSON_GetObjectItemCaseSensitive(o, "tensors");
    if (!tensors) tensors = cJSON_GetObjectItemCaseSensitive(o, "values"); /* a set record */
    if (!tensors) {
        cJSON_AddItemToObject(o, "alerts", names);
        return;
    }
    if (!(names->string = strdup("alerts"))) {
        cJSON_Delete(names);
        return;
    }
    /* Spliced in by hand: Debian's cJSON refuses cJSON_InsertItemInArray on objects.
     * cJSON keeps the last member in the first one's prev. */
    names->prev = tensors;
    names->next = tensors->next;
    if (tensors->next)
        tensors->next->prev = names;
    else
        o->child->prev = names;
    tensors->next = names;
}
