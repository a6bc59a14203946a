"""The normative service specifications, installed as package data.

``qnetstack.specs`` is this folder: the Markdown specs (``link.md``, ...) and
the JSON schemas. The conformance suites read their clauses' text and levels
from here at run time (``qnetstack.entity.conformance.read_spec``), so an
installed ``qnetstack conform`` quotes the spec it was built with.
"""
