"""Offline A/B tests and paired comparisons of stored models, from their per-user test metrics.

An A/B test is simulated, not run: ``n_users`` users are drawn with replacement from the users the
protocol evaluated, a fraction ``treatment_fraction`` of them (exactly, rounded) is assigned to the
treatment at random and the rest to the control, and each user's outcome is the per-user value of
their arm's model (HR@10 is the 0/1 "the held-out item was in the top 10" success proxy; NDCG@10 a
continuous one). The two arms are then analysed as independent samples, as a live test would be.

Statistics (alpha is two-sided throughout):

- absolute lift ``t - c`` (arm means): normal-approximation CI with the unpooled (Welch) standard
  error ``sqrt(s_c^2 / n_c + s_t^2 / n_t)``;
- relative lift ``t / c - 1``: delta-method CI for the ratio of two independent means,
  ``Var(t / c) ~ s_t^2 / (n_t c^2) + t^2 s_c^2 / (n_c c^4)``, its lower end clipped at -100%;
  undefined when the control mean is 0;
- Welch's t-test and the two-sided Mann-Whitney U test, exactly as ``scipy.stats`` computes them
  (one case scipy leaves undefined: both arms constant and equal, where the p-value is 1);
- power and sample size: for a 0/1 proxy, the two-proportion z-test with a pooled variance under
  the null and unequal allocation ``r = n_t / n_c`` (Fleiss, Levin and Paik, *Statistical Methods
  for Rates and Proportions*, 3rd ed., section 4.4)::

      n_c = [z_{1-a/2} sqrt(pbar qbar (1 + 1/r)) + z_{1-b} sqrt(p_c q_c + p_t q_t / r)]^2 / (p_t - p_c)^2
      n_t = r n_c,   pbar = (p_c + r p_t) / (1 + r),   q = 1 - p

  for a continuous proxy, the two-sample z approximation
  ``n_c = (z_{1-a/2} + z_{1-b})^2 (s_c^2 + s_t^2 / r) / delta^2``. Power is the same equation solved
  for ``z_{1-b}`` (both rejection tails counted), so the power at the required size is the target.
  "Achieved power" is the power to detect the lift actually observed; like every post-hoc power it
  follows from the p-value and is shown as a guide to the sample size, not as evidence.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from recsys_core.metrics import paired_test

PROXIES = ("HR@10", "NDCG@10", "HR@20", "NDCG@20", "MRR@10")
SMALL_ARM = 30  # below this many users per arm the normal approximations are rough


# --------------------------------------------------------------------------- aligning stored metrics


def align_users(first: pd.DataFrame, second: pd.DataFrame, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Two models' per-user ``metric`` over the users both evaluated, matched by the ``user`` column."""
    for frame in (first, second):
        if "user" not in frame.columns or metric not in frame.columns:
            raise ValueError(f"per-user metrics need the columns 'user' and {metric!r}")
    merged = first[["user", metric]].merge(second[["user", metric]], on="user", suffixes=("_a", "_b"))
    if merged.empty:
        raise ValueError("the two models share no evaluated user")
    a = merged[f"{metric}_a"].to_numpy(dtype=np.float64)
    b = merged[f"{metric}_b"].to_numpy(dtype=np.float64)
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError(f"per-user {metric} has missing or infinite values")
    return a, b


# --------------------------------------------------------------------------- paired comparison


@dataclass(frozen=True)
class PairedComparison:
    """Model ``a`` against model ``b`` on the same users; differences are ``a - b``."""

    a: str
    b: str
    metric: str
    n_users: int
    mean_a: float
    mean_b: float
    mean_difference: float
    t_test_p: float
    wilcoxon_p: float
    ci_low: float
    ci_high: float
    alpha: float
    significant: bool
    sentence: str


