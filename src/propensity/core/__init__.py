"""Low-level helpers shared by the rest of propensity; modules here import nothing else from propensity."""
