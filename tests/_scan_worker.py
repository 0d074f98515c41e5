"""Subprocess worker for tests/test_scan_stream.py (and the toy scan both sides use).

    python tests/_scan_worker.py sharded OUT.npz          # 4 host devices (XLA_FLAGS set by caller)
    python tests/_scan_worker.py slow STORE DELAY         # prints "CHUNK k" after each chunk
    python tests/_scan_worker.py dist STORE OUT.npz PORT PROCESS_ID

The toy scan: per hypothesis, the maximum-likelihood signal strength μ̂ ≥ 0 of a 3-bin Poisson
counting experiment ν = μ s + b, found by a projected Newton loop in ``lax.while_loop``.
"""

from __future__ import annotations

import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

N_OBS = np.array([12.0, 30.0, 7.0])
BKG = np.array([10.0, 25.0, 8.0])


def hypotheses(h: int):
    """{"mass": [H], "signal": [H, 3]}: a signal template that moves with the mass."""
    mass = np.linspace(1.0, 4.0, h)
    centres = np.array([1.0, 2.5, 4.0])
    signal = 5.0 * np.exp(-0.5 * (mass[:, None] - centres) ** 2)
    return {"mass": mass, "signal": signal}


def fit_one(hyp):
    """μ̂ = argmin_{μ≥0} 2NLL(μ), 2NLL = 2 Σ (ν − n log ν), by Newton steps on μ."""
    s = hyp["signal"]

    def grad_hess(mu):
        nu = mu * s + BKG
        return 2.0 * jnp.sum(s - N_OBS * s / nu), 2.0 * jnp.sum(N_OBS * s**2 / nu**2)

    def body(state):
        mu, _, it = state
        g, h = grad_hess(mu)
        new = jnp.maximum(mu - g / h, 0.0)
        return new, jnp.abs(new - mu), it + 1

    mu, step, it = jax.lax.while_loop(
        lambda st: (st[1] > 1e-12) & (st[2] < 50), body, (jnp.asarray(1.0), jnp.inf, 0)
    )
    nu = mu * s + BKG
    return {
        "mu_hat": mu,
        "twice_nll": 2.0 * jnp.sum(nu - N_OBS * jnp.log(nu)),
        "iterations": it.astype(jnp.int32),
        "converged": step <= 1e-12,
        "nu": nu,
    }


scan_fn = jax.vmap(fit_one)


def main(argv):
    import jaxlike  # noqa: F401  (float64)
    from jaxlike.scan import Progress, choose_chunk_size, run_scan, shard_batch

    mode = argv[0]
    if mode == "sharded":
        assert jax.device_count() == 4, jax.devices()
        seen = []

        def fn(batch):
            jax.debug.inspect_array_sharding(batch["signal"], callback=seen.append)
            out = scan_fn(batch)
            jax.debug.inspect_array_sharding(out["mu_hat"], callback=seen.append)
            return out

        hyps = hypotheses(23)
        out = run_scan(fn, hyps, chunk_size=6, progress=False)  # 6 -> 8 rows, 2 per device
        assert len(seen) == 2 and all(len(s.device_set) == 4 for s in seen), seen
        assert all(not s.is_fully_replicated for s in seen), seen
        placed = shard_batch(jax.tree.map(lambda a: a[:8], hyps))
        assert [x.data.shape for x in placed["signal"].addressable_shards] == [(2, 3)] * 4
        assert choose_chunk_size(scan_fn, hyps, 10**6) % 4 == 0
        np.savez(argv[1], **out)
    elif mode == "slow":
        delay = float(argv[2])

        class Marker(Progress):
            def update(self, n):
                super().update(n)
                print(f"CHUNK {self.computed}", flush=True)
                time.sleep(delay)

        run_scan(
            scan_fn,
            hypotheses(int(argv[3]) if len(argv) > 3 else 40),
            store=argv[1],
            chunk_size=int(argv[4]) if len(argv) > 4 else 4,
            resume=True,
            config={"toy": 1},
            model_digest="toy",
            progress=Marker(enabled=False),
        )
    elif mode == "dist":
        from jaxlike.scan import initialize_distributed

        store, out_path, port, pid = argv[1], argv[2], argv[3], int(argv[4])
        index, count = initialize_distributed(f"localhost:{port}", 2, pid)
        assert (index, count) == (pid, 2) and len(jax.local_devices()) == 1
        kw = {"chunk_size": 3, "config": {"toy": 1}, "model_digest": "toy", "progress": False}
        with_store = run_scan(scan_fn, hypotheses(23), store=store, **kw)
        in_memory = run_scan(scan_fn, hypotheses(23), **kw)
        np.savez(out_path, **with_store, **{f"mem_{k}": v for k, v in in_memory.items()})
        jax.distributed.shutdown()
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main(sys.argv[1:])
