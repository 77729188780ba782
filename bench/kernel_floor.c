/* The kernel's share of a mount-table read, per mount, with none of mountkit's
 * work: read(2) of /proc/self/mountinfo into one reused 64 KiB buffer (the
 * text thrown away); listmount of every id; statmount of every id asking for
 * SB_BASIC alone (no strings: what MountTable.read_dev asks of each mount) and
 * for what the statmount backend asks (MK_SM_MASK), into one reused buffer.  bench_table.py builds and runs it in
 * its namespace: the four are called in turn for `rounds` rounds, and each
 * line printed is "<name>\t<median ns per mount>". */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "statmount.h"
#include "sys.h"

enum { MOUNTINFO, LISTMOUNT, STATMOUNT_SB_BASIC_ONLY, STATMOUNT_BACKEND, KINDS };
static const char *const NAMES[KINDS] = {"mountinfo", "listmount", "statmount_sb_basic", "statmount_backend"};
#define MAX_IDS (1 << 19) /* listmount takes at most 1,000,000 a call */
#define SM_BUF 16384

static uint64_t ids[MAX_IDS];
static char chunk[65536];

static long long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static long list_all(void)
{
    struct mk_mnt_id_req req = {.size = MK_MNT_ID_REQ_SIZE_VER0, .mnt_id = MK_LSMT_ROOT};
    return mk_listmount(&req, ids, MAX_IDS, 0);
}

static int read_mountinfo(void)
{
    int fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t got;
    while ((got = read(fd, chunk, sizeof chunk)) > 0)
        ;
    close(fd);
    return got < 0 ? -1 : 0;
}

static int stat_all(long n, uint64_t mask, struct mk_statmount *sm)
{
    for (long i = 0; i < n; i++) {
        struct mk_mnt_id_req req = {.size = MK_MNT_ID_REQ_SIZE_VER0, .mnt_id = ids[i], .param = mask};
        if (mk_statmount(&req, sm, SM_BUF, 0) != 0)
            return -1;
    }
    return 0;
}

static int by_value(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 20;
    long n = list_all();
    struct mk_statmount *sm = malloc(SM_BUF);
    long long *took = calloc((size_t)rounds * KINDS, sizeof *took);
    if (n <= 0 || n == MAX_IDS || !sm || !took || rounds < 1) {
        perror("kernel_floor");
        return 1;
    }
    for (int r = 0; r < rounds; r++) {
        for (int k = 0; k < KINDS; k++) {
            int kind = (r + k) % KINDS; /* the order rotates, as in common.measure_in_turn */
            long long start = now_ns();
            int rc = kind == MOUNTINFO ? read_mountinfo()
                     : kind == LISTMOUNT ? (list_all() == n ? 0 : -1)
                     : stat_all(n, kind == STATMOUNT_SB_BASIC_ONLY ? MK_STATMOUNT_SB_BASIC : MK_SM_MASK, sm);
            if (rc != 0) {
                perror(NAMES[kind]);
                return 1;
            }
            took[kind * rounds + r] = now_ns() - start;
        }
    }
    for (int k = 0; k < KINDS; k++) {
        qsort(took + k * rounds, (size_t)rounds, sizeof *took, by_value);
        printf("%s\t%.1f\n", NAMES[k], (double)took[k * rounds + rounds / 2] / (double)n);
    }
    return 0;
}
