/* hdf5.c — reading a finished HDF5 file (h5py, Keras .h5, PyTables) with libhdf5.
 *
 * The agent only recognises HDF5 (core/parsers/hdf5.c); the collector and `ckmon
 * inspect` read the file here, after its last close. libhdf5 is loaded with dlopen when
 * the first HDF5 file needs it, so a collector that never sees one never loads it.
 *
 * The reading happens in a child process. libhdf5 trusts the file's metadata: malformed
 * files have made it crash, loop and allocate without bound. The child has a memory
 * ceiling (RLIMIT_DATA), a deadline and dies with its parent, and prints its findings on
 * a pipe, a line of JSON after each object; a crash, a timeout or a missing library
 * becomes an error in the record (which keeps the lines that came before), never the
 * collector's end. libhdf5's own error printing is switched off in the child.
 *
 * What is read: every dataset reachable by hard links from the root (H5Ovisit, in name
 * order, each object once), as a tensor named by its path with '/' as '.', its data read
 * in hyperslabs of at most HYPERSLAB_BYTES in C order through the same statistics and
 * sampling plan as every other format (core/parsers/tensor.h); scalar attributes as values
 * named `<object>.<attribute>`, strings included. Datasets whose data lives outside the
 * file (external storage, virtual datasets) are not read: a file must not make ckmon read
 * other files.
 */
#include "hdf5.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hdf5.h>

#include "core/jsontext.h"
#include "core/parsers/tensor.h"

#define HYPERSLAB_BYTES   (1u << 20)   /* memory for one read of a dataset's data */
#define ATTRIBUTE_BYTES   (16u << 20)  /* larger attributes are not read */
#define STRING_ITEMS      8            /* an array of strings: its first items as values */
#define CHILD_MEMORY      (1ull << 30) /* the child's allocations beyond the collector's own */
#define OUTPUT_MAX        (256u << 20) /* findings the child may print */
#define DEADLINE_SECONDS  60           /* plus one second per 32 MiB of file, unless */
#define DEADLINE_PER_BYTE (32u << 20)  /* --hdf5-timeout says otherwise */
/* H5F_ACC_RDONLY, whose macro would call (and so link) H5check() and H5open() */
#define READ_ONLY 0u
/* Each dataset's chunk cache (libhdf5's default is 1 MiB): a hyperslab read that cuts
 * through a compressed chunk larger than the cache decompresses the whole chunk again for
 * each read, so a 8 MiB chunk read in 1 MiB hyperslabs was decompressed 8 times. */
#define CHUNK_CACHE_BYTES (64u << 20)
#define CHUNK_CACHE_SLOTS 12421 /* a prime, as libhdf5 advises */

/* ---- libhdf5, loaded on demand ---------------------------------------------------- */

/* clang-format off */
#define HDF5_FUNCTIONS(X)                                                                      \
    X(H5open) X(H5Eset_auto2) X(H5Fopen) X(H5Fclose) X(H5Ovisit2) X(H5Oopen) X(H5Oclose)       \
    X(H5Aiterate2) X(H5Aopen) X(H5Aclose) X(H5Aget_space) X(H5Aget_type) X(H5Aread)            \
    X(H5Dopen2) X(H5Dclose) X(H5Dget_space) X(H5Dget_type) X(H5Dget_create_plist) X(H5Dread)   \
    X(H5Dvlen_reclaim) X(H5Pcreate) X(H5Pset_cache) X(H5Pget_layout) X(H5Pget_external_count)  \
    X(H5Pclose) X(H5Sget_simple_extent_type) X(H5Sget_simple_extent_ndims)                     \
    X(H5Sget_simple_extent_dims) X(H5Sget_simple_extent_npoints) X(H5Screate_simple)           \
    X(H5Sselect_hyperslab) X(H5Sclose) X(H5Tget_class) X(H5Tget_size) X(H5Tget_sign)           \
    X(H5Tget_order) X(H5Tget_fields) X(H5Tget_super) X(H5Tget_nmembers) X(H5Tis_variable_str)  \
    X(H5Tget_strpad) X(H5Tcopy) X(H5Tset_size) X(H5Tget_cset) X(H5Tset_cset)                   \
    X(H5Tget_native_type) X(H5Tclose)
