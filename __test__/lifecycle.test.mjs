// Cancellation, close, background-pull handles: against the real server,
// slowed by a proxy so that the operations are still running when stopped.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import path from 'node:path'
import { ListMultipartUploadsCommand } from '@aws-sdk/client-s3'
import { S3WorkspaceSync, AbortError, SyncError } from '../index.js'
import { admin, newBucket, seed, tmpDir, readTree, quiet, recordingLogger, withProxy, randomBuffer, listKeys, endpoint, isList, inChild, lacks } from './helpers.mjs'

const FILES = 40
const content = (i) => `file ${i} `.repeat(50)

async function seeded() {
  const bucket = await newBucket()
  const files = Object.fromEntries(Array.from({ length: FILES }, (_, i) => [`f${String(i).padStart(2, '0')}.txt`, content(i)]))
  await seed(bucket, 'p/', files)
  return { bucket, files }
}

/** Every file present has its full content (nothing torn under a final name). */
function assertWhole(dir, files) {
  for (const [name, body] of Object.entries(readTree(dir))) assert.equal(body, files[name], name)
}

// The engine's once-per-instance probe of whether this (non-AWS) server
// honours If-Match on CompleteMultipartUpload has an upload of its own,
// under the prefix's `.s3ws/`: not the user's.
/** Open multipart uploads but the probe's (which its own task aborts). */
const openUploads = async (bucket) => ((await admin.send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads ?? []).filter((u) => !u.Key.includes('/.s3ws/'))

test('pull({ signal }): aborting rejects with AbortError within a second, leaves no torn file, and the next pull resumes', async () => {
  const { bucket, files } = await seeded()
  const dir = tmpDir()
  await withProxy({ delay: (r) => (r.method === 'GET' && !isList(r) ? 150 : 0) }, async (proxy) => {
    const { logger, calls } = recordingLogger()
    const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, downloadConcurrency: 2, logger })
    const controller = new AbortController()
    const pulling = sync.pull({ signal: controller.signal })
    // Aborted once some files are in (how soon depends on the server's speed).
    // A temp file renamed while the tree is read makes that look a miss.
    const landed = () => {
      try {
        return Object.keys(readTree(dir)).length
      } catch {
        return 0
      }
    }
    for (let waited = 0; landed() === 0 && waited < 10_000; waited += 50) await new Promise((r) => setTimeout(r, 50))
    await new Promise((r) => setTimeout(r, 200))
    const abortedAt = Date.now()
    controller.abort(new Error('Lambda deadline'))
    await assert.rejects(pulling, (e) => {
      assert.ok(e instanceof AbortError && e instanceof SyncError)
      assert.equal(e.name, 'AbortError')
      assert.equal(e.code, 'ABORT_ERR')
      assert.equal(e.cause.message, 'Lambda deadline')
      return true
    })
    assert.ok(Date.now() - abortedAt < 1000, `rejected after ${Date.now() - abortedAt} ms`)
    // A stop the caller asked for is logged as such, never as an error.
    assert.deepEqual(
      calls.filter((c) => c.level === 'error'),
      [],
    )
    assert.ok(calls.some((c) => c.level === 'info' && /Pull stopped: the operation was aborted/.test(c.message)))
    const partial = Object.keys(readTree(dir)).length
    assert.ok(partial > 0 && partial < FILES, `${partial} files before the abort`)
    assertWhole(dir, files)
  })
  // A fresh instance (the next Lambda) resumes: only what was missing moves.
  const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger: quiet() })
  const before = Object.keys(readTree(dir)).length
  const result = await sync.pull()
  assert.equal(result.success, true)
  assert.equal(result.downloadedFiles, FILES)
  assert.equal(result.transferredFiles, FILES - before)
  assert.deepEqual(readTree(dir), files)
})

