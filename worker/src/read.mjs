// Reading a body with a cap: the Worker never buffers more than it will use.

/**
 * At most `max` bytes of a body stream (`null`: no body), as one Uint8Array. The stream is
 * cancelled once `max` bytes are in, so a caller that asks for `limit + 1` bytes tells a body
 * over `limit` without reading the rest of it.
 */
export async function readUpTo(stream, max) {
  if (stream === null || stream === undefined) return new Uint8Array(0);
  const reader = stream.getReader();
  const chunks = [];
  let total = 0;
  while (total < max) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    total += value.byteLength;
  }
  if (total >= max) await reader.cancel();
  const bytes = new Uint8Array(Math.min(total, max));
  let at = 0;
  for (const chunk of chunks) {
    const part = chunk.subarray(0, bytes.length - at);
    bytes.set(part, at);
    at += part.length;
    if (at === bytes.length) break;
  }
  return bytes;
}
