# The entry file propensity 0.1 logged with every model (a copy lives in each MLflow model of that version).
"""Models-from-code entry point that MLflow executes when it loads the logged model."""

import mlflow.models

from propensity.pyfunc import PropensityPyfunc

mlflow.models.set_model(PropensityPyfunc())
