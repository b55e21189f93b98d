/* segments.h — a log and its rotated segments, LOG.1, LOG.2, ... (higher is newer).
 *
 * Rotation renames LOG to LOG.<highest+1> and starts a new LOG, so a reader that
 * knows which file it was reading (by device and inode, which a rename keeps) can
 * always find it again and knows what comes after it: the next number, and after
 * the highest, LOG itself. Numbers are never reused while a lower one exists.
 */
#ifndef CKMON_SEGMENTS_H
#define CKMON_SEGMENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Segment 0 is the active file, LOG itself. */
#define SEGMENT_ACTIVE 0UL

struct segment_list {
    unsigned long *seqs; /* ascending */
    size_t count;
};

/* "LOG" for SEGMENT_ACTIVE, else "LOG.<seq>"; malloc'd, NULL when out of memory. */
char *segment_path(const char *base, unsigned long seq);
/* The rotated segments of base that exist now; false when its directory is unreadable. */
bool segment_list(const char *base, struct segment_list *out);
void segment_list_free(struct segment_list *l);
/* Calls each(ctx, line) for every line of base's rotated segments, oldest first, then
 * of base itself: the whole log in order. False, with errno, when base cannot be read
 * (ENOENT: no log yet); a segment that vanished meanwhile is passed over. */
bool segment_each_line(const char *base, void (*each)(void *ctx, const char *line), void *ctx);
/* Which segment of base is the file (dev, ino): true with *seq set, false if none is. */
bool segment_find(const char *base, dev_t dev, ino_t ino, unsigned long *seq);
/* What a reader goes on to after segment seq: the next rotated segment when it
 * exists and is not older than seq (another rotator's LOG.2 is older than its LOG.1),
 * else the active file. */
unsigned long segment_next(const char *base, unsigned long seq);

#endif
