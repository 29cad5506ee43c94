"""Elo, Bradley-Terry, the bootstrap and win rates, against plain re-derivations and known values."""

import math

import numpy as np
import pytest
import scipy.optimize
import scipy.stats
from scipy.special import expit

from feedback import ratings


def simulate(strength, n, rng, tie_rate=0.1):
    """n judgments between random pairs of players from Bradley-Terry with ties as half wins.

    A tie comes with probability tie_rate * 2 min(p, 1 - p), so a's expected score is p.
    """
    v = strength.size
    a = rng.integers(0, v, n)
    b = (a + rng.integers(1, v, n)) % v
    p = expit(strength[a] - strength[b])
    p_tie = tie_rate * 2 * np.minimum(p, 1 - p)
    u = rng.random(n)
    return a, b, np.where(u < p_tie, 0.5, (u < p_tie + p - p_tie / 2).astype(float))


def test_elo_equals_a_sequential_loop():
    rng = np.random.default_rng(0)
    a, b, o = simulate(rng.normal(size=6), 500, rng)
    expected = [1200.0] * 6
    for i, j, s in zip(a, b, o, strict=True):
        e_i = 1 / (1 + 2 ** ((expected[j] - expected[i]) / 100))
        expected[i] += 16 * (s - e_i)
        expected[j] += 16 * ((1 - s) - (1 - e_i))

    scale = ratings.EloScale(scale=100, base=2, initial=1200)
    got = ratings.elo_ratings(a, b, o, 6, k=16, scale=scale)

    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)


def test_elo_continued_from_earlier_ratings_equals_one_pass_over_all_judgments():
    rng = np.random.default_rng(1)
    a, b, o = simulate(rng.normal(size=5), 300, rng)
    whole = ratings.elo_ratings(a, b, o, 5)
    first = ratings.elo_ratings(a[:170], b[:170], o[:170], 5)
    assert ratings.elo_ratings(a[170:], b[170:], o[170:], 5, start=first).tolist() == whole.tolist()
    with pytest.raises(ValueError, match="start has 4 ratings for 5 players"):
        ratings.elo_ratings(a, b, o, 5, start=first[:4])


def test_elo_tie_between_equals_moves_nothing_and_a_win_moves_k_over_two():
    assert ratings.elo_ratings([0], [1], [0.5], 2).tolist() == [1000.0, 1000.0]
    assert ratings.elo_ratings([0], [1], [1.0], 2, k=32).tolist() == [1016.0, 984.0]


def test_count_outcomes_canonicalises_pairs_and_outcomes():
    counts = ratings.count_outcomes([2, 0, 0, 1], [0, 2, 2, 0], [1.0, 0.0, 0.5, 0.5], 3)
    cells = list(
        zip(counts.first.tolist(), counts.second.tolist(), counts.outcome.tolist(), strict=True)
    )
    # (2 beat 0) and (0 lost to 2) are one cell seen from player 0's side.
    assert cells == [(0, 1, 0.5), (0, 2, 0.0), (0, 2, 0.5)]
    assert counts.count.tolist() == [1, 2, 1]
    assert counts.total == 4


@pytest.mark.parametrize(
    ("a", "b", "o", "message"),
    [([0], [0], [1.0], "itself"), ([0], [3], [1.0], "0..2"), ([0], [1], [0.7], "outcome")],
)
def test_count_outcomes_refuses_bad_input(a, b, o, message):
    with pytest.raises(ValueError, match=message):
        ratings.count_outcomes(a, b, o, 3)


def test_win_matrix_counts_ties_half_each_way():
    counts = ratings.count_outcomes([0, 0, 1, 2], [1, 1, 0, 0], [1.0, 0.5, 1.0, 0.0], 3)
    wins = ratings.win_matrix(counts)
    np.testing.assert_allclose(wins, [[0, 1.5, 1], [1.5, 0, 0], [0, 0, 0]])
    rates = ratings.win_rate_matrix(counts)
    assert rates[0, 1] == pytest.approx(0.5)
    assert rates[0, 2] == 1.0 and rates[2, 0] == 0.0
    assert np.isnan(rates[1, 2])


