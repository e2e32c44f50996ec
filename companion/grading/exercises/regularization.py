"""Exercises of the Regularization chapter (``notebooks/foundations/regularization.ipynb``).

Checks compare the candidate with closed forms, with the coordinate-descent Lasso of
:mod:`companion.regularization.linear` (itself verified against scikit-learn's ``Lasso`` to 1e-10 in
``tests/test_regularization.py``), with ``torch.nn.Dropout``'s semantics, and with properties the math
guarantees; statistical checks use explicit generators and tolerances of at least 4 standard errors.
"""

from __future__ import annotations

import copy
import math
import random

import torch
from torch import nn

from companion.data.augment import eda
from companion.grading.checks import expect, expect_close, expect_no_error, expect_tensor
from companion.grading.registry import Exercise, register
from companion.regularization.inverted_dropout import dropout
from companion.regularization.linear import lasso, ridge
from companion.regularization.noise import activation_noise, add_weight_noise
from companion.regularization.prox import elastic_net_prox, ista, l1_subgrad, soft_threshold

# --------------------------------------------------------------------------------------------------
# regularization.l1-prox
# --------------------------------------------------------------------------------------------------


def _reference_ista(X, y, lam, steps):
    return ista(X, y, lam, steps)


L1_PROX = register(
    Exercise(
        id="regularization.l1-prox",
        title="The L1 subgradient, soft-thresholding, ISTA and the Elastic Net prox",
        names=("l1_subgrad", "soft_threshold", "ista", "elastic_net_prox"),
        references=(l1_subgrad, soft_threshold, _reference_ista, elastic_net_prox),
        signature='''def l1_subgrad(w):
    """The minimum-norm subgradient of ‖w‖₁: sign(w), with 0 at w = 0. Same shape and dtype as w."""

def soft_threshold(w, t):
    """S_t(w) = sign(w) · max(|w| − t, 0), element-wise, for a number t ≥ 0. Same shape and dtype."""

def ista(X, y, lam, steps):
    """ISTA for (1/2n)‖y − Xw‖² + lam·‖w‖₁ (no intercept), starting from w = 0.

    X: (n, p) float64; y: (n,). Step size η = 1/L with L = λ_max(XᵀX)/n.
    Each step: w ← S_{η·lam}(w − η·∇f(w)), ∇f(w) = −Xᵀ(y − Xw)/n. Returns w after `steps` steps, (p,).
    """

def elastic_net_prox(v, t1, t2):
    """argmin_u ½‖u − v‖² + t1‖u‖₁ + (t2/2)‖u‖²  =  S_{t1}(v) / (1 + t2). Same shape and dtype as v."""''',
        hint="threshold first, then shrink; the threshold in ISTA is η·λ (not λ); "
        "do not modify inputs in place.",
    )
)


