"""Network morphism: a larger X3D that starts as exactly its parent's function.

A search candidate differs from the model its step started from along one axis, so it can start
from that model's trained weights instead of from scratch (Net2Net, Chen et al., ICLR 2016;
Network Morphism, Wei et al., ICML 2016). :func:`grow` maps the parent's state dict onto the
child's shapes so that, in eval mode, the child computes the parent's logits:

- frames, stride, crop: every tensor is copied; the network pools adaptively, so no weight depends
  on the clip size.
- depth: blocks are added at the end of each stage, so existing blocks keep their index (and their
  squeeze-excitation). A new block is freshly initialised with its last BN's weight and bias 0: its
  residual branch outputs 0 and ``relu(0 + x) = x``, because its input ``x`` is the output of a ReLU.
- width, bottleneck (stem, stage widths, inner widths, SE reduced widths, head inner): old channels
  keep their weights in the leading slots; a new channel gets fresh incoming weights and its BN
  starts at weight 1, bias 0, mean 0, variance 1, so it carries a live signal; every outgoing weight
  of a new channel (the input columns of the layers that read it) is 0, so no old unit reads it.
  In the SE this means an old gate reads no new reduced unit, and new reduced units read all inner
  channels but feed no gate until they learn to.

Why zero outgoing weights and not Net2Net's noisy split (copy a channel, halve the outgoing
weights, add noise): the split keeps the function only up to the noise and, without noise, leaves
twin channels that receive identical gradients. Zero outgoing weights keep the function exactly
and the new channels' fresh incoming weights differ from the start. The price: at the first step
a new channel's incoming weights get zero gradient (nothing downstream reads it yet); its outgoing
weights get a nonzero one (its activation is nonzero), so it starts learning one step later.

Contraction: the search's contraction candidates lie between the last step's start model and the
overshoot along one axis, so they inherit by growing from that start model, not by shrinking the
overshoot. Function preservation holds only for growth: removing channels or blocks changes the
function by however much the removed units contributed, and there is no exact shrink.
"""
from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor

from ..errors import ConfigError
from ..factors import Factors
from .x3d import X3D, SE_RATIO, round_width, stage_plan

#: BN tensors of a new channel: a unit scale on a standardised input, so the channel is live.
_BN_FILL = {"weight": 1.0, "bias": 0.0, "running_mean": 0.0, "running_var": 1.0}


def structure(factors: Factors) -> dict[str, int]:
    """Every channel count and block count the factors fix, named for error messages."""
    stem, plans, head_inner = stage_plan(factors)
    sizes = {"stem width": stem}
    for s, plan in enumerate(plans, start=1):
        sizes[f"stage {s} width"] = plan.width
        sizes[f"stage {s} inner width"] = plan.inner
        sizes[f"stage {s} SE width"] = round_width(plan.inner, SE_RATIO)
        sizes[f"stage {s} depth"] = plan.depth
    sizes["head inner width"] = head_inner
    return sizes


def check_growth(parent: Factors, child: Factors) -> None:
    """Raise a one-line :class:`ConfigError` naming the first quantity the child would shrink."""
    before, after = structure(parent), structure(child)
    for name, size in before.items():
        if after[name] < size:
            raise ConfigError(f"cannot grow {parent.short()} -> {child.short()}: {name} shrinks from {size} to "
                              f"{after[name]} (growth never removes channels or blocks)")


def _fresh_state(child: Factors, num_classes: int, shortcut_bn: bool,
                 generator: torch.Generator | None) -> dict[str, Tensor]:
    """The child's own initialisation (X3D's rule), drawn from ``generator`` or the global RNG."""
    if generator is None:
        return X3D(child, num_classes, dropout=0.0, shortcut_bn=shortcut_bn).state_dict()
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return X3D(child, num_classes, dropout=0.0, shortcut_bn=shortcut_bn).state_dict()


@lru_cache(maxsize=16)
def _shapes(factors: Factors, num_classes: int, shortcut_bn: bool) -> dict[str, torch.Size]:
    """The state dict shapes of an X3D (built once per argument set, off the global RNG)."""
    with torch.random.fork_rng(devices=[]):
        model = X3D(factors, num_classes, dropout=0.0, shortcut_bn=shortcut_bn)
    return {k: v.shape for k, v in model.state_dict().items()}


