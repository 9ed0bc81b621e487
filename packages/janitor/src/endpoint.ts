import type { Endpoint } from 'comlink';

/** A MessagePort/Worker-like Node object (on/off/postMessage). */
interface NodePortLike {
  postMessage(message: unknown, transfer?: readonly never[]): void;
  on(type: 'message', listener: (data: unknown) => void): unknown;
  off(type: 'message', listener: (data: unknown) => void): unknown;
  start?: () => void;
}

type Listener = Parameters<Endpoint['addEventListener']>[1];
type Transfer = Parameters<Endpoint['postMessage']>[1];

/** Comlink endpoint over a Node worker/parentPort (what comlink's node-adapter does, typed for NodeNext). */
export function nodeEndpoint(nep: NodePortLike): Endpoint {
  const listeners = new WeakMap<Listener, (data: unknown) => void>();
  return {
    postMessage: (msg: unknown, transfer?: Transfer) => nep.postMessage(msg, transfer as unknown as never[]),
    addEventListener: (_type: string, eh: Listener) => {
      const l = (data: unknown): void => {
        const ev = { data } as MessageEvent;
        if ('handleEvent' in eh) eh.handleEvent(ev);
        else eh(ev);
      };
      nep.on('message', l);
      listeners.set(eh, l);
    },
    removeEventListener: (_type: string, eh: Listener) => {
      const l = listeners.get(eh);
      if (!l) return;
      nep.off('message', l);
      listeners.delete(eh);
    },
    start: nep.start?.bind(nep),
  };
}
