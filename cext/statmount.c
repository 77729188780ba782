/* See statmount.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mountinfo.h"
#include "statmount.h"
#include "sys.h"

/* uapi values (mountkit/flags.py holds the same for Python) */
#define SM_SB_BASIC 0x1ULL
#define SM_MNT_BASIC 0x2ULL
#define SM_PROPAGATE_FROM 0x4ULL
#define SM_MNT_ROOT 0x8ULL
#define SM_MNT_POINT 0x10ULL
#define SM_FS_TYPE 0x20ULL
#define SM_MNT_OPTS 0x80ULL
#define SM_FS_SUBTYPE 0x100ULL
#define SM_SB_SOURCE 0x200ULL
#define SM_MASK (SM_SB_BASIC | SM_MNT_BASIC | SM_PROPAGATE_FROM | SM_MNT_ROOT \
                 | SM_MNT_POINT | SM_FS_TYPE | SM_MNT_OPTS | SM_FS_SUBTYPE | SM_SB_SOURCE)
#define LSMT_ROOT 0xffffffffffffffffULL
#define ID_REQ_SIZE 24
#define ATTR_RDONLY 0x1ULL
#define ATTR_NOSUID 0x2ULL
#define ATTR_NODEV 0x4ULL
#define ATTR_NOEXEC 0x8ULL
#define ATTR_ATIME 0x70ULL
#define ATTR_NOATIME 0x10ULL
#define ATTR_NODIRATIME 0x80ULL
#define ATTR_IDMAP 0x100000ULL
#define ATTR_NOSYMFOLLOW 0x200000ULL
#define MS_UNBINDABLE_ (1ULL << 17)
#define MS_SLAVE_ (1ULL << 19)
#define MS_SHARED_ (1ULL << 20)
#define SB_RDONLY_ 0x1U
#define SB_SYNCHRONOUS_ 0x10U
#define SB_MANDLOCK_ 0x40U
#define SB_DIRSYNC_ 0x80U
#define SB_LAZYTIME_ (1U << 25)

struct out {
    struct mk_sm_table *t;
    size_t cap, ncap;
    int failed;
};

static void put(struct out *o, const char *s, size_t len)
{
    if (o->failed)
        return;
    if (o->t->len + len > o->cap) {
        size_t cap = o->cap ? o->cap : 65536;
        while (cap < o->t->len + len)
            cap *= 2;
        char *buf = realloc(o->t->buf, cap);
        if (!buf) {
            o->failed = 1;
            return;
        }
        o->t->buf = buf;
        o->cap = cap;
    }
    memcpy(o->t->buf + o->t->len, s, len);
    o->t->len += len;
}

static void puts_(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

/* A list item: NUL before every item but the first of its field. */
static void item(struct out *o, int *first, const char *s)
{
    if (!*first)
        put(o, "", 1);
    *first = 0;
    puts_(o, s);
}

static int is_octal(char c)
{
    return c >= '0' && c <= '7';
}

/* The filesystem's options: comma-separated, each with \ooo escapes undone. */
static void fs_options(struct out *o, int *first, const char *s)
{
    while (*s) {
        if (!*first)
            put(o, "", 1);
        *first = 0;
        while (*s && *s != ',') {
            if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && is_octal(s[2]) && is_octal(s[3])) {
                char c = (char)(((s[1] - '0') << 6) | ((s[2] - '0') << 3) | (s[3] - '0'));
                put(o, &c, 1);
                s += 4;
            } else {
                put(o, s++, 1);
            }
        }
        if (*s == ',')
            s++;
    }
}

static uint32_t *next_cols(struct out *o)
{
    if (o->t->n == o->ncap) {
        size_t ncap = o->ncap ? o->ncap * 2 : 1024;
        uint32_t *cols = realloc(o->t->cols, ncap * MK_MI_STRIDE * sizeof *cols);
        if (!cols) {
            o->failed = 1;
            return NULL;
        }
        o->t->cols = cols;
        o->ncap = ncap;
    }
    return o->t->cols + o->t->n * MK_MI_STRIDE;
}

