"""Data-parallel training on two CPU processes (gloo) equals one process on the concatenated batch.

The reference is the same training run in this process with batch ``2b``; the two workers are
separate Python processes joined by ``torch.distributed`` (gloo), each with batch ``b`` and the
model wrapped in ``DistributedDataParallel``.
"""

from __future__ import annotations

import pytest
import torch

from companion.train.ddp_check import compare_ddp_to_single


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_two_process_ddp_equals_single_process_in_float64():
    result = compare_ddp_to_single(world_size=2, batch_size=2, steps=3, dtype="float64")
    assert result["world_size"] == 2
    assert len(result["ddp_loss"]) == 3
    assert result["max_loss_diff"] <= 1e-12
    assert result["max_param_diff"] <= 1e-12
    # the check can fail: the losses of consecutive steps differ by far more than the tolerance
    assert abs(result["single_loss"][0] - result["single_loss"][-1]) > 1e-3


_STALL = r"""
import os, signal, sys, time
import torch
import torch.distributed as dist
from companion.train.distributed import setup

rank, world, _ = setup("cpu")
x = torch.ones(1)
dist.all_reduce(x)  # both ranks are alive
if rank == 1:
    os.kill(os.getpid(), signal.SIGSTOP)  # paused, not dead: the case a heartbeat does not catch
start = time.monotonic()
try:
    dist.all_reduce(x)
except Exception as exc:
    print(f"rank {rank} gave up after {time.monotonic() - start:.1f} s: {type(exc).__name__}", flush=True)
    os._exit(3)
"""


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_a_stopped_rank_fails_the_others_after_the_timeout(tmp_path):
    """Before: torch's default 30 minutes. With LLMF_DIST_TIMEOUT_S=3 the live rank gives up in seconds."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from companion.train.distributed import free_port

    script = tmp_path / "stall.py"
    script.write_text(_STALL)
    port = free_port()
    procs = []
    for rank in range(2):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        env["LLMF_DIST_TIMEOUT_S"] = "3"
        procs.append(
            subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE, text=True)
        )
    start = time.monotonic()
    try:
        out, _ = procs[0].communicate(timeout=120)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.kill()
            p.wait()
    assert procs[0].returncode == 3, out
    assert "rank 0 gave up after" in out
    waited = float(out.split("after ")[1].split(" s")[0])
    assert 2.5 <= waited < 30, out
    assert time.monotonic() - start < 100
