/* A parser of /proc/<pid>/mountinfo into a compact form, and lookups over it.
 *
 * The table is two arrays: one buffer holding every field with the kernel's
 * octal escapes undone, and MK_MI_STRIDE uint32 columns per entry (the
 * numbers, then the start offset of each text field in the buffer and the end
 * of the last).  Field k of entry i spans [cols[i*S + MK_MI_ROOT + k],
 * cols[i*S + MK_MI_ROOT + k + 1]).  List fields (options, optional fields,
 * super options) hold their items separated by NUL bytes, which no field can
 * contain, so a comma escaped as \054 inside an option value stays a comma.
 */
#ifndef MOUNTKIT_MOUNTINFO_H
#define MOUNTKIT_MOUNTINFO_H

#include <stddef.h>
#include <stdint.h>

enum mk_mi_col {
    MK_MI_MOUNT_ID = 0,
    MK_MI_PARENT_ID = 1,
    MK_MI_MAJOR = 2,
    MK_MI_MINOR = 3,
    MK_MI_ROOT = 4,
    MK_MI_MOUNT_POINT = 5,
    MK_MI_OPTIONS = 6,
    MK_MI_OPTIONAL = 7,
    MK_MI_FS_TYPE = 8,
    MK_MI_SOURCE = 9,
    MK_MI_SUPER_OPTIONS = 10,
    MK_MI_END = 11,
    MK_MI_STRIDE = 12
};

/* Parse len bytes of mountinfo text.  out must hold len bytes, cols cap *
 * MK_MI_STRIDE entries (cap >= number of lines).  Returns the number of
 * entries; on a malformed line returns -(its 1-based number) and sets *what
 * to the mk_mi_col of the field that could not be read.  Empty lines are
 * skipped. */
long mk_mi_parse(const char *in, size_t len, char *out, uint32_t *cols,
                 size_t cap, int *what);

/* Indices (into hits, which holds n) of the entries whose text field col
 * equals needle, or, with under set, is needle or a path below it. */
size_t mk_mi_select(const char *buf, const uint32_t *cols, size_t n,
                    unsigned int col, int under, const char *needle,
                    size_t len, uint32_t *hits);

/* Indices of the entries whose number column col equals value. */
size_t mk_mi_select_int(const uint32_t *cols, size_t n, unsigned int col,
                        uint32_t value, uint32_t *hits);

#endif
