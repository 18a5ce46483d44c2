"""Session fixtures shared by the test modules: pytest finds them here, no import needed.

``_world.py``: one small synthetic world and a model trained on it; ``_small.py``: an
800-lead world whose ids and values look like spreadsheet formulas, and its model.
"""

pytest_plugins = ["_world", "_small"]
