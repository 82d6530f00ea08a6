// The impairment proxy of the test kit (crates/sfu-testkit/src/netem, the command
// target/release/sfu-netem) as a child process: one proxy is one link, shared by all its
// clients (one rate limiter per direction), so a test runs one per leg it impairs.
//   const proxy = await startNetem({ upstreamUdp: '127.0.0.1:40000', up: {...}, down: {...}, seed: 1 });
//   proxy.udp               '127.0.0.2:p', the address the client is given instead
//   await proxy.counters()  { up: {...}, down: {...}, ... } (see the module docs there)
//   await proxy.stop()
// Link JSON keys (loss, delay_ms, jitter_ms, ...) are those of the module docs.
'use strict';

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const readline = require('node:readline');
const { repo, sleep } = require('./host');

const NETEM = path.join(repo, 'target', 'release', 'sfu-netem');
const READY_TIMEOUT_MS = 10_000;
const COMMAND_TIMEOUT_MS = 5_000;

async function startNetem({ upstreamUdp, upstreamTcp = null, up = {}, down = {}, seed = 1 }) {
  if (!fs.existsSync(NETEM)) throw new Error(`${NETEM} missing: run cargo build --release`);
  const args = ['--listen', '127.0.0.2:0', '--upstream-udp', upstreamUdp, '--bind-upstream', '127.0.0.3'];
  if (upstreamTcp) args.push('--upstream-tcp', upstreamTcp);
  args.push('--up', JSON.stringify(up), '--down', JSON.stringify(down), '--seed', String(seed));
  const child = spawn(NETEM, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const stderr = [];
  child.stderr.on('data', (c) => stderr.push(c.toString()));
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const lines = readline.createInterface({ input: child.stdout });
  const queue = []; // resolvers waiting for the next stdout line, in order
  lines.on('line', (line) => {
    const next = queue.shift();
    if (next) next(line);
  });
  const nextLine = (what, timeoutMs) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = queue.indexOf(take);
        if (i >= 0) queue.splice(i, 1);
        reject(new Error(`sfu-netem: no ${what} within ${timeoutMs} ms (stderr: ${stderr.join('')})`));
      }, timeoutMs);
      const take = (line) => {
        clearTimeout(timer);
        resolve(line);
      };
      queue.push(take);
    });

  let ready;
  try {
    ready = JSON.parse(
      await Promise.race([
        nextLine('ready line', READY_TIMEOUT_MS),
        exited.then((e) => {
          throw new Error(`sfu-netem exited (${JSON.stringify(e)}): ${stderr.join('')}`);
        }),
      ])
    );
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }

  let chain = Promise.resolve();
  // One command at a time: answers come back in order, one line each.
  const command = (cmd) => {
    const run = chain.then(async () => {
      child.stdin.write(`${JSON.stringify(cmd)}\n`);
      const answer = JSON.parse(await nextLine(`answer to ${JSON.stringify(cmd)}`, COMMAND_TIMEOUT_MS));
      if (answer.error) throw new Error(`sfu-netem ${JSON.stringify(cmd)}: ${answer.error}`);
      return answer;
    });
    chain = run.catch(() => {});
    return run;
  };

  return {
    udp: ready.udp,
    tcp: ready.tcp || null,
    args,
    counters: () => command({ counters: true }),
    set: (direction, link) => command({ set: direction, link }),
    stderr,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.stdin.end(); // exits on stdin EOF
      const done = await Promise.race([exited.then(() => true), sleep(5000).then(() => false)]);
      if (!done) {
        child.kill('SIGKILL');
        await Promise.race([exited, sleep(5000)]);
      }
    },
  };
}

module.exports = { startNetem, NETEM };
