/* http.c — sending one request with libcurl (see http.h). */
#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <zlib.h>

struct http_client {
    CURL *curl;
};

bool http_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
}

struct http_client *http_client_new(void)
{
    struct http_client *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    if (!(c->curl = curl_easy_init())) {
        free(c);
        return NULL;
    }
    return c;
}

void http_client_free(struct http_client *c)
{
    if (!c) return;
    curl_easy_cleanup(c->curl);
    free(c);
}

bool http_gzip(const char *data, size_t len, struct strbuf *out)
{
    z_stream z = {0};
    /* 15 + 16: a gzip wrapper rather than zlib's. */
    if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return false;
    uLong bound = deflateBound(&z, (uLong)len);
    sb_truncate(out, 0);
    if (out->limit < bound + 1) out->limit = bound + 1;
    char *space = malloc(bound);
    bool ok = space != NULL;
    if (ok) {
        z.next_in = (Bytef *)data;
        z.avail_in = (uInt)len;
        z.next_out = (Bytef *)space;
        z.avail_out = (uInt)bound;
        ok = deflate(&z, Z_FINISH) == Z_STREAM_END;
        if (ok) sb_add(out, space, z.total_out);
    }
    deflateEnd(&z);
    free(space);
    return ok && !out->overflow;
}

static size_t keep_response(char *data, size_t size, size_t n, void *ctx)
{
    struct strbuf *b = ctx;
    size_t len = size * n, room = HTTP_RESPONSE_KEEP - b->len;
    sb_add(b, data, len < room ? len : room);
    return len;
}

void http_send(struct http_client *c, const char *method, const char *url, const char *content_type,
               const char *body, size_t len, bool gzip, double timeout, struct http_result *res)
{
    CURL *curl = c->curl;
    struct strbuf packed = {.limit = 1};
    struct curl_slist *headers = NULL;
    char content_header[128];
    free(res->response.s);
    *res = (struct http_result){.retry_after = -1, .response = {.limit = HTTP_RESPONSE_KEEP + 1}};
    if (gzip && len > 0) {
        if (!http_gzip(body, len, &packed)) {
            snprintf(res->error, sizeof res->error, "out of memory compressing the request");
            free(packed.s);
            return;
        }
        body = packed.s;
        len = packed.len;
        headers = curl_slist_append(headers, "Content-Encoding: gzip");
    }
    snprintf(content_header, sizeof content_header, "Content-Type: %s", content_type);
    headers = curl_slist_append(headers, content_header);
    headers = curl_slist_append(headers, "Expect:"); /* no 100-continue round trip */

    curl_easy_reset(curl);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body ? body : "");
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "ckmon");
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, (long)(timeout * 1000 / 2 + 1));
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)(timeout * 1000 + 1));
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, keep_response);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &res->response);
    char curl_error[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_error);

    CURLcode rc = curl_easy_perform(curl);
    if (rc != CURLE_OK) {
        snprintf(res->error, sizeof res->error, "%s",
                 *curl_error ? curl_error : curl_easy_strerror(rc));
    } else {
        curl_off_t retry_after = -1;
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &res->status);
        if (curl_easy_getinfo(curl, CURLINFO_RETRY_AFTER, &retry_after) == CURLE_OK &&
            retry_after > 0) /* 0: no header */
            res->retry_after = (double)retry_after;
    }
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, NULL);
    curl_slist_free_all(headers);
    free(packed.s);
}
