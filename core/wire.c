/* wire.c — the agent → collector messages to text and back (see wire.h).
 *
 * One encoder and one decoder per kind, side by side, so that a member's name is
 * written once for both directions. The encoder appends to a strbuf with no tree in
 * between (the agent encodes on the monitored program's threads); the decoder reads
 * the packet with cJSON, a data message's tensors with a reader of their own
 * (wire_tensors.h), and points into it.
 */
#include "wire.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "jsontext.h"
#include "wire_tensors.h"

static const char *const kind_names[WIRE_KINDS] = {
    [WIRE_HELLO] = "hello",
    [WIRE_OPEN] = "open",
    [WIRE_DATA] = "data",
    [WIRE_CLOSE] = "close",
    [WIRE_RENAME] = "rename",
    [WIRE_EXEC] = "exec",
    [WIRE_EXEC_FAILED] = "exec_failed",
    [WIRE_ADOPT] = "adopt",
    [WIRE_UNMATCHED] = "unmatched",
    [WIRE_VERIFIED] = "verified",
    [WIRE_LOAD] = "load",
    [WIRE_ACK] = "ack",
};

const char *wire_kind_name(enum wire_kind kind)
{
    return kind < WIRE_KINDS ? kind_names[kind] : "";
}

/* ---- encoding: members after the "t" one, each starting with its comma ---- */

static void put_key(struct strbuf *b, const char *name)
{
    sb_add(b, ",\"", 2); /* not sb_addf: printf's parsing of the format, per member */
    sb_addz(b, name);
    sb_add(b, "\":", 2);
}

static void put_int(struct strbuf *b, const char *name, int64_t v)
{
    if (v == WIRE_ABSENT) return;
    put_key(b, name);
    json_add_int(b, v);
}

static void put_number(struct strbuf *b, const char *name, double v)
{
    if (isnan(v)) return;
    put_key(b, name);
    json_add_wire_number(b, v);
}

static void put_string(struct strbuf *b, const char *name, const char *s)
{
    if (!s) return;
    put_key(b, name);
    json_add_string(b, s);
}

static void put_bool(struct strbuf *b, const char *name, bool v)
{
    put_key(b, name);
    sb_addz(b, v ? "true" : "false");
}

static void put_item(struct strbuf *b, const char *name, const cJSON *item)
{
    if (!item || !item->child) return;
    put_key(b, name);
    json_add_wire_item(b, item);
}

/* Tensors: their statistics as hex (jsontext.h), which the collector reads without
 * strtod. */
static void put_hex_item(struct strbuf *b, const char *name, const cJSON *item)
{
    if (!item || !item->child) return;
    put_key(b, name);
    json_add_hex_item(b, item);
}

static void put_strings(struct strbuf *b, const char *name, char *const *list, size_t n)
{
    put_key(b, name);
    sb_add(b, "[", 1);
    for (size_t i = 0; i < n; i++) {
        if (i) sb_add(b, ",", 1);
        json_add_string(b, list[i]);
    }
    sb_add(b, "]", 1);
}

static void encode_hello(const struct wire_message *m, struct strbuf *b)
{
    const struct wire_hello *h = &m->hello;
    put_int(b, "pid", h->pid);
    put_string(b, "program", h->program);
    put_string(b, "host", h->host);
    put_string(b, "job", h->job);
    put_string(b, "run", h->run);
    put_string(b, "session", h->session);
    put_int(b, "rank", h->rank);
    put_int(b, "local_rank", h->local_rank);
    put_int(b, "world_size", h->world_size);
    put_number(b, "sample", h->sample);
    if (h->dropped > 0) put_int(b, "dropped", h->dropped);
    put_strings(b, "keys", h->keys, h->key_count);
}

static void encode_open(const struct wire_message *m, struct strbuf *b)
{
    put_int(b, "id", m->open.id);
    put_string(b, "path", m->open.path);
    put_int(b, "time_us", m->open.time_us);
}

static void encode_data(const struct wire_message *m, struct strbuf *b)
{
    const struct wire_data *d = &m->data;
    put_int(b, "id", d->id);
    put_int(b, "bytes", d->bytes);
    put_int(b, "writes", d->writes);
    put_string(b, "format", d->format);
    if (d->reset) put_bool(b, "reset", true);
    put_item(b, "values", d->values);
    put_hex_item(b, "tensors", d->tensors);
    put_item(b, "errors", d->errors);
}

