/* budget.h — the overhead budget: how much statistics a checkpoint may cost.
 *
 * With a budget of P percent, the statistics over a file's tensors may take at most
 * P/100 of the time the program spends in its writes to that file. The first
 * BUDGET_FLOOR_BYTES of tensor data a file's statistics read are outside the budget (their
 * time is not counted), so that small checkpoints always get exact statistics whatever
 * the machine's speed or load: which of their blocks are read never depends on timing. The
 * tensor reader asks before each sampling block whether the block may be read; the answer is
 * yes while the time spent so far is within the allowance. The allowance of a write
 * grows as the parser moves through that write's bytes, so a single huge write is
 * sampled evenly rather than read at its start and skipped at its end.
 *
 * An explicit --sample turns the budget off (the user asked for a fixed fraction).
 * The clock is a parameter so that the controller can be tested deterministically.
 */
#ifndef CKMON_BUDGET_H
#define CKMON_BUDGET_H

#include <stdbool.h>
#include <stddef.h>

#define DEFAULT_BUDGET_PERCENT 2
#define BUDGET_FLOOR_BYTES     (4ull << 20) /* tensor bytes per file read outside the budget */

typedef long long (*budget_clock)(void);

struct budget {
    double fraction;      /* P / 100 */
    budget_clock clock;   /* monotonic nanoseconds */
    long long written_ns; /* time in the writes whose bytes were all passed on */
    long long latest_ns;  /* time in the latest write */
    unsigned long long latest_bytes, latest_fed; /* its size, and how much was fed */
    long long stats_ns;                          /* time spent in statistics beyond the floor */
    unsigned long long floor_left; /* bytes the floor still reads outside the budget */
};

/* The budget whose file is being fed on this thread (NULL: none; read everything
 * the sample says). Set by the agent around a tracked file's parsing. */
extern __thread struct budget *budget_active;

/* Parses "PERCENT" (a number in (0, 100]); false if it is not one. */
bool budget_parse_percent(const char *text, double *percent);

void budget_init(struct budget *b, double percent, budget_clock clock);
/* The program spent ns in a write of bytes; its bytes are fed next. */
void budget_wrote(struct budget *b, long long ns, unsigned long long bytes);
/* The parser moved past bytes of the latest write. */
void budget_fed(struct budget *b, unsigned long long bytes);
/* Whether statistics may read another block now. */
bool budget_allows(const struct budget *b);
/* Statistics read bytes, starting at start (a value of b->clock): the floor takes them
 * while it lasts, else their time counts. */
void budget_charge(struct budget *b, long long start, size_t bytes);

#endif
