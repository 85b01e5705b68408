"""laneway: an RPC compatibility and environment-routing proxy (Dubbo 2, gRPC/Triple)."""

__version__ = "0.1.0"
