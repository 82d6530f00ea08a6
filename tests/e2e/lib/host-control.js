// The test side of the host hooks (lib/host-hooks.js runs in the host process): a
// HostControl talks to a host started with startHost(host, { hooks: true }) over its IPC
// channel.
//   control.onTransport(fn)   fn({ roomId, peerName, direction, request, data }) returns
//                             (or resolves to) the createTransport answer the browser gets;
//                             without a handler the answer is passed on unchanged
//   control.notify(roomId, peerName, notification)  as if the peer had sent it
//   control.watch(methods)    copies the library's notifications of these methods into
//                             control.notifications ({ at, roomId, peerName, message })
//   control.metrics()         server.metrics() text, or null if the binding has none
// Every call is answered within CALL_TIMEOUT_MS or rejects.
'use strict';

const CALL_TIMEOUT_MS = 10_000;

class HostControl {
  constructor(child) {
    this.child = child;
    this.notifications = [];
    this.transportHandler = null;
    this.transportErrors = [];
    this.nextId = 1;
    this.calls = new Map();
    child.on('message', (m) => this.onMessage(m));
    child.on('exit', () => {
      for (const { reject, timer } of this.calls.values()) {
        clearTimeout(timer);
        reject(new Error('host exited'));
      }
      this.calls.clear();
    });
  }

  onMessage(m) {
    if (!m || typeof m !== 'object') return;
    if (m.type === 'result') {
      const call = this.calls.get(m.id);
      if (!call) return;
      this.calls.delete(m.id);
      clearTimeout(call.timer);
      if (m.ok) call.resolve(m.value);
      else call.reject(new Error(m.error));
    } else if (m.type === 'notification') {
      this.notifications.push({ at: Date.now(), roomId: m.roomId, peerName: m.peerName, message: m.message });
    } else if (m.type === 'transport') {
      const info = {
        roomId: m.roomId,
        peerName: m.peerName,
        direction: m.request.direction,
        request: m.request,
        data: m.data,
      };
      Promise.resolve()
        .then(() => (this.transportHandler ? this.transportHandler(info) : m.data))
        .then(
          (data) => this.post({ type: 'transportAnswer', seq: m.seq, data }),
          (error) => {
            this.transportErrors.push(`${m.roomId}/${m.peerName} ${info.direction}: ${error.stack || error}`);
            this.post({ type: 'transportAnswer', seq: m.seq, error: String(error.message || error) });
          }
        );
    }
  }

  post(message) {
    if (this.child.connected) this.child.send(message);
  }

  call(op, args) {
    if (!this.child.connected) return Promise.reject(new Error('host not connected'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.calls.delete(id);
        reject(new Error(`host hook ${op}: no answer within ${CALL_TIMEOUT_MS} ms`));
      }, CALL_TIMEOUT_MS);
      this.calls.set(id, { resolve, reject, timer });
      this.child.send({ type: 'call', id, op, ...args });
    });
  }

  onTransport(fn) {
    this.transportHandler = fn;
  }

  notify(roomId, peerName, notification) {
    return this.call('notify', { roomId, peerName, notification });
  }

  watch(methods) {
    return this.call('watch', { methods });
  }

  metrics() {
    return this.call('metrics', {});
  }
}

module.exports = { HostControl };
