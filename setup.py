"""Package list for setuptools, computed from the folders (the rest of the configuration is in pyproject.toml).

The three layers live in top-level folders and install as i2i.train / i2i.export / i2i.runtime
(pyproject.toml's [tool.setuptools.package-dir]). setuptools' own discovery cannot follow that
mapping into subpackages, so every folder with an __init__.py under each mapped root is listed here:
a new subpackage is in the wheel without anyone having to remember it.
"""

from setuptools import find_packages, setup

# Import name -> folder; the same mapping as pyproject.toml's [tool.setuptools.package-dir].
ROOTS = {"i2i": "i2i", "i2i.train": "train", "i2i.export": "export", "i2i.runtime": "runtime"}

PACKAGES = [pkg for root, folder in ROOTS.items() for pkg in (root, *(f"{root}.{p}" for p in find_packages(folder)))]

setup(packages=PACKAGES)
