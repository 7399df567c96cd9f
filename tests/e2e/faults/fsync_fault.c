/* Fault injection for the e2e tests: an LD_PRELOAD shim that makes fsync(2)
 * fail with EIO on chosen paths, so a test can show what the broker does
 * when a directory or file fsync fails (this kernel has no device-mapper or
 * fail_make_request to do it below the filesystem).
 *
 * SLUICE_FSYNC_FAULTS names a control file. While that file exists and holds
 * a path, every fsync of a file descriptor whose path (/proc/self/fd) is
 * exactly that path fails with EIO; otherwise fsync is the real one. The
 * test arms and disarms the fault by writing and removing the control file.
 * Built by the `fsync_faults` fixture in conftest.py. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int (*real_fsync)(int);

static int armed_for(int fd) {
    const char *control = getenv("SLUICE_FSYNC_FAULTS");
    if (control == NULL) return 0;
    FILE *f = fopen(control, "r");
    if (f == NULL) return 0;
    char want[PATH_MAX] = {0};
    size_t n = fread(want, 1, sizeof want - 1, f);
    fclose(f);
    while (n > 0 && (want[n - 1] == '\n' || want[n - 1] == ' ')) want[--n] = 0;
    if (n == 0) return 0;
    char link[64], path[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t len = readlink(link, path, sizeof path - 1);
    if (len <= 0) return 0;
    path[len] = 0;
    return strcmp(path, want) == 0;
}

int fsync(int fd) {
    if (real_fsync == NULL) real_fsync = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    if (armed_for(fd)) {
        errno = EIO;
        return -1;
    }
    return real_fsync(fd);
}