static void encode_close(const struct wire_message *m, struct strbuf *b)
{
    const struct wire_close *c = &m->close;
    put_int(b, "id", c->id);
    put_int(b, "time_us", c->time_us);
    put_string(b, "path", c->path);
    put_string(b, "written_as", c->written_as);
    put_string(b, "format", c->format);
    put_int(b, "bytes", c->bytes);
    put_int(b, "writes", c->writes);
    if (c->ino > 0) { /* no inode is 0: a message built without them (tests) sends none */
        put_int(b, "dev", c->dev);
        put_int(b, "ino", c->ino);
        put_int(b, "mtime_us", c->mtime_us);
    }
    put_number(b, "seconds", c->seconds);
    put_bool(b, "complete", c->complete);
    put_string(b, "parsed", c->parsed);
    if (c->candidate) put_bool(b, "candidate", true);
    if (c->crc_left) put_bool(b, "crc_left", true);
    if (c->lost_tensors > 0) put_int(b, "lost_tensors", c->lost_tensors);
    if (c->lost_values > 0) put_int(b, "lost_values", c->lost_values);
}

static void encode_rename(const struct wire_message *m, struct strbuf *b)
{
    put_string(b, "from", m->rename.from);
    put_string(b, "to", m->rename.to);
    if (m->kind == WIRE_ADOPT) put_int(b, "time_us", m->rename.time_us);
}

static void encode_exec(const struct wire_message *m, struct strbuf *b)
{
    put_key(b, "kept");
    sb_add(b, "[", 1);
    for (size_t i = 0; i < m->exec.kept_count; i++)
        sb_addf(b, "%s%lld", i ? "," : "", (long long)m->exec.kept[i]);
    sb_add(b, "]", 1);
}

static void encode_unmatched(const struct wire_message *m, struct strbuf *b)
{
    put_strings(b, "paths", m->unmatched.paths, m->unmatched.path_count);
}

static void encode_verified(const struct wire_message *m, struct strbuf *b)
{
    put_item(b, "record", m->verified.record);
}

static void encode_load(const struct wire_message *m, struct strbuf *b)
{
    put_string(b, "path", m->load.path);
    put_int(b, "time_us", m->load.time_us);
    put_int(b, "bytes", m->load.bytes);
    put_int(b, "mtime_us", m->load.mtime_us);
}

static void encode_nothing(const struct wire_message *m, struct strbuf *b)
{
    (void)m, (void)b;
}

/* ---- decoding: false when a required member is missing ---- */

static const char *get_string(const cJSON *msg, const char *name)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(msg, name));
}

/* A number as an integer member: within int64 range (JSON readers keep every number as a
 * double), or WIRE_ABSENT. */
static int64_t int_of(double v)
{
    return v >= -9.2e18 && v <= 9.2e18 ? (int64_t)v : WIRE_ABSENT;
}

static int64_t get_int(const cJSON *msg, const char *name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(msg, name);
    return cJSON_IsNumber(item) ? int_of(item->valuedouble) : WIRE_ABSENT;
}

static double get_number(const cJSON *msg, const char *name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(msg, name);
    return cJSON_IsNumber(item) ? item->valuedouble : NAN;
}

static cJSON *get_container(const cJSON *msg, const char *name, bool object)
{
    cJSON *item = cJSON_GetObjectItemCaseSensitive(msg, name);
    return (object ? cJSON_IsObject(item) : cJSON_IsArray(item)) ? item : NULL;
}

/* An array of strings (anything else in it makes it malformed), as a list the message
 * owns. */
static bool get_strings(const cJSON *array, struct wire_message *m, char *const **out, size_t *n)
{
    const cJSON *k;
    if (!cJSON_IsArray(array)) return false;
    cJSON_ArrayForEach(k, array) if (!cJSON_IsString(k)) return false;
    size_t size = (size_t)cJSON_GetArraySize(array);
    char **list = size ? malloc(size * sizeof *list) : NULL;
    if (size && !list) return false;
    *n = 0;
    cJSON_ArrayForEach(k, array) list[(*n)++] = k->valuestring;
    *out = list;
    m->list = list;
    return true;
}

static bool decode_hello(const cJSON *msg, struct wire_message *m)
{
    struct wire_hello *h = &m->hello;
    *h = (struct wire_hello){
        .pid = get_int(msg, "pid"),
        .program = get_string(msg, "program"),
        .host = get_string(msg, "host"),
        .job = get_string(msg, "job"),
        .run = get_string(msg, "run"),
        .session = get_string(msg, "session"),
        .rank = get_int(msg, "rank"),
        .local_rank = get_int(msg, "local_rank"),
        .world_size = get_int(msg, "world_size"),
        .sample = get_number(msg, "sample"),
        .dropped = get_int(msg, "dropped"),
    };
    const cJSON *keys = cJSON_GetObjectItemCaseSensitive(msg, "keys");
    return !keys || get_strings(keys, m, &h->keys, &h->key_count);
}

