"""Optional deep model: an LSTM with attention pooling over the last feature vectors.

Installed with ``pip install -e .[deep]`` (Keras 3 on the JAX CPU backend). What needs which:

* :mod:`tinhieu.deep.sequences` (windows of the last ``SEQUENCE_LENGTH`` feature rows) and
  :mod:`tinhieu.deep.forward` (the trained model as numpy arrays: what the registry stores and
  the ensemble serves) import numpy only, so a saved model unpickles anywhere;
* :mod:`tinhieu.deep.keras_model` (build and fit) needs Keras and JAX, and sets
  ``KERAS_BACKEND=jax`` before importing Keras.

Without the extra, training refuses ``lstm`` with a message naming ``pip install -e .[deep]``,
and the ensemble leaves a production ``lstm`` model out (rf, svm, lr serve as before).
"""

from __future__ import annotations

import importlib.util

SEQUENCE_LENGTH = 32
"""Feature rows one LSTM input holds: the candle's own row and the 31 before it."""

INSTALL_HINT = "pip install -e .[deep]"


class DeepUnavailable(RuntimeError):
    """The ``deep`` extra (Keras, JAX) is not installed."""


def available() -> bool:
    """Whether Keras and JAX can be imported (looked up, not imported: cheap)."""
    for name in ("keras", "jax"):
        try:
            if importlib.util.find_spec(name) is None:
                return False
        except (ImportError, ValueError):
            return False
    return True


def require(what: str = "the lstm model") -> None:
    """Raise :class:`DeepUnavailable` naming the install command when the extra is missing."""
    if not available():
        raise DeepUnavailable(
            f"{what} needs Keras and JAX, which are not installed: run `{INSTALL_HINT}` "
            "(or leave lstm out of the algorithms setting)"
        )
