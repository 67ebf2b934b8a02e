"""``show``'s data: the chosen path, the candidates, the cost, and the cost against one full training.

:func:`summarize` builds one JSON-ready dict; :func:`format_summary` renders that
same dict as terminal text, so ``--json`` and the table can never disagree.
"""
from __future__ import annotations

from typing import Any

from ..budget import load_budget, training_macs
from ..runlog import ModelRecord, Run, Trial
from ..runlog.decision import Decision, Score
from ..runlog.run import RANDOM_PREFIX, Baseline
from ..utils.fmt import format_duration, score_spec

#: The budget a "full training" is measured under for the cost comparison.
FULL_TRAINING_BUDGET = "paper"


def _model(model: ModelRecord) -> dict[str, Any]:
    return {"factors": model.factors.to_dict(), "factors_short": model.factors.short(),
            "gflops": model.gflops, "ms": model.latency_ms, "params_m": model.params_m, "top1": model.top1}


def _candidate(cand: Trial, chosen: bool) -> dict[str, Any]:
    factors = cand.factors
    return {"axis": cand.axis, "chosen": chosen, "factors": factors.to_dict() if factors else None,
            "factors_short": factors.short() if factors else "-", "gflops": cand.gflops,
            "params_m": cand.params_m, "top1": cand.top1, "top5": cand.top5,
            "train_time_s": cand.wall_time_s, "train_macs": cand.train_macs, "status": cand.status,
            "error": cand.error}


def search_train_macs(run: Run) -> tuple[float | None, str]:
    """Total training multiply-adds and where the number came from."""
    if run.cost.train_macs is not None:
        return run.cost.train_macs, "cost.train_macs"
    known = [c.train_macs for c in run.candidates() if c.train_macs is not None]
    if known:
        return float(sum(known)), "sum of candidates' train_macs"
    return None, "not recorded"


def cost_block(run: Run) -> dict[str, Any]:
    cost = run.cost
    macs, source = search_train_macs(run)
    block: dict[str, Any] = {"train_macs": macs, "train_macs_source": source, "wall_time_s": cost.wall_time_s,
                             "train_s": cost.train_s, "flop_count_s": cost.flop_count_s, "ray_s": cost.ray_s,
                             "outside_training_s": None, "outside_training_share": None,
                             "outside_training_note": None}
    wall, train = cost.wall_time_s, cost.train_s
    if wall is None or train is None or wall <= 0:
        block["outside_training_note"] = "unavailable: the log lacks cost.wall_time_s or cost.train_s"
    elif train > wall:
        # Trials ran in parallel, so summed training time exceeds the wall clock; no honest share exists.
        block["outside_training_note"] = (f"unavailable: training time ({train:.0f} s) exceeds wall time "
                                          f"({wall:.0f} s) because trials ran in parallel")
    else:
        block["outside_training_s"] = wall - train
        block["outside_training_share"] = (wall - train) / wall
    return block


def full_training_comparison(run: Run, search_macs: float | None) -> dict[str, Any]:
    """The search's training multiply-adds over one full training of its final model (paper budget)."""
    budget = load_budget(FULL_TRAINING_BUDGET)
    out: dict[str, Any] = {"available": False, "reason": None, "budget": budget.name,
                           "full_epochs": budget.full_epochs, "train_videos": None, "final_gflops": None,
                           "full_training_macs": None, "ratio": None, "one_in": None}
    train_videos = (run.data or {}).get("train_videos")
    if run.final is None:
        out["reason"] = "the run has no final model yet"
    elif not train_videos:
        out["reason"] = "the run log has no data.train_videos"
    elif not search_macs:
        out["reason"] = "the run log records no training multiply-adds"
    if out["reason"] or run.final is None or not train_videos or not search_macs:
        return out
    final_gflops = run.final.model.gflops
    full = training_macs(final_gflops, budget.full_epochs * train_videos)
    out.update(available=True, train_videos=train_videos, final_gflops=final_gflops,
               full_training_macs=full, ratio=search_macs / full, one_in=full / search_macs)
    return out


def _judged(score: Score | None, decision: Decision | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"score": score.value if score else None, "score_ci": list(score.ci) if score and score.ci
                           else None, "score_sd": score.sd if score else None,
                           "repeats": score.repeats if score else None,
                           "criterion": score.criterion if score else None}
    if decision is not None:
        text = "; ".join(t for t in (decision.summary(), decision.start_text()) if t)
        out.update(decision=decision.to_dict(), decision_text=text, significant=decision.significant)
    return out


