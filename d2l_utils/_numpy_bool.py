"""Restore ``numpy.bool`` for MXNet 1.9.1 (see ``d2l_utils.mxnet``): the one place that does.

NumPy 1.24 removed the alias; MXNet still uses it. ``numpy.bool_`` is exactly the type the old
alias named, so nothing else changes. Importing this module is enough.
"""

import numpy

if "bool" not in vars(numpy):  # removed in NumPy 1.24 (NumPy 2 has a new numpy.bool)
    numpy.bool = numpy.bool_
