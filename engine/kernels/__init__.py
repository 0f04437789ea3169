"""numba kernels for the hot loops, each beside the numpy twin that defines it."""