static bool decode_unmatched(const cJSON *msg, struct wire_message *m)
{
    m->unmatched = (struct wire_unmatched){0};
    return get_strings(cJSON_GetObjectItemCaseSensitive(msg, "paths"), m, &m->unmatched.paths,
                       &m->unmatched.path_count);
}

static bool decode_open(const cJSON *msg, struct wire_message *m)
{
    m->open = (struct wire_open){.id = get_int(msg, "id"),
                                 .path = get_string(msg, "path"),
                                 .time_us = get_int(msg, "time_us")};
    return m->open.id != WIRE_ABSENT && m->open.path;
}

static bool decode_data(const cJSON *msg, struct wire_message *m)
{
    m->data = (struct wire_data){
        .id = get_int(msg, "id"),
        .bytes = get_int(msg, "bytes"),
        .writes = get_int(msg, "writes"),
        .format = get_string(msg, "format"),
        .reset = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(msg, "reset")),
        .values = get_container(msg, "values", true),
        .tensors = get_container(msg, "tensors", false),
        .errors = get_container(msg, "errors", false),
        .texts = m->texts.read ? &m->texts : NULL,
    };
    return m->data.id != WIRE_ABSENT;
}

static bool decode_close(const cJSON *msg, struct wire_message *m)
{
    m->close = (struct wire_close){
        .id = get_int(msg, "id"),
        .time_us = get_int(msg, "time_us"),
        .bytes = get_int(msg, "bytes"),
        .writes = get_int(msg, "writes"),
        .dev = get_int(msg, "dev"),
        .ino = get_int(msg, "ino"),
        .mtime_us = get_int(msg, "mtime_us"),
        .path = get_string(msg, "path"),
        .written_as = get_string(msg, "written_as"),
        .format = get_string(msg, "format"),
        .parsed = get_string(msg, "parsed"),
        .seconds = get_number(msg, "seconds"),
        .complete = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(msg, "complete")),
        .candidate = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(msg, "candidate")),
        .crc_left = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(msg, "crc_left")),
        .lost_tensors = get_int(msg, "lost_tensors"),
        .lost_values = get_int(msg, "lost_values"),
    };
    return m->close.id != WIRE_ABSENT;
}

static bool decode_rename(const cJSON *msg, struct wire_message *m)
{
    m->rename = (struct wire_rename){
        .from = get_string(msg, "from"),
        .to = get_string(msg, "to"),
        .time_us = m->kind == WIRE_ADOPT ? get_int(msg, "time_us") : WIRE_ABSENT,
    };
    return m->rename.from && m->rename.to;
}

/* Members of "kept" that are not integers name no file: left out. */
static bool decode_exec(const cJSON *msg, struct wire_message *m)
{
    const cJSON *kept = cJSON_GetObjectItemCaseSensitive(msg, "kept"), *k;
    if (!cJSON_IsArray(kept)) return false;
    size_t n = (size_t)cJSON_GetArraySize(kept);
    int64_t *ids = n ? malloc(n * sizeof *ids) : NULL;
    if (n && !ids) return false;
    m->exec = (struct wire_exec){.kept = ids};
    for (k = kept->child; k; k = k->next)
        if (cJSON_IsNumber(k) && k->valuedouble == floor(k->valuedouble) &&
            fabs(k->valuedouble) <= 9.2e18)
            ids[m->exec.kept_count++] = (int64_t)k->valuedouble;
    m->list = ids;
    return true;
}

static bool decode_verified(const cJSON *msg, struct wire_message *m)
{
    const cJSON *record = get_container(msg, "record", true);
    const char *event = get_string(record, "event");
    m->verified.record = record;
    return event && !strcmp(event, "verify");
}

static bool decode_load(const cJSON *msg, struct wire_message *m)
{
    m->load = (struct wire_load){.path = get_string(msg, "path"),
                                 .time_us = get_int(msg, "time_us"),
                                 .bytes = get_int(msg, "bytes"),
                                 .mtime_us = get_int(msg, "mtime_us")};
    return m->load.path != NULL;
}

static bool decode_nothing(const cJSON *msg, struct wire_message *m)
{
    (void)msg, (void)m;
    return true;
}

