/* jsonread.h — JSON text read in place, value by value, without a tree.
 *
 * Text that holds one item per tensor (a data message's tensors, a safetensors header)
 * cost more in cJSON's nodes, its copies of every name and their freeing than in
 * anything done with it. A reader walks the text instead and hands over one string or
 * number at a time. It takes RFC 8259 JSON as writers write it and refuses what it does
 * not know (white space but JSON's, raw control characters in strings, an escape of
 * U+0000, an unpaired surrogate, a number that strtod does not read whole, nesting past
 * what its caller allows): callers then give the text to cJSON, as before, so what they
 * find is always what cJSON would have found. Numbers are what strtod reads in the C
 * locale, as cJSON reads them.
 */
#ifndef CKMON_JSONREAD_H
#define CKMON_JSONREAD_H

#include <stdbool.h>
#include <stddef.h>

struct json_reader {
    const char *p, *end; /* what is left to read */
    char *text;          /* the string read last (json_read_string), NUL-terminated */
    size_t room;         /* text's size once it is had: the longest string's */
};

/* A reader of len bytes at text. Its room for strings is had when the first is read
 * (json_read_string fails when it cannot be): a message whose names are all matched in
 * place needs none. True. */
bool json_read_init(struct json_reader *r, const char *text, size_t len);
void json_read_free(struct json_reader *r);

/* The next character after white space (stepped over), '\0' at the end. */
char json_read_peek(struct json_reader *r);
/* Whether the next character after white space is c (which it then steps over, for
 * take). */
bool json_read_next_is(struct json_reader *r, char c);
bool json_read_take(struct json_reader *r, char c);
/* A string, its escapes undone, into r->text (*len bytes). */
bool json_read_string(struct json_reader *r, size_t *len);
/* A number, when the next character starts one. */
bool json_read_number(struct json_reader *r, double *v);
/* true, false or null, when the text there is word. */
bool json_read_literal(struct json_reader *r, const char *word);
/* Steps over one value, nested at most depth deep. */
bool json_read_skip(struct json_reader *r, int depth);

#endif
