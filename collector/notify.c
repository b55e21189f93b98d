/* notify.c — sd_notify through a dlopen'd libsystemd (see notify.h). */
#include "notify.h"

#include <dlfcn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include <systemd/sd-daemon.h>

/* The soname of libsystemd's ABI 0 (Debian's libsystemd0). */
#define LIBSYSTEMD "libsystemd.so.0"

void notify_systemd(const char *state)
{
    static __typeof__(sd_notify) *notify;
    static bool tried;
    const char *socket = getenv("NOTIFY_SOCKET");
    if (!socket || !*socket) return;
    if (!tried) {
        tried = true;
        void *lib = dlopen(LIBSYSTEMD, RTLD_NOW | RTLD_LOCAL);
        if (lib) *(void **)&notify = dlsym(lib, "sd_notify");
        if (!notify)
            fprintf(stderr, "ckmon: NOTIFY_SOCKET is set but %s cannot be used: %s\n", LIBSYSTEMD,
                    dlerror());
    }
    if (notify) notify(0, state);
}
