// Test helpers for the tests that need the S3 test server (`node
// scripts/test.mjs` starts one and sets S3WS_TEST_ENDPOINT): an independent
// S3 client (the AWS SDK) to seed and inspect it, and a recording proxy in
// front of it. The server-free helpers are in ./local-helpers.mjs (and
// re-exported here). Importing this file needs no server; using what needs
// one without it fails with NO_SERVER.

import { spawn } from 'node:child_process'
import http from 'node:http'
import path from 'node:path'
import { S3Client, CreateBucketCommand, PutObjectCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3'

export * from './local-helpers.mjs'

const SERVER = process.env.S3WS_TEST_ENDPOINT

/** Why a test that needs the server cannot run. */
const NO_SERVER = 'S3WS_TEST_ENDPOINT is not set: this test needs the S3 test server. Run it with `node scripts/test.mjs FILE` (it starts one), or `npm test`'

/** The test server's endpoint; throws NO_SERVER without one. */
export function requireServer() {
  if (!SERVER) throw new Error(NO_SERVER)
  return SERVER
}

/**
 * The test server's endpoint. Without a server it is a value that no
 * constructor or CLI takes as an endpoint (they refuse it, naming it), so a
 * test that needs the server fails at once with NO_SERVER in its message,
 * and nothing goes to AWS.
 */
export const endpoint = SERVER ?? `(no server: ${NO_SERVER})`

/** Something that needs the server: every use throws NO_SERVER. @returns {any} */
const needsServer = () =>
  new Proxy(
    {},
    {
      get() {
        throw new Error(NO_SERVER)
      },
    },
  )

/** The server this run is against (`S3WS_TEST_SERVER`: seaweedfs, moto or s3rver). */
export const testServer = process.env.S3WS_TEST_SERVER || 'seaweedfs'

/** What a test server does not do, measured: the reason, for `test(name, { skip })`. */
const LACKS = {
  moto: {
    credentials: 'moto accepts any credentials',
    'batch-delete-etag': 'moto 5.2.5 ignores the per-key ETag of DeleteObjects',
    'upload-age': 'moto 5.2.5 dates every multipart upload 2010-11-10, so every one looks abandoned',
    'copy-conditions': 'moto 5.2.5 ignores If-Match and If-None-Match on CopyObject (the engine checks with a HEAD first; a write can still slip in between)',
    checksums: 'moto 5.2.5 accepts a wrong x-amz-checksum-crc64nvme (the engine sends Content-MD5 there instead)',
  },
  s3rver: {
    credentials: 's3rver 3.7.1 accepts a wrong secret key',
    conditions: 's3rver ignores If-Match and If-None-Match (the engine checks with a HEAD first; a write can still slip in between)',
    'batch-delete-etag': 's3rver ignores the per-key ETag of DeleteObjects',
    'paged-listing': 's3rver 3.7.1 answers InternalError to a listing of more than 1,000 keys',
    'list-multipart-uploads': 's3rver does not implement ListMultipartUploads',
    'multipart-etag': "s3rver gives a multipart object the whole content's MD5 as its ETag",
    'aws-chunked': "s3rver stores aws-chunked bodies (the JS SDK's default checksums) with their framing (the pull's integrity check catches it)",
    'read-during-write': 's3rver answers InternalError to a read of a key being written',
    'atomic-put': 's3rver keeps the bytes of a PUT cut off mid-body as the object',
    checksums: 's3rver ignores x-amz-checksum-crc64nvme (the engine sends Content-MD5 there instead)',
  },
}

/** Why the server of this run lacks `feature`, or false. */
export const lacks = (feature) => LACKS[testServer]?.[feature] ?? false

/**
 * An independent client of the test server (no server: every use throws
 * NO_SERVER). A request of its own that gets no answer fails after 30 s
 * rather than leaving a test waiting for ever (a loaded server can drop a
 * connection the SDK then waits on).
 */
export const admin = SERVER
  ? new S3Client({ endpoint: SERVER, region: 'us-east-1', forcePathStyle: true, requestHandler: { requestTimeout: 30_000, connectionTimeout: 30_000 } })
  : needsServer()

let counter = 0
/** A fresh bucket for one test. */
export async function newBucket() {
  const name = `t-${process.pid}-${Date.now().toString(36)}-${counter++}`
  await admin.send(new CreateBucketCommand({ Bucket: name }))
  return name
}

export async function putObject(bucket, key, body, extra = {}) {
  await admin.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ...extra }))
}

/** Seeds `files` ({relative path: content}) under `prefix`. */
export async function seed(bucket, prefix, files) {
  await Promise.all(Object.entries(files).map(([rel, body]) => putObject(bucket, prefix + rel, body)))
}

