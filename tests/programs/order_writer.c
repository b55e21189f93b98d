/* order_writer.c — copies a file to a checkpoint path in a chosen order of writes.
 *
 * Real writers do not all write front to back in large pieces: some write a byte at a
 * time, some place blocks with pwrite from wherever they like, archivers seek back and
 * rewrite a header once the data is out. The end-to-end tests copy files of every
 * format through each pattern here and check that the record still describes them
 * exactly, and says how it was obtained.
 *
 * usage: order_writer PATTERN SOURCE DEST
 *   sequential  write() in pieces of 64 KiB, front to back
 *   bytes       one write() per byte
 *   backwards   pwrite() of 1000-byte blocks, the last block first
 *   seekback    the first 64 bytes written as zeros, then the rest, then lseek back
 *               and the real first 64 bytes written over the zeros
 *   stdio       fwrite() in pieces of 3000 bytes through fopen
 *   killed      write() in pieces of 64 KiB of all but the last KILLED_SHORT bytes, then
 *               SIGKILL to itself: a torn checkpoint
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SEQUENTIAL_PIECE 65536
#define BACKWARDS_BLOCK  1000
#define SEEKBACK_HEADER  64
#define STDIO_PIECE      3000
#define KILLED_SHORT     100

static int die(const char *what)
{
    perror(what);
    exit(1);
}

static unsigned char *read_source(const char *path, size_t *len)
{
    struct stat st;
    int fd = open(path, O_RDONLY);
    if (fd < 0 || fstat(fd, &st) < 0) die(path);
    unsigned char *buf = malloc((size_t)st.st_size + 1);
    size_t have = 0;
    while (buf && have < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + have, (size_t)st.st_size - have);
        if (n <= 0) die("read");
        have += (size_t)n;
    }
    if (!buf) die("malloc");
    close(fd);
    *len = have;
    return buf;
}

/* write() until all of it is out, one call per piece of at most `piece` bytes. */
static void write_pieces(int fd, const unsigned char *buf, size_t len, size_t piece)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len < piece ? len : piece);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) die("write");
        buf += n;
        len -= (size_t)n;
    }
}

static void write_backwards(int fd, const unsigned char *buf, size_t len)
{
    size_t end = len;
    while (end > 0) {
        size_t begin = end > BACKWARDS_BLOCK ? end - BACKWARDS_BLOCK : 0;
        if (pwrite(fd, buf + begin, end - begin, (off_t)begin) != (ssize_t)(end - begin))
            die("pwrite");
        end = begin;
    }
}

static void write_seekback(int fd, const unsigned char *buf, size_t len)
{
    static const unsigned char zeros[SEEKBACK_HEADER];
    size_t header = len < SEEKBACK_HEADER ? len : SEEKBACK_HEADER;
    write_pieces(fd, zeros, header, header);
    write_pieces(fd, buf + header, len - header, SEQUENTIAL_PIECE);
    if (lseek(fd, 0, SEEK_SET) != 0) die("lseek");
    write_pieces(fd, buf, header, header);
}

static void write_stdio(const char *path, const unsigned char *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) die(path);
    for (size_t at = 0; at < len; at += STDIO_PIECE) {
        size_t n = len - at < STDIO_PIECE ? len - at : STDIO_PIECE;
        if (fwrite(buf + at, 1, n, f) != n) die("fwrite");
    }
    if (fclose(f) != 0) die("fclose");
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(
            stderr,
            "usage: order_writer sequential|bytes|backwards|seekback|stdio|killed SOURCE DEST\n");
        return 2;
    }
    const char *pattern = argv[1], *dest = argv[3];
    size_t len;
    unsigned char *buf = read_source(argv[2], &len);
    if (strcmp(pattern, "stdio") == 0) {
        write_stdio(dest, buf, len);
        free(buf);
        return 0;
    }
    int fd = open(dest, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) die(dest);
    if (strcmp(pattern, "sequential") == 0)
        write_pieces(fd, buf, len, SEQUENTIAL_PIECE);
    else if (strcmp(pattern, "bytes") == 0)
        write_pieces(fd, buf, len, 1);
    else if (strcmp(pattern, "backwards") == 0)
        write_backwards(fd, buf, len);
    else if (strcmp(pattern, "seekback") == 0)
        write_seekback(fd, buf, len);
    else if (strcmp(pattern, "killed") == 0 && len > KILLED_SHORT) {
        write_pieces(fd, buf, len - KILLED_SHORT, SEQUENTIAL_PIECE);
        kill(getpid(), SIGKILL);
    } else
        return fprintf(stderr, "order_writer: unknown pattern %s\n", pattern), 2;
    if (close(fd) != 0) die("close");
    free(buf);
    return 0;
}
