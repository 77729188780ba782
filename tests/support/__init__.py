"""Helpers shared by the test suites (drivers, fake servers, scenarios): imported as ``tests.support.X``.

Nothing here is collected as a test; pytest's ``--import-mode=importlib`` finds the package from the
project root, so no suite puts ``tests/`` on ``sys.path``.
"""
