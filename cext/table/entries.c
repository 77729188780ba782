/* MountInfo objects built from the compact table (mountkit._mountkit_table.entries).
 *
 * Not cffi: listing every mount as a frozen MountInfo is bounded by building
 * Python objects, which cffi's API mode can only do through Python code (about
 * 1 us an entry).  This file is written against the CPython API so that an
 * entry is one tp_alloc and eleven slot stores.  It takes the table that
 * cext/common/mountinfo.c (or statmount.c) produced, layout in mountinfo.h, and the
 * MountInfo class; the slot offsets come from that class's member descriptors
 * (a slots dataclass), checked to be object slots, so nothing here repeats the
 * field order but the column layout it shares with mountinfo.h.
 *
 * The entries and the tuples built here leave the cyclic garbage collector's
 * lists as soon as they are filled, as CPython untracks a tuple of atomic
 * values: an entry holds only ints, strs and tuples of strs, and is frozen, so
 * it can never be part of a reference cycle (only object.__setattr__ forced
 * past the frozen dataclass could make one, and that cycle would be leaked,
 * never freed early).  Tracked, 30,000 new entries would be traversed by every
 * young collection they survive and bring on full collections of the heap.
 */
#include "capi.h"
#include <structmember.h>
#include <stdint.h>
#include <string.h>

#include "mountinfo.h"

/* MountInfo's fields, in mountinfo.h's column order. */
static const char *const FIELDS[] = {
    "mount_id", "parent_id", "major", "minor", "root", "mount_point",
    "options", "optional_fields", "fs_type", "source", "super_options",
};
#define NFIELDS ((int)(sizeof FIELDS / sizeof *FIELDS))

/* Fields whose words repeat across mounts (one type, one source and the same
 * option lists for thousands of binds) are looked up in a direct-mapped cache
 * keyed by their raw bytes, one for strings and one for tuples (the same bytes
 * are "a" as a type and ("a",) as options); a miss builds the value and takes
 * the slot. */
#define CACHE_SLOTS 1024
struct cached {
    const char *raw;
    Py_ssize_t len;
    PyObject *value;
};

struct cache {
    struct cached slot[CACHE_SLOTS];
};

/* The numbers repeat from one entry to the next (the parent and the device
 * of thousands of binds): each number field keeps the last value it built. */
struct last_number {
    uint32_t raw;
    PyObject *value;
};

struct caches {
    struct cache words, lists;
    struct last_number number[MK_MI_ROOT];
};

static void cache_clear(struct cache *c)
{
    for (int i = 0; i < CACHE_SLOTS; i++)
        Py_CLEAR(c->slot[i].value);
}

static PyObject *decode(const char *raw, Py_ssize_t len)
{
    return PyUnicode_DecodeFSDefaultAndSize(raw, len);
}

/* A tuple of the NUL-separated items in raw; () when raw is empty. */
static PyObject *items(const char *raw, Py_ssize_t len)
{
    if (len == 0)
        return PyTuple_New(0);
    Py_ssize_t n = 1;
    for (Py_ssize_t i = 0; i < len; i++)
        n += raw[i] == '\0';
    PyObject *tuple = PyTuple_New(n);
    if (tuple == NULL)
        return NULL;
    const char *p = raw, *end = raw + len;
    for (Py_ssize_t k = 0; k < n; k++) {
        const char *stop = memchr(p, '\0', (size_t)(end - p));
        if (stop == NULL)
            stop = end;
        PyObject *item = decode(p, stop - p);
        if (item == NULL) {
            Py_DECREF(tuple);
            return NULL;
        }
        PyTuple_SET_ITEM(tuple, k, item);
        p = stop + 1;
    }
    PyObject_GC_UnTrack(tuple); /* strs only: see the top of this file */
    return tuple;
}

/* A new reference to the value of raw (a string, or with split a tuple of
 * items), from the cache when the same bytes were seen in that slot. */
static PyObject *cached(struct cache *c, const char *raw, Py_ssize_t len, int split)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (Py_ssize_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)raw[i]) * 16777619u;
    struct cached *s = &c->slot[h & (CACHE_SLOTS - 1)];
    if (s->value != NULL && s->len == len && memcmp(s->raw, raw, (size_t)len) == 0)
        return Py_NewRef(s->value);
    PyObject *value = split ? items(raw, len) : decode(raw, len);
    if (value == NULL)
        return NULL;
    Py_XSETREF(s->value, Py_NewRef(value));
    s->raw = raw;
    s->len = len;
    return value;
}

/* Each field's slot offset in cls; -1 with an exception when cls is not a
 * slots class with an object slot per field. */
