"""Study YAML -> Ray Tune + Optuna -> every trial in MLflow."""
from .study import Study, StudyError, load_study

__all__ = ["Study", "StudyError", "load_study"]
