/* health.h — what makes a checkpoint good: complete, and no critical alert.
 *
 * One definition for the metric ckmon_checkpoint_healthy, for `ckmon last-good` and for
 * the severity of the built-in rules, in a module that depends on nothing else, so that
 * the rules (alerts.c) and the metrics (metrics.c) can both use it.
 */
#ifndef CKMON_HEALTH_H
#define CKMON_HEALTH_H

#include <stdbool.h>

#include <cjson/cJSON.h>

/* Whether the rule called name is critical: the built-in nonfinite and incomplete. */
bool rule_is_critical(const char *name);
/* A checkpoint record that is complete and whose "alerts" name no critical rule. */
bool record_healthy(const cJSON *record);

#endif