def logistic_regression_strengths(a, b, o, n, l2=0.0):
    """Per-judgment logistic regression with player 0 fixed at 0 (plain scipy, no counts)."""
    rows = np.arange(a.size)
    design = np.zeros((a.size, n))
    design[rows, a] += 1.0
    design[rows, b] -= 1.0
    design = design[:, 1:]

    def loss(free):
        z = design @ free
        full = np.r_[0.0, free]
        value = o @ np.logaddexp(0, -z) + (1 - o) @ np.logaddexp(0, z) + 0.5 * l2 * full @ full
        grad = design.T @ (expit(z) - o) + l2 * free
        return value, grad

    fit = scipy.optimize.minimize(
        loss, np.zeros(n - 1), jac=True, method="BFGS", options={"gtol": 1e-10}
    )
    return np.r_[0.0, fit.x]


def test_bradley_terry_equals_logistic_regression():
    rng = np.random.default_rng(1)
    a, b, o = simulate(rng.normal(size=8), 3000, rng, tie_rate=0.2)
    reference = logistic_regression_strengths(a, b, o, 8)

    got = ratings.bradley_terry(ratings.count_outcomes(a, b, o, 8))

    assert got.mean() == pytest.approx(0, abs=1e-12)
    np.testing.assert_allclose(got, reference - reference.mean(), atol=1e-6)


def test_bradley_terry_with_l2_prior_equals_penalised_logistic_regression():
    rng = np.random.default_rng(2)
    a, b, o = simulate(rng.normal(size=5), 60, rng)
    # The prior breaks the shift invariance, so player 0 at 0 is no longer free: fit all.
    n = 5
    rows = np.arange(a.size)
    design = np.zeros((a.size, n))
    design[rows, a] += 1.0
    design[rows, b] -= 1.0

    def loss(s):
        z = design @ s
        value = o @ np.logaddexp(0, -z) + (1 - o) @ np.logaddexp(0, z) + 0.25 * s @ s
        return value, design.T @ (expit(z) - o) + 0.5 * s

    reference = scipy.optimize.minimize(loss, np.zeros(n), jac=True, options={"gtol": 1e-10}).x

    got = ratings.bradley_terry(ratings.count_outcomes(a, b, o, n), l2=0.5)

    np.testing.assert_allclose(got, reference, atol=1e-6)


def test_bradley_terry_without_prior_refuses_a_player_who_never_lost():
    counts = ratings.count_outcomes([0, 0, 1, 2], [1, 2, 2, 1], [1.0, 1.0, 1.0, 1.0], 3)
    with pytest.raises(ValueError, match="l2 > 0"):
        ratings.bradley_terry(counts)
    strengths = ratings.bradley_terry(counts, l2=0.1)
    assert np.isfinite(strengths).all() and strengths.argmax() == 0


def test_two_players_strength_gap_is_the_log_odds_of_the_win_share():
    # 3 wins, 1 tie, 1 loss: a share of 3.5 / 5, so the MLE gap is log(3.5 / 1.5).
    counts = ratings.count_outcomes([0] * 5, [1] * 5, [1, 1, 1, 0.5, 0], 2)
    s = ratings.bradley_terry(counts)
    assert s[0] - s[1] == pytest.approx(math.log(3.5 / 1.5), abs=1e-9)
    elo = ratings.to_elo(s)
    assert elo.mean() == pytest.approx(1000)
    assert elo[0] - elo[1] == pytest.approx(400 * math.log10(3.5 / 1.5), abs=1e-6)
    anchored = ratings.to_elo(s, anchor=1, scale=ratings.EloScale(initial=1500))
    assert anchored[1] == pytest.approx(1500)


def test_shares_and_expected_win_rate_follow_the_strengths():
    s = np.array([0.0, math.log(3.0), -1.0])
    shares = ratings.strength_shares(s)
    assert shares.sum() == pytest.approx(1)
    assert shares[1] / shares[0] == pytest.approx(3)
    rate = ratings.expected_win_rate(s)
    assert rate[1] == pytest.approx((0.75 + expit(math.log(3) + 1)) / 2)
    p = ratings.predicted_win_rate_matrix(s)
    np.testing.assert_allclose(p + p.T, 1)


def test_ranks_from_intervals_count_players_clearly_above():
    lower = np.array([1100, 1050, 900, 880])
    upper = np.array([1200, 1120, 1000, 1060])
    # Player 2's upper (1000) is below 1100 and 1050: rank 3. Player 3 overlaps player 1.
    assert ratings.ranks_from_intervals(lower, upper).tolist() == [1, 1, 3, 2]


