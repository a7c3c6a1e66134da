"""Scale-out of the solvency prover and verifier over shards, on Ray (or in-process for small books).

Work is split into fixed shards (subtrees of ``params.shard_size`` leaves); the split does not depend on the number
of workers, so the public output is the same for 1 or 100 workers (with a seed-fixed :class:`SeededSecretSource`,
byte for byte: tested). Ray tasks (``num_cpus=1`` each, single-threaded group backend) run pass 1 (commit a shard,
build its subtree) and pass 2 (prove a shard, write its public file, its accounts' inclusion files and its private
openings); the driver holds the account list (ids and fixed-point amounts, ~100 bytes per account) and per-shard summaries;
a committed shard (openings, commitments) stays in Ray's object store between the passes and its proofs are
written by the task that makes them, so no process holds more than a shard's commitments, openings and proofs.
At most ``2 x workers`` tasks are pending (``ray.wait``). ``ray.init(num_cpus=workers)`` starts a local instance
unless ``RAY_ADDRESS`` points at a cluster (then ``ray.init()`` joins it).

Output (``out_dir``): ``public/PUBLIC.json`` (statement, root, top proofs, shard references with SHA-256) and
``public/shards/shard-NNNNNN.json``; ``inclusion/<leaf>-<id>.json`` (one per account, mode 0600: each holds the
account's openings); ``private/openings-shard-NNNNNN.json`` (mode 0600, folder 0700: every opening and salt).
"""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import MalformedProof, StatementError, VerificationFailed
from .protocol import (
    BUNDLE_FORMAT,
    OPENINGS_FORMAT,
    CommittedShard,
    check_top,
    commit_shard,
    inclusion_file,
    inclusion_proof_bytes,
    order_accounts,
    prove_shard,
    prove_top,
    shard_digest,
    top_tree,
    verify_bundle_dict,
)
from .statement import SOLVENCY_VERSION, AccountWitness, SecretSource, SolvencyParams, shard_layout, statement_header

_BACKEND = None


def worker_backend():
    """Per-process single-threaded arkworks backend (one Ray task per core: no nested thread pools)."""
    global _BACKEND
    if _BACKEND is None:
        from ..generators import get_generators
        from ..group import ArkworksBackend
        from .statement import MAX_CHUNK

        _BACKEND = ArkworksBackend(workers=1)
        gens = get_generators(_BACKEND)
        gens.G(64 * MAX_CHUNK)  # derived once per worker process (hash-to-curve), outside the timed passes
        gens.H(64 * MAX_CHUNK)
    return _BACKEND


def _write_private(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, separators=(",", ":"))
    os.chmod(path, 0o600)


