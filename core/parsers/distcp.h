/* distcp.h — what a PyTorch Distributed Checkpoint's .metadata says about one of its
 * .distcp files, for the parser of those files (distcp.c).
 *
 * A .distcp file is its items back to back: each a torch.save archive (tensors, and
 * other objects saved as bytes) or raw bytes. Which item is which tensor is only in the
 * set's .metadata (storage_data: item -> relative_path, offset, length), written after
 * every rank's files; whoever knows it (the collector, for a finished file) hands the
 * parser the items of the file, and the parser names each item's findings by it.
 */
#ifndef CKMON_DISTCP_H
#define CKMON_DISTCP_H

#include <stddef.h>
#include <stdint.h>

struct distcp_item {
    uint64_t offset, length; /* where in the file */
    char *name;              /* its fully qualified name in the state dict */
};

/* The items of one file, sorted by offset. */
struct distcp_items {
    struct distcp_item *at;
    size_t count;
};

/* The item that starts at offset, or NULL. */
const struct distcp_item *distcp_item_at(const struct distcp_items *items, uint64_t offset);

#endif
