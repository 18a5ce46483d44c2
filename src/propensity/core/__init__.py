"""The bottom layer: small pieces every other layer uses; imports nothing else from propensity."""
