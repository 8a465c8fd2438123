"""The tiny experiment config shared by the experiment and workdir tests,
and the workdir fault-injection helpers."""

import shutil

from sbp_tf import config as sbp_config
from sbp_tf.training import workdir as wd_lib


def tiny_config(**train):
  """A 3-layer MLP on 512 Fashion-MNIST images, 2 epochs, no TFLite export."""
  c = sbp_config.experiment("fashion_mnist", "ffnn", method="sbp",
                            sparsity=0.8, depth=3, width=32)
  c.dataset.limit_train, c.dataset.limit_test = 512, 256
  c.train.update(dict(epochs=2, batch_size=64, lr=0.05, verbose=0))
  c.train.update(train)
  c.export_tflite = False
  return c


def finished_run(tmp_path_factory, name):
  """``(cfg, workdir, metrics)`` of a tiny finished run in a fresh folder."""
  from sbp_tf import experiment  # pylint: disable=g-import-not-at-top
  cfg = tiny_config()
  workdir = tmp_path_factory.mktemp(name) / "run"
  return cfg, workdir, experiment.run(cfg, workdir)


def snapshot(path):
  """``{relative path: bytes}`` of every file under ``path``."""
  return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*")
          if p.is_file()}


def interrupted_copy(finished, tmp_path, epochs_done=2):
  """A copy of the finished run ``(cfg, workdir, metrics)`` whose state says
  it stopped after ``epochs_done`` epochs (results and models removed)."""
  cfg, src, _ = finished
  dst = tmp_path / "run"
  shutil.copytree(src, dst)
  (dst / wd_lib.LOCK).unlink(missing_ok=True)
  for name in ("results.json", "model.keras", "model_wrapped.keras"):
    (dst / name).unlink()
  wd_lib.Workdir(dst).set_state(wd_lib.TRAINING, epochs_done, epochs=2)
  return cfg, dst


def sparsity_events(workdir):
  """``{tag: [(step, value)]}`` of the TensorBoard sparsity scalars."""
  import glob  # pylint: disable=g-import-not-at-top
  from sbp_tf.compat import tf  # pylint: disable=g-import-not-at-top
  out = {}
  for path in sorted(glob.glob(str(workdir / "tensorboard" / "sparsity" /
                                   "events.out.tfevents.*"))):
    for event in tf.compat.v1.train.summary_iterator(path):
      for v in event.summary.value:
        out.setdefault(v.tag, []).append(
            (event.step, float(tf.make_ndarray(v.tensor))))
  return out
