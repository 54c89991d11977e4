"""A study's search space in the two forms the tuner needs: Ray Tune domains (what the search phase samples,
through Optuna) and Optuna distributions (the report's rebuilt study, warm starts). One ``SearchParam`` each."""

from __future__ import annotations

from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from .study import SearchParam


def tune_domain(param: SearchParam):
    """The Tune domain of a searched parameter; ``integer: [a, b]`` includes b."""
    from ray import tune  # only the driver's search phase needs Ray: reports read studies without it

    if param.log is not None:
        return tune.loguniform(*param.log)
    if param.uniform is not None:
        return tune.uniform(*param.uniform)
    if param.integer is not None:
        return tune.randint(param.integer[0], param.integer[1] + 1)
    return tune.choice(list(param.choice))


def optuna_distribution(param: SearchParam) -> BaseDistribution:
    """The Optuna distribution Ray's ``OptunaSearch`` turns ``tune_domain(param)`` into."""
    if param.log is not None:
        return FloatDistribution(*param.log, log=True)
    if param.uniform is not None:
        return FloatDistribution(*param.uniform)
    if param.integer is not None:
        return IntDistribution(*param.integer)
    return CategoricalDistribution(list(param.choice))
