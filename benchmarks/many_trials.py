"""Studies of hundreds of trials: the driver's memory, the fixed cost per trial, and the disk a study takes
(issue 12).

For each N in ``--trials`` (default 100, 250, 500) the script writes a grid of N two-step ranking trials (n = 3,
batch 4, one evaluation), runs it with ``tuner run`` (2 concurrent trials, the embedded SQLite store), and
measures:

- the driver's resident memory (the ``tuner run`` process, /proc VmRSS every 0.5 s): at 10 %, 50 % and 100 % of
  the trials, and its peak;
- the fixed cost per trial: wall time x concurrency / N, against the same ``train()`` called bare in this process
  (warm, median of 20), and what that cost is for a trial of a minute;
- the study folder's size on disk, and the size of Tune's experiment state and the time Tune took for its last
  save of it (a grid saves it on Tune's adaptive period, see ``tuner.phases.checkpoint_period``).

    python benchmarks/many_trials.py [--trials 100 250 500] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

TUNER = str(Path(sys.executable).parent / "tuner")
PARAMS = {"n": 3, "loss": "neuralsort", "steps": 2, "batch_size": 4, "eval_every": 2, "eval_sets": 6}
CONCURRENT = 2


def study_file(folder: Path, trials: int) -> Path:
    """A grid of exactly ``trials`` distinct trials: learning rates x seeds."""
    seeds = 5
    study = {
        "name": f"many{trials}",
        "task": "ranking",
        "metric": "valid_elementwise",
        "mode": "max",
        "params": PARAMS,
        "grid": [{"variant": ["baseline"], "lr": [1e-3 * (1 + i) for i in range(trials // seeds)]}],
        "seeds": list(range(seeds)),
        "resources": {"cpu": 1},
        "max_concurrent": CONCURRENT,
        "max_failures": 0,
    }
    path = folder / f"many{trials}.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def rss_mb(pid: int) -> float | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"VmRSS:\s+(\d+) kB", text)  # absent once the process has exited (a zombie)
    return int(match[1]) / 1024 if match else None


def run(trials: int, folder: Path) -> dict:
    path, store = study_file(folder, trials), folder / "store"
    started = time.time()
    driver = subprocess.Popen(
        [TUNER, "run", str(path), "--storage", str(store)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    samples, done, lines = [], 0, []
    import threading

    def read():
        nonlocal done
        for line in driver.stdout:
            lines.append(line)
            if line.startswith("[done]"):
                done += 1

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    while driver.poll() is None:
        memory = rss_mb(driver.pid)
        if memory is not None:
            samples.append((done, memory))
        time.sleep(0.5)
    reader.join()
    wall = time.time() - started
    if driver.returncode != 0:
        raise RuntimeError("".join(lines[-30:]))
    at = lambda share: max((m for d, m in samples if d <= share * trials), default=float("nan"))  # noqa: E731
    state = max((store / f"many{trials}" / "grid").glob("experiment_state-*.json"), key=lambda p: p.stat().st_mtime)
    saves = [float(m[1]) for line in lines if (m := re.search(r"experiment state to .* in ([\d.]+)s", line))]
    return {
        "trials": trials,
        "done": done,
        "wall_s": round(wall, 1),
        "rss_mb_at_10pct": round(at(0.1)),
        "rss_mb_at_50pct": round(at(0.5)),
        "rss_mb_at_end": round(samples[-1][1]),
        "rss_mb_peak": round(max(m for _, m in samples)),
        "slot_s_per_trial": round(wall * CONCURRENT / trials, 2),
        "folder_mb": round(
            sum(f.stat().st_size for f in (store / f"many{trials}").rglob("*") if f.is_file()) / 2**20, 1
        ),
        "experiment_state_kb": round(state.stat().st_size / 1024),
        "last_state_save_s": saves[-1] if saves else None,
    }


def bare_train_s() -> float:
    from tasks import ranking

    times = []
    for seed in range(23):
        start = time.perf_counter()
        ranking.train({**PARAMS, "seed": seed}, lambda metrics, state: None)
        times.append(time.perf_counter() - start)
    return statistics.median(times[3:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, nargs="+", default=[100, 250, 500])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="many-trials-"))
    bare = bare_train_s()
    rows = []
    for trials in args.trials:
        folder = out / f"n{trials}"
        folder.mkdir(parents=True, exist_ok=True)
        rows.append(run(trials, folder))
        print(json.dumps(rows[-1]), flush=True)
    (out / "many_trials.json").write_text(json.dumps({"bare_train_s": bare, "rows": rows}, indent=2))
    print(f"\n# {platform.machine()}, {CONCURRENT} concurrent trials; bare train() of a trial: {bare:.3f} s (warm)")
    print(
        "| trials | wall | fixed cost per trial | for a 1-minute trial | driver RSS at 10 % / 50 % / end (peak) "
        "| study folder | Tune experiment state (last save) |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        fixed = r["slot_s_per_trial"] - bare
        print(
            f"| {r['trials']} | {r['wall_s']:.0f} s | {fixed:.2f} s | {100 * fixed / 60:.1f} % | "
            f"{r['rss_mb_at_10pct']} / {r['rss_mb_at_50pct']} / {r['rss_mb_at_end']} MB ({r['rss_mb_peak']} MB) | "
            f"{r['folder_mb']} MB | {r['experiment_state_kb']} kB ({r['last_state_save_s']} s) |"
        )


if __name__ == "__main__":
    main()