/** `seed` for many files: at most `concurrency` PUTs at once. */
export async function seedMany(bucket, prefix, files, concurrency = 64) {
  const entries = Object.entries(files)
  let next = 0
  const worker = async () => {
    while (next < entries.length) {
      const [rel, body] = entries[next++]
      await putObject(bucket, prefix + rel, body)
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
}

export async function getObject(bucket, key) {
  const out = await admin.send(new GetObjectCommand({ Bucket: bucket, Key: key }))
  return Buffer.from(await out.Body.transformToByteArray())
}

export async function headObject(bucket, key) {
  return admin.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))
}

/** Every key under `prefix`, sorted. */
export async function listKeys(bucket, prefix = '') {
  const keys = []
  let ContinuationToken
  do {
    const page = await admin.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken }))
    for (const o of page.Contents ?? []) keys.push(o.Key)
    ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined
  } while (ContinuationToken)
  return keys.sort()
}

/**
 * An HTTP proxy in front of the S3 server that records every request
 * ({ method, path, query, headers, and the server's status once it
 * answers }) and can be scripted per request:
 * `fault(req)` may return
 *   { status, body }         answer instead of the server,
 *   { flip: true }           forward, but flip one byte of the response body,
 *   { truncateAfter: n }     forward n body bytes, then close the connection,
 *   { stallAfter: n }        forward n body bytes, then send nothing more,
 *   { headers: {...} }      forward, with these response headers set,
 *   { rewrite: (text) => text }  forward, with the response body rewritten,
 *   { bodyRate: n, bodySlowBytes: m }  read the request body's first m bytes
 *                            at n bytes a second (a slow uplink), the rest at once,
 *   { bodyStallAfter: n }    read n request body bytes, then read no more;
 *   { rate: n }              forward the response body at n bytes a second,
 *   { pauseAfter: n, pauseMs: m }  forward n response body bytes, pause m ms,
 *                            then the rest;
 * `delay(req)` returns milliseconds (or a promise) to wait before forwarding;
 * `hold(req)` milliseconds (or a promise) to hold the server's answer before
 * passing it on (the server has acted, the client does not know yet).
 */
export async function startProxy({ target = requireServer(), fault, delay, hold } = {}) {
  const upstream = new URL(target)
  const requests = []
  const probes = []
  const sockets = new Set()
  const upstreams = new Set()
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://proxy')
    const entry = { method: req.method, path: decodeURIComponent(url.pathname), query: url.searchParams, headers: req.headers }
    // A DeleteObjects request names its keys in the body: read it first.
    const body = url.searchParams.has('delete') ? Buffer.concat(await req.toArray()) : undefined
    // The engine's probes of what the server honours (once per instance,
    // not on AWS) go to `probes`, so `requests` holds only the sync's own.
    entry.probe = entry.path.includes('/.s3ws/probe-') || String(body ?? '').includes('.s3ws/probe-')
    ;(entry.probe ? probes : requests).push(entry)
    const action = fault?.(entry)
    if (action?.status) {
      req.resume()
      res.writeHead(action.status, { 'content-type': 'application/xml' })
      res.end(action.body ?? '')
      return
    }
    const forward = () => {
      // The Host header is kept: it is part of the SigV4 signature.
      const fwd = http.request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers }, async (up) => {
        entry.status = up.statusCode
        const held = hold?.(entry)
        if (held) {
          up.pause()
          await (typeof held === 'number' ? new Promise((r) => setTimeout(r, held)) : held)
          up.resume()
        }
        if (action?.rewrite) {
          const text = action.rewrite(Buffer.concat(await up.toArray()).toString())
          res.writeHead(up.statusCode, { ...up.headers, ...action.headers, 'content-length': Buffer.byteLength(text) })
          return res.end(text)
        }
        res.writeHead(up.statusCode, { ...up.headers, ...action?.headers })
        if (!action || (action.headers && !action.flip && action.truncateAfter === undefined && action.stallAfter === undefined)) {
          return up.pipe(res)
        }
        let sent = 0
        let flipped = false
        /** Holds the rest of the body for `ms`, then writes `rest` first. */
        const pause = (ms, rest) => {
          up.pause()
          setTimeout(() => {
            if (rest?.length) res.write(rest)
            up.resume()
          }, ms)
        }
        up.on('data', (chunk) => {
          if (action.pauseAfter !== undefined && sent < action.pauseAfter && sent + chunk.length >= action.pauseAfter) {
            const cut = action.pauseAfter - sent
            res.write(chunk.subarray(0, cut))
            sent += chunk.length
            pause(action.pauseMs, chunk.subarray(cut))
            return
          }
          if (action.rate) pause((chunk.length / action.rate) * 1000)
          if (action.flip && !flipped && chunk.length > 0) {
            chunk = Buffer.from(chunk)
            chunk[0] ^= 0x01
            flipped = true
          }
          const limit = action.truncateAfter ?? action.stallAfter
          if (limit !== undefined && sent + chunk.length > limit) {
            chunk = chunk.subarray(0, Math.max(0, limit - sent))
            sent = limit
            up.destroy()
            // A cut connection, once the client has had the bytes sent (a
            // reset at once could discard them unread); or a stall: the
            // response stays open, silent.
            const cut = () => action.truncateAfter !== undefined && setTimeout(() => res.socket?.destroy(), 50)
            if (chunk.length) res.write(chunk, cut)
            else cut()
            return
          }
          sent += chunk.length
          res.write(chunk)
        })
        up.on('end', () => res.end())
      })
      fwd.on('error', () => res.destroy())
      upstreams.add(fwd)
      fwd.on('close', () => upstreams.delete(fwd))
      // A client gone (killed, timed out) takes its upstream request along,
      // or the server would hold that connection open until its own timeout.
      res.on('close', () => res.writableFinished || fwd.destroy())
      if (body) fwd.end(body)
      else if (action?.bodyRate || action?.bodyStallAfter !== undefined) readSlowly(req, fwd, action)
      else req.pipe(fwd)
    }
    const wait = delay?.(entry) ?? 0
    if (typeof wait?.then === 'function') wait.then(() => res.destroyed || forward())
    else if (wait > 0) setTimeout(() => res.destroyed || forward(), wait)
    else forward()
  })
  server.on('connection', (s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  await new Promise((r) => server.listen(0, '127.0.0.1', r))
  return {
    endpoint: `http://127.0.0.1:${server.address().port}`,
    requests,
    probes,
    /** Requests of `method` matching `pred` (the engine's probes are not among them). */
    count: (method, pred = () => true) => requests.filter((r) => r.method === method && pred(r)).length,
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy()
        for (const u of upstreams) u.destroy()
        server.close(r)
      }),
  }
}

