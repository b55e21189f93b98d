/* latest.c — the newest sample of every series (see latest.h).
 *
 * An open-addressing hash table from the series text (`name{labels}`) to its value,
 * under one mutex: the server thread adds records, the HTTP thread renders. Rendering
 * sorts the series, so each family's samples are together under one # HELP/# TYPE.
 * Expired series are dropped when the table is rebuilt anyway (a file's next
 * checkpoint, growth) and before each rendering, so no extra pass runs per record.
 */
#include "latest.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "core/jsontext.h"
#include "metrics.h"

struct entry {
    char *series;    /* NULL: an empty slot */
    char *group;     /* the labels of the record's file it came from; NULL: none */
    bool counter;    /* the collector's own: never expires */
    int64_t seen_ns; /* when a record last set it (CLOCK_MONOTONIC) */
    double value;
};

struct latest {
    pthread_mutex_t lock;
    struct entry *slots;
    size_t capacity, used; /* capacity is a power of two */
    int64_t now_ns;        /* the record being added: when it came */
};

static int64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

struct latest *latest_new(void)
{
    struct latest *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    pthread_mutex_init(&l->lock, NULL);
    return l;
}

void latest_free(struct latest *l)
{
    if (!l) return;
    for (size_t i = 0; i < l->capacity; i++) {
        free(l->slots[i].series);
        free(l->slots[i].group);
    }
    free(l->slots);
    pthread_mutex_destroy(&l->lock);
    free(l);
}