def compare_paired(
    first: pd.DataFrame,
    second: pd.DataFrame,
    metric: str,
    names: tuple[str, str] = ("a", "b"),
    alpha: float = 0.05,
    seed: int = 0,
) -> PairedComparison:
    """Paired t-test, Wilcoxon signed-rank and bootstrap 95% CI (``evaluate.paired_test``) of two
    models' per-user ``metric``, with a sentence that says what it means."""
    _check_probability("alpha", alpha)
    a, b = align_users(first, second, metric)
    test = paired_test(a, b, seed=seed)
    significant = test["t_test_p"] < alpha and test["wilcoxon_p"] < alpha
    name_a, name_b = names
    difference, low, high = test["mean_difference"], test["bootstrap_ci_low"], test["bootstrap_ci_high"]
    if name_a == name_b or np.allclose(a, b):
        sentence = f"{name_a} and {name_b} give each of the {len(a):,} users the same {metric}: nothing to test."
    else:
        direction = "higher" if difference > 0 else "lower"
        ps = f"paired t-test p {_p(test['t_test_p'])}, Wilcoxon p {_p(test['wilcoxon_p'])}"
        if significant:
            verdict = f"the difference is statistically significant at α = {alpha:g} ({ps})"
        elif test["t_test_p"] < alpha or test["wilcoxon_p"] < alpha:
            verdict = f"the two tests disagree at α = {alpha:g} ({ps}), so treat the difference as uncertain"
        else:
            verdict = f"the difference is not statistically significant at α = {alpha:g} ({ps})"
        sentence = (
            f"On the {len(a):,} users both models were tested on, {name_a}'s mean {metric} is "
            f"{abs(difference):.4f} {direction} than {name_b}'s ({_number(a.mean())} against "
            f"{_number(b.mean())}; bootstrap 95% CI of the difference {low:+.4f} to {high:+.4f}): {verdict}."
        )
    return PairedComparison(
        a=name_a,
        b=name_b,
        metric=metric,
        n_users=len(a),
        mean_a=float(a.mean()),
        mean_b=float(b.mean()),
        mean_difference=difference,
        t_test_p=test["t_test_p"],
        wilcoxon_p=test["wilcoxon_p"],
        ci_low=low,
        ci_high=high,
        alpha=alpha,
        significant=bool(significant),
        sentence=sentence,
    )


# --------------------------------------------------------------------------- power and sample size


@dataclass(frozen=True)
class SampleSize:
    """Users needed in each arm (rounded up)."""

    control: int
    treatment: int

    @property
    def total(self) -> int:
        return self.control + self.treatment


def _allocation(treatment_fraction: float) -> float:
    _check_fraction(treatment_fraction)
    return treatment_fraction / (1.0 - treatment_fraction)


def _z(alpha: float, power: float) -> tuple[float, float]:
    _check_probability("alpha", alpha)
    _check_probability("power", power)
    return float(stats.norm.ppf(1 - alpha / 2)), float(stats.norm.ppf(power))


def sample_size_two_proportions(
    p_control: float, p_treatment: float, alpha: float = 0.05, power: float = 0.8, treatment_fraction: float = 0.5
) -> SampleSize:
    """Users per arm for the two-sided two-proportion z-test to detect ``p_control`` -> ``p_treatment``
    (Fleiss, Levin and Paik; formula in the module docstring), with ``treatment_fraction`` of the
    users in the treatment."""
    for label, p in (("control rate", p_control), ("treatment rate", p_treatment)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"the {label} must be between 0 and 1, not {p:g}")
    if p_control == p_treatment:
        raise ValueError("the two rates are equal: no sample size detects a zero difference")
    z_alpha, z_beta = _z(alpha, power)
    r = _allocation(treatment_fraction)
    pooled = (p_control + r * p_treatment) / (1 + r)
    null_sd = math.sqrt(pooled * (1 - pooled) * (1 + 1 / r))
    alternative_sd = math.sqrt(p_control * (1 - p_control) + p_treatment * (1 - p_treatment) / r)
    n_control = (z_alpha * null_sd + z_beta * alternative_sd) ** 2 / (p_treatment - p_control) ** 2
    return SampleSize(math.ceil(n_control), math.ceil(r * n_control))


def power_two_proportions(
    p_control: float, p_treatment: float, n_control: int, n_treatment: int, alpha: float = 0.05
) -> float:
    """Power of the two-sided two-proportion z-test (pooled null variance) with these arm sizes."""
    _check_probability("alpha", alpha)
    r = n_treatment / n_control
    pooled = (p_control + r * p_treatment) / (1 + r)
    null_sd = math.sqrt(pooled * (1 - pooled) * (1 + 1 / r))
    alternative_sd = math.sqrt(p_control * (1 - p_control) + p_treatment * (1 - p_treatment) / r)
    return _power(abs(p_treatment - p_control) * math.sqrt(n_control), null_sd, alternative_sd, alpha)


