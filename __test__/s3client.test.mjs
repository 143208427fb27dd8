import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Readable } from 'node:stream'
import { spawnSync } from 'node:child_process'
import { cpSync, mkdirSync, readdirSync, readFileSync, writeFileSync, rmSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { S3Client } from '@aws-sdk/client-s3'
import { S3WorkspaceSync } from '../index.js'
import { CREDENTIALS } from '../scripts/s3-server.mjs'
import { endpoint, newBucket, seed, tmpDir, readTree, listKeys, getObject, recordingLogger, quiet, lacks } from './helpers.mjs'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

test('a real S3Client: its endpoint, region, path style and refreshing credentials are used', async () => {
  const bucket = await newBucket()
  const files = {}
  for (let i = 0; i < 150; i++) files[`d${i % 5}/f${i}.txt`] = `v${i}`
  await seed(bucket, 'p/', files)
  let calls = 0
  const client = new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    // Short-lived credentials: the engine must keep asking for fresh ones.
    credentials: async () => {
      calls++
      return { ...CREDENTIALS, expiration: new Date(Date.now() + 1000) }
    },
  })
  const saved = process.env.AWS_SECRET_ACCESS_KEY
  process.env.AWS_SECRET_ACCESS_KEY = 'not-the-secret' // so only the client's provider can work
  try {
    const dir = tmpDir()
    const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, s3Client: client, logger: quiet() })
    const pulled = await sync.pull()
    assert.equal(pulled.success, true, JSON.stringify(pulled.errors))
    assert.equal(pulled.downloadedFiles, 150)
    assert.deepEqual(readTree(dir), files)
    assert.ok(calls > 1, `credentials provider called ${calls} times`)
    const before = calls
    writeFileSync(path.join(dir, 'new.txt'), 'new')
    const pushed = await sync.push()
    assert.equal(pushed.uploadedFiles, 1)
    assert.ok(calls > before)
  } finally {
    process.env.AWS_SECRET_ACCESS_KEY = saved
    client.destroy()
  }
})

test('a failing credential provider rejects the pull cleanly', async () => {
  const dir = tmpDir()
  writeFileSync(path.join(dir, 'keep.txt'), 'k')
  const client = new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: async () => {
      throw new Error('token service down')
    },
  })
  const sync = new S3WorkspaceSync({ bucket: 'b', prefix: 'p/', workspaceDir: dir, s3Client: client, logger: quiet() })
  await assert.rejects(sync.pull(), (e) => e.code === 'S3_OPERATION_ERROR' && /token service down/.test(e.message))
  assert.deepEqual(readTree(dir), { 'keep.txt': 'k' })
})

/** A stand-in client like the ones upstream users write in their unit tests. */
function standIn(objects) {
  const store = new Map(Object.entries(objects))
  const send = async (command) => {
    send.mock.calls.push([command])
    const input = command.input
    switch (command.constructor.name) {
      case 'ListObjectsV2Command':
        return {
          Contents: [...store.keys()].filter((k) => k.startsWith(input.Prefix)).map((Key) => ({ Key, LastModified: new Date() })),
          IsTruncated: false,
        }
      case 'GetObjectCommand':
        return { Body: Readable.from([Buffer.from(store.get(input.Key))]) }
      case 'PutObjectCommand':
        store.set(input.Key, input.Body.toString())
        return {}
      case 'DeleteObjectCommand':
        store.delete(input.Key)
        return {}
      default:
        throw new Error(`unexpected ${command.constructor.name}`)
    }
  }
  send.mock = { calls: [] } // what vi.fn() / jest.fn() carry
  return { client: { send }, send, store }
}

