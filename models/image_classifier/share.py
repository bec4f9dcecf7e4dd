"""Sharing a model built in the browser: its card, the push, the visitor's own Space.

`write_card` describes the model for the Hub: the categories, the search terms and where the
photos came from, how many, the metrics, the per-class accuracy and the confusion matrix.
`push` uploads the model with the visitor's OAuth token, which is passed on to the Hub client
and nowhere else (never stored, logged or shown); `create_space` deploys the image
classifier Space pinned to the pushed commit. Torch-free.
"""

from __future__ import annotations

import json
import os

from models.image_classifier import BASES, NAME
from models.image_classifier.workspace import Workspace
from shared import hub, registry
from shared.errors import UserError

# gradio's stand-in OAuth token outside a Space (its local mock signs in as the machine's own
# Hugging Face account): it is no real token, so the Hub client's own login is used instead.
MOCK_TOKEN = "mock-oauth-token-for-local-dev"


def hub_token(token: str | None) -> str | None:
    """The token to push with: the visitor's, or outside a Space the machine's own login."""
    if not token:
        raise UserError("Sign in with Hugging Face first (the button above), to push.")
    if token == MOCK_TOKEN and not os.environ.get("SPACE_ID"):
        return None
    return token


def repo_for(username: str, name: str) -> str:
    """`username/name`, checked as a Hub repo id."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    repo = f"{username}/{(name or '').strip()}"
    try:
        validate_repo_id(repo)
    except HFValidationError:
        raise UserError(
            f"'{name[:60]}' cannot be a repo name: use letters, digits, '-', '_' or '.', "
            "up to 96 characters."
        ) from None
    return repo


def write_card(ws: Workspace, repo: str, base: str, review: dict) -> None:
    """README.md (and a path-free metrics.json) in the workspace's model folder."""
    out = ws.model_dir
    metrics = json.loads((out / "metrics.json").read_text())
    base_repo, revision = registry.source(BASES[base][0])
    if revision is None:  # a local folder: name what it stands in for, not this server's path
        base_repo = BASES[base][1]

    counts = ws.counts()
    labels = list(review["classes"])
    # metrics.json is public once pushed: the run's settings without this server's paths
    config = metrics.get("config", {})
    metrics["config"] = {k: config.get(k) for k in ("size", "epochs", "freeze_epochs", "lr", "bs")}
    metrics["config"]["base_model"] = base_repo
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))

    rows = []
    for label in labels:
        where = ", ".join(f"{k}: {v}" for k, v in ws.sources.get(label, {}).items()) or "-"
        term = ws.terms.get(label, "-")
        acc = review["per_class"].get(label)
        acc_text = f"{acc:.0%}" if acc is not None else "-"
        rows.append(f"| {label} | {term} | {counts.get(label, 0)} | {where} | {acc_text} |")
    skipped = ", ".join(f"{n} {reason}" for reason, n in ws.skipped.most_common()) or "none"
    history = "\n".join(
        f"| {r['epoch']} | {r['phase']} | {r['train_loss']:.4f} | {r['valid_loss']:.4f} | "
        f"{r['error_rate']:.4f} | {r['seconds']:.0f}s |"
        for r in metrics.get("history", [])
    )
    m = review["metrics"]
    c = metrics["config"]
    training = f"""Built in the browser with the fast.ai course demos' *Build your own classifier*
(lessons 1–2): photos found by a web image search (or uploaded), checked and cleaned by hand,
then fine-tuned from [{base_repo}](https://huggingface.co/{base_repo}) with fastai's
`fine_tune` recipe: {c["freeze_epochs"]} epoch with the body frozen, then {c["epochs"]} with
every layer at discriminative learning rates under one-cycle, {c["size"]} px.

| category | search terms | photos | sources | validation accuracy |
|---|---|---|---|---|
{chr(10).join(rows)}

Photos skipped while collecting (broken, duplicate, too large, refused addresses): {skipped}.
{metrics["n_train"]} photos trained the model and {metrics["n_valid"]} checked it.

| epoch | phase | train loss | valid loss | error rate | time |
|---|---|---|---|---|---|
{history}

![Confusion matrix](confusion_matrix.png)

![Training curves](training.png)

Photos from a web search belong to their owners: check their licences before reusing the
example photos in `examples/`."""
    usage = f"""import timm, torch
from PIL import Image

model = timm.create_model("hf-hub:{repo}", pretrained=True).eval()
transform = timm.data.create_transform(**timm.data.resolve_data_config(model=model))
labels = model.pretrained_cfg["label_names"]  # {labels}
with torch.no_grad():
    probs = model(transform(Image.open("photo.jpg").convert("RGB"))[None]).softmax(-1)[0]
print(labels[probs.argmax()], probs.max().item())

# Or serve it with the demo's image classifier Space:
#   DEMO_MODEL_PETS_CLASSIFIER={repo} python spaces/image_classifier/app.py"""
    hub.write_card(
        out,
        title=f"{' vs '.join(labels[:4])}{' …' if len(labels) > 4 else ''} classifier",
        summary=(
            f"An image classifier for {len(labels)} categories ({', '.join(labels)}), "
            f"fine-tuned from `{base_repo}` on {sum(counts.values())} photos. Validation "
            f"accuracy {m['accuracy']:.1%} on {m['n_images']} photos."
        ),
        base_model=base_repo,
        tags=["image-classification", "timm", "fastai-course", "build-your-own-classifier"],
        library_name="timm",
        pipeline_tag="image-classification",
        metrics={"accuracy": m["accuracy"], "error_rate": m["error_rate"]},
        task_name="Image Classification",
        dataset_name="photos collected in the browser",
        training=training,
        usage=usage,
    )


def push(ws: Workspace, repo: str, base: str, review: dict, token: str | None, private: bool):
    """Push the workspace's model to `repo` with the visitor's token; returns the commit."""
    if not (ws.model_dir / "model.safetensors").is_file():
        raise UserError("Train a model first (step 3), then push it.")
    write_card(ws, repo, base, review)
    try:
        return hub.push(
            ws.model_dir, repo, message="Build your own classifier", private=private, token=token
        )
    except UserError:
        raise
    except Exception as e:
        raise UserError(_hub_failure("push the model", e)) from None


def create_space(repo: str, commit: str, space: str, token: str | None) -> str:
    """Deploy the image classifier Space to `space`, serving exactly `repo@commit`."""
    try:
        return hub.deploy("image_classifier", space, pins={NAME: f"{repo}@{commit}"}, token=token)
    except UserError:
        raise
    except Exception as e:
        raise UserError(_hub_failure("create the Space", e)) from None


def _hub_failure(what: str, e: Exception) -> str:
    """A Hub error in words, never with the token or a request dump."""
    from huggingface_hub.errors import HfHubHTTPError

    status = getattr(getattr(e, "response", None), "status_code", None)
    if isinstance(e, HfHubHTTPError) and status in (401, 403):
        return (
            f"The Hub refused to {what} ({status}): sign out and in again, and allow this "
            "Space to write repos when asked."
        )
    return f"Could not {what} ({type(e).__name__}{f' {status}' if status else ''}); try again."


def links(repo: str) -> dict[str, str]:
    """The model page and the snippets to use it."""
    from huggingface_hub import constants

    return {
        "page": f"{constants.ENDPOINT}/{repo}",
        "timm": f'model = timm.create_model("hf-hub:{repo}", pretrained=True)',
        "serve": f"{registry.env_var(NAME)}={repo} python spaces/image_classifier/app.py",
    }


def space_page(space: str) -> str:
    from huggingface_hub import constants

    return f"{constants.ENDPOINT}/spaces/{space}"
