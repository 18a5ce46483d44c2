"""The work behind each ``propensity`` command, as library functions that return results and never print.

Each function checks its outputs before any work (:mod:`propensity.core.output`),
holds the output's lock while it writes, and writes atomically; the command line
parses flags, calls one of these and prints what it returns. Progress goes to a
:class:`Progress` the caller passes (nothing is said by default).

=================  ==========================================================
``init_project``   a new project folder with editable configs
``generate``       a synthetic CRM export
``train``          a bundle with its report from a CRM export or a flat table
``score``          a scores table
``evaluate``       a report of a model against baselines on labelled rows
``features``       the point-in-time feature table (``feature_catalogue``: the
                   features the configs define)
``promote``        champion / challenger in the MLflow registry
``monitor``        drift, matured and estimated performance of a score history
``demo``           all of the above on a synthetic CRM
=================  ==========================================================
"""

from propensity.jobs.demo_run import Demo, demo
from propensity.jobs.evaluation import CrmEvaluation, TableEvaluation, evaluate
from propensity.jobs.feature_table import FeatureTable, feature_catalogue, feature_query, features, features_spark
from propensity.jobs.monitoring import Monitored, monitor
from propensity.jobs.progress import Progress
from propensity.jobs.project import World, generate, init_project
from propensity.jobs.promotion import Promotion, promote
from propensity.jobs.scoring import CHUNK_LEADS, CrmScoring, TableScoring, score, score_crm_spark
from propensity.jobs.training import CrmTraining, TableTraining, train, train_crm_spark

__all__ = ["CHUNK_LEADS", "CrmEvaluation", "CrmScoring", "CrmTraining", "Demo", "FeatureTable", "Monitored",
           "Progress", "Promotion", "TableEvaluation", "TableScoring", "TableTraining", "World", "demo", "evaluate",
           "feature_catalogue", "feature_query", "features", "features_spark", "generate", "init_project", "monitor",
           "promote", "score", "score_crm_spark", "train", "train_crm_spark"]
