/* doctor.c — `ckmon doctor`: can the agent monitor this program, and if not, why.
 *
 * The agent works by LD_PRELOAD, so it needs a dynamically linked program, for this
 * machine's ELF class and machine, loaded by glibc's loader outside secure-execution
 * mode, that writes through the C library. Each of those is read from the file itself
 * with libelf — the program is never run — after following `#!` lines (and `env` on
 * them) to the ELF that the kernel really starts. A user whose log stays empty gets one
 * line per reason instead. `ckmon run` runs the same check and only warns.
 */
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "cli.h"
#include "command_path.h"

#define MAX_HOPS     4 /* the kernel allows a few levels of #! too */
#define MAX_IMPORTS  24
#define SHEBANG_SIZE 256

/* The calls the agent wraps (it sees the bytes), and writes it cannot see. */
static const char *const seen_writes[] = {
    "write",          "pwrite",  "pwrite64",        "writev",  "pwritev",        "pwritev2",
    "pwritev64",      "fwrite",  "fwrite_unlocked", "fputs",   "fputs_unlocked", "fputc",
    "fputc_unlocked", "putc",    "putc_unlocked",   "fprintf", "vfprintf",       "__fprintf_chk",
    "__vfprintf_chk", "dprintf", "vdprintf",        NULL};
static const char *const unseen_writes[] = {
    "mmap", "mmap64", "sendfile", "sendfile64", "copy_file_range", "splice", NULL};

struct doctor {
    FILE *info;         /* what the program is; NULL to say nothing but problems */
    FILE *out;          /* one line per problem */
    const char *prefix; /* before each problem line */
    int problems;
};

