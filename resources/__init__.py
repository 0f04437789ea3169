"""Bundled data installed with the app (``layerloom.resources``): the Fashion-MNIST subset and the
text corpus. Screenshots stay in the repository only (pyproject excludes them from the wheel)."""
