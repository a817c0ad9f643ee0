"""The `local` launcher's output: a TRL recipe, ready to run on a team's own GPUs.

A folder with `recipe.json` (base model, method, the exported files, TRL arguments),
`train.py` (reads the recipe, trains with TRL's SFTTrainer, DPOTrainer or KTOTrainer, saves the
model) and `requirements.txt`. Flywheel never imports TRL or torch: it writes text.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from gateway.tuning.launchers import TrainingFiles

# Conservative defaults for a LoRA-free first run on one GPU; the team edits recipe.json.
DEFAULT_ARGS: dict[str, dict[str, Any]] = {
    "sft": {"num_train_epochs": 3, "learning_rate": 2e-5, "per_device_train_batch_size": 4},
    "dpo": {"num_train_epochs": 1, "learning_rate": 5e-7, "beta": 0.1},
    "kto": {"num_train_epochs": 1, "learning_rate": 5e-7, "beta": 0.1},
}

TRAIN_PY = '''"""Written by Flywheel (gateway/tuning/recipe.py): TRL on an exported dataset.

    pip install -r requirements.txt
    python train.py            # reads recipe.json next to this file
"""

import json
from pathlib import Path

from datasets import load_dataset

HERE = Path(__file__).resolve().parent
recipe = json.loads((HERE / "recipe.json").read_text())
files = {"train": recipe["train_file"]}
if recipe.get("validation_file"):
    files["validation"] = recipe["validation_file"]
data = load_dataset("json", data_files=files)
method = recipe["method"]
out = str(HERE / recipe["output_dir"])
args = dict(recipe["args"], output_dir=out)
if "validation" in data:
    args.setdefault("eval_strategy", "epoch")

if method == "sft":
    from trl import SFTConfig as Config, SFTTrainer as Trainer
elif method == "dpo":
    from trl import DPOConfig as Config, DPOTrainer as Trainer
elif method == "kto":
    from trl import KTOConfig as Config, KTOTrainer as Trainer
else:
    raise SystemExit(f"unknown method {method!r}")

trainer = Trainer(
    model=recipe["base_model"],
    args=Config(**args),
    train_dataset=data["train"],
    eval_dataset=data.get("validation"),
)
trainer.train()
trainer.save_model(out)
print(f"saved to {out}; serve it, then: flywheel tune complete {recipe['run_id']} --model NAME")
'''

REQUIREMENTS = "trl>=0.12\ntransformers\ndatasets\naccelerate\ntorch\n"


def write_recipe(folder: Path, base_model: str, files: TrainingFiles) -> list[Path]:
    """Write the recipe into `folder` (created); the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    recipe = {
        "run_id": folder.name,
        "base_model": base_model,
        "method": files.method,
        "train_file": str(files.train.resolve()),
        "validation_file": str(files.validation.resolve()) if files.validation else None,
        "output_dir": "model",
        "args": DEFAULT_ARGS[files.method],
    }
    written = []
    for name, text in (
        ("recipe.json", orjson.dumps(recipe, option=orjson.OPT_INDENT_2).decode() + "\n"),
        ("train.py", TRAIN_PY),
        ("requirements.txt", REQUIREMENTS),
    ):
        path = folder / name
        path.write_text(text)
        written.append(path)
    return written
