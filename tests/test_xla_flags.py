"""XLA CPU flags set before JAX starts: never override the user's, never pass a flag jaxlib does not know."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bonebayes import inference
from bonebayes.inference import NO_YNN_FROM_JAXLIB, configure_xla_cpu

YNN = "--xla_cpu_experimental_ynn_fusion_type="
EIGEN = "--xla_cpu_multi_thread_eigen=false"


@pytest.fixture
def no_jax(monkeypatch):
    """Pretend JAX has not started yet (the flags only matter then)."""
    monkeypatch.delitem(sys.modules, "jax", raising=False)
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    return monkeypatch


def test_flags_added_for_a_recent_jaxlib(no_jax):
    no_jax.setattr(inference, "_jaxlib_version", lambda: NO_YNN_FROM_JAXLIB + (2,))
    configure_xla_cpu()
    assert os.environ["XLA_FLAGS"].split() == [EIGEN, YNN]


def test_ynn_flag_not_passed_to_an_older_jaxlib(no_jax):
    no_jax.setattr(inference, "_jaxlib_version", lambda: (0, 4, 30))
    configure_xla_cpu(one_thread_per_chain=False)
    assert "XLA_FLAGS" not in os.environ
    configure_xla_cpu()
    assert os.environ["XLA_FLAGS"] == EIGEN


def test_user_flags_are_kept_and_not_overridden(no_jax):
    no_jax.setattr(inference, "_jaxlib_version", lambda: NO_YNN_FROM_JAXLIB)
    user = "--xla_cpu_multi_thread_eigen=true --xla_cpu_experimental_ynn_fusion_type=elementwise"
    no_jax.setenv("XLA_FLAGS", user)
    configure_xla_cpu()
    assert os.environ["XLA_FLAGS"] == user


def test_nothing_changes_once_jax_has_started(monkeypatch):
    import jax  # noqa: F401 - JAX started: its flags are parsed already

    monkeypatch.setenv("XLA_FLAGS", "")
    configure_xla_cpu()
    assert os.environ["XLA_FLAGS"] == ""


def test_installed_jaxlib_accepts_the_flags():
    """XLA aborts the process on an unknown flag: run JAX with exactly what bonebayes sets."""
    code = ("import os; from bonebayes.inference import configure_xla_cpu; configure_xla_cpu(); "
            "import jax; print(float(jax.numpy.ones(3).sum())); print(os.environ.get('XLA_FLAGS', ''))")
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.split("\n")
    assert lines[0] == "3.0"
    assert EIGEN in lines[1]
    assert (YNN in lines[1]) == (inference._jaxlib_version() >= NO_YNN_FROM_JAXLIB)


def test_jaxlib_version_parses_release_strings(monkeypatch):
    import importlib.metadata as md

    monkeypatch.setattr(md, "version", lambda name: "0.10.2.dev20260101")
    assert inference._jaxlib_version() == (0, 10, 2)
    monkeypatch.setattr(md, "version", lambda name: "0.9rc1")
    assert inference._jaxlib_version() == (0, 9)


def test_ynn_fusions_can_be_kept_for_benchmarks(no_jax):
    no_jax.setattr(inference, "_jaxlib_version", lambda: NO_YNN_FROM_JAXLIB)
    no_jax.setenv("BONEBAYES_XLA_YNN", "1")
    configure_xla_cpu()
    assert os.environ["XLA_FLAGS"] == EIGEN
