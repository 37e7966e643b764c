"""The statistics behind A/B confidence and hold-out lift (docs/analytics.md, Statistics).

Plain closed-form formulas on counts, no sampling: the same counts always give
the same figures, on every page load and in every test.

- `two_proportion_z_test`: pooled two-sided z-test of p1 == p2.
- `newcombe_interval`: Newcombe's hybrid score interval (method 10 of Newcombe
  1998) for p1 - p2, built from the two Wilson score intervals; it stays inside
  [-1, 1] and behaves with small counts and rates near 0, where the Wald interval
  does not.
- `probability_to_beat`: P(rate1 > rate2) under Beta(1 + x, 1 + n - x) posteriors
  (uniform priors), by the normal approximation of the difference — no random
  draws, so no seed to fix.
"""
import math
from dataclasses import dataclass

SIGNIFICANCE_LEVEL = 0.05
Z_95 = 1.959963984540054


def normal_cdf(z):
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def rate(successes, trials):
    """successes / trials, or None when there were no trials (a rate of nothing is not 0)."""
    return successes / trials if trials else None


@dataclass(frozen=True)
class ZTest:
    z: float
    p_value: float

    @property
    def significant(self):
        return self.p_value < SIGNIFICANCE_LEVEL

    @property
    def confidence(self):
        """1 - p: how sure we are the two rates differ (0.95 or more is significant)."""
        return 1.0 - self.p_value


def two_proportion_z_test(x1, n1, x2, n2):
    """-> ZTest for H0: x1/n1 == x2/n2, or None when it can't be computed (no trials, or the pooled rate is 0
    or 1: then the rates are identical and nothing distinguishes them)."""
    if not n1 or not n2:
        return None
    pooled = (x1 + x2) / (n1 + n2)
    if pooled <= 0.0 or pooled >= 1.0:
        return None
    error = math.sqrt(pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2))
    z = (x1 / n1 - x2 / n2) / error
    return ZTest(z=z, p_value=2.0 * (1.0 - normal_cdf(abs(z))))


def wilson_interval(x, n, z=Z_95):
    """The Wilson score interval for x successes in n trials; None without trials."""
    if not n:
        return None
    p = x / n
    denominator = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1.0 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_interval(x1, n1, x2, n2, z=Z_95):
    """The 95 % interval (by default) for x1/n1 - x2/n2; None when either side has no trials."""
    if not n1 or not n2:
        return None
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson_interval(x1, n1, z)
    l2, u2 = wilson_interval(x2, n2, z)
    difference = p1 - p2
    low = difference - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = difference + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return low, high


def probability_to_beat(x1, n1, x2, n2):
    """P(the first rate is higher than the second) with uniform Beta priors, normal approximation."""
    a1, b1 = 1 + x1, 1 + n1 - x1
    a2, b2 = 1 + x2, 1 + n2 - x2
    mean1, mean2 = a1 / (a1 + b1), a2 / (a2 + b2)
    var1 = a1 * b1 / ((a1 + b1) ** 2 * (a1 + b1 + 1))
    var2 = a2 * b2 / ((a2 + b2) ** 2 * (a2 + b2 + 1))
    return normal_cdf((mean1 - mean2) / math.sqrt(var1 + var2))


def lift(messaged, messaged_converted, control, control_converted):
    """Conversion of the messaged minus that of the control, with its Newcombe interval and the z-test.

    -> {"messaged", "messaged_converted", "control", "control_converted", "messaged_rate", "control_rate",
        "lift", "relative_lift", "ci_low", "ci_high", "p_value", "significant"}
    """
    messaged_rate = rate(messaged_converted, messaged)
    control_rate = rate(control_converted, control)
    difference = None if messaged_rate is None or control_rate is None else messaged_rate - control_rate
    interval = newcombe_interval(messaged_converted, messaged, control_converted, control)
    test = two_proportion_z_test(messaged_converted, messaged, control_converted, control)
    return {
        "messaged": messaged, "messaged_converted": messaged_converted,
        "control": control, "control_converted": control_converted,
        "messaged_rate": messaged_rate, "control_rate": control_rate,
        "lift": difference,
        "relative_lift": difference / control_rate if difference is not None and control_rate else None,
        "ci_low": interval[0] if interval else None, "ci_high": interval[1] if interval else None,
        "p_value": test.p_value if test else None,
        "significant": bool(test and test.significant),
    }
