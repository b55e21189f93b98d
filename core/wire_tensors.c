/* wire_tensors.c — a data message read with its tensors built straight into cJSON (see
 * wire_tensors.h), with a reader (jsonread.h) that gives up where cJSON might read the
 * text otherwise: then cJSON parses the packet whole, as before.
 */
#include "wire_tensors.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jsonread.h"
#include "jsontext.h"

#define MAX_DEPTH      4  /* the array, a tensor, its ci95, shape or head, and one more */
#define MAX_SKIP_DEPTH 64 /* the members before "tensors" (values may nest) */

/* The tensors' own member names: kept as constant strings (cJSON_AddItemToObjectCS), not
 * a copy per tensor. The name and dtype come first: in a tensor they stay strings. */
static const char *const tensor_keys[] = {
    "name", "dtype", "shape", "min", "max", "mean", "std", "nan", "inf", "sampled", "ci95", "head",
};

static cJSON *read_value(struct json_reader *r, int depth, bool numbers);

/* The text "#" + 16 hex digits at r->p (a string's, past its quote, as written by
 * json_add_hex_item) as the double whose bits they are, read in place; false, and
 * nothing read, for any other text. */
static bool hex_number(struct json_reader *r, double *v)
{
    uint64_t bits = 0;
    const char *p = r->p;
    if (r->end - p < 19 || p[0] != '"' || p[1] != '#' || p[18] != '"') return false;
    for (int i = 2; i < 18; i++) {
        int d = p[i] >= 'a' ? p[i] - 'a' + 10 : p[i] - '0';
        if (d < 0 || d > 15 || (p[i] > '9' && p[i] < 'a')) return false;
        bits = bits << 4 | (uint64_t)d;
    }
    memcpy(v, &bits, sizeof *v);
    r->p += 19;
    return true;
}

/* A string, or the number its text "#" + 16 hex digits stands for when numbers. */
static cJSON *string_value(struct json_reader *r, bool numbers)
{
    size_t len;
    double v;
    if (numbers && hex_number(r, &v)) return cJSON_CreateNumber(v);
    if (!json_read_string(r, &len)) return NULL;
    if (numbers && len == 17 && json_hex_number(r->text, &v)) /* written with escapes */
        return cJSON_CreateNumber(v);
    return cJSON_CreateString(r->text); /* no NUL in it: U+0000 is left to cJSON */
}

static const char *tensor_key(const char *key)
{
    for (size_t i = 0; i < sizeof tensor_keys / sizeof tensor_keys[0]; i++)
        if (tensor_keys[i][0] == key[0] && !strcmp(key, tensor_keys[i])) return tensor_keys[i];
    return NULL;
}

/* An object; in a tensor (depth 1) the name and dtype stay strings whatever they say. */
static cJSON *read_object(struct json_reader *r, int depth)
{
    cJSON *o = cJSON_CreateObject();
    if (!o || !json_read_take(r, '{')) return cJSON_Delete(o), NULL;
    if (json_read_take(r, '}')) return o;
    do {
        size_t len;
        if (!json_read_string(r, &len) || !json_read_take(r, ':')) break;
        const char *constant = tensor_key(r->text);
        char *key = constant ? NULL : strdup(r->text);
        bool numbers = depth != 1 || (constant != tensor_keys[0] && constant != tensor_keys[1]);
        cJSON *item = (constant || key) ? read_value(r, depth + 1, numbers) : NULL;
        bool added = item && (constant ? cJSON_AddItemToObjectCS(o, constant, item)
                                       : cJSON_AddItemToObject(o, key, item));
        free(key);
        if (!added) {
            cJSON_Delete(item);
            break;
        }
        if (json_read_take(r, '}')) return o;
    } while (json_read_take(r, ','));
    cJSON_Delete(o);
    return NULL;
}

