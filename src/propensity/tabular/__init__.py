"""Flat tables (one row per lead): schema, type inference, values, matrix, training, scoring, bundle.

Its own product beside the CRM path: nothing in ``core`` … ``modeling`` imports it,
and it never uses the CRM scorer. It writes and reads bundles through
:mod:`propensity.scoring.bundle` (``kind: table``), so the file format is defined once.
"""
