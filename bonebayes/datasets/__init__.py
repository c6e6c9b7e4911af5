"""Input tables: observation and exposure CSVs, validation, provenance helpers."""

from bonebayes.datasets.io import (
    dataframe_hash,
    load_cohort,
    load_exposures,
    load_observations,
    write_table_atomic,
)
from bonebayes.datasets.schema import CANONICAL_UNITS, VARIABLES, DataValidationError

__all__ = [
    "DataValidationError",
    "load_observations",
    "load_exposures",
    "load_cohort",
    "write_table_atomic",
    "dataframe_hash",
    "VARIABLES",
    "CANONICAL_UNITS",
]
