/* See statmount.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "mountinfo.h"
#include "statmount.h"
#include "sys.h"

/* the propagation and superblock flags behind mountinfo's words (uapi values;
 * mountkit/flags.py holds the same for Python) */
#define MS_UNBINDABLE_ (1ULL << 17)
#define MS_SLAVE_ (1ULL << 19)
#define MS_SHARED_ (1ULL << 20)
#define SB_RDONLY_ 0x1U
#define SB_SYNCHRONOUS_ 0x10U
#define SB_MANDLOCK_ 0x40U
#define SB_DIRSYNC_ 0x80U
#define SB_LAZYTIME_ (1U << 25)

/* Room for what append writes besides the kernel's strings: the mount and
 * superblock flag words, three propagation tags with 20-digit numbers, "none",
 * the subtype's dot and the NULs between fields' items. */
#define WORDS_MAX 512
/* A first guess of a mount's bytes in the table (a kubelet bind takes ~200),
 * so a whole read usually allocates its buffer once. */
#define BYTES_PER_MOUNT 256
/* A thread of a read has at least this many mounts to describe: starting one
 * costs about as much as tens of statmount calls. */
#define MIN_PER_THREAD 1024
#define MAX_THREADS 8

/* realloc *p to bytes; on failure leave it, set errno and return -1. */
static int grow(void **p, size_t bytes)
{
    void *q = realloc(*p, bytes);
    if (!q) {
        errno = ENOMEM;
        return -1;
    }
    *p = q;
    return 0;
}

/* Room for `more` bytes and one more entry in t. */
static int reserve(struct mk_sm_table *t, size_t more)
{
    if (t->len + more > t->cap) {
        size_t cap = t->cap ? t->cap : 65536;
        while (cap < t->len + more)
            cap *= 2;
        void *p = t->buf;
        if (grow(&p, cap) != 0)
            return -1;
        t->buf = p;
        t->cap = cap;
    }
    if (t->n == t->ncap) {
        size_t ncap = t->ncap ? t->ncap * 2 : 64;
        void *p = t->cols;
        if (grow(&p, ncap * MK_MI_STRIDE * sizeof *t->cols) != 0)
            return -1;
        t->cols = p;
        t->ncap = ncap;
    }
    return 0;
}

/* The writers below run after reserve() made room for the whole entry. */
static char *put(char *p, const char *s, size_t len)
{
    memcpy(p, s, len);
    return p + len;
}

/* A list item: NUL before every item but the first of its field. */
static char *item(char *p, int *first, const char *s, size_t len)
{
    if (!*first)
        *p++ = '\0';
    *first = 0;
    return put(p, s, len);
}
#define WORD(word) (p = item(p, &first, word, sizeof word - 1))

/* A propagation tag: word and a decimal number. */
static char *tag(char *p, int *first, const char *word, size_t len, uint64_t v)
{
    char digits[20];
    size_t k = sizeof digits;
    do
        digits[--k] = (char)('0' + v % 10);
    while (v /= 10);
    p = item(p, first, word, len);
    return put(p, digits + k, sizeof digits - k);
}
#define TAG(word, v) (p = tag(p, &first, word, sizeof word - 1, v))

static int is_octal(char c)
{
    return c >= '0' && c <= '7';
}

/* The filesystem's options: comma-separated, each with \ooo escapes undone. */
static char *fs_options(char *p, int *first, const char *s)
{
    while (*s) {
        if (!*first)
            *p++ = '\0';
        *first = 0;
        while (*s && *s != ',') {
            if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && is_octal(s[2]) && is_octal(s[3])) {
                *p++ = (char)(((s[1] - '0') << 6) | ((s[2] - '0') << 3) | (s[3] - '0'));
                s += 4;
            } else {
                *p++ = *s++;
            }
        }
        if (*s == ',')
            s++;
    }
    return p;
}

static size_t len_of(const char *s)
{
    return s ? strlen(s) : 0;
}