static cJSON *read_array(struct json_reader *r, int depth, bool numbers)
{
    cJSON *a = cJSON_CreateArray();
    if (!a || !json_read_take(r, '[')) return cJSON_Delete(a), NULL;
    if (json_read_take(r, ']')) return a;
    do {
        cJSON *item = read_value(r, depth + 1, numbers);
        if (!item || !cJSON_AddItemToArray(a, item)) {
            cJSON_Delete(item);
            break;
        }
        if (json_read_take(r, ']')) return a;
    } while (json_read_take(r, ','));
    cJSON_Delete(a);
    return NULL;
}

static cJSON *read_number(struct json_reader *r)
{
    double v;
    return json_read_number(r, &v) ? cJSON_CreateNumber(v) : NULL;
}

static cJSON *read_value(struct json_reader *r, int depth, bool numbers)
{
    if (depth > MAX_DEPTH) return NULL;
    switch (json_read_peek(r)) {
    case '{':
        return read_object(r, depth);
    case '[':
        return read_array(r, depth, numbers);
    case '"':
        return string_value(r, numbers);
    case 't':
        return json_read_literal(r, "true") ? cJSON_CreateTrue() : NULL;
    case 'f':
        return json_read_literal(r, "false") ? cJSON_CreateFalse() : NULL;
    case 'n':
        return json_read_literal(r, "null") ? cJSON_CreateNull() : NULL;
    default:
        return read_number(r);
    }
}

/* The tensors: an array of objects, or NULL. */
static cJSON *read_tensors(struct json_reader *r)
{
    cJSON *a = read_array(r, 0, false), *t;
    cJSON_ArrayForEach(t, a) if (!cJSON_IsObject(t)) return cJSON_Delete(a), NULL;
    return a;
}

/* The packet's top-level "tensors" array, read; [*start, *end) its text. NULL when
 * there is none, or this reader would not take it. */
static cJSON *find_tensors(struct json_reader *r, size_t *start, size_t *end, const char *packet)
{
    size_t len;
    if (!json_read_take(r, '{') || json_read_next_is(r, '}')) return NULL;
    do {
        if (!json_read_string(r, &len) || !json_read_take(r, ':')) return NULL;
        if (!strcmp(r->text, "tensors")) {
            json_read_peek(r);
            *start = (size_t)(r->p - packet);
            cJSON *tensors = json_read_next_is(r, '[') ? read_tensors(r) : NULL;
            *end = (size_t)(r->p - packet);
            return tensors;
        }
        if (!json_read_skip(r, MAX_SKIP_DEPTH)) return NULL;
    } while (json_read_take(r, ','));
    return NULL;
}

/* The packet with its tensors' text [start, end) as null, parsed by cJSON, and then the
 * tensors read put in their place. */
static cJSON *parse_around(const char *packet, size_t len, size_t start, size_t end, cJSON *tensors)
{
    size_t rest = start + 4 + (len - end);
    char *text = malloc(rest);
    cJSON *tree = NULL;
    if (text) {
        memcpy(text, packet, start);
        memcpy(text + start, "null", 4);
        memcpy(text + start + 4, packet + end, len - end);
        tree = cJSON_ParseWithLength(text, rest);
        free(text);
    }
    if (tree && cJSON_ReplaceItemInObjectCaseSensitive(tree, "tensors", tensors)) return tree;
    cJSON_Delete(tree);
    cJSON_Delete(tensors);
    return NULL;
}

/* cJSON's parse of the whole packet, its tensors' hex strings then made numbers. */
static cJSON *parse_whole(const char *packet, size_t len)
{
    cJSON *tree = cJSON_ParseWithLength(packet, len);
    cJSON *tensors = cJSON_GetObjectItemCaseSensitive(tree, "tensors"), *t;
    if (cJSON_IsArray(tensors)) cJSON_ArrayForEach(t, tensors) json_tensor_from_hex(t);
    return tree;
}

cJSON *wire_parse_packet(const char *packet, size_t len)
{
    struct json_reader r;
    size_t start = 0, end = 0;
    cJSON *tensors =
        json_read_init(&r, packet, len) ? find_tensors(&r, &start, &end, packet) : NULL;
    json_read_free(&r);
    cJSON *tree = tensors ? parse_around(packet, len, start, end, tensors) : NULL;
    return tree ? tree : parse_whole(packet, len);
}