def _safe(account_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", account_id)[:64]


def inclusion_name(leaf_index: int, account_id: str) -> str:
    return f"{leaf_index:08d}-{_safe(account_id)}.json"


# -------------------------------------------------------------------------------------------------- the passes
def _pass1(params_json: dict, index: int, ordered: list, height: int, secrets_: SecretSource, backend) -> tuple:
    """(small summary for the driver, the committed shard: stays in the object store until pass 2)."""
    p = SolvencyParams.from_json(params_json)
    sh = commit_shard(p, index, ordered, height, secrets_, backend() if callable(backend) else backend)
    return sh.summary(), sh


def _pass2(params_json: dict, header: dict, sh: CommittedShard, height: int, top_path: list, first_leaf: int,
           secrets_: SecretSource, out_dir: str, backend) -> dict:
    t0 = time.process_time()
    p = SolvencyParams.from_json(params_json)
    be = backend() if callable(backend) else backend
    shard = prove_shard(p, header, sh, height, secrets_, be)
    out = Path(out_dir)
    name = f"shards/shard-{sh.index:06d}.json"
    spath = out / "public" / name
    spath.parent.mkdir(parents=True, exist_ok=True)
    spath.write_text(json.dumps(shard, separators=(",", ":")))
    sizes = []
    for i in range(len(sh.uids)):
        inc = inclusion_file(p, header, sh, i, first_leaf + i, top_path)
        _write_private(out / "inclusion" / inclusion_name(first_leaf + i, sh.ids[i]), inc)
        sizes.append(inclusion_proof_bytes(inc))
    W = p.width
    _write_private(out / "private" / f"openings-shard-{sh.index:06d}.json", {
        "format": OPENINGS_FORMAT, "warning": "PRIVATE: opens every commitment of this shard; never publish",
        "shard": sh.index, "accounts": [
            {"account_id": sh.ids[i], "salt": sh.salts[i].hex(), "uid": sh.uids[i].hex(),
             "values": [str(v) for v in sh.values[i * W:(i + 1) * W]],
             "blindings": [f"{g:064x}" for g in sh.blindings[i * W:(i + 1) * W]]} for i in range(len(sh.uids))]})
    return {"index": sh.index, "file": name, "sha256": shard_digest(shard), "range_proof_bytes":
            sum(len(x) // 2 for x in shard["range_proofs"]), "inclusion_bytes": sizes,
            "cpu_s": sh.cpu_s + time.process_time() - t0}


def _top(params_json: dict, header: dict, summaries: list, secrets_: SecretSource, backend) -> tuple[list, float]:
    t0 = time.process_time()
    p = SolvencyParams.from_json(params_json)
    proofs = prove_top(p, header, summaries, secrets_, backend() if callable(backend) else backend)
    return proofs, time.process_time() - t0


class _Local:
    """In-process executor with the same interface as the Ray one (tests, tiny books)."""

    def __init__(self, backend="arkworks"):
        self.backend = backend

    def map(self, fn: Callable, args: list[tuple], progress: str | None = None, num_returns: int = 1) -> list:
        it = args
        if progress:
            from tqdm import tqdm

            it = tqdm(args, desc=progress, unit="shard", leave=False)
        return [fn(*a, self.backend) for a in it]

    def call(self, fn, *a):
        return fn(*a, self.backend)


class _Ray:
    """Ray tasks, at most 2 x workers pending, results in submission order."""

    def __init__(self, workers: int):
        import ray

        self.ray = ray
        self.workers = max(1, int(workers))
        self._remote: dict = {}

    def _r(self, fn, num_returns: int = 1):
        if (fn, num_returns) not in self._remote:
            self._remote[fn, num_returns] = self.ray.remote(num_cpus=1, num_returns=num_returns)(fn)
        return self._remote[fn, num_returns]

    def map(self, fn: Callable, args: list[tuple], progress: str | None = None, num_returns: int = 1) -> list:
        """Results in order. With ``num_returns=2`` only the first result is fetched; the second stays in the
        object store and is returned as a reference (pass it to a later task: the driver never holds it)."""
        ray, rf = self.ray, self._r(fn, num_returns)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(args), desc=progress, unit="shard", leave=False)
        refs, pending, i = [None] * len(args), [], 0
        limit = 2 * self.workers
        while i < len(args) or pending:
            while i < len(args) and len(pending) < limit:
                refs[i] = rf.remote(*args[i], worker_backend)
                pending.append(refs[i] if num_returns == 1 else refs[i][0])
                i += 1
            done, pending = ray.wait(pending, num_returns=1)
            if bar:
                bar.update(len(done))
        if bar:
            bar.close()
        if num_returns == 1:
            return ray.get(refs)
        return [(ray.get(r[0]),) + tuple(r[1:]) for r in refs]

    def call(self, fn, *a):
        return self.ray.get(self._r(fn).remote(*a, worker_backend))


def ray_init(workers: int) -> bool:
    """Start Ray on ``workers`` local cores, or join ``RAY_ADDRESS``. Returns True if this call started it."""
    import ray

    if ray.is_initialized():
        return False
    if os.environ.get("RAY_ADDRESS"):
        ray.init(include_dashboard=False, log_to_driver=False)
    else:
        ray.init(num_cpus=int(workers), include_dashboard=False, log_to_driver=False)
    return True


# ------------------------------------------------------------------------------------------------------ prover
def prove_solvency(params: SolvencyParams, accounts: Sequence[AccountWitness], out_dir: str | Path, *,
                   workers: int = 1, executor: str = "ray", secrets_: SecretSource | None = None,
                   progress: bool = False, backend="arkworks") -> dict:
    """Prove the solvency statement for ``accounts`` and write the public bundle, the inclusion files and the
    private openings into ``out_dir`` (layout in the module docstring).

    Args:
        params: the public parameters (F, R, prices, P&L, bits, shard size).
        accounts: the accounts in fixed point (any order; duplicate ids are refused).
        workers: Ray CPUs (a local instance is started if Ray is not running and RAY_ADDRESS is unset).
        executor: "ray" or "local" (in-process, sequential).
        secrets_: :class:`SecretSource` (default: fresh secrets) or, in tests only, :class:`SeededSecretSource`.

    Returns: a summary dict (paths, root, sizes, timings incl. prover CPU seconds per account).
    Raises :class:`StatementError` if an account is invalid or a claim is false (e.g. R < E or F too small)."""
    secrets_ = secrets_ or SecretSource()
    out = Path(out_dir)
    (out / "private").mkdir(parents=True, exist_ok=True)
    os.chmod(out / "private", 0o700)
    (out / "inclusion").mkdir(parents=True, exist_ok=True)
    os.chmod(out / "inclusion", 0o700)
    t_wall = time.perf_counter()
    ordered = order_accounts(accounts, secrets_)
    n = len(ordered)
    if n == 0:
        raise StatementError("no accounts to prove")
    k, T = shard_layout(n, params.shard_size)
    size = 1 << k
    pj = params.to_json()
    ex = _Ray(workers) if executor == "ray" else _Local(backend)
    started = ray_init(workers) if executor == "ray" else False
    try:
        t1 = time.perf_counter()
        res1 = ex.map(_pass1, [(pj, t, ordered[t * size:(t + 1) * size], k, secrets_) for t in range(T)],
                      "commit shards" if progress else None, num_returns=2)
        summaries = [r[0] for r in res1]
        states = [r[1] for r in res1]
        del res1
        check_top(params, n, summaries)  # R >= E and F >= every scenario's deficits, before any proving
        from ..group import get_backend

        be = get_backend(backend) if isinstance(backend, str) else backend
        tree = top_tree(be, params, n, [(s["root_enc"], s["root_hash"]) for s in summaries])
        _, renc, rh = tree.root
        header = statement_header(params, n, renc, rh)
        t2 = time.perf_counter()
        args = [(pj, header, states[t], k, tree.path(t), t * size, secrets_, str(out)) for t in range(T)]
        del states
        res2 = ex.map(_pass2, args, "prove shards" if progress else None)
        del args
        top_proofs, top_cpu = ex.call(_top, pj, header, summaries, secrets_)
        t3 = time.perf_counter()
    finally:
        if started:
            import ray

            ray.shutdown()
    bundle = {"format": BUNDLE_FORMAT, "version": SOLVENCY_VERSION, "curve": "BLS12-381-G1", "dst_version": 1,
              "statement": header, "shards": [{"file": r["file"], "sha256": r["sha256"]} for r in res2],
              "top_proofs": top_proofs}
    bpath = out / "public" / "PUBLIC.json"
    bpath.parent.mkdir(parents=True, exist_ok=True)
    bpath.write_text(json.dumps(bundle, indent=1))
    inc_sizes = [s for r in res2 for s in r["inclusion_bytes"]]
    cpu = sum(s["cpu_s"] for s in summaries) + sum(r["cpu_s"] for r in res2) + top_cpu
    E = sum(s["equity"] for s in summaries)
    D = [sum(s["deficit_sums"][d] for s in summaries) for d in range(params.D)]
    return {"public": str(bpath), "inclusion_dir": str(out / "inclusion"), "private_dir": str(out / "private"),
            "accounts": n, "shards": T, "shard_size": size, "root": rh.hex(), "epoch": params.epoch,
            "scenarios": params.S, "insurance_fund": params.insurance_fund, "reserves": params.reserves,
            "total_equity_PRIVATE": E, "deficit_sums_PRIVATE": D,
            "range_proof_bytes": sum(r["range_proof_bytes"] for r in res2) + sum(len(x) // 2 for x in top_proofs),
            "inclusion_proof_bytes_max": max(inc_sizes), "public_bytes": _dir_bytes(out / "public"),
            "wall_s": time.perf_counter() - t_wall, "commit_s": t2 - t1, "prove_s": t3 - t2, "prover_cpu_s": cpu,
            "prover_cpu_s_per_account": cpu / n, "workers": workers, "executor": executor}


def _dir_bytes(d: Path) -> int:
    return sum(f.stat().st_size for f in d.rglob("*") if f.is_file())


# ---------------------------------------------------------------------------------------------------- verifier
def load_bundle(path: str | Path) -> tuple[dict, Callable[[dict], dict]]:
    """Read PUBLIC.json and return (bundle, load_shard) where load_shard reads a referenced shard file (relative
    to the bundle, no path escapes) and checks its SHA-256. Raises OSError / ValueError for unreadable files."""
    path = Path(path)
    bundle = json.loads(path.read_bytes())
    base = path.resolve().parent

    def load_shard(ref: dict) -> dict:
        if not isinstance(ref, dict) or set(ref) != {"file", "sha256"} or not isinstance(ref["file"], str) or \
                not re.fullmatch(r"shards/shard-\d{6}\.json", ref["file"]):
            raise MalformedProof(f"bad shard reference {str(ref)[:80]}")
        try:
            shard = json.loads((base / ref["file"]).read_bytes())
        except (OSError, ValueError) as e:
            raise MalformedProof(f"cannot read shard {ref['file']}: {e}") from None
        if not isinstance(shard, dict) or shard_digest(shard) != ref["sha256"]:
            raise VerificationFailed(f"shard {ref['file']} does not match its SHA-256 in the bundle")
        return shard

    return bundle, load_shard


def _verify_task(header: dict, index: int, ref: dict, bundle_path: str, backend) -> dict:
    """Ray task: read one shard file (digest checked), verify it; return its root and deficit sums (encoded)."""
    from .protocol import parse_header, verify_shard

    p, header = parse_header(header)
    _, load_shard = load_bundle(bundle_path)
    v = verify_shard(p, header, index, load_shard(ref), None, backend() if callable(backend) else backend)
    return {"root_enc": v.root_enc, "root_hash": v.root_hash, "deficit_enc": v.deficit_enc,
            "first_uid": v.first_uid, "last_uid": v.last_uid, "n": v.n}


def verify_solvency_file(path: str | Path, *, backend="arkworks", progress: bool = False, workers: int = 0) -> dict:
    """Verify PUBLIC.json and its shard files; summary dict, or a :class:`ProofError` on rejection.
    ``workers > 0`` verifies the shards as Ray tasks (each reads its own shard file), then the top in the driver;
    the uid order across shards is checked from each shard's first and last uid."""
    bundle, load_shard = load_bundle(path)
    if not workers:
        return verify_bundle_dict(bundle, load_shard=load_shard, backend=backend, progress=progress)
    from ..errors import ProofError
    from ..group import get_backend
    from .protocol import VerifiedShard, check_bundle_layout, verify_top

    try:
        p, header, k, T, refs = check_bundle_layout(bundle)
        n = header["n_leaves"]
        started = ray_init(workers)
        try:
            res = _Ray(workers).map(_verify_task, [(header, t, refs[t], str(Path(path).resolve())) for t in range(T)],
                                    "verify shards" if progress else None)
        finally:
            if started:
                import ray

                ray.shutdown()
        be = get_backend(backend) if isinstance(backend, str) else backend
        done = []
        for t, r in enumerate(res):
            if t and r["first_uid"] <= res[t - 1]["last_uid"]:
                raise VerificationFailed(f"shard {t}: account hashes not strictly increasing across shards")
            done.append(VerifiedShard(be.decode(r["root_enc"], allow_identity=True), r["root_enc"], r["root_hash"],
                                      [be.decode(d, allow_identity=True) for d in r["deficit_enc"]], r["deficit_enc"],
                                      r["first_uid"], r["last_uid"], r["n"]))
        verify_top(p, header, done, bundle["top_proofs"], be)
        return {"venue": p.venue, "epoch": p.epoch, "accounts": n, "scenarios": p.S, "shards": T,
                "insurance_fund": p.insurance_fund, "reserves": p.reserves, "value_scale": p.value_scale,
                "deficit_mode": p.deficit_mode, "root": header["root"]["hash"]}
    except ProofError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as e:
        raise MalformedProof(f"solvency bundle: {type(e).__name__}: {e}") from None


def inline_bundle(path: str | Path) -> dict:
    """PUBLIC.json with every shard loaded inline (digests checked): a single JSON object (tests, small books)."""
    bundle, load_shard = load_bundle(path)
    return {**bundle, "shards": [load_shard(r) for r in bundle["shards"]]}