static const struct {
    void (*encode)(const struct wire_message *m, struct strbuf *b);
    bool (*decode)(const cJSON *msg, struct wire_message *m);
} codecs[WIRE_KINDS] = {
    [WIRE_HELLO] = {encode_hello, decode_hello},
    [WIRE_OPEN] = {encode_open, decode_open},
    [WIRE_DATA] = {encode_data, decode_data},
    [WIRE_CLOSE] = {encode_close, decode_close},
    [WIRE_RENAME] = {encode_rename, decode_rename},
    [WIRE_EXEC] = {encode_exec, decode_exec},
    [WIRE_EXEC_FAILED] = {encode_nothing, decode_nothing},
    [WIRE_ADOPT] = {encode_rename, decode_rename},
    [WIRE_UNMATCHED] = {encode_unmatched, decode_unmatched},
    [WIRE_VERIFIED] = {encode_verified, decode_verified},
    [WIRE_LOAD] = {encode_load, decode_load},
    [WIRE_ACK] = {encode_nothing, decode_nothing},
};

bool wire_encode(const struct wire_message *m, struct strbuf *out)
{
    if (m->kind >= WIRE_KINDS) return false;
    locale_t previous = json_c_locale_enter();
    sb_addz(out, "{\"t\":\""); /* no printf per message */
    sb_addz(out, kind_names[m->kind]);
    sb_add(out, "\"", 1);
    codecs[m->kind].encode(m, out);
    if (m->seq > 0) put_int(out, "seq", m->seq);
    sb_add(out, "}", 1);
    json_c_locale_leave(previous);
    return !out->overflow && out->s;
}

/* An acknowledgement as collectors write it, {"t":"ack","seq":N} with N from 1 to 18
 * digits: one for each message an agent sends while the collector keeps up, so read
 * without a tree. Anything else is left to the decoder. */
static bool plain_ack(const char *data, size_t len, struct wire_message *m)
{
    static const char head[] = "{\"t\":\"ack\",\"seq\":";
    size_t n = sizeof head - 1, digits = len - n - 1;
    if (len <= n + 1 || digits > 18 || memcmp(data, head, n) || data[len - 1] != '}' ||
        data[n] == '0')
        return false;
    int64_t seq = 0;
    for (size_t i = n; i < len - 1; i++) {
        if (data[i] < '0' || data[i] > '9') return false;
        seq = seq * 10 + (data[i] - '0');
    }
    *m = (struct wire_message){.kind = WIRE_ACK, .seq = seq};
    return true;
}

/* A data message of plain members (wire_tensors.h), decoded as decode_data would have:
 * most of what agents send, without a tree. */
static bool plain_data(const char *data, size_t len, struct wire_message *m)
{
    struct plain_data d;
    struct printed_tensors texts;
    if (!wire_read_plain_data(data, len, &d, &texts)) return false;
    int64_t seq = int_of(d.seq);
    *m = (struct wire_message){
        .kind = WIRE_DATA, .seq = seq > 0 ? seq : 0, .list = d.format, .texts = texts};
    m->data = (struct wire_data){.id = int_of(d.id),
                                 .bytes = int_of(d.bytes),
                                 .writes = int_of(d.writes),
                                 .format = d.format,
                                 .texts = m->texts.read ? &m->texts : NULL};
    if (m->data.id != WIRE_ABSENT) return true;
    wire_message_free(m); /* malformed: the tree's decoder says so */
    return false;
}

enum wire_status wire_decode(const char *data, size_t len, struct wire_message *m)
{
    if (plain_ack(data, len, m) || plain_data(data, len, m)) return WIRE_OK;
    struct printed_tensors texts;
    cJSON *tree = wire_parse_packet(data, len, &texts);
    *m = (struct wire_message){.tree = tree, .texts = texts};
    const char *kind = get_string(m->tree, "t");
    enum wire_status status = kind ? WIRE_UNKNOWN : WIRE_MALFORMED;
    for (int k = 0; kind && k < WIRE_KINDS; k++)
        if (!strcmp(kind, kind_names[k])) {
            m->kind = (enum wire_kind)k;
            status = codecs[k].decode(m->tree, m) ? WIRE_OK : WIRE_MALFORMED;
            int64_t seq = get_int(m->tree, "seq");
            m->seq = seq > 0 ? seq : 0;
            if (k == WIRE_ACK && !m->seq) status = WIRE_MALFORMED;
            break;
        }
    if (status != WIRE_OK) wire_message_free(m);
    return status;
}

void wire_message_free(struct wire_message *m)
{
    cJSON_Delete(m->tree);
    free(m->list);
    printed_tensors_free(&m->texts);
    m->tree = NULL;
    m->list = NULL;
}