static int append(struct out *o, const struct mk_statmount *sm)
{
    uint32_t *e = next_cols(o);
    if (!e)
        return -1;
    uint64_t got = sm->mask;
#define STR(bit, field) ((got & (bit)) ? sm->str + sm->field : NULL)
    const char *root = STR(SM_MNT_ROOT, mnt_root), *point = STR(SM_MNT_POINT, mnt_point);
    const char *type = STR(SM_FS_TYPE, fs_type), *subtype = STR(SM_FS_SUBTYPE, fs_subtype);
    const char *opts = STR(SM_MNT_OPTS, mnt_opts), *source = STR(SM_SB_SOURCE, sb_source);
#undef STR
    char num[64];
    int first;
    e[MK_MI_MOUNT_ID] = sm->mnt_id_old;
    e[MK_MI_PARENT_ID] = sm->mnt_parent_id_old;
    e[MK_MI_MAJOR] = sm->sb_dev_major;
    e[MK_MI_MINOR] = sm->sb_dev_minor;
    e[MK_MI_ROOT] = (uint32_t)o->t->len;
    puts_(o, root ? root : "");
    e[MK_MI_MOUNT_POINT] = (uint32_t)o->t->len;
    puts_(o, point ? point : "");

    e[MK_MI_OPTIONS] = (uint32_t)o->t->len; /* the order of show_mnt_opts */
    uint64_t attr = sm->mnt_attr;
    first = 1;
    item(o, &first, attr & ATTR_RDONLY ? "ro" : "rw");
    if (attr & ATTR_NOSUID)
        item(o, &first, "nosuid");
    if (attr & ATTR_NODEV)
        item(o, &first, "nodev");
    if (attr & ATTR_NOEXEC)
        item(o, &first, "noexec");
    if ((attr & ATTR_ATIME) == ATTR_NOATIME)
        item(o, &first, "noatime");
    if (attr & ATTR_NODIRATIME)
        item(o, &first, "nodiratime");
    if ((attr & ATTR_ATIME) == 0)
        item(o, &first, "relatime");
    if (attr & ATTR_NOSYMFOLLOW)
        item(o, &first, "nosymfollow");
    if (attr & ATTR_IDMAP)
        item(o, &first, "idmapped");

    e[MK_MI_OPTIONAL] = (uint32_t)o->t->len;
    first = 1;
    if (sm->mnt_propagation & MS_SHARED_) {
        snprintf(num, sizeof num, "shared:%llu", (unsigned long long)sm->mnt_peer_group);
        item(o, &first, num);
    }
    if (sm->mnt_propagation & MS_SLAVE_) {
        snprintf(num, sizeof num, "master:%llu", (unsigned long long)sm->mnt_master);
        item(o, &first, num);
        if (sm->propagate_from && sm->propagate_from != sm->mnt_master) {
            snprintf(num, sizeof num, "propagate_from:%llu", (unsigned long long)sm->propagate_from);
            item(o, &first, num);
        }
    }
    if (sm->mnt_propagation & MS_UNBINDABLE_)
        item(o, &first, "unbindable");

    e[MK_MI_FS_TYPE] = (uint32_t)o->t->len;
    puts_(o, type ? type : "");
    if (subtype && *subtype) {
        put(o, ".", 1);
        puts_(o, subtype);
    }
    e[MK_MI_SOURCE] = (uint32_t)o->t->len;
    puts_(o, source ? source : "none");

    e[MK_MI_SUPER_OPTIONS] = (uint32_t)o->t->len; /* the order of show_sb_opts */
    first = 1;
    item(o, &first, sm->sb_flags & SB_RDONLY_ ? "ro" : "rw");
    if (sm->sb_flags & SB_SYNCHRONOUS_)
        item(o, &first, "sync");
    if (sm->sb_flags & SB_DIRSYNC_)
        item(o, &first, "dirsync");
    if (sm->sb_flags & SB_MANDLOCK_)
        item(o, &first, "mand");
    if (sm->sb_flags & SB_LAZYTIME_)
        item(o, &first, "lazytime");
    if (opts)
        fs_options(o, &first, opts);
    e[MK_MI_END] = (uint32_t)o->t->len;
    if (o->failed)
        return -1;
    o->t->n++;
    return 0;
}

int mk_sm_append(const struct mk_statmount *sm, struct mk_sm_table *t)
{
    /* capacities are not kept between calls: round them up from what t holds */
    struct out o = {t, t->len, t->n, 0};
    if (append(&o, sm) != 0) {
        errno = ENOMEM;
        return -1;
    }
    return 0;
}

/* realloc *p to bytes; on failure free it, set errno and return -1. */
static int grow(void **p, size_t bytes)
{
    void *q = realloc(*p, bytes);
    if (!q) {
        free(*p);
        *p = NULL;
        errno = ENOMEM;
        return -1;
    }
    *p = q;
    return 0;
}

int mk_sm_read_ids(const uint64_t *ids, size_t n, struct mk_sm_table *t)
{
    struct out o = {t, 0, 0, 0};
    size_t size = 16384;
    struct mk_statmount *sm = malloc(size);
    if (!sm) {
        errno = ENOMEM;
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        struct mk_mnt_id_req req = {.size = ID_REQ_SIZE, .mnt_id = ids[i], .param = SM_MASK};
        if (mk_statmount(&req, sm, size, 0) != 0) {
            if (errno == ENOENT)
                continue; /* unmounted since listmount: mountinfo would not show it either */
            if (errno == EOVERFLOW) {
                void *p = sm;
                if (grow(&p, size * 2) != 0)
                    return -1;
                sm = p;
                size *= 2;
                i--;
                continue;
            }
            int err = errno;
            free(sm);
            errno = err;
            return -1;
        }
        if (append(&o, sm) != 0) {
            free(sm);
            errno = ENOMEM;
            return -1;
        }
    }
    free(sm);
    return 0;
}

int mk_sm_read_all(struct mk_sm_table *t)
{
    size_t cap = 4096, n = 0;
    uint64_t *ids = malloc(cap * sizeof *ids);
    if (!ids) {
        errno = ENOMEM;
        return -1;
    }
    for (;;) {
        struct mk_mnt_id_req req = {.size = ID_REQ_SIZE, .mnt_id = LSMT_ROOT,
                                    .param = n ? ids[n - 1] : 0};
        long got = mk_listmount(&req, ids + n, cap - n, 0);
        if (got < 0) {
            int err = errno;
            free(ids);
            errno = err;
            return -1;
        }
        n += (size_t)got;
        if (n < cap)
            break;
        void *p = ids;
        if (grow(&p, cap * 2 * sizeof *ids) != 0)
            return -1;
        ids = p;
        cap *= 2;
    }
    int rc = mk_sm_read_ids(ids, n, t);
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
    t->len = t->n = 0;
}
