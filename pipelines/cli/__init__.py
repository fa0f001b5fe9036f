"""The ``speechfin`` command line: ``main`` holds the app and the front-end commands (run, query,
explore, eval); ``catalog``, ``report``, ``ser``, ``serve`` and ``study`` hold their sub-commands.
Only typer and the standard library are imported at module level."""
