// Plain-JS reference: the upstream package's algorithm, written from its
// recorded behaviour with @aws-sdk/client-s3 (default client
// settings, as upstream users had them) and bounded parallelism.
//
//   pull: ListObjectsV2 pages → 50 parallel GetObject, Body piped into
//         fs.createWriteStream(path.join(workspaceDir, rel)) in place → MD5 of
//         each written file (read back) for the snapshot → delete local files
//         not on S3 (and directories left empty).
//   push: scan → MD5 of every file (all at once, as Promise.all would; the
//         libuv pool bounds the real parallelism) → readFileSync + PutObject
//         for new/changed files, 10 at a time → DeleteObject for files of the snapshot that are
//         gone → new snapshot.
//
// The snapshot lives on the instance, so a pull then a push in one process
// behaves as upstream (the edit-push scenario).

import { createHash } from 'node:crypto'
import { createReadStream, createWriteStream, readFileSync } from 'node:fs'
import { mkdir, readdir, rmdir, unlink } from 'node:fs/promises'
import path from 'node:path'
import { pipeline } from 'node:stream/promises'
import { S3Client, ListObjectsV2Command, GetObjectCommand, PutObjectCommand, DeleteObjectCommand } from '@aws-sdk/client-s3'

/** Runs `fn` over `items`, at most `limit` at a time (a minimal p-limit). */
export async function mapLimit(items, limit, fn) {
  const results = Array.from({ length: items.length })
  let next = 0
  const worker = async () => {
    while (next < items.length) {
      const i = next++
      results[i] = await fn(items[i], i)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  return results
}

// The upstream defaults (npm `ignore` semantics, reduced to what these
// patterns need: a name anywhere in the path, or a directory name).
const IGNORED_NAMES = new Set(['.DS_Store', 'Thumbs.db', '.syncignore'])
const IGNORED_DIRS = new Set(['node_modules', '__pycache__', '.gradle', 'build', 'dist', 'target', '.idea', '.vscode', 'logs', '.cache'])
const IGNORED_SUFFIXES = ['.swp', '.swo', '~', '.pyc', '.iml', '.log', '.tmp', '.temp']

export function isIgnored(rel) {
  const parts = rel.split('/')
  const name = parts[parts.length - 1]
  if (IGNORED_NAMES.has(name) || IGNORED_SUFFIXES.some((s) => name.endsWith(s))) return true
  return parts.slice(0, -1).some((d) => IGNORED_DIRS.has(d))
}

const TYPES = {
  '.md': 'text/markdown',
  '.txt': 'text/plain',
  '.json': 'application/json',
  '.js': 'application/javascript',
  '.ts': 'application/typescript',
  '.py': 'text/x-python',
  '.html': 'text/html',
  '.csv': 'text/csv',
  '.yaml': 'application/x-yaml',
  '.sh': 'application/x-sh',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.pdf': 'application/pdf',
  '.zip': 'application/zip',
}
const contentType = (rel) => TYPES[path.extname(rel).toLowerCase()] ?? 'application/octet-stream'

/** MD5 hex of a file, streamed (upstream's calculateFileHash). */
export function md5File(file) {
  return new Promise((resolve, reject) => {
    const hash = createHash('md5')
    createReadStream(file)
      .on('error', reject)
      .on('data', (chunk) => hash.update(chunk))
      .on('end', () => resolve(hash.digest('hex')))
  })
}

/** Every regular file under `dir` (relative, `/`-separated), ignored ones skipped. */
async function scan(dir) {
  const out = []
  const walk = async (abs, rel) => {
    let entries
    try {
      entries = await readdir(abs, { withFileTypes: true })
    } catch (e) {
      if (e.code === 'ENOENT') return
      throw e
    }
    for (const e of entries) {
      const r = rel ? `${rel}/${e.name}` : e.name
      if (e.isDirectory()) {
        if (!isIgnored(`${r}/x`)) await walk(path.join(abs, e.name), r)
      } else if (e.isFile() && !isIgnored(r)) out.push(r)
    }
  }
  await walk(dir, '')
  return out
}

export class ReferenceSync {
  constructor({ bucket, prefix, workspaceDir, endpoint, region = process.env.AWS_REGION || 'us-east-1', downloadConcurrency = 50, uploadConcurrency = 10 }) {
    this.bucket = bucket
    this.prefix = prefix.endsWith('/') ? prefix : `${prefix}/`
    this.workspaceDir = workspaceDir
    this.downloadConcurrency = downloadConcurrency
    this.uploadConcurrency = uploadConcurrency
    this.client = new S3Client({ region, endpoint, forcePathStyle: Boolean(endpoint) })
    /** rel → MD5 hex, from the last pull or push. */
    this.snapshot = new Map()
  }

  async pull() {
    const started = Date.now()
    const errors = []
    const keys = []
    let ContinuationToken
    do {
      const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix, MaxKeys: 1000, ContinuationToken }))
      for (const o of page.Contents ?? []) {
        if (o.Key === this.prefix || o.Key.endsWith('/')) continue
        const rel = o.Key.slice(this.prefix.length)
        if (!isIgnored(rel)) keys.push({ key: o.Key, rel })
      }
      ContinuationToken = page.NextContinuationToken
    } while (ContinuationToken)

    await mkdir(this.workspaceDir, { recursive: true })
    const snapshot = new Map()
    let downloadedFiles = 0
    await mapLimit(keys, this.downloadConcurrency, async ({ key, rel }) => {
      const file = path.join(this.workspaceDir, rel)
      try {
        const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }))
        await mkdir(path.dirname(file), { recursive: true })
        await pipeline(out.Body, createWriteStream(file))
        snapshot.set(rel, await md5File(file))
        downloadedFiles++
      } catch (e) {
        errors.push(`${rel}: ${e.message}`)
      }
    })

    // S3 is the source of truth: delete local-only files, then empty dirs.
    const remote = new Set(keys.map((k) => k.rel))
    let deletedFiles = 0
    for (const rel of await scan(this.workspaceDir)) {
      if (remote.has(rel)) continue
      try {
        await unlink(path.join(this.workspaceDir, rel))
        deletedFiles++
        let dir = path.dirname(rel)
        while (dir !== '.') {
          try {
            await rmdir(path.join(this.workspaceDir, dir))
          } catch {
            break
          }
          dir = path.dirname(dir)
        }
      } catch (e) {
        errors.push(`${rel}: ${e.message}`)
      }
    }
    this.snapshot = snapshot
    return { success: errors.length === 0, downloadedFiles, deletedFiles, errors: errors.length ? errors : undefined, duration: Date.now() - started }
  }

  async push() {
    const started = Date.now()
    const errors = []
    const local = await scan(this.workspaceDir)
    const hashes = new Map()
    // Bounded only to stay clear of EMFILE; as fast as Promise.all here
    // (a sequential loop would be about twice as slow).
    const digests = await mapLimit(local, 64, (rel) => md5File(path.join(this.workspaceDir, rel)))
    local.forEach((rel, i) => hashes.set(rel, digests[i]))
    const changed = local.filter((rel) => this.snapshot.get(rel) !== hashes.get(rel))
    const gone = [...this.snapshot.keys()].filter((rel) => !hashes.has(rel))
    let uploadedFiles = 0
    await mapLimit(changed, this.uploadConcurrency, async (rel) => {
      try {
        const Body = readFileSync(path.join(this.workspaceDir, rel))
        await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.prefix + rel, Body, ContentType: contentType(rel) }))
        uploadedFiles++
      } catch (e) {
        errors.push(`${rel}: ${e.message}`)
        // Not uploaded: keep the old entry so the next push retries it.
        if (this.snapshot.has(rel)) hashes.set(rel, this.snapshot.get(rel))
        else hashes.delete(rel)
      }
    })
    let deletedFiles = 0
    await mapLimit(gone, this.uploadConcurrency, async (rel) => {
      try {
        await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.prefix + rel }))
        deletedFiles++
      } catch (e) {
        errors.push(`${rel}: ${e.message}`)
      }
    })
    this.snapshot = hashes
    return { success: errors.length === 0, uploadedFiles, deletedFiles, errors: errors.length ? errors : undefined, duration: Date.now() - started }
  }

  destroy() {
    this.client.destroy()
  }
}