def _sparse_problem(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """n = 200, p = 50, a 5-sparse truth with |w_j| ≥ 1, small noise."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(200, 50, generator=g, dtype=torch.float64)
    w = torch.zeros(50, dtype=torch.float64)
    support = torch.randperm(50, generator=g)[:5]
    signs = torch.where(torch.rand(5, generator=g) < 0.5, -1.0, 1.0).double()
    w[support] = signs * (1 + torch.rand(5, generator=g, dtype=torch.float64))
    y = X @ w + 0.1 * torch.randn(200, generator=g, dtype=torch.float64)
    return X, y, w


@L1_PROX.check("l1_subgrad is sign(w): ±1 away from 0 and 0 at w = 0 (as autograd of |w|)")
def _l1_subgrad(l1_subgrad_fn, soft_threshold_fn, ista_fn, prox_fn):
    w = torch.tensor([-3.0, -1e-12, 0.0, -0.0, 2e-9, 0.5, 7.0], dtype=torch.float64)
    leaf = w.clone().requires_grad_()
    leaf.abs().sum().backward()
    got = l1_subgrad_fn(w.clone())
    expect_tensor(got, "l1_subgrad(w)", shape=(7,))
    expect_close(got, leaf.grad, "l1_subgrad(w)", atol=0.0)


@L1_PROX.check("soft_threshold = sign(w)·max(|w| − t, 0), exact zeros for |w| ≤ t, t = 0 is the identity")
def _soft_values(l1_subgrad_fn, soft_threshold_fn, ista_fn, prox_fn):
    g = torch.Generator().manual_seed(1)
    w = 2 * torch.randn(4, 9, generator=g, dtype=torch.float64)
    w[0, :3] = torch.tensor([0.7, -0.7, 0.0], dtype=torch.float64)  # exactly at the threshold, and 0
    t = 0.7
    expected = torch.sign(w) * torch.clamp(w.abs() - t, min=0)
    got = soft_threshold_fn(w.clone(), t)
    expect_close(got, expected, "soft_threshold(w, 0.7)", atol=1e-12)
    zeros = w.abs() <= t
    expect(bool((got[zeros] == 0).all()), "entries with |w| <= t must be exactly 0")
    expect_close(soft_threshold_fn(w.clone(), 0.0), w, "soft_threshold(w, 0)", atol=0.0)


@L1_PROX.check("soft_threshold is odd, never crosses 0, and keeps the dtype (float32)")
def _soft_odd(l1_subgrad_fn, soft_threshold_fn, ista_fn, prox_fn):
    g = torch.Generator().manual_seed(2)
    w = 3 * torch.randn(50, generator=g)
    a, b = soft_threshold_fn(w.clone(), 1.3), soft_threshold_fn(-w, 1.3)
    expect_tensor(a, "soft_threshold(w, t) for float32 w", shape=(50,), dtype=torch.float32)
    expect_close(b, -a, "soft_threshold(-w, t) vs -soft_threshold(w, t)", atol=0.0)
    expect(bool((a * w >= 0).all()) and bool((a.abs() <= w.abs()).all()), "outputs must shrink towards 0")


@L1_PROX.check("ISTA matches the Lasso solution (scikit-learn's scaling, no intercept) to 1e-5")
def _ista_lasso(l1_subgrad_fn, soft_threshold_fn, ista_fn, prox_fn):
    X, y, _ = _sparse_problem(3)
    lam = 0.1
    got = ista_fn(X, y, lam, 1000)
    expect_tensor(got, "ista(X, y, lam, 1000)", shape=(50,))
    expect_close(got, lasso(X, y, lam, fit_intercept=False, tol=1e-14).coef, "ISTA solution", atol=1e-5)


@L1_PROX.check("ISTA recovers the support of a 5-sparse truth (n = 200, p = 50); ridge gives no zeros")
def _ista_support(l1_subgrad_fn, soft_threshold_fn, ista_fn, prox_fn):
    X, y, w_true = _sparse_problem(0)
    got = ista_fn(X, y, 0.05, 500)
    truth = (w_true != 0).nonzero().flatten().tolist()
    found = (got != 0).nonzero().flatten().tolist()
    expect(found == truth, f"support: expected indices {truth}, got {found}")
    ridge_zeros = int((ridge(X, y, 1.0, fit_intercept=False).coef == 0).sum())
    expect(ridge_zeros == 0, f"(reference) ridge should give no exact zeros, got {ridge_zeros}")


@L1_PROX.check("ISTA with steps = 0 returns zeros; inputs are not modified")
def _ista_zero_steps(l1_subgrad_fn, soft_threshold_fn, ista_fn, prox_fn):
    X, y, _ = _sparse_problem(4)
    X0, y0 = X.clone(), y.clone()
    got = ista_fn(X, y, 0.1, 0)
    expect_close(got, torch.zeros(50, dtype=torch.float64), "ista(X, y, lam, 0)", atol=0.0)
    ista_fn(X, y, 0.1, 5)
    expect(torch.equal(X, X0) and torch.equal(y, y0), "ista modified X or y in place")


@L1_PROX.check("elastic_net_prox = S_t1(v)/(1 + t2): soft-threshold, then shrink")
def _prox_closed_form(l1_subgrad_fn, soft_threshold_fn, ista_fn, prox_fn):
    g = torch.Generator().manual_seed(5)
    v = 3 * torch.randn(30, generator=g, dtype=torch.float64)
    for t1, t2 in ((0.5, 1.0), (0.0, 2.0), (1.2, 0.0), (0.3, 0.25)):
        expected = torch.sign(v) * torch.clamp(v.abs() - t1, min=0) / (1 + t2)
        expect_close(prox_fn(v.clone(), t1, t2), expected, f"elastic_net_prox(v, {t1}, {t2})", atol=1e-12)


@L1_PROX.check("elastic_net_prox is the minimizer: no nearby point has a lower objective")
def _prox_argmin(l1_subgrad_fn, soft_threshold_fn, ista_fn, prox_fn):
    v = torch.linspace(-3, 3, 25, dtype=torch.float64)
    t1, t2 = 0.8, 0.5
    u = prox_fn(v.clone(), t1, t2)
    expect_tensor(u, "elastic_net_prox(v, t1, t2)", shape=(25,))

    def objective(x):
        return 0.5 * (x - v) ** 2 + t1 * x.abs() + 0.5 * t2 * x**2

    for delta in (1e-3, -1e-3, 0.1, -0.1):
        worse = objective(u + delta) - objective(u)
        expect(bool((worse >= -1e-12).all()), f"u + {delta} has a lower objective than your prox at some v")


# --------------------------------------------------------------------------------------------------
# regularization.dropout
# --------------------------------------------------------------------------------------------------

DROPOUT = register(
    Exercise(
        id="regularization.dropout",
        title="Inverted dropout",
        names=("dropout",),
        references=(dropout,),
        signature='''def dropout(x, p, training, generator):
    """Inverted dropout, with torch.nn.Dropout's semantics.

    training=True: keep each entry with probability 1 − p (mask m_i ~ Bernoulli(1 − p), drawn with
    `generator`, a torch.Generator) and return m ⊙ x / (1 − p); p = 1 returns zeros (no NaN).
    training=False (or p = 0): return x unchanged. Same shape and dtype as x.
    """''',
        hint="draw the keep-mask with torch.rand(x.shape, generator=generator) >= p (or bernoulli_); "
        "divide the kept entries by 1 − p; handle p = 1 and training=False first.",
    )
)


def _positive(n: int, seed: int, dtype=torch.float64) -> torch.Tensor:
    return torch.rand(n, generator=torch.Generator().manual_seed(seed), dtype=dtype) + 0.5  # no zeros


@DROPOUT.check("training=False returns x unchanged")
def _drop_eval(dropout_fn):
    x = torch.randn(5, 7)
    expect_close(dropout_fn(x, 0.5, False, torch.Generator().manual_seed(0)), x, "eval output", atol=0.0)


@DROPOUT.check("p = 0 is the identity; p = 1 gives zeros, not NaN")
def _drop_edges(dropout_fn):
    x = torch.randn(4, 6)
    expect_close(dropout_fn(x, 0.0, True, torch.Generator().manual_seed(0)), x, "p = 0 output", atol=0.0)
    zeros = dropout_fn(x, 1.0, True, torch.Generator().manual_seed(0))
    expect_close(zeros, torch.zeros_like(x), "p = 1 output", atol=0.0)


@DROPOUT.check("kept entries equal x/(1 − p) and the drop rate is p (4 standard errors, n = 10⁵)")
def _drop_semantics(dropout_fn):
    n = 100_000
    for p in (0.2, 0.7):
        x = _positive(n, 1)
        out = dropout_fn(x, p, True, torch.Generator().manual_seed(2))
        expect_tensor(out, "dropout output", shape=(n,), dtype=torch.float64)
        kept = out != 0
        expect_close(out[kept], x[kept] / (1 - p), f"kept entries at p = {p}", atol=0.0, rtol=1e-12)
        rate = 1 - kept.double().mean().item()
        bound = 4 * math.sqrt(p * (1 - p) / n)
        expect(abs(rate - p) <= bound, f"p = {p}: fraction dropped {rate:.4f}, expected {p} ± {bound:.4f}")


@DROPOUT.check("E[dropout(x)] = x (Monte Carlo over 20 000 masks, 4 standard errors)")
def _drop_expectation(dropout_fn):
    x = torch.tensor([-2.0, -0.5, 0.0, 1.0, 3.0], dtype=torch.float64)
    p, reps = 0.5, 20_000
    out = dropout_fn(x.expand(reps, 5).contiguous(), p, True, torch.Generator().manual_seed(3))
    mean = out.mean(0)
    se = x.abs() * math.sqrt(p / (1 - p)) / math.sqrt(reps)
    bad = (mean - x).abs() > 4 * se + 1e-12
    expect(not bool(bad.any()), f"mean over masks {mean.tolist()} is not x = {x.tolist()} within 4 s.e.")


@DROPOUT.check("uses the generator: same seed → same output; the global RNG is not consumed")
def _drop_generator(dropout_fn):
    x = torch.randn(200)
    state = torch.random.get_rng_state()
    a = dropout_fn(x, 0.5, True, torch.Generator().manual_seed(7))
    b = dropout_fn(x, 0.5, True, torch.Generator().manual_seed(7))
    c = dropout_fn(x, 0.5, True, torch.Generator().manual_seed(8))
    expect(torch.equal(torch.random.get_rng_state(), state), "the global torch RNG was used")
    expect(torch.equal(a, b), "the same generator seed gave different masks")
    expect(not torch.equal(a, c), "different generator seeds gave the same mask")


@DROPOUT.check("in a model: parameter count unchanged, eval output equals the model without dropout")
def _drop_in_model(dropout_fn):
    class Drop(nn.Module):
        def forward(self, h):
            return dropout_fn(h, 0.5, self.training, torch.Generator().manual_seed(0))

    gen = torch.Generator().manual_seed(0)
    base = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    with torch.no_grad():
        for prm in base.parameters():
            prm.copy_(torch.randn(prm.shape, generator=gen))
    with_drop = nn.Sequential(base[0], base[1], Drop(), base[2])
    count = lambda m: sum(q.numel() for q in m.parameters())  # noqa: E731
    expect(count(with_drop) == count(base), "dropout must not add or remove parameters")
    x = torch.randn(10, 8, generator=gen)
    with_drop.eval()
    expect_close(with_drop(x), base(x), "eval-mode output of the model with dropout", atol=0.0)
    with_drop.train()
    expect(not torch.equal(with_drop(x), base(x)), "train-mode output should differ (dropout is active)")


@DROPOUT.check("the gradient is mask/(1 − p)")
def _drop_grad(dropout_fn):
    x = _positive(1000, 4).requires_grad_()
    out = dropout_fn(x, 0.4, True, torch.Generator().manual_seed(5))
    out.sum().backward()
    expect(x.grad is not None, "no gradient reached x")
    expect_close(x.grad, (out != 0).double() / 0.6, "d sum(out) / dx", atol=1e-12)


# --------------------------------------------------------------------------------------------------
# regularization.text-augment
# --------------------------------------------------------------------------------------------------

TEXT = register(
    Exercise(
        id="regularization.text-augment",
        title="EDA text augmentation: synonym, insert, delete, swap",
        names=("eda",),
        references=(eda,),
        signature='''def eda(sentence, ops, rng, synonyms):
    """Apply the EDA operations in `ops` (a list of names), in order, to a whitespace-tokenized sentence.

    rng: a random.Random, the only source of randomness. synonyms: dict word -> list of synonyms.
    "synonym": replace ONE random word that has synonyms by a random synonym (no such word: unchanged).
    "insert":  insert a random synonym of a random word that has one at a random position (+1 token;
               no such word: unchanged).
    "delete":  remove ONE random token, but never the last remaining one.
    "swap":    exchange the tokens at two different random positions.
    Return the tokens joined by single spaces; an empty sentence is returned as is.
    """''',
        hint="split once into a list of tokens, draw every choice from rng (never from the random module), "
        "and guard the empty and one-token cases before calling rng.randrange.",
    )
)

_SYN = {"good": ["great", "fine"], "movie": ["film"], "boring": ["dull", "tedious"]}
_SENT = "this movie was good but the ending was boring"


def _eda(eda_fn, sentence, ops, seed, synonyms=None):
    syn = copy.deepcopy(_SYN if synonyms is None else synonyms)
    out = eda_fn(sentence, list(ops), random.Random(seed), syn)
    expect(isinstance(out, str), f"eda must return a str, got {type(out).__name__}")
    expect(syn == (_SYN if synonyms is None else synonyms), "eda modified the synonyms dict")
    return out


@TEXT.check("same rng state → same output; different seeds → different outputs")
def _text_determinism(eda_fn):
    a = _eda(eda_fn, _SENT, ["swap", "synonym"], 0)
    b = _eda(eda_fn, _SENT, ["swap", "synonym"], 0)
    expect(a == b, f"same seed gave {a!r} and {b!r}")
    outs = {_eda(eda_fn, _SENT, ["swap", "synonym"], s) for s in range(10)}
    expect(len(outs) > 1, "10 different seeds gave identical outputs: is rng used?")


@TEXT.check("insert adds exactly one token, a synonym of a word in the sentence")
def _text_insert(eda_fn):
    words = _SENT.split()
    allowed = {s for w in words for s in _SYN.get(w, [])}
    for seed in range(20):
        out = _eda(eda_fn, _SENT, ["insert"], seed).split()
        expect(len(out) == len(words) + 1, f"insert: expected {len(words) + 1} tokens, got {len(out)}")
        extra = list(out)
        for w in words:  # what is left after removing the original tokens is the inserted one
            if w in extra:
                extra.remove(w)
        expect(
            len(extra) == 1 and extra[0] in allowed, f"inserted {extra}, expected one of {sorted(allowed)}"
        )


@TEXT.check("delete removes exactly one token (order kept), never the last one")
def _text_delete(eda_fn):
    words = _SENT.split()
    for seed in range(20):
        out = _eda(eda_fn, _SENT, ["delete"], seed).split()
        expect(len(out) == len(words) - 1, f"delete: expected {len(words) - 1} tokens, got {len(out)}")
        expect(
            any(words[:i] + words[i + 1 :] == out for i in range(len(words))),
            "not the sentence minus a token",
        )
    expect(_eda(eda_fn, "alone", ["delete"], 0) == "alone", "deleting from a 1-token sentence must keep it")
    expect(
        _eda(eda_fn, "a b", ["delete", "delete"], 0) in ("a", "b"), "two deletes of 'a b' must leave 1 token"
    )


@TEXT.check("swap keeps the tokens and exchanges exactly two positions")
def _text_swap(eda_fn):
    words = "w0 w1 w2 w3 w4 w5 w6".split()  # all distinct
    for seed in range(20):
        out = _eda(eda_fn, " ".join(words), ["swap"], seed).split()
        expect(sorted(out) == sorted(words), f"swap changed the tokens: {out}")
        moved = [i for i, (a, b) in enumerate(zip(words, out, strict=True)) if a != b]
        expect(len(moved) == 2, f"swap: expected 2 positions to change, got {len(moved)} ({out})")


@TEXT.check("synonym keeps the count and replaces one word by one of its synonyms")
def _text_synonym(eda_fn):
    words = _SENT.split()
    for seed in range(20):
        out = _eda(eda_fn, _SENT, ["synonym"], seed).split()
        expect(len(out) == len(words), f"synonym: expected {len(words)} tokens, got {len(out)}")
        changed = [(a, b) for a, b in zip(words, out, strict=True) if a != b]
        expect(len(changed) == 1, f"synonym: expected exactly one replaced word, got {changed}")
        expect(
            changed[0][1] in _SYN[changed[0][0]], f"{changed[0][1]!r} is not a synonym of {changed[0][0]!r}"
        )


@TEXT.check("words without synonyms are unchanged; an empty sentence is returned as is")
def _text_edges(eda_fn):
    plain = "the cat sat on the mat"
    for op in ("synonym", "insert"):
        expect(_eda(eda_fn, plain, [op], 0) == plain, f"{op}: a sentence without synonyms must not change")
    for op in ("synonym", "insert", "delete", "swap"):
        what = f"{op}: the empty sentence must be returned as is"
        expect(expect_no_error(lambda op=op: _eda(eda_fn, "", [op], 0), what) == "", what)


# --------------------------------------------------------------------------------------------------
# regularization.noise-injection
# --------------------------------------------------------------------------------------------------

NOISE = register(
    Exercise(
        id="regularization.noise-injection",
        title="Weight noise (context manager) and activation noise",
        names=("add_weight_noise", "activation_noise"),
        references=(add_weight_noise, activation_noise),
        signature='''@contextlib.contextmanager
def add_weight_noise(model, sigma, generator):
    """Inside the `with` block every parameter of `model` has N(0, sigma²) noise added (drawn with the
    torch.Generator `generator`); on exit the original values are restored bit for bit, also when the
    block raises. Buffers are not touched; the Parameter objects stay the same. Yields the model."""

def activation_noise(x, sigma, training, generator=None):
    """x + sigma·ε with ε ~ N(0, I) in training mode; x unchanged when training is False."""''',
        hint="save p.detach().clone() for every parameter before adding noise and copy the saved values "
        "back in a `finally:` block (subtracting the noise again is not bit-exact in floating point).",
    )
)


def _noise_net() -> nn.Module:
    gen = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Linear(100, 200), nn.BatchNorm1d(200), nn.Linear(200, 10))
    with torch.no_grad():
        for prm in net.parameters():
            prm.copy_(torch.randn(prm.shape, generator=gen))
        net[1].running_mean.copy_(torch.randn(200, generator=gen))
    return net


def _snapshot(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def _same(net: nn.Module, saved: dict[str, torch.Tensor]) -> list[str]:
    return [k for k, v in net.state_dict().items() if not torch.equal(v, saved[k])]


@NOISE.check("weights are restored bit-exactly on exit")
def _noise_restore(add_weight_noise_fn, activation_noise_fn):
    net = _noise_net()
    saved = _snapshot(net)
    with add_weight_noise_fn(net, 0.7, torch.Generator().manual_seed(1)):
        pass
    bad = _same(net, saved)
    expect(not bad, f"not restored bit-exactly: {bad}")


@NOISE.check("weights are restored when the block raises, and the exception propagates")
def _noise_raises(add_weight_noise_fn, activation_noise_fn):
    net = _noise_net()
    saved = _snapshot(net)
    try:
        with add_weight_noise_fn(net, 0.7, torch.Generator().manual_seed(1)):
            raise KeyError("inside the block")
    except KeyError:
        pass
    else:
        raise AssertionError("the exception raised inside the block was swallowed")
    bad = _same(net, saved)
    expect(not bad, f"after an exception, not restored: {bad}")


@NOISE.check("inside the block every parameter moves with std ≈ sigma (4 s.e.); buffers untouched")
def _noise_std(add_weight_noise_fn, activation_noise_fn):
    net = _noise_net()
    saved = _snapshot(net)
    sigma = 0.3
    with add_weight_noise_fn(net, sigma, torch.Generator().manual_seed(2)) as noisy:
        expect(noisy is net, "the context manager should yield the model")
        for name, prm in net.named_parameters():
            d = (prm.detach() - saved[name]).flatten()
            m = d.numel()
            expect(
                abs(d.std().item() - sigma) <= 4 * sigma / math.sqrt(2 * m) + 1e-6,
                f"{name}: noise std {d.std().item():.4f}, expected {sigma} (m = {m})",
            )
        expect(torch.equal(net[1].running_mean, saved["1.running_mean"]), "buffers must not be perturbed")


@NOISE.check("sigma = 0 leaves the weights bit-identical; Parameter objects keep their identity")
def _noise_zero(add_weight_noise_fn, activation_noise_fn):
    net = _noise_net()
    saved = _snapshot(net)
    ids = [id(q) for q in net.parameters()]
    with add_weight_noise_fn(net, 0.0, torch.Generator().manual_seed(3)):
        bad = _same(net, saved)
        expect(not bad, f"sigma = 0 changed {bad}")
    with add_weight_noise_fn(net, 0.5, torch.Generator().manual_seed(3)):
        pass
    expect(
        [id(q) for q in net.parameters()] == ids, "parameters were replaced (an optimizer would lose them)"
    )


@NOISE.check("gradients computed inside the block reach the parameters")
def _noise_grad(add_weight_noise_fn, activation_noise_fn):
    net = _noise_net()
    x = torch.randn(16, 100, generator=torch.Generator().manual_seed(4))
    with add_weight_noise_fn(net, 0.1, torch.Generator().manual_seed(4)):
        net(x).pow(2).mean().backward()
    expect(all(q.grad is not None for q in net.parameters()), "some parameter received no gradient")


@NOISE.check("activation noise only in training mode; eval and sigma = 0 return x unchanged")
def _act_eval(add_weight_noise_fn, activation_noise_fn):
    x = torch.randn(50, 20)
    expect_close(activation_noise_fn(x, 0.5, False), x, "activation_noise(x, 0.5, training=False)", atol=0.0)
    expect_close(activation_noise_fn(x, 0.0, True), x, "activation_noise(x, 0.0, training=True)", atol=0.0)
    expect(not torch.equal(activation_noise_fn(x, 0.5, True), x), "training mode must add noise")


@NOISE.check("activation noise has mean ≈ 0 and std ≈ sigma (4 s.e.), same shape and dtype")
def _act_std(add_weight_noise_fn, activation_noise_fn):
    x = torch.full((400, 250), 2.0, dtype=torch.float64)
    sigma = 0.5
    out = activation_noise_fn(x, sigma, True, torch.Generator().manual_seed(5))
    expect_tensor(out, "activation_noise output", shape=(400, 250), dtype=torch.float64)
    d = (out - x).flatten()
    m = d.numel()
    expect(abs(d.mean().item()) <= 4 * sigma / math.sqrt(m), f"noise mean {d.mean().item():.4g}, expected 0")
    expect(abs(d.std().item() - sigma) <= 4 * sigma / math.sqrt(2 * m), f"noise std {d.std().item():.4g}")
