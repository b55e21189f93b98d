/* jsontext.h — cJSON trees as text, with every number exact.
 *
 * cJSON 1.7.15 prints doubles with 15 significant digits when they compare equal within
 * a relative epsilon, so 0.6799999999999999 comes out as 0.68 and 1.7976931348623157e308
 * as a number that overflows to infinity when read back. Records promise the values the
 * checkpoint holds, so everything ckmon prints (agent messages, log lines) goes through
 * this printer instead: the shortest decimal that reads back as the same double,
 * integers without an exponent, in the C locale whatever the program's locale is.
 */
#ifndef CKMON_JSONTEXT_H
#define CKMON_JSONTEXT_H

#include <locale.h>
#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "strbuf.h"

/* The shortest "%.Ng" text of v (finite) that strtod reads back as v (dtoa.h: at a few
 * binade edges a digit fewer); returns its length. size must be at least 32. */
int json_shortest_double(double v, char *out, size_t size);

/* item as compact JSON, malloc'd; NULL when out of memory. Non-finite numbers (which a
 * record never holds: they are strings there) print as null, as cJSON does.
 *
 * Strings are names as the world gave them (paths, programs, keys), which need not be
 * UTF-8; the text is always UTF-8, losslessly (docs/records.md, "Names that are not
 * UTF-8"): a byte that is not part of valid UTF-8 becomes the four characters \xHH
 * (lower-case hex), and a backslash that would read as such an escape (followed by x
 * and two lower-case hex digits naming 00-1f, 5c or 80-ff) becomes \x5c. So \xHH with
 * HH in 00-1f, 5c or 80-ff always stands for the byte HH, and nothing else does.
 *
 * The two bytes C0 80 are U+0000, written \u0000: a string in findings holds a NUL that
 * way (core/parsers/report.h). A path cannot hold a NUL, so in a path \u0000 stands for
 * those two bytes, and is as lossless. */
char *json_print(const cJSON *item);

/* json_print with one array inside item printed from its items' text, ready made (len
 * bytes: "{...},{...}"): a record keeps its tensors, most of a large checkpoint's line, as
 * their text (collector/record.h). */
struct json_piece {
    const cJSON *array;
    const char *items;
    size_t len;
};
char *json_print_piece(const cJSON *item, const struct json_piece *piece);

/* json_print_piece (piece may be NULL) with a newline, in place of line's text; false
 * when it is over the printers' limit or out of memory. The buffer keeps its room from one
 * line to the next (any strbuf will do, {0} too): a record of 100,000 tensors is 35 MB,
 * which printed into fresh memory each time cost the collector a page fault per 4 KiB. */
bool json_print_line(struct strbuf *line, const cJSON *item, const struct json_piece *piece);

/* The same for strings that are such text already (a record read back from the log):
 * their escapes stay as they are, and only a byte that is not UTF-8 becomes \xHH. */
char *json_print_text(const cJSON *item);

/* The same with every non-integer number in 17 significant digits (exact, one printf)
 * and strings as they are: for the agent's messages, which the collector reads back and
 * prints again with json_print. */
char *json_print_wire(const cJSON *item);

/* The same printers, appending to a buffer, for text built piece by piece (core/wire.c);
 * numbers need the C locale, which json_c_locale_enter sets for this thread until
 * json_c_locale_leave(what it returned). */
locale_t json_c_locale_enter(void);
/* The "C" locale itself, so that numbers are read and written with '.' whatever locale
 * the monitored program chose (the parsers' strtod too); (locale_t)0 if it cannot be
 * had. */
locale_t json_c_locale(void);
void json_c_locale_leave(locale_t previous);
void json_add_string(struct strbuf *t, const char *s);
/* A string as json_print prints it (json_add_string: as json_print_wire does). */
void json_add_name(struct strbuf *t, const char *s);
void json_add_wire_number(struct strbuf *t, double v);
/* An integer's digits, without printf. */
void json_add_int(struct strbuf *t, long long v);
/* v with the shortest exact digits, as records print it (no printf: dtoa.h). */
void json_add_number(struct strbuf *t, double v);
/* item as json_print prints it. */
void json_add_item(struct strbuf *t, const cJSON *item);
void json_add_wire_item(struct strbuf *t, const cJSON *item);
/* The same with every non-integer number as the string "#" + the 16 hex digits of its
 * bits (exact, and cheap both ways: the agent sends tensors' statistics so), which
 * json_hex_number reads back; false for any other text. */
void json_add_hex_item(struct strbuf *t, const cJSON *item);
/* One number as json_add_hex_item reads it back: any finite v as the string of its bits
 * (integers too), a non-finite one as null. */
void json_add_hex_number(struct strbuf *t, double v);
bool json_hex_number(const char *s, double *v);
/* A tensor's object as it was so written, parsed: each hex string in it but its name's
 * and dtype's (so also in ci95 and head) becomes the number it stands for. */
void json_tensor_from_hex(cJSON *tensor);

/* A record's line read back (sinks, /metrics): parsed, with each U+0000 in it (\u0000,
 * which cJSON would end its string at) as the text \x00 that stands for that byte in a
 * record's names (above), so that "a\0b" and "a\0c" stay two metric labels. NULL when it
 * is not JSON. */
cJSON *json_parse_record_line(const char *line, size_t len);

/* At least the length of item's text from either printer, with its "key": when it has
 * one (a member of an object), found without printing it. */
size_t json_text_bound(const cJSON *item);

#endif
