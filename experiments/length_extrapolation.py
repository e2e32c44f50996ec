"""Regenerate ``experiments/results/length_extrapolation.json``: the length-extrapolation experiment of
the Positional encoding chapter (``notebooks/transformer/positional-encoding.ipynb``).

The same tiny character-level GPT (:class:`companion.models.GPT`: 2 Pre-LN layers, d = 64, 4 heads)
is trained by the library's :class:`companion.train.Trainer` at context 64 on tiny Shakespeare with
each positional scheme (``GPTConfig.position``), and its perplexity is measured on the same held-out
text at 64, 128, 256 and 512 tokens (:func:`companion.losses.length_extrapolation`). The RoPE model is
also re-evaluated, with its weights unchanged, under position interpolation and NTK-aware scaling
(``GPTConfig.rope_scaling``), and fine-tuned briefly at 512 tokens with and without interpolation.

Training all the models takes a few minutes on one CPU thread, more than a chapter's 90-second
budget, so the notebook reads the numbers from the JSON file this script writes. The file records
the configuration and its sha256 (``config_hash``); ``tests/test_extrapolation.py`` checks that they
match this script's :class:`ExtrapolationConfig` and runs the script on its ``--smoke``
configuration.

Usage, from the repository root::

    python experiments/length_extrapolation.py                 # regenerate the cached results
    python experiments/length_extrapolation.py --smoke --out /tmp/smoke.json   # seconds; format only
    python experiments/length_extrapolation.py --device cuda   # same code on a GPU
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from companion.data import tiny_shakespeare
from companion.files import config_hash, provenance, write_json
from companion.losses import length_extrapolation
from companion.models import GPT, GPTConfig
from companion.tokenizers import CharTokenizer
from companion.train import TrainConfig, Trainer

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "length_extrapolation.json"


@dataclass(frozen=True)
class ExtrapolationConfig:
    """Everything that determines the experiment's numbers (hashed into the results file)."""

    schemes: tuple[str, ...] = ("sinusoidal", "learned", "rope", "alibi", "t5")
    train_len: int = 64
    eval_lens: tuple[int, ...] = (64, 128, 256, 512)
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    steps: int = 600
    batch_size: int = 32
    lr: float = 3e-3
    min_lr_frac: float = 0.1
    warmup: int = 30
    weight_decay: float = 0.1
    val_fraction: float = 0.1
    eval_tokens: int = 16384
    rope_variants: tuple[str, ...] = ("linear", "ntk")  # RoPE re-evaluated with these scalings
    finetune_len: int = 512  # RoPE fine-tuned briefly at this length, with and without interpolation
    finetune_steps: int = 100
    finetune_batch_size: int = 4
    finetune_lr: float = 1e-3
    finetune_warmup: int = 10
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def model(self, vocab_size: int, position: str, **overrides: Any) -> GPTConfig:
        """The GPT of one scheme: the library's defaults (GPT-2's init, tied embeddings) at this size."""
        return GPTConfig(
            vocab_size=vocab_size, block_size=self.train_len, n_layer=self.n_layers, n_head=self.n_heads,
            n_embd=self.d_model, position=position, **overrides,
        )  # fmt: skip

    def training(self, *, finetune: bool = False) -> TrainConfig:
        """The Trainer's settings for the main run or for RoPE's fine-tune at ``finetune_len``."""
        lr = self.finetune_lr if finetune else self.lr
        return TrainConfig(
            max_iters=self.finetune_steps if finetune else self.steps,
            batch_size=self.finetune_batch_size if finetune else self.batch_size,
            lr=lr,
            min_lr=self.min_lr_frac * lr,
            warmup_iters=self.finetune_warmup if finetune else self.warmup,
            weight_decay=self.weight_decay,
            eval_interval=0,
            seed=self.seed + 1 if finetune else self.seed,
            progress=False,
        )


def smoke_config() -> ExtrapolationConfig:
    """A configuration small enough to run in seconds, with the same output format."""
    return dataclasses.replace(
        ExtrapolationConfig(),
        train_len=16,
        eval_lens=(16, 32),
        d_model=16,
        n_heads=2,
        steps=3,
        warmup=1,
        batch_size=4,
        eval_tokens=256,
        finetune_len=32,
        finetune_steps=2,
        finetune_warmup=1,
        finetune_batch_size=2,
    )


def _rounded(ppl: dict[int, float | None]) -> dict[str, float | None]:
    return {str(L): (None if p is None else round(p, 6)) for L, p in ppl.items()}


