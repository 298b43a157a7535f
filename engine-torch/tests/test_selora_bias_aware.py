"""SeLoRA and bias-aware LoRA on their own: the Gram identities their regularizers use, the per-example
update, the flattened forms, the adversary, the task adapters, and whole runs' files and metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import FIXTURES, Collector, make_job, make_plan
from workbench_torch.distributed import World
from workbench_torch.methods import create_method
from workbench_torch.methods.bias_aware import TASK_MIXTURE_KEY, BiasAwareMethod, align_loss, token_kl
from workbench_torch.methods.selora import SEMANTIC_MEAN_KEY, SeloraMethod, clamped_pair_cosines, gram_frobenius
from workbench_torch.models import load_model
from workbench_torch.plan import collate
from workbench_torch.protocol import Emitter, NeverStop
from workbench_torch.train import Trainer


def method_for(tmp_path: Path, method: str, **section: object) -> tuple[SeloraMethod | BiasAwareMethod, dict]:
    job = make_job(tmp_path / "run", "gpt2-tiny", method)
    key = {"selora": "selora", "bias-aware": "biasAware"}[method]
    job["config"][key] = {**job["config"][key], **section}
    loaded = load_model(str(FIXTURES / "gpt2-tiny"), torch.device("cpu"))
    return create_method(loaded, job["config"]), job  # type: ignore[return-value]


def randomize_b(method: SeloraMethod | BiasAwareMethod, seed: int = 0) -> None:
    """B starts at zero (the adapter changes nothing); tests of the update need one that does."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in method.trainable():
            if t.name.endswith("lora_B.weight"):
                t.parameter.copy_(torch.randn(t.parameter.shape, generator=generator) * 0.1)


def fitted_selora(tmp_path: Path) -> tuple[SeloraMethod, dict]:
    """SeLoRA fitted to a plan, with B and the encoders' last layer random: its mixing is not the identity."""
    method, _ = method_for(tmp_path, "selora", hiddenSize=4)
    plan = make_plan()
    method.fit(plan)
    randomize_b(method)
    with torch.no_grad():
        for parameters in method.encoders.values():
            parameters[2].normal_(0, 0.5)
    return method, plan  # type: ignore[return-value]


def test_gram_identities_equal_the_norms_they_replace() -> None:
    torch.manual_seed(0)
    a, b, d = torch.randn(3, 7), torch.randn(5, 3), torch.randn(4, 3, 3)
    direct = torch.stack([(b @ dp @ a).square().sum() for dp in d])
    assert torch.allclose(gram_frobenius(d, a @ a.T, b.T @ b), direct, rtol=1e-5)
    tasks = [(torch.randn(3, 7), torch.randn(5, 3)) for _ in range(3)]
    products = [bt @ at for at, bt in tasks]
    pairs = sum((products[i] - products[j]).square().sum() for i in range(3) for j in range(i + 1, 3))
    assert float(align_loss(tasks)) == pytest.approx(float(pairs), rel=1e-5)
    # Identical adapters: exactly zero, never a rounding below it.
    assert float(align_loss([tasks[0], tasks[0]])) >= 0


def test_pair_weights_are_clamped_cosines_in_pair_order() -> None:
    s = torch.tensor([[1.0, 0.0], [1.0, 1.0], [-1.0, 0.0], [0.0, 0.0]])
    w = clamped_pair_cosines(s)
    expected = [2**-0.5, 0.0, 0.0, 0.0, 0.0, 0.0]  # (0,1) (0,2) (0,3) (1,2) (1,3) (2,3)
    assert w.tolist() == pytest.approx(expected, abs=1e-6)


def test_token_kl_counts_the_positions_whose_next_token_is_a_target() -> None:
    torch.manual_seed(1)
    p, q = torch.randn(1, 3, 4), torch.randn(1, 3, 4)
    mask = torch.tensor([[0.0, 1.0, 1.0]])
    log_p, log_q = p.log_softmax(-1), q.log_softmax(-1)
    per_position = (log_p.exp() * (log_p - log_q)).sum(-1)[0]
    assert float(token_kl(p, q, mask)) == pytest.approx(float(per_position[:2].mean()), rel=1e-5)
    assert float(token_kl(p, p, mask)) == pytest.approx(0, abs=1e-6)
    assert float(token_kl(p, q, torch.zeros(1, 3))) == 0


