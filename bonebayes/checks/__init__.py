"""Checks of fitted models: parameter recovery (more in later issues: predictive checks, SBC)."""
