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

/* A parse fed whole lines in any number of pieces (cext/table/mountinfo_read.c
 * feeds it as it reads), appending to buffers its caller grows between calls. */
struct mk_mi_parser {
    char *out;      /* the unescaped fields: room for every byte passed, past len */
    uint32_t *cols; /* MK_MI_STRIDE columns per entry, room for cap entries */
    size_t cap;
    size_t len;     /* bytes of out written */
    size_t n;       /* entries written */
    long line;      /* lines read so far, empty ones included */
    int what;       /* after a malformed line: the mk_mi_col it could not read */
};

/* Parse the lines in in[0, len), each ended by a newline but perhaps the last
 * (a piece passed never ends inside a line the next piece continues).
 * Returns the bytes consumed: len, or fewer when cols holds cap entries (the
 * parse stops before the line that does not fit, to go on once the caller has
 * grown cols); -1 on a malformed line, whose 1-based number is then p->line,
 * and its field p->what.  Empty lines are skipped. */
long mk_mi_parse(struct mk_mi_parser *p, const char *in, size_t len);

/* Indices (into hits, which holds n) of the entries whose text field col
 * equals needle, or, with under set, is needle or a path below it. */
size_t mk_mi_select(const char *buf, const uint32_t *cols, size_t n,
                    unsigned int col, int under, const char *needle,
                    size_t len, uint32_t *hits);

/* Indices of the entries whose number column col equals value. */
size_t mk_mi_select_int(const uint32_t *cols, size_t n, unsigned int col,
                        uint32_t value, uint32_t *hits);

#endif