/**
 * Forwards `req`'s body to `fwd`: its first `bodySlowBytes` at `bodyRate`
 * bytes a second, and none past `bodyStallAfter`. (On loopback the kernel
 * holds about 4 MB of a body the reader has not read, out of the client's
 * sight: a slow link holds far less. The rest of the body, read at once,
 * stands for that.)
 */
async function readSlowly(req, fwd, { bodyRate, bodySlowBytes = Infinity, bodyStallAfter = Infinity }) {
  let read = 0
  try {
    for await (const chunk of req) {
      const part = chunk.subarray(0, Math.max(0, bodyStallAfter - read))
      read += part.length
      if (part.length) fwd.write(part)
      if (read >= bodyStallAfter) return // silent from here: the client's bytes pile up unread
      if (bodyRate && read <= bodySlowBytes) await new Promise((r) => setTimeout(r, (chunk.length / bodyRate) * 1000))
    }
    fwd.end()
  } catch {
    fwd.destroy()
  }
}

/** Runs `fn(proxy)` with a proxy started with `options` (see `startProxy`), closing it after. */
export async function withProxy(options, fn) {
  const proxy = await startProxy(options)
  try {
    return await fn(proxy)
  } finally {
    await proxy.close()
  }
}

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..')

/**
 * Runs `op` ('pull' or 'push') in a fresh Node process, as a new container
 * would: a new instance with `options` (logger silenced). Resolves to the
 * result object; `onStart(child)` may kill it.
 */
export function inChild(options, op, { onStart } = {}) {
  const script = `
    const { S3WorkspaceSync } = require(${JSON.stringify(ROOT)})
    const quiet = { debug() {}, info() {}, warn() {}, error() {} }
    const sync = new S3WorkspaceSync({ ...${JSON.stringify(options)}, logger: quiet })
    sync.${op}().then(
      (r) => process.stdout.write(JSON.stringify(r)),
      (e) => { process.stdout.write(JSON.stringify({ rejected: { code: e.code, message: e.message } })) },
    )
  `
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'], env: process.env })
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    child.once('error', reject)
    child.once('exit', (code, signal) => {
      if (signal) return resolve({ killed: signal })
      try {
        resolve(JSON.parse(out))
      } catch {
        reject(new Error(`child exited ${code} with ${JSON.stringify(out)}`))
      }
    })
    onStart?.(child)
  })
}
