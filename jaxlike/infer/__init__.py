"""Inference layer: test statistics, asymptotic and toy-based CLs, discovery significance, upper
limits (CLs / CLs+b rules), Feldman–Cousins intervals."""

from ._asymptotics import N_SIGMA, TEST_STATS, asymptotic_pvalues, profile_statistic
from ._counting import (
    counting_parameters,
    counting_pvalues,
    counting_statistic,
    feldman_cousins_counting,
)
from ._hypotest import (
    CALCTYPES,
    HypoTestPrep,
    HypoTestResult,
    discovery_significance,
    hypotest,
    hypotest_at,
    hypotest_prepare,
    hypotest_scan,
)
from ._limits import UpperLimitResult, upper_limit, upper_limit_prepared
from ._teststat import q0, qmu, qmu_tilde, tmu, tmu_tilde
from ._toy_limits import (
    LIMIT_RULES,
    FeldmanCousinsResult,
    ToyUpperLimitResult,
    feldman_cousins,
    toy_upper_limit_prepared,
)
from ._toys import (
    TOY_PARS,
    ToyHypoTestResult,
    expected_pvalues,
    generating_pars,
    toy_hypotest_prepared,
    toy_pvalues,
    toy_statistics,
)

__all__ = [
    "CALCTYPES",
    "LIMIT_RULES",
    "TOY_PARS",
    "FeldmanCousinsResult",
    "ToyUpperLimitResult",
    "ToyHypoTestResult",
    "feldman_cousins",
    "toy_upper_limit_prepared",
    "expected_pvalues",
    "generating_pars",
    "toy_hypotest_prepared",
    "toy_pvalues",
    "toy_statistics",
    "N_SIGMA",
    "TEST_STATS",
    "HypoTestPrep",
    "HypoTestResult",
    "UpperLimitResult",
    "asymptotic_pvalues",
    "counting_parameters",
    "counting_pvalues",
    "counting_statistic",
    "discovery_significance",
    "feldman_cousins_counting",
    "hypotest",
    "hypotest_at",
    "hypotest_prepare",
    "hypotest_scan",
    "profile_statistic",
    "q0",
    "qmu",
    "qmu_tilde",
    "tmu",
    "tmu_tilde",
    "upper_limit",
    "upper_limit_prepared",
]
