// HTTP helpers for the `dagrun serve` API: the optional access token, JSON and
// binary fetches whose errors carry the server's one-line reason, a count of
// requests in flight, and the parser of the binary /api/points answer.

const token = new URLSearchParams(location.search).get('token');

/** Requests in flight (read by window.dagrun.busy). */
export const net = { busy: 0 };

/** Appends `token=T` to a URL used by <img src> or a download link. */
export function withToken(url) {
  if (!token) return url;
  return `${url}${url.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}`;
}

/** Query string from [name, value] pairs, e.g. [['id', 'a'], ['k', 5]]. */
export function query(pairs) {
  return pairs.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&');
}

async function request(url, init, read) {
  const headers = new Headers(init.headers);
  if (token) headers.set('X-Dagrun-Token', token);
  net.busy++;
  try {
    const res = await fetch(url, { ...init, headers });
    if (!res.ok) {
      let reason = res.statusText || 'request failed';
      try {
        const body = await res.json();
        if (body?.error) reason = body.error;
      } catch {
        // not JSON: keep the status text
      }
      throw new Error(`${init.method || 'GET'} ${url.split('?')[0]}: ${reason} (HTTP ${res.status})`);
    }
    return await read(res);
  } finally {
    net.busy--;
  }
}

export const api = {
  json: (url) => request(url, {}, (r) => r.json()),
  buffer: (url) => request(url, {}, (r) => r.arrayBuffer()),
  post: (url, body) =>
    request(
      url,
      { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) },
      (r) => r.json(),
    ),
};

/**
 * Parses /api/points: "DGRNPTS1", u64 n, n f32 x, n f32 y, n i32 class, then
 * the ids as one JSON array. All little-endian; typed arrays read the host's
 * byte order, which is little-endian on every platform a browser runs on.
 */
export function parsePoints(buf) {
  const magic = new TextDecoder().decode(new Uint8Array(buf, 0, 8));
  if (magic !== 'DGRNPTS1') throw new Error(`/api/points: bad magic ${JSON.stringify(magic)}`);
  const n = Number(new DataView(buf).getBigUint64(8, true));
  const end = 16 + 12 * n;
  if (buf.byteLength < end) throw new Error(`/api/points: truncated (n = ${n})`);
  const x = new Float32Array(buf, 16, n);
  const y = new Float32Array(buf, 16 + 4 * n, n);
  const cls = new Int32Array(buf, 16 + 8 * n, n);
  const ids = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, end)));
  if (!Array.isArray(ids) || ids.length !== n) throw new Error('/api/points: id count differs from n');
  return { n, x, y, cls, ids };
}
