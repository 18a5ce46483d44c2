"""``propensity.pyfunc``: where models logged to MLflow before the ``tracking`` package find their wrapper.

MLflow keeps a copy of the model's entry file inside every logged model, and the
copies logged by propensity 0.1 (before ``propensity.tracking``) run
``from propensity.pyfunc import PropensityPyfunc`` when ``mlflow.pyfunc.load_model``,
``mlflow models serve`` or ``spark_udf`` load them. Champions already registered
must keep serving after an upgrade, so this name stays; new models import
:mod:`propensity.tracking.pyfunc` directly.
"""

from propensity.tracking.pyfunc import PropensityPyfunc

__all__ = ["PropensityPyfunc"]
