"""`python -m web.recorder`: an alias of `python -m recorder` for existing units and compose files.

It runs the recorder by module name, so no web module imports the recorder
(docs/architecture.md, "Where each concern lives").
"""

import runpy

if __name__ == "__main__":
    runpy.run_module("recorder", run_name="__main__", alter_sys=True)
