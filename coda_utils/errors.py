"""Errors that more than one layer raises, so that none of them has to import another for them.

:class:`ParameterError` is the error of a notebook parameter's bad value: the parameter checks
of :mod:`coda_utils.params` (orchestration) raise it before any work starts, and a stage that
finds a bad value only once it has read the data raises the same one (``image_size`` of
:func:`coda_utils.datasets.evaluation_data`, in the data layer), so a notebook, a test or
``coda_utils.scale`` catches one class. ``coda_utils.params.ParameterError`` is the same class.

An error that one module owns stays beside it (a damaged file: :class:`coda_utils.io.CorruptFileError`;
a stale latent cache: :class:`coda_utils.encoding.StaleCacheError`; ...).
"""
from __future__ import annotations

__all__ = ["ParameterError"]


class ParameterError(ValueError):
    """A notebook parameter has a value it cannot run with."""
