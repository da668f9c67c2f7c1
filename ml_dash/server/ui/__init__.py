"""The web dashboard served by ``ml-dash serve``: the built page (``dist/``), its login sessions,
and the frontend source (``src/``, built by ``scripts/setup.sh``)."""
