/* digest.c — xxh3-128 through a dlopen'd libxxhash (see digest.h).
 *
 * Why the library rather than xxhash.h's header-only mode: Debian's libxxhash0 carries
 * the x86 dispatcher (XXH3_128bits_update_dispatch), which picks AVX2 or AVX-512 on the
 * CPU it runs on; code compiled here for baseline x86-64 gets SSE2 only. Why dlopen
 * rather than linking: only --digest and `verify` of a digested record need it, so
 * every other use of ckmon runs on a machine without libxxhash0, as with libcurl.
 */
#include "digest.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <xxhash.h>

/* The soname of libxxhash's ABI 0 (Debian's libxxhash0). */
#define LIBXXHASH "libxxhash.so.0"
/* Small enough to stay in the L2 cache between the kernel's copy and the hash. */
#define DIGEST_READ_BYTES (1u << 18)
/* digest_follow_seen reads a gap up to FOLLOW_GAP bytes long itself, FOLLOW_GAP_READ at a
 * time: between a zip's members there are a local header's name and extra field, a data
 * descriptor; a larger gap is left for digest_follow_rest, as the end records are. */
#define FOLLOW_GAP      (64u << 10)
#define FOLLOW_GAP_READ 4096u

static struct {
    __typeof__(XXH3_createState) *create;
    __typeof__(XXH3_freeState) *free;
    __typeof__(XXH3_128bits_reset) *reset;
    __typeof__(XXH3_128bits_update) *update;
    __typeof__(XXH3_128bits_digest) *digest;
    __typeof__(XXH128_canonicalFromHash) *canonical;
} xxh;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static char load_error[200];

#define RESOLVE(handle, field, symbol) (*(void **)&xxh.field = dlsym(handle, #symbol)) != NULL

static void load(void)
{
    void *lib = dlopen(LIBXXHASH, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        snprintf(load_error, sizeof load_error, "cannot load %s (%s): install libxxhash0",
                 LIBXXHASH, dlerror());
        return;
    }
    /* The dispatching update when the library has it (x86), else the portable one. */
    if (!(*(void **)&xxh.update = dlsym(lib, "XXH3_128bits_update_dispatch")))
        *(void **)&xxh.update = dlsym(lib, "XXH3_128bits_update");
    /* create last: it says the whole table is there. */
    bool found =
        xxh.update && RESOLVE(lib, free, XXH3_freeState) &&
        RESOLVE(lib, reset, XXH3_128bits_reset) && RESOLVE(lib, digest, XXH3_128bits_digest) &&
        RESOLVE(lib, canonical, XXH128_canonicalFromHash) && RESOLVE(lib, create, XXH3_createState);
    if (!found) {
        snprintf(load_error, sizeof load_error, "%s lacks a function ckmon uses (%s)", LIBXXHASH,
                 dlerror());
        xxh.create = NULL;
        dlclose(lib);
    }
}

bool digest_load(char *err, size_t err_size)
{
    pthread_once(&load_once, load);
    if (!xxh.create) snprintf(err, err_size, "%s", load_error);
    return xxh.create != NULL;
}

void file_id_of(struct file_id *id, const struct stat *st)
{
    *id = (struct file_id){.known = true,
                           .dev = (int64_t)st->st_dev,
                           .ino = (int64_t)st->st_ino,
                           .size = (int64_t)st->st_size,
                           .mtime_us =
                               (int64_t)st->st_mtim.tv_sec * 1000000 + st->st_mtim.tv_nsec / 1000};
}

const char *file_id_differs(const struct file_id *id, const struct stat *st)
{
    struct file_id now;
    file_id_of(&now, st);
    if (!id->known) return NULL;
    if (id->dev != now.dev || id->ino != now.ino) return "inode";
    if (id->size != now.size) return "size";
    return id->mtime_us != now.mtime_us ? "modification time" : NULL;
}

struct digest {
    XXH3_state_t *state;
};

struct digest *digest_new(void)
{
    pthread_once(&load_once, load);
    if (!xxh.create) return NULL;
    struct digest *d = malloc(sizeof *d);
    if (d && (d->state = xxh.create()) && xxh.reset(d->state) == XXH_OK) return d;
    if (d && d->state) xxh.free(d->state);
    free(d);
    return NULL;
}

