/* torch.h — what the torch zip parser (torch.c) offers a parser of many archives in one
 * file (distcp.c): feeding one archive and learning where it ended. */
#ifndef CKMON_TORCH_H
#define CKMON_TORCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "parser.h"

/* For a parser from parser_torch_new: feeds the archive's bytes and returns how many
 * belong to it (fewer than len once its end record is complete). */
size_t torch_feed_archive(struct parser *p, const uint8_t *data, size_t len);
/* Whether the archive fed so far is complete up to its end record. */
bool torch_archive_ended(const struct parser *p);

#endif
