/* http.c — sending one request with libcurl (see http.h).
 *
 * libcurl is loaded with dlopen when sinks are set up rather than linked: linking it
 * brings in about thirty libraries (TLS, Kerberos, LDAP, SSH, ...) whose loading and
 * constructors took 9 ms of the start of every ckmon command — `inspect`, `run`, a
 * collector with no sink — for a library that only sinks use. The table's pointers
 * take their types from curl.h, but the option arguments of the variadic setopt and
 * getinfo lose the checks curl.h's macros add to direct calls: each is passed as the
 * exact type its option takes (long, curl_off_t, a pointer).
 */
#include "http.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <zlib.h>

/* The soname of libcurl's ABI 4, which every libcurl since 7.16 keeps. */
#define LIBCURL "libcurl.so.4"

static struct {
    __typeof__(curl_global_init) *global_init;
    __typeof__(curl_easy_init) *easy_init;
    __typeof__(curl_easy_cleanup) *easy_cleanup;
    __typeof__(curl_easy_reset) *easy_reset;
    __typeof__(curl_easy_setopt) *easy_setopt;
    __typeof__(curl_easy_perform) *easy_perform;
    __typeof__(curl_easy_getinfo) *easy_getinfo;
    __typeof__(curl_easy_strerror) *easy_strerror;
    __typeof__(curl_slist_append) *slist_append;
    __typeof__(curl_slist_free_all) *slist_free_all;
} libcurl;

struct http_client {
    CURL *curl;
};

#define RESOLVE(handle, field, symbol) (*(void **)&libcurl.field = dlsym(handle, #symbol)) != NULL

bool http_load(char *err, size_t err_size)
{
    if (libcurl.global_init) return true; /* loaded before */
    void *lib = dlopen(LIBCURL, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        snprintf(err, err_size, "cannot load %s (%s): install libcurl4", LIBCURL, dlerror());
        return false;
    }
    /* global_init last: it says the whole table is there. */
    bool found =
        RESOLVE(lib, easy_init, curl_easy_init) && RESOLVE(lib, easy_cleanup, curl_easy_cleanup) &&
        RESOLVE(lib, easy_reset, curl_easy_reset) && RESOLVE(lib, easy_setopt, curl_easy_setopt) &&
        RESOLVE(lib, easy_perform, curl_easy_perform) &&
        RESOLVE(lib, easy_getinfo, curl_easy_getinfo) &&
        RESOLVE(lib, easy_strerror, curl_easy_strerror) &&
        RESOLVE(lib, slist_append, curl_slist_append) &&
        RESOLVE(lib, slist_free_all, curl_slist_free_all) &&
        RESOLVE(lib, global_init, curl_global_init);
    if (!found) {
        snprintf(err, err_size, "%s lacks a function ckmon uses (%s)", LIBCURL, dlerror());
        libcurl.global_init = NULL;
        dlclose(lib);
    }
    return found;
}

bool http_global_init(void)
{
    return libcurl.global_init && libcurl.global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
}

struct http_client *http_client_new(void)
{
    struct http_client *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    if (!(c->curl = libcurl.easy_init())) {
        free(c);
        return NULL;
    }
    return c;
}

void http_client_free(struct http_client *c)
{
    if (!c) return;
    libcurl.easy_cleanup(c->curl);
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
               const char *const *extra, const char *body, size_t len, bool gzip, double timeout,
               struct http_result *res)
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
        headers = libcurl.slist_append(headers, "Content-Encoding: gzip");
    }
    snprintf(content_header, sizeof content_header, "Content-Type: %s", content_type);
    headers = libcurl.slist_append(headers, content_header);
    for (const char *const *h = extra; h && *h; h++)
        headers = libcurl.slist_append(headers, *h);
    headers = libcurl.slist_append(headers, "Expect:"); /* no 100-continue round trip */

    libcurl.easy_reset(curl);
    libcurl.easy_setopt(curl, CURLOPT_URL, url);
    libcurl.easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    libcurl.easy_setopt(curl, CURLOPT_POSTFIELDS, body ? body : "");
    libcurl.easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    libcurl.easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    libcurl.easy_setopt(curl, CURLOPT_USERAGENT, "ckmon");
    libcurl.easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    libcurl.easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, (long)(timeout * 1000 / 2 + 1));
    libcurl.easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)(timeout * 1000 + 1));
    libcurl.easy_setopt(curl, CURLOPT_WRITEFUNCTION, keep_response);
    libcurl.easy_setopt(curl, CURLOPT_WRITEDATA, &res->response);
    char curl_error[CURL_ERROR_SIZE] = "";
    libcurl.easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_error);

    CURLcode rc = libcurl.easy_perform(curl);
    if (rc != CURLE_OK) {
        snprintf(res->error, sizeof res->error, "%s",
                 *curl_error ? curl_error : libcurl.easy_strerror(rc));
    } else {
        curl_off_t retry_after = -1;
        libcurl.easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &res->status);
        if (libcurl.easy_getinfo(curl, CURLINFO_RETRY_AFTER, &retry_after) == CURLE_OK &&
            retry_after > 0) /* 0: no header */
            res->retry_after = (double)retry_after;
    }
    libcurl.easy_setopt(curl, CURLOPT_ERRORBUFFER, NULL);
    libcurl.slist_free_all(headers);
    free(packed.s);
}