test('a stand-in client with a mocked send() sees the SDK commands and inputs it expects', async () => {
  const { client, send, store } = standIn({ 'users/u1/a.txt': 'alpha', 'users/u1/dir/b.md': 'beta', 'users/u1/old.txt': 'old' })
  const dir = tmpDir()
  const sync = new S3WorkspaceSync({ bucket: 'my-bucket', prefix: 'users/u1', workspaceDir: dir, s3Client: client, logger: quiet() })
  const pulled = await sync.pull()
  assert.equal(pulled.success, true, JSON.stringify(pulled.errors))
  assert.equal(pulled.downloadedFiles, 3)
  assert.deepEqual(readTree(dir), { 'a.txt': 'alpha', 'dir/b.md': 'beta', 'old.txt': 'old' })
  const names = send.mock.calls.map(([c]) => c.constructor.name)
  assert.equal(names[0], 'ListObjectsV2Command')
  assert.deepEqual({ ...send.mock.calls[0][0].input, ContinuationToken: undefined }, { Bucket: 'my-bucket', Prefix: 'users/u1/', MaxKeys: 1000, ContinuationToken: undefined })
  assert.equal(names.filter((n) => n === 'GetObjectCommand').length, 3)
  for (const [c] of send.mock.calls.filter(([c]) => c.constructor.name === 'GetObjectCommand')) {
    assert.equal(c.input.Bucket, 'my-bucket')
    assert.match(c.input.Key, /^users\/u1\//)
  }

  send.mock.calls.length = 0
  writeFileSync(path.join(dir, 'a.txt'), 'alpha 2')
  rmSync(path.join(dir, 'old.txt'))
  const pushed = await sync.push()
  assert.equal(pushed.success, true, JSON.stringify(pushed.errors))
  assert.equal(pushed.uploadedFiles, 1)
  assert.equal(pushed.deletedFiles, 1)
  const put = send.mock.calls.find(([c]) => c.constructor.name === 'PutObjectCommand')[0]
  assert.equal(put.input.Bucket, 'my-bucket')
  assert.equal(put.input.Key, 'users/u1/a.txt')
  assert.ok(Buffer.isBuffer(put.input.Body))
  assert.equal(put.input.Body.toString(), 'alpha 2')
  assert.equal(put.input.ContentType, 'text/plain; charset=utf-8')
  const del = send.mock.calls.find(([c]) => c.constructor.name === 'DeleteObjectCommand')[0]
  assert.deepEqual(del.input, { Bucket: 'my-bucket', Key: 'users/u1/old.txt' })
  assert.equal(store.get('users/u1/a.txt'), 'alpha 2')
  assert.equal(store.has('users/u1/old.txt'), false)
})

test('a stand-in whose send() rejects fails the pull with S3OperationError', async () => {
  const client = {
    send: async () => {
      const e = new Error('Access Denied')
      e.name = 'AccessDenied'
      throw e
    },
  }
  const sync = new S3WorkspaceSync({ bucket: 'b', prefix: 'p/', workspaceDir: tmpDir(), s3Client: client, logger: quiet() })
  await assert.rejects(sync.pull(), (e) => e.name === 'S3OperationError' && /AccessDenied: Access Denied/.test(e.message))
})

test('a real S3Client whose send is stubbed is driven through send()', async () => {
  const client = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true })
  const { send } = standIn({ 'p/x.txt': 'from the stub' })
  client.send = send
  const dir = tmpDir()
  const result = await new S3WorkspaceSync({ bucket: 'stubbed', prefix: 'p/', workspaceDir: dir, s3Client: client, logger: quiet() }).pull()
  assert.equal(result.downloadedFiles, 1)
  assert.deepEqual(readTree(dir), { 'x.txt': 'from the stub' })
  assert.ok(send.mock.calls.length >= 2)
})

test("s3ClientMode: 'send' drives a real S3Client through send() against the server", async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'a.txt': 'a', 'b/c.txt': 'c', 'gone.txt': 'g' })
  const client = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true })
  try {
    const dir = tmpDir()
    const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, s3Client: client, s3ClientMode: 'send', logger: quiet() })
    const pulled = await sync.pull()
    assert.equal(pulled.downloadedFiles, 3)
    // A second pull recognises unchanged files from the SDK's ETags.
    const again = await sync.pull()
    assert.deepEqual([again.downloadedFiles, again.transferredFiles], [3, 0])
    writeFileSync(path.join(dir, 'a.txt'), 'a2')
    rmSync(path.join(dir, 'gone.txt'))
    const pushed = await sync.push()
    assert.deepEqual([pushed.uploadedFiles, pushed.deletedFiles], [1, 1])
    assert.equal((await getObject(bucket, 'p/a.txt')).toString(), 'a2')
    assert.deepEqual(await listKeys(bucket, 'p/'), ['p/a.txt', 'p/b/c.txt'])
  } finally {
    client.destroy()
  }
})

