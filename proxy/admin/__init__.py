"""laneway's admin HTTP API and status page (``listen.admin``, 127.0.0.1 by default).

``server`` is the HTTP shell (h11 on trio), ``views`` the JSON documents, ``page`` the
HTML status page, ``client`` what ``laneway explain --admin`` uses to ask a running proxy.
"""
