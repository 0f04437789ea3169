"""The bundled sample graphs, installed as package data (``layerloom.samples``).

A package (not a bare folder) so that ``importlib.resources`` finds it the same way in an editable
install, a wheel, and a checkout; the app opens these as templates, never writing back into them.
"""
