"""The pytest plugin: options, fixtures, result collection, failure handling, ``--keep-on-failure``."""