void digest_update(struct digest *d, const void *data, size_t len)
{
    xxh.update(d->state, data, len);
}

void digest_text(struct digest *d, char out[DIGEST_TEXT_SIZE])
{
    XXH128_canonical_t c;
    xxh.canonical(&c, xxh.digest(d->state));
    char *p = out + snprintf(out, DIGEST_TEXT_SIZE, "%s", DIGEST_PREFIX);
    for (size_t i = 0; i < sizeof c.digest; i++)
        p += snprintf(p, 3, "%02x", c.digest[i]);
}

void digest_free(struct digest *d)
{
    if (!d) return;
    xxh.free(d->state);
    free(d);
}

/* Feeds d the file from offset on (digest_fd). */
static bool digest_from(struct digest *d, int fd, off_t offset, const atomic_bool *stop)
{
    uint8_t *buf = aligned_alloc(4096, DIGEST_READ_BYTES);
    if (!buf) return errno = ENOMEM, false;
    ssize_t n = 0;
    while (!(stop && atomic_load(stop))) {
        n = pread(fd, buf, DIGEST_READ_BYTES, offset);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        digest_update(d, buf, (size_t)n);
        offset += n;
    }
    int error = stop && atomic_load(stop) ? ECANCELED : n < 0 ? errno : 0;
    free(buf);
    errno = error;
    return error == 0;
}

bool digest_fd(struct digest *d, int fd, const atomic_bool *stop)
{
    return digest_from(d, fd, 0, stop);
}

void digest_follow_seen(void *follow, uint64_t at, const uint8_t *data, size_t len)
{
    struct digest_follow *f = follow;
    uint8_t gap[FOLLOW_GAP_READ];
    while (at > f->hashed && at - f->hashed <= FOLLOW_GAP) {
        size_t want = at - f->hashed < sizeof gap ? (size_t)(at - f->hashed) : sizeof gap;
        ssize_t n = pread(f->fd, gap, want, (off_t)f->hashed);
        if (n <= 0) break; /* not bridged: the rest reads it, and says what failed */
        digest_update(f->digest, gap, (size_t)n);
        f->hashed += (uint64_t)n;
    }
    if (at > f->hashed || at + len <= f->hashed) return;
    size_t skip = (size_t)(f->hashed - at);
    digest_update(f->digest, data + skip, len - skip);
    f->hashed = at + len;
}

bool digest_follow_rest(struct digest_follow *f, const atomic_bool *stop)
{
    return digest_from(f->digest, f->fd, (off_t)f->hashed, stop);
}

/* ---- the tap ---- */

struct tap {
    struct parser base;
    struct parser *inner;
    struct digest *digest;
};

static void tap_feed(struct parser *p, const uint8_t *data, size_t len)
{
    struct tap *t = (struct tap *)p;
    digest_update(t->digest, data, len);
    t->inner->feed(t->inner, data, len);
    t->base.format = t->inner->format; /* a zip says which later */
    t->base.tolerates_rewrites = t->inner->tolerates_rewrites;
}

static bool tap_finish(struct parser *p)
{
    struct tap *t = (struct tap *)p;
    bool whole = t->inner->finish(t->inner);
    t->base.format = t->inner->format; /* a short file's format is decided by finish */
    return whole;
}

static void tap_destroy(struct parser *p)
{
    struct tap *t = (struct tap *)p;
    t->inner->destroy(t->inner);
    digest_free(t->digest);
    free(t);
}

struct parser *digest_tap_new(struct parser *inner)
{
    struct tap *t = inner ? malloc(sizeof *t) : NULL;
    if (!t || !(t->digest = digest_new())) {
        free(t);
        return inner;
    }
    t->base = (struct parser){.format = inner->format,
                              .feed = tap_feed,
                              .finish = tap_finish,
                              .destroy = tap_destroy,
                              .tolerates_rewrites = inner->tolerates_rewrites};
    t->inner = inner;
    return &t->base;
}

bool digest_tap_text(struct parser *p, char out[DIGEST_TEXT_SIZE])
{
    if (!p || p->destroy != tap_destroy) return false;
    digest_text(((struct tap *)p)->digest, out);
    return true;
}
