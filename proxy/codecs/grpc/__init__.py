"""HTTP/2 + gRPC framing (sans-IO)."""
