"""The portfolio-margin kernel sharded over 8 host CPU devices equals the single-device result.

Runs in a subprocess because XLA_FLAGS must be set before JAX initialises its backend.
"""
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import jax, numpy as np
    import margin
    from jax.sharding import Mesh
    assert len(jax.devices()) == 8, jax.devices()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1003, 12)).astype(np.float32)      # not a multiple of 8: exercises padding
    lm = rng.normal(size=(12, 16)).astype(np.float32)
    add = rng.uniform(0, 1, 1003).astype(np.float32)
    one = np.asarray(margin.portfolio_margin(x, lm, add))
    mesh = Mesh(np.asarray(jax.devices()), ("accounts",))
    sh = margin.sharded_portfolio_margin(x, lm, add, mesh=mesh)
    ref = margin.portfolio_margin_reference(x, lm, add)
    assert np.array_equal(np.asarray(sh), one), np.abs(np.asarray(sh) - one).max()
    assert np.allclose(one, ref, rtol=1e-5, atol=1e-5)
    # float64 too, and the default mesh
    sh64 = margin.sharded_portfolio_margin(x, lm, add, dtype=np.float64)
    assert np.allclose(np.asarray(sh64), ref, rtol=1e-12, atol=1e-12)
    print("OK", len(jax.devices()))
""")


def test_sharded_equals_single_device():
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
    env["JAX_PLATFORMS"] = "cpu"
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "OK 8" in out.stdout
