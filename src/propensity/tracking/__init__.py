"""MLflow: runs and artifacts (:mod:`.runs`), the registry's champion and challenger (:mod:`.registry`), and
the pyfunc wrapper logged around a bundle (:mod:`.pyfunc`, with the entry file MLflow runs, :mod:`.pyfunc_entry`).

The run functions are importable from here; importing this package does not import MLflow.
"""

from propensity.tracking.monitoring import log_monitoring, model_experiment
from propensity.tracking.runs import (
    TrackingError,
    check_tracking,
    log_report_run,
    log_training,
    resolve_tracking_uri,
)

__all__ = ["TrackingError", "check_tracking", "log_monitoring", "log_report_run", "log_training", "model_experiment",
           "resolve_tracking_uri"]
