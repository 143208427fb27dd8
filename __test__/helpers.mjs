// Shared test helpers: an independent S3 client (the AWS SDK) to seed and
// inspect the real server, temp workspaces, and a recording proxy.

import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, readdirSync, readFileSync, lstatSync } from 'node:fs'
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

export const admin = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true })

let counter = 0
/** A fresh bucket for one test. */
export async function newBucket() {
  const name = `t-${process.pid}-${Date.now().toString(36)}-${counter++}`
  await admin.send(new CreateBucketCommand({ Bucket: name }))
  return name
}

export async function putObject(bucket, key, body) {
  await admin.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }))
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

/** The engine's own directory at the workspace root (hash cache, lock; never synced). */
export const STATE_DIR = '.s3ws'
export const STATE_FILE = '.s3ws/state.json'

/** {relative path: content as string} of every regular file under `dir`, but the engine's own directory. */
export function readTree(dir) {
  const out = {}
  const walk = (d, rel) => {
    for (const name of readdirSync(d)) {
      const full = path.join(d, name)
      const r = rel ? `${rel}/${name}` : name
      if (r === STATE_DIR) continue
      const st = lstatSync(full)
      if (st.isDirectory()) walk(full, r)
      else if (st.isFile()) out[r] = readFileSync(full, 'utf8')
    }
  }
  walk(dir, '')
  return out
}

export function md5(buf) {
  return createHash('md5').update(buf).digest('hex')
}

export function randomBuffer(size) {
  return randomBytes(size)
}

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
 * An HTTP proxy in front of the S3 server that records each request
 * (method, path, query) and can be scripted per request with `fault(req)`
 * returning { status, body } to answer instead of the server, and delayed
 * with `delay(req)` returning milliseconds.
 */
export async function startProxy({ target = endpoint, fault, delay } = {}) {
  const upstream = new URL(target)
  const requests = []
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://proxy')
    const entry = { method: req.method, path: decodeURIComponent(url.pathname), query: url.searchParams }
    requests.push(entry)
    const injected = fault?.(entry)
    if (injected) {
      req.resume()
      res.writeHead(injected.status, { 'content-type': 'application/xml' })
      res.end(injected.body ?? '')
      return
    }
    const wait = delay?.(entry) ?? 0
    // The Host header is kept: it is part of the SigV4 signature.
    const forward = () => {
      const fwd = http.request(
        { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
        (up) => {
          res.writeHead(up.statusCode, up.headers)
          up.pipe(res)
        },
      )
      fwd.on('error', () => res.destroy())
      req.pipe(fwd)
    }
    if (wait > 0) setTimeout(forward, wait)
    else forward()
  })
  await new Promise((r) => server.listen(0, '127.0.0.1', r))
  return {
    endpoint: `http://127.0.0.1:${server.address().port}`,
    requests,
    count: (method, pred = () => true) => requests.filter((r) => r.method === method && pred(r)).length,
    close: () => new Promise((r) => server.close(r)),
  }
}
