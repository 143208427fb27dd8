// The upstream package's real consumer, reproduced end to end against the
// server: per-user scoped clients, priority skills, shared skills, nested
// workspaces, sub-agents; and what a customised S3Client or a send()-driven
// client must get (its own middleware, streaming, the same integrity).

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, writeFileSync, appendFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { S3Client } from '@aws-sdk/client-s3'
import { S3WorkspaceSync } from '../index.js'
import { endpoint, newBucket, seed, tmpDir, readTree, md5, contentHash, quiet, recordingLogger, withProxy, getObject, headObject, listKeys, settle, lacks } from './helpers.mjs'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

/** A client like the consumer's: scoped, with a credential provider (Cognito identity-pool style). */
function scopedClient(endpointUrl, calls = { n: 0 }) {
  return new S3Client({
    endpoint: endpointUrl,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: async () => {
      calls.n++
      return { accessKeyId: process.env.AWS_ACCESS_KEY_ID, secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY, expiration: new Date(Date.now() + 3600_000) }
    },
  })
}

/** Adds an `x-trace-id` header to every request, as tracing middleware does. */
function withTracing(client) {
  client.middlewareStack.add(
    (next) => async (args) => {
      args.request.headers['x-trace-id'] = 'trace-123'
      return next(args)
    },
    { step: 'build', name: 'traceHeader' },
  )
  return client
}

test("a customised S3Client's middleware sees every request (driven through send()); a stock client keeps the native path", async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'a.txt': 'a', 'd/b.txt': 'b' })
  await withProxy({}, async (proxy) => {
    const { logger, calls } = recordingLogger()
    const client = withTracing(scopedClient(proxy.endpoint))
    const dir = tmpDir()
    const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, s3Client: client, logger })
    assert.equal((await sync.pull()).downloadedFiles, 2)
    writeFileSync(path.join(dir, 'c.txt'), 'c')
    assert.equal((await sync.push()).uploadedFiles, 1)
    assert.ok(proxy.requests.length >= 4)
    for (const r of proxy.requests) assert.equal(r.headers['x-trace-id'], 'trace-123', `${r.method} ${r.path}`)
    assert.ok(calls.some((c) => c.level === 'info' && /send\(\) because it has middleware traceHeader/.test(c.message)))
    client.destroy()

    // A stock client: the native engine (its own user agent), no JS middleware.
    proxy.requests.length = 0
    const stock = scopedClient(proxy.endpoint)
    const { logger: logger2, calls: calls2 } = recordingLogger()
    await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: tmpDir(), s3Client: stock, logger: logger2 }).pull()
    assert.ok(proxy.requests.length >= 1)
    for (const r of proxy.requests) assert.match(r.headers['user-agent'], /aws-sdk-rust/)
    assert.ok(!calls2.some((c) => /send\(\) because/.test(c.message)))
    stock.destroy()
  })
})

test('other customisations the native client would bypass are detected: retry settings, request handler, endpoint variants', async () => {
  const { NodeHttpHandler } = await import('@smithy/node-http-handler')
  const http = await import('node:http')
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'a.txt': 'a' })
  const https = await import('node:https')
  const cases = [
    ['retry settings', { maxAttempts: 7 }],
    ['an HTTP agent', { requestHandler: new NodeHttpHandler({ httpsAgent: new https.Agent({ keepAlive: false }) }) }],
    ['request handler settings', { requestHandler: new NodeHttpHandler({ httpAgent: new http.Agent({ keepAlive: false }) }) }],
    ['request handler settings', { requestHandler: { requestTimeout: 12_345 } }],
    ['useArnRegion', { useArnRegion: true }],
  ]
  for (const [what, extra] of cases) {
    const client = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, ...extra })
    const { logger, calls } = recordingLogger()
    const result = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: tmpDir(), s3Client: client, logger }).pull()
    assert.equal(result.downloadedFiles, 1, what)
    const line = calls.find((c) => /send\(\) because/.test(c.message))
    assert.ok(line && line.message.includes(what), `${what}: ${line?.message}`)
    client.destroy()
  }
})

