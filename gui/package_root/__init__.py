"""The top ``layerloom`` package as installed.

The repository keeps ``engine/`` and ``gui/`` at its top level (the product's layout); setuptools'
``package-dir`` mapping (pyproject.toml) installs this folder as ``layerloom``, those two as
``layerloom.engine`` and ``layerloom.gui``, and ``samples/`` and ``resources/`` as package data, so
no generic top-level name (``engine``, ``gui``) ever lands in site-packages.
"""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("layerloom")
except PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0+unknown"
