"""Entry point: `python -m workbench_torch train --job JOB.json --plan PLAN.json` runs one TrainJob
(src-shared/worker-protocol.ts), answering with WorkerToMain messages, one JSON object a line on
stdout; a {"type":"stop"} line on stdin makes it checkpoint and answer `stopped`; its own diagnostics go
to stderr (the run log). `python -m workbench_torch info` prints the versions and the accelerator as JSON;
`verify --adapter DIR --model DIR` checks an adapter folder with PEFT itself (families the tfjs export cannot load: T5).
Under torchrun / accelerate every rank runs this; rank 0 alone speaks and writes."""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path
from typing import Any

from .protocol import Emitter, EngineError, NeverStop, StopListener
from .schemas import ContractError, validate


def info() -> dict[str, Any]:
    import accelerate
    import peft
    import torch
    import transformers

    from .methods import SUPPORTED_METHODS

    accelerator = "cpu"
    device_name = "CPU"
    if torch.cuda.is_available():
        accelerator = "rocm" if getattr(torch.version, "hip", None) else "cuda"
        device_name = torch.cuda.get_device_name(0)
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        accelerator, device_name = "mps", "Apple GPU"
    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "accelerate": accelerate.__version__,
        "accelerator": accelerator,
        "deviceName": device_name,
        "methods": list(SUPPORTED_METHODS),
    }


def train(job_file: str, plan_file: str, listen: bool, model_dir: str | None = None) -> int:
    from .distributed import close_world, init_world
    from .models import pick_device
    from .plan import read_plan
    from .train import Trainer

    device = pick_device()
    world = init_world(device.type)
    if device.type == "cuda" and world.active:
        import torch

        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    emitter = Emitter(sys.stdout, speaks=world.is_main)
    try:
        job = json.loads(Path(job_file).read_text())
        validate("train-job", job)
        if model_dir:
            job["modelDir"] = model_dir
        plan = read_plan(plan_file)
        stop = StopListener(sys.stdin) if listen and world.is_main else NeverStop()
        Trainer(job, plan, emitter, stop, world, device).run()
        return 0
    except EngineError as error:
        emitter.emit({"type": "failed", "error": error.to_json()})
        return 1
    except ContractError as error:
        emitter.emit({"type": "failed", "error": {"code": "invalid_input", "message": str(error)}})
        return 1
    except Exception as error:  # noqa: BLE001 - every failure must reach the main process as `failed`
        traceback.print_exc(file=sys.stderr)
        code = "out_of_memory" if "out of memory" in str(error).lower() else "internal"
        emitter.emit({"type": "failed", "error": {"code": code, "message": f"The pytorch engine failed: {type(error).__name__}: {error}"}})
        return 1
    finally:
        close_world(world)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="workbench_torch")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("train", help="run one TrainJob")
    run.add_argument("--job", required=True, help="the TrainJob as JSON")
    run.add_argument("--plan", required=True, help="the data plan (src-worker/data/data-plan.ts)")
    run.add_argument("--no-stdin", action="store_true", help="do not read stop requests from stdin (cluster jobs)")
    run.add_argument("--model-dir", help="the base model folder on this machine, in place of the job's (exported job folders)")
    commands.add_parser("info", help="versions and accelerator as JSON")
    check = commands.add_parser("verify", help="load an adapter folder with PEFT and compare its logits with the trainer's probe (JSON)")
    check.add_argument("--adapter", required=True)
    check.add_argument("--model", required=True)
    args = parser.parse_args(argv)
    if args.command == "info":
        print(json.dumps(info()))
        return 0
    if args.command == "verify":
        from .verify import verify_with_peft

        report = verify_with_peft(args.adapter, args.model)
        print(json.dumps(report))
        return 0 if report["passed"] else 1
    return train(args.job, args.plan, not args.no_stdin, args.model_dir)


if __name__ == "__main__":
    sys.exit(main())