test('an aborted pull of a large file leaves no temp file behind', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'big.bin': randomBuffer(4 * 1024 * 1024) })
  const dir = tmpDir()
  // The body stops after 2 MiB (past what is kept in memory: the rest goes
  // to a temp file): the download is mid-way when aborted.
  await withProxy({ fault: (r) => (r.method === 'GET' && r.path.endsWith('/big.bin') ? { stallAfter: 2 * 1024 * 1024 } : undefined) }, async (proxy) => {
    const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, logger: quiet() })
    const controller = new AbortController()
    const pulling = sync.pull({ signal: controller.signal })
    const { readdirSync } = await import('node:fs')
    const partials = () => readdirSync(dir).filter((n) => n.endsWith('.partial'))
    while (partials().length === 0) await new Promise((r) => setTimeout(r, 20))
    controller.abort()
    await assert.rejects(pulling, { name: 'AbortError' })
    // A temp file the abort caught being made goes when the blocking thread
    // making it hands it back (its guard comes with it), which can trail
    // the rejection by a moment on a loaded machine.
    for (let waited = 0; partials().length > 0 && waited < 1000; waited += 20) await new Promise((r) => setTimeout(r, 20))
    assert.deepEqual(partials(), [], 'a temp file outlived the aborted download')
    assert.deepEqual(
      readdirSync(dir).filter((n) => n !== '.s3ws'),
      [],
    )
  })
})

test('an already aborted signal rejects at once and sends nothing', async () => {
  const { bucket } = await seeded()
  await withProxy({}, async (proxy) => {
    const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: tmpDir(), endpoint: proxy.endpoint, logger: quiet() })
    await assert.rejects(sync.pull({ signal: AbortSignal.abort() }), { name: 'AbortError' })
    await assert.rejects(sync.push({ signal: AbortSignal.abort() }), { name: 'AbortError' })
    assert.equal(proxy.requests.length, 0)
    await assert.rejects(sync.pull({ signal: 'soon' }), { code: 'INVALID_OPTION' })
  })
})

test('push({ signal }): aborting mid multipart upload aborts the upload on S3; the next push completes it', { skip: lacks('list-multipart-uploads') }, async () => {
  const bucket = await newBucket()
  const dir = tmpDir()
  const big = randomBuffer(24 * 1024 * 1024) // 3 parts
  writeFileSync(path.join(dir, 'big.bin'), big)
  await withProxy({ delay: (r) => (r.method === 'PUT' && r.query.has('partNumber') ? 400 : 0) }, async (proxy) => {
    const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, logger: quiet() })
    const controller = new AbortController()
    const pushing = sync.push({ signal: controller.signal })
    // Parts are on their way: the upload exists on S3.
    while (proxy.count('PUT', (r) => r.query.has('partNumber')) === 0) await new Promise((r) => setTimeout(r, 20))
    const abortedAt = Date.now()
    controller.abort()
    await assert.rejects(pushing, { name: 'AbortError' })
    assert.ok(Date.now() - abortedAt < 1000)
    // The started multipart upload is aborted (not left behind, billed)
    // before the call rejects: a process that exits at once leaves none.
    assert.equal((await openUploads(bucket)).length, 0, 'multipart upload left open')
    assert.equal(
      proxy.count('DELETE', (r) => r.query.has('uploadId')),
      1,
    )
    assert.deepEqual(
      (await listKeys(bucket, 'p/')).filter((k) => !k.includes('/.s3ws/')),
      [],
    )
  })
  const pushed = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger: quiet() }).push()
  assert.equal(pushed.success, true, JSON.stringify(pushed.errors))
  assert.equal(pushed.uploadedFiles, 1)
  // A probe of what the server honours that the abort cut short (its
  // clean-up waits at most 600 ms on a cancel) removes its object once it
  // ends, in the background.
  for (let waited = 0; (await listKeys(bucket, 'p/')).length > 1 && waited < 5000; waited += 100) await new Promise((r) => setTimeout(r, 100))
  assert.deepEqual(await listKeys(bucket, 'p/'), ['p/big.bin'])
})

