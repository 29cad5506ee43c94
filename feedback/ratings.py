"""Ratings from pairwise outcomes: online Elo, Bradley-Terry with bootstrap intervals, win rates.

Used at two levels: model versions (the leaderboard) and completions within a prompt. Outcomes are
arrays of (a_idx, b_idx, outcome) with outcome 1 = a won, 0 = b won, 0.5 = tie, the Chatbot Arena
convention (Chiang et al. 2024, "Chatbot Arena", section 5). Bradley-Terry sees judgments only as
counts of distinct (first, second, outcome) cells, which is what lets 1,000 bootstrap rounds over a
million judgments run in under a second on two cores (benchmarks/ratings_bootstrap.py).

Strengths are natural log-odds (P(i beats j) = sigmoid(s_i - s_j)); `to_elo` turns them into Elo
points: rating = initial + scale / ln(base) * (s - anchor).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import scipy.optimize
import scipy.sparse
import scipy.stats
from scipy.sparse.csgraph import connected_components
from scipy.special import expit, gammaln

A_WINS, TIE, B_WINS = 1.0, 0.5, 0.0

# Rounds fitted together in one block: (block x pairs) float64 arrays stay in cache.
_ROUND_BLOCK = 32
# Chord steps before a bootstrap round is handed to damped Newton (see _ChordFit).
_MAX_CHORD_STEPS = 50
# Counts (cells x rounds) drawn at once at most: more rounds are drawn and fitted in chunks.
_MAX_DRAWS = 1 << 24
# Cells sampled together in one block (cells are sorted by expected count, so a block's Poisson
# tables have similar widths).
_CELL_BLOCK = 128


@dataclass(frozen=True)
class EloScale:
    """How strengths are shown as Elo points: `scale` points = a factor `base` in the odds."""

    scale: float = 400.0
    base: float = 10.0
    initial: float = 1000.0

    @property
    def points_per_unit(self) -> float:
        """Elo points per unit of natural log-odds (about 173.7 for scale 400, base 10)."""
        return self.scale / math.log(self.base)


def elo_ratings(
    a_idx: Sequence[int] | np.ndarray,
    b_idx: Sequence[int] | np.ndarray,
    outcome: Sequence[float] | np.ndarray,
    n_players: int,
    *,
    k: float = 4.0,
    scale: EloScale = EloScale(),  # noqa: B008 - frozen, so a shared default is safe
    start: Sequence[float] | np.ndarray | None = None,
) -> np.ndarray:
    """Online Elo in judgment order; a tie counts half a win for each side.

    Chatbot Arena's `compute_online_elo` (K=4, scale 400, base 10, initial 1000). Order matters:
    pass judgments sorted by time. `start` continues from the ratings after earlier judgments
    (each player's, default scale.initial), so ratings can be kept up to date a batch at a time.
    """
    a, b, o = _validated_outcomes(a_idx, b_idx, outcome, n_players)
    if start is None:
        ratings = [float(scale.initial)] * n_players
    elif len(start) != n_players:
        raise ValueError(f"start has {len(start)} ratings for {n_players} players")
    else:
        ratings = [float(value) for value in start]
    base, span = float(scale.base), float(scale.scale)
    # A plain loop: each update depends on the previous one, and Python floats beat numpy scalars.
    for i, j, s in zip(a.tolist(), b.tolist(), o.tolist(), strict=True):
        expected = 1.0 / (1.0 + base ** ((ratings[j] - ratings[i]) / span))
        delta = k * (s - expected)
        ratings[i] += delta
        ratings[j] -= delta
    return np.asarray(ratings)


@dataclass(frozen=True)
class OutcomeCounts:
    """Judgments aggregated to distinct cells (first, second, outcome), first < second.

    `outcome` is from `first`'s side (1 won, 0.5 tie, 0 lost). Cells are sorted by
    (first, second, outcome); `count` may hold zeros (a bootstrap round that missed a cell).
    """

    n_players: int
    first: np.ndarray
    second: np.ndarray
    outcome: np.ndarray
    count: np.ndarray

    @property
    def total(self) -> int:
        return int(self.count.sum())

    def cells_among(self, players: np.ndarray) -> np.ndarray:
        """Which cells are between two of `players` (a mask over the cells)."""
        inside = np.zeros(self.n_players, dtype=bool)
        inside[players] = True
        return inside[self.first] & inside[self.second]

    def among(self, players: np.ndarray) -> OutcomeCounts:
        """The cells between `players` (sorted indexes), each player renumbered by its place
        there."""
        index = np.full(self.n_players, -1)
        index[players] = np.arange(len(players))
        keep = self.cells_among(players)
        return OutcomeCounts(
            n_players=len(players),
            first=index[self.first[keep]],
            second=index[self.second[keep]],
            outcome=self.outcome[keep],
            count=self.count[keep],
        )

    def with_counts(self, count: np.ndarray) -> OutcomeCounts:
        """The same cells with other counts (e.g. one bootstrap round's)."""
        count = np.asarray(count, dtype=np.int64)
        if count.shape != self.count.shape or (count < 0).any():
            raise ValueError("counts must be non-negative, one per cell")
        return replace(self, count=count)


@dataclass(frozen=True)
class Clusters:
    """Judgments that each made several comparisons (a ranking of k outputs makes up to
    k(k-1)/2), by pattern: `cells[j]` lists the cells of an OutcomeCounts that pattern j adds
    to, once per comparison, and `count[j]` how many judgments made it. Every other comparison
    is a judgment of its own. The bootstrap resamples judgments, so a ranking's comparisons are
    drawn together; drawn apart, as if independent, they give intervals too narrow."""

    cells: tuple[np.ndarray, ...]
    count: np.ndarray

    def among(self, kept: np.ndarray) -> Clusters:
        """The patterns within the cells `kept` (a mask), numbered as OutcomeCounts.among
        numbers them."""
        number = np.cumsum(kept) - 1
        inside = [j for j, cells in enumerate(self.cells) if kept[cells].all()]
        return Clusters(
            tuple(number[self.cells[j]] for j in inside), np.asarray(self.count)[inside]
        )

    def units(self, counts: OutcomeCounts) -> tuple[np.ndarray, scipy.sparse.csr_matrix]:
        """The judgments as units to resample: their counts (each cell's lone comparisons, then
        each pattern), and a (units x cells) matrix of the comparisons each unit makes."""
        n_cells = counts.count.size
        patterns = scipy.sparse.csr_matrix(
            (
                np.ones(sum(c.size for c in self.cells)),
                np.concatenate([*self.cells, np.zeros(0, np.int64)]),
                np.concatenate([[0], np.cumsum([c.size for c in self.cells])]),
            ),
            shape=(len(self.cells), n_cells),
        )
        alone = counts.count - patterns.T @ np.asarray(self.count)
        if (alone < 0).any():
            raise ValueError("the clusters make more comparisons than the counts hold")
        units = np.concatenate([alone, self.count]).astype(np.int64)
        to_cells = scipy.sparse.vstack([scipy.sparse.identity(n_cells), patterns]).tocsr()
        return units, to_cells


def cell_keys(a: np.ndarray, b: np.ndarray, o: np.ndarray, n_players: int) -> np.ndarray:
    """Each comparison's cell as one integer, ordered as (first, second, outcome): the pair from
    its lower index, the outcome from that side, coded 0 (lost), 1 (tie), 2 (won)."""
    code = np.rint(2 * np.where(a < b, o, 1.0 - o)).astype(np.int64)
    return (np.minimum(a, b) * n_players + np.maximum(a, b)) * 3 + code


def count_outcomes(
    a_idx: Sequence[int] | np.ndarray,
    b_idx: Sequence[int] | np.ndarray,
    outcome: Sequence[float] | np.ndarray,
    n_players: int,
) -> OutcomeCounts:
    """Aggregate judgments to counts per (first, second, outcome) cell."""
    a, b, o = _validated_outcomes(a_idx, b_idx, outcome, n_players)
    keys, count = np.unique(cell_keys(a, b, o, n_players), return_counts=True)
    pair, code = np.divmod(keys, 3)
    return OutcomeCounts(
        n_players=n_players,
        first=pair // n_players,
        second=pair % n_players,
        outcome=code / 2.0,
        count=count.astype(np.int64),
    )


def cells_of(
    counts: OutcomeCounts,
    a_idx: Sequence[int] | np.ndarray,
    b_idx: Sequence[int] | np.ndarray,
    outcome: Sequence[float] | np.ndarray,
) -> np.ndarray:
    """The cell of `counts` each comparison (as count_outcomes takes them) falls in."""
    n = counts.n_players
    keys = cell_keys(*_validated_outcomes(a_idx, b_idx, outcome, n), n)
    # The counts' own cells (first < second), in the same order.
    cells = cell_keys(counts.first, counts.second, counts.outcome, n)
    found = np.searchsorted(cells, keys)
    if (found >= cells.size).any() or (cells[np.minimum(found, cells.size - 1)] != keys).any():
        raise ValueError("a comparison falls in no cell of the counts")
    return found


def win_matrix(counts: OutcomeCounts) -> np.ndarray:
    """W[i, j] = wins of i over j, a tie adding 0.5 each way."""
    n = counts.n_players
    wins = np.zeros((n, n))
    np.add.at(wins, (counts.first, counts.second), counts.count * counts.outcome)
    np.add.at(wins, (counts.second, counts.first), counts.count * (1.0 - counts.outcome))
    return wins


def win_rate_matrix(counts: OutcomeCounts) -> np.ndarray:
    """Observed share of wins (ties half) of row over column; NaN where they never met."""
    wins = win_matrix(counts)
    games = wins + wins.T
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(games > 0, wins / games, np.nan)


def predicted_win_rate_matrix(strength: np.ndarray) -> np.ndarray:
    """P[i, j] = sigmoid(s_i - s_j), the Bradley-Terry chance that row beats column."""
    strength = np.asarray(strength, dtype=float)
    return expit(strength[:, None] - strength[None, :])


def to_elo(
    strength: np.ndarray,
    *,
    scale: EloScale = EloScale(),  # noqa: B008 - frozen, so a shared default is safe
    anchor: int | None = None,
) -> np.ndarray:
    """Strengths (natural log-odds) to Elo points; the mean, or player `anchor`, sits at initial.

    Works on one vector or on rows of bootstrap rounds (anchored per round, as FastChat does).
    """
    strength = np.asarray(strength, dtype=float)
    centre = strength.mean(axis=-1, keepdims=True) if anchor is None else strength[..., [anchor]]
    return scale.initial + scale.points_per_unit * (strength - centre)


def strength_shares(strength: np.ndarray) -> np.ndarray:
    """Bradley's worths pi_i = exp(s_i) normalised to sum 1 (a softmax over players)."""
    strength = np.asarray(strength, dtype=float)
    worth = np.exp(strength - strength.max(axis=-1, keepdims=True))
    return worth / worth.sum(axis=-1, keepdims=True)


def expected_win_rate(strength: np.ndarray) -> np.ndarray:
    """Chance of beating an opponent drawn uniformly from the other players."""
    strength = np.asarray(strength, dtype=float)
    n = strength.size
    if n < 2:
        return np.full(n, np.nan)
    p = predicted_win_rate_matrix(strength)
    return (p.sum(axis=1) - 0.5) / (n - 1)


def ranks_from_intervals(
    lower: np.ndarray, upper: np.ndarray, groups: np.ndarray | None = None
) -> np.ndarray:
    """Rank = 1 + the number of players whose lower bound is above this one's upper bound.

    Players whose intervals overlap share ranks (Chatbot Arena's rule). With `groups`
    (comparison_groups), only players of the same group count: between groups the ratings have
    no common scale.
    """
    lower, upper = np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
    above = lower[None, :] > upper[:, None]
    if groups is not None:
        groups = np.asarray(groups)
        above &= groups[None, :] == groups[:, None]
    return 1 + above.sum(axis=1)


def comparison_groups(counts: OutcomeCounts) -> np.ndarray:
    """Each player's group, numbered from 0: players joined by comparisons, directly or through
    others. Nothing relates the ratings of two groups (each sits where the prior or the anchor
    puts it), so they are compared within a group only."""
    n = counts.n_players
    met = scipy.sparse.coo_matrix(
        (np.ones(counts.first.size), (counts.first, counts.second)), shape=(n, n)
    )
    return connected_components(met, directed=False)[1]


class _Pairs:
    """The pair structure of an OutcomeCounts: which cells belong to which compared pair."""

    def __init__(self, counts: OutcomeCounts):
        n = counts.n_players
        key = counts.first * n + counts.second
        is_start = np.r_[True, key[1:] != key[:-1]] if key.size else np.zeros(0, bool)
        cell_pair = np.cumsum(is_start) - 1
        n_pairs = int(is_start.sum())
        self.n_players = n
        self.cell_pair = cell_pair
        self.cell_outcome = counts.outcome
        self.first = counts.first[is_start]
        self.second = counts.second[is_start]
        cells = np.arange(key.size)
        # Cell counts (rounds x cells) @ aggregate = [wins of first, ties half | games] per pair.
        self.aggregate = scipy.sparse.csr_matrix(
            (
                np.r_[counts.outcome, np.ones(key.size)],
                (np.r_[cells, cells], np.r_[cell_pair, n_pairs + cell_pair]),
            ),
            shape=(key.size, 2 * n_pairs),
        )
        pairs = np.arange(n_pairs)
        # Incidence: row p is e_first - e_second, so strength differences are incidence @ s.
        self.incidence = scipy.sparse.csr_matrix(
            (
                np.r_[np.ones(n_pairs), -np.ones(n_pairs)],
                (np.r_[pairs, pairs], np.r_[self.first, self.second]),
            ),
            shape=(n_pairs, n),
        )
        self.incidence_t = self.incidence.T.tocsr()

    def stats(
        self, cell_counts: np.ndarray, cells: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per pair: wins of first (ties half) and games.

        `cell_counts` is (cells,) or (rounds, cells); `cells` names the cell of each column when
        they are not all cells in order.
        """
        aggregate = self.aggregate if cells is None else self.aggregate[cells]
        x = np.asarray(cell_counts, dtype=float)
        both = (aggregate.T @ x.T).T
        n_pairs = self.first.size
        return both[..., :n_pairs], both[..., n_pairs:]

    def differences(self, strength: np.ndarray) -> np.ndarray:
        """s_first - s_second for each pair; strength is (players,) or (players, rounds)."""
        return self.incidence @ strength

    def accumulate(self, per_pair: np.ndarray) -> np.ndarray:
        """Sum per-pair values into players: +value to first, -value to second."""
        return self.incidence_t @ per_pair

    def hessian(self, weight: np.ndarray, l2: float) -> np.ndarray:
        """Incidence' diag(weight) incidence + l2 I, plus 11'/n when l2 = 0 to pin the mean."""
        h = (self.incidence_t @ scipy.sparse.diags(weight) @ self.incidence).toarray()
        n = self.n_players
        if l2 > 0:
            h[np.diag_indices(n)] += l2
        else:
            # The likelihood ignores a common shift; with a mean-zero gradient this keeps the
            # Newton step mean-zero too.
            h += 1.0 / n
        return h


def _negative_log_likelihood(
    diff: np.ndarray, wins: np.ndarray, games: np.ndarray, strength: np.ndarray, l2: float
) -> np.ndarray:
    # -log sigmoid(d) = logaddexp(0, -d); summed over the last axis (pairs).
    nll = wins * np.logaddexp(0.0, -diff) + (games - wins) * np.logaddexp(0.0, diff)
    return nll.sum(axis=-1) + 0.5 * l2 * (strength**2).sum(axis=-1)


def _unbounded_player(
    n: int, first: np.ndarray, second: np.ndarray, forward: np.ndarray, backward: np.ndarray
) -> int | None:
    """Without a prior, finite MLE ratings need every player linked by wins both ways.

    Zermelo (1929), Ford (1957): the graph with an edge i -> j when i beat (or tied) j at least
    once must be strongly connected. Edges are first -> second where `forward`, second -> first
    where `backward`. Returns a player of the smallest strong component, or None if connected.
    """
    edges = scipy.sparse.csr_matrix(
        (
            np.ones(int(forward.sum() + backward.sum())),
            (np.r_[first[forward], second[backward]], np.r_[second[forward], first[backward]]),
        ),
        shape=(n, n),
    )
    n_parts, labels = connected_components(edges, directed=True, connection="strong")
    if n_parts == 1:
        return None
    return int(np.flatnonzero(labels == np.argmin(np.bincount(labels)))[0])


def _unbounded_message(player: int, n: int, has_games: bool) -> str:
    what = "never lost to some players or never beat them" if has_games else "has no judgments"
    return (
        f"Bradley-Terry ratings are unbounded without a prior: player {player} of {n} {what}. "
        "Pass l2 > 0 (e.g. 0.01) or collect judgments that link every player both ways."
    )


def _check_identifiable(counts: OutcomeCounts) -> None:
    played = counts.count > 0
    forward = played & (counts.outcome > 0)
    backward = played & (counts.outcome < 1)
    n = counts.n_players
    player = _unbounded_player(n, counts.first, counts.second, forward, backward)
    if player is not None:
        has_games = np.isin(player, np.r_[counts.first[played], counts.second[played]])
        raise ValueError(_unbounded_message(player, n, bool(has_games)))


def bradley_terry(
    counts: OutcomeCounts,
    *,
    l2: float = 0.0,
    tol: float = 1e-10,
    max_iter: int = 200,
    start: np.ndarray | None = None,
) -> np.ndarray:
    """Maximum-likelihood Bradley-Terry strengths (natural log-odds), ties as half wins.

    `l2` adds a Gaussian prior (penalty l2/2 * |s|^2); with l2 = 0 the strengths have mean 0 and
    a ValueError explains when they do not exist. Damped Newton with an Armijo line search.
    """
    if l2 < 0:
        raise ValueError("l2 must be >= 0")
    if l2 == 0:
        _check_identifiable(counts)
    pairs = _Pairs(counts)
    wins, games = pairs.stats(counts.count)
    strength = np.zeros(counts.n_players) if start is None else np.array(start, dtype=float)
    return _newton(pairs, wins, games, strength, l2, tol, max_iter)


def _newton(
    pairs: _Pairs,
    wins: np.ndarray,
    games: np.ndarray,
    strength: np.ndarray,
    l2: float,
    tol: float,
    max_iter: int,
) -> np.ndarray:
    diff = pairs.differences(strength)
    nll = _negative_log_likelihood(diff, wins, games, strength, l2)
    for _ in range(max_iter):
        p = expit(diff)
        grad = l2 * strength - pairs.accumulate(wins - games * p)
        step = np.linalg.solve(pairs.hessian(games * p * (1.0 - p), l2), -grad)
        slope = grad @ step
        t = 1.0
        while True:
            trial = strength + t * step
            trial_diff = pairs.differences(trial)
            trial_nll = _negative_log_likelihood(trial_diff, wins, games, trial, l2)
            if trial_nll <= nll + 1e-4 * t * slope or t < 1e-10:
                break
            t *= 0.5
        strength, diff, nll = trial, trial_diff, trial_nll
        if np.max(np.abs(t * step), initial=0.0) < tol:
            break
    else:
        raise ValueError(f"Bradley-Terry did not converge in {max_iter} Newton steps")
    if l2 == 0:
        strength = strength - strength.mean()
    return strength


def _poisson_draws(lam: np.ndarray, out: np.ndarray, rng: np.random.Generator) -> None:
    """Fill out[c, :] with Poisson(lam[c]) draws, by inversion of a truncated table.

    The table spans lam +- (10 sd + a margin), leaving out less than 1e-17 of the mass;
    inversion with a guide table (Chen and Asau 1974; Devroye 1986, section III.2.4) needs one
    uniform and about one table lookup a draw, where numpy's Poisson takes about 80 ns a draw.
    """
    sd = np.sqrt(lam)
    lo = np.floor(np.maximum(lam - 10.0 * sd - 5.0, 0.0)).astype(np.int64)
    width = int((np.ceil(lam + 10.0 * sd + 10.0).astype(np.int64) - lo).max()) + 1
    x = lo[:, None] + np.arange(width)
    first = int(lo.min())
    log_factorial = gammaln(np.arange(first, int(x.max()) + 1) + 1.0)
    log_pmf = x * np.log(lam)[:, None] - log_factorial[x - first]
    log_pmf -= log_pmf.max(axis=1, keepdims=True)
    cdf = np.cumsum(np.exp(log_pmf), axis=1)
    cdf /= cdf[:, -1:]
    _invert_cdf(cdf, rng.random(out.shape), lo, out)


def _invert_cdf(cdf: np.ndarray, u: np.ndarray, shift: np.ndarray, out: np.ndarray) -> None:
    """out[c, j] = shift[c] + the smallest x with cdf[c, x] >= u[c, j]; the last cdf column is
    taken as 1. Overwrites u.
    """
    k, m = cdf.shape
    cdf[:, -1] = 1.0
    # A power of two: u * g and cdf * g are then exact, so comparing scaled values is comparing
    # the values, and floor(u * g) < g.
    g = 1 << int(4 * m - 1).bit_length()
    cdf *= g
    # guide[c, i] = #{x : cdf[c, x] * g < i} bounds the answer for every u with floor(u * g) = i
    # from below, and guide[c, i + 1] bounds it from above; column g is the row's last entry.
    bucket = np.minimum(cdf.astype(np.int64) + 1, g)
    bucket += np.arange(k)[:, None] * (g + 1)
    guide = np.bincount(bucket.ravel(), minlength=k * (g + 1)).reshape(k, g + 1)
    guide = np.cumsum(guide, axis=1)
    guide[:, -1] = m - 1
    guide += np.arange(k)[:, None] * m
    flat_guide, flat_cdf, flat_u = guide.ravel(), cdf.ravel(), u.ravel()
    u *= g
    index = u.astype(np.int64)
    index += (np.arange(k) * (g + 1))[:, None]
    x = flat_guide[index]
    flat_x = x.ravel()
    behind = np.flatnonzero(flat_cdf[flat_x] < flat_u)
    if behind.size:
        # The first and last buckets hold the tails' many tiny steps: bisect, don't walk.
        lo = flat_x[behind] + 1
        hi = flat_guide[index.ravel()[behind] + 1]
        target = flat_u[behind]
        while True:
            open_ = np.flatnonzero(lo < hi)
            if not open_.size:
                break
            mid = (lo[open_] + hi[open_]) >> 1
            left = flat_cdf[mid] < target[open_]
            lo[open_] = np.where(left, mid + 1, lo[open_])
            hi[open_] = np.where(left, hi[open_], mid)
        flat_x[behind] = lo
    np.add(x, (shift - np.arange(k) * m)[:, None], out=out, casting="unsafe")


def _categorical_draws(p: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n iid draws of a category index with probabilities p."""
    cdf = np.cumsum(p)[None, :]
    cdf /= cdf[:, -1:]
    out = np.empty((1, n), dtype=np.int64)
    _invert_cdf(cdf, rng.random((1, n)), np.zeros(1, dtype=np.int64), out)
    return out[0]


def _run_blocks(work: Callable[[int], None], blocks: Sequence[int], workers: int | None) -> None:
    """Run work(block) for every block, on a thread pool when more than one worker is asked.

    numpy releases the GIL inside its array loops, so threads share the cores.
    """
    workers = max(1, workers if workers is not None else (os.cpu_count() or 1))
    if workers == 1 or len(blocks) < 2:
        for block in blocks:
            work(block)
        return
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(work, blocks))


@dataclass(frozen=True)
class _BootstrapDraws:
    """Bootstrap rounds as Poisson counts (cells x rounds) plus +-1 events per round block.

    Round r's count of cell cells[i] is poisson[i, r] plus the signs of the events naming
    (r, i); events[b] holds the rounds of block b (_ROUND_BLOCK rounds each) as (round, row,
    sign) arrays. Kept apart so no step touches all cells x rounds more than once.
    """

    cells: np.ndarray
    poisson: np.ndarray
    events: list[tuple[np.ndarray, np.ndarray, np.ndarray]]

    @property
    def rounds(self) -> int:
        return self.poisson.shape[1]

    def counts(self, n_cells: int) -> np.ndarray:
        """Every round's count of every cell of the data, shape (rounds, n_cells)."""
        out = np.zeros((self.rounds, n_cells), dtype=np.int32)
        out[:, self.cells] = self.poisson.T
        for rounds, rows, signs in self.events:
            np.add.at(out, (rounds, self.cells[rows]), signs)
        return out


def _bootstrap_chunks(
    counts: np.ndarray,
    rounds: int,
    seed: int | np.random.SeedSequence | None,
    workers: int | None,
) -> Iterator[tuple[int, _BootstrapDraws]]:
    """(first round, draws) for consecutive chunks of the rounds, at most _MAX_DRAWS counts
    each, so memory stays bounded however many cells and rounds there are. `counts` are the
    judgments per cell (or per unit, see Clusters)."""
    if rounds < 1:
        raise ValueError("need at least one round")
    n_cells = max(int((counts > 0).sum()), 1)
    size = max(_ROUND_BLOCK, _MAX_DRAWS // n_cells // _ROUND_BLOCK * _ROUND_BLOCK)
    starts = range(0, rounds, size)
    root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    for r0, child in zip(starts, root.spawn(len(starts)), strict=True):
        yield r0, _bootstrap_draws(counts, min(size, rounds - r0), child, workers)


def _bootstrap_draws(
    counts: np.ndarray,
    rounds: int,
    seed: np.random.SeedSequence,
    workers: int | None,
) -> _BootstrapDraws:
    """Draw the cell counts of bootstrap rounds.

    Resampling the N judgments with replacement is a Multinomial(N, count / N) draw over cells.
    It is drawn exactly, and faster than numpy's multinomial, by Poissonization (Devroye 1986,
    XI.1): independent Poisson(mu p_k) counts are Multinomial(S, p) given their sum S; adding
    Multinomial(N - S, p) when S < N, or removing S - N of the S draws uniformly at random when
    S > N, makes them Multinomial(N, p) for every S. With mu = N - sqrt(N), about one round in
    six needs a removal and the top-ups are about sqrt(N) draws a round.
    Cells are sorted by count so that each block's Poisson tables have similar widths.
    """
    total = int(counts.sum())
    if rounds < 1 or total == 0:
        raise ValueError("need at least one round and one judgment")
    if total >= 2**31:
        raise ValueError("more than 2**31 judgments: counts would overflow int32")
    live = np.flatnonzero(counts > 0)
    cells = live[np.argsort(counts[live], kind="stable")]
    p = counts[cells] / total
    n_cells = cells.size
    mu = max(total - math.sqrt(total), 0.0)
    cell_blocks = list(range(0, n_cells, _CELL_BLOCK))
    round_blocks = list(range(0, rounds, _ROUND_BLOCK))
    seeds = seed.spawn(len(cell_blocks) + len(round_blocks))
    poisson = np.zeros((n_cells, rounds), dtype=np.int32)
    sums = np.zeros((len(cell_blocks), rounds), dtype=np.int64)
    events: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = [()] * len(round_blocks)  # type: ignore[list-item]

    def poisson_block(b: int) -> None:
        c0 = cell_blocks[b]
        c1 = min(c0 + _CELL_BLOCK, n_cells)
        _poisson_draws(mu * p[c0:c1], poisson[c0:c1], np.random.default_rng(seeds[b]))
        sums[b] = poisson[c0:c1].sum(axis=0, dtype=np.int64)

    def adjust_block(b: int) -> None:
        r0 = round_blocks[b]
        r1 = min(r0 + _ROUND_BLOCK, rounds)
        rng = np.random.default_rng(seeds[len(cell_blocks) + b])
        short = total - sums[:, r0:r1].sum(axis=0)
        missing = np.clip(short, 0, None)
        event_rounds = [np.repeat(np.arange(r0, r1), missing)]
        event_rows = [_categorical_draws(p, int(missing.sum()), rng)]
        for r in r0 + np.flatnonzero(short < 0):
            cumulative = np.cumsum(poisson[:, r], dtype=np.int64)
            dropped = rng.choice(cumulative[-1], size=-short[r - r0], replace=False)
            event_rows.append(np.searchsorted(cumulative, dropped, side="right"))
            event_rounds.append(np.full(dropped.size, r))
        n_added = event_rows[0].size
        rows = np.concatenate(event_rows)
        signs = np.ones(rows.size, dtype=np.int32)
        signs[n_added:] = -1
        events[b] = (np.concatenate(event_rounds), rows, signs)

    if mu > 0:
        _run_blocks(poisson_block, range(len(cell_blocks)), workers)
    _run_blocks(adjust_block, range(len(round_blocks)), workers)
    return _BootstrapDraws(cells, poisson, events)


def sample_bootstrap_counts(
    counts: OutcomeCounts,
    rounds: int,
    *,
    seed: int | np.random.SeedSequence | None = None,
    workers: int | None = None,
) -> np.ndarray:
    """Cell counts of `rounds` bootstrap resamples of the judgments, shape (rounds, cells).

    Each row is an exact Multinomial(N, count / N) draw (see `_bootstrap_draws`); the same
    seed gives the same rounds as `bootstrap_bradley_terry`, whatever `workers` is. Meant for
    checks: the bootstrap itself never holds all rounds' counts of all cells.
    """
    chunks = _bootstrap_chunks(counts.count, rounds, seed, workers)
    return np.concatenate([draws.counts(counts.count.size) for _, draws in chunks])


def fit_bradley_terry_rounds(
    counts: OutcomeCounts,
    round_counts: np.ndarray,
    *,
    l2: float = 0.0,
    start: np.ndarray | None = None,
    tol: float = 1e-5,
    workers: int | None = None,
) -> np.ndarray:
    """Bradley-Terry strengths for many count vectors over the cells of `counts`, all at once.

    Shape (rounds, cells) in, (rounds, players) out, each row as `bradley_terry` would fit it,
    to within `tol` (natural log-odds; 1e-5 is 0.002 Elo points). See `_ChordFit`.
    """
    round_counts = np.asarray(round_counts)
    if round_counts.ndim != 2 or round_counts.shape[1] != counts.count.size:
        raise ValueError("round_counts must have shape (rounds, cells)")
    if start is None:
        start = bradley_terry(counts, l2=l2)
    return _ChordFit(counts, start, l2, tol, workers)(_given_draws(round_counts))


def _given_draws(round_counts: np.ndarray) -> _BootstrapDraws:
    """Rounds' cell counts, shape (rounds, cells), as draws to fit."""
    return _BootstrapDraws(
        cells=np.arange(round_counts.shape[1]),
        poisson=np.ascontiguousarray(round_counts.T, dtype=np.int32),
        events=[
            (np.zeros(0, np.int64),) * 3 for _ in range(0, round_counts.shape[0], _ROUND_BLOCK)
        ],
    )


def _cluster_draws(
    counts: OutcomeCounts,
    clusters: Clusters,
    rounds: int,
    seed: int | np.random.SeedSequence | None,
    workers: int | None,
) -> Iterator[_BootstrapDraws]:
    """Rounds that resample judgments, a ranking's comparisons together: each unit (a lone
    comparison, or a ranking's pattern) drawn as cells are, then spread over its cells."""
    units, to_cells = clusters.units(counts)
    total = int(units.sum())
    spread = to_cells.T.tocsr().astype(np.float32)
    if total > 4 * units.size:  # few kinds of judgment, many of each: draw counts of kinds
        chunks = (
            draws.counts(units.size) for _, draws in _bootstrap_chunks(units, rounds, seed, workers)
        )
    else:  # rankings are mostly one of a kind: draw the judgments themselves
        chunks = _judgment_draws(units, rounds, seed)
    for unit_counts in chunks:
        yield _given_draws(np.rint(spread @ unit_counts.T.astype(np.float32)).T.astype(np.int32))


def _judgment_draws(
    units: np.ndarray, rounds: int, seed: int | np.random.SeedSequence | None
) -> Iterator[np.ndarray]:
    """Unit counts (rounds x units) of rounds that draw the N judgments with replacement: an
    exact Multinomial(N, units / N), at N draws a round rather than one Poisson draw per unit."""
    total = int(units.sum())
    owner = np.repeat(np.arange(units.size), units)  # each judgment's unit
    block = max(1, _MAX_DRAWS // total)
    root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    starts = range(0, rounds, block)
    for r0, child in zip(starts, root.spawn(len(starts)), strict=True):
        n = min(block, rounds - r0)
        drawn = owner[np.random.default_rng(child).integers(0, total, size=(n, total))]
        drawn += (np.arange(n) * units.size)[:, None]
        yield np.bincount(drawn.ravel(), minlength=n * units.size).reshape(n, units.size)


class _ChordFit:
    """Fits bootstrap rounds, warm-started from `start` (the data's fit).

    Chord Newton: every round takes steps with the inverse Hessian of the full data's fit,
    which is each resample's expected Hessian, so on a well-linked comparison graph each step
    shrinks the error about 25 times and 3 or 4 steps reach 1e-5. The first step needs no sigmoid:
    at the start every round shares the win probabilities. Stops when the error left, estimated
    from the shrinking of successive steps, is below `tol` for every strength; a round that
    stops shrinking, or does not settle in `_MAX_CHORD_STEPS`, is refitted alone by Newton.
    """

    def __init__(
        self, counts: OutcomeCounts, start: np.ndarray, l2: float, tol: float, workers: int | None
    ):
        self.counts, self.l2, self.tol, self.workers = counts, l2, tol, workers
        self.start = np.asarray(start, dtype=float)
        self.pairs = pairs = _Pairs(counts)
        self.p0 = expit(pairs.differences(self.start))
        self.wins0, self.games0 = pairs.stats(counts.count)
        weight = self.games0 * self.p0 * (1.0 - self.p0)
        self.inverse_hessian = np.linalg.inv(pairs.hessian(weight, l2))
        self.hub_pairs = _hub_pairs(pairs, self.wins0, self.games0)

    def __call__(self, draws: _BootstrapDraws) -> np.ndarray:
        """Strengths (rounds x players) of the rounds in `draws`."""
        pairs = self.pairs
        # Rows of the Poisson counts to [wins | games] per pair.
        to_pairs = pairs.aggregate[draws.cells].T.tocsr()
        row_pair = pairs.cell_pair[draws.cells]
        row_outcome = pairs.cell_outcome[draws.cells]
        n_pairs = pairs.first.size
        rounds = draws.rounds
        strength = np.empty((rounds, self.counts.n_players))

        def fit_block(b: int) -> None:
            # Pairs x rounds layout: the sparse products then need no copies.
            r0 = b * _ROUND_BLOCK
            r1 = min(r0 + _ROUND_BLOCK, rounds)
            both = to_pairs @ draws.poisson[:, r0:r1]
            event_rounds, event_rows, signs = draws.events[b]
            at = row_pair[event_rows] * (r1 - r0) + (event_rounds - r0)
            length = (r1 - r0) * n_pairs
            wins = both[:n_pairs]
            wins += np.bincount(at, signs * row_outcome[event_rows], length).reshape(n_pairs, -1)
            games = both[n_pairs:]
            games += np.bincount(at, signs, length).reshape(n_pairs, -1)
            strength[r0:r1] = self._fit(wins, games, r0).T

        _run_blocks(fit_block, range(len(draws.events)), self.workers)
        return strength

    def _fit(self, wins: np.ndarray, games: np.ndarray, r0: int) -> np.ndarray:
        pairs, l2, tol = self.pairs, self.l2, self.tol
        if l2 == 0:
            _check_rounds_identifiable(
                pairs, wins, games, self.wins0, self.games0, self.hub_pairs, r0
            )
        n = wins.shape[1]
        s = np.repeat(self.start[:, None], n, axis=1)
        residual = wins - games * self.p0[:, None]
        previous = np.full(n, np.nan)
        for steps in range(1, _MAX_CHORD_STEPS + 1):
            gradient = pairs.accumulate(residual)
            if l2:
                gradient -= l2 * s
            step = self.inverse_hessian @ gradient
            s += step
            size = np.abs(step).max(axis=0)
            # A linear iteration's error after a step is about step * rate / (1 - rate), the
            # rate being the ratio of successive steps; NaN compares False and falls through.
            with np.errstate(invalid="ignore", divide="ignore"):
                rate = size / previous
                left = size * rate / (1 - rate)
            settled = (rate < 0.5) & (left < tol) | (size < tol * 1e-3)
            # Not shrinking after a few steps (or NaN): Newton will have it.
            hopeless = ~(rate < 1) if steps > 3 else ~np.isfinite(size)
            if (settled | hopeless).all():
                break
            previous = size
            residual = _residual(pairs.differences(s), wins, games)
        for r in np.flatnonzero(~settled):
            s[:, r] = _newton(pairs, wins[:, r], games[:, r], self.start.copy(), l2, tol / 100, 200)
        if l2 == 0:
            s -= s.mean(axis=0)
        return s


def _hub_pairs(pairs: _Pairs, wins: np.ndarray, games: np.ndarray) -> np.ndarray | None:
    """The pairs of a hub: a player who both beat and lost to every other player, if any.

    A round that keeps both directions on all of them is strongly connected through the hub,
    which spares the graph search for almost every round of a well-linked leaderboard.
    """
    n = pairs.n_players
    both_ways = (wins > 0) & (games > wins)
    linked = np.bincount(pairs.first[both_ways], minlength=n) + np.bincount(
        pairs.second[both_ways], minlength=n
    )
    hub = int(np.argmax(linked))
    if linked[hub] < n - 1:
        return None
    return np.flatnonzero((pairs.first == hub) | (pairs.second == hub))


def _check_rounds_identifiable(
    pairs: _Pairs,
    wins: np.ndarray,
    games: np.ndarray,
    wins0: np.ndarray,
    games0: np.ndarray,
    hub_pairs: np.ndarray | None,
    r0: int,
) -> None:
    """Raise if a round (column) has no finite MLE: the data's own graph was checked already,
    so only a round that lost a win direction the data has, and its hub, needs a search."""
    lost = ((wins == 0) & (wins0 > 0)[:, None]) | ((games == wins) & (games0 > wins0)[:, None])
    suspect = lost.any(axis=0)
    if hub_pairs is not None:
        hub_wins, hub_games = wins[hub_pairs], games[hub_pairs]
        suspect &= ~((hub_wins > 0) & (hub_games > hub_wins)).all(axis=0)
    for r in np.flatnonzero(suspect):
        forward, backward = wins[:, r] > 0, games[:, r] > wins[:, r]
        player = _unbounded_player(pairs.n_players, pairs.first, pairs.second, forward, backward)
        if player is not None:
            has_games = bool(games[(pairs.first == player) | (pairs.second == player), r].any())
            raise ValueError(
                f"bootstrap round {r0 + r} resampled judgments without finite ratings: "
                + _unbounded_message(player, pairs.n_players, has_games)
            )


def _residual(diff: np.ndarray, wins: np.ndarray, games: np.ndarray) -> np.ndarray:
    """wins - games * sigmoid(diff), in place on diff (the chord step's hot loop)."""
    with np.errstate(over="ignore"):
        np.negative(diff, out=diff)
        np.exp(diff, out=diff)
    diff += 1.0
    np.divide(games, diff, out=diff)
    np.subtract(wins, diff, out=diff)
    return diff


@dataclass(frozen=True)
class BradleyTerryRatings:
    """A leaderboard: point ratings from all judgments, percentile intervals from the bootstrap.

    `strength` is in natural log-odds; `rating`, `lower`, `upper` and `round_ratings` (rounds x
    players) in Elo points; `share` is strength_shares and `win_rate` is expected_win_rate of the
    point strengths.
    """

    strength: np.ndarray
    rating: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    rank: np.ndarray
    share: np.ndarray
    win_rate: np.ndarray
    round_ratings: np.ndarray


def bootstrap_bradley_terry(
    counts: OutcomeCounts,
    *,
    rounds: int = 1000,
    confidence: float = 0.95,
    l2: float = 0.0,
    scale: EloScale = EloScale(),  # noqa: B008 - frozen, so a shared default is safe
    anchor: int | None = None,
    seed: int | np.random.SeedSequence | None = None,
    tol: float = 1e-5,
    workers: int | None = None,
    clusters: Clusters | None = None,
) -> BradleyTerryRatings:
    """Bradley-Terry ratings with bootstrap percentile intervals and interval ranks.

    The point ratings are the fit of all judgments (not a bootstrap average); intervals are the
    (1 - confidence) / 2 and (1 + confidence) / 2 percentiles of the rounds' Elo ratings, each
    round anchored like the point ratings. Each round's fit is within `tol` (natural log-odds;
    1e-5 is 0.002 Elo points, far below the rounds' own spread). Rounds resample judgments:
    those that made several comparisons (`clusters`) are drawn whole.
    """
    if not 0 < confidence < 1:
        raise ValueError("confidence must be between 0 and 1")
    strength = bradley_terry(counts, l2=l2)
    fit = _ChordFit(counts, strength, l2, tol, workers)
    if clusters is not None and clusters.count.size:
        chunks = _cluster_draws(counts, clusters, rounds, seed, workers)
    else:
        chunks = (draws for _, draws in _bootstrap_chunks(counts.count, rounds, seed, workers))
    round_strength = np.concatenate([fit(draws) for draws in chunks])
    round_ratings = to_elo(round_strength, scale=scale, anchor=anchor)
    tail = 100 * (1 - confidence) / 2
    lower, upper = np.percentile(round_ratings, [tail, 100 - tail], axis=0)
    return BradleyTerryRatings(
        strength=strength,
        rating=to_elo(strength, scale=scale, anchor=anchor),
        lower=lower,
        upper=upper,
        rank=ranks_from_intervals(lower, upper, comparison_groups(counts)),
        share=strength_shares(strength),
        win_rate=expected_win_rate(strength),
        round_ratings=round_ratings,
    )


@dataclass(frozen=True)
class WinRate:
    """Share of one side's wins over another (ties half) with a confidence interval."""

    rate: float
    lower: float
    upper: float
    wins: int
    ties: int
    losses: int


def pairwise_win_rate(
    wins: int,
    ties: int,
    losses: int,
    *,
    confidence: float = 0.95,
    method: Literal["wilson", "bootstrap"] = "wilson",
    rounds: int = 2000,
    seed: int | None = None,
    effective_n: float | None = None,
) -> WinRate:
    """Win rate of A over B from head-to-head counts, ties counting half.

    "wilson": the Wilson score interval (Wilson 1927) with the half-counted ties as successes,
    on `effective_n` judgments where given (see effective_judgments);
    "bootstrap": percentiles of the rate over multinomial resamples of the judgments.
    """
    if min(wins, ties, losses) < 0:
        raise ValueError("counts must be non-negative")
    n = wins + ties + losses
    if n == 0:
        return WinRate(math.nan, 0.0, 1.0, wins, ties, losses)
    rate = (wins + 0.5 * ties) / n
    if method == "wilson" and effective_n is not None:
        n = min(float(n), effective_n)
    if method == "wilson":
        z = scipy.stats.norm.ppf(0.5 + confidence / 2)
        denominator = 1 + z * z / n
        centre = (rate + z * z / (2 * n)) / denominator
        half = z / denominator * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n))
        lower, upper = centre - half, centre + half
    elif method == "bootstrap":
        draws = np.random.default_rng(seed).multinomial(n, [wins / n, ties / n, losses / n], rounds)
        rates = (draws[:, 0] + 0.5 * draws[:, 1]) / n
        tail = 100 * (1 - confidence) / 2
        lower, upper = np.percentile(rates, [tail, 100 - tail])
    else:
        raise ValueError(f"unknown method {method!r}: use 'wilson' or 'bootstrap'")
    return WinRate(rate, max(0.0, float(lower)), min(1.0, float(upper)), wins, ties, losses)


def effective_judgments(per_cluster: Sequence[tuple[int, int, int]]) -> float | None:
    """How many independent judgments (wins, ties, losses) grouped by cluster (a prompt's
    judgments, by several annotators, are alike) are worth: n * the binomial variance of the
    pooled rate / its cluster-robust variance (a ratio estimator's, with the k / (k - 1)
    correction). None where it cannot be told: fewer than two clusters, or a rate of 0 or 1.
    Never more than n: a design effect under 1 is taken for noise."""
    counts = np.array([c for c in per_cluster if sum(c) > 0], dtype=float).reshape(-1, 3)
    k = counts.shape[0]
    n = counts.sum()
    if k < 2:
        return None
    scores = counts[:, 0] + 0.5 * counts[:, 1]
    sizes = counts.sum(axis=1)
    rate = scores.sum() / n
    if not 0.0 < rate < 1.0:
        return None
    robust = k / (k - 1) * np.sum((scores - rate * sizes) ** 2) / n**2
    if robust <= 0:
        return float(n)
    return float(min(n, rate * (1 - rate) / robust))


def style_feature_difference(
    features_a: np.ndarray, features_b: np.ndarray, *, standardize: bool = True
) -> np.ndarray:
    """Style covariates for `bradley_terry_with_covariates`: (a - b) / (a + b) per feature.

    Features are non-negative counts per completion (tokens, headers, list items, bold spans),
    Chatbot Arena's style control (Li et al. 2024, "Does style matter?"); 0 where both are 0.
    Standardised to unit variance so coefficients compare across features.
    """
    a, b = np.asarray(features_a, dtype=float), np.asarray(features_b, dtype=float)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError("features must be two (judgments, features) arrays of the same shape")
    with np.errstate(invalid="ignore", divide="ignore"):
        diff = np.where(a + b > 0, (a - b) / (a + b), 0.0)
    return standardized(diff) if standardize else diff


def standardized(columns: np.ndarray) -> np.ndarray:
    """Each column centred and scaled to unit variance (a constant one left at zero)."""
    sd = columns.std(axis=0)
    return (columns - columns.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


@dataclass(frozen=True)
class StyleControlledStrengths:
    """Strengths with style held fixed, and the log-odds effect of each style covariate."""

    strength: np.ndarray
    coefficients: np.ndarray


def bradley_terry_with_covariates(
    a_idx: Sequence[int] | np.ndarray,
    b_idx: Sequence[int] | np.ndarray,
    outcome: Sequence[float] | np.ndarray,
    covariates: np.ndarray,
    n_players: int,
    *,
    l2: float = 0.0,
    tol: float = 1e-9,
    max_iter: int = 100,
) -> StyleControlledStrengths:
    """Bradley-Terry with per-judgment covariates: logit P(a wins) = s_a - s_b + beta . x.

    Ties are half wins (target 0.5). Fitted by Newton's method on per-judgment rows; the
    strengths are pinned to mean 0 (a penalty on their sum, which the likelihood ignores).
    """
    a, b, o = _validated_outcomes(a_idx, b_idx, outcome, n_players)
    x = np.asarray(covariates, dtype=float)
    if x.ndim != 2 or x.shape[0] != a.size:
        raise ValueError("covariates must have shape (judgments, features)")
    m, n_features = n_players, x.shape[1]
    penalty = np.r_[np.full(m, l2), np.zeros(n_features)]
    mean_pin = np.r_[np.ones(m), np.zeros(n_features)]
    pair = a * m + b

    def logits(theta: np.ndarray) -> np.ndarray:
        return theta[a] - theta[b] + x @ theta[m:]

    def objective(theta: np.ndarray) -> float:
        z = logits(theta)
        nll = o @ np.logaddexp(0.0, -z) + (1 - o) @ np.logaddexp(0.0, z)
        return nll + 0.5 * penalty @ theta**2 + 0.5 * (mean_pin @ theta) ** 2

    def per_player(values: np.ndarray) -> np.ndarray:
        """The sum over judgments of value * (e_a - e_b): a's row of the design is +1, b's -1."""
        return np.bincount(a, values, m) - np.bincount(b, values, m)

    # Damped Newton, as for plain Bradley-Terry: the Hessian is only players + features wide.
    # (scipy's Newton-CG stopped with "precision loss" on a million judgments: its line search
    # cannot see a decrease in a negative log-likelihood of 700,000.) Its blocks are sums over
    # judgments gathered by player and by pair of players (bincount), not products of a sparse
    # judgments-by-players matrix: a million judgments fit in a fifth of the time.
    theta = np.zeros(m + n_features)
    value = objective(theta)
    diagonal = np.arange(m)
    for _ in range(max_iter):
        p = expit(logits(theta))
        residual, weight = p - o, p * (1 - p)
        grad = np.r_[per_player(residual), x.T @ residual]
        grad += penalty * theta + (mean_pin @ theta) * mean_pin
        met = np.bincount(pair, weight, m * m).reshape(m, m)  # weight of each (a, b) meeting
        hessian = np.empty((m + n_features, m + n_features))
        hessian[:m, :m] = -(met + met.T)
        hessian[diagonal, diagonal] = np.bincount(a, weight, m) + np.bincount(b, weight, m)
        weighted = weight[:, None] * x
        by_feature = np.array([per_player(column) for column in weighted.T])
        hessian[:m, m:] = by_feature.reshape(n_features, m).T
        hessian[m:, :m] = hessian[:m, m:].T
        hessian[m:, m:] = x.T @ weighted
        hessian += np.diag(penalty) + np.outer(mean_pin, mean_pin)
        step = np.linalg.lstsq(hessian, -grad, rcond=None)[0]
        slope, t = grad @ step, 1.0
        while True:
            trial = theta + t * step
            trial_value = objective(trial)
            if trial_value <= value + 1e-4 * t * slope or t < 1e-10:
                break
            t *= 0.5
        theta, value = trial, trial_value
        if np.max(np.abs(t * step), initial=0.0) < tol:
            break
    else:
        raise ValueError(f"style-controlled Bradley-Terry did not converge in {max_iter} steps")
    return StyleControlledStrengths(theta[:n_players], theta[n_players:])


def _validated_outcomes(
    a_idx: Sequence[int] | np.ndarray,
    b_idx: Sequence[int] | np.ndarray,
    outcome: Sequence[float] | np.ndarray,
    n_players: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a = np.asarray(a_idx, dtype=np.int64).ravel()
    b = np.asarray(b_idx, dtype=np.int64).ravel()
    o = np.asarray(outcome, dtype=float).ravel()
    if not (a.size == b.size == o.size):
        raise ValueError("a_idx, b_idx and outcome must have the same length")
    if a.size and (min(a.min(), b.min()) < 0 or max(a.max(), b.max()) >= n_players):
        raise ValueError(f"player indices must be in 0..{n_players - 1}")
    if (a == b).any():
        raise ValueError("a player cannot be compared with itself")
    if not np.isin(o, (A_WINS, TIE, B_WINS)).all():
        raise ValueError("outcome must be 1 (a wins), 0 (b wins) or 0.5 (tie)")
    return a, b, o