static int append(struct mk_sm_table *t, const struct mk_statmount *sm)
{
    uint64_t got = sm->mask;
#define STR(bit, field) ((got & (bit)) ? sm->str + sm->field : NULL)
    const char *root = STR(MK_STATMOUNT_MNT_ROOT, mnt_root), *point = STR(MK_STATMOUNT_MNT_POINT, mnt_point);
    const char *type = STR(MK_STATMOUNT_FS_TYPE, fs_type), *subtype = STR(MK_STATMOUNT_FS_SUBTYPE, fs_subtype);
    const char *opts = STR(MK_STATMOUNT_MNT_OPTS, mnt_opts), *source = STR(MK_STATMOUNT_SB_SOURCE, sb_source);
#undef STR
    size_t root_len = len_of(root), point_len = len_of(point), type_len = len_of(type);
    size_t subtype_len = len_of(subtype), source_len = len_of(source);
    if (reserve(t, root_len + point_len + type_len + subtype_len + source_len + len_of(opts)
                       + WORDS_MAX) != 0)
        return -1;
    uint32_t *e = t->cols + t->n * MK_MI_STRIDE;
    char *const base = t->buf, *p = base + t->len;
    int first;
#define AT(col) (e[col] = (uint32_t)(p - base))
    e[MK_MI_MOUNT_ID] = sm->mnt_id_old;
    e[MK_MI_PARENT_ID] = sm->mnt_parent_id_old;
    e[MK_MI_MAJOR] = sm->sb_dev_major;
    e[MK_MI_MINOR] = sm->sb_dev_minor;
    AT(MK_MI_ROOT);
    p = put(p, root ? root : "", root_len);
    AT(MK_MI_MOUNT_POINT);
    p = put(p, point ? point : "", point_len);

    AT(MK_MI_OPTIONS); /* the order of show_mnt_opts */
    uint64_t attr = sm->mnt_attr;
    first = 1;
    if (attr & MK_MOUNT_ATTR_RDONLY)
        WORD("ro");
    else
        WORD("rw");
    if (attr & MK_MOUNT_ATTR_NOSUID)
        WORD("nosuid");
    if (attr & MK_MOUNT_ATTR_NODEV)
        WORD("nodev");
    if (attr & MK_MOUNT_ATTR_NOEXEC)
        WORD("noexec");
    if ((attr & MK_MOUNT_ATTR__ATIME) == MK_MOUNT_ATTR_NOATIME)
        WORD("noatime");
    if (attr & MK_MOUNT_ATTR_NODIRATIME)
        WORD("nodiratime");
    if ((attr & MK_MOUNT_ATTR__ATIME) == 0)
        WORD("relatime");
    if (attr & MK_MOUNT_ATTR_NOSYMFOLLOW)
        WORD("nosymfollow");
    if (attr & MK_MOUNT_ATTR_IDMAP)
        WORD("idmapped");

    AT(MK_MI_OPTIONAL);
    first = 1;
    if (sm->mnt_propagation & MS_SHARED_)
        TAG("shared:", sm->mnt_peer_group);
    if (sm->mnt_propagation & MS_SLAVE_) {
        TAG("master:", sm->mnt_master);
        if (sm->propagate_from && sm->propagate_from != sm->mnt_master)
            TAG("propagate_from:", sm->propagate_from);
    }
    if (sm->mnt_propagation & MS_UNBINDABLE_)
        WORD("unbindable");

    AT(MK_MI_FS_TYPE);
    p = put(p, type ? type : "", type_len);
    if (subtype_len) {
        *p++ = '.';
        p = put(p, subtype, subtype_len);
    }
    AT(MK_MI_SOURCE);
    p = source ? put(p, source, source_len) : put(p, "none", 4);

    AT(MK_MI_SUPER_OPTIONS); /* the order of show_sb_opts */
    first = 1;
    if (sm->sb_flags & SB_RDONLY_)
        WORD("ro");
    else
        WORD("rw");
    if (sm->sb_flags & SB_SYNCHRONOUS_)
        WORD("sync");
    if (sm->sb_flags & SB_DIRSYNC_)
        WORD("dirsync");
    if (sm->sb_flags & SB_MANDLOCK_)
        WORD("mand");
    if (sm->sb_flags & SB_LAZYTIME_)
        WORD("lazytime");
    if (opts)
        p = fs_options(p, &first, opts);
    AT(MK_MI_END);
#undef AT
    t->len = (size_t)(p - base);
    t->n++;
    return 0;
}

