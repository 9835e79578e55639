"""Exceptions raised by rlox.

rlox raises what Gymnasium and NumPy raise for the same mistake, so existing ``except`` clauses keep
working:

* an action outside the action space: :class:`InvalidAction`, which is both a ``ValueError`` (the
  NumPy convention for a bad value) and an ``AssertionError`` (what Gymnasium's envs raise through
  ``assert self.action_space.contains(action)``);
* ``step`` before ``reset``: ``gymnasium.error.ResetNeeded``;
* a call on a closed env: ``gymnasium.error.ClosedEnvironmentError``;
* an unknown id: ``gymnasium.error.NameNotFound`` / ``VersionNotFound`` (from Gymnasium's registry);
* an unknown keyword argument: ``TypeError``; a bad value: ``ValueError``; a bad seed:
  ``gymnasium.error.Error``, as ``gymnasium.utils.seeding`` raises it.

An internal error (a Rust panic, which would be a bug) is a ``RuntimeError``; it never takes the
interpreter down, and the env that hit it refuses further calls.
"""

from __future__ import annotations

__all__ = ["InvalidAction"]


class InvalidAction(ValueError, AssertionError):
    """An action (or a batch of actions) that is not in the action space, or has the wrong shape."""
