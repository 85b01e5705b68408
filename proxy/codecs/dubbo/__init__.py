"""Dubbo 2 wire protocol (sans-IO)."""
