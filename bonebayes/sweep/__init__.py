"""Many fits as tasks on ``dask.distributed``: ``bonebayes sweep sweep.toml`` (see :mod:`.spec`, :mod:`.runner`)."""

from bonebayes.sweep.runner import SweepReport, format_table, run_sweep
from bonebayes.sweep.spec import SweepSpec, SweepSpecError, load_spec, parse_spec
from bonebayes.sweep.tasks import Task, content_key, expand

__all__ = ["SweepReport", "SweepSpec", "SweepSpecError", "Task", "content_key", "expand", "format_table",
           "load_spec", "parse_spec", "run_sweep"]
