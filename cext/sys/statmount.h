/* The statmount backend of the mount table, in C: listmount + statmount of
 * every mount (or of given ids, or of given statmount records) written
 * straight into the compact layout of mountinfo.h, with the words mountinfo
 * would show (fs/proc_namespace.c): per-mount flags, propagation tags, the
 * fs type with its subtype, superblock flags then the filesystem's options
 * with their \ooo escapes undone.  One call returns the whole table; Python
 * never sees a per-mount record. */
#ifndef MOUNTKIT_STATMOUNT_H
#define MOUNTKIT_STATMOUNT_H

#include <stddef.h>
#include <stdint.h>

#include "sys.h"

/* What the backend asks statmount of every mount: the fields of a mountinfo line. */
#define MK_SM_MASK (MK_STATMOUNT_SB_BASIC | MK_STATMOUNT_MNT_BASIC | MK_STATMOUNT_PROPAGATE_FROM \
                    | MK_STATMOUNT_MNT_ROOT | MK_STATMOUNT_MNT_POINT | MK_STATMOUNT_FS_TYPE \
                    | MK_STATMOUNT_MNT_OPTS | MK_STATMOUNT_FS_SUBTYPE | MK_STATMOUNT_SB_SOURCE)

struct mk_sm_table {
    char *buf;       /* len bytes of fields (malloc'ed, cap bytes) */
    size_t len, cap;
    uint32_t *cols;  /* n * MK_MI_STRIDE columns (malloc'ed, room for ncap) */
    size_t n, ncap;
};

/* Every mount of the caller's namespace, into an empty t.  0, or -1 with
 * errno set (ENOSYS: no listmount/statmount).  Mounts gone between listmount
 * and statmount are skipped.  threads > 1 splits the statmount calls across
 * that many threads (fewer for small tables); the table is the same. */
int mk_sm_read_all(unsigned int threads, struct mk_sm_table *t);
/* The mounts with these unique ids, in their order (the same rules). */
int mk_sm_read_ids(const uint64_t *ids, size_t n, unsigned int threads,
                   struct mk_sm_table *t);
/* The mounts of one filesystem, those whose superblock is device major:minor,
 * in kernel order: a statmount of SB_BASIC alone per mount (no strings, a
 * fraction of a whole description) picks them, then only they are described
 * (the same rules). */
int mk_sm_read_dev(uint32_t major, uint32_t minor, struct mk_sm_table *t);
/* Append one statmount record (as the kernel fills it) to t: 0, or -1 (ENOMEM). */
int mk_sm_append(const struct mk_statmount *sm, struct mk_sm_table *t);
/* Release what t holds (t itself is the caller's). */
void mk_sm_free(struct mk_sm_table *t);

#endif
