"""Study YAML -> Ray Tune (+ Optuna) -> MLflow: the Newton-loss ablation platform's driver."""

from .errors import StudyError
from .study import Study
from .study_file import load_study

__all__ = ["Study", "StudyError", "load_study"]
