"""The tuner's own error types. The CLI prints these as one line and exits 2; anything else is a bug and keeps
its traceback."""


class TunerError(Exception):
    """A problem with the user's input or environment, explained in one line (study files, storage, cluster,
    tracking server, reports)."""


class ClusterUnreachableError(TunerError, ConnectionError):
    """No Ray cluster answers at the given address, or joining it failed."""


class TrackingError(TunerError, ConnectionError):
    """The MLflow tracking server does not answer, or the tracking store failed (the message names its URI)."""


class ReportError(TunerError, ValueError):
    """The study's tracked data cannot make the asked-for report (nothing finished, a value matching no choice)."""


class OptunaStorageError(TunerError, ConnectionError):
    """The Optuna storage of a searched phase cannot be opened, or already holds a study of that name."""
