"""OpenTelemetry traces and metrics for laneway, and their Prometheus exposition.

``Telemetry(config.telemetry)`` builds the providers and the ``CallObserver`` the
forwarders call (``proxy.observe``); ``Telemetry.metrics_text()`` is ``/metrics``.
"""

from proxy.telemetry.setup import Telemetry, TelemetryUnavailable
from proxy.telemetry.state import ReloadResult, TelemetryState

__all__ = ["ReloadResult", "Telemetry", "TelemetryState", "TelemetryUnavailable"]
