"""Reading and validating CRM exports, and the synthetic CRM world."""

from propensity.data.export import CrmExport, DataError, read_export

__all__ = ["CrmExport", "DataError", "read_export"]
