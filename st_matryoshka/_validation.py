"""Argument checks shared by modules, losses and the CLI; each error names the argument and its value."""

from __future__ import annotations

from collections.abc import Sequence


def check_dims(dims: Sequence[int], name: str = "matryoshka_dims", max_dim: int | None = None) -> list[int]:
    """Return ``dims`` as a list after checking they are positive ints in strictly descending order.

    Args:
        dims: The dimensions.
        name: Argument name used in the error message.
        max_dim: The model's width; a larger dim is an error.
    """
    if isinstance(dims, (str, bytes)) or not isinstance(dims, Sequence):
        raise ParameterError(name, f"{name} must be a non-empty list of positive ints, got {dims!r}")
    dims = list(dims)
    if not dims:
        raise ParameterError(name, f"{name} must be a non-empty list of positive ints, got {dims!r}")
    if any(not isinstance(d, int) or isinstance(d, bool) or d <= 0 for d in dims):
        raise ParameterError(name, f"{name} must be positive ints, got {dims!r}")
    if any(a <= b for a, b in zip(dims, dims[1:])):
        raise ParameterError(name, f"{name} must be strictly descending, got {dims!r}")
    if max_dim is not None and dims[0] > max_dim:
        raise ParameterError(name, f"{name} must not exceed the model's embedding width {max_dim}, got {dims!r}")
    return dims




class ParameterError(ValueError):
    """A bad value of one named parameter; the message starts with the parameter's name.

    Library functions raise it with their own parameter names (``num_negatives``, ``dims``); the command line maps
    ``parameter`` to its flag (``--num-negatives``) before printing, so each caller reads the name it passed.

    Args:
        parameter: The parameter's name, as the raising function spells it.
        message: The whole message, naming ``parameter`` and its value.

    Example:
        ::

            try:
                AdaptorTrainingConfig(num_negatives=0)
            except ParameterError as exc:
                print(exc.parameter)
                # => num_negatives
    """

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter

    def with_name(self, name: str) -> str:
        """The message with the parameter's first mention replaced by ``name`` (e.g. a command-line flag)."""
        return str(self).replace(self.parameter, name, 1)
