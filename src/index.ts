/** The package's entry: the OS-free core, the interface as a library object, and its control client. */

export { ControlClient, ControlError, listInterfaces, startDaemon } from './control/client.js';
export * from './core/index.js';
export * from './device/ovpn-interface.js';
export type { Clock, DatagramBind, Edges, Tun } from './edge/edges.js';
export { kernelEdges } from './edge/kernel.js';
export { ManualClock, MemoryHost, MemoryNetwork } from './edge/memory.js';
export { DelPeerReason, type DelPeerReasonName, type PeerStats } from './peer/peer.js';
