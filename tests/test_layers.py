"""StableScale: the 1/sqrt(L) residual scaling."""

import numpy as np
import pytest

from sbp_tf.compat import keras
from sbp_tf.layers import StableScale


def test_output_is_shortcut_plus_scaled_branch():
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=(2, 5)), rng.normal(size=(2, 5))
  out = StableScale(9)([a.astype("float32"), b.astype("float32")]).numpy()
  np.testing.assert_allclose(out, a + b / 3.0, rtol=1e-6)
  out1 = StableScale(1)([a, b]).numpy()
  np.testing.assert_allclose(out1, a + b, rtol=1e-6)


def test_serializes_in_saved_model(tmp_path):
  x, y = keras.Input((4,)), keras.Input((4,))
  model = keras.Model([x, y], StableScale(16, name="add")([x, y]))
  path = str(tmp_path / "m.keras")
  model.save(path)
  back = keras.models.load_model(path)
  assert back.get_layer("add").num_blocks == 16
  data = [np.ones((1, 4), "float32"), np.full((1, 4), 4.0, "float32")]
  np.testing.assert_allclose(back(data).numpy(), 2.0)


def test_bad_arguments():
  with pytest.raises(ValueError, match="num_blocks must be an int >= 1"):
    StableScale(0)
  with pytest.raises(ValueError, match="expects \\[shortcut, branch\\]"):
    StableScale(2)(np.ones((1, 2), "float32"))


def test_is_the_shared_formula_registered_under_its_name():
  from sbp_tf.layers import StableScaleMath  # pylint: disable=g-import-not-at-top
  assert issubclass(StableScale, StableScaleMath)
  assert keras.utils.get_registered_name(StableScale) == "sbp_tf>StableScale"
  assert keras.utils.get_custom_objects()["StableScale"] is StableScale
  assert StableScale(4, name="s").get_config()["num_blocks"] == 4
