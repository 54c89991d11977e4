"""Run a task's ``train`` with a plain callback, as a notebook would."""


def collect(train, config, resume=None, stop_after=None, unit="step"):
    """Return the reported metrics (without timings) and states; ``stop_after`` kills the run once the
    reported ``unit`` (step or epoch) reaches it, as if the process died there."""
    metrics, states = [], []

    def report(m, state):
        metrics.append({k: v for k, v in m.items() if not k.startswith("time_")})
        states.append(state)
        if stop_after is not None and m[unit] >= stop_after:
            raise KeyboardInterrupt

    try:
        train(config, report, resume=resume)
    except KeyboardInterrupt:
        pass
    return metrics, states
