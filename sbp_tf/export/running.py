"""Running a ``.tflite`` file: the interpreter and one-example invokes.

The interpreter is LiteRT's (``ai_edge_litert``), else ``tf.lite``'s
(:mod:`sbp_tf.tflite_runtime`), with XNNPACK where it takes the graph;
inputs and outputs by the file's signature names.
"""

import numpy as np

from sbp_tf import tflite_runtime


def interpreter(content):
  """Interpreter (LiteRT, else tf.lite: sbp_tf.tflite_runtime) with default
  delegates (XNNPACK), else builtin kernels."""
  try:
    return tflite_runtime.interpreter(content), "default (XNNPACK)", None
  except (RuntimeError, ValueError) as e:
    return (tflite_runtime.interpreter(content, builtin_only=True),
            "builtin (XNNPACK refused the graph)", str(e))


def _to_file_dtype(x, detail):
  """``x`` in an input tensor's dtype: quantized (``scale > 0``) for an
  integer interface of a quantized file, cast as is otherwise (token ids)."""
  dtype = detail["dtype"]
  scale, zero = detail["quantization"]
  if not np.issubdtype(dtype, np.floating) and scale:
    return np.round(x / scale + zero).astype(dtype)
  return np.asarray(x).astype(dtype)


def _from_file_dtype(y, detail) -> np.ndarray:
  scale, zero = detail["quantization"]
  if not np.issubdtype(detail["dtype"], np.floating) and scale:
    return (y.astype(np.float32) - zero) * scale
  return np.array(y, np.float32)


class Runner:
  """One-example invokes of a ``.tflite`` file, inputs and outputs by name.

  Names are the file's signature names (Keras: the Input layers' and the
  output layers' names); a file without a signature uses its tensors in
  file order.
  """

  def __init__(self, interp):
    sigs = interp.get_signature_list()
    if sigs:
      key = "serving_default" if "serving_default" in sigs else next(iter(sigs))
      self._sig = interp.get_signature_runner(key)
      self.in_details = self._sig.get_input_details()
      self.out_details = self._sig.get_output_details()
      self.inputs = list(sigs[key]["inputs"])
      self.outputs = list(sigs[key]["outputs"])
    else:
      self._sig = None
      ins, outs = interp.get_input_details(), interp.get_output_details()
      self.inputs = [d["name"] for d in ins]
      self.outputs = [d["name"] for d in outs]
      self.in_details = dict(zip(self.inputs, ins))
      self.out_details = dict(zip(self.outputs, outs))
    self._interp = interp

  def invoke(self, feeds: dict) -> dict:
    """``feeds``: input name -> one example (batch 1); returns name -> y."""
    xs = {n: _to_file_dtype(feeds[n], self.in_details[n]) for n in self.inputs}
    if self._sig is not None:
      ys = self._sig(**xs)
    else:
      for n in self.inputs:
        self._interp.set_tensor(self.in_details[n]["index"], xs[n])
      self._interp.invoke()
      ys = {n: self._interp.get_tensor(self.out_details[n]["index"])
            for n in self.outputs}
    return {n: _from_file_dtype(ys[n], self.out_details[n])
            for n in self.outputs}

  def run(self, feeds: dict) -> dict:
    """One invoke per example of ``feeds`` (name -> batch); stacked."""
    count = len(next(iter(feeds.values())))
    ys = {n: [] for n in self.outputs}
    for i in range(count):
      # Fused recurrent ops (UNIDIRECTIONAL_SEQUENCE_LSTM) keep their state
      # in variable tensors across invokes: every example starts from zero
      # state, as a Keras call does.
      self._interp.reset_all_variables()
      out = self.invoke({n: a[i:i + 1] for n, a in feeds.items()})
      for n in self.outputs:
        ys[n].append(out[n])
    return {n: np.concatenate(v) for n, v in ys.items()}

  def feeds(self, names: list, xs: list) -> dict:
    """Model inputs (by Input layer name, ``xs`` in the same order) keyed
    by the file's input names."""
    if sorted(names) == sorted(self.inputs):
      return dict(zip(names, xs))
    if len(xs) == len(self.inputs) == 1:
      return {self.inputs[0]: xs[0]}
    raise ValueError(
        f"The file's inputs {self.inputs} are not the model's {names}: the "
        "content is not a conversion of this model. Fix: verification.verify the bytes "
        "conversion.convert() returned for this model.")

  def output_names(self, names: list) -> list:
    """The file's output name for each model output name."""
    if sorted(names) == sorted(self.outputs):
      return list(names)
    if len(names) == len(self.outputs) == 1:
      return list(self.outputs)
    raise ValueError(
        f"The file's outputs {self.outputs} are not the model's {names}: the "
        "content is not a conversion of this model. Fix: verification.verify the bytes "
        "conversion.convert() returned for this model.")


def output_names(model, n: int) -> list:
  names = list(getattr(model, "output_names", None) or ())
  return names if len(names) == n else [f"output_{i}" for i in range(n)]
