"""How well a proxy ranks models: scores per criterion and seed, their spread, rank correlations.

For every criterion (``top1``, ``prob``, ``log-prob``) a model's proxy score is
its mean over seeds; the reference is the longer training's held-out top-1
(the test split where the dataset has one, else validation), averaged over its
seeds. Every score is taken on the videos all of the models' trainings read, so
point estimates and their intervals use the same videos. Agreement is
Spearman's and Kendall's rank correlation of the two over the models, each with
a bootstrap interval; stability is the spread of a model's proxy score across
seeds and how well one seed's ranking agrees with another's; the search's own
honesty (noise, coverage, precision, power) is :mod:`.honesty`'s. An undefined
figure is null, with its reason under ``undefined``.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from itertools import combinations
from typing import Any, Mapping

import numpy as np

from ..criteria import Criterion, value_matrices, video_values
from ..outcomes import SplitOutcomes
from ..simultaneous import NoiseModel
from ..stats import kendall, rank_interval, spearman
from .honesty import honesty, noise_block, pair_calls, pair_noise
from .reliability import seed_reliability
from ..utils.io import atomic_write_bytes, atomic_write_yaml
from .plan import Model

#: Criteria a model can be scored by on its own (gain per GFLOP needs a start model).
MODEL_CRITERIA = (Criterion.TOP1, Criterion.PROB, Criterion.LOG_PROB)


def score(outcomes: SplitOutcomes, criterion: Criterion) -> float:
    values = video_values(outcomes, criterion)
    return float(np.mean(list(values.values())))


@dataclass
class ModelScores:
    model: Model
    gflops: float
    proxy: dict[str, list[float]]      # criterion -> one score per proxy seed
    reference: list[float]             # held-out top-1 per reference seed
    #: Per-video values behind those scores (criterion -> seeds x videos; the reference's top-1, seeds x
    #: videos), on the videos every model's trainings read, in one order: what the Spearman's interval
    #: resamples. None: no interval.
    proxy_videos: dict[str, np.ndarray] | None = None
    reference_videos: np.ndarray | None = None

    def proxy_mean(self, criterion: str) -> float:
        return float(np.mean(self.proxy[criterion]))

    def proxy_sd(self, criterion: str) -> float:
        return float(np.std(self.proxy[criterion], ddof=1)) if len(self.proxy[criterion]) > 1 else 0.0

    @property
    def reference_mean(self) -> float:
        return float(np.mean(self.reference))


def model_scores(models: list[Model], gflops: Mapping[str, float], proxy: Mapping[str, list[SplitOutcomes]],
                 reference: Mapping[str, list[SplitOutcomes]]) -> list[ModelScores]:
    """Every model's scores from its per-seed outcomes (validation for the proxy, held-out for the
    reference, by model name), with the per-video values the Spearman's interval resamples."""
    proxy_values = {str(c): value_matrices(proxy, c) for c in MODEL_CRITERIA}
    reference_values = value_matrices(reference, Criterion.TOP1)
    if reference_values is None or any(v is None for v in proxy_values.values()):
        return [ModelScores(m, gflops[m.name], {str(c): [score(o, c) for o in proxy[m.name]] for c in MODEL_CRITERIA},
                            [o.top1 for o in reference[m.name]]) for m in models]
    # scores on the common videos, the ones the intervals resample
    return [ModelScores(m, gflops[m.name], {c: v[m.name].mean(axis=1).tolist() for c, v in proxy_values.items()},
                        reference_values[m.name].mean(axis=1).tolist(),
                        proxy_videos={c: v[m.name] for c, v in proxy_values.items()},
                        reference_videos=reference_values[m.name]) for m in models]


def _defined(value: float | None, key: str, reason: str, undefined: dict[str, str]) -> float | None:
    """``value``, or None with ``reason`` recorded under ``key`` when it is missing or not a number."""
    if value is None or not np.isfinite(value):
        undefined[key] = reason
        return None
    return float(value)


