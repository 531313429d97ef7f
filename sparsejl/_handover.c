/* The Python -> Julia call path in C: what costs ~1 µs per step through ctypes costs nanoseconds here.

   run(args, capacity, box, go, done, fptr, head, arrays, spin_s) -> status

   Writes `head` (a tuple of ints) and then the data pointer of each NumPy array in `arrays` into
   the int64 buffer at address `args` (room for `capacity` slots), and runs the job `fptr` on it:
   - box == 0: calls fptr(args) on this thread (a Julia that this thread may enter directly);
   - else hands it to Julia's owner thread through the mailbox of docs/abi.md: box[0..3] =
     fptr, args, status, flag; posts the semaphore `go`, then waits on `done`: a short spin
     (SPIN_TRIES polls, and on until `spin_s` seconds, a float >= 0, have passed since the
     hand-over: for jobs that wait on a GPU), then 50 ms slices in which Python's signal handlers
     run. A handler that raises (Ctrl-C) ends the wait with its exception while Julia still works
     on the job; the caller keeps the buffers alive until `done` is posted (runtime.py).
   The GIL is released while Julia runs. Arrays must be C-contiguous NumPy arrays (checked). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <time.h>

typedef int32_t (*job_fn)(int64_t *);

enum { SPIN_TRIES = 1000, SLICE_NS = 50 * 1000 * 1000, STATUS_FORKED = -1 };

/* Julia's threads do not survive fork(): a child made by any fork, also one from C, gets
   STATUS_FORKED instead of a wait for a thread that is not there. */
static volatile int forked = 0;
static void mark_forked(void) { forked = 1; }

static void *address(PyObject *o) { return PyLong_AsVoidPtr(o); }

static int fill(int64_t *args, Py_ssize_t capacity, PyObject *head, PyObject *arrays) {
    if (!PyTuple_Check(head) || !PyTuple_Check(arrays)) {
        PyErr_SetString(PyExc_TypeError, "head and arrays must be tuples");
        return -1;
    }
    Py_ssize_t nh = PyTuple_GET_SIZE(head), na = PyTuple_GET_SIZE(arrays);
    if (nh + na > capacity) {
        PyErr_Format(PyExc_ValueError, "a job of %zd slots does not fit the %zd-slot buffer", nh + na, capacity);
        return -1;
    }
    for (Py_ssize_t i = 0; i < nh; i++) {
        int64_t v = PyLong_AsLongLong(PyTuple_GET_ITEM(head, i));
        if (v == -1 && PyErr_Occurred()) return -1;
        args[i] = v;
    }
    for (Py_ssize_t i = 0; i < na; i++) {
        PyObject *a = PyTuple_GET_ITEM(arrays, i);
        if (!PyArray_Check(a) || !PyArray_IS_C_CONTIGUOUS((PyArrayObject *)a)) {
            PyErr_Format(PyExc_TypeError, "job array %zd is not a C-contiguous NumPy array", i);
            return -1;
        }
        args[nh + i] = (int64_t)(intptr_t)PyArray_DATA((PyArrayObject *)a);
    }
    return 0;
}

static double seconds_since(const struct timespec *t0) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t0->tv_sec) + 1e-9 * (double)(now.tv_nsec - t0->tv_nsec);
}

/* 0 when `done` was posted; -1 with a Python exception set when a signal handler raised.
   Spins (no signal checks) for SPIN_TRIES polls and until `spin_s` seconds have passed. */
static int wait_done(sem_t *done, double spin_s) {
    int posted = 0;
    struct timespec t0;
    PyThreadState *ts = PyEval_SaveThread();
    if (spin_s > 0) clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < SPIN_TRIES && !posted; i++) posted = sem_trywait(done) == 0;
    while (!posted && spin_s > 0 && seconds_since(&t0) < spin_s) posted = sem_trywait(done) == 0;
    while (!posted) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += SLICE_NS;
        if (until.tv_nsec >= 1000000000L) { until.tv_sec += 1; until.tv_nsec -= 1000000000L; }
        posted = sem_timedwait(done, &until) == 0;
        if (!posted && (errno == ETIMEDOUT || errno == EINTR)) {
            PyEval_RestoreThread(ts);
            if (PyErr_CheckSignals() < 0) return -1;
            ts = PyEval_SaveThread();
        }
    }
    PyEval_RestoreThread(ts);
    return 0;
}

static PyObject *run(PyObject *self, PyObject *const *argv, Py_ssize_t argc) {
    if (argc != 9) {
        PyErr_SetString(PyExc_TypeError,
                        "run takes 9 arguments: args, capacity, box, go, done, fptr, head, arrays, spin_s");
        return NULL;
    }
    int64_t *args = address(argv[0]);
    Py_ssize_t capacity = PyLong_AsSsize_t(argv[1]);
    volatile int64_t *box = address(argv[2]);
    sem_t *go = address(argv[3]), *done = address(argv[4]);
    job_fn fptr = (job_fn)address(argv[5]);
    double spin_s = PyFloat_AsDouble(argv[8]);
    if (PyErr_Occurred()) return NULL;
    if (!(spin_s >= 0 && spin_s < INFINITY)) { /* NaN fails both */
        PyErr_Format(PyExc_ValueError, "spin_s must be a finite number of seconds >= 0, not %R", argv[8]);
        return NULL;
    }
    if (fptr == NULL || args == NULL) {
        PyErr_SetString(PyExc_ValueError, "null job or argument buffer");
        return NULL;
    }
    if (forked) return PyLong_FromLong(STATUS_FORKED);
    if (box != NULL) box[1] = 0; /* set again when the job is handed over: the caller reads it */
    if (fill(args, capacity, argv[6], argv[7]) < 0) return NULL;
    int32_t status;
    if (box == NULL) {
        Py_BEGIN_ALLOW_THREADS
        status = fptr(args);
        Py_END_ALLOW_THREADS
    } else {
        box[0] = (int64_t)(intptr_t)fptr;
        box[1] = (int64_t)(intptr_t)args;
        box[2] = 0;
        box[3] = 1;
        sem_post(go);
        if (wait_done(done, spin_s) < 0) return NULL;
        status = (int32_t)box[2];
    }
    return PyLong_FromLong(status);
}

static PyMethodDef methods[] = {
    {"run", (PyCFunction)(void (*)(void))run, METH_FASTCALL, "Run one Julia job (see the module's source)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_handover", "sparsejl's call path into Julia, in C.", -1, methods};

PyMODINIT_FUNC PyInit__handover(void) {
    import_array();
    pthread_atfork(NULL, NULL, mark_forked);
    return PyModule_Create(&module);
}
