"""Hessian 2.0 serialization (sans-IO)."""