test('without @aws-sdk/client-s3 installed: plain use and stand-in clients work', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'hello.txt': 'hi' })
  // A copy of the package with no node_modules anywhere above it.
  const pkg = path.join(tmpDir('pkg'), 'node_modules', '@moca', 's3-workspace-sync')
  mkdirSync(pkg, { recursive: true })
  const { files } = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'))
  const listed = files.map((f) => f.replace(/\/$/, ''))
  for (const f of readdirSync(ROOT).filter((f) => f === 'package.json' || listed.includes(f) || f.endsWith('.node'))) {
    cpSync(path.join(ROOT, f), path.join(pkg, f), { recursive: true })
  }
  const app = path.join(pkg, '..', '..', '..', 'app.mjs')
  writeFileSync(
    app,
    `
import { Readable } from 'node:stream'
import { S3WorkspaceSync } from '@moca/s3-workspace-sync'
const quiet = { debug() {}, info() {}, warn() {}, error() {} }
let sdkMissing = false
try { await import('@aws-sdk/client-s3') } catch { sdkMissing = true }
const real = await new S3WorkspaceSync({ bucket: ${JSON.stringify(bucket)}, prefix: 'p/', workspaceDir: process.argv[2], endpoint: ${JSON.stringify(endpoint)}, logger: quiet }).pull()
const names = []
const client = { send: async (c) => { names.push(c.constructor.name); return c.constructor.name === 'ListObjectsV2Command' ? { Contents: [{ Key: 'q/s.txt' }] } : { Body: Readable.from([Buffer.from('stand-in')]) } } }
const standIn = await new S3WorkspaceSync({ bucket: 'b', prefix: 'q/', workspaceDir: process.argv[3], s3Client: client, logger: quiet }).pull()
console.log(JSON.stringify({ sdkMissing, real: real.downloadedFiles, standIn: standIn.downloadedFiles, names }))
`,
  )
  const r = spawnSync(process.execPath, [app, tmpDir(), tmpDir()], { encoding: 'utf8', env: process.env })
  assert.equal(r.status, 0, r.stderr)
  const out = JSON.parse(r.stdout.trim().split('\n').at(-1))
  assert.deepEqual(out, { sdkMissing: true, real: 1, standIn: 1, names: ['ListObjectsV2Command', 'GetObjectCommand'] })
})

test('forced signature failures leak no secret, session token or signature, even at debug level', { skip: lacks('credentials') }, async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'x.txt': 'x' })
  const secret = 'wrong-secret-0123456789abcdefghij'
  const token = 'session-token-SHOULD-NEVER-APPEAR-0123456789'
  const client = new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: async () => ({ accessKeyId: CREDENTIALS.accessKeyId, secretAccessKey: secret, sessionToken: token, expiration: new Date(Date.now() + 3600e3) }),
  })
  const { logger, calls } = recordingLogger()
  const dir = tmpDir()
  writeFileSync(path.join(dir, 'local.txt'), 'local')
  try {
    const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, s3Client: client, logger })
    const pullError = await sync.pull().then(
      () => null,
      (e) => e,
    )
    assert.ok(pullError, 'pull should fail')
    const pushed = await sync.push()
    assert.equal(pushed.success, false)
    const text = [pullError.message, pullError.stack, JSON.stringify(pushed), ...calls.map((c) => `${c.message} ${JSON.stringify(c.args)}`)].join('\n')
    assert.ok(
      calls.some((c) => c.level === 'debug'),
      'debug records were captured',
    )
    for (const s of [secret, token, CREDENTIALS.secretAccessKey]) assert.ok(!text.includes(s), `leaked ${s}`)
    assert.ok(!/Signature=|Authorization:|X-Amz-Security-Token/i.test(text), text)
    assert.deepEqual(readTree(dir), { 'local.txt': 'local' })
  } finally {
    client.destroy()
  }
})
