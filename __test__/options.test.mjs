import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, writeFileSync, mkdirSync } from 'node:fs'
import path from 'node:path'
import { S3WorkspaceSync } from '../index.js'
import { endpoint, newBucket, seed, tmpDir, headObject, readTree, recordingLogger, startProxy, quiet } from './helpers.mjs'

test('priorityPrefix: waitForPriorityPull resolves once the priority files are there, before the rest', async () => {
  const bucket = await newBucket()
  const files = { 'context/system.md': 'sys', 'context/deep/memory.json': '{}' }
  for (let i = 0; i < 20; i++) files[`bulk/f${i}.txt`] = `${i}`
  await seed(bucket, 'p/', files)
  // Everything outside the priority directory is slow to arrive.
  const proxy = await startProxy({ delay: (r) => (r.method === 'GET' && r.path.includes('/bulk/') ? 400 : 0) })
  try {
    const dir = tmpDir()
    const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, priorityPrefix: './context', logger: quiet() })
    sync.startBackgroundPull()
    await sync.waitForPriorityPull()
    assert.equal(sync.isPullComplete(), false)
    assert.ok(existsSync(path.join(dir, 'context/system.md')))
    assert.ok(existsSync(path.join(dir, 'context/deep/memory.json')))
    assert.equal(existsSync(path.join(dir, 'bulk/f0.txt')), false)
    await sync.waitForPull()
    assert.deepEqual(readTree(dir), files)
    // Priority GETs were all sent before any bulk GET.
    const gets = proxy.requests.filter((r) => r.method === 'GET' && !r.query.has('list-type')).map((r) => r.path)
    assert.ok(
      gets.slice(0, 2).every((p) => p.includes('/context/')),
      gets.join(' '),
    )
  } finally {
    await proxy.close()
  }
})

test('waitForPriorityPull resolves at once without a priority prefix, and when the pull fails', async () => {
  const sync = new S3WorkspaceSync({ bucket: 'b', prefix: 'p/', workspaceDir: tmpDir(), endpoint, logger: quiet() })
  await sync.waitForPriorityPull()
  const failing = new S3WorkspaceSync({ bucket: 'no-such-bucket-prio', prefix: 'p/', workspaceDir: tmpDir(), endpoint, priorityPrefix: 'ctx', logger: quiet() })
  failing.startBackgroundPull()
  await failing.waitForPriorityPull()
  await failing.waitForPull()
  assert.equal(failing.isPullComplete(), true)
})

test('contentTypeResolver chooses each upload Content-Type, called with the base name as upstream', async () => {
  const bucket = await newBucket()
  const dir = tmpDir()
  mkdirSync(path.join(dir, 'sub'))
  writeFileSync(path.join(dir, 'sub/data.foo'), 'x')
  writeFileSync(path.join(dir, 'page.html'), '<p>')
  writeFileSync(path.join(dir, 'boom.bar'), 'y')
  const seen = []
  const { logger, calls } = recordingLogger()
  const sync = new S3WorkspaceSync({
    bucket,
    prefix: 'p/',
    workspaceDir: dir,
    endpoint,
    logger,
    contentTypeResolver: (name) => {
      seen.push(name)
      if (name.endsWith('.bar')) throw new Error('resolver bug')
      return name.endsWith('.foo') ? 'application/x-foo' : 'text/x-custom'
    },
  })
  const result = await sync.push()
  assert.equal(result.uploadedFiles, 3)
  assert.deepEqual(seen.sort(), ['boom.bar', 'data.foo', 'page.html'])
  assert.equal((await headObject(bucket, 'p/sub/data.foo')).ContentType, 'application/x-foo')
  assert.equal((await headObject(bucket, 'p/page.html')).ContentType, 'text/x-custom')
  // A throwing resolver falls back to the built-in guess and says so.
  assert.equal((await headObject(bucket, 'p/boom.bar')).ContentType, 'application/octet-stream')
  assert.ok(calls.some((c) => c.level === 'warn' && c.message.includes('boom.bar')))
})

test('concurrency options are honoured', async () => {
  const bucket = await newBucket()
  const files = {}
  for (let i = 0; i < 12; i++) files[`f${i}`] = `${i}`
  await seed(bucket, 'p/', files)
  let inFlight = 0
  let peak = 0
  const proxy = await startProxy({
    delay: (r) => {
      if (r.method !== 'GET' || r.query.has('list-type')) return 0
      inFlight++
      peak = Math.max(peak, inFlight)
      setTimeout(() => inFlight--, 100)
      return 100
    },
  })
  try {
    const dir = tmpDir()
    await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, downloadConcurrency: 3, logger: quiet() }).pull()
    assert.equal(Object.keys(readTree(dir)).length, 12)
    assert.ok(peak <= 3, `peak ${peak}`)
    assert.ok(peak >= 2, `peak ${peak}`)
  } finally {
    await proxy.close()
  }
})
