/* agent_spool.c — the agent spool's directory name and file format (agent_spool.h). */
#include "agent_spool.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "wire.h"

#define SOCKET_PATH_MAX 107

bool agent_spool_dir(const char *socket_path, unsigned uid, char *out, size_t size)
{
    const char *slash = strrchr(socket_path, '/');
    int dir_len = slash ? (int)(slash - socket_path) : 1; /* "/x.sock": "" then "/" */
    int n = snprintf(out, size, "%.*s/" AGENT_SPOOL_DIR_FORMAT, dir_len, slash ? socket_path : ".",
                     uid);
    return n > 0 && (size_t)n < size;
}

static void put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

size_t agent_spool_header(const char *socket_path, unsigned char *out, size_t size)
{
    size_t path_len = strlen(socket_path);
    size_t total = 16 + path_len;
    if (path_len == 0 || path_len > SOCKET_PATH_MAX || total > size) return 0;
    memcpy(out, AGENT_SPOOL_MAGIC, 8);
    put_u32(out + 8, AGENT_SPOOL_VERSION);
    put_u32(out + 12, (uint32_t)path_len);
    memcpy(out + 16, socket_path, path_len);
    return total;
}

void agent_spool_length(size_t len, unsigned char out[4])
{
    put_u32(out, (uint32_t)len);
}

bool agent_spool_open(struct agent_spool_reader *r, const void *data, size_t len,
                      const char *socket_path)
{
    const unsigned char *d = data;
    *r = (struct agent_spool_reader){.data = d, .len = len};
    if (len < 16 || memcmp(d, AGENT_SPOOL_MAGIC, 8) != 0 || get_u32(d + 8) != AGENT_SPOOL_VERSION)
        return false;
    size_t path_len = get_u32(d + 12);
    if (path_len == 0 || path_len > SOCKET_PATH_MAX || len - 16 < path_len ||
        strlen(socket_path) != path_len || memcmp(d + 16, socket_path, path_len) != 0)
        return false;
    r->pos = 16 + path_len;
    return true;
}

bool agent_spool_next(struct agent_spool_reader *r, const char **packet, size_t *len)
{
    if (r->len - r->pos < 4) return false;
    size_t n = get_u32(r->data + r->pos);
    if (n == 0 || n > WIRE_MAX_MESSAGE || r->len - r->pos - 4 < n) return false;
    *packet = (const char *)r->data + r->pos + 4;
    *len = n;
    r->pos += 4 + n;
    return true;
}
