"""propensity: lead propensity scoring learned from your own CRM history."""

__version__ = "0.1.0"