def _check_parent(parent_state: dict[str, Tensor], parent: Factors, num_classes: int, shortcut_bn: bool) -> None:
    expected = _shapes(parent, num_classes, shortcut_bn)
    missing = [k for k in expected if k not in parent_state]
    unexpected = [k for k in parent_state if k not in expected]
    wrong = [k for k in expected if k in parent_state and parent_state[k].shape != expected[k]]
    if missing or unexpected or wrong:
        what = (f"missing '{missing[0]}'" if missing else f"unexpected '{unexpected[0]}'" if unexpected
                else f"'{wrong[0]}' has shape {tuple(parent_state[wrong[0]].shape)}, not {tuple(expected[wrong[0]])}")
        raise ConfigError(f"the parent weights do not fit {parent.short()} (shortcut_bn={shortcut_bn}): {what}")


def _embed(old: Tensor, fresh: Tensor, key: str) -> Tensor:
    """``fresh`` with ``old`` in its leading slots; new input columns zeroed, new BN channels neutral."""
    if old.dim() == 0:  # num_batches_tracked
        return old.clone()
    out = fresh.to(old.dtype).clone()
    if old.dim() == 1 and key.rsplit(".", 1)[-1] in _BN_FILL:
        out.fill_(_BN_FILL[key.rsplit(".", 1)[-1]])
    out[tuple(slice(0, n) for n in old.shape)] = old
    if old.dim() >= 2:  # dim 1 is the input channel (1 for channel-wise convs, fixed for stem and fc2)
        out[:, old.shape[1]:] = 0
    return out


@torch.no_grad()
def grow(parent_state: dict[str, Tensor], parent: Factors, child: Factors, *, shortcut_bn: bool = True,
         num_classes: int | None = None, generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """The child's starting state dict: in eval mode it computes the parent's function.

    ``num_classes`` other than the parent's starts the classifier (``head.fc2``) fresh, as ``--init``
    does. Raises :class:`ConfigError` when the child is smaller than the parent in any channel or
    block count, or when ``parent_state`` does not fit ``parent``. Tensors keep the parent's dtype
    and device.
    """
    check_growth(parent, child)
    if "head.fc2.weight" not in parent_state:
        raise ConfigError(f"the parent weights do not fit {parent.short()}: missing 'head.fc2.weight'")
    parent_classes = parent_state["head.fc2.weight"].shape[0]
    _check_parent(parent_state, parent, parent_classes, shortcut_bn)
    classes = parent_classes if num_classes is None else num_classes
    fresh = _fresh_state(child, classes, shortcut_bn, generator)
    like = parent_state["stem.conv_xy.weight"]
    grown: dict[str, Tensor] = {}
    for key, new in fresh.items():
        old = parent_state.get(key)
        if old is None:  # a new block, whole (its BN's are fresh and neutral already)
            value = new.to(like.device, like.dtype if new.is_floating_point() else new.dtype)
            if key.endswith((".bn_c.weight", ".bn_c.bias")):
                value.zero_()  # the residual branch outputs 0: the block is an identity
            grown[key] = value
        elif key.startswith("head.fc2.") and old.shape != new.shape:
            grown[key] = new.to(old.device, old.dtype)  # another class count: a fresh classifier
        else:
            grown[key] = _embed(old, new.to(old.device), key)
    return grown


def grow_model(parent_model: X3D, child: Factors) -> X3D:
    """A new :class:`X3D` for ``child`` holding ``grow`` of ``parent_model``, on its device and dtype."""
    dropout = getattr(parent_model.head.dropout, "p", 0.0)
    model = X3D(child, parent_model.num_classes, dropout=dropout, shortcut_bn=parent_model.shortcut_bn)
    weight = parent_model.stem.conv_xy.weight
    model.to(weight.device, weight.dtype)
    model.load_state_dict(grow(parent_model.state_dict(), parent_model.factors, child,
                               shortcut_bn=parent_model.shortcut_bn))
    return model.train(parent_model.training)
