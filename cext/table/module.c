/* The module mountkit._mountkit_table: its functions, from the files of cext/table/ (capi.h). */
#include "capi.h"

static PyMethodDef methods[] = {
    {"parse", mk_py_parse, METH_VARARGS,
     "parse(text) -> (buf, cols, n): mountinfo text as a compact table (cext/common/mountinfo.h); "
     "cols is bytes of native uint32.  ValueError names a malformed line."},
    {"read", mk_py_read, METH_VARARGS,
     "read(fd, chunk=CHUNK) -> (buf, cols, n): parse(the text read from fd to its end), "
     "read chunk bytes at a time.  OSError from read(2)."},
    {"entries", mk_py_entries, METH_VARARGS,
     "entries(buf, cols, start, stop, cls) -> list of cls, entries [start, stop) of a compact table."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "mountkit._mountkit_table",
    "The mount table's C side: mountinfo read and parsed in one pass, and MountInfo records "
    "built from the compact table (see cext/table/).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__mountkit_table(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddIntConstant(m, "CHUNK", MK_PY_CHUNK) != 0)
        Py_CLEAR(m);
    return m;
}
