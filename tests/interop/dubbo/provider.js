'use strict';
// A real Dubbo 2 provider for laneway's interop tests: npm sofa-rpc-node serving the
// dubbo protocol of npm dubbo-remoting on 127.0.0.1, on a free port.
// Prints one JSON line {"port": N} on stdout once it listens, then serves until killed.
// argv[2], optional: a label `whoami()` answers with (the env a test registered it in).
const path = require('path');
const nodeModules = path.join(__dirname, '..', 'node', 'node_modules');
const { RpcServer } = require(path.join(nodeModules, 'sofa-rpc-node')).server;
const dubboProtocol = require(path.join(nodeModules, 'dubbo-remoting'));

// The method's `this` is the context: give it the request so methods can echo attachments.
class Server extends RpcServer {
  createContext(req) {
    return { req };
  }
}

const quiet = () => {};
const logger = { info: quiet, debug: quiet, warn: quiet, error: (...a) => console.error(...a) };

async function main() {
  const server = new Server({
    logger,
    protocol: dubboProtocol,
    port: 0,
    publishAddress: '127.0.0.1',
    appName: 'laneway-interop',
  });
  server.addService({ interfaceName: 'com.laneway.interop.EchoService', version: '1.0.0' }, {
    async echo(text) {
      return 'hello ' + text;
    },
    async add(a, b) {
      return a + b;
    },
    async attachment(key) {
      const value = this.req.data.requestProps[key];
      return value === undefined ? '<absent>' : String(value);
    },
    async whoami() {
      return process.argv[2] || 'unlabelled';
    },
    async fail(message) {
      throw new Error(message);
    },
  });
  await server.start();
  process.stdout.write(JSON.stringify({ port: server.publishPort }) + '\n');
}

main().catch(err => {
  console.error(err);
  process.exit(1);
});
