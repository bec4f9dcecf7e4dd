"""Fold-in: a new visitor's taste from a few ratings, the movies fixed (no retraining).

`fit_prior` measures, once at export, a Gaussian prior over user vectors fitted to the known
users and the rating noise (taste.json: aggregates, no ratings). `Taste` holds a trained model's
weights as NumPy arrays and that prior. `fold_in` is the maximum a posteriori user vector under
it: for the dot model, a regularised least-squares problem solved by a few Gauss-Newton steps
through the sigmoid (each a (factors + 1)-sized linear solve); for the MLP model, L-BFGS.
`predict_all` scores a user vector against every movie; `compare` sets it against the average
viewer.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from models.recommender.modules import DotProductBias
from models.recommender.train import predict


def fit_prior(model: nn.Module, users: np.ndarray, items: np.ndarray, stars: np.ndarray) -> dict:
    """What fold-in needs from the training ratings, as aggregates only (saved as taste.json,
    since the ratings themselves may not be redistributed): a Gaussian prior over the known
    users' own vectors, the rating noise (mean squared training residual) and the star scale."""
    taste = Taste(model, {"mean": [], "cov": [], "noise": 1.0, "scale": [1, 5]})
    if taste.kind == "dot":
        own = taste.user_vecs
        if taste.implicit is not None:  # a known user's own factors, without what they rated
            own = own - taste.implicit_offset(users, items, len(own))
        known = np.c_[own, taste.user_bias]  # a user = (own factors, bias)
    else:
        known = taste.user_vecs
    resid = predict(model, users, items) - stars
    return {
        "mean": known.mean(0).tolist(),
        "cov": np.cov(known, rowvar=False).tolist(),
        "noise": float(np.mean(resid**2)) if len(resid) else 1.0,
        "scale": [float(stars.min()), float(stars.max())] if len(stars) else [1.0, 5.0],
    }


class Taste:
    """User vectors against the fixed movies of `model`: a known user's, the average viewer's,
    or a new visitor's folded in. `prior`: what `fit_prior` measured on the training ratings."""

    def __init__(self, model: nn.Module, prior: dict) -> None:
        self.model = model
        self.kind = "dot" if isinstance(model, DotProductBias) else "nn"
        w = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
        self.y_range = model.y_range
        self.item_vecs = w["item_factors.weight"]
        self.user_vecs = w["user_factors.weight"]
        if self.kind == "dot":
            self.item_bias = w["item_bias.weight"][:, 0]
            self.user_bias = w["user_bias.weight"][:, 0]
            self.bias = float(w["bias"])
            self.implicit = w.get("item_implicit.weight")  # SVD++ models only
            self.average_vec = np.r_[self.user_vecs.mean(0), self.user_bias.mean()]
        else:
            self.average_vec = self.user_vecs.mean(0)
        self.prior_mean = np.asarray(prior["mean"], dtype=np.float64)
        if len(self.prior_mean):  # fit_prior itself builds a Taste without one
            cov = np.asarray(prior["cov"], dtype=np.float64)
            self.prior_prec = np.linalg.inv(cov + 1e-6 * np.eye(len(cov)))
        self.noise = float(prior["noise"])
        self.scale = tuple(float(x) for x in prior["scale"])
        self.average = self.predict_all(self.average_vec)  # the average viewer's stars

    def user_vector(self, user: int) -> np.ndarray:
        """A known user's vector as `predict_all` takes it (dot: factors + bias)."""
        vec = self.user_vecs[user]
        return np.r_[vec, self.user_bias[user]] if self.kind == "dot" else vec

    def predict_all(self, vec: np.ndarray) -> np.ndarray:
        """Predicted stars of every movie for a user vector (dot: factors + bias)."""
        lo, hi = self.y_range
        if self.kind == "dot":
            z = self.item_vecs @ vec[:-1] + vec[-1] + self.item_bias + self.bias
            return lo + (hi - lo) / (1 + np.exp(-z))
        with torch.no_grad():
            items = torch.arange(len(self.item_vecs))
            return self.model.score(torch.as_tensor(vec, dtype=torch.float32), items).numpy()

    def compare(self, vec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(predicted stars, lift) of every movie for a user vector. The lift is how many more
        stars than the average viewer this user would give each movie, their overall generosity
        left out (a harsh rater is not "below average" on every movie): dot, with the average
        viewer's bias in place of theirs; nn, less the user's median difference."""
        pred = self.predict_all(vec)
        if self.kind == "dot":
            lift = self.predict_all(np.r_[vec[:-1], self.average_vec[-1]]) - self.average
        else:
            diff = pred - self.average
            lift = diff - np.median(diff)
        return pred, lift

    def implicit_offset(self, users: np.ndarray, items: np.ndarray, n: int) -> np.ndarray:
        """Per user (0..n-1): the normalised sum of the implicit factors of what they rated."""
        counts = np.bincount(users, minlength=n).astype(np.float64)
        out = np.zeros((n, self.implicit.shape[1]))
        np.add.at(out, users, self.implicit[items] / np.sqrt(counts[users])[:, None])
        return out

    def fold_in(self, items: np.ndarray, stars: np.ndarray) -> np.ndarray:
        """A new user's vector (factors + bias) from a few ratings, movies fixed (no retraining).

        With implicit factors, what the visitor chose to rate adds its term as it does for
        known users."""
        theta = self.prior_mean.astype(np.float64).copy()
        lo, hi = self.y_range
        if self.kind == "dot":
            # user vector = own factors (solved for) + the implicit term of what they rated
            implicit = np.zeros(self.item_vecs.shape[1])
            if self.implicit is not None:
                implicit = self.implicit_offset(np.zeros(len(items), np.int64), items, 1)[0]
            q = np.c_[self.item_vecs[items], np.ones(len(items))].astype(np.float64)
            offset = self.item_bias[items] + self.bias + self.item_vecs[items] @ implicit
            for _ in range(10):
                p = 1 / (1 + np.exp(-(q @ theta + offset)))
                resid = stars - (lo + (hi - lo) * p)
                jac = q * ((hi - lo) * p * (1 - p))[:, None]
                lhs = jac.T @ jac / self.noise + self.prior_prec
                rhs = jac.T @ resid / self.noise - self.prior_prec @ (theta - self.prior_mean)
                step = np.linalg.solve(lhs, rhs)
                theta += step
                if np.abs(step).max() < 1e-6:
                    break
            theta[:-1] += implicit
            return theta
        mean = torch.as_tensor(self.prior_mean, dtype=torch.float32)
        prec = torch.as_tensor(self.prior_prec, dtype=torch.float32)
        vec = mean.clone().requires_grad_()
        opt = torch.optim.LBFGS([vec], max_iter=50, line_search_fn="strong_wolfe")
        items_t, stars_t = torch.as_tensor(items), torch.as_tensor(stars)

        def loss() -> torch.Tensor:
            opt.zero_grad()
            d = vec - mean
            value = (
                (self.model.score(vec, items_t) - stars_t) ** 2
            ).sum() / self.noise + d @ prec @ d
            value.backward()
            return value

        opt.step(loss)
        return vec.detach().numpy()