int mk_sm_append(const struct mk_statmount *sm, struct mk_sm_table *t)
{
    return append(t, sm);
}

/* statmount + append of each id into t, with one statmount buffer grown on
 * EOVERFLOW and kept for the next mounts. */
static int read_ids(const uint64_t *ids, size_t n, struct mk_sm_table *t)
{
    size_t size = 16384;
    struct mk_statmount *sm = malloc(size);
    if (!sm) {
        errno = ENOMEM;
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        struct mk_mnt_id_req req = {.size = MK_MNT_ID_REQ_SIZE_VER0, .mnt_id = ids[i], .param = MK_SM_MASK};
        if (mk_statmount(&req, sm, size, 0) == 0) {
            rc = append(t, sm);
        } else if (errno == EOVERFLOW) {
            void *p = sm;
            rc = grow(&p, size * 2);
            sm = p;
            size *= 2;
            i--;
        } else if (errno != ENOENT) { /* ENOENT: unmounted since listmount, as mountinfo would say */
            rc = -1;
        }
    }
    int err = errno;
    free(sm);
    errno = err;
    return rc;
}

/* One thread's share of a read: a run of ids into a table of its own. */
struct part {
    const uint64_t *ids;
    size_t n;
    struct mk_sm_table t;
    int rc, err;
};

static void *read_part(void *arg)
{
    struct part *part = arg;
    part->rc = read_ids(part->ids, part->n, &part->t);
    part->err = errno;
    return NULL;
}

/* Part k's entries after t's: their text and its offsets moved past t->len. */
static int join(struct mk_sm_table *t, struct mk_sm_table *k)
{
    if (reserve(t, k->len) != 0)
        return -1;
    if (t->ncap < t->n + k->n) {
        void *p = t->cols;
        if (grow(&p, (t->n + k->n) * MK_MI_STRIDE * sizeof *t->cols) != 0)
            return -1;
        t->cols = p;
        t->ncap = t->n + k->n;
    }
    memcpy(t->buf + t->len, k->buf, k->len);
    uint32_t *to = t->cols + t->n * MK_MI_STRIDE;
    const uint32_t *from = k->cols;
    for (size_t i = 0; i < k->n; i++, to += MK_MI_STRIDE, from += MK_MI_STRIDE) {
        memcpy(to, from, MK_MI_ROOT * sizeof *to);
        for (int c = MK_MI_ROOT; c <= MK_MI_END; c++)
            to[c] = from[c] + (uint32_t)t->len;
    }
    t->len += k->len;
    t->n += k->n;
    return 0;
}

/* The ids read by `threads` threads, each a contiguous run into a table of its
 * own, the first on the caller's thread; the runs are joined in order, so the
 * table keeps the ids' order.  Buffers are sized from the number of ids, the
 * first run's for all of them, so neither the reads nor the join regrow them
 * for ordinary mounts (untouched room costs address space, not memory). */
