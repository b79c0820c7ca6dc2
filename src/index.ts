/** The package's entry: the OS-free core, the interface as a library object, and its control client. */

export { ControlClient, ControlError, listInterfaces, startDaemon } from './control/client.js';
export * from './core/index.js';
export * from './device/ovpn-interface.js';
export { DelPeerReason, type DelPeerReasonName, type PeerStats } from './peer/peer.js';
