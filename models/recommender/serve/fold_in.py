"""Fold-in: a new visitor's taste from a few ratings, the movies fixed (no retraining).

`Taste` holds a trained model's weights as NumPy arrays and a Gaussian prior over user vectors
fitted to the known users, with the training residuals as the rating noise. `fold_in` is the
maximum a posteriori user vector under that prior: for the dot model, a regularised least-squares
problem solved by a few Gauss-Newton steps through the sigmoid (each a (factors + 1)-sized linear
solve); for the MLP model, L-BFGS. `predict_all` scores a user vector against every movie.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from models.recommender.modules import DotProductBias
from models.recommender.train import predict


class Taste:
    """User vectors against the fixed movies of `model`: a known user's, the average viewer's,
    or a new visitor's folded in. `users`, `items`, `stars`: the training ratings (indices)."""

    def __init__(
        self, model: nn.Module, users: np.ndarray, items: np.ndarray, stars: np.ndarray
    ) -> None:
        self.model = model
        self.kind = "dot" if isinstance(model, DotProductBias) else "nn"
        w = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
        self.y_range = model.y_range
        self.item_vecs = w["item_factors.weight"]
        self.user_vecs = w["user_factors.weight"]
        n_users = len(self.user_vecs)
        if self.kind == "dot":
            self.item_bias = w["item_bias.weight"][:, 0]
            self.user_bias = w["user_bias.weight"][:, 0]
            self.bias = float(w["bias"])
            self.implicit = w.get("item_implicit.weight")  # SVD++ models only
            own = self.user_vecs
            if self.implicit is not None:  # a known user's own factors, without what they rated
                own = own - self.implicit_offset(users, items, n_users)
            known = np.c_[own, self.user_bias]  # a user = (own factors, bias)
            average = np.r_[self.user_vecs.mean(0), self.user_bias.mean()]
        else:
            known = self.user_vecs
            average = known.mean(0)
        # The prior: a Gaussian fitted to the known users; the noise: the training residuals.
        self.prior_mean = known.mean(0)
        cov = np.cov(known, rowvar=False) + 1e-6 * np.eye(known.shape[1])
        self.prior_prec = np.linalg.inv(cov)
        resid = predict(model, users, items) - stars
        self.noise = float(np.mean(resid**2)) if len(resid) else 1.0
        self.average = self.predict_all(average)  # the average viewer's stars

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
