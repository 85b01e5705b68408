"""Pure routing: the routes file model, its loader and the compiled RouteTable.

Imports neither trio nor anything from ``proxy`` (tests/unit/test_import_rules.py keeps it so).
"""
