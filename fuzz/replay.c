/*
 * The corpus replayer: what each fuzz target links instead of libFuzzer
 * when built as a ctest (with gcc as well as clang). Every file named on
 * the command line, and every regular file in every directory named, goes
 * through LLVMFuzzerTestOneInput once. A crash, a sanitizer report or a
 * failed assertion fails the test; an empty corpus fails it too.
 */
#include "fuzz.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Weak: only some targets define them. */
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);
__attribute__((weak)) bool micro_fuzz_skipped(void);

static int
replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    size_t got;
    while (buf != NULL && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            uint8_t *nb = realloc(buf, cap * 2);
            if (nb == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf == NULL) {
        fprintf(stderr, "%s: out of memory\n", path);
        return -1;
    }
    /* An exact-size copy, so that ASan sees a read past the input. */
    uint8_t *in = malloc(n > 0 ? n : 1);
    if (in == NULL) {
        free(buf);
        return -1;
    }
    memcpy(in, buf, n);
    free(buf);
    LLVMFuzzerTestOneInput(in, n);
    free(in);
    return 0;
}

static int
replay_path(const char *path, size_t *count)
{
    struct stat sb;
    if (stat(path, &sb) != 0) {
        perror(path);
        return -1;
    }
    if (!S_ISDIR(sb.st_mode)) {
        (*count)++;
        return replay_file(path);
    }
    DIR *d = opendir(path);
    if (d == NULL) {
        perror(path);
        return -1;
    }
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        size_t len = strlen(path) + strlen(e->d_name) + 2;
        char *p = malloc(len);
        if (p == NULL) {
            rc = -1;
            break;
        }
        snprintf(p, len, "%s/%s", path, e->d_name);
        if (stat(p, &sb) == 0 && S_ISREG(sb.st_mode)) {
            (*count)++;
            rc = replay_file(p);
        }
        free(p);
    }
    closedir(d);
    return rc;
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s corpus-dir-or-file...\n", argv[0]);
        return 2;
    }
    if (LLVMFuzzerInitialize != NULL) {
        LLVMFuzzerInitialize(&argc, &argv);
    }
    if (micro_fuzz_skipped != NULL && micro_fuzz_skipped()) {
        return 77;
    }
    size_t count = 0;
    for (int i = 1; i < argc; i++) {
        if (replay_path(argv[i], &count) != 0) {
            return 1;
        }
    }
    if (count == 0) {
        fprintf(stderr, "%s: no corpus files\n", argv[0]);
        return 1;
    }
    printf("%s: %zu inputs replayed\n", argv[0], count);
    return 0;
}
