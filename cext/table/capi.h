/* mountkit._mountkit_table: the mount table's C side written against the
 * CPython API (module.c), one job a file: mountinfo read and parsed into the
 * buffers the table keeps (mountinfo_read.c), and MountInfo objects built
 * from them (entries.c).  Not cffi, which can neither create a bytes object
 * without a copy nor build Python objects but through Python code. */
#ifndef MOUNTKIT_CAPI_H
#define MOUNTKIT_CAPI_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* The read(2) size mountinfo_read.c asks for by default. */
#define MK_PY_CHUNK 65536

PyObject *mk_py_parse(PyObject *self, PyObject *args);
PyObject *mk_py_read(PyObject *self, PyObject *args);
PyObject *mk_py_entries(PyObject *self, PyObject *args);

#endif
