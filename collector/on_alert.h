/* on_alert.h — running the user's --on-alert command for each alert, off the loop.
 *
 * The server only queues (a mutex and a copy); one thread runs the commands one at a
 * time, `/bin/sh -c CMD` with the alert record on stdin, CKMON_ALERT_* in the
 * environment and stdout sent to stderr (the log may be stdout). A command that
 * outlives its time limit is terminated, its process group with it. Failures are
 * said on stderr; none is fatal, and a full queue drops alerts (counted) rather than
 * wait: the collector must never be held up by a pager or a slow curl.
 */
#ifndef CKMON_ON_ALERT_H
#define CKMON_ON_ALERT_H

#include <stdbool.h>

struct on_alert;

struct on_alert_env {
    const char *rule, *severity, *path, *subject, *job;
    long pid;
};

/* NULL when out of memory. No thread starts until the first alert. */
struct on_alert *on_alert_new(const char *command, double timeout_seconds);
/* Queues one run of the command; line is the alert record (with its '\n'). */
void on_alert_queue(struct on_alert *q, const char *line, const struct on_alert_env *env);
/* Lets the queued commands run for up to the time limit in all, then stops the thread,
 * terminating a command still running, and frees q. */
void on_alert_finish(struct on_alert *q);

#endif
