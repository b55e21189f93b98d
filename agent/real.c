/* real.c — resolves the real functions behind every wrapper, once. */
#include "real.h"

#include <dlfcn.h>

struct real_functions real_fn;
__thread bool agent_busy __attribute__((tls_model("initial-exec")));

void real_resolve(void)
{
    /* Resolution is idempotent: two threads racing here store the same pointers. The
     * busy flag keeps wrappers reached from inside dlsym (it may allocate and print)
     * on their plain path. */
    bool was_busy = agent_busy;
    agent_busy = true;
#define RESOLVE(name) real_fn.name = (__typeof__(name) *)dlsym(RTLD_NEXT, #name);
    REAL_FUNCTIONS(RESOLVE)
#undef RESOLVE
    __atomic_store_n(&real_fn.ready, true, __ATOMIC_RELEASE);
    agent_busy = was_busy;
}