def sample_size_two_means(
    delta: float,
    sd_control: float,
    sd_treatment: float,
    alpha: float = 0.05,
    power: float = 0.8,
    treatment_fraction: float = 0.5,
) -> SampleSize:
    """Users per arm for the two-sided two-sample z-test to detect a difference of means ``delta``."""
    if delta == 0 or not math.isfinite(delta):
        raise ValueError("the difference to detect must be a non-zero number")
    if sd_control < 0 or sd_treatment < 0:
        raise ValueError("standard deviations cannot be negative")
    z_alpha, z_beta = _z(alpha, power)
    r = _allocation(treatment_fraction)
    n_control = (z_alpha + z_beta) ** 2 * (sd_control**2 + sd_treatment**2 / r) / delta**2
    # A difference with no spread at all is seen in any sample; a test still needs two users per arm.
    return SampleSize(max(2, math.ceil(n_control)), max(2, math.ceil(r * n_control)))


def power_two_means(
    delta: float, sd_control: float, sd_treatment: float, n_control: int, n_treatment: int, alpha: float = 0.05
) -> float:
    """Power of the two-sided two-sample z-test with these arm sizes."""
    _check_probability("alpha", alpha)
    sd = math.sqrt(sd_control**2 + sd_treatment**2 * n_control / n_treatment)
    return _power(abs(delta) * math.sqrt(n_control), sd, sd, alpha)


def _power(signal: float, null_sd: float, alternative_sd: float, alpha: float) -> float:
    """P(reject) when the test statistic's numerator is ``signal`` (both tails counted)."""
    z_alpha = stats.norm.ppf(1 - alpha / 2)
    if alternative_sd == 0:  # no sampling noise: the difference is seen, or there is none to see
        return 1.0 if signal > 0 else alpha
    upper = stats.norm.cdf((signal - z_alpha * null_sd) / alternative_sd)
    lower = stats.norm.cdf((-signal - z_alpha * null_sd) / alternative_sd)
    return float(min(1.0, upper + lower))


# --------------------------------------------------------------------------- the A/B simulator


@dataclass(frozen=True)
class ABDesign:
    """How the simulated test is run and judged."""

    treatment_fraction: float = 0.5  # share of the users sent to the treatment
    n_users: int = 2000  # users in the test, both arms together
    alpha: float = 0.05  # two-sided significance level
    power: float = 0.8  # target power for the sample-size plan
    mde: float = 0.05  # minimum detectable effect: a relative lift (0.05 = +5%)
    seed: int = 0

    def __post_init__(self) -> None:
        _check_fraction(self.treatment_fraction)
        _check_probability("alpha", self.alpha)
        _check_probability("power", self.power)
        if not math.isfinite(self.mde) or self.mde == 0 or self.mde <= -1:
            raise ValueError(
                f"the minimum detectable effect is a relative lift above -100% and not 0, not {self.mde:g}"
            )
        if isinstance(self.n_users, bool) or not isinstance(self.n_users, int | np.integer):
            raise ValueError(f"the number of users must be a whole number, not {self.n_users!r}")
        n_treatment = round(self.n_users * self.treatment_fraction)
        if min(n_treatment, self.n_users - n_treatment) < 2:
            raise ValueError(
                f"{self.n_users} users split {self.treatment_fraction:.0%} to the treatment leaves an arm with "
                "fewer than 2 users: use more users or a more even split"
            )

    @property
    def n_treatment(self) -> int:
        return round(self.n_users * self.treatment_fraction)

    @property
    def n_control(self) -> int:
        return self.n_users - self.n_treatment


