// Test helpers that need no S3 server: temp workspaces, reading trees back,
// hashes, recording loggers, canned S3 answers. A test file that imports only
// these (and no `./helpers.mjs`) runs with a plain `node --test FILE`, no
// server and no S3WS_TEST_ENDPOINT.

import { createHash, randomBytes } from 'node:crypto'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, lstatSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'

export function tmpDir(name = 'ws') {
  const dir = mkdtempSync(path.join(os.tmpdir(), `s3ws-${name}-`))
  made.push(dir)
  return dir
}

/** Every temp directory this process made: removed when it exits (`S3WS_KEEP_TMP=1` keeps them to look at). */
const made = []
process.on('exit', () => {
  if (process.env.S3WS_KEEP_TMP) return
  for (const dir of made) {
    try {
      rmSync(dir, { recursive: true, force: true })
    } catch {
      // A test left a directory unreadable: make it ours again, then remove it.
      spawnSync('chmod', ['-R', 'u+rwx', dir])
      rmSync(dir, { recursive: true, force: true })
    }
  }
})

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
    outer.update(
      createHash('md5')
        .update(buf.subarray(at, at + PART))
        .digest(),
    )
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
 * A file stamped within ~20 ms before a pull is called counts as written
 * during it (the kernel stamps files from a coarse clock) and is left alone.
 * A test whose files mean "written before the pull" waits this long first.
 */
export const settle = () => new Promise((r) => setTimeout(r, 40))

/** Whether a recorded request is a listing (ListObjectsV2). */
export const isList = (r) => r.method === 'GET' && r.query.get('list-type') === '2'

/** A ListObjectsV2 response body. */
export function listingXml({ bucket, prefix, objects, truncated = false, nextToken }) {
  const esc = (v) => String(v).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
  const contents = objects
    .map(
      (o) =>
        `<Contents><Key>${esc(o.key)}</Key><Size>${o.size ?? 1}</Size><ETag>"${o.etag ?? '0cc175b9c0f1b6a831c399e269772661'}"</ETag><LastModified>2026-01-01T00:00:00.000Z</LastModified><StorageClass>STANDARD</StorageClass></Contents>`,
    )
    .join('')
  return `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>${esc(bucket)}</Name><Prefix>${esc(prefix)}</Prefix><KeyCount>${objects.length}</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>${truncated}</IsTruncated>${nextToken ? `<NextContinuationToken>${esc(nextToken)}</NextContinuationToken>` : ''}${contents}</ListBucketResult>`
}

/** sha256 of every file under `dir` (a canary that must never change). */
export function fingerprint(dir) {
  return Object.fromEntries(filesUnder(dir).map(([r, full]) => [r, createHash('sha256').update(readFileSync(full)).digest('hex')]))
}
