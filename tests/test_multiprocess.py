"""Two JAX processes on localhost train one sharded model and agree with a single process.

Each worker is this file run as a script (``python tests/test_multiprocess.py WORKER ...``): it
starts JAX with 2 CPU devices, joins a 2-process job over ``jax.distributed`` (gloo CPU
collectives), builds one global 4-device mesh, and trains a row-sharded lasso model with
``l1optax.prox_adam`` and ``l1optax.with_l1(optax.sgd(...))``. The reference is the same script
in one process with 4 CPU devices. Every subprocess is killed when the test ends, whatever happens.
"""

from __future__ import annotations

import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

STEPS = 8
LR = 0.05
LAM = 0.05
TIMEOUT_S = 90  # per try


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(args: list[str], devices: int) -> subprocess.Popen:
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env["JAX_PLATFORMS"] = "cpu"
    env.pop("JAX_ENABLE_X64", None)
    return subprocess.Popen(
        [sys.executable, str(pathlib.Path(__file__).resolve()), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        text=True,
    )


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=10)
    if proc.stdout is not None:  # a worker killed before communicate() still holds its pipe
        proc.stdout.close()


def _run_all(procs: list[subprocess.Popen]) -> list[str]:
    """Waits for every process (bounded); kills them all on a timeout or a failure."""
    deadline = time.monotonic() + TIMEOUT_S
    outputs = []
    try:
        for proc in procs:
            remaining = max(deadline - time.monotonic(), 1)
            out, _ = proc.communicate(timeout=remaining)
            outputs.append(out)
            assert proc.returncode == 0, f"worker failed (rc {proc.returncode}):\n{out[-4000:]}"
    finally:
        for proc in procs:
            _kill(proc)
    return outputs


def _run_job(multi: pathlib.Path, single: pathlib.Path) -> list[str]:
    port = _free_port()
    procs = [
        _spawn(["worker", str(i), "2", f"127.0.0.1:{port}", str(multi)], devices=2)
        for i in range(2)
    ]
    procs.append(_spawn(["worker", "0", "1", "-", str(single)], devices=4))
    return _run_all(procs)


# about 10 s (three fresh JAX processes): in the default run, as multi-host is a promise
def test_two_processes_match_one_process_on_four_devices(tmp_path):
    multi = tmp_path / "multi.npz"
    single = tmp_path / "single.npz"
    try:
        outputs = _run_job(multi, single)
    except subprocess.TimeoutExpired:
        # gloo's CPU collectives can stall for good when the box is oversubscribed (2 cores,
        # the suite's workers and 3 busy processes: 1 stall in 3 runs, each run alone ~4 s):
        # one more try on a new port; a second stall or any wrong number still fails
        outputs = _run_job(multi, single)
    got, want = np.load(multi), np.load(single)
    assert sorted(got.files) == sorted(want.files) == ["prox_adam", "with_l1"]
    for name in want.files:
        np.testing.assert_allclose(got[name], want[name], rtol=0, atol=1e-6, err_msg=name)
        np.testing.assert_array_equal(got[name] == 0, want[name] == 0, err_msg=name)
        # the penalty did something: some exact zeros, and not all of them
        assert 0 < np.count_nonzero(want[name] == 0) < want[name].size, name
    assert "process_count=2 devices=4" in outputs[0]
    assert "process_count=1 devices=4" in outputs[2]


# ------------------------------------------------------------------------------------------------
# the worker
# ------------------------------------------------------------------------------------------------


def _worker(process_id: int, num_processes: int, coordinator: str, out_path: str) -> None:
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if num_processes > 1:
        jax.distributed.initialize(
            coordinator_address=coordinator,
            num_processes=num_processes,
            process_id=process_id,
            initialization_timeout=60,
        )
    import jax.numpy as jnp
    import optax
    from jax.experimental import multihost_utils
    from jax.sharding import AxisType, NamedSharding
    from jax.sharding import PartitionSpec as P

    import l1optax

    print(f"process_count={jax.process_count()} devices={jax.device_count()}", flush=True)
    assert jax.device_count() == 4
    mesh = jax.make_mesh((4,), ("d",), axis_types=(AxisType.Auto,), devices=jax.devices())
    rows = NamedSharding(mesh, P("d", None))  # w: (8, 3), two rows per device
    batch = NamedSharding(mesh, P("d", None))  # X: (32, 8), eight examples per device
    replicated = NamedSharding(mesh, P())

    rng = np.random.default_rng(0)
    X = rng.standard_normal((32, 8)).astype(np.float32)
    w_true = np.zeros((8, 3), np.float32)
    w_true[:3] = rng.standard_normal((3, 3))
    y = (X @ w_true + 0.1 * rng.standard_normal((32, 3))).astype(np.float32)
    w0 = (0.1 * rng.standard_normal((8, 3))).astype(np.float32)

    def put(a, sharding):
        return jax.make_array_from_callback(a.shape, sharding, lambda idx: a[idx])

    X_g, y_g = put(X, batch), put(y, batch)

    def loss(params, X, y):
        return 0.5 * jnp.mean((X @ params["w"] - y) ** 2)

    results = {}
    for name, tx in (
        ("prox_adam", l1optax.prox_adam(LR, LAM)),
        ("with_l1", l1optax.with_l1(optax.sgd(LR), LAM, learning_rate=LR)),
    ):
        params = {"w": put(w0, rows)}
        state = jax.jit(tx.init)(params)

        @jax.jit
        def step(params, state, X, y, tx=tx):
            grads = jax.grad(loss)(params, X, y)
            updates, state = tx.update(grads, state, params)
            return optax.apply_updates(params, updates), state

        for _ in range(STEPS):
            params, state = step(params, state, X_g, y_g)
        assert params["w"].sharding.is_equivalent_to(rows, 2), params["w"].sharding
        w = jax.jit(lambda a: a, out_shardings=replicated)(params["w"])
        results[name] = np.asarray(multihost_utils.process_allgather(w, tiled=True))
    if process_id == 0:
        np.savez(out_path, **results)
    if num_processes > 1:
        multihost_utils.sync_global_devices("done")
        jax.distributed.shutdown()


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "worker":
        _worker(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5])
    else:
        pytest.main([__file__, "-q"])
