import { v7 as uuidv7 } from 'uuid';

/** Mints a time-ordered UUIDv7 (RFC 9562) for request and event ids. */
export function newId(): string {
  return uuidv7();
}
