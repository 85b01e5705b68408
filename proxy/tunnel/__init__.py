"""Reverse tunnel: a laptop joins a project env as a provider (docs/tunnel.md).

``server`` runs in the proxy (listener, sessions, the pools' ``tunnel:`` dialer), ``client``
on the laptop (`laneway tunnel`), ``mux`` is the HTTP/2 both run over one connection,
``tokens`` signs and checks the HMAC tokens, ``wire`` is the handshake before HTTP/2.
"""
