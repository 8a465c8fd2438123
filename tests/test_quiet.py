"""Quiet by default (sbp_tf._env): no TensorFlow log line on a CPU machine,
however TensorFlow is reached, and exactly the user's level when they set one."""

import pytest

from sbp_tf import _env

import user_testlib

# Lines as TensorFlow 2.21 writes them on a CPU machine (start-up, first op).
BANNER = ("WARNING: All log messages before absl::InitializeLog() is called "
          "are written to STDERR")
ONEDNN = ("I0000 00:00:1796304586.799215   21368 port.cc:153] oneDNN custom "
          "operations are on.")
CONVERTER = ("W0000 00:00:1796303904.249910    6507 "
             "tf_tfl_flatbuffer_helpers.cc:364] Ignored output_format.")
CUINIT = ("E0000 00:00:1796303868.244544    6054 cuda_platform.cc:52] failed "
          "call to cuInit: INTERNAL: CUDA error: Failed call to cuInit: "
          "UNKNOWN ERROR (303)")
OTHER_ERROR = ("E0000 00:00:1796303868.244544    6054 some_kernel.cc:10] "
               "real failure")


def test_lines_below_the_level_are_hidden_and_the_rest_kept():
  for level, want in ((0, []), (1, [BANNER, ONEDNN]),
                      (2, [BANNER, ONEDNN, CONVERTER])):
    hidden = [line for line in (BANNER, ONEDNN, CONVERTER, OTHER_ERROR)
              if _env.hidden(line, level, gpu_machine=False)]
    assert hidden == want, level
  # cuInit's failure is expected without a GPU, a real error with one.
  assert _env.hidden(CUINIT, 2, gpu_machine=False)
  assert not _env.hidden(CUINIT, 2, gpu_machine=True)
  assert not _env.hidden(CUINIT, 0, gpu_machine=False)
  assert not _env.hidden("Traceback (most recent call last):", 3, False)


_FIRST_OP = ("import sbp_tf\nfrom sbp_tf.compat import tf\n"
             "print(int(tf.constant(1) + 1))\n")


@pytest.mark.skipif(_env.has_nvidia_device(), reason="a GPU machine")
def test_first_operation_on_a_cpu_machine_prints_no_tensorflow_line(tmp_path):
  out = user_testlib.run(["-c", _FIRST_OP], cwd=tmp_path, timeout=120)
  assert out.returncode == 0 and out.stdout == "2\n", out.stderr
  assert user_testlib.tf_log_lines(out.stderr) == [], out.stderr
  # The user's own level 2: no start-up banner (TensorFlow printed it
  # twice, ignoring the level); their level 0: TensorFlow as it is.
  out = user_testlib.run(["-c", _FIRST_OP], cwd=tmp_path, timeout=120,
                         TF_CPP_MIN_LOG_LEVEL="2")
  assert user_testlib.tf_log_lines(out.stderr) == [], out.stderr
  out = user_testlib.run(["-c", _FIRST_OP], cwd=tmp_path, timeout=120,
                         TF_CPP_MIN_LOG_LEVEL="0")
  assert out.stderr.count("InitializeLog") >= 1 and "cuInit" in out.stderr


@pytest.mark.slow
def test_demo_with_documented_small_arguments_prints_no_tensorflow_line(
    tmp_path, shared_data):
  # The smoke run of sbp_tf.demo's docstring, CPU machine, user's default env.
  out = user_testlib.run(
      ["-m", "sbp_tf.demo", "--dataset=fashion_mnist", "--depth=8",
       "--width_multiplier=0.25", "--train_examples=128",
       "--test_examples=128", "--epochs=1", f"--data_dir={shared_data}"],
      cwd=tmp_path, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  assert "SBP-SR (stable)" in out.stdout
  assert user_testlib.tf_log_lines(out.stderr) == [], out.stderr[-3000:]
