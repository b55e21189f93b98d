/* notify.h — telling systemd the collector is ready (Type=notify units).
 *
 * Under systemd (NOTIFY_SOCKET set) the collector says READY=1 once its log, sinks and
 * socket are ready, and STOPPING=1 when it starts to shut down, through sd_notify from
 * libsystemd, loaded with dlopen only then: elsewhere nothing is loaded or sent.
 */
#ifndef CKMON_NOTIFY_H
#define CKMON_NOTIFY_H

/* Sends state (e.g. "READY=1\nSTATUS=...") to systemd when it asked for it. */
void notify_systemd(const char *state);

#endif
