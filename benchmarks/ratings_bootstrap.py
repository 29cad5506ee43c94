"""Benchmark: Bradley-Terry with 1,000 bootstrap rounds over a million judgments.

    .venv/bin/python benchmarks/ratings_bootstrap.py [--judgments 1000000] [--versions 100]
        [--rounds 1000] [--workers N] [--repeat 3] [--check-rounds 20] [--rankings 100000]

Prints the time to count the judgments, to fit them once, and to run the whole bootstrap
(fit + resampling + every round's fit), best of --repeat; then checks that the point ratings are
the full fit, that the batched round fits equal one-by-one Newton fits of the same resamples,
and that the full fit equals a per-judgment logistic regression fitted by scipy.optimize.
With --rankings N, also the bootstrap of N rankings of 4 versions each (Plackett-Luce), which
resamples each ranking's six comparisons together (ratings.Clusters).
Timings depend on what else the machine is running: the load average is printed with them.

OPENBLAS_NUM_THREADS defaults to 1 here, as it should be in worker processes: the bootstrap runs
its own threads, and on a busy machine OpenBLAS's threads turn each 100 x 100 solve from about
a millisecond into tens of milliseconds. Set it explicitly to measure otherwise.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import scipy.optimize  # noqa: E402
import scipy.sparse  # noqa: E402
from scipy.special import expit  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from feedback import ratings  # noqa: E402


def simulate(n_judgments: int, n_versions: int, seed: int):
    """Judgments between uniformly drawn pairs; ties keep each side's expected score."""
    rng = np.random.default_rng(seed)
    strength = rng.normal(0.0, 1.0, n_versions)
    a = rng.integers(0, n_versions, n_judgments)
    b = (a + rng.integers(1, n_versions, n_judgments)) % n_versions
    p = expit(strength[a] - strength[b])
    p_tie = 0.3 * np.minimum(p, 1 - p)
    u = rng.random(n_judgments)
    outcome = np.where(u < p_tie, 0.5, (u < p_tie + p - p_tie / 2).astype(float))
    return a, b, outcome


def best_time(work, repeat: int):
    """Best wall time of `repeat` runs, the CPU time (all threads) of that run, and its result."""
    best, cpu, result = float("inf"), float("nan"), None
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = work()
        wall = time.perf_counter() - start
        if wall < best:
            best, cpu = wall, time.process_time() - start_cpu
    return best, cpu, result


