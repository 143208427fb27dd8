// Shared test helpers: an independent S3 client (the AWS SDK) to seed and
// inspect the real server, temp workspaces, and a recording proxy.

import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, readdirSync, readFileSync, lstatSync } from 'node:fs'
import { spawn } from 'node:child_process'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import {
  S3Client,
  CreateBucketCommand,
  PutObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
} from '@aws-sdk/client-s3'

export const endpoint = process.env.S3WS_TEST_ENDPOINT
if (!endpoint) throw new Error('S3WS_TEST_ENDPOINT is not set: run the tests with `npm test`')

/** The server this run is against (`S3WS_TEST_SERVER`: seaweedfs, moto or s3rver). */
export const testServer = process.env.S3WS_TEST_SERVER || 'seaweedfs'

/** What a test server does not do, measured: the reason, for `test(name, { skip })`. */
const LACKS = {
  moto: {
    credentials: 'moto accepts any credentials',
    'batch-delete-etag': 'moto 5.2.5 ignores the per-key ETag of DeleteObjects',
    'upload-age': 'moto 5.2.5 dates every multipart upload 2010-11-10, so every one looks abandoned',
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
  },
}

/** Why the server of this run lacks `feature`, or false. */
export const lacks = (feature) => LACKS[testServer]?.[feature] ?? false

export const admin = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true })

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

export function tmpDir(name = 'ws') {
  return mkdtempSync(path.join(os.tmpdir(), `s3ws-${name}-`))
}

/** The engine's own directory at the workspace root (sync base, lock; never synced). */
export const STATE_DIR = '.s3ws'

/** [relative path, full path] of every file under `dir` (symlinks included, not followed). */
export function filesUnder(dir, skip = () => false) {
  const out = []
  const walk = (d, rel) => {
    for (const name of readdirSync(d)) {
      const full = path.join(d, name)
      const r = rel ? `${rel}/${name}` : name
      if (skip(r)) continue
      if (lstatSync(full).isDirectory()) walk(full, r)
      else out.push([r, full])
    }
  }
  walk(dir, '')
  return out
}

/** {relative path: content as string} of every regular file under `dir`, but the engine's own directory. */
export function readTree(dir) {
  return Object.fromEntries(
    filesUnder(dir, (r) => r === STATE_DIR)
      .filter(([, full]) => lstatSync(full).isFile())
      .map(([r, full]) => [r, readFileSync(full, 'utf8')]),
  )
}

export function md5(buf) {
  return createHash('md5').update(buf).digest('hex')
}

/** The engine's content hash: the MD5 below 8 MiB, else the S3 multipart
 * ETag form over 8 MiB parts (what this package's uploads get as ETag). */
export function contentHash(buf) {
  const PART = 8 * 1024 * 1024
  if (buf.length < PART) return md5(buf)
  const outer = createHash('md5')
  let parts = 0
  for (let at = 0; at < buf.length; at += PART, parts++) {
    outer.update(createHash('md5').update(buf.subarray(at, at + PART)).digest())
  }
  return `${outer.digest('hex')}-${parts}`
}

export function randomBuffer(size) {
  return randomBytes(size)
}

/** A logger that records calls nobody reads: keeps test output quiet. */
export const quiet = () => recordingLogger().logger

/** A logger that records every call. */
export function recordingLogger() {
  const calls = []
  const logger = {}
  for (const level of ['debug', 'info', 'warn', 'error']) {
    logger[level] = (message, ...args) => calls.push({ level, message, args })
  }
  return { logger, calls }
}

/**
 * An HTTP proxy in front of the S3 server that records every request
 * ({ method, path, query, headers }) and can be scripted per request:
 * `fault(req)` may return
 *   { status, body }         answer instead of the server,
 *   { flip: true }           forward, but flip one byte of the response body,
 *   { truncateAfter: n }     forward n body bytes, then reset the connection,
 *   { stallAfter: n }        forward n body bytes, then send nothing more,
 *   { headers: {...} }      forward, with these response headers set;
 * `delay(req)` returns milliseconds to wait before forwarding;
 * `hold(req)` milliseconds (or a promise) to hold the server's answer before
 * passing it on (the server has acted, the client does not know yet).
 */
