/* See mountinfo.h.  One pass over the text; no allocation. */
#include <string.h>

#include "mountinfo.h"

struct cursor {
    const char *p;
    const char *end;
};

/* A decimal number followed by sep; 0 on success. */
static int number(struct cursor *c, char sep, uint32_t *value)
{
    uint64_t v = 0;
    const char *start = c->p;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        v = v * 10 + (uint64_t)(*c->p - '0');
        if (v > UINT32_MAX)
            return -1;
        c->p++;
    }
    if (c->p == start || c->p >= c->end || *c->p != sep)
        return -1;
    c->p++;
    *value = (uint32_t)v;
    return 0;
}

static int is_octal(char ch)
{
    return ch >= '0' && ch <= '7';
}

/* Bytes that end a run of plain bytes in a token, without and with ','
 * separating list items. */
static const unsigned char STOP_WORD[256] = {[' '] = 1, ['\n'] = 1, ['\\'] = 1};
static const unsigned char STOP_LIST[256] = {[' '] = 1, ['\n'] = 1, ['\\'] = 1, [','] = 1};

/* Copy one token (up to a space, a newline or the end) to *out, undoing
 * \ooo escapes; with split ',' a raw comma becomes NUL, separating list
 * items.  Consumes the space after the token.  Returns the number of bytes
 * read (0: an empty token). */
static size_t token(struct cursor *c, char **out, char split)
{
    const unsigned char *stop = split == ',' ? STOP_LIST : STOP_WORD;
    const char *p = c->p;
    char *o = *out;
    for (;;) {
        const char *run = p;
        while (p < c->end && !stop[(unsigned char)*p])
            p++;
        memcpy(o, run, (size_t)(p - run));
        o += p - run;
        if (p >= c->end || *p == ' ' || *p == '\n')
            break;
        if (*p == ',') {
            *o++ = '\0';
            p++;
        } else if (c->end - p >= 4 && p[1] >= '0' && p[1] <= '3' && is_octal(p[2])
                   && is_octal(p[3])) {
            *o++ = (char)(((p[1] - '0') << 6) | ((p[2] - '0') << 3) | (p[3] - '0'));
            p += 4;
        } else {
            *o++ = *p++; /* a backslash that starts no escape stays */
        }
    }
    size_t n = (size_t)(p - c->p);
    if (p < c->end && *p == ' ')
        p++;
    c->p = p;
    *out = o;
    return n;
}

/* The word "-" ending the optional fields is next. */
static int at_separator(const struct cursor *c)
{
    return c->p < c->end && *c->p == '-'
           && (c->p + 1 == c->end || c->p[1] == ' ' || c->p[1] == '\n');
}

/* One line at c (not empty) into entry e, fields appended at *o; 0, or -1
 * with *what the field that could not be read. */
static int parse_line(struct cursor *c, char *out, char **o, uint32_t *e, int *what)
{
    if (number(c, ' ', &e[MK_MI_MOUNT_ID])) {
        *what = MK_MI_MOUNT_ID;
        return -1;
    }
    if (number(c, ' ', &e[MK_MI_PARENT_ID])) {
        *what = MK_MI_PARENT_ID;
        return -1;
    }
    if (number(c, ':', &e[MK_MI_MAJOR])) {
        *what = MK_MI_MAJOR;
        return -1;
    }
    if (number(c, ' ', &e[MK_MI_MINOR])) {
        *what = MK_MI_MINOR;
        return -1;
    }
    /* root, mount point, options and the fs type must be non-empty;
     * the source may be empty only in principle, super options may be. */
    static const int required[] = {MK_MI_ROOT, MK_MI_MOUNT_POINT, MK_MI_OPTIONS};
    for (size_t k = 0; k < sizeof required / sizeof required[0]; k++) {
        e[required[k]] = (uint32_t)(*o - out);
        if (token(c, o, required[k] == MK_MI_OPTIONS ? ',' : '\0') == 0) {
            *what = required[k];
            return -1;
        }
    }
    e[MK_MI_OPTIONAL] = (uint32_t)(*o - out);
    for (int first = 1; !at_separator(c); first = 0) {
        if (!first)
            *(*o)++ = '\0';
        if (token(c, o, '\0') == 0) {
            *what = MK_MI_OPTIONAL;
            return -1;
        }
    }
    c->p++;
    if (c->p < c->end && *c->p == ' ')
        c->p++;
    e[MK_MI_FS_TYPE] = (uint32_t)(*o - out);
    if (token(c, o, '\0') == 0) {
        *what = MK_MI_FS_TYPE;
        return -1;
    }
    e[MK_MI_SOURCE] = (uint32_t)(*o - out);
    if (c->p >= c->end || *c->p == '\n') {
        *what = MK_MI_SOURCE;
        return -1;
    }
    token(c, o, '\0');
    e[MK_MI_SUPER_OPTIONS] = (uint32_t)(*o - out);
    token(c, o, ',');
    if (c->p < c->end && *c->p != '\n') {
        *what = MK_MI_END; /* a space inside the super options */
        return -1;
    }
    e[MK_MI_END] = (uint32_t)(*o - out);
    if (c->p < c->end)
        c->p++;
    return 0;
}

long mk_mi_parse(struct mk_mi_parser *p, const char *in, size_t len)
{
    struct cursor c = {in, in + len};
    char *o = p->out + p->len;
    while (c.p < c.end) {
        if (*c.p == '\n') {
            p->line++;
            c.p++;
            continue;
        }
        if (p->n == p->cap)
            break;
        p->line++;
        if (parse_line(&c, p->out, &o, p->cols + p->n * MK_MI_STRIDE, &p->what))
            return -1;
        p->n++;
    }
    p->len = (size_t)(o - p->out);
    return (long)(c.p - in);
}

size_t mk_mi_select(const char *buf, const uint32_t *cols, size_t n,
                    unsigned int col, int under, const char *needle,
                    size_t len, uint32_t *hits)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const uint32_t *e = cols + i * MK_MI_STRIDE;
        size_t flen = e[col + 1] - e[col];
        const char *f = buf + e[col];
        int match;
        if (!under)
            match = flen == len && memcmp(f, needle, len) == 0;
        else
            match = flen >= len && memcmp(f, needle, len) == 0
                    && (flen == len || f[len] == '/' || (len > 0 && needle[len - 1] == '/'));
        if (match)
            hits[k++] = (uint32_t)i;
    }
    return k;
}

size_t mk_mi_select_int(const uint32_t *cols, size_t n, unsigned int col,
                        uint32_t value, uint32_t *hits)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (cols[i * MK_MI_STRIDE + col] == value)
            hits[k++] = (uint32_t)i;
    return k;
}
