/* budget.c — the safety net's controller (see budget.h).
 *
 * The allowance is fraction × (time since the file was opened); a chunk of statistics may
 * start while the floor lasts or the time spent beyond it is within the allowance. A
 * chunk started within the allowance is finished, so the overshoot is at most one chunk's
 * statistics (a gathered chunk of lines or a 64 KiB exact block).
 */
#include "budget.h"

#include <stdlib.h>

bool budget_parse_percent(const char *text, double *percent)
{
    char *end;
    if (!text || !*text) return false;
    double p = strtod(text, &end);
    if (*end != '\0' || !(p > 0 && p <= 100)) return false;
    *percent = p;
    return true;
}

void budget_init(struct budget *b, double percent, budget_clock clock)
{
    *b = (struct budget){.fraction = percent / 100,
                         .clock = clock,
                         .start_ns = clock(),
                         .floor_left = BUDGET_FLOOR_BYTES};
}

bool budget_allows(const struct budget *b)
{
    if (b->floor_left > 0) return true;
    return (double)b->stats_ns <= b->fraction * (double)(b->clock() - b->start_ns);
}

void budget_charge(struct budget *b, long long start, size_t bytes)
{
    long long spent = b->clock() - start;
    if (b->floor_left >= bytes) {
        b->floor_left -= bytes;
        return;
    }
    b->floor_left = 0;
    if (spent > 0) b->stats_ns += spent;
}