test('send() mode: uploads carry Content-MD5 and s3ws-md5; a 256 MiB file streams both ways in bounded memory', { skip: lacks('aws-chunked') }, async (t) => {
  const bucket = await newBucket()
  const dir = tmpDir()
  const dir2 = tmpDir()
  const script = `
    const { S3WorkspaceSync } = require(${JSON.stringify(ROOT)})
    const { S3Client } = require('@aws-sdk/client-s3')
    const { openSync, writeSync, closeSync } = require('node:fs')
    // Not \`crypto\`: a script-level binding of that name would shadow the
    // global the AWS SDK looks for, and be uninitialised when it loads.
    const nodeCrypto = require('node:crypto')
    const quiet = { debug() {}, info() {}, warn() {}, error() {} }
    const MiB = 1024 * 1024
    const chunk = nodeCrypto.randomBytes(MiB)
    const hash = nodeCrypto.createHash('md5')
    const fd = openSync(${JSON.stringify(path.join(dir, 'big.bin'))}, 'w')
    for (let i = 0; i < 256; i++) { chunk[0] = i; writeSync(fd, chunk); hash.update(chunk) }
    closeSync(fd)
    const client = new S3Client({ endpoint: process.argv[1], region: 'us-east-1', forcePathStyle: true })
    const opts = { bucket: ${JSON.stringify(bucket)}, prefix: 'p/', s3Client: client, s3ClientMode: 'send', logger: quiet }
    ;(async () => {
      global.gc?.()
      const base = process.memoryUsage().rss
      let peak = base
      const timer = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss) }, 20)
      const pushed = await new S3WorkspaceSync({ ...opts, workspaceDir: ${JSON.stringify(dir)} }).push()
      const pushPeak = peak - base
      global.gc?.()
      const base2 = process.memoryUsage().rss
      peak = base2
      const pulled = await new S3WorkspaceSync({ ...opts, workspaceDir: ${JSON.stringify(dir2)} }).pull()
      clearInterval(timer)
      console.log(JSON.stringify({ pushed: pushed.success && pushed.uploadedFiles, pulled: pulled.success && pulled.transferredFiles, md5: hash.digest('hex'), pushGrowthMiB: pushPeak / MiB, pullGrowthMiB: (peak - base2) / MiB, errors: [...(pushed.errors ?? []), ...(pulled.errors ?? [])] }))
      client.destroy()
    })()
  `
  await withProxy({}, async (proxy) => {
    // Not spawnSync: the proxy runs on this process's event loop.
    const child = spawn(process.execPath, ['--expose-gc', '-e', script, proxy.endpoint], { env: process.env, stdio: ['ignore', 'pipe', 'pipe'] })
    const r = { stdout: '', stderr: '' }
    child.stdout.on('data', (d) => (r.stdout += d))
    child.stderr.on('data', (d) => (r.stderr += d))
    r.status = await new Promise((resolve) => child.once('exit', resolve))
    assert.equal(r.status, 0, r.stderr)
    const out = JSON.parse(r.stdout.trim().split('\n').at(-1))
    assert.deepEqual([out.pushed, out.pulled, out.errors], [1, 1, []])
    t.diagnostic(`RSS growth: push ${out.pushGrowthMiB.toFixed(1)} MiB, pull ${out.pullGrowthMiB.toFixed(1)} MiB`)
    assert.ok(out.pushGrowthMiB < 100, `push grew RSS by ${out.pushGrowthMiB.toFixed(0)} MiB`)
    assert.ok(out.pullGrowthMiB < 100, `pull grew RSS by ${out.pullGrowthMiB.toFixed(0)} MiB`)
    // One PUT: Content-MD5 is the whole file's MD5; the metadata holds the
    // content hash (8 MiB parts), the same as a native upload's.
    const put = proxy.requests.find((q) => q.method === 'PUT')
    assert.equal(put.headers['content-md5'], Buffer.from(out.md5, 'hex').toString('base64'))
    const pulled = readFileSync(path.join(dir2, 'big.bin'))
    assert.equal(md5(pulled), out.md5)
    const head = await headObject(bucket, 'p/big.bin')
    assert.equal(head.Metadata['s3ws-md5'], contentHash(pulled))
    assert.match(head.Metadata['s3ws-md5'], /-32$/)
  })
})

test('send() mode: a file that changes while it uploads is not recorded as pushed; the next push sends the new bytes', async () => {
  const dir = tmpDir()
  writeFileSync(path.join(dir, 'a.txt'), 'version 1')
  const stored = new Map()
  let first = true
  const client = {
    async send(command) {
      const name = command.constructor.name
      if (name === 'ListObjectsV2Command') return { Contents: [...stored.keys()].map((Key) => ({ Key, ETag: `"${md5(stored.get(Key))}"` })) }
      if (name === 'HeadObjectCommand') {
        if (!stored.has(command.input.Key)) throw Object.assign(new Error('NotFound'), { name: 'NotFound', $metadata: { httpStatusCode: 404 } })
        return { ETag: `"${md5(stored.get(command.input.Key))}"` }
      }
      if (name === 'PutObjectCommand') {
        stored.set(command.input.Key, Buffer.from(command.input.Body))
        if (first) {
          first = false
          appendFileSync(path.join(dir, 'a.txt'), ' and more') // the agent writes meanwhile
        }
        return { ETag: `"${md5(stored.get(command.input.Key))}"` }
      }
      throw new Error(`unexpected ${name}`)
    },
  }
  const sync = new S3WorkspaceSync({ bucket: 'b', prefix: 'p/', workspaceDir: dir, s3Client: client, logger: quiet() })
  const pushed = await sync.push()
  assert.equal(pushed.uploadedFiles, 0)
  assert.equal(pushed.errorDetails[0].code, 'FILE_CHANGED')
  await settle()
  const again = await sync.push()
  assert.equal(again.uploadedFiles, 1, JSON.stringify(again.errors))
  assert.equal(stored.get('p/a.txt').toString(), 'version 1 and more')
})