def test_players_never_compared_across_groups_are_ranked_within_their_group():
    # 0-1-2 met (0 and 2 through 1); 3 and 4 only met each other.
    counts = ratings.count_outcomes([0, 1, 3, 3], [1, 2, 4, 4], [1, 1, 1, 0.5], 5)
    groups = ratings.comparison_groups(counts)
    assert groups[0] == groups[1] == groups[2] != groups[3] == groups[4]
    lower = np.array([1100, 1000, 900, 1200, 950])
    upper = np.array([1150, 1050, 950, 1300, 1000])
    # Player 4 sits below 0 and 3, but only 3 is in its group.
    assert ratings.ranks_from_intervals(lower, upper).tolist() == [2, 3, 4, 1, 3]
    assert ratings.ranks_from_intervals(lower, upper, groups).tolist() == [1, 2, 3, 1, 2]
    pair = counts.among(np.array([3, 4]))
    assert (pair.n_players, pair.first.tolist(), pair.second.tolist()) == (2, [0, 0], [1, 1])
    assert (pair.outcome.tolist(), pair.count.tolist()) == ([0.5, 1.0], [1, 1])


def test_bootstrap_counts_are_multinomial_resamples():
    counts = ratings.count_outcomes([0, 0, 0, 1, 1], [1, 1, 2, 2, 2], [1, 0, 0.5, 1, 0], 3)
    counts = counts.with_counts(np.array([5000, 3000, 1000, 600, 400]))
    n, p = counts.total, counts.count / counts.total
    rounds = 4000

    draws = ratings.sample_bootstrap_counts(counts, rounds, seed=3)

    assert draws.shape == (rounds, 5)
    assert (draws.sum(axis=1) == n).all()
    se = np.sqrt(n * p * (1 - p) / rounds)
    assert np.all(np.abs(draws.mean(axis=0) - n * p) < 4.5 * se)
    # Multinomial covariance n (diag(p) - p p'): negative off the diagonal, unlike Poisson.
    covariance = n * (np.diag(p) - np.outer(p, p))
    np.testing.assert_allclose(np.cov(draws.T), covariance, rtol=0.1, atol=0.05 * n * p.min())
    # One cell's count against its Binomial(n, p) law.
    values, observed = np.unique(draws[:, 3], return_counts=True)
    edges = np.r_[values[0] - 0.5, (values[1:] + values[:-1]) / 2, values[-1] + 0.5]
    probability = np.diff(scipy.stats.binom.cdf(edges, n, p[3]))
    probability[0] += scipy.stats.binom.cdf(edges[0], n, p[3])
    probability[-1] += scipy.stats.binom.sf(edges[-1], n, p[3])
    grouped = np.add.reduceat(observed, range(0, values.size, 8))
    expected = np.add.reduceat(probability, range(0, values.size, 8)) * rounds
    assert scipy.stats.chisquare(grouped, expected).pvalue > 1e-3


@pytest.mark.parametrize("lam", [0.01, 3.0, 67.0, 5000.0])
def test_table_sampler_draws_the_poisson_law(lam):
    # The inversion behind the bootstrap's Poisson part, tails and bisection included.
    out = np.empty((2, 50000), dtype=np.int32)
    ratings._poisson_draws(np.array([lam, lam]), out, np.random.default_rng(1))
    draws = out.ravel()
    values = np.arange(draws.min(), draws.max() + 1)
    observed = np.bincount(draws - values[0], minlength=values.size)
    expected = scipy.stats.poisson.pmf(values, lam)
    expected[0] += scipy.stats.poisson.cdf(values[0] - 1, lam)
    expected[-1] += scipy.stats.poisson.sf(values[-1], lam)
    # Pool sparse tails so every bin expects at least 5.
    edges = np.flatnonzero(np.diff(np.floor(np.cumsum(expected * draws.size) / 5))) + 1
    edges = edges[edges < values.size]
    pooled_observed = np.add.reduceat(observed, np.r_[0, edges])
    pooled_expected = np.add.reduceat(expected, np.r_[0, edges]) * draws.size
    if pooled_observed.size > 1:
        assert scipy.stats.chisquare(pooled_observed, pooled_expected).pvalue > 1e-3
    assert draws.mean() == pytest.approx(lam, abs=5 * math.sqrt(lam / draws.size))


