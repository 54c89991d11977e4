"""The tuner's own error types, all in one place. The CLI prints these as one line and exits 2; anything else is
a bug and keeps its traceback."""


class TunerError(Exception):
    """A problem with the user's input or environment, explained in one line (study files, storage, cluster,
    tracking server, reports)."""


class StudyError(TunerError, ValueError):
    """A study file is invalid; the message names the file and the key."""


class StudyStateError(TunerError, RuntimeError):
    """The storage folder does not hold what the command needs (missing or already existing study, a state
    that cannot be read, a storage location the tuner cannot write)."""


class InfeasibleResourcesError(TunerError, RuntimeError):
    """A trial asks for more CPUs or GPUs than any node of the Ray cluster has."""


class ClusterUnreachableError(TunerError, ConnectionError):
    """No Ray cluster answers at the given address, or joining it failed."""


class TrackingError(TunerError, ConnectionError):
    """The MLflow tracking server does not answer, or the tracking store failed (the message names its URI)."""


class ReportError(TunerError, ValueError):
    """The study's tracked data cannot make the asked-for report (nothing finished, a value matching no choice)."""


class OptunaStorageError(TunerError, ConnectionError):
    """The Optuna storage of a searched phase cannot be opened, or already holds a study of that name."""


class DataError(TunerError, RuntimeError):
    """A data set cannot be fetched or verified (no network, a bad checksum, a full disk)."""
