"""The loop's pieces on their own: schedule, loss, collation, target selection, the protocol."""

from __future__ import annotations

import io
import math
import time

import pytest
import torch

from conftest import make_plan
from workbench_torch.methods.lora import select_targets
from workbench_torch.models import LinearModule
from workbench_torch.plan import collate, shard
from workbench_torch.protocol import Emitter, StopListener
from workbench_torch.schemas import ContractError
from workbench_torch.train import learning_rate_at, masked_loss_sum


def test_schedule_warms_up_linearly_then_decays_to_a_tenth() -> None:
    assert learning_rate_at(1, 1.0, 4, 20) == pytest.approx(0.25)
    assert learning_rate_at(4, 1.0, 4, 20) == pytest.approx(1.0)
    assert learning_rate_at(12, 1.0, 4, 20) == pytest.approx(0.1 + 0.9 * 0.5)
    assert learning_rate_at(20, 1.0, 4, 20) == pytest.approx(0.1)
    assert learning_rate_at(3, 2.0, 0, 2) == pytest.approx(0.2)


def test_loss_is_the_mean_over_shifted_targets() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 5)
    ids = torch.tensor([[1, 2, 3, 0], [4, 1, 0, 0]])
    mask = torch.tensor([[0, 1, 1, 0], [0, 1, 0, 0]], dtype=torch.float32)
    total, count = masked_loss_sum(logits, ids, mask)
    logp = torch.log_softmax(logits, -1)
    expected = -(logp[0, 0, 2] + logp[0, 1, 3] + logp[1, 0, 1])
    assert float(count) == 3
    assert float(total) == pytest.approx(float(expected), rel=1e-6)
    none, zero = masked_loss_sum(logits, ids, torch.zeros(2, 4))
    assert float(none) == 0 and float(zero) == 0


def test_collate_pads_right_to_a_multiple_of_eight_capped_at_max_seq_len() -> None:
    plan = make_plan()
    batch = collate(plan, [2, 3])
    longest = max(len(plan["examples"][i]["inputIds"]) for i in (2, 3))
    assert batch.input_ids.shape == (2, min(16, math.ceil(longest / 8) * 8))
    assert batch.input_ids[0, : len(plan["examples"][2]["inputIds"])].tolist() == plan["examples"][2]["inputIds"]
    assert int(batch.input_ids[0, -1]) == plan["padTokenId"]
    assert batch.token_count == sum(len(plan["examples"][i]["inputIds"]) for i in (2, 3))
    halves = [shard(collate(plan, [2, 3, 4, 5]), r, 2) for r in range(2)]
    assert torch.equal(torch.cat([h.input_ids for h in halves]), collate(plan, [2, 3, 4, 5]).input_ids)
    with pytest.raises(ValueError):
        shard(batch, 0, 3)


def test_targets_are_selected_as_the_tfjs_engine_and_peft_select_them() -> None:
    modules = [LinearModule(f"transformer.h.{i}.{name}", 4, 4, True) for i in range(2) for name in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")]
    targets, names = select_targets(modules, ["c_attn"])
    assert [t.path for t in targets] == ["transformer.h.0.attn.c_attn", "transformer.h.1.attn.c_attn"] and names == ["c_attn"]
    targets, names = select_targets(modules, ["attn.c_proj"])
    assert len(targets) == 2 and names == ["attn.c_proj"]
    targets, names = select_targets(modules, ["/h\\.1\\.mlp\\.c_fc/"])
    assert [t.path for t in targets] == ["transformer.h.1.mlp.c_fc"] and names == "transformer\\.h\\.1\\.mlp\\.c_fc"
    with pytest.raises(Exception, match="match no linear layer"):
        select_targets(modules, ["q_proj"])


def test_emitter_refuses_a_message_outside_the_contract() -> None:
    out = io.StringIO()
    emitter = Emitter(out)
    emitter.emit({"type": "log", "level": "info", "message": "hello"})
    with pytest.raises(ContractError):
        emitter.emit({"type": "progress", "progress": {"step": -1}})
    assert out.getvalue().count("\n") == 1
    silent = io.StringIO()
    Emitter(silent, speaks=False).emit({"type": "log", "level": "info", "message": "rank 1"})
    assert silent.getvalue() == ""


def test_stop_listener_hears_a_stop_line() -> None:
    listener = StopListener(io.StringIO('not json\n{"type":"progress"}\n{"type":"stop"}\n'))
    for _ in range(100):
        if listener.requested():
            break
        time.sleep(0.01)
    assert listener.requested()