def test_bootstrap_counts_for_a_handful_of_judgments():
    # N = 3 leaves no room for the Poisson part: every count comes from the exact top-up.
    counts = ratings.count_outcomes([0, 0, 1], [1, 1, 0], [1.0, 0.0, 1.0], 2)
    draws = ratings.sample_bootstrap_counts(counts, 10000, seed=4)
    assert (draws.sum(axis=1) == 3).all()
    # Cell "0 beat 1" holds 1 of 3 judgments and cell "0 lost to 1" 2 of 3.
    loss_share = np.bincount(draws[:, 0], minlength=4) / 10000
    np.testing.assert_allclose(loss_share, scipy.stats.binom.pmf(range(4), 3, 2 / 3), atol=0.02)


def test_bootstrap_is_reproducible_and_independent_of_workers():
    rng = np.random.default_rng(5)
    counts = ratings.count_outcomes(*simulate(rng.normal(size=12), 5000, rng), 12)
    one = ratings.sample_bootstrap_counts(counts, 70, seed=9, workers=1)
    two = ratings.sample_bootstrap_counts(counts, 70, seed=9, workers=2)
    other = ratings.sample_bootstrap_counts(counts, 70, seed=10, workers=2)
    np.testing.assert_array_equal(one, two)
    assert (one != other).any()


def test_batched_round_fits_equal_one_by_one_fits():
    rng = np.random.default_rng(6)
    counts = ratings.count_outcomes(*simulate(rng.normal(size=10), 4000, rng), 10)
    draws = ratings.sample_bootstrap_counts(counts, 40, seed=1)

    batched = ratings.fit_bradley_terry_rounds(counts, draws, tol=1e-9)

    single = np.array([ratings.bradley_terry(counts.with_counts(row)) for row in draws])
    np.testing.assert_allclose(batched, single, atol=1e-8)


def test_batched_round_fits_fall_back_to_newton_on_a_sparse_graph(monkeypatch):
    # Few judgments: resampled Hessians differ a lot, and l2 keeps every round finite.
    rng = np.random.default_rng(7)
    counts = ratings.count_outcomes(*simulate(rng.normal(0, 2, 6), 25, rng), 6)
    draws = ratings.sample_bootstrap_counts(counts, 30, seed=2)
    start = ratings.bradley_terry(counts, l2=0.05)
    newton_fits = []
    newton = ratings._newton
    monkeypatch.setattr(ratings, "_newton", lambda *args: newton_fits.append(1) or newton(*args))

    batched = ratings.fit_bradley_terry_rounds(counts, draws, l2=0.05, start=start, tol=1e-9)

    assert newton_fits  # some rounds did not settle under chord steps
    monkeypatch.undo()
    single = np.array([ratings.bradley_terry(counts.with_counts(row), l2=0.05) for row in draws])
    np.testing.assert_allclose(batched, single, atol=1e-7)


def test_bootstrap_in_chunks_fits_the_rounds_sample_bootstrap_counts_draws(monkeypatch):
    monkeypatch.setattr(ratings, "_MAX_DRAWS", 200)  # 32 rounds a chunk here
    rng = np.random.default_rng(8)
    counts = ratings.count_outcomes(*simulate(rng.normal(size=5), 800, rng), 5)
    board = ratings.bootstrap_bradley_terry(counts, rounds=70, seed=4, tol=1e-9)
    rows = ratings.sample_bootstrap_counts(counts, 70, seed=4)
    exact = [ratings.to_elo(ratings.bradley_terry(counts.with_counts(row))) for row in rows]
    np.testing.assert_allclose(board.round_ratings, exact, atol=1e-5)


def test_bootstrap_without_prior_names_a_round_without_finite_ratings():
    counts = ratings.count_outcomes([0, 1, 0, 2, 1, 2], [1, 0, 2, 0, 2, 1], [1, 1, 1, 1, 1, 1], 3)
    with pytest.raises(ValueError, match="bootstrap round"):
        ratings.bootstrap_bradley_terry(counts, rounds=50, seed=0)