@dataclass(frozen=True)
class ABResult:
    """The simulated test's numbers and a verdict in plain language."""

    control: str
    treatment: str
    proxy: str
    binary: bool  # a 0/1 success proxy (rates) rather than a continuous one (means)
    design: ABDesign
    n_control: int
    n_treatment: int
    control_rate: float
    treatment_rate: float
    absolute_lift: float
    absolute_ci: tuple[float, float]
    relative_lift: float | None  # None when the control's rate is 0
    relative_ci: tuple[float, float] | None
    welch_p: float
    mann_whitney_p: float
    significant: bool  # Welch's p < alpha
    power: float  # to detect the observed lift at alpha with these arm sizes
    required: SampleSize | None  # to detect the design's relative MDE at its alpha and power
    required_for_observed: SampleSize | None  # to detect the observed lift at the same alpha and power
    ci_method: str
    verdict: str
    control_outcomes: np.ndarray = field(repr=False, compare=False)
    treatment_outcomes: np.ndarray = field(repr=False, compare=False)

    @property
    def tone(self) -> str:
        """``success`` (a significant gain), ``warning`` (a significant loss, or an A/A false positive)
        or ``info`` (nothing significant): how a page should show the verdict."""
        if not self.significant:
            return "info"
        return "success" if self.absolute_lift > 0 and self.control != self.treatment else "warning"


CI_METHOD = (
    "95% CIs: absolute lift by the normal approximation with the unpooled (Welch) standard error; "
    "relative lift by the delta method for the ratio of two independent means (clipped at -100%)"
)


def simulate_ab(
    control: np.ndarray,
    treatment: np.ndarray,
    design: ABDesign | None = None,
    proxy: str = "HR@10",
    names: tuple[str, str] = ("control", "treatment"),
) -> ABResult:
    """Simulate an A/B test between two models from their per-user values of ``proxy``.

    ``control`` and ``treatment`` hold one value per evaluated user, in the same user order (see
    :func:`align_users`). Users are drawn with replacement, assigned to the treatment at random in
    the design's proportion, and each gets their own arm's model's value.
    """
    design = design or ABDesign()
    control, treatment = np.asarray(control, dtype=np.float64), np.asarray(treatment, dtype=np.float64)
    if control.ndim != 1 or control.shape != treatment.shape:
        raise ValueError("control and treatment need one value per user, for the same users")
    if len(control) == 0:
        raise ValueError("there are no evaluated users to draw from")
    if not (np.isfinite(control).all() and np.isfinite(treatment).all()):
        raise ValueError(f"per-user {proxy} has missing or infinite values")
    rng = np.random.default_rng(design.seed)
    users = rng.integers(0, len(control), size=design.n_users)
    in_treatment = rng.permutation(design.n_users) < design.n_treatment
    return analyse_ab(control[users[~in_treatment]], treatment[users[in_treatment]], design, proxy, names)


def analyse_ab(
    control_outcomes: np.ndarray,
    treatment_outcomes: np.ndarray,
    design: ABDesign | None = None,
    proxy: str = "HR@10",
    names: tuple[str, str] = ("control", "treatment"),
) -> ABResult:
    """The analysis of an A/B test's outcomes, one value per user and arm (the simulator's second half)."""
    design = design or ABDesign()
    y_c = np.asarray(control_outcomes, dtype=np.float64)
    y_t = np.asarray(treatment_outcomes, dtype=np.float64)
    if min(len(y_c), len(y_t)) < 2:
        raise ValueError("each arm needs at least 2 users")
    if not (np.isfinite(y_c).all() and np.isfinite(y_t).all()):
        raise ValueError(f"the outcomes ({proxy}) have missing or infinite values")
    n_c, n_t = len(y_c), len(y_t)
    binary = bool(np.isin(y_c, (0.0, 1.0)).all() and np.isin(y_t, (0.0, 1.0)).all())
    c, t = float(y_c.mean()), float(y_t.mean())
    var_c, var_t = float(y_c.var(ddof=1)), float(y_t.var(ddof=1))
    z = float(stats.norm.ppf(0.975))

    lift = t - c
    se = math.sqrt(var_c / n_c + var_t / n_t)
    absolute_ci = (lift - z * se, lift + z * se)
    relative, relative_ci = _relative_lift(c, t, var_c, var_t, n_c, n_t, z)
    welch_p, mann_whitney_p = _p_values(y_c, y_t)

    sd_c, sd_t = math.sqrt(var_c), math.sqrt(var_t)
    if binary:
        power = power_two_proportions(c, t, n_c, n_t, design.alpha) if t != c else design.alpha
    else:
        power = power_two_means(lift, sd_c, sd_t, n_c, n_t, design.alpha)
    required = _required(c, c * (1 + design.mde), sd_c, sd_c, binary, design)
    required_for_observed = _required(c, t, sd_c, sd_t, binary, design) if t != c else None

    result = dict(
        control=names[0],
        treatment=names[1],
        proxy=proxy,
        binary=binary,
        design=design,
        n_control=n_c,
        n_treatment=n_t,
        control_rate=c,
        treatment_rate=t,
        absolute_lift=lift,
        absolute_ci=absolute_ci,
        relative_lift=relative,
        relative_ci=relative_ci,
        welch_p=welch_p,
        mann_whitney_p=mann_whitney_p,
        significant=welch_p < design.alpha,
        power=power,
        required=required,
        required_for_observed=required_for_observed,
        ci_method=CI_METHOD,
        control_outcomes=y_c,
        treatment_outcomes=y_t,
    )
    return ABResult(**result, verdict=_verdict(**result))