export async function startProxy({ target = endpoint, fault, delay, hold } = {}) {
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
      const fwd = http.request(
        { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
        async (up) => {
          const held = hold?.(entry)
          if (held) {
            up.pause()
            await (typeof held === 'number' ? new Promise((r) => setTimeout(r, held)) : held)
            up.resume()
          }
          res.writeHead(up.statusCode, { ...up.headers, ...action?.headers })
          if (!action || (action.headers && !action.flip && action.truncateAfter === undefined && action.stallAfter === undefined)) {
            return up.pipe(res)
          }
          let sent = 0
          let flipped = false
          up.on('data', (chunk) => {
            if (action.flip && !flipped && chunk.length > 0) {
              chunk = Buffer.from(chunk)
              chunk[0] ^= 0x01
              flipped = true
            }
            const limit = action.truncateAfter ?? action.stallAfter
            if (limit !== undefined && sent + chunk.length > limit) {
              chunk = chunk.subarray(0, Math.max(0, limit - sent))
              if (chunk.length) res.write(chunk)
              sent = limit
              up.destroy()
              if (action.truncateAfter !== undefined) res.socket?.destroy()
              return // a stall: the response stays open, silent
            }
            sent += chunk.length
            res.write(chunk)
          })
          up.on('end', () => res.end())
        },
      )
      fwd.on('error', () => res.destroy())
      upstreams.add(fwd)
      fwd.on('close', () => upstreams.delete(fwd))
      // A client gone (killed, timed out) takes its upstream request along,
      // or the server would hold that connection open until its own timeout.
      res.on('close', () => res.writableFinished || fwd.destroy())
      if (body) fwd.end(body)
      else req.pipe(fwd)
    }
    const wait = delay?.(entry) ?? 0
    if (wait > 0) setTimeout(() => res.destroyed || forward(), wait)
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
 * A file stamped within ~20 ms before a pull is called counts as written
 * during it (the kernel stamps files from a coarse clock) and is left alone.
 * A test whose files mean "written before the pull" waits this long first.
 */
export const settle = () => new Promise((r) => setTimeout(r, 40))

/** Runs `fn(proxy)` with a proxy started with `options` (see `startProxy`), closing it after. */
export async function withProxy(options, fn) {
  const proxy = await startProxy(options)
  try {
    return await fn(proxy)
  } finally {
    await proxy.close()
  }
}

/** Whether a recorded request is a listing (ListObjectsV2). */
export const isList = (r) => r.method === 'GET' && r.query.get('list-type') === '2'

/** A ListObjectsV2 response body. */
export function listingXml({ bucket, prefix, objects, truncated = false, nextToken }) {
  const esc = (v) => String(v).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
  const contents = objects
    .map((o) => `<Contents><Key>${esc(o.key)}</Key><Size>${o.size ?? 1}</Size><ETag>"${o.etag ?? '0cc175b9c0f1b6a831c399e269772661'}"</ETag><LastModified>2026-01-01T00:00:00.000Z</LastModified><StorageClass>STANDARD</StorageClass></Contents>`)
    .join('')
  return `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>${esc(bucket)}</Name><Prefix>${esc(prefix)}</Prefix><KeyCount>${objects.length}</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>${truncated}</IsTruncated>${nextToken ? `<NextContinuationToken>${esc(nextToken)}</NextContinuationToken>` : ''}${contents}</ListBucketResult>`
}

/** sha256 of every file under `dir` (a canary that must never change). */
export function fingerprint(dir) {
  return Object.fromEntries(filesUnder(dir).map(([r, full]) => [r, createHash('sha256').update(readFileSync(full)).digest('hex')]))
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
