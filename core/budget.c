/* budget.c — the overhead budget controller (see budget.h).
 *
 * A token bucket measured in time: the allowance is fraction × (program time in
 * writes), and a block of statistics may start while the floor lasts or the time spent
 * beyond it is within the allowance. The time of the latest write is credited in proportion to how
 * many of its bytes the parser has passed, which spreads the sampled blocks evenly over a large
 * write. A block started within the allowance is finished, so the overshoot is at most one sampling
 * block's statistics.
 */
#include "budget.h"

#include <stdlib.h>

__thread struct budget *budget_active __attribute__((tls_model("initial-exec")));

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
    *b = (struct budget){
        .fraction = percent / 100, .clock = clock, .floor_left = BUDGET_FLOOR_BYTES};
}

void budget_wrote(struct budget *b, long long ns, unsigned long long bytes)
{
    b->written_ns += b->latest_ns;
    b->latest_ns = ns > 0 ? ns : 0;
    b->latest_bytes = bytes;
    b->latest_fed = 0;
}

void budget_fed(struct budget *b, unsigned long long bytes)
{
    b->latest_fed += bytes;
    if (b->latest_fed > b->latest_bytes) b->latest_fed = b->latest_bytes;
}

bool budget_allows(const struct budget *b)
{
    double latest = b->latest_bytes
                        ? (double)b->latest_ns * ((double)b->latest_fed / (double)b->latest_bytes)
                        : 0;
    if (b->floor_left > 0) return true;
    return (double)b->stats_ns <= b->fraction * ((double)b->written_ns + latest);
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
