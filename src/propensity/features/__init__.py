"""Point-in-time features: cutoffs, labels, ICP fit and engagement."""
