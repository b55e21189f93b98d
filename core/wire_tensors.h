/* wire_tensors.h — a data message read with its tensors built straight into cJSON.
 *
 * A data message is mostly its tensors: some 400 bytes each, a dozen members whose
 * statistics are strings of hex (jsontext.h, json_add_hex_item). cJSON's parser made a
 * string of each hex number and of each member's name, and the decoder then turned the
 * strings into numbers and freed them: over a third of the collector's instructions per
 * tensor. Here the "tensors" array is read by a reader of its own that makes each hex
 * string the number it stands for as it goes and points the members' names at constant
 * strings; cJSON parses only the rest of the packet (its id, counts, values, errors).
 * The tree is the one cJSON_ParseWithLength and json_tensor_from_hex gave: whatever this
 * reader does not take (an escape it does not know, nesting past a few levels, anything
 * but an array of objects) is parsed by cJSON as before.
 */
#ifndef CKMON_WIRE_TENSORS_H
#define CKMON_WIRE_TENSORS_H

#include <stddef.h>

#include <cjson/cJSON.h>

/* The packet (one JSON object) as cJSON, its top-level "tensors" array (when it is one)
 * with the tensors' numbers as numbers; NULL when it is not JSON or there is no memory. */
cJSON *wire_parse_packet(const char *packet, size_t len);

#endif
