/* budget.h — the agent's safety net: how much time statistics may take over a file.
 *
 * What the statistics read is decided by the sampling plan (parsers/tensor.h), from the
 * tensors' sizes alone, and costs a few percent of a save. The budget only guards against
 * a machine so overloaded that even that plan would slow the program noticeably: with a
 * budget of P percent, the statistics over a file may take at most P/100 of the time
 * since the file was opened (which includes the program's own time for the save). The
 * first BUDGET_FLOOR_BYTES the statistics read in a file are outside it (their time is
 * not counted). The default, 100, is far above what the plan costs under normal load, so
 * it does not decide then; when it does refuse, the tensor reader stops reading that
 * tensor and the record says so in its errors.
 *
 * An explicit --sample turns the budget off (the user asked for a fixed plan). The clock
 * is a parameter so that the controller can be tested deterministically.
 */
#ifndef CKMON_BUDGET_H
#define CKMON_BUDGET_H

#include <stdbool.h>
#include <stddef.h>

#define DEFAULT_BUDGET_PERCENT 100
#define BUDGET_FLOOR_BYTES     (4ull << 20) /* bytes per file read outside the budget */

typedef long long (*budget_clock)(void);

struct budget {
    double fraction;               /* P / 100 */
    budget_clock clock;            /* monotonic nanoseconds */
    long long start_ns;            /* when the file was opened */
    long long stats_ns;            /* time spent in statistics beyond the floor */
    unsigned long long floor_left; /* bytes the floor still reads outside the budget */
};

/* Parses "PERCENT" (a number in (0, 100]); false if it is not one. */
bool budget_parse_percent(const char *text, double *percent);

/* Starts the file's budget now (its open). */
void budget_init(struct budget *b, double percent, budget_clock clock);
/* Whether statistics may read another chunk now. */
bool budget_allows(const struct budget *b);
/* Statistics read bytes, starting at start (a value of b->clock): the floor takes them
 * while it lasts, else their time counts. */
void budget_charge(struct budget *b, long long start, size_t bytes);

#endif