test('push({ signal }): aborted while the multipart upload is being created, the upload is still aborted on S3', { skip: lacks('list-multipart-uploads') }, async () => {
  const bucket = await newBucket()
  const dir = tmpDir()
  writeFileSync(path.join(dir, 'big.bin'), randomBuffer(16 * 1024 * 1024))
  await withProxy({ delay: (r) => (r.method === 'POST' && r.query.has('uploads') ? 300 : 0) }, async (proxy) => {
    const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, logger: quiet() })
    const controller = new AbortController()
    const pushing = sync.push({ signal: controller.signal })
    while (proxy.count('POST', (r) => r.query.has('uploads')) === 0) await new Promise((r) => setTimeout(r, 10))
    controller.abort()
    await assert.rejects(pushing, { name: 'AbortError' })
    // The creation answered after the push had let go; its task aborted it
    // (in the background when the server is slow: within seconds).
    for (let waited = 0; (await openUploads(bucket)).length > 0 && waited < 5000; waited += 100) await new Promise((r) => setTimeout(r, 100))
    assert.equal((await openUploads(bucket)).length, 0, 'multipart upload left open')
    assert.equal(
      proxy.count('DELETE', (r) => r.query.has('uploadId')),
      1,
    )
    assert.equal(
      proxy.count('PUT', (r) => r.query.has('partNumber')),
      0,
    )
  })
})

test('close(): waits for a running push, then every call rejects with CLOSED; close({ abort: true }) cancels', async () => {
  const { bucket, files } = await seeded()
  const dir = tmpDir()
  await withProxy({ delay: (r) => (r.method === 'GET' && !isList(r) ? 100 : 0) }, async (proxy) => {
    const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, downloadConcurrency: 4, logger: quiet() })
    const pulling = sync.pull()
    await new Promise((r) => setTimeout(r, 200))
    await sync.close() // waits
    const pulled = await pulling
    assert.equal(pulled.success, true)
    assert.deepEqual(readTree(dir), files)
    await assert.rejects(sync.pull(), { code: 'CLOSED' })
    await assert.rejects(sync.push(), { code: 'CLOSED' })
    await sync.close() // idempotent

    const dir2 = tmpDir()
    const other = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir2, endpoint: proxy.endpoint, downloadConcurrency: 2, logger: quiet() })
    const running = other.pull()
    await new Promise((r) => setTimeout(r, 300))
    const closedAt = Date.now()
    await other.close({ abort: true })
    assert.ok(Date.now() - closedAt < 1000)
    await assert.rejects(running, { code: 'CLOSED' })
    assertWhole(dir2, files)
  })
})

test('await using releases the instance; a second instance can then use the workspace at once', async () => {
  const { bucket } = await seeded()
  const dir = tmpDir()
  let sync
  {
    // `await using` as TypeScript compiles it: Symbol.asyncDispose at scope end.
    sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger: quiet() })
    await sync.pull()
    await sync[Symbol.asyncDispose]()
  }
  await assert.rejects(sync.pull(), { code: 'CLOSED' })
  const next = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, lockTimeoutMs: 0, logger: quiet() })
  assert.equal((await next.push()).success, true)
})

test('startBackgroundPull returns a handle: done resolves to the result, cancel() stops the pull', async () => {
  const { bucket } = await seeded()
  await withProxy({ delay: (r) => (r.method === 'GET' && !isList(r) ? 150 : 0) }, async (proxy) => {
    const { logger, calls } = recordingLogger()
    const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: tmpDir(), endpoint: proxy.endpoint, downloadConcurrency: 2, logger })
    const handle = sync.startBackgroundPull()
    await new Promise((r) => setTimeout(r, 300))
    handle.cancel()
    const result = await handle.done
    assert.equal(result.success, false)
    assert.equal(result.errorDetails[0].code, 'ABORT_ERR')
    assert.equal(sync.isPullComplete(), true)
    assert.equal(await sync.waitForPull(), result)
    // The default-logger-style record carries the message, not `{}`.
    const logged = calls.find((c) => c.level === 'error' && c.message.includes('Background pull failed'))
    assert.ok(logged.args[0] instanceof AbortError)
  })
})

