// Proxies in front of the S3 server: a counting one, used only in the separate
// counting pass (timed runs talk to the server directly, so its cost never
// shows in the times), and a delaying one that timed runs go through with
// `--latency`; and a throttling one (bench/throttle.mjs).

import http from 'node:http'
import { tokenBucket, SLOW_DOWN_XML } from '../scripts/throttle.mjs'

/** Kind of an S3 request, from its method and query. */
export function kindOf(method, url) {
  const q = new URL(url, 'http://proxy').searchParams
  if (method === 'GET' && q.has('list-type')) return 'LIST'
  if (method === 'GET' && (q.has('prefix') || q.has('delimiter'))) return 'LIST'
  if (method === 'POST' && q.has('uploads')) return 'MPU-INIT'
  if (method === 'POST' && q.has('uploadId')) return 'MPU-DONE'
  // DeleteObjects: up to 1,000 keys in one request.
  if (method === 'POST' && q.has('delete')) return 'DEL-BATCH'
  if (method === 'PUT' && q.has('partNumber')) return 'PART'
  if (method === 'GET' && q.has('partNumber')) return 'GET'
  return method
}

export const MARK_PATH = '/__s3ws_bench__/mark'

/**
 * An HTTP proxy to `target` on a free loopback port. `onRequest(req, res)`
 * may answer a request itself (returning true); `delayMs` holds each
 * request before it is forwarded and each answer before it is returned.
 */
async function startProxy(target, { onRequest = () => false, delayMs = 0 } = {}) {
  const upstream = new URL(target)
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1024 })
  const later = (f) => (delayMs ? setTimeout(f, delayMs) : f())
  const server = http.createServer((req, res) => {
    if (onRequest(req, res)) return
    later(() => {
      // The Host header is kept: it is part of the SigV4 signature.
      const fwd = http.request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers, agent }, (up) =>
        later(() => {
          res.writeHead(up.statusCode, up.headers)
          up.pipe(res)
        }),
      )
      fwd.on('error', () => res.destroy())
      req.pipe(fwd)
    })
  })
  server.keepAliveTimeout = 60_000
  await new Promise((r) => server.listen(0, '127.0.0.1', r))
  return {
    endpoint: `http://127.0.0.1:${server.address().port}`,
    close() {
      server.closeAllConnections?.()
      agent.destroy()
      return new Promise((r) => server.close(r))
    },
  }
}

export async function startCountingProxy(target) {
  let counts = {}
  let ranged = 0
  const proxy = await startProxy(target, {
    onRequest(req, res) {
      // A child calls this right before its measured step, so setup
      // requests (a setup pull) are not counted.
      if (req.url === MARK_PATH) {
        counts = {}
        ranged = 0
        req.resume()
        res.end('ok')
        return true
      }
      const kind = kindOf(req.method, req.url)
      counts[kind] = (counts[kind] ?? 0) + 1
      if (req.headers.range) ranged++
      return false
    },
  })
  return {
    ...proxy,
    reset() {
      counts = {}
      ranged = 0
    },
    /** { LIST: n, GET: n, PUT: n, ..., ranged: n (requests with a Range header) } since the last reset. */
    snapshot() {
      return ranged ? { ...counts, ranged } : { ...counts }
    },
  }
}

/**
 * A proxy that makes loopback look like a network to S3: every request
 * waits `ms` before it is forwarded and its answer `ms` before it is
 * returned (one round trip of 2 × `ms`), as real S3 answers in tens of ms.
 */
export function startLatencyProxy(target, ms) {
  return startProxy(target, { delayMs: ms })
}

/** "1 LIST + 2116 GET" */
export function formatCounts(c) {
  if (!c) return '–'
  const order = ['LIST', 'HEAD', 'GET', 'PUT', 'MPU-INIT', 'PART', 'MPU-DONE', 'DELETE', 'DEL-BATCH', 'POST']
  const keys = Object.keys(c).sort((a, b) => {
    const ia = order.indexOf(a)
    const ib = order.indexOf(b)
    return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib)
  })
  const parts = keys.filter((k) => c[k] > 0 && k !== 'ranged').map((k) => (k === 'GET' && c.ranged ? `${c[k]} GET (${c.ranged} ranged)` : `${c[k]} ${k}`))
  return parts.length ? parts.join(' + ') : '0'
}

/**
 * A proxy that throttles as S3 does: requests `throttled(method, url)`
 * selects pass at `rate` a second, the rest are answered 503 `SlowDown` at
 * once (scripts/throttle.mjs). `stats()` counts both, also per 100 ms.
 */
export async function startThrottleProxy(target, { rate, throttled }) {
  const bucket = tokenBucket(rate)
  // Answers per 100 ms, [passed, SlowDown], from the first throttled request.
  const timeline = []
  let start
  const proxy = await startProxy(target, {
    onRequest(req, res) {
      if (!throttled(req.method, req.url)) return false
      start ??= performance.now()
      const slot = (timeline[Math.floor((performance.now() - start) / 100)] ??= [0, 0])
      if (bucket.take()) {
        slot[0]++
        return false
      }
      slot[1]++
      req.resume()
      res.writeHead(503, { 'content-type': 'application/xml' })
      res.end(SLOW_DOWN_XML)
      return true
    },
  })
  return { ...proxy, stats: () => ({ ...bucket.stats, timeline: Array.from(timeline, (t) => t ?? [0, 0]) }) }
}