def _baseline(baseline: Baseline) -> dict[str, Any]:
    vs = baseline.vs_final
    if vs is None:
        verdict = "no interval"
    elif vs.beats:
        verdict = "the search's model is better"
    elif vs.loses:
        verdict = "the baseline is better"
    else:
        verdict = "within noise"
    return {"name": baseline.name, **_model(baseline.trial.model), **_judged(baseline.score),
            "heldout_top1": baseline.trial.heldout, "vs_final": vs.to_dict() if vs else None, "verdict": verdict}


def random_rank(final: dict[str, Any] | None, baselines: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Where the final model ranks among the random architectures (``baseline --random``): 1 + how many
    of them score strictly higher, on validation top-1 and, where measured, on the held-out split."""
    drawn = [b for b in baselines if b["name"].startswith(RANDOM_PREFIX)]
    if final is None or not drawn:
        return None

    def rank(key: str) -> int | None:
        mine = final.get(key)
        theirs = [b[key] for b in drawn if b.get(key) is not None]
        return None if mine is None or not theirs else 1 + sum(v > mine for v in theirs)

    return {"random": len(drawn), "val_rank": rank("top1"), "heldout_rank": rank("heldout_top1")}


def random_rank_text(rank: dict[str, Any]) -> str:
    """``the final model ranks 2 of 6 ...``: the search against random architectures, in one line."""
    n = rank["random"] + 1
    parts = [f"{r} of {n} on {where}" for r, where in ((rank["val_rank"], "validation top-1"),
                                                       (rank["heldout_rank"], "held-out top-1")) if r is not None]
    return (f"against {rank['random']} random architectures of the space at its target, the final model ranks "
            f"{' and '.join(parts) or 'unscored'} (one training each unless the run repeats; see each verdict)")


def _decision_counts(run: Run) -> dict[str, Any] | None:
    """How many decided steps beat proxy noise (None for a run written before steps kept decisions)."""
    decided = [s.decision for s in run.steps if s.decision is not None and s.decision.runner_up is not None]
    if not decided:
        return None
    significant = sum(d.significant is True for d in decided)
    return {"steps": len(decided), "significant": significant,
            "within_noise": sum(d.significant is False for d in decided),
            "one_seed": all(d.repeats <= 1 for d in decided),
            "simultaneous": all(d.method is not None for d in decided),
            "noise": sorted({d.noise for d in decided if d.noise})}


def summarize(run: Run, all_candidates: bool = False) -> dict[str, Any]:
    """Everything ``show`` prints, as plain data (``candidates`` per step only with ``all_candidates``)."""
    path = []
    for point in run.path():
        row = {"step": point.label, "axis": point.axis, **_model(point.model), "time_s": point.time_s,
               **_judged(point.score, point.decision), "heldout_top1": point.heldout_top1}
        if row["params_m"] is None and run.final is not None and run.final.factors == point.model.factors:
            row["params_m"] = run.final.params_m  # the log keeps the contracted model's params on ``final``
        path.append(row)
    in_progress = None
    if run.steps and run.steps[-1].chosen is None:
        last = run.steps[-1]
        counts: dict[str, int] = {}
        for cand in last.candidates:
            counts[cand.status] = counts.get(cand.status, 0) + 1
        in_progress = {"step": last.step, "evaluated": sum(c.evaluated for c in last.candidates),
                       "candidates": len(last.candidates), "statuses": counts}
    summary: dict[str, Any] = {
        "run_dir": str(run.run_dir), "status": run.status, "partial": run.partial, "progress": run.progress,
        "target_gflops": run.target_gflops, "target": run.target, "unit": run.unit, "seed": run.seed,
        "space": run.space, "budget": run.budget, "proxy_init": run.info.proxy_init,
        "data": dict(run.data) if run.data is not None else None,
        "stop_reason": str(run.stop_reason) if run.stop_reason else None, "stop_detail": run.stop_detail,
        "path": path, "in_progress": in_progress,
        "final": {**_model(run.final.model), "heldout_top1": run.final.heldout} if run.final is not None else None,
        "heldout": run.has_heldout, "decisions": _decision_counts(run),
        "baselines": [_baseline(b) for b in run.baselines],
    }
    if all_candidates:
        summary["steps"] = [{"step": s.step, "from": _model(s.start.model), "chosen": s.chosen, "time_s": s.time_s,
                             "decision": s.decision.to_dict() if s.decision else None,
                             "candidates": [{**_candidate(c, c.axis == s.chosen), **_judged(s.scores.get(c.name))}
                                            for c in s.candidates]}
                            for s in run.steps]
    summary["random_rank"] = random_rank(summary["final"], summary["baselines"])
    summary["cost"] = cost_block(run)
    summary["full_training"] = full_training_comparison(run, summary["cost"]["train_macs"])
    return summary


# --- text -----------------------------------------------------------------------------------
def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _table(header: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return [line(header).rstrip(), "-" * len(line(header).rstrip()), *(line(r).rstrip() for r in rows)]


def format_margin(vs: dict[str, Any], criterion: str | None) -> str:
    """A paired difference with its interval, e.g. ``+4.2 [1.0,7.5]``."""
    spec = score_spec(criterion)
    return f"{vs['margin']:+{spec}} [{vs['ci'][0]:{spec}},{vs['ci'][1]:{spec}}]"


def format_score(row: dict[str, Any]) -> str:
    """A score with its interval and its spread over seeds, e.g. ``33.3 [0.0,66.7]``."""
    if row.get("score") is None:
        return "-"
    spec = score_spec(row.get("criterion"))
    ci = f" [{row['score_ci'][0]:{spec}},{row['score_ci'][1]:{spec}}]" if row.get("score_ci") else ""
    sd = f" sd {row['score_sd']:{spec}} x{row['repeats']}" if row.get("score_sd") is not None else ""
    return f"{row['score']:{spec}}{ci}{sd}"


def accuracy_note(summary: dict[str, Any]) -> str:
    """Which accuracy is which: validation picked the models, so only a held-out split is unbiased."""
    data = summary["data"] or {}
    if summary["heldout"]:
        return (f"val top-1 ({data.get('val_videos', '?')} videos) chose these models and reads high; held-out top-1 "
                f"({data.get('test_videos')} test videos, never used to choose) does not")
    return "no held-out split: every accuracy here is the validation top-1 that chose these models (it reads high)"


def _params(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}M"


def decisions_note(counts: dict[str, Any] | None) -> str | None:
    """How many steps' decisions beat the noise, and which noise their intervals held."""
    if not counts:
        return None
    if counts.get("simultaneous"):
        beat = ("chose a model that beats every other candidate at once (simultaneous one-sided 90% bounds; "
                f"noise held: {'; '.join(counts['noise'])})")
    elif counts["one_seed"]:  # the interval resampled videos only (about 1.4x too narrow for seeds)
        beat = ("beat the noise of the validation videos (a run decided before simultaneous decisions: the "
                "90% interval against the runner-up only, seed noise not in it)")
    else:
        beat = ("beat proxy noise (a run decided before simultaneous decisions: the 90% interval against the "
                "runner-up only)")
    return (f"decisions: {counts['significant']} of {counts['steps']} steps {beat}; "
            f"{counts['within_noise']} within noise")


def format_summary(summary: dict[str, Any]) -> str:
    out: list[str] = []
    state = summary["status"] or "status unknown"
    out.append(f"run {summary['run_dir']} ({summary['progress'] if summary['partial'] else state})")
    unit = summary["unit"]
    latency = unit == "ms"
    facts = [f"target {_num(summary['target'], 'g')} {unit}",
             f"seed {_num(summary['seed'], 'd')}",
             f"space {summary['space'] or '-'}", f"budget {summary['budget'] or '-'}",
             f"proxy init {summary.get('proxy_init') or 'scratch'}"]
    data = summary["data"]
    if data:
        facts.append(f"data {data.get('root', '?')} ({data.get('num_classes', '?')} classes, "
                     f"{data.get('train_videos', '?')} train / {data.get('val_videos', '?')} val videos)")
    out.append(", ".join(facts))
    out.append("")

    # a latency search shows each model's ms after its GFLOPs
    rows = [[str(p["step"]), p["axis"] or "-", p["factors_short"], f"{p['gflops']:.4f}",
             *([_num(p["ms"], ".1f")] if latency else []),
             _params(p["params_m"]), _num(p["top1"], ".1f"), format_score(p), _num(p["heldout_top1"], ".1f"),
             format_duration(p["time_s"]), p.get("decision_text", "")] for p in summary["path"]]
    header = ["step", "axis", "factors", "GFLOPs", *(["ms"] if latency else []), "params", "val top-1",
              "score (90% CI)", "held-out", "time", "decision"]
    out += _table(header, rows, {0, *range(3, len(header) - 1)})
    out.append(accuracy_note(summary))
    note = decisions_note(summary["decisions"])
    if note:
        out.append(note)
    if summary["in_progress"]:
        ip = summary["in_progress"]
        states = ", ".join(f"{n} {s}" for s, n in ip["statuses"].items())
        out.append(f"step {ip['step']} in progress: {ip['evaluated']}/{ip['candidates']} evaluated ({states})")
    final = summary["final"]
    if final:
        target = summary["target"]
        value = final["ms"] if latency else final["gflops"]
        share = f" = {value / target:.1%} of the {target:g} {unit} target" if target and value else ""
        heldout = f", held-out top-1 {final['heldout_top1']:.1f}" if final.get("heldout_top1") is not None else ""
        speed = f", {final['ms']:.1f} ms" if latency and final["ms"] is not None else ""
        out.append(f"final: {final['factors_short']}, {final['gflops']:.4f} GFLOPs{speed}{share}, "
                   f"{_params(final['params_m'])} params, top-1 {_num(final['top1'], '.1f')}{heldout}")
    else:
        out.append("final: none yet")
    if summary["baselines"]:
        out.append("")
        out.append("baselines (the run's data, budget and seeds; final minus baseline, paired on the same videos)")
        rows = [[b["name"], b["factors_short"], f"{b['gflops']:.4f}", _num(b["top1"], ".1f"), format_score(b),
                 _num(b["heldout_top1"], ".1f"),
                 format_margin(b["vs_final"], b.get("criterion")) if b["vs_final"] else "-", b["verdict"]]
                for b in summary["baselines"]]
        out += ["  " + line for line in _table(["model", "factors", "GFLOPs", "val top-1", "score (90% CI)",
                                                 "held-out", "final - baseline", "verdict"], rows, {2, 3, 4, 5, 6})]
        if summary.get("random_rank"):
            out.append("  " + random_rank_text(summary["random_rank"]))
    if summary["stop_reason"]:
        detail = f" ({summary['stop_detail']})" if summary["stop_detail"] else ""
        out.append(f"stopped: {summary['stop_reason']}{detail}")

    for step in summary.get("steps", []):
        start = step["from"]
        out.append("")
        outcome = (f"chose {step['chosen']}, took {format_duration(step['time_s'])}" if step["chosen"]
                   else "not finished")
        out.append(f"step {step['step']} from {start['factors_short']} ({start['gflops']:.4f} GFLOPs, "
                   f"top-1 {_num(start['top1'], '.1f')}): {outcome}")
        rows = [["*" if c["chosen"] else "", c["axis"], c["factors_short"], _num(c["gflops"], ".4f"),
                 _params(c["params_m"]), _num(c["top1"], ".1f"), _num(c["top5"], ".1f"),
                 format_duration(c["train_time_s"]), c["status"] + (f": {c['error']}" if c["error"] else "")]
                for c in step["candidates"]]
        out += ["  " + line for line in _table(["", "axis", "factors", "GFLOPs", "params", "top-1", "top-5",
                                                 "train", "status"], rows, {3, 4, 5, 6, 7})]

    cost = summary["cost"]
    out += ["", "cost"]
    macs = cost["train_macs"]
    source = "" if cost["train_macs_source"] == "cost.train_macs" else f" ({cost['train_macs_source']})"
    out.append(f"  training multiply-adds  {_num(macs, '.3e')}{source}")
    out.append(f"  wall time               {format_duration(cost['wall_time_s'])}"
               + (f" ({cost['wall_time_s']:.0f} s)" if cost["wall_time_s"] is not None else ""))
    if cost["outside_training_share"] is not None:
        wall = cost["wall_time_s"]
        parts = [f"{name} {cost[key] / wall:.1%}" for name, key in (("FLOP counting", "flop_count_s"),
                                                                     ("Ray", "ray_s")) if cost[key] is not None]
        detail = f" ({', '.join(parts)})" if parts else ""
        out.append(f"  outside training        {format_duration(cost['outside_training_s'])} = "
                   f"{cost['outside_training_share']:.1%} of wall time{detail}")
    else:
        out.append(f"  outside training        {cost['outside_training_note']}")

    full = summary["full_training"]
    if full["available"]:
        one_in = full["one_in"]
        head = (f"search cost = 1/{one_in:.1f} of one full training" if one_in >= 1
                else f"search cost = {full['ratio']:.2f}x one full training")
        out.append(f"  {head} of the final model ({full['budget']} budget: {full['full_epochs']} epochs x "
                   f"{full['train_videos']} videos x 3 x {full['final_gflops']:.4f} GFLOPs = "
                   f"{full['full_training_macs']:.3e} multiply-adds)")
    else:
        out.append(f"  search cost vs one full training: unavailable ({full['reason']})")
    return "\n".join(out)
