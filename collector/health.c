/* health.c — a checkpoint's health from its record (health.h). */
#include "health.h"

#include <string.h>

bool rule_is_critical(const char *name)
{
    return !strcmp(name, "nonfinite") || !strcmp(name, "incomplete");
}

bool record_healthy(const cJSON *record)
{
    const cJSON *rule;
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(record, "complete"))) return false;
    cJSON_ArrayForEach(rule, cJSON_GetObjectItemCaseSensitive(record, "alerts"))
    {
        if (cJSON_IsString(rule) && rule_is_critical(rule->valuestring)) return false;
    }
    return true;
}
