"""A Python provider registering itself with laneway's embedded registry.

    laneway registry serve --listen 127.0.0.1:7070        # or `laneway serve`
    python examples/provider_register.py --registry 127.0.0.1:7070 --env feature-login

The registration lives exactly as long as this process's Publish stream: stop the
process (Ctrl-C, kill, crash) and the registry forgets it within one lease. The publisher
heartbeats by itself and re-registers after a registry restart.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout

from proxy.registry.client import RegistryPublisher
from proxy.registry.model import Provider, ServiceKey


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", default="127.0.0.1:7070", help="registry HOST:PORT")
    parser.add_argument("--address", default="127.0.0.1:50051", help="this provider's HOST:PORT")
    parser.add_argument("--env", default="main", help="the env (lane) this provider serves")
    args = parser.parse_args()

    key = ServiceKey.of("demo.Greeter", "1.0.0")
    me = Provider(
        args.address, protocol="tri", env=args.env, methods=("SayHello",), application="greeter"
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with RegistryPublisher(args.registry) as publisher:
        publisher.register(key, me)  # blocks until the registry acknowledges
        print(f"registered {key.unique_name} {me.env} {me.address}", flush=True)
        stop.wait()  # a real provider would serve its RPCs here


if __name__ == "__main__":
    main()
