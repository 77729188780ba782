/* mountinfo read and parsed in one pass, into the bytes objects the table
 * keeps (mountkit._mountkit_table.read and .parse).
 *
 * cffi could not hand Python a bytes object without copying it, and a
 * table of 10,000 mounts is two such buffers of megabytes.  Reading the text
 * into one buffer, parsing it into a second and copying that into a third
 * touched three fresh regions of megabytes each, whose page faults and cache
 * misses cost more than the parse itself.  Here read(2) fills a small buffer
 * that stays in cache, each piece's whole lines are parsed at once
 * (cext/common/mountinfo.c) straight into the storage of the two bytes objects
 * returned, sized from the last table read and grown only when a table
 * outgrows that, then cut to size.  The GIL is released while reading and
 * parsing; it is taken back only to grow a buffer.
 */
#include "capi.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "mountinfo.h"

/* The read(2) buffer, MK_PY_CHUNK bytes unless told: /proc hands out
 * mountinfo a page or so per call, whole lines only; a bigger buffer saves
 * nothing, a smaller one would cut lines. */
#define COL_BYTES (MK_MI_STRIDE * sizeof(uint32_t))

/* What each mk_mi_col names in the error for a malformed line. */
static const char *const WHAT[MK_MI_STRIDE] = {
    [MK_MI_MOUNT_ID] = "mount ID",
    [MK_MI_PARENT_ID] = "parent ID",
    [MK_MI_MAJOR] = "major:minor",
    [MK_MI_MINOR] = "major:minor",
    [MK_MI_ROOT] = "root",
    [MK_MI_MOUNT_POINT] = "mount point",
    [MK_MI_OPTIONS] = "mount options",
    [MK_MI_OPTIONAL] = "optional fields ended by \"-\"",
    [MK_MI_FS_TYPE] = "filesystem type",
    [MK_MI_SOURCE] = "source",
    [MK_MI_END] = "super options (unexpected space)",
};

/* The sizes of the last table read (GIL held): the next one is about as big. */
static size_t last_len, last_n;

/* The table being built: the parser writes into the storage of buf and cols,
 * two bytes objects of our own (nobody else sees them until they are returned). */
struct table {
    PyObject *buf, *cols;
    struct mk_mi_parser p;
};

/* Point the parser at the storage of buf and cols (after each resize). */
static void aim(struct table *t)
{
    t->p.out = PyBytes_AS_STRING(t->buf);
    t->p.cols = (uint32_t *)PyBytes_AS_STRING(t->cols);
    t->p.cap = (size_t)PyBytes_GET_SIZE(t->cols) / COL_BYTES;
}

static int table_open(struct table *t, size_t len, size_t n)
{
    memset(t, 0, sizeof *t);
    if (len > (size_t)PY_SSIZE_T_MAX || n > (size_t)PY_SSIZE_T_MAX / COL_BYTES) {
        PyErr_NoMemory();
        return -1;
    }
    t->buf = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)len + 1);
    t->cols = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)((n + 1) * COL_BYTES));
    if (t->buf == NULL || t->cols == NULL) {
        Py_CLEAR(t->buf);
        Py_CLEAR(t->cols);
        return -1;
    }
    aim(t);
    return 0;
}

/* Grow *b (by half at least) to hold need bytes; 0, or -1 with *b freed. */
static int grow(PyObject **b, size_t need)
{
    size_t size = (size_t)PyBytes_GET_SIZE(*b);
    if (need <= size)
        return 0;
    if (need < size + size / 2)
        need = size + size / 2;
    if (need > (size_t)PY_SSIZE_T_MAX) {
        Py_CLEAR(*b);
        PyErr_NoMemory();
        return -1;
    }
    return _PyBytes_Resize(b, (Py_ssize_t)need);
}

/* Room for len more bytes of fields and for one more entry at least. */
static int table_reserve(struct table *t, size_t len)
{
    if (grow(&t->buf, t->p.len + len) || grow(&t->cols, (t->p.n + 1) * COL_BYTES))
        return -1;
    aim(t);
    return 0;
}

static void table_drop(struct table *t)
{
    Py_CLEAR(t->buf);
    Py_CLEAR(t->cols);
}

/* (buf, cols, n), both buffers cut to size; the table is consumed. */
static PyObject *table_close(struct table *t)
{
    if (_PyBytes_Resize(&t->buf, (Py_ssize_t)t->p.len) ||
        _PyBytes_Resize(&t->cols, (Py_ssize_t)(t->p.n * COL_BYTES))) {
        table_drop(t);
        return NULL;
    }
    PyObject *result = Py_BuildValue("(NNn)", t->buf, t->cols, (Py_ssize_t)t->p.n);
    t->buf = t->cols = NULL;
    return result;
}

