"""The exceptions bnfold raises.

``BnfoldError`` is the root. ``InputError`` means the user gave us something we cannot use
(a missing file, a corrupt model, a bad flag value): the CLI prints its message on one line and
exits with status 2. Anything else escaping the library is a bug and keeps its traceback.
"""


class BnfoldError(Exception):
    """Base class of every error bnfold raises on purpose."""


class InputError(BnfoldError):
    """Bad input or usage: a one-line message for the user, exit status 2."""


class ModelLoadError(InputError):
    """A model file could not be read: missing, not a model, truncated, unsafe external data."""