static void problem(struct doctor *d, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void problem(struct doctor *d, const char *path, const char *fmt, ...)
{
    va_list ap;
    fprintf(d->out, "%s%s: ", d->prefix, path);
    va_start(ap, fmt);
    vfprintf(d->out, fmt, ap);
    va_end(ap);
    fputc('\n', d->out);
    d->problems++;
}

static bool in_list(const char *const *list, const char *name)
{
    for (; *list; list++)
        if (!strcmp(*list, name)) return true;
    return false;
}

static const char *machine_name(unsigned machine)
{
    switch (machine) {
    case EM_X86_64:
        return "x86-64";
    case EM_386:
        return "i386";
    case EM_AARCH64:
        return "aarch64";
    case EM_ARM:
        return "arm";
    case EM_RISCV:
        return "riscv";
    case EM_PPC64:
        return "ppc64";
    case EM_S390:
        return "s390";
    default:
        return "an unknown machine";
    }
}

/* ---- ELF ------------------------------------------------------------------------- */

struct elf_facts {
    int elf_class;
    unsigned machine;
    char interp[PATH_MAX]; /* "" when there is no PT_INTERP */
    bool go;
    bool io_uring;
    char imports[MAX_IMPORTS][32];
    size_t import_count;
    char unseen[MAX_IMPORTS][32];
    size_t unseen_count;
};

static void add_name(char list[][32], size_t *count, const char *name)
{
    for (size_t i = 0; i < *count; i++)
        if (!strcmp(list[i], name)) return;
    if (*count < MAX_IMPORTS) snprintf(list[(*count)++], 32, "%s", name);
}

/* Go writes its build id as a note named "Go" (type 4), also in stripped binaries. */
static bool has_go_note(Elf_Data *data)
{
    GElf_Nhdr nh;
    size_t offset = 0, name_at, desc_at;
    while ((offset = gelf_getnote(data, offset, &nh, &name_at, &desc_at)) > 0)
        if (nh.n_namesz == 3 && !memcmp((char *)data->d_buf + name_at, "Go", 3) && nh.n_type == 4)
            return true;
    return false;
}

static void read_symbols(Elf *e, Elf_Scn *scn, const GElf_Shdr *sh, struct elf_facts *f)
{
    Elf_Data *data = elf_getdata(scn, NULL);
    size_t n = sh->sh_entsize ? sh->sh_size / sh->sh_entsize : 0;
    for (size_t i = 0; data && i < n; i++) {
        GElf_Sym sym;
        if (!gelf_getsym(data, (int)i, &sym) || sym.st_shndx != SHN_UNDEF) continue;
        const char *name = elf_strptr(e, sh->sh_link, sym.st_name);
        if (!name || !*name) continue;
        if (in_list(seen_writes, name)) add_name(f->imports, &f->import_count, name);
        if (in_list(unseen_writes, name)) add_name(f->unseen, &f->unseen_count, name);
        if (!strncmp(name, "io_uring_", 9)) f->io_uring = true;
    }
}

static void read_needed(Elf *e, Elf_Scn *scn, const GElf_Shdr *sh, struct elf_facts *f)
{
    Elf_Data *data = elf_getdata(scn, NULL);
    size_t n = sh->sh_entsize ? sh->sh_size / sh->sh_entsize : 0;
    for (size_t i = 0; data && i < n; i++) {
        GElf_Dyn dyn;
        if (!gelf_getdyn(data, (int)i, &dyn) || dyn.d_tag != DT_NEEDED) continue;
        const char *name = elf_strptr(e, sh->sh_link, dyn.d_un.d_val);
        if (name && strstr(name, "liburing")) f->io_uring = true;
    }
}

static void read_sections(Elf *e, struct elf_facts *f)
{
    size_t shstrndx;
    if (elf_getshdrstrndx(e, &shstrndx) != 0) return;
    for (Elf_Scn *scn = elf_nextscn(e, NULL); scn; scn = elf_nextscn(e, scn)) {
        GElf_Shdr sh;
        if (!gelf_getshdr(scn, &sh)) continue;
        const char *name = elf_strptr(e, shstrndx, sh.sh_name);
        if (name && (!strcmp(name, ".go.buildinfo") || !strcmp(name, ".note.go.buildid")))
            f->go = true;
        if (sh.sh_type == SHT_NOTE && !f->go) f->go = has_go_note(elf_getdata(scn, NULL));
        if (sh.sh_type == SHT_DYNSYM) read_symbols(e, scn, &sh, f);
        if (sh.sh_type == SHT_DYNAMIC) read_needed(e, scn, &sh, f);
    }
}

/* Returns false (with why) when path is not an ELF file libelf can read. */
static bool read_elf(const char *path, struct elf_facts *f, const char **why)
{
    memset(f, 0, sizeof *f);
    *why = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *why = strerror(errno);
        return false;
    }
    elf_version(EV_CURRENT);
    Elf *e = elf_begin(fd, ELF_C_READ_MMAP, NULL);
    GElf_Ehdr eh;
    size_t phnum, raw_size;
    char *raw = e ? elf_rawfile(e, &raw_size) : NULL;
    bool ok =
        e && elf_kind(e) == ELF_K_ELF && gelf_getehdr(e, &eh) && elf_getphdrnum(e, &phnum) == 0;
    if (ok) {
        f->elf_class = gelf_getclass(e);
        f->machine = eh.e_machine;
        for (size_t i = 0; i < phnum; i++) {
            GElf_Phdr ph;
            if (!gelf_getphdr(e, (int)i, &ph)) continue;
            if (ph.p_type == PT_INTERP && raw && ph.p_offset < raw_size)
                snprintf(f->interp, sizeof f->interp, "%.*s",
                         (int)(ph.p_filesz < raw_size - ph.p_offset ? ph.p_filesz
                                                                    : raw_size - ph.p_offset),
                         raw + ph.p_offset);
        }
        read_sections(e, f);
    }
    if (e) elf_end(e);
    close(fd);
    return ok;
}

static void describe(struct doctor *d, const char *path, const struct elf_facts *f)
{
    if (!d->info) return;
    fprintf(d->info, "%s: %d-bit %s ELF, %s", path, f->elf_class == ELFCLASS32 ? 32 : 64,
            machine_name(f->machine), f->interp[0] ? "dynamically linked" : "statically linked");
    if (f->interp[0]) fprintf(d->info, " (loader %s)", f->interp);
    fputs(f->go ? ", a Go program\n" : "\n", d->info);
    if (f->import_count) {
        fprintf(d->info, "%s: writes through", path);
        for (size_t i = 0; i < f->import_count; i++)
            fprintf(d->info, "%s %s", i ? "," : "", f->imports[i]);
        fputc('\n', d->info);
    }
    if (f->unseen_count) {
        fprintf(d->info, "%s: also imports", path);
        for (size_t i = 0; i < f->unseen_count; i++)
            fprintf(d->info, "%s %s", i ? "," : "", f->unseen[i]);
        fputs(" (bytes written so are not seen; the agent re-reads such files at close)\n",
              d->info);
    }
}