static void malformed(const struct table *t)
{
    PyErr_Format(PyExc_ValueError, "malformed mountinfo line %ld: cannot read the %s",
                 t->p.line, WHAT[t->p.what]);
}

/* Parse text [pos, len) into t, growing cols as needed; 0 or -1. */
static int parse_all(struct table *t, const char *text, size_t len)
{
    for (size_t pos = 0;;) {
        long k = mk_mi_parse(&t->p, text + pos, len - pos);
        if (k < 0) {
            malformed(t);
            return -1;
        }
        pos += (size_t)k;
        if (pos == len)
            return 0;
        if (table_reserve(t, len - pos)) /* cols were full */
            return -1;
    }
}

PyObject *mk_py_parse(PyObject *self, PyObject *args)
{
    Py_buffer text;
    if (!PyArg_ParseTuple(args, "y*:parse", &text))
        return NULL;
    struct table t;
    PyObject *result = NULL;
    size_t len = (size_t)text.len;
    /* about 190 bytes a line of kubelet's bind mounts; the cols grow if that was too few */
    if (table_open(&t, len, len / 128) == 0) {
        result = parse_all(&t, text.buf, len) ? NULL : table_close(&t);
        table_drop(&t);
    }
    PyBuffer_Release(&text);
    return result;
}

/* What stopped pump(). */
enum stop { DONE, MALFORMED, COLS_FULL, BUF_LOW, LONG_LINE, READ_FAILED };

/* The read side: in[0, have) holds text not parsed yet (the start of a line). */
struct feed {
    int fd;
    char *in;
    size_t size, have;
    int eof, err;
};

/* Read and parse until the text is done or the caller must act (needs no GIL). */
static enum stop pump(struct feed *f, struct mk_mi_parser *p, size_t buf_size)
{
    for (;;) {
        size_t whole = f->have;
        if (!f->eof) { /* up to the last newline: a line's end may still be unread */
            const char *nl = memrchr(f->in, '\n', f->have);
            whole = nl == NULL ? 0 : (size_t)(nl - f->in) + 1;
        }
        if (whole > 0) {
            long k = mk_mi_parse(p, f->in, whole);
            if (k < 0)
                return MALFORMED;
            f->have -= (size_t)k;
            memmove(f->in, f->in + k, f->have);
            if ((size_t)k < whole)
                return COLS_FULL;
        }
        if (f->eof)
            return DONE;
        if (f->have == f->size)
            return LONG_LINE;
        if (buf_size - p->len < f->size) /* the next parse writes up to size bytes */
            return BUF_LOW;
        ssize_t got = read(f->fd, f->in + f->have, f->size - f->have);
        if (got < 0) {
            f->err = errno;
            return READ_FAILED;
        }
        f->eof = got == 0;
        f->have += (size_t)got;
    }
}

PyObject *mk_py_read(PyObject *self, PyObject *args)
{
    struct feed f = {0};
    Py_ssize_t chunk = MK_PY_CHUNK;
    if (!PyArg_ParseTuple(args, "i|n:read", &f.fd, &chunk))
        return NULL;
    if (chunk < 1) {
        PyErr_SetString(PyExc_ValueError, "read: the chunk size must be positive");
        return NULL;
    }
    f.size = (size_t)chunk;
    struct table t;
    if (table_open(&t, last_len + last_len / 8 + f.size, last_n + last_n / 8) != 0)
        return NULL;
    PyObject *result = NULL;
    f.in = PyMem_RawMalloc(f.size);
    if (f.in == NULL) {
        PyErr_NoMemory();
        goto out;
    }
    for (;;) {
        enum stop stop;
        size_t buf_size = (size_t)PyBytes_GET_SIZE(t.buf);
        Py_BEGIN_ALLOW_THREADS
        stop = pump(&f, &t.p, buf_size);
        Py_END_ALLOW_THREADS
        if (stop == DONE)
            break;
        if (stop == MALFORMED) {
            malformed(&t);
            goto out;
        }
        if (stop == READ_FAILED) {
            if (f.err == EINTR && PyErr_CheckSignals() == 0) {
                f.err = 0;
                continue;
            }
            errno = f.err;
            PyErr_SetFromErrno(PyExc_OSError);
            goto out;
        }
        if (stop == LONG_LINE) {
            char *bigger = PyMem_RawRealloc(f.in, f.size * 2);
            if (bigger == NULL) {
                PyErr_NoMemory();
                goto out;
            }
            f.in = bigger;
            f.size *= 2;
        }
        if (table_reserve(&t, f.size)) /* BUF_LOW, COLS_FULL, or room for a longer line */
            goto out;
    }
    last_len = t.p.len;
    last_n = t.p.n;
    result = table_close(&t);
out:
    table_drop(&t);
    PyMem_RawFree(f.in);
    return result;
}