def test_bootstrap_intervals_cover_the_true_ratings():
    rng = np.random.default_rng(11)
    covered = []
    for dataset in range(10):
        truth = rng.normal(0, 0.8, 25)
        counts = ratings.count_outcomes(*simulate(truth, 6000, rng), 25)
        board = ratings.bootstrap_bradley_terry(counts, rounds=300, seed=dataset)
        true_elo = ratings.to_elo(truth)
        covered.extend((board.lower <= true_elo) & (true_elo <= board.upper))
        assert ((board.lower <= board.rating) & (board.rating <= board.upper)).all()
    # Nominal 0.95; the percentile interval from 300 rounds runs a little narrow.
    assert 0.85 <= np.mean(covered) <= 0.99


def simulate_rankings(truth, rankings, size, rng):
    """Plackett-Luce rankings of `size` of the players: (a, b, outcome, ranking) per comparison
    of two places, the better first."""
    a, b, which = [], [], []
    for r in range(rankings):
        shown = rng.choice(truth.size, size, replace=False)
        order = shown[np.argsort(-(truth[shown] + rng.gumbel(size=size)))]
        for i in range(size):
            for j in range(i + 1, size):
                a.append(order[i])
                b.append(order[j])
                which.append(r)
    return np.array(a), np.array(b), np.ones(len(a)), np.array(which)


def test_bootstrap_resamples_rankings_whole_and_covers_the_truth():
    """A ranking's comparisons are not independent judgments: resampled one by one, the
    intervals came out too narrow (covering the truth about 80% of the time at 95%)."""
    rng = np.random.default_rng(21)
    covered, alone_covered, widths, alone_widths = [], [], [], []
    for dataset in range(30):
        truth = rng.normal(0, 0.6, 6)
        a, b, o, which = simulate_rankings(truth, 60, 5, rng)
        counts = ratings.count_outcomes(a, b, o, 6)
        cells = ratings.cells_of(counts, a, b, o)
        clusters = ratings.Clusters(
            tuple(cells[which == r] for r in range(60)), np.ones(60, dtype=np.int64)
        )
        true_elo = ratings.to_elo(truth)
        for kept, width, given in (
            (covered, widths, clusters),
            (alone_covered, alone_widths, None),
        ):
            board = ratings.bootstrap_bradley_terry(
                counts, rounds=200, seed=dataset, clusters=given, l2=0.01
            )
            kept.extend((board.lower <= true_elo) & (true_elo <= board.upper))
            width.append(np.mean(board.upper - board.lower))
    assert 0.88 <= np.mean(covered) <= 0.99
    assert np.mean(alone_covered) < np.mean(covered)
    assert np.mean(widths) > 1.2 * np.mean(alone_widths)
    # Every comparison a lone judgment: the same rounds as without clusters.
    singles = ratings.Clusters((), np.zeros(0, dtype=np.int64))
    one = ratings.bootstrap_bradley_terry(counts, rounds=50, seed=1, clusters=singles)
    two = ratings.bootstrap_bradley_terry(counts, rounds=50, seed=1)
    np.testing.assert_array_equal(one.round_ratings, two.round_ratings)


@pytest.mark.parametrize("repeats", [1, 50])  # many kinds of judgment, or few of each
def test_cluster_rounds_draw_a_rankings_comparisons_together(repeats):
    rng = np.random.default_rng(5)
    a, b, o, which = simulate_rankings(np.array([0.5, 0.0, -0.5, 1.0]), 40, 3, rng)
    a, b, o = np.tile(a, repeats), np.tile(b, repeats), np.tile(o, repeats)
    which = np.concatenate([which + 40 * r for r in range(repeats)])
    extra_a, extra_b = rng.integers(0, 2, 30), rng.integers(2, 4, 30)  # lone pairwise ones
    counts = ratings.count_outcomes(
        np.concatenate([a, extra_a]), np.concatenate([b, extra_b]), np.ones(a.size + 30), 4
    )
    cells = ratings.cells_of(counts, a, b, o)
    patterns: dict[tuple, int] = {}  # the same ranking twice is one pattern, counted twice
    for r in range(40 * repeats):
        key = tuple(sorted(cells[which == r].tolist()))
        patterns[key] = patterns.get(key, 0) + 1
    clusters = ratings.Clusters(tuple(map(np.array, patterns)), np.array(list(patterns.values())))
    rounds = np.concatenate(
        [d.counts(counts.count.size) for d in ratings._cluster_draws(counts, clusters, 400, 1, 1)]
    )
    assert rounds.shape == (400, counts.count.size)
    np.testing.assert_allclose(rounds.mean(axis=0), counts.count, rtol=0.15, atol=1.0)
    # Each round draws as many judgments as there are, a ranking's three comparisons together:
    # its comparisons number the judgments plus two for every ranking drawn, which varies.
    judgments = 40 * repeats + 30
    extra = rounds.sum(axis=1) - judgments
    assert (extra % 2 == 0).all() and extra.std() > 0
    assert extra.mean() / 2 == pytest.approx(40 * repeats, rel=0.05)


