"""The package on Apache Spark: the same feature table and scores, computed where the data lives.

- :func:`~propensity.spark.features.spark_features`: the feature table (training rows
  with labels, or open leads as of a time) by the generated SQL in Spark's dialect,
  over an export read by :func:`~propensity.spark.tables.read_spark_export`;
  :func:`~propensity.spark.features.features_of_cutoffs` for a cutoff table of the caller's;
- :func:`~propensity.spark.scoring.score_features_spark`: a bundle folder scoring that
  table per partition (``propensity score --engine spark``);
- :func:`~propensity.spark.training.spark_training_table`: the training table with its
  negatives down-sampled to fit one machine, collected (``propensity train --engine spark``);
- :func:`score_spark`: a registered model through the same MLflow pyfunc the service uses:

>>> scored = score_spark(features_sdf, "models:/propensity-lead-score@champion")  # doctest: +SKIP

``features_sdf`` is a Spark DataFrame of feature rows (the columns
:func:`propensity.build_features` produces, plus ``lead_id``), e.g. built per lead
partition on the cluster or loaded from the warehouse. Each executor loads the
pyfunc once (models from code around the bundle, no pickle) and scores its
partitions with pandas batches, so results equal the in-process scorer's.
"""

from __future__ import annotations

from propensity.spark.features import features_of_cutoffs, spark_features
from propensity.spark.scoring import score_features_spark
from propensity.spark.session import spark_session
from propensity.spark.tables import read_spark_export
from propensity.spark.training import spark_training_table

__all__ = ["RESULT_SCHEMA", "features_of_cutoffs", "read_spark_export", "score_features_spark", "score_spark",
           "spark_features", "spark_session", "spark_training_table"]

RESULT_SCHEMA = "lead_id string, probability double, score long, tier string, reasons string"


def score_spark(features, model_uri: str, env_manager: str = "local"):
    """Return ``features`` with a struct column ``propensity`` exploded into
    ``lead_id, probability, score, tier, reasons``."""
    import mlflow.pyfunc
    from pyspark.sql import functions as F

    udf = mlflow.pyfunc.spark_udf(features.sparkSession, model_uri, result_type=RESULT_SCHEMA,
                                  env_manager=env_manager)
    cols = [F.col(c) for c in features.columns]
    return features.select(udf(F.struct(*cols)).alias("propensity")).select("propensity.*")
