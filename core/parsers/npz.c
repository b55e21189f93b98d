/* npz.c — NumPy .npz archives (np.savez, np.savez_compressed).
 *
 * An .npz is a zip whose members are .npy streams named KEY.npy, stored (savez) or
 * deflated (savez_compressed). The zip walker (zip.h) brings each member's content by;
 * each is one npy_array (npy.h) named KEY, which also says where a stored member ends:
 * zipfile writes zeros for the sizes and fills them in only after the data, by seeking
 * back. Members that are not .npy are skipped. An object array's data is a pickle,
 * which ends at its STOP; a structured array's has no size the header gives, so in a
 * stored member written by zipfile it takes the rest of the file.
 */
#include "parser.h"
#include "npy.h"
#include "zip.h"

#include <stdlib.h>
#include <string.h>

struct npz {
    struct parser base;
    struct report *report;
    const struct parse_options *options;
    struct zip_walker *zip;
    bool in_array;
    bool broken; /* a member was not whole */
    struct npy_array array;
};

static bool npz_begin(void *ctx, const struct zip_member *m)
{
    struct npz *z = ctx;
    size_t len = strlen(m->name);
    if (len < 4 || strcmp(m->name + len - 4, ".npy") != 0) return false;
    char key[ZIP_MAX_NAME + 1];
    memcpy(key, m->name, len - 4);
    key[len - 4] = '\0';
    npy_array_init(&z->array, z->report, z->options, key);
    z->in_array = true;
    return true;
}

static size_t npz_data(void *ctx, const uint8_t *bytes, size_t len)
{
    struct npz *z = ctx;
    return z->in_array ? npy_array_feed(&z->array, bytes, len) : len;
}

static void npz_end(void *ctx, bool whole)
{
    struct npz *z = ctx;
    if (!z->in_array) return;
    (void)whole; /* the array knows whether it got all of its bytes */
    if (!npy_array_finish(&z->array)) z->broken = true;
    npy_array_free(&z->array);
    z->in_array = false;
}

static const struct zip_handler npz_handler = {npz_begin, npz_data, npz_end};

static void npz_feed(struct parser *p, const uint8_t *data, size_t len)
{
    zip_walker_feed(((struct npz *)p)->zip, data, len);
}

static bool npz_finish(struct parser *p)
{
    struct npz *z = (struct npz *)p;
    return zip_walker_finish(z->zip) && !z->broken;
}

static void npz_destroy(struct parser *p)
{
    struct npz *z = (struct npz *)p;
    if (z->in_array) npy_array_free(&z->array);
    zip_walker_free(z->zip);
    free(z);
}

struct parser *parser_npz_new(struct report *r, const struct parse_options *o)
{
    struct npz *z = calloc(1, sizeof *z);
    if (!z) return NULL;
    z->base = (struct parser){.format = "npz",
                              .feed = npz_feed,
                              .finish = npz_finish,
                              .destroy = npz_destroy,
                              .tolerates_rewrites = true};
    z->report = r;
    z->options = o;
    z->zip = zip_walker_new(r, "npz", &npz_handler, z, o && o->crc_after_close);
    if (!z->zip) {
        free(z);
        return NULL;
    }
    return &z->base;
}