static int read_split(const uint64_t *ids, size_t n, unsigned int threads, struct mk_sm_table *t)
{
    if (threads > MAX_THREADS)
        threads = MAX_THREADS;
    if (threads > n / MIN_PER_THREAD)
        threads = (unsigned int)(n / MIN_PER_THREAD);
    if (threads < 1)
        threads = 1;
    struct part parts[MAX_THREADS];
    pthread_t tids[MAX_THREADS];
    unsigned int started = 1;
    int rc = 0, err = 0;
    memset(parts, 0, sizeof parts);
    for (unsigned int k = 0; k < threads; k++) {
        struct part *part = &parts[k];
        part->ids = ids + n * k / threads;
        part->n = n * (k + 1) / threads - n * k / threads;
        size_t room = k ? part->n : n;
        part->t.cap = room * BYTES_PER_MOUNT + WORDS_MAX;
        part->t.ncap = room ? room : 1;
        part->t.buf = malloc(part->t.cap);
        part->t.cols = malloc(part->t.ncap * MK_MI_STRIDE * sizeof *part->t.cols);
        if (!part->t.buf || !part->t.cols) {
            rc = -1;
            err = ENOMEM;
        }
    }
    for (; rc == 0 && started < threads; started++)
        if (pthread_create(&tids[started], NULL, read_part, &parts[started]) != 0)
            break; /* the caller's thread reads the runs left */
    if (rc == 0)
        read_part(&parts[0]);
    for (unsigned int k = 1; k < started; k++)
        pthread_join(tids[k], NULL);
    for (unsigned int k = started; rc == 0 && k < threads; k++)
        read_part(&parts[k]);
    for (unsigned int k = 0; k < threads; k++) {
        if (rc == 0 && parts[k].rc != 0) {
            rc = -1;
            err = parts[k].err;
        }
        if (rc == 0 && k > 0 && join(&parts[0].t, &parts[k].t) != 0) {
            rc = -1;
            err = ENOMEM;
        }
        if (k > 0)
            mk_sm_free(&parts[k].t);
    }
    if (rc == 0)
        *t = parts[0].t;
    else
        mk_sm_free(&parts[0].t);
    errno = err;
    return rc;
}

int mk_sm_read_ids(const uint64_t *ids, size_t n, unsigned int threads, struct mk_sm_table *t)
{
    return read_split(ids, n, threads, t);
}

/* Every mount id of the caller's namespace (listmount, in pages): a malloc'ed
 * array in *out, its length in *n; 0, or -1 with errno set. */
static int list_ids(uint64_t **out, size_t *n_out)
{
    size_t cap = 4096, n = 0;
    uint64_t *ids = malloc(cap * sizeof *ids);
    if (!ids) {
        errno = ENOMEM;
        return -1;
    }
    for (;;) {
        struct mk_mnt_id_req req = {.size = MK_MNT_ID_REQ_SIZE_VER0, .mnt_id = MK_LSMT_ROOT,
                                    .param = n ? ids[n - 1] : 0};
        long got = mk_listmount(&req, ids + n, cap - n, 0);
        if (got < 0)
            break;
        n += (size_t)got;
        if (n < cap) {
            *out = ids;
            *n_out = n;
            return 0;
        }
        void *p = ids;
        if (grow(&p, cap * 2 * sizeof *ids) != 0)
            break;
        ids = p;
        cap *= 2;
    }
    int err = errno;
    free(ids);
    errno = err;
    return -1;
}

int mk_sm_read_all(unsigned int threads, struct mk_sm_table *t)
{
    uint64_t *ids;
    size_t n;
    if (list_ids(&ids, &n) != 0)
        return -1;
    int rc = read_split(ids, n, threads, t);
    int err = errno;
    free(ids);
    errno = err;
    return rc;
}

int mk_sm_read_dev(uint32_t major, uint32_t minor, struct mk_sm_table *t)
{
    uint64_t *ids;
    size_t n, k = 0;
    if (list_ids(&ids, &n) != 0)
        return -1;
    int rc = 0;
    struct mk_statmount sm; /* SB_BASIC has no strings: the fixed part is room enough */
    for (size_t i = 0; i < n; i++) {
        struct mk_mnt_id_req req = {.size = MK_MNT_ID_REQ_SIZE_VER0, .mnt_id = ids[i],
                                    .param = MK_STATMOUNT_SB_BASIC};
        if (mk_statmount(&req, &sm, sizeof sm, 0) == 0) {
            if (sm.sb_dev_major == major && sm.sb_dev_minor == minor)
                ids[k++] = ids[i]; /* kept in kernel order, in place */
        } else if (errno != ENOENT) {
            rc = -1;
            break;
        }
    }
    if (rc == 0)
        rc = read_split(ids, k, 1, t);
    int err = errno;
    free(ids);
    errno = err;
    return rc;
}

void mk_sm_free(struct mk_sm_table *t)
{
    free(t->buf);
    free(t->cols);
    t->buf = NULL;
    t->cols = NULL;
    t->len = t->n = t->cap = t->ncap = 0;
}