def summarize(models: list[ModelScores], settings: dict[str, Any]) -> dict[str, Any]:
    """Everything ``calibration.yaml`` holds."""
    reference = [m.reference_mean for m in models]
    undefined: dict[str, str] = {}
    out: dict[str, Any] = {**settings, "models": [], "seed_sd": {}, "seed_spearman": {}, "spearman": {},
                           "spearman_ci": {}, "kendall": {}, "kendall_ci": {}, "spearman_one_seed": {},
                           "reliability": {}, "honesty": {}}
    for m in models:
        out["models"].append({
            "name": m.model.name, "factors": m.model.factors.to_dict(), "gflops": m.gflops,
            "proxy": {c: {"mean": m.proxy_mean(c), "sd": m.proxy_sd(c), "seeds": m.proxy[c]} for c in m.proxy},
            "reference": {"top1": m.reference_mean,
                          "sd": float(np.std(m.reference, ddof=1)) if len(m.reference) > 1 else 0.0,
                          "seeds": m.reference}})
    ref_seeds = min(len(m.reference) for m in models)
    per_ref_seed = [[m.reference[s] for m in models] for s in range(ref_seeds)]
    out["reference_seed_spearman"] = _defined(_mean_pairwise_spearman(per_ref_seed), "reference_seed_spearman",
                                              _why_no_agreement(per_ref_seed), undefined)
    noise: dict[str, float | None] = {}
    for criterion in (str(c) for c in MODEL_CRITERIA):
        means = [m.proxy_mean(criterion) for m in models]
        seeds = len(models[0].proxy[criterion])
        per_seed = [[m.proxy[criterion][s] for m in models] for s in range(seeds)]
        constant = "every model scored the same"
        out["seed_sd"][criterion] = float(np.mean([m.proxy_sd(criterion) for m in models]))
        out["seed_spearman"][criterion] = _defined(_mean_pairwise_spearman(per_seed), f"seed_spearman.{criterion}",
                                                   _why_no_agreement(per_seed), undefined)
        out["spearman"][criterion] = _defined(spearman(means, reference), f"spearman.{criterion}", constant,
                                              undefined)
        out["kendall"][criterion] = _defined(kendall(means, reference), f"kendall.{criterion}", constant, undefined)
        one_seed = [spearman(s, reference) for s in per_seed]
        out["spearman_one_seed"][criterion] = _defined(
            float(np.mean(one_seed)) if all(np.isfinite(one_seed)) else None, f"spearman_one_seed.{criterion}",
            "a seed or the reference scored every model the same", undefined)
        out["reliability"][criterion] = _reliability(per_seed, f"reliability.{criterion}", undefined)
        for name, statistic in (("spearman", spearman), ("kendall", kendall)):
            out[f"{name}_ci"][criterion] = _rank_ci(models, criterion, statistic, f"{name}_ci.{criterion}", undefined)
        values = [m.proxy_videos[criterion] for m in models] if models[0].proxy_videos is not None else None
        noise[criterion] = pair_noise(values) if values is not None else None
        if values is None or noise[criterion] is None:
            undefined[f"honesty.{criterion}"] = "needs per-video outcomes and two or more proxy seeds"
            continue
        model = NoiseModel(criterion, noise[criterion], "this calibration")
        judged = honesty(pair_calls(values, reference, model), len(models))
        out["honesty"][criterion] = judged["figures"]
        undefined.update({f"honesty.{criterion}.{k}": v for k, v in judged["undefined"].items()})
    videos = models[0].proxy_videos["top1"].shape[1] if models[0].proxy_videos is not None else None
    out["noise"] = noise_block(noise, settings, len(models[0].proxy["top1"]), videos or 0, len(models))
    out["undefined"] = undefined
    return out


def _reliability(per_seed: list[list[float]], key: str, undefined: dict[str, str]) -> dict[str, Any] | None:
    """One seed's reliability (:mod:`.reliability`) of the models x seeds table, or None with its reason."""
    if len(per_seed) < 2:
        undefined[key] = "one seed"
        return None
    try:
        return seed_reliability(np.array(per_seed).T).to_dict()
    except ValueError as exc:
        undefined[key] = str(exc)
        return None


def _why_no_agreement(rankings: list[list[float]]) -> str:
    return "one seed" if len(rankings) < 2 else "a seed scored every model the same"


def _rank_ci(models: list[ModelScores], criterion: str, statistic: Any, key: str,
             undefined: dict[str, str]) -> dict[str, Any] | None:
    if any(m.proxy_videos is None or m.reference_videos is None for m in models):
        undefined[key] = "the runs kept no per-video outcomes"
        return None
    found = rank_interval([m.proxy_videos[criterion] for m in models], [m.reference_videos for m in models],
                          seed=0, statistic=statistic)
    if not np.isfinite(found.interval.low):
        undefined[key] = "every resample scored every model the same"
        return None
    return {"ci": found.interval.to_list(), "undefined_resamples": found.undefined}


def _mean_pairwise_spearman(rankings: list[list[float]]) -> float | None:
    """How well one seed's ranking agrees with another's, on average; None with fewer than two seeds."""
    if len(rankings) < 2:
        return None
    return float(np.mean([spearman(a, b) for a, b in combinations(rankings, 2)]))


