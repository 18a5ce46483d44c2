"""The bottom layer: small pieces every other layer uses; its modules import nothing else of propensity."""