static int slot_offsets(PyTypeObject *cls, Py_ssize_t *offset)
{
    if (cls->tp_itemsize != 0) {
        PyErr_SetString(PyExc_TypeError, "entries: the record class must not be variable-sized");
        return -1;
    }
    for (int f = 0; f < NFIELDS; f++) {
        PyObject *d = PyObject_GetAttrString((PyObject *)cls, FIELDS[f]);
        if (d == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_AttributeError))
                return -1;
            PyErr_Clear();
        }
        int ok = d != NULL && Py_IS_TYPE(d, &PyMemberDescr_Type) &&
                 ((PyMemberDescrObject *)d)->d_member->type == T_OBJECT_EX &&
                 ((PyMemberDescrObject *)d)->d_common.d_type == cls;
        if (ok) {
            offset[f] = ((PyMemberDescrObject *)d)->d_member->offset;
            ok = offset[f] >= (Py_ssize_t)sizeof(PyObject) &&
                 offset[f] + (Py_ssize_t)sizeof(PyObject *) <= cls->tp_basicsize;
        }
        Py_XDECREF(d);
        if (!ok) {
            PyErr_Format(PyExc_TypeError, "entries: %s.%s is not an object slot",
                         cls->tp_name, FIELDS[f]);
            return -1;
        }
    }
    return 0;
}

/* The value of field f of the entry whose columns are col; a new reference. */
static PyObject *field(const char *buf, const uint32_t *col, int f, struct caches *c)
{
    if (f < MK_MI_ROOT) {
        struct last_number *last = &c->number[f];
        if (last->value == NULL || last->raw != col[f]) {
            PyObject *value = PyLong_FromUnsignedLong(col[f]);
            if (value == NULL)
                return NULL;
            Py_XSETREF(last->value, value);
            last->raw = col[f];
        }
        return Py_NewRef(last->value);
    }
    const char *raw = buf + col[f];
    Py_ssize_t len = (Py_ssize_t)col[f + 1] - (Py_ssize_t)col[f];
    switch (f) {
    case MK_MI_OPTIONS:
    case MK_MI_OPTIONAL:
    case MK_MI_SUPER_OPTIONS:
        return cached(&c->lists, raw, len, 1);
    case MK_MI_FS_TYPE:
    case MK_MI_SOURCE:
        return cached(&c->words, raw, len, 0);
    default:
        return decode(raw, len);
    }
}

PyObject *mk_py_entries(PyObject *self, PyObject *args)
{
    Py_buffer buf, cols;
    Py_ssize_t start, stop;
    PyTypeObject *cls;
    if (!PyArg_ParseTuple(args, "y*y*nnO!:entries", &buf, &cols, &start, &stop, &PyType_Type, &cls))
        return NULL;
    PyObject *list = NULL;
    struct caches *c = NULL;
    Py_ssize_t offset[NFIELDS];
    Py_ssize_t have = cols.len / (Py_ssize_t)(MK_MI_STRIDE * sizeof(uint32_t));
    if (start < 0 || stop < start || stop > have) {
        PyErr_SetString(PyExc_IndexError, "entries: range outside the table");
        goto out;
    }
    if (slot_offsets(cls, offset) != 0)
        goto out;
    const uint32_t *col0 = cols.buf;
    for (Py_ssize_t i = start; i < stop; i++) { /* every offset inside the buffer */
        const uint32_t *col = col0 + i * MK_MI_STRIDE;
        for (int f = MK_MI_ROOT; f < MK_MI_END; f++)
            if (col[f] > col[f + 1] || col[f + 1] > (uint64_t)buf.len) {
                PyErr_SetString(PyExc_ValueError, "entries: column offsets outside the buffer");
                goto out;
            }
    }
    c = PyMem_Calloc(1, sizeof *c);
    if (c == NULL) {
        PyErr_NoMemory();
        goto out;
    }
    list = PyList_New(stop - start);
    if (list == NULL)
        goto out;
    for (Py_ssize_t i = start; i < stop; i++) {
        PyObject *e = cls->tp_alloc(cls, 0);
        if (e == NULL)
            goto fail;
        PyList_SET_ITEM(list, i - start, e); /* a half-built entry is freed with the list */
        const uint32_t *col = col0 + i * MK_MI_STRIDE;
        for (int f = 0; f < NFIELDS; f++) {
            PyObject *value = field(buf.buf, col, f, c);
            if (value == NULL)
                goto fail;
            *(PyObject **)((char *)e + offset[f]) = value;
        }
        if (PyObject_IS_GC(e))
            PyObject_GC_UnTrack(e); /* ints, strs and tuples of strs: see the top of this file */
    }
    goto out;
fail:
    Py_CLEAR(list);
out:
    if (c != NULL) {
        cache_clear(&c->words);
        cache_clear(&c->lists);
        for (int f = 0; f < MK_MI_ROOT; f++)
            Py_CLEAR(c->number[f].value);
        PyMem_Free(c);
    }
    PyBuffer_Release(&buf);
    PyBuffer_Release(&cols);
    return list;
}