def test_selora_mixes_each_example_by_its_own_semantic_vector(tmp_path: Path) -> None:
    method, plan = fitted_selora(tmp_path)
    batch = collate(plan, [2, 3, 4])
    method.prepare(batch, False)
    path, a, b = method.layers[0]
    x = torch.randn(3, 5, a.shape[1])
    together = method.delta(path, x)
    for row in range(3):
        m = method.mixing(path, method.semantics[row : row + 1])[0]
        alone = ((x[row] @ a.T) * method.scaling) @ m.T @ b.T
        assert torch.allclose(together[row], alone, atol=1e-5)
    # Different prompts, different updates: the mixing is not the identity any more.
    assert not torch.allclose(together[0], ((x[0] @ a.T) * method.scaling) @ b.T, atol=1e-4)
    assert float(method.semantic_loss().detach()) > 0


def test_selora_flattened_is_the_update_at_the_mean_semantic_vector(tmp_path: Path) -> None:
    method, plan = fitted_selora(tmp_path)
    ids = collate(plan, [2, 3]).input_ids
    method.semantics = None  # no prompts set: the mean s_bar
    with torch.no_grad():
        native = method.forward(ids, False)
        flat = method.flattened("base")
        with method.flat_forward(flat):
            flattened = method.forward(ids, False)
        with method.adapters_off():
            base = method.forward(ids, False)
    assert flat.peft_config["r"] == method.settings["r"] and flat.peft_config["target_modules"] == ["c_attn"]
    assert torch.allclose(flattened, native, atol=1e-5)
    assert not torch.allclose(base, native, atol=1e-3)
    state = method.state_dict()
    assert SEMANTIC_MEAN_KEY in state and any(".selora_g.2.weight" in k for k in state)
    assert torch.equal(state[SEMANTIC_MEAN_KEY], method.semantic_mean)
    with pytest.raises(Exception, match="semantic_mean"):
        method.load_state_dict({k: v for k, v in state.items() if k != SEMANTIC_MEAN_KEY})


def test_the_adversary_ascends_and_stays_on_its_sphere(tmp_path: Path) -> None:
    method, _ = method_for(tmp_path, "bias-aware", reading="adversarial", epsilon=0.3)
    randomize_b(method)
    assert method.offset is not None and float(method.offset.norm()) == pytest.approx(0.3, rel=1e-5)
    plan = make_plan()
    batch = collate(plan, [2, 3, 4, 5])
    method.prepare(batch, False)
    start = method.offset.clone()
    before = float(method.bias_loss(method.offset).detach())
    method.prepare(batch, True)
    assert float(method.offset.norm()) == pytest.approx(0.3, rel=1e-5)
    assert not torch.equal(method.offset, start)
    assert float(method.bias_loss(method.offset).detach()) > before


def test_counterfactual_bias_loss_reads_the_plans_counterfactuals(tmp_path: Path) -> None:
    method, _ = method_for(tmp_path, "bias-aware")
    randomize_b(method)
    plan = make_plan()
    method.fit(plan)
    batch = collate(plan, [2, 3, 4, 5])
    method.prepare(batch, True)
    assert float(method.bias_loss(None)) == 0 and method.counterfactual_rows() == []
    plan["examples"][3]["counterfactual"] = [5, 6, 7]
    method.fit(plan)
    method.prepare(batch, True)
    rows = method.counterfactual_rows()
    assert rows == [plan["examples"][3]["prompt"]]
    diff = method.pooled_states([[5, 6, 7]]) - method.pooled_states(rows)
    assert float(method.bias_loss(None)) == pytest.approx(float(diff.square().sum() / 4), rel=1e-5)


