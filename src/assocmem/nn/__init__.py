"""Deep-learning layers built on the modern Hopfield (Model B) update (docs/reference.md §2).

``Hopfield`` (any stored/state/projection inputs), ``HopfieldLayer`` (trainable stored patterns),
``HopfieldPooling`` (trainable state patterns), and ``HopfieldEncoderLayer`` / ``HopfieldDecoderLayer`` for
transformer stacks. The update itself is :func:`assocmem.nn.functional.hopfield_update`. See
docs/hopfield-layers.md for what Q, K, V and beta are in the paper's terms.
"""

from assocmem.nn import functional
from assocmem.nn.functional import Association, hopfield_update
from assocmem.nn.hopfield import Hopfield
from assocmem.nn.hopfield_layer import HopfieldLayer
from assocmem.nn.hopfield_pooling import HopfieldPooling
from assocmem.nn.transformer import HopfieldDecoderLayer, HopfieldEncoderLayer

__all__ = [
    "Association",
    "Hopfield",
    "HopfieldDecoderLayer",
    "HopfieldEncoderLayer",
    "HopfieldLayer",
    "HopfieldPooling",
    "functional",
    "hopfield_update",
]
