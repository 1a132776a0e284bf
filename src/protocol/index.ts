export { decodeCall } from './decode-call.js';
export type { DecodedCall, FlatRow } from './decode-call.js';