def test_a_task_step_trains_only_its_task_and_the_mixture_flattens_exactly(tmp_path: Path) -> None:
    method, _ = method_for(tmp_path, "bias-aware", tasks=["a", "b", "c"], lambdaAlign=0.0)
    plan = {**make_plan(), "taskProbabilities": [0.2, 0.3, 0.5]}
    method.fit(plan)
    randomize_b(method)
    assert method.peft_config("base") is None
    ids = collate(plan, [2, 3]).input_ids
    method.select_task(2)
    method.forward(ids, True).sum().backward()
    trained = {t.name for t in method.trainable() if t.parameter.grad is not None}
    assert trained and all(".align_tasks.2." in name for name in trained)
    method.select_task(None)
    with torch.no_grad():
        mixture = method.forward(ids, False)
        flat = method.flattened("base")
        with method.flat_forward(flat):
            flattened = method.forward(ids, False)
    assert flat is not None and flat.settings["r"] == 3 * method.settings["r"] and flat.settings["useRslora"] is False
    assert torch.allclose(flattened, mixture, atol=1e-5)
    assert method.state_dict()[TASK_MIXTURE_KEY].tolist() == pytest.approx([0.2, 0.3, 0.5])


def test_skipped_parameters_keep_the_runs_bias_correction(tmp_path: Path) -> None:
    """A task adapter first trained at step 3 takes AdamW's step-3 update, as adamw.ts's one step count gives it."""
    trainer = Trainer(make_job(tmp_path / "run", "gpt2-tiny"), make_plan(), Emitter(Collector().buffer), NeverStop(), World(0, 1, 0))
    trainer.optimizer_steps = 2
    p = torch.nn.Parameter(torch.zeros(3))
    optimizer = torch.optim.AdamW([p], lr=0.1, weight_decay=0.0)
    p.grad = torch.ones(3)
    trainer.age_optimizer_state(optimizer)
    optimizer.step()
    # m = 0.1, v = 0.001 at t = 3: step lr * (m / (1 - 0.9^3)) / sqrt(v / (1 - 0.999^3)).
    expected = -0.1 * (0.1 / (1 - 0.9**3)) / ((0.001 / (1 - 0.999**3)) ** 0.5 + 1e-8)
    assert p.detach().tolist() == pytest.approx([expected] * 3, rel=1e-5)


@pytest.mark.parametrize("method,section", [("selora", {}), ("bias-aware", {"tasks": ["a", "b"], "lambdaAlign": 0.5})])
def test_runs_write_the_native_and_flattened_adapters_and_log_the_regularizers(tmp_path: Path, collector: Collector, method: str, section: dict) -> None:
    job = make_job(tmp_path / "run", "gpt2-tiny", method, steps=4, checkpoint_every=4)
    plan = make_plan(steps=4)
    if method == "bias-aware":
        job["config"]["biasAware"] = {**job["config"]["biasAware"], **section}
        plan["taskProbabilities"] = [0.5, 0.5]
        for n, step in enumerate(plan["steps"]):
            step["task"] = n % 2
        plan["examples"][2]["counterfactual"] = [9, 8, 7]
    Trainer(job, plan, Emitter(collector.buffer), NeverStop(), World(0, 1, 0)).run()
    assert not [m for m in collector.messages() if m["type"] == "failed"]
    adapter = tmp_path / "run" / "adapter"
    # PEFT cannot hold the native adapter: no adapter_config.json beside it, one beside the flattened LoRA.
    assert not (adapter / "adapter_config.json").exists()
    flat = adapter / "flattened"
    assert {p.name for p in flat.iterdir()} == {"adapter_model.safetensors", "adapter_config.json", "workbench_adapter.json", "probe.safetensors"}
    sidecar = json.loads((flat / "workbench_adapter.json").read_text())
    assert sidecar["method"] == "lora" and sidecar["config"]["method"] == "lora" and sidecar["flattenedFrom"]["method"] == method
    assert "selora" not in sidecar["config"] and "biasAware" not in sidecar["config"]
    names = {p["name"] for m in collector.messages() if m["type"] == "metrics" for p in m["points"]}
    expected = {"loss/sem"} if method == "selora" else {"loss/bias", "loss/align", "loss/kl", "loss/bias_counterfactuals"}
    assert expected | {"flatten/max_logit_diff"} <= names