def test_clusters_split_the_counts_into_lone_comparisons_and_patterns():
    counts = ratings.count_outcomes([0, 0, 1, 0], [1, 2, 2, 1], [1, 1, 1, 0.5], 3)
    # cells: (0,1,tie) (0,1,won) (0,2,won) (1,2,won); one ranking 0 > 1 > 2 made three of them.
    ranking = ratings.cells_of(counts, [0, 0, 1], [1, 2, 2], [1, 1, 1])
    assert ranking.tolist() == [1, 2, 3]
    units, to_cells = ratings.Clusters((ranking,), np.array([1])).units(counts)
    assert units.tolist() == [1, 0, 0, 0, 1]
    assert to_cells.toarray().tolist() == [
        [1, 0, 0, 0],
        [0, 1, 0, 0],
        [0, 0, 1, 0],
        [0, 0, 0, 1],
        [0, 1, 1, 1],
    ]
    with pytest.raises(ValueError, match="more comparisons"):
        ratings.Clusters((ranking,), np.array([2])).units(counts)
    kept = counts.cells_among(np.array([1, 2]))
    assert ratings.Clusters((ranking,), np.array([1])).among(kept).count.size == 0


def test_bootstrap_reports_the_full_fit_and_consistent_summaries():
    rng = np.random.default_rng(12)
    counts = ratings.count_outcomes(*simulate(np.linspace(-1, 1, 6), 3000, rng), 6)
    board = ratings.bootstrap_bradley_terry(counts, rounds=100, seed=0, anchor=2)

    np.testing.assert_allclose(board.strength, ratings.bradley_terry(counts))
    assert board.rating[2] == pytest.approx(1000)
    np.testing.assert_allclose(board.round_ratings[:, 2], 1000)
    assert board.round_ratings.shape == (100, 6)
    np.testing.assert_array_equal(
        board.rank, ratings.ranks_from_intervals(board.lower, board.upper)
    )
    assert board.share.sum() == pytest.approx(1)
    assert (np.diff(board.win_rate[np.argsort(board.strength)]) > 0).all()


def test_wilson_interval_matches_the_textbook_case():
    # 8 of 10: Wilson 95% interval (0.490, 0.943) (Newcombe 1998, table I method 3).
    rate = ratings.pairwise_win_rate(8, 0, 2)
    assert rate.rate == pytest.approx(0.8)
    assert (rate.lower, rate.upper) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    # Two ties count as one win.
    assert ratings.pairwise_win_rate(7, 2, 1).rate == pytest.approx(0.8)


def test_bootstrap_win_rate_interval_is_near_wilson_for_many_judgments():
    wilson = ratings.pairwise_win_rate(300, 50, 150)
    boot = ratings.pairwise_win_rate(300, 50, 150, method="bootstrap", rounds=4000, seed=0)
    assert boot.rate == wilson.rate
    assert boot.lower == pytest.approx(wilson.lower, abs=0.01)
    assert boot.upper == pytest.approx(wilson.upper, abs=0.01)
    assert math.isnan(ratings.pairwise_win_rate(0, 0, 0).rate)


