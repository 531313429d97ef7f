"""The build steps pyproject.toml cannot declare: the C extensions, and the Julia package inside the package."""
import os

import numpy
from setuptools import Extension, setup
from setuptools.command.build_py import build_py


class build_py_with_julia(build_py):
    """Copies julia/SparseJL (a Julia package in its own right) to sparsejl/SparseJL in wheels,
    where sparsejl.julia.find.package_dir looks first; an editable install reads it in place."""

    def run(self):
        super().run()
        if not self.editable_mode:
            self.copy_tree(os.path.join("julia", "SparseJL"), os.path.join(self.build_lib, "sparsejl", "SparseJL"))


setup(cmdclass={"build_py": build_py_with_julia},
      ext_modules=[Extension("sparsejl._handover", ["sparsejl/_handover.c"], include_dirs=[numpy.get_include()],
                             extra_compile_args=["-O2"]),
                   Extension("sparsejl.backends._culaunch", ["sparsejl/backends/_culaunch.c"],
                             extra_compile_args=["-O2"])])
