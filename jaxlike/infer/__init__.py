"""Inference layer: test statistics, asymptotic CLs, discovery significance, upper limits."""

from ._asymptotics import N_SIGMA, TEST_STATS, asymptotic_pvalues, profile_statistic
from ._hypotest import (
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

__all__ = [
    "N_SIGMA",
    "TEST_STATS",
    "HypoTestPrep",
    "HypoTestResult",
    "UpperLimitResult",
    "asymptotic_pvalues",
    "discovery_significance",
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
