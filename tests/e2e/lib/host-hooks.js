// Test hooks of the Node demo host, loaded by examples/node/server.js when SFU_HOST_HOOKS
// names this file (lib/host.js does that for startHost(host, { hooks: true })). They run
// inside the host process and talk to the test process over the IPC channel of
// child_process.spawn (see lib/host-control.js for the other end):
//   - every createTransport answer goes to the test, which answers the data to send to
//     the browser (e.g. without the UDP candidates, or with candidates pointing at a
//     proxy); the library itself is untouched;
//   - the test can send a notification to the library on behalf of a peer
//     (enableConsumerStats, enableProducerStats...);
//   - the library's notifications whose method the test watches are copied to it
//     (consumerStats, producerStats...), and still go to the browser as usual;
//   - the test can read server.metrics() (Prometheus text) if the binding has it.
'use strict';

const TRANSPORT_ANSWER_TIMEOUT_MS = 15_000;

module.exports = function attach({ server, room, log }) {
  if (typeof process.send !== 'function') throw new Error('SFU_HOST_HOOKS needs an IPC channel to its parent');
  const send = (message) => process.send(message);
  let seq = 0;
  const waiting = new Map(); // seq -> resolve(data)
  const watched = new Set(); // notification methods copied to the test

  process.on('message', (m) => {
    if (!m || typeof m !== 'object') return;
    if (m.type === 'transportAnswer') {
      const resolve = waiting.get(m.seq);
      if (resolve) resolve(m);
      return;
    }
    // Commands: { type: 'call', id, op, ... } answered by { type: 'result', id, ok, value | error }.
    if (m.type !== 'call') return;
    const result = (ok, value) => send({ type: 'result', id: m.id, ok, [ok ? 'value' : 'error']: value });
    try {
      if (m.op === 'watch') {
        for (const method of m.methods) watched.add(method);
        result(true, [...watched]);
      } else if (m.op === 'notify') {
        const r = room(m.roomId);
        if (!r) throw new Error(`no room ${m.roomId}`);
        r.notify(m.peerName, m.notification);
        result(true, null);
      } else if (m.op === 'metrics') {
        result(true, typeof server.metrics === 'function' ? server.metrics() : null);
      } else {
        throw new Error(`unknown op ${m.op}`);
      }
    } catch (error) {
      result(false, error.message);
    }
  });
  // The test process went away: nothing will answer, stop.
  process.on('disconnect', () => process.kill(process.pid, 'SIGTERM'));

  return {
    // Called with every successful answer; returns the answer to send (or a promise of it).
    response(roomId, peerName, request, data) {
      if (!request || request.method !== 'createTransport') return data;
      const id = ++seq;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiting.delete(id);
          reject(new Error(`test hook: no answer for createTransport within ${TRANSPORT_ANSWER_TIMEOUT_MS} ms`));
        }, TRANSPORT_ANSWER_TIMEOUT_MS);
        waiting.set(id, (m) => {
          clearTimeout(timer);
          waiting.delete(id);
          if (m.error) {
            log(`${roomId}/${peerName} test hook refused createTransport: ${m.error}`);
            reject(new Error(m.error));
          } else resolve(m.data);
        });
        send({ type: 'transport', seq: id, roomId, peerName, request, data });
      });
    },
    notification(roomId, peerName, message) {
      if (message && watched.has(message.method)) send({ type: 'notification', roomId, peerName, message });
    },
  };
};
