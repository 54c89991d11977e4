"""The GPU check's figures as Markdown (gpu_check.md): one block per section, what failed or was cut, warnings."""

from __future__ import annotations

ACCURACIES = ("valid_exact", "valid_elementwise", "test_exact", "test_elementwise")


def markdown(result: dict) -> str:
    lines = header(result)
    for name in result["sections"]:  # in the order they ran
        if result.get(name):
            lines += [f"## {name}", "", *RENDERERS[name](result[name]), ""]
    return "\n".join(lines + problems(result)) + "\n"


def header(result: dict) -> list[str]:
    lines = [
        f"# GPU check: {result['device']}",
        "",
        f"torch {result['torch']}, CUDA {result['cuda']}, Python {result['python']}, {result['cpus']} CPUs, "
        f"{'smoke sizes' if result['smoke'] else 'full sizes'}, {result.get('seconds', 0):.0f} s in all; "
        f"Ray / MLflow / Optuna imported: {', '.join(result.get('imported') or []) or 'none'}.",
        "",
        "| section | status | seconds (budget) | distinct warnings |",
        "|---|---|---|---|",
    ]
    for name, record in result["sections"].items():
        status = record["status"] + (f": {record['reason']}" if record.get("reason") else "")
        seconds = f"{record['seconds']:.0f} ({record['budget_s']})"
        lines.append(f"| {name} | {status} | {seconds} | {len(record['warnings'])} |")
    return lines + [""]


def _ratio(value) -> str:
    return f"{value:.2f}x" if value is not None else "-"


