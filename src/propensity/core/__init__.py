"""Low-level helpers shared across the package; modules here import nothing else from propensity."""