/* clang-format on */

static struct {
#define DECLARE(f) __typeof__(f) *f;
    HDF5_FUNCTIONS(DECLARE)
#undef DECLARE
    hid_t *c_s1;        /* H5T_C_S1, for variable-length strings in memory */
    hid_t *file_access; /* H5P_FILE_ACCESS, the class of the plist that sets the cache */
} h5;

/* The names Debian's libhdf5-103 has (the serial flavour), then any other build's. */
static const char *const library_names[] = {"libhdf5_serial.so.103", "libhdf5.so.103",
                                            "libhdf5_serial.so", "libhdf5.so"};

static const char *load_library(void)
{
    void *lib = NULL;
    for (size_t i = 0; !lib && i < sizeof library_names / sizeof library_names[0]; i++)
        lib = dlopen(library_names[i], RTLD_NOW | RTLD_LOCAL);
    if (!lib) return "libhdf5 is not installed (Debian: libhdf5-103-1)";
#define RESOLVE(f)                                                                                 \
    if (!(*(void **)&h5.f = dlsym(lib, #f))) return "libhdf5 lacks " #f;
    HDF5_FUNCTIONS(RESOLVE)
#undef RESOLVE
    if (h5.H5open() < 0 || !(h5.c_s1 = dlsym(lib, "H5T_C_S1_g")) ||
        !(h5.file_access = dlsym(lib, "H5P_CLS_FILE_ACCESS_ID_g")))
        return "libhdf5 did not start";
    h5.H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* its errors become ours, not stderr's */
    return NULL;
}

/* ---- what the child reports ------------------------------------------------------ */

struct walk {
    struct report *report;
    const struct parse_options *options;
    struct tensor_reader *reader;
    uint8_t *buffer; /* HYPERSLAB_BYTES */
    bool complete;
    int out; /* the pipe to the collector */
};

/* Sends the findings not sent yet as one line of JSON (its strings escape newlines); the
 * last line (end) adds "complete". Sent after each object, so that a crash or the deadline
 * later in the file costs the record only what was not read yet. */
static void send_findings(struct walk *w, bool end)
{
    cJSON *findings = cJSON_CreateObject();
    if (!findings) return; /* they wait for the next line */
    report_take(w->report, findings);
    char *text = (findings->child || end) &&
                         (!end || cJSON_AddBoolToObject(findings, "complete", w->complete))
                     ? json_print_wire(findings) /* exact numbers, as agents send them */
                     : NULL;
    cJSON_Delete(findings);
    size_t n = text ? strlen(text) : 0;
    if (text) text[n++] = '\n'; /* in place of the NUL, which is not sent */
    for (size_t at = 0; at < n;) {
        ssize_t wrote = write(w->out, text + at, n - at);
        if (wrote < 0 && errno == EINTR) continue;
        if (wrote <= 0) break;
        at += (size_t)wrote;
    }
    free(text);
}

/* The record's name for an object's path ("." is the root): '/' becomes '.'. */
static void object_name(const char *path, char *out, size_t size)
{
    if (strcmp(path, ".") == 0) path = "";
    snprintf(out, size, "%s", path);
    for (char *c = out; *c; c++)
        if (*c == '/') *c = '.';
}

/* The statistics' dtype for a numeric HDF5 type, and the memory type to read it as
 * (closed by the caller); false for any other type. Data is read little-endian: a
 * big-endian file's numbers are converted by libhdf5. */
static bool numeric_type(hid_t type, enum dtype *dt, hid_t *memory)
{
    static const enum dtype ints[2][4] = {{DTYPE_U8, DTYPE_U16, DTYPE_U32, DTYPE_U64},
                                          {DTYPE_I8, DTYPE_I16, DTYPE_I32, DTYPE_I64}};
    size_t size = h5.H5Tget_size(type);
    int bytes_log = size == 1 ? 0 : size == 2 ? 1 : size == 4 ? 2 : size == 8 ? 3 : -1;
    switch (h5.H5Tget_class(type)) {
    case H5T_INTEGER:
        if (bytes_log < 0) return false;
        *dt = ints[h5.H5Tget_sign(type) == H5T_SGN_2][bytes_log];
        return (*memory = h5.H5Tget_native_type(type, H5T_DIR_ASCEND)) >= 0;
    case H5T_FLOAT: {
        size_t spos, epos, esize, mpos, msize;
        if (size == 4 || size == 8) {
            *dt = size == 4 ? DTYPE_F32 : DTYPE_F64;
            return (*memory = h5.H5Tget_native_type(type, H5T_DIR_ASCEND)) >= 0;
        }
        /* half and bfloat16 have no native type: read as stored when little-endian */
        if (size != 2 || h5.H5Tget_order(type) != H5T_ORDER_LE ||
            h5.H5Tget_fields(type, &spos, &epos, &esize, &mpos, &msize) < 0 || spos != 15 ||
            mpos != 0)
            return false;
        if (esize == 5 && msize == 10)
            *dt = DTYPE_F16;
        else if (esize == 8 && msize == 7)
            *dt = DTYPE_BF16;
        else
            return false;
        return (*memory = h5.H5Tcopy(type)) >= 0;
    }
    case H5T_ENUM: /* numpy's bool in h5py: an enum of one byte, FALSE = 0, TRUE = 1 */
        if (size != 1 || h5.H5Tget_nmembers(type) != 2) return false;
        *dt = DTYPE_BOOL;
        return (*memory = h5.H5Tcopy(type)) >= 0;
    case H5T_BITFIELD: /* PyTables' bool: an 8-bit bitfield */
        if (size != 1) return false;
        *dt = DTYPE_BOOL;
        return (*memory = h5.H5Tcopy(type)) >= 0;
    default:
        return false;
    }
}

static const char *class_name(hid_t type)
{
    switch (h5.H5Tget_class(type)) {
    case H5T_STRING:
        return "string";
    case H5T_COMPOUND:
        return "compound";
    case H5T_OPAQUE:
        return "opaque";
    case H5T_REFERENCE:
        return "reference";
    case H5T_VLEN:
        return "vlen";
    case H5T_ARRAY:
        return "array";
    case H5T_BITFIELD:
        return "bitfield";
    case H5T_ENUM:
        return "enum";
    case H5T_TIME:
        return "time";
    default:
        return "unknown";
    }
}

/* A dataset's or attribute's shape; false (reported) for more dimensions than a tensor
 * has. A null dataspace (no elements at all) has ndim -1. */
static bool read_shape(struct walk *w, const char *name, hid_t space, int64_t *shape, int *ndim)
{
    H5S_class_t kind = h5.H5Sget_simple_extent_type(space);
    if (kind == H5S_NULL) {
        *ndim = -1;
        return true;
    }
    int n = h5.H5Sget_simple_extent_ndims(space);
    hsize_t dims[TENSOR_MAX_DIMS];
    if (n < 0 || n > TENSOR_MAX_DIMS || h5.H5Sget_simple_extent_dims(space, dims, NULL) < 0) {
        report_error(w->report, "hdf5: %s: a dataspace of %d dimensions is not read", name, n);
        return false;
    }
    for (int i = 0; i < n; i++)
        shape[i] = dims[i] > INT64_MAX ? -1 : (int64_t)dims[i];
    *ndim = n;
    return true;
}

/* ---- strings ---- */

static void report_text(struct walk *w, const char *key, const char *s, size_t size, H5T_str_t pad)
{
    size_t len = strnlen(s, size);
    if (pad == H5T_STR_SPACEPAD)
        while (len > 0 && s[len - 1] == ' ')
            len--;
    report_string(w->report, key, s, len);
}

/* An attribute's or dataset's strings (read whole: only small ones are read): one value,
 * or the first STRING_ITEMS as KEY.0, KEY.1, ... */
static void read_strings(struct walk *w, const char *key, hid_t id, bool attribute, hid_t type,
                         hid_t space, uint64_t count)
{
    char item_key[1100]; /* key, a dot, an index */
    bool variable = h5.H5Tis_variable_str(type) > 0;
    size_t size = variable ? sizeof(char *) : h5.H5Tget_size(type);
    if (count == 0 || size == 0 || count > ATTRIBUTE_BYTES / size) return;
    hid_t memory = h5.H5Tcopy(variable ? *h5.c_s1 : type);
    uint8_t *data = calloc(count, size);
    if (memory < 0 || !data ||
        (variable && (h5.H5Tset_size(memory, H5T_VARIABLE) < 0 ||
                      h5.H5Tset_cset(memory, h5.H5Tget_cset(type)) < 0))) {
        report_error(w->report, "hdf5: %s: out of memory", key);
        goto done;
    }
    herr_t read = attribute ? h5.H5Aread(id, memory, data)
                            : h5.H5Dread(id, memory, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    if (read < 0) {
        report_error(w->report, "hdf5: %s: its strings could not be read", key);
        w->complete = false;
        goto done;
    }
    H5T_str_t pad = h5.H5Tget_strpad(type);
    int ndim = h5.H5Sget_simple_extent_ndims(space);
    for (uint64_t i = 0; i < count && i < STRING_ITEMS; i++) {
        const char *s = variable ? ((char **)data)[i] : (const char *)data + i * size;
        if (ndim > 0) snprintf(item_key, sizeof item_key, "%s.%llu", key, (unsigned long long)i);
        if (s) report_text(w, ndim > 0 ? item_key : key, s, variable ? strlen(s) : size, pad);
    }
    if (variable) h5.H5Dvlen_reclaim(memory, space, H5P_DEFAULT, data);
done:
    free(data);
    if (memory >= 0) h5.H5Tclose(memory);
}

/* ---- numbers ---- */

/* Feeds the dataset's elements to the reader in C order, a hyperslab at a time: the
 * trailing dimensions that fit in HYPERSLAB_BYTES whole, a run of the next one, one
 * index of each leading one. Returns false after reporting a failed read. */
static bool feed_dataset(struct walk *w, const char *name, hid_t dataset, hid_t space, hid_t memory,
                         size_t elsize, const int64_t *shape, int ndim)
{
    if (ndim == 0) { /* a scalar */
        if (h5.H5Dread(dataset, memory, H5S_ALL, H5S_ALL, H5P_DEFAULT, w->buffer) < 0) goto failed;
        tensor_reader_feed(w->reader, w->buffer, elsize);
        return true;
    }
    for (int i = 0; i < ndim; i++)
        if (shape[i] == 0) return true;
    int k = ndim - 1; /* dims after k are whole in each read; dim k comes in runs */
    uint64_t inner = elsize;
    while (k > 0 && (uint64_t)shape[k] <= HYPERSLAB_BYTES / inner)
        inner *= (uint64_t)shape[k--];
    uint64_t run = HYPERSLAB_BYTES / inner;
    if (run == 0) run = 1;
    if (run > (uint64_t)shape[k]) run = (uint64_t)shape[k];
    hsize_t start[TENSOR_MAX_DIMS] = {0}, count[TENSOR_MAX_DIMS];
    for (int i = 0; i < ndim; i++)
        count[i] = i < k ? 1 : (hsize_t)shape[i];
    for (;;) {
        count[k] = start[k] + run <= (uint64_t)shape[k] ? run : (uint64_t)shape[k] - start[k];
        hsize_t elements = count[k] * (inner / elsize);
        hid_t slab = h5.H5Screate_simple(1, &elements, NULL);
        herr_t rc =
            slab < 0 ? -1 : h5.H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, count, NULL);
        if (rc >= 0) rc = h5.H5Dread(dataset, memory, slab, space, H5P_DEFAULT, w->buffer);
        if (slab >= 0) h5.H5Sclose(slab);
        if (rc < 0) goto failed;
        tensor_reader_feed(w->reader, w->buffer, elements * elsize);
        /* the next hyperslab: dim k advances by the run, then the leading ones carry */
        start[k] += count[k];
        int d = k;
        while (d > 0 && start[d] >= (uint64_t)shape[d]) {
            start[d] = 0;
            start[--d]++;
        }
        if (start[0] >= (uint64_t)shape[0]) return true;
    }
failed:
    report_error(w->report,
                 "hdf5: %s: its data could not be read (damaged, or compressed with a filter "
                 "libhdf5 lacks)",
                 name);
    w->complete = false;
    return false;
}

static void read_dataset(struct walk *w, const char *name, hid_t dataset)
{
    int64_t shape[TENSOR_MAX_DIMS];
    int ndim;
    enum dtype dt;
    hid_t type = h5.H5Dget_type(dataset), space = h5.H5Dget_space(dataset), memory = -1;
    hid_t create = h5.H5Dget_create_plist(dataset);
    if (type < 0 || space < 0 || create < 0) {
        report_error(w->report, "hdf5: %s: its description could not be read", name);
        w->complete = false;
    } else if (!read_shape(w, name, space, shape, &ndim) || ndim < 0) {
        /* reported, or no elements at all */
    } else if (h5.H5Pget_layout(create) == H5D_VIRTUAL || h5.H5Pget_external_count(create) > 0) {
        report_error(w->report, "hdf5: %s: its data is in other files, which are not read", name);
    } else if (h5.H5Tget_class(type) == H5T_STRING) {
        uint64_t count = (uint64_t)h5.H5Sget_simple_extent_npoints(space);
        if (ndim == 0 || count <= STRING_ITEMS)
            read_strings(w, name, dataset, false, type, space, count);
    } else if (!numeric_type(type, &dt, &memory)) {
        uint64_t elements = 0;
        tensor_shape_elements(shape, ndim, &elements);
        tensor_reader_init_opaque(w->reader, name, class_name(type), shape, ndim,
                                  elements * h5.H5Tget_size(type));
        tensor_reader_report(w->reader, w->report); /* says statistics were not computed */
    } else if (tensor_reader_init(w->reader, w->report, name, dt, shape, ndim, w->options)) {
        if (!w->reader->wanted ||
            feed_dataset(w, name, dataset, space, memory, dtype_size(dt), shape, ndim))
            tensor_reader_report(w->reader, w->report);
    }
    if (memory >= 0) h5.H5Tclose(memory);
    if (create >= 0) h5.H5Pclose(create);
    if (space >= 0) h5.H5Sclose(space);
    if (type >= 0) h5.H5Tclose(type);
}

/* A numeric attribute: a scalar or up to 8 items as values, more as a tensor. */
static void read_numeric_attribute(struct walk *w, const char *key, hid_t attribute, hid_t type,
                                   const int64_t *shape, int ndim, uint64_t count)
{
    enum dtype dt;
    hid_t memory;
    if (!numeric_type(type, &dt, &memory)) return; /* compound, references, ...: not values */
    size_t elsize = dtype_size(dt);
    uint8_t *data = count && count <= ATTRIBUTE_BYTES / elsize ? malloc(count * elsize) : NULL;
    if (data && h5.H5Aread(attribute, memory, data) < 0) {
        report_error(w->report, "hdf5: %s: could not be read", key);
        w->complete = false;
    } else if (data && count > STRING_ITEMS) {
        if (tensor_reader_init(w->reader, w->report, key, dt, shape, ndim, w->options)) {
            tensor_reader_feed(w->reader, data, count * elsize);
            tensor_reader_report(w->reader, w->report);
        }
    } else if (data) {
        for (uint64_t i = 0; i < count; i++) {
            char item_key[1100]; /* key, a dot, an index */
            const uint8_t *item = data + i * elsize;
            double v;
            dtype_decode(dt, item, &v, 1);
            if (ndim > 0)
                snprintf(item_key, sizeof item_key, "%s.%llu", key, (unsigned long long)i);
            const char *k = ndim > 0 ? item_key : key;
            if (dt == DTYPE_BOOL)
                report_bool(w->report, k, v != 0);
            else if (dt == DTYPE_I64 || (dt == DTYPE_U64 && v < 0x1p63))
                report_int(w->report, k, *(const int64_t *)item); /* exact beyond 2^53 */
            else if (dt == DTYPE_F64 || dt == DTYPE_F32 || dt == DTYPE_F16 || dt == DTYPE_BF16 ||
                     dt == DTYPE_U64)
                report_float(w->report, k, v);
            else
                report_int(w->report, k, (int64_t)v);
        }
    }
    free(data);
    h5.H5Tclose(memory);
}

struct attribute_walk {
    struct walk *walk;
    const char *object; /* the record's name of the object, "" for the root */
};

static herr_t visit_attribute(hid_t object, const char *name, const H5A_info_t *info, void *ctx)
{
    (void)info;
    struct attribute_walk *a = ctx;
    struct walk *w = a->walk;
    char key[1024];
    snprintf(key, sizeof key, "%s%s%s", a->object, *a->object ? "." : "", name);
    if (w->report->findings >= REPORT_MAX_FINDINGS) return 1;
    hid_t attribute = h5.H5Aopen(object, name, H5P_DEFAULT);
    hid_t type = attribute >= 0 ? h5.H5Aget_type(attribute) : -1;
    hid_t space = attribute >= 0 ? h5.H5Aget_space(attribute) : -1;
    int64_t shape[TENSOR_MAX_DIMS];
    int ndim;
    if (type < 0 || space < 0) {
        report_error(w->report, "hdf5: %s: could not be read", key);
        w->complete = false;
    } else if (read_shape(w, key, space, shape, &ndim) && ndim >= 0) {
        uint64_t count = (uint64_t)h5.H5Sget_simple_extent_npoints(space);
        if (h5.H5Tget_class(type) == H5T_STRING)
            read_strings(w, key, attribute, true, type, space, count);
        else
            read_numeric_attribute(w, key, attribute, type, shape, ndim, count);
    }
    if (space >= 0) h5.H5Sclose(space);
    if (type >= 0) h5.H5Tclose(type);
    if (attribute >= 0) h5.H5Aclose(attribute);
    return 0;
}

static herr_t visit_object(hid_t root, const char *path, const H5O_info_t *info, void *ctx)
{
    struct walk *w = ctx;
    char name[1024];
    if (w->report->findings >= REPORT_MAX_FINDINGS) {
        report_error(w->report, "hdf5: more than %d values and tensors: the rest is not read",
                     REPORT_MAX_FINDINGS);
        return 1;
    }
    object_name(path, name, sizeof name);
    hid_t object = h5.H5Oopen(root, path, H5P_DEFAULT);
    if (object < 0) {
        report_error(w->report, "hdf5: %s: could not be opened", *name ? name : "/");
        w->complete = false;
        return 0;
    }
    struct attribute_walk a = {.walk = w, .object = name};
    hsize_t at = 0;
    if (h5.H5Aiterate2(object, H5_INDEX_NAME, H5_ITER_INC, &at, visit_attribute, &a) < 0) {
        report_error(w->report, "hdf5: %s: its attributes could not be read", *name ? name : "/");
        w->complete = false;
    }
    if (info->type == H5O_TYPE_DATASET) read_dataset(w, name, object);
    h5.H5Oclose(object);
    send_findings(w, false);
    return 0;
}

/* The child's work: the findings of the file open as fd, as lines of JSON on out. */
static void child_read(int fd, int out, const struct key_filter *keys,
                       const struct parse_options *options)
{
    struct report report;
    report_init(&report, keys);
    struct walk w = {.report = &report,
                     .options = options,
                     .reader = malloc(sizeof *w.reader),
                     .buffer = malloc(HYPERSLAB_BYTES),
                     .complete = true,
                     .out = out};
    const char *trouble = !w.reader || !w.buffer ? "out of memory" : load_library();
    char name[64];
    snprintf(name, sizeof name, "/proc/self/fd/%d", fd);
    hid_t access = trouble ? -1 : h5.H5Pcreate(*h5.file_access);
    if (access >= 0 && h5.H5Pset_cache(access, 0, CHUNK_CACHE_SLOTS, CHUNK_CACHE_BYTES, 0.75) < 0) {
        h5.H5Pclose(access);
        access = -1;
    }
    hid_t file = trouble ? -1 : h5.H5Fopen(name, READ_ONLY, access >= 0 ? access : H5P_DEFAULT);
    if (access >= 0) h5.H5Pclose(access);
    if (trouble) {
        report_error(&report, "hdf5: %s", trouble);
        w.complete = false;
    } else if (file < 0) {
        report_error(&report, "hdf5: not a readable HDF5 file (damaged or truncated)");
        w.complete = false;
    } else if (h5.H5Ovisit2(file, H5_INDEX_NAME, H5_ITER_INC, visit_object, &w, H5O_INFO_BASIC) <
               0) {
        report_error(&report, "hdf5: its groups could not all be walked (damaged)");
        w.complete = false;
    }
    if (file >= 0 && h5.H5Fclose(file) < 0) w.complete = false;
    send_findings(&w, true);
}

/* ---- the collector's side ---------------------------------------------------------- */

static double timeout_seconds; /* --hdf5-timeout; 0: DEADLINE_SECONDS and DEADLINE_PER_BYTE */

void hdf5_set_timeout(double seconds)
{
    timeout_seconds = seconds < 1e9 ? seconds : 1e9; /* 31 years; more overflows the clock */
}

/* Its memory ceiling: the collector's data so far (inherited) plus CHILD_MEMORY. Not under
 * AddressSanitizer, whose shadow memory would count. */
static void limit_memory(void)
{
#ifndef __SANITIZE_ADDRESS__
    unsigned long long size, resident, shared, text, lib, data;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return;
    if (fscanf(f, "%llu %llu %llu %llu %llu %llu", &size, &resident, &shared, &text, &lib, &data) ==
        6) {
        rlim_t limit = data * (unsigned long long)sysconf(_SC_PAGESIZE) + CHILD_MEMORY;
        setrlimit(RLIMIT_DATA, &(struct rlimit){limit, limit});
    }
    fclose(f);
#endif
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char too_long[] = "too long"; /* collect_output's *why for the deadline */

/* Reads the child's output until it closes the pipe or the deadline passes, as a string;
 * *why is set when it did not finish in time (too_long) or printed too much (the string is
 * then what came before), and when out of memory (NULL). */
static char *collect_output(int in, int64_t deadline_ms, const char **why)
{
    size_t size = 0, capacity = 1 << 16;
    char *text = malloc(capacity);
    *why = text ? NULL : "out of memory";
    while (text && !*why) {
        int64_t left = deadline_ms - now_ms();
        struct pollfd p = {.fd = in, .events = POLLIN};
        int ready = left > 0 ? poll(&p, 1, (int)(left > 60000 ? 60000 : left)) : 0;
        if (ready < 0 && errno == EINTR) continue;
        if (ready == 0 && left <= 60000) {
            *why = too_long;
            break;
        }
        if (ready <= 0) continue;
        if (size + 1 == capacity) {
            char *bigger = capacity < OUTPUT_MAX ? realloc(text, capacity * 2) : NULL;
            if (!bigger) {
                *why = "too many findings";
                break;
            }
            text = bigger;
            capacity *= 2;
        }
        ssize_t n = read(in, text + size, capacity - 1 - size);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        size += (size_t)n;
    }
    if (text) text[size] = '\0';
    return text;
}

/* Moves the child's findings[name] (an object of values, an array of errors) into the
 * report's *slot. */
static void take_member(cJSON **slot, cJSON *findings, const char *name)
{
    cJSON *from = cJSON_DetachItemFromObjectCaseSensitive(findings, name), *item;
    if (!from) return;
    if (!*slot) {
        *slot = from;
        return;
    }
    while ((item = from->child) && (*slot)->type == from->type)
        cJSON_AddItemToArray(*slot, cJSON_DetachItemViaPointer(from, item)); /* names kept */
    cJSON_Delete(from);
}

static bool hdf5_read(int fd, struct report *r, const struct parse_options *o)
{
    struct stat st;
    int pipe_fds[2];
    if (fstat(fd, &st) < 0 || pipe2(pipe_fds, O_CLOEXEC) < 0) {
        report_error(r, "hdf5: %s", strerror(errno));
        return false;
    }
    pid_t parent = getpid(), child = fork();
    if (child == 0) {
        /* a collector killed meanwhile takes its reader along: a hostile file must not keep
         * a core busy with nobody waiting for the answer */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent) _exit(1);
        close(pipe_fds[0]);
        signal(SIGPIPE, SIG_DFL); /* the collector's own handlers are not the reader's */
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        limit_memory();
        setenv("HDF5_USE_FILE_LOCKING", "FALSE", 1); /* the writer may still hold a lock */
        child_read(fd, pipe_fds[1], r->keys, o);
        _exit(0);
    }
    close(pipe_fds[1]);
    if (child < 0) {
        report_error(r, "hdf5: cannot start a reader: %s", strerror(errno));
        close(pipe_fds[0]);
        return false;
    }
    double seconds = timeout_seconds > 0
                         ? timeout_seconds
                         : DEADLINE_SECONDS + (double)(st.st_size / DEADLINE_PER_BYTE);
    const char *why;
    char *text = collect_output(pipe_fds[0], now_ms() + (int64_t)(seconds * 1000), &why);
    close(pipe_fds[0]);
    if (why) kill(child, SIGKILL);
    int status = 0;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR)
        ;
    /* A line per object read, the last with "complete": what came before a crash or the
     * deadline is kept, a line the end cut short is not. */
    bool ended = false, complete = false;
    for (char *line = text, *next; line && (next = strchr(line, '\n')); line = next) {
        *next++ = '\0';
        cJSON *findings = cJSON_Parse(line), *all;
        if (!findings) continue;
        take_member(&r->values, findings, "values");
        cJSON *tensors = cJSON_GetObjectItemCaseSensitive(findings, "tensors"), *t;
        cJSON_ArrayForEach(t, tensors) report_tensor_json(r, t);
        take_member(&r->errors, findings, "errors");
        if ((all = cJSON_GetObjectItemCaseSensitive(findings, "complete"))) {
            ended = true;
            complete = cJSON_IsTrue(all);
        }
        cJSON_Delete(findings);
    }
    free(text);
    if (ended && !why && WIFEXITED(status)) return complete;
    if (why == too_long) {
        report_error(r,
                     "hdf5: the HDF5 library took over %.6g s on this file: stopped "
                     "(--hdf5-timeout)",
                     seconds);
    } else if (why) {
        report_error(r, "hdf5: %s", why);
    } else if (WIFSIGNALED(status)) {
        report_error(r, "hdf5: the HDF5 library crashed on this file (signal %d)",
                     WTERMSIG(status));
    } else {
        report_error(r, "hdf5: the reader failed (exit status %d)", WEXITSTATUS(status));
    }
    return false;
}

static bool hdf5_claims(int fd, const char *format)
{
    struct stat st;
    if (strcmp(format, "hdf5") == 0) return true;
    if (strcmp(format, "unknown") != 0 || fstat(fd, &st) < 0) return false;
    for (off_t offset = 512; offset + 8 <= st.st_size; offset *= 2) {
        char head[8];
        if (pread(fd, head, 8, offset) != 8) return false;
        if (memcmp(head, "\x89HDF\r\n\x1a\n", 8) == 0) return true;
    }
    return false;
}

bool hdf5_read_claimed(int fd, const char **format, bool *complete, struct report *r,
                       const struct parse_options *o)
{
    if (!hdf5_claims(fd, *format)) return false;
    *format = "hdf5";
    *complete = hdf5_read(fd, r, o);
    return true;
}
