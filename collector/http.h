/* http.h — one HTTP request with libcurl, as the sinks need it.
 *
 * A request is sent whole or not at all from the caller's view: the result says the
 * status (0 when no response came), libcurl's error when there was no answer, the
 * server's Retry-After, and the start of the response body for dead letters and
 * messages. Bodies are gzip-compressed here because libcurl does not compress uploads.
 */
#ifndef CKMON_HTTP_H
#define CKMON_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "core/strbuf.h"

/* How much of a response body is kept: enough for InfluxDB to name every line of a
 * batch it refused (a dead letter keeps the first DEAD_LETTER_RESPONSE bytes). */
#define HTTP_RESPONSE_KEEP (1u << 20)

struct http_client; /* a libcurl handle, reused so connections stay open */

struct http_result {
    long status;        /* 0: no response (connection refused, timeout, ...) */
    char error[256];    /* why there was no response, or "" */
    double retry_after; /* seconds the server asked to wait, or -1 */
    struct strbuf response;
};

/* Loads libcurl (once; later calls do nothing). False, with the reason in err, when it
 * cannot be loaded: call it where failing can still stop the command. */
bool http_load(char *err, size_t err_size);
/* Sets up libcurl's global state after http_load; call before any thread starts. */
bool http_global_init(void);

struct http_client *http_client_new(void);
void http_client_free(struct http_client *c);

/* Sends body (gzip-compressed when gzip is true) with headers ("Name: value", NULL-ended;
 * NULL: none besides Content-Type), giving up after timeout seconds.
 * Fills *res (freeing what an earlier call left there); free res->response.s at the end. */
void http_send(struct http_client *c, const char *method, const char *url, const char *content_type,
               const char *const *headers, const char *body, size_t len, bool gzip, double timeout,
               struct http_result *res);

/* data[0..len) gzip-compressed into out; false when out of memory. */
bool http_gzip(const char *data, size_t len, struct strbuf *out);

#endif