test("the consumer's flows: scoped client, priority skills, shared skills twice, nested workspaces, parent and sub-agent pushing at once", async () => {
  const bucket = await newBucket()
  await seed(bucket, 'users/u1/', {
    '.agents/skills/search/SKILL.md': 'search skill',
    '.agents/skills/write/SKILL.md': 'write skill',
    'notes/todo.md': 'todo',
    'dev2/main.py': 'print(1)',
  })
  for (let i = 0; i < 40; i++) await seed(bucket, 'users/u1/', { [`data/f${i}.txt`]: `data ${i}` })
  await seed(bucket, 'shared/skills/', { 'common/SKILL.md': 'common', 'lint/SKILL.md': 'lint' })
  const credentialCalls = { n: 0 }
  const client = scopedClient(endpoint, credentialCalls)
  const ws = tmpDir()
  try {
    // The agent starts while files arrive; skills first.
    const parent = new S3WorkspaceSync({
      bucket,
      prefix: 'users/u1/',
      workspaceDir: ws,
      s3Client: client,
      priorityPrefix: '.agents/skills/',
      downloadConcurrency: 4,
      logger: quiet(),
    })
    const handle = parent.startBackgroundPull()
    await parent.waitForPriorityPull()
    assert.equal(readFileSync(path.join(ws, '.agents/skills/search/SKILL.md'), 'utf8'), 'search skill')
    assert.equal(readFileSync(path.join(ws, '.agents/skills/write/SKILL.md'), 'utf8'), 'write skill')
    const pulled = await handle.done
    assert.equal(pulled.success, true)
    assert.equal(pulled.downloadedFiles, 44)
    assert.ok(credentialCalls.n >= 1)

    // Shared skills: a root-scoped instance per request; "0 downloaded" would mean "none".
    for (let request = 0; request < 2; request++) {
      const shared = new S3WorkspaceSync({ bucket, prefix: 'shared/skills/', workspaceDir: path.join(ws, '.agents', 'shared'), s3Client: client, logger: quiet() })
      const r = await shared.pull()
      assert.equal(r.downloadedFiles, 2, `request ${request}`)
      assert.equal(r.transferredFiles, request === 0 ? 2 : 0)
    }

    // A nested workspace: storage path "/dev2" at <ws>/dev2 inside "/" at <ws>.
    const nested = new S3WorkspaceSync({ bucket, prefix: 'users/u1/dev2/', workspaceDir: path.join(ws, 'dev2'), s3Client: client, logger: quiet() })
    assert.equal((await nested.pull()).downloadedFiles, 1)
    writeFileSync(path.join(ws, 'dev2', 'out.txt'), 'from dev2')
    assert.equal((await nested.push()).uploadedFiles, 1)
    // The parent sees the same object through its own prefix: no conflict, no double upload.
    await settle()
    const parentPush = await parent.push()
    assert.equal(parentPush.success, true, JSON.stringify(parentPush.errors))
    assert.equal(parentPush.conflicts, undefined)

    // A sub-agent reuses the parent's storage path and directory; both push at once.
    const sub = new S3WorkspaceSync({ bucket, prefix: 'users/u1/', workspaceDir: ws, s3Client: client, logger: quiet() })
    writeFileSync(path.join(ws, 'notes', 'parent.md'), 'parent work')
    writeFileSync(path.join(ws, 'notes', 'sub.md'), 'sub-agent work')
    const [a, b] = await Promise.all([parent.push(), sub.push()])
    assert.equal(a.success && b.success, true, JSON.stringify([a.errors, b.errors]))
    assert.equal(a.uploadedFiles + b.uploadedFiles, 2)
    const keys = await listKeys(bucket, 'users/u1/')
    for (const k of ['notes/parent.md', 'notes/sub.md', 'dev2/out.txt', 'dev2/main.py', '.agents/skills/search/SKILL.md']) assert.ok(keys.includes(`users/u1/${k}`), k)
    assert.ok(!keys.some((k) => k.includes('.s3ws')), 'state files never uploaded')
    assert.ok(!keys.some((k) => k.startsWith('users/u1/.agents/shared/.s3ws')))
    assert.equal((await getObject(bucket, 'users/u1/notes/sub.md')).toString(), 'sub-agent work')
    // A fresh container restores everything.
    const restored = tmpDir()
    const next = new S3WorkspaceSync({ bucket, prefix: 'users/u1/', workspaceDir: restored, s3Client: client, logger: quiet() })
    assert.equal((await next.pull()).success, true)
    assert.equal(readTree(restored)['notes/sub.md'], 'sub-agent work')
    assert.ok(!existsSync(path.join(restored, 'dev2', '.s3ws', 'nothing')))
  } finally {
    client.destroy()
  }
  mkdirSync(path.join(ws, 'unused'), { recursive: true })
})
