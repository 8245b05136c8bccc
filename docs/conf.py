"""Sphinx configuration for the trio-context documentation.

Build: ``pip install -e '.[docs]' && sphinx-build -W -n -b html docs docs/_build/html``
(warnings are errors and every cross-reference must resolve; ``.ci/run`` builds it that way).

Nothing here needs the network: there is no intersphinx, so references to names outside this
project (Python's, trio's, httpx's, pytest's) are plain text, listed in ``nitpick_ignore_regex``.
References to ``trio_context`` names are checked.
"""

from __future__ import annotations

import sys
from pathlib import Path

project = "trio-context"
author = "trio-context developers"
copyright = "trio-context developers"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "README.md"]
root_doc = "index"

html_theme = "furo"
html_title = "trio-context"

myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence", "deflist"]

# Reference pages: signatures as users write them (``tc.Context``, not the private path).
autodoc_typehints = "signature"
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_preserve_defaults = True
python_use_unqualified_type_names = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
add_module_names = False

# Names that live outside this project: without intersphinx they cannot resolve. Anything under
# ``trio_context`` is NOT ignored, so a broken reference to one of our names fails the build.
nitpick_ignore_regex = [
    # Python's standard library and the third-party packages our signatures mention.
    (
        r"py:.*",
        r"(collections\.abc|typing|types|os|signal|subprocess|logging|traceback|threading|"
        r"contextlib|weakref|enum|pathlib|asyncio|trio|httpx|pytest|attrs?|hypercorn)(\..*)?",
    ),
    (r"py:class", r"T|Ts|PosArgsT|P|R"),  # type variables of generic signatures
    (r"py:.*", r"trio_context\.(.*\.)?_.*"),  # private implementation names in signatures
]

# -- the reference's catch-all ---------------------------------------------------------------
# Every name exported by a public module gets a reference entry: the topic pages document them
# by hand, in reading order, and ``reference/unsorted.rst`` documents whatever they miss (a name
# added later), so a new name is never absent from the reference. See ``_ext/refnames.py``.

sys.path.insert(0, str(Path(__file__).parent / "_ext"))
extensions.append("refnames")
