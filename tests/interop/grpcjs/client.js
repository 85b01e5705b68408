// gRPC calls through laneway with @grpc/grpc-js (an HTTP/2 client independent of grpcio).
// Usage: node client.js HOST:PORT '[{"kind": "unary"|"server_stream", "path": "/pkg.Svc/M",
//          "request": "text", "metadata": {"k": "v"}, "deadlineMs": 5000}, ...]'
// Runs the calls one after another on one channel; prints one JSON line per call:
// {code, details, replies (utf-8 strings), sizes}.
"use strict";

const path = require("path");
const grpc = require(path.join(__dirname, "..", "node", "node_modules", "@grpc", "grpc-js"));

const identity = (buffer) => buffer;

function call(client, spec) {
  return new Promise((resolve) => {
    const metadata = new grpc.Metadata();
    for (const [key, value] of Object.entries(spec.metadata || {})) {
      metadata.add(key, value);
    }
    const options = { deadline: Date.now() + (spec.deadlineMs || 5000) };
    const request = Buffer.from(spec.request || "", "utf8");
    const replies = [];
    const finish = (code, details) => resolve({
      code,
      details,
      replies: replies.map((r) => r.toString("utf8")),
      sizes: replies.map((r) => r.length),
    });
    if (spec.kind === "unary") {
      client.makeUnaryRequest(
        spec.path, identity, identity, request, metadata, options,
        (err, reply) => {
          if (err) {
            finish(err.code, err.details);
          } else {
            replies.push(reply);
            finish(0, "");
          }
        },
      );
    } else if (spec.kind === "server_stream") {
      const stream = client.makeServerStreamRequest(
        spec.path, identity, identity, request, metadata, options,
      );
      stream.on("data", (reply) => replies.push(reply));
      stream.on("error", () => {}); // the status event carries the outcome
      stream.on("status", (status) => finish(status.code, status.details));
    } else {
      throw new Error("unknown kind " + spec.kind);
    }
  });
}

async function main() {
  const [address, specText] = process.argv.slice(2);
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  for (const spec of JSON.parse(specText)) {
    process.stdout.write(JSON.stringify(await call(client, spec)) + "\n");
  }
  client.close();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
