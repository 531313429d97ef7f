/* One cuLaunchKernel from Python, in C: through ctypes its eleven converted arguments and the
   parameter copy cost about as much host time as the rest of a GPU spmm.

   launch(entry, function, grid, block, smem, stream, params, offsets) -> CUresult

   `entry` is the address of the driver's cuLaunchKernel (resolved once by the caller: this module
   links against nothing), `function` a CUfunction, `grid` and `block` (x, y, z) tuples of ints,
   `smem` bytes of dynamic shared memory, `stream` a CUstream address. `params` (bytes) holds the
   kernel's parameters packed at the byte offsets listed in `offsets` (native int64s, bytes): each
   kernelParams pointer points there. The driver copies the parameters before cuLaunchKernel
   returns, so a buffer on this stack serves. Nothing here waits for the device; the GIL is
   released for the driver call. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

typedef int (*cu_launch_fn)(void *f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                            unsigned bz, unsigned smem, void *stream, void **params, void **extra);

enum { PARAM_BYTES = 4096, MAX_PARAMS = 256 };

static PyObject *launch(PyObject *self, PyObject *args) {
    unsigned long long entry, function, stream;
    unsigned int g[3], b[3], smem;
    Py_buffer params, offsets;
    if (!PyArg_ParseTuple(args, "KK(III)(III)IKy*y*:launch", &entry, &function, &g[0], &g[1], &g[2], &b[0],
                          &b[1], &b[2], &smem, &stream, &params, &offsets))
        return NULL;
    _Alignas(128) unsigned char buffer[PARAM_BYTES];
    void *pointers[MAX_PARAMS];
    Py_ssize_t count = offsets.len / (Py_ssize_t)sizeof(int64_t);
    const char *problem = NULL;
    if (entry == 0 || function == 0) problem = "null cuLaunchKernel entry or CUfunction";
    else if (params.len > PARAM_BYTES) problem = "the parameters exceed 4096 bytes";
    else if (offsets.len % (Py_ssize_t)sizeof(int64_t) != 0 || count > MAX_PARAMS)
        problem = "offsets must be at most 256 native int64s";
    for (Py_ssize_t i = 0; problem == NULL && i < count; i++) {
        int64_t at;
        memcpy(&at, (const char *)offsets.buf + i * (Py_ssize_t)sizeof(int64_t), sizeof at);
        if (at < 0 || at >= params.len) problem = "a parameter offset lies outside the parameters";
        else pointers[i] = buffer + at;
    }
    if (problem == NULL) memcpy(buffer, params.buf, (size_t)params.len);
    PyBuffer_Release(&params);
    PyBuffer_Release(&offsets);
    if (problem != NULL) {
        PyErr_SetString(PyExc_ValueError, problem);
        return NULL;
    }
    int status;
    Py_BEGIN_ALLOW_THREADS /* a full launch queue blocks here: other Python threads go on meanwhile */
    status = ((cu_launch_fn)(uintptr_t)entry)((void *)(uintptr_t)function, g[0], g[1], g[2], b[0], b[1], b[2], smem,
                                              (void *)(uintptr_t)stream, pointers, NULL);
    Py_END_ALLOW_THREADS
    return PyLong_FromLong(status);
}

static PyMethodDef methods[] = {
    {"launch", launch, METH_VARARGS, "cuLaunchKernel of packed parameters (see the module's source)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_culaunch", "sparsejl's kernel launch, in C.", -1, methods};

PyMODINIT_FUNC PyInit__culaunch(void) { return PyModule_Create(&module); }
