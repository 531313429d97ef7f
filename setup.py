"""Only the C extension's build lives here; everything else is in pyproject.toml."""
import numpy
from setuptools import Extension, setup

setup(ext_modules=[Extension("sparsejl._handover", ["sparsejl/_handover.c"], include_dirs=[numpy.get_include()],
                             extra_compile_args=["-O2"])])
