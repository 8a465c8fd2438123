"""Saving, restoring and linearizing the variables of a Keras 3 model.

One implementation for both paths, :mod:`sbp_tf.pruning.state`, which reads
each model's own Keras: :func:`snapshot` / :func:`restore` cover every
variable (batch-norm statistics, dropout seed states), and
:func:`linearized` is SynFlow's and the connectivity check's state (kernels
replaced, every bias 0, batch norm the identity, other float weights
``|w|``, every layer in its linear form: activations the identity, gates
and attention softmax at their pass-through values, recurrent layers a
linear recurrence, embeddings the sum of their rows).

Usage::

    snap = snapshot(model)
    ...                          # anything that writes variables
    restore(snap)                # bit-exact
"""

from sbp_tf.pruning import state as _state

snapshot = _state.snapshot
restore = _state.restore
linear_values = _state.linear_values
linearized = _state.linearized
linearize_layers = _state.linearize_activations
unlinearize_layers = _state.unlinearize
is_floating = _state.is_floating

__all__ = ["is_floating", "linear_values", "linearize_layers", "linearized",
           "restore", "snapshot", "unlinearize_layers"]
