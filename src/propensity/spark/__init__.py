"""Batch scoring on Apache Spark through the same MLflow pyfunc the service uses.

>>> scored = score_spark(features_sdf, "models:/propensity-lead-score@champion")  # doctest: +SKIP

``features_sdf`` is a Spark DataFrame of feature rows (the columns
:func:`propensity.build_features` produces, plus ``lead_id``), e.g. built per lead
partition on the cluster or loaded from the warehouse. Each executor loads the
pyfunc once (models from code around the bundle, no pickle) and scores its
partitions with pandas batches, so results equal the in-process scorer's.
"""

from __future__ import annotations

__all__ = ["RESULT_SCHEMA", "score_spark"]

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