def _relative_lift(
    c: float, t: float, var_c: float, var_t: float, n_c: int, n_t: int, z: float
) -> tuple[float | None, tuple[float, float] | None]:
    """t / c - 1 with its delta-method interval; None for a control mean of 0."""
    if c <= 0:
        return None, None
    relative = t / c - 1
    se_relative = math.sqrt(var_t / (n_t * c**2) + t**2 * var_c / (n_c * c**4))
    # A ratio of non-negative means cannot fall below -100%, whatever the normal tail says.
    return relative, (max(-1.0, relative - z * se_relative), relative + z * se_relative)


def _p_values(y_c: np.ndarray, y_t: np.ndarray) -> tuple[float, float]:
    """Welch's t-test and the Mann-Whitney U test, two-sided; 1 where the arms cannot differ."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # scipy warns about constant arms, then copes
        welch_p = float(stats.ttest_ind(y_t, y_c, equal_var=False).pvalue)
        mann_whitney_p = float(stats.mannwhitneyu(y_t, y_c, alternative="two-sided").pvalue)
    # Both arms constant and equal: nothing differs.
    return (1.0 if math.isnan(welch_p) else welch_p), (1.0 if math.isnan(mann_whitney_p) else mann_whitney_p)


def _required(c: float, t: float, sd_c: float, sd_t: float, binary: bool, design: ABDesign) -> SampleSize | None:
    """The plan's sample size, or None where no size can be given (a control rate of 0, a target
    rate above 1)."""
    if c == t:
        return None
    try:
        if binary:
            return sample_size_two_proportions(c, t, design.alpha, design.power, design.treatment_fraction)
        return sample_size_two_means(t - c, sd_c, sd_t, design.alpha, design.power, design.treatment_fraction)
    except ValueError:
        return None


# --------------------------------------------------------------------------- the verdict


def _verdict(**r) -> str:
    design: ABDesign = r["design"]
    aa = r["control"] == r["treatment"]
    arms = f"{r['treatment']} (treatment) against {r['control']} (control)"
    sentences = [f"A/A test: {r['control']} in both arms." if aa else f"A/B test of {arms}."]
    sentences += _effect_sentences(r)
    sentences += _significance_sentences(r, design, aa)
    sentences += _planning_sentences(r, design, aa)
    if min(r["n_control"], r["n_treatment"]) < SMALL_ARM:
        sentences.append(
            f"With fewer than {SMALL_ARM} users in an arm the normal approximations behind these figures are rough."
        )
    return " ".join(sentences)


def _what(r: dict) -> str:
    return f"the hit rate ({r['proxy']})" if r["binary"] and r["proxy"].startswith("HR") else f"the mean {r['proxy']}"


def _effect_sentences(r: dict) -> list[str]:
    """What the treatment did to the proxy, with the size of the effect and its interval."""
    c, t, what = r["control_rate"], r["treatment_rate"], _what(r)
    show = _percent if r["binary"] else _number
    low, high = r["absolute_ci"]
    if r["relative_lift"] is not None:
        rel_low, rel_high = r["relative_ci"]
        size = f"{r['relative_lift']:+.1%} relative, 95% CI {rel_low:+.1%} to {rel_high:+.1%}"
    elif r["binary"]:
        size = f"{(t - c) * 100:+.1f} percentage points, 95% CI {low * 100:+.1f} to {high * 100:+.1f}"
    else:
        size = f"{t - c:+.4f}, 95% CI {low:+.4f} to {high:+.4f}"
    if t > c:
        sentences = [f"The treatment raised {what} from {show(c)} to {show(t)} ({size})."]
    elif t < c:
        sentences = [f"The treatment lowered {what} from {show(c)} to {show(t)} ({size})."]
    else:
        sentences = [f"Both arms had the same {what.removeprefix('the ')}: {show(c)}."]
    if r["relative_lift"] is None:
        sentences.append(f"The control's {what.removeprefix('the ')} is 0, so a relative lift is undefined.")
    return sentences


def _significance_sentences(r: dict, design: ABDesign, aa: bool) -> list[str]:
    users = (
        f"{r['n_control']:,} users per arm"
        if r["n_control"] == r["n_treatment"]
        else f"{r['n_control']:,} users in the control and {r['n_treatment']:,} in the treatment"
    )
    ps = f"Welch's t-test p {_p(r['welch_p'])}; Mann-Whitney U p {_p(r['mann_whitney_p'])}"
    sentences = []
    if r["significant"]:
        sentences.append(f"With {users} this is statistically significant at α = {design.alpha:g} ({ps}).")
        if aa:
            sentences.append(
                f"Both arms run the same model, so this is a false positive: it happens in about {design.alpha:.0%} "
                "of A/A tests by chance alone."
            )
    else:
        sentences.append(f"With {users} this is not statistically significant at α = {design.alpha:g} ({ps}).")
    if (r["mann_whitney_p"] < design.alpha) != r["significant"]:
        sentences.append("The two tests disagree, so read the result as borderline.")
    return sentences


def _planning_sentences(r: dict, design: ABDesign, aa: bool) -> list[str]:
    """The power the test had, and the sample size a test of the minimum lift needs."""
    c, t = r["control_rate"], r["treatment_rate"]
    show = _percent if r["binary"] else _number
    sentences = []
    if t != c and not aa:
        sentences.append(f"The test had {r['power']:.0%} power to detect a lift of the size observed.")
        if not r["significant"] and r["required_for_observed"] is not None:
            sentences.append(
                f"To detect a lift this size reliably ({design.power:.0%} power) you would need about "
                f"{_users(r['required_for_observed'])}."
            )
    if r["required"] is not None:
        sentences.append(
            f"To detect a minimum lift of {design.mde:+.0%} relative at α = {design.alpha:g} with {design.power:.0%} "
            f"power, plan for about {_users(r['required'])}."
        )
        if min(r["required"].control, r["required"].treatment) < SMALL_ARM:
            sentences.append(f"Plan for at least {SMALL_ARM} users per arm all the same: the formula is rough below.")
    elif c == 0:
        sentences.append("A sample size for a relative lift cannot be planned from a control value of 0.")
    else:
        sentences.append(
            f"A relative lift of {design.mde:+.0%} from {show(c)} is not possible for this success proxy, so no "
            "sample size is planned for it."
        )
    return sentences


def _users(size: SampleSize) -> str:
    if size.control == size.treatment:
        return f"{size.control:,} users per arm ({size.total:,} in all)"
    return f"{size.control:,} users in the control and {size.treatment:,} in the treatment ({size.total:,} in all)"


def _percent(value: float) -> str:
    return f"{value:.1%}"


def _number(value: float) -> str:
    return f"{value:.4f}"


def format_p(p: float) -> str:
    """A p-value as people read it: two significant digits, and "< 0.0001" below that."""
    return "< 0.0001" if p < 0.0001 else f"{p:.2g}" if p < 0.1 else f"{p:.2f}"


def _p(p: float) -> str:
    text = format_p(p)
    return text if text.startswith("<") else f"= {text}"


def _between_0_and_1(value: object) -> bool:
    try:
        return 0.0 < float(value) < 1.0  # NaN fails both comparisons
    except (TypeError, ValueError):
        return False


def _check_probability(label: str, value: float) -> None:
    if not _between_0_and_1(value):
        raise ValueError(f"{label} must be strictly between 0 and 1, not {value!r}")


def _check_fraction(value: float) -> None:
    if not _between_0_and_1(value):
        raise ValueError(f"the traffic split (share of users in the treatment) must be between 0 and 1, not {value!r}")
