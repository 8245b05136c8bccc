"""The GitLab CI front end: ``.gitlab-ci.yml`` files compiled to the runner's pipeline.

Read it in this order: ``yaml_source.py`` (YAML with ``file:line`` and ``!reference``),
``config.py`` (``include``, ``extends``, ``!reference``), ``checks.py`` and ``jobs.py`` (the
keywords of a job), ``expressions.py`` and ``rules.py`` (``rules: if:``), ``values.py``
(durations, variable expansion), ``compile.py`` (stages and needs to the step graph) and
``plan.py`` (``--dry-run``). Imported only when a ``.yml``/``.yaml`` file is given, so PyYAML
stays an optional dependency.
"""

from .compile import Compiled, GitLabError, load_gitlab
from .plan import format_gitlab_plan

__all__ = ["Compiled", "GitLabError", "format_gitlab_plan", "load_gitlab"]
