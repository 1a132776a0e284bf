import protobuf from 'protobufjs';

/** The identifying fields of a serialized `ModelInferRequest`. */
export interface InferRequestIds {
  /** `model_name` (field 1), '' when absent. */
  model: string;
  /** `model_version` (field 2), '' when absent. */
  version: string;
  /** `id` (field 3), '' when absent. */
  id: string;
}

/**
 * The `model_name`, `model_version` and `id` of a serialized ModelInferRequest, read without decoding
 * tensors. Never throws: a malformed message gives what was read before the fault (often nothing).
 */
export function peekInferRequest(bytes: Uint8Array): InferRequestIds {
  const out = { model: '', version: '', id: '' };
  try {
    const r = protobuf.Reader.create(bytes);
    while (r.pos < r.len) {
      const tag = r.uint32();
      const field = tag >>> 3;
      const wire = tag & 7;
      if (wire === 2 && field >= 1 && field <= 3) {
        const s = r.string();
        if (field === 1) out.model = s;
        else if (field === 2) out.version = s;
        else out.id = s;
      } else {
        // Tensors (fields 5, 7) are length-delimited: skipping them is O(1).
        r.skipType(wire);
      }
    }
  } catch {
    // A malformed message is forwarded untouched; the upstream answers it and ingest quarantines it.
  }
  return out;
}
