"""Models-from-code entry point that MLflow executes when it loads the logged model."""

import mlflow.models

from propensity.tracking.pyfunc import PropensityPyfunc

mlflow.models.set_model(PropensityPyfunc())
