"""Networks built from ``minicnn.nn`` layers.

>>> import minicnn as mc
>>> mc.models.lenet5().num_parameters()
61706
"""

from .lenet import lenet5

__all__ = ["lenet5"]