def _with(model: GPT, config: GPTConfig, device: str | torch.device) -> GPT:
    """A model of ``config`` holding ``model``'s weights (a rescaled RoPE changes no parameter)."""
    other = GPT(config).to(device)
    other.load_state_dict(model.state_dict())
    return other


def run_length_extrapolation(
    config: ExtrapolationConfig, text: str, *, device: str | torch.device = "cpu", log: bool = False
) -> dict[str, Any]:
    """Train one GPT per scheme at ``train_len`` and evaluate perplexity at every ``eval_lens``.

    The text is encoded per character; the last ``val_fraction`` is held out and its first
    ``eval_tokens + 1`` tokens are the evaluation stream. Each scheme starts from the same seed and
    sees the same batches. RoPE is also re-evaluated with the same weights under each of
    ``rope_variants`` with factor ``L / train_len`` (``"rope+linear"``, ``"rope+ntk"``), and after
    ``finetune_steps`` more steps at ``finetune_len`` with position interpolation by
    ``finetune_len / train_len`` (``"rope+linear+ft"``) and, as a control, without it (``"rope+ft"``).

    Returns:
        ``{"config", "config_hash", "vocab_size", "final_train_loss", "perplexity"}`` where
        ``perplexity[name][str(L)]`` is a float or None (a length the model cannot run), and ``name``
        is a scheme or one of the RoPE variants above.
    """
    tok = CharTokenizer(text)
    ids = torch.tensor(tok.encode(text), dtype=torch.long)
    n_val = int(len(ids) * config.val_fraction)
    train_ids, val_ids = ids[:-n_val], ids[-n_val:]
    eval_ids = val_ids[: config.eval_tokens + 1]
    perplexity: dict[str, dict[str, float | None]] = {}
    final_loss: dict[str, float] = {}
    for scheme in config.schemes:
        torch.manual_seed(config.seed)
        model_config = config.model(tok.vocab_size, scheme)
        model = GPT(model_config).to(device)
        trainer = Trainer(model, train_ids, config=config.training(), block_size=config.train_len)
        losses = trainer.fit()["loss"]
        final_loss[scheme] = round(sum(losses[-50:]) / len(losses[-50:]), 6)
        perplexity[scheme] = _rounded(length_extrapolation(model, eval_ids, config.eval_lens))
        if log:
            print(scheme, final_loss[scheme], perplexity[scheme], flush=True)
        if scheme != "rope":
            continue
        for variant in config.rope_variants:  # same weights, no training: factor s = L / train_len
            row: dict[int, float | None] = {}
            for L in config.eval_lens:
                s = max(1.0, L / config.train_len)
                scaled = model_config if s == 1.0 else dataclasses.replace(
                    model_config, rope_scaling=variant, rope_scaling_factor=s
                )  # fmt: skip
                row[L] = length_extrapolation(_with(model, scaled, device), eval_ids, [L])[L]
            perplexity[f"rope+{variant}"] = _rounded(row)
        factor = config.finetune_len / config.train_len
        for name, scaling in (("rope+ft", None), ("rope+linear+ft", "linear")):
            tuned_config = dataclasses.replace(
                model_config, rope_scaling=scaling, rope_scaling_factor=factor if scaling else 1.0
            )
            tuned = _with(model, tuned_config, device)
            finetune = config.training(finetune=True)
            Trainer(tuned, train_ids, config=finetune, block_size=config.finetune_len).fit()
            perplexity[name] = _rounded(length_extrapolation(tuned, eval_ids, config.eval_lens))
            if log:
                print(name, perplexity[name], flush=True)
    cfg = config.to_dict()
    return {
        "config": cfg,
        "config_hash": config_hash(cfg),
        "vocab_size": tok.vocab_size,
        "final_train_loss": final_loss,
        "perplexity": perplexity,
    }


def run(config: ExtrapolationConfig, device: str, threads: int) -> dict:
    """Run the experiment and add a ``provenance`` record (script, versions, device, seconds)."""
    torch.set_num_threads(threads)
    start = time.perf_counter()
    result = run_length_extrapolation(config, tiny_shakespeare(), device=device, log=True)
    result["provenance"] = provenance(
        "experiments/length_extrapolation.py", device=device, threads=threads,
        seconds=time.perf_counter() - start,
    )  # fmt: skip
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the JSON results")
    parser.add_argument("--smoke", action="store_true", help="tiny configuration: checks the format only")
    parser.add_argument("--device", default="cpu", help="cpu (the cached file), cuda or mps")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.smoke and args.out == DEFAULT_OUT:
        parser.error("--smoke would overwrite the committed results: pass --out")
    config = smoke_config() if args.smoke else ExtrapolationConfig()
    write_json(run(config, args.device, args.threads), args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
