"""The builder Space's page steps that need no accelerator: the session's workspace, cleaning
(steps 2 and 4), the time estimate, sharing (step 6) and taking a workspace back after a
reload. Each raises `UserError` for a person's mistake; the page shows it in the step's status
line (`shared.ui.reported`). gradio only, no torch.
"""

from __future__ import annotations

import gradio as gr

from models.image_classifier import cleaner, job, share
from models.image_classifier import workspace as wsp
from shared import limits
from shared.errors import UserError


def key(request: gr.Request | None) -> str:
    return request.session_hash if request and request.session_hash else "local"


def need(ws_id: str | None) -> wsp.Workspace:
    ws = wsp.get(ws_id)
    if ws is None:
        raise UserError("No photos yet (or they expired): search or upload some first (step 1).")
    return ws


def ensure(ws_id: str | None, request: gr.Request | None) -> wsp.Workspace:
    return wsp.get(ws_id) or wsp.create(key(request))


def per_category(value: object) -> int:
    cap = limits.BUILD_PHOTOS_PER_CLASS.value
    return int(limits.check_number(value, "number of photos per category", 1, cap))


def views(ws: wsp.Workspace, label: str | None = None, note: str = "") -> tuple:
    """After the photos changed: the summary, the category pickers, its gallery, the plan."""
    labels = ws.labels()
    label = label if label in labels else (labels[0] if labels else None)
    photos, ids = cleaner.category(ws, label)
    return (
        ws.summary(),
        ws.id,
        gr.Dropdown(choices=labels, value=label),
        gr.Dropdown(choices=labels, value=None),
        gr.Gallery(photos, label=f"Photos{note}: click to select"),
        ids,
        [],
    )


def show(ws_id, label):
    photos, ids = cleaner.category(need(ws_id), label)
    return gr.Gallery(photos, label="Photos: click to select"), ids, []


def pick(ids, selected, ws_id, label, evt: gr.SelectData):
    selected = cleaner.toggle(ids, selected, evt.index)
    photos, _ = cleaner.category(need(ws_id), label, selected)
    return gr.Gallery(photos, label=f"Photos: {len(selected)} selected"), selected


def remove(ws_id, selected, label):
    ws = need(ws_id)
    if not selected:
        raise UserError("Click the photos to remove first.")
    n = ws.remove(selected)
    return views(ws, label, f" (removed {n})")


def move(ws_id, selected, label, target):
    ws = need(ws_id)
    if not selected or not target:
        raise UserError("Click the photos to move, then pick the category they belong to.")
    target = limits.check_text(target, "category", limits.BUILD_CATEGORY_TEXT)
    n = ws.move(selected, target)
    return views(ws, label, f" (moved {n} to {wsp.clean_label(target)})")


def losses_view(ws: wsp.Workspace, selected=(), note: str = "") -> gr.Gallery:
    photos, _ = cleaner.top_losses(ws, ws.review, selected)
    label = "Top losses: actual → predicted (probability)"
    return gr.Gallery(photos, label=f"{label}{note}. Click to select.")


def pick_loss(ids, selected, ws_id, evt: gr.SelectData):
    selected = cleaner.toggle(ids, selected, evt.index)
    return losses_view(need(ws_id), selected, f": {len(selected)} selected"), selected


def clean_losses(ws_id, selected, target):
    """Remove (no target) or move the selected top-loss photos."""
    ws = need(ws_id)
    if not selected:
        raise UserError("Click the photos to clean first.")
    target = limits.check_text(target, "category", limits.BUILD_CATEGORY_TEXT)
    n = ws.move(selected, target) if target else ws.remove(selected)
    _, ids = cleaner.top_losses(ws, ws.review)
    what = f"moved {n} to {target}" if target else f"removed {n}"
    return losses_view(ws, (), f" ({what}: retrain to see the difference)"), ids, [], ws.summary()


def epochs_of(value: object) -> int:
    return int(limits.check_number(value, "number of epochs", 1, limits.BUILD_EPOCHS.value))


def estimate(ws_id, base, epochs):
    ws = wsp.get(ws_id)
    if ws is None or len(ws.labels()) < wsp.MIN_CLASSES:
        return "Add photos of at least two categories, then the time estimate shows here."
    return job.plan(ws.photos_dir, ws.model_dir, ws.counts(), base, epochs_of(epochs)).describe()


def categories(ws_id):
    ws = wsp.get(ws_id)
    return gr.Dropdown(choices=ws.labels() if ws else [], value=None)


def push(ws_id, name, private, profile: gr.OAuthProfile | None, token: gr.OAuthToken | None):
    """Push the model to the signed-in visitor's account, with their token (used only here)."""
    ws = need(ws_id)
    name = limits.check_text(name, "model repo name", limits.BUILD_NAME, required=True)
    if profile is None or token is None:
        raise UserError("Sign in with Hugging Face first (the button above).")
    if not getattr(ws, "review", None):
        raise UserError("Train a model first (step 3), then push it.")
    repo = share.repo_for(profile.username, name)
    commit = share.push(ws, repo, ws.base, ws.review, share.hub_token(token.token), private)
    ws.pushed = (repo, commit, private)
    links = share.links(repo)
    return (
        f"✅ Pushed to [{repo}]({links['page']}) (commit `{commit[:8]}`).\n\n"
        f"Load it anywhere with timm:\n```python\nimport timm\n{links['timm']}\n```\n"
        f"Serve it with the pets demo:\n```bash\n{links['serve']}\n```",
        gr.Button(interactive=True),
    )


def create_space(ws_id, name, profile: gr.OAuthProfile | None, token: gr.OAuthToken | None):
    ws = need(ws_id)
    name = limits.check_text(name, "Space name", limits.BUILD_NAME, required=True)
    if profile is None or token is None:
        raise UserError("Sign in with Hugging Face first (the button above).")
    repo, commit, private = getattr(ws, "pushed", (None, None, None))
    if repo is None:
        raise UserError("Push the model first: your Space serves it.")
    if private:
        raise UserError("Your Space needs the model to be public; push it without 'Private'.")
    space = share.repo_for(profile.username, name)
    share.create_space(repo, commit, space, share.hub_token(token.token))
    return f"✅ Your Space: [{space}]({share.space_page(space)}), serving {repo}@{commit[:8]}."


def restore(saved, ws_id, request: gr.Request):
    """A reload (signing in reloads the page) takes this browser's workspace back, if any."""
    ws = wsp.claim(saved, key(request)) if saved != ws_id else None
    if ws is None:
        return (gr.skip(),) * 11
    photos, ids = cleaner.top_losses(ws, ws.review)
    review = (ws.review["confusion"], cleaner.RunView.done(ws.review)[1]) if ws.review else ()
    return *views(ws), *(review or [gr.skip()] * 2), photos, ids
