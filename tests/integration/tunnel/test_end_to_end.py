"""End to end: consumer -> laneway (x-env / dubbo.tag alice) -> tunnel -> the laptop's provider,
while untagged calls from the same consumer reach main. Dubbo and gRPC."""

from __future__ import annotations

import grpc
import trio

from proxy.demo import GREETER
from tests.integration.grpc.stack import SERVICE as GRPC_SERVICE
from tests.integration.tunnel.stack import ENV, running_tunnel_stack, until


async def test_dubbo_tagged_calls_reach_the_laptop_untagged_reach_main() -> None:
    async with running_tunnel_stack() as stack:
        laptop = await stack.laptop()
        assert laptop.dubbo is not None
        assert laptop.info.env == ENV
        lane = stack.lanes()[ENV]
        assert [p.source for p in lane] == ["tunnel"]
        assert lane[0].address.startswith("tunnel:")
        client = await stack.client()
        tagged = await stack.call(client, tag=ENV)
        assert tagged.ok, tagged
        assert tagged.value == "Hello, world! (served by laptop)"
        assert tagged.attachments["seen-tag"] == ENV  # the tag survives the tunnel hop
        untagged = await stack.call(client)
        assert untagged.value == "Hello, world! (served by main)"
        assert laptop.dubbo.calls == 1
        # Many calls share one virtual connection (one tunnel stream), concurrently.
        results = []

        async def one() -> None:
            results.append(await stack.call(client, tag=ENV, method="sleep", args=(20,)))

        async with trio.open_nursery() as nursery:
            for _ in range(50):
                nursery.start_soon(one)
        assert all(r.ok for r in results) and len(results) == 50
        assert laptop.dubbo.calls == 51
        assert laptop.client.local_connects == 1
        # The banner tells the developer what to send.
        text = "\n".join(laptop.lines)
        assert f"x-env: {ENV}" in text and GREETER in text and "laneway call dubbo://" in text
        await client.aclose()


async def test_grpc_tagged_calls_reach_the_laptop_untagged_reach_main() -> None:
    async with running_tunnel_stack() as stack:
        laptop = await stack.laptop(dubbo=False, grpc=True)
        assert laptop.grpc is not None
        assert stack.bound.grpc is not None
        channel = grpc.insecure_channel(stack.bound.grpc)
        try:
            hello = channel.unary_unary(f"/{GRPC_SERVICE}/Hello", None, None)

            def call(md: tuple[tuple[str, str], ...]) -> bytes:
                reply: bytes = hello(b"hi", metadata=md, timeout=10)
                return reply

            assert await trio.to_thread.run_sync(call, (("x-env", ENV),)) == b"laptop:hi"
            assert await trio.to_thread.run_sync(call, ()) == b"main:hi"
            assert laptop.grpc.seen_metadata[-1]["x-env"] == ENV
            # Streaming and 3 MiB messages cross the tunnel's own flow control too.
            count = channel.unary_stream(f"/{GRPC_SERVICE}/Count", None, None)
            got = await trio.to_thread.run_sync(
                lambda: list(count(b"300", metadata=(("x-env", ENV),), timeout=10))
            )
            assert got == [b"%d" % i for i in range(300)]
            big = b"y" * (3 * 1024 * 1024)
            reply = await trio.to_thread.run_sync(lambda: hello(big, metadata=(("x-env", ENV),)))
            assert reply == b"laptop:" + big
            assert stack.grpc_main.calls == 1
        finally:
            channel.close()


async def test_ctrl_c_leaves_cleanly_and_tagged_calls_fall_back_to_main() -> None:
    async with running_tunnel_stack() as stack:
        laptop = await stack.laptop()
        client = await stack.client()
        assert (await stack.call(client, tag=ENV)).value == "Hello, world! (served by laptop)"
        laptop.leave()
        await until(lambda: ENV not in stack.lanes())
        assert stack.tunnel.sessions() == []
        after = await stack.call(client, tag=ENV)
        assert after.value == "Hello, world! (served by main)"
        assert [e.event for e in stack.tunnel.audit] == ["open", "closed"]
        await client.aclose()
