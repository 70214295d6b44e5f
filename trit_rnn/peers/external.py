"""Importing an optional external library for a peer adapter, with a clear error when it is missing
or its API is not the one the adapter was written against."""

import importlib
from importlib.metadata import PackageNotFoundError, version


class PeerAPIError(RuntimeError):
    """An installed external library lacks the API its adapter calls."""


def _installed_version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown version"


def require_api(module_name: str, *attributes: str, distribution: str, tested: str):
    """Import `module_name` and return its `attributes` (dotted paths allowed), in order.

    distribution: the pip name (for the messages); tested: the version the adapter was written for.
    """
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ImportError(
            f"this peer needs {distribution} (pip install {distribution}, or the `peers` extra)"
        ) from error
    found = []
    for path in attributes:
        obj = module
        for part in path.split("."):
            if not hasattr(obj, part):
                raise PeerAPIError(
                    f"{module_name}.{path} not found in {distribution} {_installed_version(distribution)}; "
                    f"trit_rnn's adapter was written against {distribution} {tested}"
                )
            obj = getattr(obj, part)
        found.append(obj)
    return found[0] if len(found) == 1 else tuple(found)