static size_t hash(const char *s)
{
    size_t h = 14695981039346656037ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static struct entry *find(struct entry *slots, size_t capacity, const char *series)
{
    for (size_t i = hash(series) & (capacity - 1);; i = (i + 1) & (capacity - 1))
        if (!slots[i].series || !strcmp(slots[i].series, series)) return &slots[i];
}

/* The table again in capacity slots, without the entries of group (NULL: none) and
 * those of records that no record set since before_ns. */
static bool rebuild(struct latest *l, size_t capacity, const char *group, int64_t before_ns)
{
    struct entry *slots = calloc(capacity, sizeof *slots);
    if (!slots) return false;
    l->used = 0;
    for (size_t i = 0; i < l->capacity; i++) {
        struct entry *e = &l->slots[i];
        if (!e->series) continue;
        if ((group && e->group && !strcmp(e->group, group)) ||
            (!e->counter && e->seen_ns < before_ns)) {
            free(e->series);
            free(e->group);
            continue;
        }
        *find(slots, capacity, e->series) = *e;
        l->used++;
    }
    free(l->slots);
    l->slots = slots;
    l->capacity = capacity;
    return true;
}

/* The cut-off of expiry at time now_ns. */
static int64_t keep_since(int64_t now_ns)
{
    return now_ns - (int64_t)LATEST_KEEP_SECONDS * 1000000000;
}

/* With the lock held. A series that cannot be stored (no memory) is left out. A record's
 * series (counter false) is stamped with the time of the record being added. */
static void set_locked(struct latest *l, const char *series, const char *group, bool counter,
                       double value)
{
    if ((l->used + 1) * 4 > l->capacity * 3 &&
        !rebuild(l, l->capacity ? l->capacity * 2 : 256, NULL, keep_since(l->now_ns)))
        return;
    struct entry *e = find(l->slots, l->capacity, series);
    if (!e->series) {
        char *copy = group ? strdup(group) : NULL;
        if ((group && !copy) || !(e->series = strdup(series))) {
            free(copy);
            return;
        }
        e->group = copy;
        l->used++;
    }
    e->counter = counter;
    e->seen_ns = l->now_ns;
    e->value = value;
}

void latest_set(struct latest *l, const char *series, double value)
{
    pthread_mutex_lock(&l->lock);
    set_locked(l, series, NULL, true, value);
    pthread_mutex_unlock(&l->lock);
}

struct keeping {
    struct latest *l;
    const char *group;
};

static void keep_sample(void *ctx, const struct sample *s)
{
    struct keeping *k = ctx;
    struct strbuf series = {.limit = 1 << 20};
    prom_add_series(&series, s);
    if (series.s && !series.overflow) set_locked(k->l, series.s, k->group, false, s->value);
    free(series.s);
}

/* A checkpoint's samples replace those of the last checkpoint of its file (its job,
 * host, run, rank and file labels), as a Pushgateway group does: a value that is gone
 * from the new checkpoint (a NaN flag, a key) is gone from /metrics too. */
static void keep_checkpoint(struct latest *l, const cJSON *record)
{
    struct record_labels labels;
    if (!record_labels_get(record, &labels)) return;
    struct strbuf group = {.limit = 1 << 20};
    struct sample s = {.metric = ""};
    metrics_common_labels(&s, &labels);
    prom_add_series(&group, &s);
    if (!group.s || group.overflow) {
        free(group.s);
        return;
    }
    if (l->capacity) rebuild(l, l->capacity, group.s, keep_since(l->now_ns));
    struct keeping k = {l, group.s};
    metrics_for_record(record, &labels, keep_sample, &k);
    free(group.s);
}

void latest_add_line(struct latest *l, const char *line, size_t len)
{
    cJSON *record = json_parse_record_line(line, len);
    const cJSON *event = cJSON_GetObjectItemCaseSensitive(record, "event");
    struct strbuf counter = {.limit = 4096};
    pthread_mutex_lock(&l->lock);
    l->now_ns = monotonic_ns();
    if (cJSON_IsString(event)) {
        struct sample s = {.metric = "ckmon_records_total",
                           .labels = {{"event", event->valuestring}},
                           .label_count = 1};
        prom_add_series(&counter, &s);
        struct entry *e = counter.s && !counter.overflow && l->capacity
                              ? find(l->slots, l->capacity, counter.s)
                              : NULL;
        if (counter.s && !counter.overflow)
            set_locked(l, counter.s, NULL, true, e && e->series ? e->value + 1 : 1);
    }
    struct record_labels labels;
    struct keeping counts = {l, NULL}; /* a count (alert, load, verify): not a file's samples */
    if ((cJSON_IsString(event) && !strcmp(event->valuestring, "checkpoint")) ||
        record_is_set(record))
        keep_checkpoint(l, record);
    else if ((record_is_alert(record) || record_is_load(record) || record_is_verify(record)) &&
             record_labels_get(record, &labels))
        metrics_for_record(record, &labels, keep_sample, &counts);
    pthread_mutex_unlock(&l->lock);
    free(counter.s);
    cJSON_Delete(record);
}

static int by_series(const void *a, const void *b)
{
    return strcmp(((const struct entry *)a)->series, ((const struct entry *)b)->series);
}

/* The family of a series: its name, up to the labels. */
static size_t family_len(const char *series)
{
    return strcspn(series, "{");
}

void latest_expire(struct latest *l, int64_t before_ns)
{
    pthread_mutex_lock(&l->lock);
    if (l->capacity) rebuild(l, l->capacity, NULL, before_ns);
    pthread_mutex_unlock(&l->lock);
}

bool latest_render(struct latest *l, struct strbuf *out)
{
    latest_expire(l, keep_since(monotonic_ns()));
    pthread_mutex_lock(&l->lock);
    struct entry *sorted = malloc((l->used ? l->used : 1) * sizeof *sorted);
    size_t n = 0;
    for (size_t i = 0; sorted && i < l->capacity; i++)
        if (l->slots[i].series) sorted[n++] = l->slots[i];
    if (sorted) qsort(sorted, n, sizeof *sorted, by_series);
    const char *family = NULL;
    size_t flen = 0;
    for (size_t i = 0; sorted && i < n; i++) {
        const char *series = sorted[i].series;
        size_t len = family_len(series);
        if (!family || len != flen || strncmp(family, series, len)) {
            char name[256];
            const char *type;
            snprintf(name, sizeof name, "%.*s", (int)len, series);
            const char *help = metric_help(name, &type);
            const char *parts[] = {"# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n"};
            for (size_t k = 0; k < sizeof parts / sizeof parts[0]; k++)
                sb_addz(out, parts[k]);
            family = series;
            flen = len;
        }
        sb_addz(out, series);
        sb_addz(out, " ");
        prom_add_number(out, sorted[i].value);
        sb_addz(out, "\n");
    }
    pthread_mutex_unlock(&l->lock);
    bool ok = sorted && !out->overflow;
    free(sorted);
    return ok;
}
