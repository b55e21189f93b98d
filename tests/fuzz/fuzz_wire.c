/* fuzz_wire.c — the collector's message handling against arbitrary packets (libFuzzer).
 *
 * An agent's connection is a sequence of packets (core/wire.h); here the input is cut
 * at NUL bytes into packets, delivered on two interleaved connections of one tracker,
 * which then disconnect and shut down — the paths a torn or hostile client takes. Every
 * record the tracker emits is serialised as the log would write it. The collector
 * parses files on disk for adopt messages and torn files, so packets that name a path
 * with a '/' are skipped and the target runs in an empty directory of its own: the
 * fuzzer cannot make it read the machine's files.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "collector/record.h"
#include "collector/tracker.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void emit(void *ctx, const struct record *r)
{
    size_t len;
    free(record_to_line(r, &len));
    (*(unsigned long *)ctx)++;
}

static char empty_dir[] = "/tmp/ckmon-fuzz-wire-XXXXXX";

static void remove_empty_dir(void)
{
    rmdir(empty_dir);
}

static void enter_empty_dir(void)
{
    if (!mkdtemp(empty_dir) || chdir(empty_dir) < 0) {
        perror("fuzz_wire: an empty directory");
        abort();
    }
    atexit(remove_empty_dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool entered;
    if (!entered) enter_empty_dir();
    entered = true;
    unsigned long emitted = 0;
    struct tracker *t = tracker_new(emit, &emitted);
    struct tracker_conn *conns[2] = {tracker_connect(t, 1), tracker_connect(t, 2)};
    if (!t || !conns[0] || !conns[1]) abort();
    int64_t now_us = 1700000000000000LL;
    unsigned which = 0;
    for (size_t at = 0; at <= size;) {
        const uint8_t *end = memchr(data + at, 0, size - at);
        size_t len = end ? (size_t)(end - (data + at)) : size - at;
        if (len > 0 && data[at] == '#') /* '#': the next packet goes to the other connection */
            which ^= 1;
        else if (!memchr(data + at, '/', len))
            tracker_message(t, conns[which], (const char *)data + at, len, now_us);
        now_us += 300000; /* records held for a rename expire along the way */
        tracker_expire(t, now_us);
        at += len + 1;
    }
    tracker_disconnect(t, conns[0], now_us);
    tracker_shutdown(t, now_us);
    tracker_free(t);
    return 0;
}
