"""How well a proxy ranks models: scores per criterion and seed, their spread, rank correlations.

For every criterion (``top1``, ``prob``, ``log-prob``) a model's proxy score is
its mean over seeds; the reference is the longer training's held-out top-1
(the test split where the dataset has one, else validation), averaged over its
seeds. Agreement is Spearman's and Kendall's rank correlation of the two over
the models; stability is the spread of a model's proxy score across seeds and
how well one seed's ranking agrees with another's.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from itertools import combinations
from typing import Any, Mapping

import numpy as np

from ..criteria import Criterion, value_matrices, video_values
from ..outcomes import SplitOutcomes
from ..stats import kendall, spearman, spearman_interval
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
    videos = reference_values is not None and all(v is not None for v in proxy_values.values())
    return [ModelScores(m, gflops[m.name], {str(c): [score(o, c) for o in proxy[m.name]] for c in MODEL_CRITERIA},
                        [o.top1 for o in reference[m.name]],
                        proxy_videos={c: v[m.name] for c, v in proxy_values.items()} if videos else None,
                        reference_videos=reference_values[m.name] if videos else None)
            for m in models]


def summarize(models: list[ModelScores], settings: dict[str, Any]) -> dict[str, Any]:
    """Everything ``calibration.yaml`` holds."""
    reference = [m.reference_mean for m in models]
    out: dict[str, Any] = {**settings, "models": [], "seed_sd": {}, "seed_spearman": {}, "spearman": {},
                           "spearman_ci": {}, "kendall": {}, "spearman_one_seed": {}, "ceiling": {}}
    for m in models:
        out["models"].append({
            "name": m.model.name, "factors": m.model.factors.to_dict(), "gflops": m.gflops,
            "proxy": {c: {"mean": m.proxy_mean(c), "sd": m.proxy_sd(c), "seeds": m.proxy[c]} for c in m.proxy},
            "reference": {"top1": m.reference_mean,
                          "sd": float(np.std(m.reference, ddof=1)) if len(m.reference) > 1 else 0.0,
                          "seeds": m.reference}})
    ref_seeds = min(len(m.reference) for m in models)
    per_ref_seed = [[m.reference[s] for m in models] for s in range(ref_seeds)]
    ref_reliability = _mean_pairwise_spearman(per_ref_seed)
    out["reference_seed_spearman"] = ref_reliability
    for criterion in (str(c) for c in MODEL_CRITERIA):
        means = [m.proxy_mean(criterion) for m in models]
        seeds = len(models[0].proxy[criterion])
        per_seed = [[m.proxy[criterion][s] for m in models] for s in range(seeds)]
        out["seed_sd"][criterion] = float(np.mean([m.proxy_sd(criterion) for m in models]))
        out["seed_spearman"][criterion] = _mean_pairwise_spearman(per_seed)
        out["spearman"][criterion] = spearman(means, reference)
        out["spearman_ci"][criterion] = _spearman_ci(models, criterion)
        out["kendall"][criterion] = kendall(means, reference)
        out["spearman_one_seed"][criterion] = float(np.mean([spearman(s, reference) for s in per_seed]))
        out["ceiling"][criterion] = ceiling(out["seed_spearman"][criterion], seeds, ref_reliability, ref_seeds)
    return out


def _spearman_ci(models: list[ModelScores], criterion: str) -> list[float] | None:
    if any(m.proxy_videos is None or m.reference_videos is None for m in models):
        return None
    interval = spearman_interval([m.proxy_videos[criterion] for m in models], [m.reference_videos for m in models],
                                 seed=0)
    return interval.to_list()


def _mean_pairwise_spearman(rankings: list[list[float]]) -> float | None:
    """How well one seed's ranking agrees with another's, on average; None with fewer than two seeds."""
    if len(rankings) < 2:
        return None
    return float(np.mean([spearman(a, b) for a, b in combinations(rankings, 2)]))


def ceiling(proxy_r: float | None, proxy_seeds: int, reference_r: float | None, reference_seeds: int) -> float | None:
    """The rank correlation a proxy could be expected to reach at best against this reference, given
    how noisy both are: Spearman's correction for attenuation. Each side's seed-to-seed agreement ``r``
    is stepped up to its mean over ``k`` seeds (Spearman-Brown, ``k r / (1 + (k - 1) r)``), and two
    measures this reliable cannot correlate above the square root of the product. None when a side
    has one seed or shows no agreement between seeds at all. Rough with few models: it says whether
    a low Spearman is the proxy's fault or the measurement's.
    """
    if proxy_r is None or reference_r is None or not proxy_r > 0 or not reference_r > 0:
        return None
    step_up = [k * r / (1 + (k - 1) * r) for r, k in ((proxy_r, proxy_seeds), (reference_r, reference_seeds))]
    return float(np.sqrt(step_up[0] * step_up[1]))


def table(summary: dict[str, Any]) -> list[str]:
    """The printed table: one line per model, then the correlations per criterion."""
    header = f"{'model':<18} {'GFLOPs':>7}  {'proxy top-1':>14}  {'prob':>14}  {'log-prob':>15}  {'reference':>14}"
    lines = [header, "-" * len(header)]
    for m in summary["models"]:
        p, r = m["proxy"], m["reference"]
        lines.append(f"{m['name']:<18} {m['gflops']:>7.4f}  {p['top1']['mean']:>6.1f} ± {p['top1']['sd']:>5.1f}  "
                     f"{p['prob']['mean']:>6.1f} ± {p['prob']['sd']:>5.1f}  "
                     f"{p['log-prob']['mean']:>6.3f} ± {p['log-prob']['sd']:>5.3f}  "
                     f"{r['top1']:>6.1f} ± {r['sd']:>5.1f}")
    lines.append("")
    lines.append(f"{'criterion':<10} {'Spearman':>9} {'90% CI':>11} {'Kendall':>8} {'one seed':>9} "
                 f"{'seed vs seed':>13} {'seed SD':>8} {'ceiling':>8}")
    for c in (str(c) for c in MODEL_CRITERIA):
        cap = summary["ceiling"][c]
        ci = summary["spearman_ci"][c]
        lines.append(f"{c:<10} {summary['spearman'][c]:>9.2f} {'-' if ci is None else f'{ci[0]:.2f}..{ci[1]:.2f}':>11} "
                     f"{summary['kendall'][c]:>8.2f} "
                     f"{summary['spearman_one_seed'][c]:>9.2f} {summary['seed_spearman'][c]:>13.2f} "
                     f"{summary['seed_sd'][c]:>8.3g} {'-' if cap is None else f'{cap:.2f}':>8}")
    ref = summary["reference_seed_spearman"]
    lines.append(f"reference seed vs seed: {'- (one seed)' if ref is None else f'{ref:.2f}'}; ceiling: the best "
                 f"Spearman that noise this large allows (correction for attenuation)")
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
        ci, cap = summary["spearman_ci"][criterion], summary["ceiling"][criterion]
        ax.set_title(f"{criterion}: Spearman {summary['spearman'][criterion]:.2f}"
                     + ("" if ci is None else f" [{ci[0]:.2f}, {ci[1]:.2f}]")
                     + f"\nKendall {summary['kendall'][criterion]:.2f}"
                     + ("" if cap is None else f", ceiling {cap:.2f}"), fontsize=9)
        ax.grid(True, alpha=0.3)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=150)
    return buffer.getvalue()