def _cell(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def _ci_cell(entry: dict[str, Any] | None) -> str:
    return "-" if not entry else f"{entry['ci'][0]:.2f}..{entry['ci'][1]:.2f}"


def _share_cell(entry: dict[str, Any] | None) -> str:
    if not entry:
        return "-"
    ci = entry["ci"]
    return f"{entry['value']:.2f}" + ("" if ci is None else f" [{ci[0]:.2f},{ci[1]:.2f}]")


def _inits(summary: dict[str, Any]) -> str:
    """How each training started: the proxy's per ``--proxy-init``; the reference's always from scratch."""
    parent = summary.get("proxy_parent")
    proxy = ("from scratch" if summary.get("proxy_init", "scratch") == "scratch" else
             f"proxy init inherit: every model but {parent} grown from {parent}'s training of the same seed")
    return (f"proxy {summary.get('proxy_budget')}: {proxy}; reference {summary.get('reference_budget')}: "
            f"from scratch")


def table(summary: dict[str, Any]) -> list[str]:
    """The printed table: one line per model, then the correlations and the search's honesty per criterion."""
    header = f"{'model':<18} {'GFLOPs':>7}  {'proxy top-1':>14}  {'prob':>14}  {'log-prob':>15}  {'reference':>14}"
    lines = [_inits(summary), "", header, "-" * len(header)]
    for m in summary["models"]:
        p, r = m["proxy"], m["reference"]
        lines.append(f"{m['name']:<18} {m['gflops']:>7.4f}  {p['top1']['mean']:>6.1f} ± {p['top1']['sd']:>5.1f}  "
                     f"{p['prob']['mean']:>6.1f} ± {p['prob']['sd']:>5.1f}  "
                     f"{p['log-prob']['mean']:>6.3f} ± {p['log-prob']['sd']:>5.3f}  "
                     f"{r['top1']:>6.1f} ± {r['sd']:>5.1f}")
    lines.append("")
    lines.append(f"{'criterion':<10} {'Spearman':>9} {'90% CI':>11} {'Kendall':>8} {'90% CI':>11} {'one seed':>9} "
                 f"{'seed vs seed':>13} {'seed SD':>8} {'pair SD':>8}")
    for c in (str(c) for c in MODEL_CRITERIA):
        lines.append(f"{c:<10} {_cell(summary['spearman'][c]):>9} {_ci_cell(summary['spearman_ci'][c]):>11} "
                     f"{_cell(summary['kendall'][c]):>8} {_ci_cell(summary['kendall_ci'][c]):>11} "
                     f"{_cell(summary['spearman_one_seed'][c]):>9} {_cell(summary['seed_spearman'][c]):>13} "
                     f"{summary['seed_sd'][c]:>8.3g} {_cell(summary['noise']['sd'][c], '.3g'):>8}")
    ref = summary["reference_seed_spearman"]
    lines.append(f"reference seed vs seed: {'-' if ref is None else f'{ref:.2f}'}; pair SD: the seed noise of a "
                 f"paired difference (the noise block expand --noise reads)")
    lines.append("")
    lines.append("one seed's 90% decisions on every pair of models [90% CI over models]:")
    lines.append(f"{'criterion':<10} {'coverage':>19} {'precision':>19} {'power':>19} {'called':>11}")
    for c, h in summary["honesty"].items():
        lines.append(f"{c:<10} {_share_cell(h['coverage']):>19} {_share_cell(h['precision']):>19} "
                     f"{_share_cell(h['power']):>19} {h['called']:>4} of {h['judged']:<4}")
    lines.append("")
    lines.append("how much of one training's score is its model's (one seed's reliability ICC(C,1) [90% CI]):")
    lines.append(f"{'criterion':<10} {'one seed':>19} {'model SD':>9} {'training SD':>12} {'seeds for 0.7':>14}")
    for c, r in summary["reliability"].items():
        if r is not None:
            lines.append(f"{c:<10} {r['one_seed']:>5.2f} [{r['interval'][0]:>5.2f},{r['interval'][1]:>5.2f}] "
                         f"{r['model_sd']:>9.3g} {r['training_sd']:>12.3g} {_cell(r['seeds_for_0.7'], 'd'):>14}")
    for key, reason in summary["undefined"].items():
        lines.append(f"undefined: {key}: {reason}")
    return lines


def write(summary: dict[str, Any], models: list[ModelScores], yaml_path, png_path) -> None:
    atomic_write_yaml(yaml_path, summary)
    atomic_write_bytes(png_path, figure(models, summary))


def figure(models: list[ModelScores], summary: dict[str, Any]) -> bytes:
    """Proxy score against reference top-1, one panel per criterion, seed SDs as error bars."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4), layout="constrained")
    FigureCanvasAgg(fig)
    reference = [m.reference_mean for m in models]
    reference_sd = [float(np.std(m.reference, ddof=1)) if len(m.reference) > 1 else 0.0 for m in models]
    for index, criterion in enumerate(str(c) for c in MODEL_CRITERIA):
        ax = fig.add_subplot(1, len(MODEL_CRITERIA), index + 1)
        ax.errorbar(reference, [m.proxy_mean(criterion) for m in models], xerr=reference_sd,
                    yerr=[m.proxy_sd(criterion) for m in models], fmt="o", capsize=3, gid=f"calibration:{criterion}")
        for m, x in zip(models, reference):
            ax.annotate(m.model.name, (x, m.proxy_mean(criterion)), xytext=(4, 4), textcoords="offset points",
                        fontsize=7)
        ax.set_xlabel(f"reference held-out top-1 (%), {summary['reference_budget']}")
        ax.set_ylabel(f"proxy {criterion}, {summary['proxy_budget']}")
        ax.set_title(f"{criterion}: Spearman {_cell(summary['spearman'][criterion])}"
                     f" [{_ci_cell(summary['spearman_ci'][criterion])}]"
                     f"\nKendall {_cell(summary['kendall'][criterion])}"
                     f" [{_ci_cell(summary['kendall_ci'][criterion])}]", fontsize=9)
        ax.grid(True, alpha=0.3)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=150)
    return buffer.getvalue()
