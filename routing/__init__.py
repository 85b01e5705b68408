"""Pure routing: the routes file model, its loader and the compiled RouteTable.

Imports neither trio nor anything from ``proxy`` (tests/unit/test_import_rules.py keeps it so).

    table = routing.load("routes.yaml")            # or loads(text, filename)
    decision = table.decide(CallView.of(...), providers_by_env)
"""

from routing.decision import Decision, ErrorKind, LaneAttempt, Outcome, TagSource
from routing.loader import load, loads
from routing.pick import pick_weighted, usable
from routing.problems import Problem, RoutesError, Severity
from routing.providers import load_providers, loads_providers, static_view
from routing.table import RouteTable
from routing.views import (
    CallLike,
    CallView,
    Endpoint,
    ProviderLike,
    baggage_member,
    with_baggage_member,
)

__all__ = [
    "CallLike",
    "CallView",
    "Decision",
    "Endpoint",
    "ErrorKind",
    "LaneAttempt",
    "Outcome",
    "Problem",
    "ProviderLike",
    "RouteTable",
    "RoutesError",
    "Severity",
    "TagSource",
    "baggage_member",
    "load",
    "load_providers",
    "loads",
    "loads_providers",
    "pick_weighted",
    "static_view",
    "usable",
    "with_baggage_member",
]
