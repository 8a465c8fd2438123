"""Distribution strategy selection and mixed-precision policy.

Usage::

    from sbp_tf import strategy as sbp_strategy
    strat = sbp_strategy.get("auto")          # TPU > >1 GPU mirrored > default
    strat = sbp_strategy.get("tpu", tpu="my-tpu")
    strat = sbp_strategy.get("multi_worker")  # cluster from TF_CONFIG
    with sbp_strategy.precision_policy("float16"):
      ...  # models built here compute in float16, variables stay float32

Names: ``default`` (one device), ``mirrored`` (all local GPUs, or the CPU when
there is none), ``multi_worker`` (MultiWorkerMirroredStrategy, cluster from the
``TF_CONFIG`` environment variable), ``tpu`` (TPUClusterResolver +
TPUStrategy), ``auto``.
"""

import contextlib
import json
import os
from typing import Optional

from sbp_tf import log
from sbp_tf.compat import keras, tf

# A detail, not a say() line: shown once logging is configured at INFO.
_log = log.logger.getChild("strategy")

# Every name get() accepts (the binaries' --strategy choices).
NAMES = ("auto", "default", "mirrored", "multi_worker", "tpu")


def _tpu_strategy(tpu: Optional[str]):
  try:
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
  except Exception as e:  # pylint: disable=broad-except
    # Off-cloud the resolver fails with URLError/ValueError/OpError alike.
    raise ValueError(
        f"no TPU reachable (tpu={tpu!r}): {e}. Fix: run on a TPU VM (tpu='' or "
        "'local'), pass --tpu=<name or grpc://address> of a reachable TPU, or "
        "use --strategy=auto/mirrored/default.") from e
  return tf.distribute.TPUStrategy(resolver)


def _tpu_available(tpu: Optional[str]) -> bool:
  if tf.config.list_logical_devices("TPU"):
    return True
  if tpu is None and not os.environ.get("TPU_NAME"):
    # Probing TPUClusterResolver without a name queries GCE metadata, which
    # can hang off-cloud; only probe when a TPU was named.
    return False
  try:
    tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
    return True
  except Exception:  # pylint: disable=broad-except
    return False


def get(name: str = "auto", *, tpu: Optional[str] = None):
  """Returns the ``tf.distribute.Strategy`` called ``name``.

  ``auto`` = TPU if one resolves, else MirroredStrategy if more than one GPU,
  else the default (single-device) strategy. The global batch of a step is
  ``per_replica_batch * strategy.num_replicas_in_sync``.

  Args:
    name: one of ``auto|default|mirrored|multi_worker|tpu``.
    tpu: TPU name or ``grpc://`` address for ``tpu``/``auto`` (None: from the
      ``TPU_NAME`` environment variable / the local TPU VM).

  Raises:
    ValueError: unknown name, no TPU reachable for ``tpu``, or no/invalid
      ``TF_CONFIG`` for ``multi_worker``.
  """
  if name not in NAMES:
    raise ValueError(f"unknown strategy {name!r}. Fix: use one of "
                     f"{', '.join(NAMES)}.")
  if name == "auto":
    if _tpu_available(tpu):
      return _tpu_strategy(tpu)
    if "TF_CONFIG" in os.environ and _num_workers() > 1:
      return get("multi_worker")
    if len(tf.config.list_logical_devices("GPU")) > 1:
      return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()
  if name == "default":
    return tf.distribute.get_strategy()
  if name == "mirrored":
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
      return tf.distribute.MirroredStrategy()
    # No GPU: mirror over the logical CPU devices (one unless split by
    # tf.config.set_logical_device_configuration).
    cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
    _log.info("mirrored: no GPU found, using CPU device(s) %s", cpus)
    return tf.distribute.MirroredStrategy(cpus)
  if name == "multi_worker":
    if "TF_CONFIG" not in os.environ:
      raise ValueError(
          "strategy 'multi_worker' needs the TF_CONFIG environment variable "
          "(cluster spec and this worker's task). Fix: export TF_CONFIG="
          "'{\"cluster\": {\"worker\": [\"host1:port\", \"host2:port\"]}, "
          "\"task\": {\"type\": \"worker\", \"index\": 0}}' on each worker.")
    _num_workers()  # validates the JSON
    return tf.distribute.MultiWorkerMirroredStrategy()
  return _tpu_strategy(tpu)


def _num_workers() -> int:
  try:
    spec = json.loads(os.environ["TF_CONFIG"])
    cluster = spec["cluster"]
  except (ValueError, KeyError, TypeError) as e:
    raise ValueError(f"TF_CONFIG is not valid JSON with a 'cluster' key: {e}. "
                     "Fix: see docs/training.md (multi-worker).") from e
  return sum(len(v) for k, v in cluster.items() if k in ("chief", "worker"))


def task_info(strategy) -> tuple:
  """``(is_chief, task_id)`` of this process for ``strategy``.

  Single-process strategies are always chief. Under MultiWorkerMirrored the
  chief is task ``chief`` or, when there is none, ``worker`` 0.
  """
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or isinstance(
      resolver, tf.distribute.cluster_resolver.TPUClusterResolver):
    return True, 0
  task_type, task_id = resolver.task_type, resolver.task_id
  if task_type is None:
    return True, 0
  cluster = resolver.cluster_spec().as_dict()
  is_chief = task_type == "chief" or (task_type == "worker" and task_id == 0
                                      and "chief" not in cluster)
  return is_chief, int(task_id or 0)


def is_tpu(strategy) -> bool:
  return isinstance(strategy, (tf.distribute.TPUStrategy,))


def policy_name(mixed_precision: Optional[str], strategy=None) -> str:
  """Keras dtype policy for a config's ``train.mixed_precision``.

  ``None`` -> ``float32``; ``float16`` -> ``mixed_float16`` (GPU);
  ``bfloat16`` -> ``mixed_bfloat16`` (TPU, recent CPUs).
  """
  if mixed_precision is None:
    return "float32"
  if mixed_precision not in ("float16", "bfloat16"):
    raise ValueError(f"mixed_precision={mixed_precision!r}. Fix: use None, "
                     "'float16' (GPU) or 'bfloat16' (TPU).")
  if strategy is not None and is_tpu(strategy) and mixed_precision == "float16":
    raise ValueError("float16 is not supported on TPU. Fix: set "
                     "train.mixed_precision='bfloat16'.")
  return "mixed_" + mixed_precision


@contextlib.contextmanager
def precision_policy(mixed_precision: Optional[str], strategy=None):
  """Sets the global Keras dtype policy inside the block, restores it after."""
  old = keras.mixed_precision.global_policy()
  keras.mixed_precision.set_global_policy(
      policy_name(mixed_precision, strategy))
  try:
    yield
  finally:
    keras.mixed_precision.set_global_policy(old)


def split_cpu(n: int) -> None:
  """Splits the CPU into ``n`` logical devices (before TensorFlow starts).

  Lets ``mirrored`` run ``n`` replicas on a CPU-only machine, e.g. to check a
  distributed set-up locally. Must run before any op or device query.
  """
  if n <= 1:
    return
  cpu = tf.config.list_physical_devices("CPU")[0]
  try:
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * n)
  except RuntimeError as e:
    raise ValueError(f"cannot split the CPU into {n} devices: {e}. Fix: call "
                     "split_cpu before TensorFlow runs anything.") from e