def logistic_regression(a, b, outcome, n_versions: int) -> np.ndarray:
    """Per-judgment logistic regression (version 0 fixed at 0) by scipy's L-BFGS-B."""
    rows = np.arange(a.size)
    design = scipy.sparse.csr_matrix(
        (np.r_[np.ones(a.size), -np.ones(a.size)], (np.r_[rows, rows], np.r_[a, b])),
        shape=(a.size, n_versions),
    )[:, 1:]

    def loss(free):
        z = design @ free
        value = outcome @ np.logaddexp(0, -z) + (1 - outcome) @ np.logaddexp(0, z)
        return value / a.size, design.T @ (expit(z) - outcome) / a.size

    fit = scipy.optimize.minimize(
        loss,
        np.zeros(n_versions - 1),
        jac=True,
        method="L-BFGS-B",
        options={"gtol": 1e-12, "ftol": 1e-15, "maxiter": 10_000},
    )
    full = np.r_[0.0, fit.x]
    return full - full.mean()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--judgments", type=int, default=1_000_000)
    parser.add_argument("--versions", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--check-rounds", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rankings", type=int, default=0, help="also time N ranking judgments")
    args = parser.parse_args()

    print(
        f"{args.judgments:,} judgments, {args.versions} versions, {args.rounds} rounds; "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, "
        f"workers {args.workers or os.cpu_count()}, "
        f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}"
    )
    a, b, outcome = simulate(args.judgments, args.versions, args.seed)

    count_s, _, counts = best_time(
        lambda: ratings.count_outcomes(a, b, outcome, args.versions), args.repeat
    )
    print(f"count judgments into {counts.count.size:,} cells: {count_s * 1e3:8.1f} ms")
    fit_s, _, strength = best_time(lambda: ratings.bradley_terry(counts), args.repeat)
    print(f"Bradley-Terry fit of all judgments:       {fit_s * 1e3:8.1f} ms")

    def bootstrap():
        return ratings.bootstrap_bradley_terry(
            counts, rounds=args.rounds, seed=args.seed, workers=args.workers
        )

    boot_s, boot_cpu, board = best_time(bootstrap, args.repeat)
    print(
        f"bootstrap, {args.rounds} rounds (fit + resampling + round fits): "
        f"{boot_s * 1e3:8.1f} ms wall, {boot_cpu * 1e3:.0f} ms CPU"
    )
    draw_s, _, chunks = best_time(
        lambda: list(ratings._bootstrap_chunks(counts.count, args.rounds, args.seed, args.workers)),
        args.repeat,
    )
    fitter = ratings._ChordFit(counts, strength, 0.0, 1e-5, args.workers)
    fits_s, _, _ = best_time(lambda: [fitter(draws) for _, draws in chunks], args.repeat)
    print(f"  of which resampling {draw_s * 1e3:.1f} ms, round fits {fits_s * 1e3:.1f} ms")
    reference = np.random.default_rng(args.seed)
    probabilities = counts.count / counts.total
    numpy_s, _, _ = best_time(lambda: reference.multinomial(counts.total, probabilities, 20), 1)
    print(
        f"  (numpy's multinomial alone would take {numpy_s / 20 * args.rounds * 1e3:.0f} ms "
        f"for {args.rounds} rounds)"
    )

    point_gap = np.abs(board.rating - ratings.to_elo(strength)).max()
    print(f"point ratings vs the full fit: max |diff| {point_gap:.2e} Elo")
    rows = ratings.sample_bootstrap_counts(counts, args.rounds, seed=args.seed)
    checked = np.linspace(0, args.rounds - 1, args.check_rounds).astype(int)
    exact = np.array(
        [ratings.to_elo(ratings.bradley_terry(counts.with_counts(rows[r]))) for r in checked]
    )
    round_gap = np.abs(board.round_ratings[checked] - exact).max()
    print(
        f"{checked.size} bootstrap rounds vs one-by-one Newton fits of the same resamples: "
        f"max |diff| {round_gap:.2e} Elo"
    )
    start = time.perf_counter()
    logistic = logistic_regression(a, b, outcome, args.versions)
    logistic_s = time.perf_counter() - start
    gap = np.abs(ratings.to_elo(logistic) - ratings.to_elo(strength)).max()
    print(
        f"full fit vs scipy L-BFGS-B logistic regression on {args.judgments:,} rows "
        f"({logistic_s:.1f} s): max |diff| {gap:.2e} Elo"
    )
    width = board.upper - board.lower
    print(
        f"95% intervals: median width {np.median(width):.1f} Elo; "
        f"ranks 1..{board.rank.max()} over {args.versions} versions"
    )
    if args.rankings:
        rankings(args)


def rankings(args) -> None:
    """Rankings of 4 of the versions, each a judgment of 6 comparisons drawn whole."""
    rng = np.random.default_rng(args.seed)
    strength = rng.normal(0.0, 1.0, args.versions)
    shown = np.argsort(rng.random((args.rankings, args.versions)), axis=1)[:, :4]
    order = np.take_along_axis(
        shown, np.argsort(-(strength[shown] + rng.gumbel(size=shown.shape)), axis=1), axis=1
    )
    first, second = np.triu_indices(4, k=1)
    a, b = order[:, first].ravel(), order[:, second].ravel()
    outcome = np.ones(a.size)
    counts = ratings.count_outcomes(a, b, outcome, args.versions)
    cells = ratings.cells_of(counts, a, b, outcome).reshape(args.rankings, first.size)
    clusters = ratings.Clusters(tuple(cells), np.ones(args.rankings, dtype=np.int64))
    for name, given in (("comparisons one by one", None), ("rankings whole", clusters)):
        seconds, _, board = best_time(
            lambda given=given: ratings.bootstrap_bradley_terry(
                counts, rounds=args.rounds, seed=args.seed, workers=args.workers, clusters=given
            ),
            args.repeat,
        )
        print(
            f"{args.rankings:,} rankings ({a.size:,} comparisons), {name}: "
            f"{seconds * 1e3:.0f} ms, median 95% width "
            f"{np.median(board.upper - board.lower):.1f} Elo"
        )


if __name__ == "__main__":
    main()
