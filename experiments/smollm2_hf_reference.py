"""Regenerate ``experiments/results/smollm2_hf_reference.json``: what Hugging Face ``transformers``
computes for SmolLM2-135M-Instruct from the pinned GGUF file — the reference of the Modern LLMs
chapter (``notebooks/llm/modern-llms.ipynb``).

``transformers`` needs 30–45 s to load a GGUF file on a CPU, half the chapter's budget, so the chapter
compares the companion's model with these stored numbers; ``tests/test_llama.py`` recomputes them
with the live library and checks the file (so the stored reference cannot go stale silently).

Stored, for two inputs — the chat prompt ``CHAT`` rendered with the model's template, and the first
512 tokens of tiny Shakespeare:

* ``argmax``: the most likely next token at every position;
* ``positions``, ``tokens``, ``logits``: a sample of the logit matrix — at chosen positions, the top
  ``TOP`` tokens and ``RANDOM`` seeded random ones (the scatter plot's points);

and ``greedy``: the 40 tokens ``generate`` produces after the chat prompt with EOS banned
(``min_new_tokens=40``).

Usage, from the repository root::

    python experiments/smollm2_hf_reference.py [--out PATH]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

from companion import hub
from companion.data import tiny_shakespeare
from companion.files import provenance, write_json
from companion.tokenizers.bpe import BPETokenizer

OUT = Path(__file__).resolve().parent / "results" / "smollm2_hf_reference.json"
CHAT = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]
TEXT_TOKENS = 512
GREEDY_TOKENS = 40
TOP, RANDOM = 16, 16
TEXT_POSITIONS = 64  # sampled positions of the 512-token text (the chat prompt: every position)


def inputs(tokenizer: BPETokenizer) -> dict[str, list[int]]:
    """The two token sequences, as the companion's tokenizer encodes them (identical to HF's)."""
    chat = tokenizer.apply_chat_template(CHAT, add_generation_prompt=True)
    text = tokenizer.encode(tiny_shakespeare()[: 8 * TEXT_TOKENS])[:TEXT_TOKENS]
    return {"chat": chat, "text": text}


def sample_entries(logits: torch.Tensor, n_positions: int | None, seed: int) -> dict[str, list]:
    """Positions, tokens and float32 logits of the sample: top and random tokens at chosen positions."""
    g = torch.Generator().manual_seed(seed)
    t, v = logits.shape
    pos = (
        torch.arange(t) if n_positions is None else torch.randperm(t, generator=g)[:n_positions].sort().values
    )
    positions, tokens = [], []
    for p in pos.tolist():
        top = logits[p].topk(TOP).indices
        rand = torch.randint(0, v, (RANDOM,), generator=g)
        chosen = torch.cat([top, rand]).tolist()
        positions += [p] * len(chosen)
        tokens += chosen
    values = logits[torch.tensor(positions), torch.tensor(tokens)]
    return {"positions": positions, "tokens": tokens, "logits": [float(x) for x in values.float()]}


def load_hf():
    import transformers

    path = hub.path("smollm2", hub.SMOLLM2_GGUF)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=torch.float32
    )
    return model.eval()


def compute(model: Any, tokenizer: BPETokenizer) -> dict[str, Any]:
    """The reference record for ``model`` (a Hugging Face causal LM)."""
    record: dict[str, Any] = {}
    for seed, (name, ids) in enumerate(inputs(tokenizer).items()):
        idx = torch.tensor([ids])
        with torch.inference_mode():
            logits = model(idx).logits[0]
        entry = {"ids": ids, "argmax": logits.argmax(-1).tolist()}
        entry.update(sample_entries(logits, None if name == "chat" else TEXT_POSITIONS, seed))
        record[name] = entry
    chat = torch.tensor([record["chat"]["ids"]])
    with torch.inference_mode():
        out = model.generate(
            chat, attention_mask=torch.ones_like(chat), max_new_tokens=GREEDY_TOKENS,
            min_new_tokens=GREEDY_TOKENS, do_sample=False,
        )  # fmt: skip
    record["greedy"] = out[0, chat.shape[1] :].tolist()
    return record


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    import transformers

    start = time.perf_counter()
    torch.set_num_threads(2)
    tokenizer = BPETokenizer.from_pretrained("smollm2")
    record = compute(load_hf(), tokenizer)
    record["provenance"] = provenance(
        "experiments/smollm2_hf_reference.py", device="cpu", threads=2,
        seconds=time.perf_counter() - start, transformers=transformers.__version__,
        asset=f"{hub.ASSETS['smollm2'].requirement} sha256 {hub.ASSETS['smollm2'].sha256}",
    )  # fmt: skip
    write_json(record, args.out)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