/* The agent is built with ckmon, so ckmon's own ELF header says what it can load into. */
static bool own_elf(struct elf_facts *self)
{
    const char *why;
    return read_elf("/proc/self/exe", self, &why);
}

static void check_elf(struct doctor *d, const char *path, const struct elf_facts *f)
{
    struct elf_facts self;
    describe(d, path, f);
    if (own_elf(&self) && (f->elf_class != self.elf_class || f->machine != self.machine)) {
        problem(d, path, "%d-bit %s, but the agent is %d-bit %s: it cannot be loaded into it",
                f->elf_class == ELFCLASS32 ? 32 : 64, machine_name(f->machine),
                self.elf_class == ELFCLASS32 ? 32 : 64, machine_name(self.machine));
        return; /* what follows is about a program the agent could load */
    }
    if (!f->interp[0])
        problem(d, path,
                "statically linked (no program interpreter): LD_PRELOAD cannot load "
                "the agent into it");
    else if (strstr(f->interp, "musl"))
        problem(d, path, "linked against musl (%s): the agent is built for glibc", f->interp);
    if (f->go)
        problem(d, path,
                "a Go program: Go makes its own system calls, so the agent sees none "
                "of its writes");
    if (f->io_uring)
        problem(d, path,
                "uses io_uring (liburing or io_uring_* imports): files it opens and "
                "writes that way are not seen");
}

/* setuid/setgid programs and programs with file capabilities run in secure-execution
 * mode, where the loader ignores LD_PRELOAD (only for the program the kernel starts:
 * the bits are ignored on scripts). */
static void check_privileges(struct doctor *d, const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0 && (st.st_mode & (S_ISUID | S_ISGID)))
        problem(d, path, "%s: the loader ignores LD_PRELOAD for it",
                (st.st_mode & S_ISUID) ? "setuid" : "setgid");
    if (getxattr(path, "security.capability", NULL, 0) > 0)
        problem(d, path,
                "has file capabilities (security.capability): the loader ignores "
                "LD_PRELOAD for it");
}

/* ---- #! and env ------------------------------------------------------------------- */

struct words {
    char *items[64];
    size_t count;
};

static void split_words(char *text, struct words *w)
{
    for (char *tok = strtok(text, " \t"); tok && w->count < 64; tok = strtok(NULL, " \t"))
        w->items[w->count++] = tok;
}

/* The command `env ARGS...` runs (name first, then its arguments), skipping env's
 * options and NAME=VALUE words and splitting a -S string as env does; false when it
 * runs none. buf holds the split words. */
static bool env_command(char **args, size_t n, char *buf, size_t size, struct words *cmd)
{
    struct words split = {0};
    for (size_t i = 0; i < n; i++) {
        const char *a = args[i], *s = NULL;
        if (!strcmp(a, "-S") || !strcmp(a, "--split-string"))
            s = i + 1 < n ? args[++i] : "";
        else if (!strncmp(a, "-S", 2))
            s = a + 2;
        else if (!strncmp(a, "--split-string=", 15))
            s = a + 15;
        if (s && !split.count) { /* the words of s take its place, once */
            snprintf(buf, size, "%s", s);
            split_words(buf, &split);
            for (size_t j = i + 1; j < n && split.count < 64; j++)
                split.items[split.count++] = args[j];
            args = split.items;
            n = split.count;
            i = (size_t)-1;
            continue;
        }
        if (!strcmp(a, "--")) {
            i++;
        } else if (!strcmp(a, "-u") || !strcmp(a, "-C") || !strcmp(a, "--unset") ||
                   !strcmp(a, "--chdir")) {
            i++;
            continue;
        } else if (a[0] == '-' || strchr(a, '=')) {
            continue;
        }
        for (cmd->count = 0; i < n && cmd->count < 64; i++)
            cmd->items[cmd->count++] = args[i];
        return cmd->count > 0;
    }
    return false;
}

