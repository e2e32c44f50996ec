"""Regularization (正则化): parameter-norm penalties (ridge, Lasso, Elastic Net and their paths),
proximal operators, the Bayesian (MAP) view, dropout, noise injection, label smoothing and early
stopping. One module per idea; the most used names are re-exported here, so
``from companion import regularization as reg`` gives ``reg.ridge``, ``reg.soft_threshold``, …
"""

from companion.regularization.bayes import map_alpha, neg_log_posterior
from companion.regularization.early_stopping import EarlyStopping, early_stopping
from companion.regularization.inverted_dropout import Dropout, dropout
from companion.regularization.label_smoothing import (
    label_smoothing_cross_entropy,
    optimal_logit_gap,
    smooth_labels,
)
from companion.regularization.linear import (
    ConvergenceWarning,
    LinearFit,
    alpha_max,
    elastic_net,
    elastic_net_objective,
    enet_duality_gap,
    enet_path,
    lasso,
    lasso_path,
    ridge,
    ridge_objective,
    ridge_path,
)
from companion.regularization.noise import ActivationNoise, activation_noise, add_weight_noise
from companion.regularization.prox import (
    elastic_net_prox,
    ista,
    l1_subgrad,
    lipschitz_constant,
    soft_threshold,
    subgradient_descent,
)

__all__ = [
    "ActivationNoise",
    "ConvergenceWarning",
    "Dropout",
    "EarlyStopping",
    "LinearFit",
    "activation_noise",
    "add_weight_noise",
    "alpha_max",
    "dropout",
    "early_stopping",
    "elastic_net",
    "elastic_net_objective",
    "elastic_net_prox",
    "enet_duality_gap",
    "enet_path",
    "ista",
    "l1_subgrad",
    "label_smoothing_cross_entropy",
    "lasso",
    "lasso_path",
    "lipschitz_constant",
    "map_alpha",
    "neg_log_posterior",
    "optimal_logit_gap",
    "ridge",
    "ridge_objective",
    "ridge_path",
    "smooth_labels",
    "soft_threshold",
    "subgradient_descent",
]