def steps(rows: list[dict]) -> list[str]:
    lines = [
        "| loss | setting | baseline step (ms) | NL Hessian / baseline | NL Fisher / baseline | loss + Newton (ms) |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        setting = ", ".join(f"{k} {v}" for k, v in row.items() if k in ("n", "samples", "beta", "loop", "norm"))
        if row.get("error"):
            lines.append(f"| {row['loss']} | {setting} | FAILED: {row['error']} | | | |")
            continue
        ratio = row["vs_baseline"]
        phase = " / ".join(f"{v} {ms:.1f}" for v, ms in row["loss_phase_ms"].items())
        failed = "; ".join(f"{v}: {f}" for v, f in row["failures"].items() if f)
        lines.append(
            f"| {row['loss']} | {setting} | {row['step_ms']['baseline']:.2f} | {_ratio(ratio.get('hessian'))} | "
            f"{_ratio(ratio.get('fisher'))} | {phase}{f' ({failed})' if failed else ''} |"
        )
    return lines


def syncs(figures: dict) -> list[str]:
    lines = [
        f"One `.item()` raised {figures['item_calibration']} sync warning(s).",
        "",
        "| loss | variant | syncs per step | data | network | loss + Newton |",
        "|---|---|---|---|---|---|",
    ]
    for row in figures["rows"]:
        if row.get("error"):
            lines.append(f"| {row['loss']} | {row['variant']} | FAILED: {row['error']} | | | |")
            continue
        phase = row["per_phase"]
        lines.append(
            f"| {row['loss']} | {row['variant']} | {row['per_step']:.1f} | {phase.get('data', 0):.1f} | "
            f"{phase.get('network', 0):.1f} | {phase.get('loss', 0):.1f} |"
        )
    return lines


def solver(rows: list[dict]) -> list[str]:
    lines = [
        "| grids | costs | device solver (paths/s) | CPU solver, copies included (paths/s) | faster | paths equal |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['grids']} | {r['costs']} | {r['device_paths_per_s']:,.0f} | {r['cpu_paths_per_s']:,.0f} | "
        f"{r['faster']} | {'yes' if r['paths_equal'] and r['costs_equal'] else 'NO'} |"
        for r in rows
    ]
    return lines


def determinism(figures: dict) -> list[str]:
    lines = ["| task | loss | variant | λ | steps | two runs |", "|---|---|---|---|---|---|"]
    for row in figures["runs"]:
        verdict = row.get("error") or ("identical" if row["identical"] else f"DIFFER in {', '.join(row['differing'])}")
        lines.append(
            f"| {row['task']} | {row['loss']} | {row['variant']} | {row['lam']} | {row.get('steps', '-')} | {verdict} |"
        )
    cost = figures.get("cost")
    if cost:
        lines += ["", f"Deterministic algorithms: {cost['deterministic_s']:.1f} s, defaults {cost['default_s']:.1f} s."]
    elif figures.get("cost_reason"):
        lines += ["", f"Cost of the deterministic algorithms: not measured ({figures['cost_reason']})."]
    return lines


def _memory(trial: dict) -> str:
    return f"{trial['peak_allocated_mb']:.0f} MB" if trial.get("peak_allocated_mb") is not None else "n/a"


def _rate(trial: dict) -> str:
    return f"{trial['steps_per_s']:.1f}" if trial.get("steps_per_s") else "-"


def packing(figures: dict) -> list[str]:
    lines = [f"Window {figures['window_s']} s each; NeuralSort n = 5, batch {figures['config']['batch_size']}.", ""]
    lines += ["| trial | steps/s | x alone | steps in window | peak GPU memory allocated |", "|---|---|---|---|---|"]
    alone = figures.get("alone")
    if alone:
        lines.append(f"| alone | {_rate(alone)} | 1 | {alone['steps_in_window']} | {_memory(alone)} |")
    speeds = figures.get("speed_vs_alone") or []
    for i, trial in enumerate(figures.get("packed", [])):
        speed = f"{speeds[i]:.2f}" if i < len(speeds) else "-"
        cells = [f"packed seed {trial['seed']}", _rate(trial), speed, trial["steps_in_window"], _memory(trial)]
        lines.append("| " + " | ".join(str(cell) for cell in cells) + " |")
    if figures.get("aggregate_vs_alone") is not None:
        lines += [
            "",
            f"Aggregate throughput: {figures['aggregate_vs_alone']:.2f}x one trial alone. At the speed of one trial "
            f"alone the paper's 100 000 steps take {figures['paper_100k_steps_h']:.2f} h (paper, A6000: 1.03 h).",
        ]
    return lines


def reproduction(figures: dict) -> list[str]:
    protocol = figures["protocol"]
    lines = [
        f"NeuralSort, n = {protocol['n']}, batch {protocol['batch_size']}, λ {protocol['lams']}, seeds "
        f"{protocol['seeds']}, all at once for {protocol['window_s']:.0f} s. Accuracies in %, at each trial's last "
        "evaluation:",
        "",
        "| variant | seed | steps reached | steps/s | " + " | ".join(ACCURACIES) + " |",
        "|---|---|---|---|" + "---|" * len(ACCURACIES),
    ]
    for variant, seeds in figures.get("trials", {}).items():
        for seed, trial in seeds.items():
            last = trial["curve"][-1] if trial.get("curve") else {}
            cells = " | ".join(f"{100 * last[k]:.1f}" if k in last else "-" for k in ACCURACIES)
            lines.append(f"| {variant} | {seed} | {trial['steps']} | {_rate(trial)} | {cells} |")
    common = figures.get("at_common_step")
    if common:
        lines += ["", f"Mean over seeds at step {common['step']} (the last one every trial reached):", ""]
        lines += ["| variant | " + " | ".join(ACCURACIES) + " |", "|---|" + "---|" * len(ACCURACIES)]
        for variant, means in common["variants"].items():
            lines.append(f"| {variant} | " + " | ".join(f"{100 * means[k]:.1f}" for k in ACCURACIES) + " |")
    return lines


def problems(result: dict) -> list[str]:
    """Failed or cut sections, and each section's most frequent warnings."""
    lines = []
    for name, record in result["sections"].items():
        if record["status"] in ("failed", "cut"):
            lines.append(f"- {name} {record['status'].upper()}{': ' + record['error'] if record.get('error') else ''}")
        lines += [f"- {name} warned {w['count']}x: {w['warning']}" for w in record["warnings"][:3]]
    return ["## Problems and warnings", "", *lines, ""] if lines else []


RENDERERS = {
    "ranking_steps": steps,
    "shortest_path_steps": steps,
    "sync_counts": syncs,
    "solver": solver,
    "determinism": determinism,
    "packing": packing,
    "reproduction": reproduction,
}