static bool is_env(const char *path)
{
    const char *slash = strrchr(path, '/');
    return !strcmp(slash ? slash + 1 : path, "env");
}

static void check_program(struct doctor *d, const char *name, char **args, size_t n, int hops);

/* path starts with "#!": check its interpreter instead (Linux ignores setuid there). */
static void check_script(struct doctor *d, const char *path, char *line, int hops)
{
    char *p = line + 2;
    p[strcspn(p, "\n")] = '\0';
    p += strspn(p, " \t");
    char *interp = p;
    p += strcspn(p, " \t");
    char *arg = NULL;
    if (*p) {
        *p++ = '\0';
        p += strspn(p, " \t");
        size_t len = strlen(p);
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            p[--len] = '\0';
        if (len) arg = p;
    }
    if (d->info)
        fprintf(d->info, "%s: a script run by %s%s%s\n", path, interp, arg ? " " : "",
                arg ? arg : "");
    if (!*interp) {
        problem(d, path, "its #! line names no interpreter");
        return;
    }
    char *args[1] = {arg};
    check_program(d, interp, args, arg ? 1 : 0, hops + 1);
}

/* name as the kernel or execvp would find it; args are what follows it (for env). */
static void check_program(struct doctor *d, const char *name, char **args, size_t n, int hops)
{
    char path[PATH_MAX];
    if (hops > MAX_HOPS) {
        problem(d, name, "more than %d levels of #! interpreters", MAX_HOPS);
        return;
    }
    int err = find_command(name, path, sizeof path);
    if (err) {
        problem(d, name, "%s",
                err == ENOENT && !strchr(name, '/') ? "command not found" : strerror(err));
        return;
    }
    char head[SHEBANG_SIZE] = "";
    FILE *f = fopen(path, "re");
    size_t got = f ? fread(head, 1, sizeof head - 1, f) : 0;
    if (f) fclose(f);
    head[got] = '\0';
    if (got >= 2 && head[0] == '#' && head[1] == '!') return check_script(d, path, head, hops);

    struct elf_facts facts;
    const char *why;
    if (!read_elf(path, &facts, &why)) {
        problem(d, path, "%s", why ? why : "neither an ELF executable nor a #! script");
        return;
    }
    check_elf(d, path, &facts);
    check_privileges(d, path);
    if (!is_env(path)) return;
    char buf[SHEBANG_SIZE];
    struct words cmd;
    if (!env_command(args, n, buf, sizeof buf, &cmd)) return;
    if (strpbrk(cmd.items[0], " \t"))
        problem(d, path,
                "env would look for a program named '%s' (a #! line passes its rest as one "
                "word: use env -S)",
                cmd.items[0]);
    else
        check_program(d, cmd.items[0], cmd.items + 1, cmd.count - 1, hops + 1);
}

int doctor_check(const char *command, char **args, size_t n, FILE *info, FILE *out,
                 const char *prefix)
{
    struct doctor d = {.info = info, .out = out, .prefix = prefix};
    check_program(&d, command, args, n, 0);
    return d.problems;
}

int cmd_doctor(int argc, char **argv)
{
    int first = 0;
    if (argc > 0 && (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h"))) {
        show_help(COMMAND_DOCTOR);
        return 0;
    }
    if (argc > 0 && !strcmp(argv[0], "--"))
        first = 1;
    else if (argc > 0 && argv[0][0] == '-')
        return usage_error(COMMAND_DOCTOR, "unknown option '%s'", argv[0]);
    if (first >= argc) return usage_error(COMMAND_DOCTOR, "no COMMAND to check");
    int problems = doctor_check(argv[first], argv + first + 1, (size_t)(argc - first - 1), stdout,
                                stdout, "problem: ");
    if (!problems) printf("ok: the agent can monitor %s\n", argv[first]);
    return problems ? 1 : 0;
}
