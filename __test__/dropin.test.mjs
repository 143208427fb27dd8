// Drop-in fidelity: what upstream's users rely on beyond the happy path.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { S3WorkspaceSync, SyncIgnoreFilter } from '../index.js'
import { endpoint, newBucket, seed, tmpDir, md5, quiet, recordingLogger, isList, listingXml, withProxy } from './helpers.mjs'

// The package root (import.meta.dirname needs Node 20.11).
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

test('a throwing progress listener or logger never fails the sync or crashes the process', async () => {
  const bucket = await newBucket()
  const files = {}
  for (let i = 0; i < 30; i++) files[`f${i}.txt`] = `${i}`
  await seed(bucket, 'p/', files)
  const dir = tmpDir()
  const script = `
    const { S3WorkspaceSync } = require(${JSON.stringify(ROOT)})
    const throwing = { debug() {}, info() { throw new Error('logger bug') }, warn() {}, error() {} }
    const sync = new S3WorkspaceSync({ bucket: ${JSON.stringify(bucket)}, prefix: 'p/', workspaceDir: ${JSON.stringify(dir)}, endpoint: ${JSON.stringify(endpoint)}, logger: throwing })
    sync.on('progress', () => { throw new Error('listener bug') })
    sync.pull().then(async (r) => {
      const pushed = await sync.push()
      await new Promise((res) => setTimeout(res, 100))
      process.stdout.write(JSON.stringify({ pulled: r.success, downloaded: r.downloadedFiles, pushed: pushed.success }))
    })
  `
  // execFileSync throws on a non-zero exit: the process must end normally.
  const out = execFileSync(process.execPath, ['-e', script], { env: process.env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  assert.deepEqual(JSON.parse(out), { pulled: true, downloaded: 30, pushed: true })
})

test('a concurrency of Infinity, accepted upstream, means "no limit" (capped), not an error', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'a.txt': 'a', 'b.txt': 'b' })
  const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: tmpDir(), endpoint, downloadConcurrency: Infinity, uploadConcurrency: Infinity, logger: quiet() })
  assert.equal((await sync.pull()).downloadedFiles, 2)
  assert.throws(
    () => new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: tmpDir(), downloadConcurrency: -Infinity }),
    (e) => e.code === 'INVALID_OPTION',
  )
})

test('downloadedFiles counts the files a pull made current, also on a warm pull by a fresh instance (the shared-skills check)', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'shared/', { '.agents/skills/a/SKILL.md': 'a', '.agents/skills/b/SKILL.md': 'b' })
  const dir = tmpDir()
  const fresh = () => new S3WorkspaceSync({ bucket, prefix: 'shared/', workspaceDir: dir, endpoint, logger: quiet() })
  const first = await fresh().pull()
  assert.deepEqual([first.downloadedFiles, first.transferredFiles, first.bytesTransferred], [2, 2, 2])
  // The consumer treats downloadedFiles === 0 as "no shared skills": a warm pull must not say so.
  const second = await fresh().pull()
  assert.deepEqual([second.downloadedFiles, second.transferredFiles, second.unchangedFiles], [2, 0, 2])
  const none = await new S3WorkspaceSync({ bucket, prefix: 'nobody/', workspaceDir: tmpDir(), endpoint, logger: quiet() }).pull()
  assert.equal(none.downloadedFiles, 0)
})

test('ignore patterns the npm ignore package tolerated are skipped with a warning, never thrown; braces are literal', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'a.txt': 'a', '{a,b}.txt': 'braces', 'ok.txt': 'ok' })
  const { logger, calls } = recordingLogger()
  const dir = tmpDir()
  const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, ignorePatterns: ['\\', '[z-a]', 'ok.txt', '{a,b}.txt'], logger })
  const warned = calls.filter((c) => c.level === 'warn' && /Ignore pattern skipped/.test(c.message)).map((c) => c.message)
  assert.equal(warned.length, 2, warned.join('\n'))
  await sync.pull()
  assert.deepEqual(
    readdirSync(dir)
      .filter((n) => !n.startsWith('.'))
      .sort(),
    ['a.txt'],
  )
  const filter = new SyncIgnoreFilter(logger, ['[z-a]', '{a,b}.txt'])
  assert.equal(filter.isIgnored('{a,b}.txt'), true)
  assert.equal(filter.isIgnored('a.txt'), false)
})

test('objects in SSE-KMS or SSE-C buckets (ETag not the MD5) download, verified by length; a warm pull makes no request per file', async () => {
  const bucket = await newBucket()
  const files = { 'kms.txt': 'encrypted with a KMS key', 'ssec.txt': 'encrypted with a customer key' }
  await seed(bucket, 'p/', files)
  // What S3 answers for such objects: an ETag of 32 hex digits that is not the MD5, and the encryption headers.
  const fakeEtag = (key) => md5(Buffer.from(`not the md5 of ${key}`))
  const sse = { 'p/kms.txt': { 'x-amz-server-side-encryption': 'aws:kms' }, 'p/ssec.txt': { 'x-amz-server-side-encryption-customer-algorithm': 'AES256' } }
  const objects = Object.entries(files).map(([rel, body]) => ({ key: `p/${rel}`, size: Buffer.byteLength(body), etag: fakeEtag(`p/${rel}`) }))
  const fault = (r) => {
    if (isList(r)) return { status: 200, body: listingXml({ bucket, prefix: 'p/', objects }) }
    const key = r.path.slice(`/${bucket}/`.length)
    if (r.method === 'GET' && sse[key]) return { headers: { etag: `"${fakeEtag(key)}"`, ...sse[key] } }
    return undefined
  }
  const dir = tmpDir()
  await withProxy({ fault }, async (proxy) => {
    const sync = () => new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, logger: quiet() })
    const first = await sync().pull()
    assert.equal(first.success, true, JSON.stringify(first.errors))
    assert.equal(first.transferredFiles, 2)
    for (const [rel, body] of Object.entries(files)) assert.equal(readFileSync(path.join(dir, rel), 'utf8'), body)
    const mark = proxy.requests.length
    const warm = await sync().pull()
    assert.deepEqual([warm.success, warm.transferredFiles, warm.downloadedFiles], [true, 0, 2])
    const later = proxy.requests.slice(mark)
    assert.equal(later.filter((r) => !isList(r)).length, 0, later.map((r) => `${r.method} ${r.path}`).join(', '))
  })
  // A body of the wrong length is still caught.
  const short = { status: 200, body: listingXml({ bucket, prefix: 'p/', objects: objects.map((o) => ({ ...o, size: o.size + 1 })) }) }
  await withProxy({ fault: (r) => (isList(r) ? short : fault(r)) }, async (proxy) => {
    const result = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: tmpDir(), endpoint: proxy.endpoint, logger: quiet() }).pull()
    assert.equal(result.success, false)
    assert.match(result.errors.join('\n'), /bytes, the listing says/)
  })
})