def test_style_control_recovers_a_style_effect_and_the_strengths():
    rng = np.random.default_rng(13)
    truth = np.array([0.5, 0.0, -0.5, 0.2])
    n = 20000
    a = rng.integers(0, 4, n)
    b = (a + rng.integers(1, 4, n)) % 4
    length_a, length_b = rng.integers(50, 500, n), rng.integers(50, 500, n)
    style = ratings.style_feature_difference(length_a[:, None], length_b[:, None])
    o = (rng.random(n) < expit(truth[a] - truth[b] + 0.7 * style[:, 0])).astype(float)

    fit = ratings.bradley_terry_with_covariates(a, b, o, style, 4)

    assert fit.coefficients[0] == pytest.approx(0.7, abs=0.06)
    np.testing.assert_allclose(fit.strength, truth - truth.mean(), atol=0.06)
    # With no covariates it is plain Bradley-Terry.
    plain = ratings.bradley_terry_with_covariates(a, b, o, np.zeros((n, 0)), 4)
    counts = ratings.count_outcomes(a, b, o, 4)
    np.testing.assert_allclose(plain.strength, ratings.bradley_terry(counts), atol=1e-6)


def test_style_control_is_the_minimum_a_general_optimiser_finds():
    """The same penalised likelihood handed to scipy's BFGS, with its gradient taken numerically:
    both land on one minimum (ties, a prior and two covariates included)."""
    rng = np.random.default_rng(3)
    n, players = 400, 5
    a = rng.integers(0, players, n)
    b = (a + rng.integers(1, players, n)) % players
    o = rng.choice([ratings.A_WINS, ratings.TIE, ratings.B_WINS], n)
    x = rng.normal(size=(n, 2))
    fit = ratings.bradley_terry_with_covariates(a, b, o, x, players, l2=0.3)

    def objective(theta):
        z = theta[a] - theta[b] + x @ theta[players:]
        nll = o @ np.logaddexp(0, -z) + (1 - o) @ np.logaddexp(0, z)
        s = theta[:players]
        return nll + 0.15 * s @ s + 0.5 * s.sum() ** 2

    reference = scipy.optimize.minimize(objective, np.zeros(players + 2), method="BFGS").x
    np.testing.assert_allclose(fit.strength, reference[:players], atol=1e-4)
    np.testing.assert_allclose(fit.coefficients, reference[players:], atol=1e-4)


def test_style_control_converges_on_many_judgments_with_no_signal():
    # scipy's Newton-CG gave up here ("precision loss") on a million judgments.
    rng = np.random.default_rng(5)
    n = 1_000_000
    a = rng.integers(0, 20, n)
    b = (a + rng.integers(1, 20, n)) % 20
    style = ratings.style_feature_difference(
        rng.integers(1, 500, (n, 2)), rng.integers(1, 500, (n, 2))
    )
    o = rng.integers(0, 2, n).astype(float)
    fit = ratings.bradley_terry_with_covariates(a, b, o, style, 20)
    assert np.abs(fit.coefficients).max() < 0.01
    assert np.abs(fit.strength).max() < 0.05


def test_a_win_rate_over_prompts_judged_several_times_counts_them_as_alike():
    """Five annotators judging each prompt are not five independent judgments: the interval
    from all of them as independent covered the true rate 70-84% of the time at 95%."""
    rng = np.random.default_rng(31)
    truth = 0.6
    covered, naive_covered = [], []
    for _ in range(400):
        per_prompt = []
        for p in rng.beta(3 * truth, 3 * (1 - truth), 60):  # each prompt's own preference
            wins = int(rng.binomial(5, p))
            per_prompt.append((wins, 0, 5 - wins))
        wins, ties, losses = (sum(column) for column in zip(*per_prompt, strict=True))
        effective = ratings.effective_judgments(per_prompt)
        rate = ratings.pairwise_win_rate(wins, ties, losses, effective_n=effective)
        naive = ratings.pairwise_win_rate(wins, ties, losses)
        covered.append(rate.lower <= truth <= rate.upper)
        naive_covered.append(naive.lower <= truth <= naive.upper)
        assert effective is not None and effective <= wins + ties + losses
    assert 0.91 <= np.mean(covered) <= 0.99
    assert np.mean(naive_covered) < np.mean(covered) - 0.05
    # One judgment a prompt: nothing to correct; one prompt, or a rate of 1: nothing to tell.
    singles = [(1, 0, 0), (0, 0, 1), (0, 1, 0), (1, 0, 0)]
    assert ratings.effective_judgments(singles) == pytest.approx(4, rel=0.35)
    assert ratings.effective_judgments([(3, 1, 2)]) is None
    assert ratings.effective_judgments([(3, 0, 0), (2, 0, 0)]) is None