test('a failed background pull: waitForPull resolves to success false with the S3 fields', async () => {
  const sync = new S3WorkspaceSync({ bucket: 'no-such-bucket-bg', prefix: 'p/', workspaceDir: tmpDir(), endpoint, logger: quiet() })
  const handle = sync.startBackgroundPull({ signal: new AbortController().signal })
  const result = await sync.waitForPull()
  assert.equal(result, await handle.done)
  assert.equal(result.success, false)
  assert.match(result.errors[0], /NoSuchBucket/)
  assert.deepEqual(
    { code: result.errorDetails[0].code, s3Code: result.errorDetails[0].s3Code, statusCode: result.errorDetails[0].statusCode, retryable: result.errorDetails[0].retryable },
    { code: 'S3_OPERATION_ERROR', s3Code: 'NoSuchBucket', statusCode: 404, retryable: false },
  )
  await handle.priorityDone
})

test(
  "a push killed mid multipart upload leaves the upload open; the next instance's first push aborts it after the grace period",
  { skip: lacks('list-multipart-uploads') || lacks('upload-age') },
  async () => {
    const { CreateMultipartUploadCommand } = await import('@aws-sdk/client-s3')
    const bucket = await newBucket()
    const openUploads = async () =>
      ((await admin.send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads ?? [])
        .map((u) => u.Key)
        .filter((k) => !k.includes('/.s3ws/'))
        .sort()
    const dir = tmpDir()
    writeFileSync(path.join(dir, 'big.bin'), randomBuffer(24 * 1024 * 1024))
    // A push in a child process, killed (SIGKILL) while its parts are held by the proxy.
    let child
    await withProxy(
      {
        delay: (r) => (r.method === 'PUT' && r.query.has('partNumber') ? 60_000 : 0),
        fault: (r) => {
          if (r.method === 'POST' && r.query.has('uploads')) setTimeout(() => child.kill('SIGKILL'), 300)
        },
      },
      async (proxy) => {
        const outcome = await inChild({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint }, 'push', { onStart: (c) => (child = c) })
        assert.deepEqual(outcome, { killed: 'SIGKILL' })
      },
    )
    assert.deepEqual(await openUploads(), ['p/big.bin'])
    // Someone else's upload in another prefix, and one too young, stay.
    await admin.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'other/not-ours.bin' }))
    await new Promise((r) => setTimeout(r, 2500))
    await admin.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'p/in-progress-elsewhere.bin' }))
    // The default grace period (a day) leaves them all alone.
    const first = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: tmpDir(), endpoint, logger: quiet() }).push()
    assert.equal(first.success, true)
    assert.equal((await openUploads()).length, 3)
    await withProxy({}, async (proxy) => {
      const { logger, calls } = recordingLogger()
      const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, abandonedUploadAgeMs: 2000, logger })
      const pushed = await sync.push()
      assert.equal(pushed.uploadedFiles, 1, JSON.stringify(pushed.errors))
      assert.deepEqual(await openUploads(), ['other/not-ours.bin', 'p/in-progress-elsewhere.bin'])
      assert.ok(calls.some((c) => c.level === 'info' && /Aborted 1 multipart uploads/.test(c.message)))
      // Once per instance: a later push does not list uploads again. (The
      // upload's own write lists the uploads of its key, to wait for any
      // other writer of it: see "S3 servers" in the README.)
      await sync.push()
      assert.equal(
        proxy.count('GET', (r) => r.query.has('uploads') && r.query.get('prefix') === 'p/'),
        1,
      )
    })
    assert.throws(() => new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, abandonedUploadAgeMs: -1 }), { code: 'INVALID_OPTION' })
  },
)
