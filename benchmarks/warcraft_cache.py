"""What the per-node Warcraft cache saves a shortest-path trial, measured on trials in fresh processes.

A trial's data part is what ``tasks/shortest_path.py``'s ``train`` does before its first step: get the three
splits, make the training tensors and the maps' channel statistics. Two ways, each run as trial 1 and then trial 2
in fresh processes; trial 2 is reported:

- ``per-trial``: each trial generates its own set into a private folder and copies the maps into its memory (what
  every trial of a node did when the trials started together, before the cache);
- ``cached``: the node's cache (``tasks/data_cache.py``): trial 1 builds it, trial 2 checks it (sizes, CRC-32)
  and memory-maps it.

Reported: the data part's wall time; the peak RSS above the process's RSS after its imports; after the data part,
the private memory the trial keeps (``RssAnon``) and the file pages it maps (``RssFile``, shared by every process
that maps the same file) above the same baseline.

    python benchmarks/warcraft_cache.py [--train-size 1000] [--eval-size 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODES = ("per-trial", "cached")


def memory() -> dict[str, float]:
    """This process's VmRSS, RssAnon and RssFile in MB."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


def trial(mode: str, train_size: int, eval_size: int, cache: str) -> dict[str, float]:
    """One trial's data part, as ``train`` does it (``cached``) or did it per trial (``per-trial``)."""
    import numpy as np
    import torch

    from tasks import shortest_path
    from tasks.warcraft_data import generate_warcraft, load_warcraft
    from tasks.warcraft_model import channel_stats

    os.environ["NEWTON_CACHE_DIR"] = cache
    cfg = shortest_path.resolve_config(
        {"train_size": train_size, "eval_size": eval_size}, shortest_path.DEFAULTS, "shortest_path"
    )
    before = memory()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=cache) as private:
        if mode == "per-trial":
            sizes = {"train": train_size, "val": eval_size, "test": eval_size}
            data = load_warcraft(generate_warcraft(private, sizes, cfg["data_seed"]))
            train_maps = torch.from_numpy(np.array(data["train"]["maps"]))
        else:
            data = shortest_path._load(cfg)
            train_maps = shortest_path._shared(data["train"]["maps"])
        train_paths = torch.from_numpy(np.asarray(data["train"]["paths"], dtype=np.float32)).flatten(1)
        channel_stats(train_maps)
        seconds = time.perf_counter() - start
        after = memory()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert len(train_paths) == train_size
    return {
        "seconds": seconds,
        "peak_mb": peak - before["VmRSS"],
        "private_mb": after["RssAnon"] - before["RssAnon"],
        "file_mb": after["RssFile"] - before["RssFile"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-size", type=int, default=1000)
    parser.add_argument("--eval-size", type=int, default=1000)
    parser.add_argument("--trial", choices=MODES, help=argparse.SUPPRESS)  # one trial, in this process
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.trial:
        print(json.dumps(trial(args.trial, args.train_size, args.eval_size, args.cache)))
        return
    print(
        f"# {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}; "
        f"{args.train_size} / {args.eval_size} / {args.eval_size} maps; trial 2 of each way, fresh processes"
    )
    print("| way | data part | peak RSS above imports | private memory kept | shared file pages mapped |")
    print("|---|---|---|---|---|")
    for mode in MODES:
        with tempfile.TemporaryDirectory() as cache:
            command = [sys.executable, __file__, "--trial", mode, "--cache", cache]
            command += ["--train-size", str(args.train_size), "--eval-size", str(args.eval_size)]
            for _ in range(2):
                result = subprocess.run(command, capture_output=True, text=True, check=True)
            row = json.loads(result.stdout.splitlines()[-1])
        print(
            f"| {mode} | {row['seconds']:.2f} s | {row['peak_mb']:.0f} MB | {row['private_mb']:.0f} MB | "
            f"{row['file_mb']:.0f} MB |",
            flush=True,
        )


if __name__ == "__main__":
    main()
