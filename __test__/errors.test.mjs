import { test } from 'node:test'
import assert from 'node:assert/strict'
import { writeFileSync, rmSync, mkdirSync } from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { S3WorkspaceSync, S3OperationError, SyncError } from '../index.js'
import { CREDENTIALS } from '../scripts/s3-server.mjs'
import { endpoint, newBucket, seed, tmpDir, readTree, listKeys, recordingLogger, quiet, lacks } from './helpers.mjs'

/** A workspace with local files that a failed pull must not touch. */
function populated() {
  const dir = tmpDir()
  writeFileSync(path.join(dir, 'precious.txt'), 'work')
  mkdirSync(path.join(dir, 'sub'))
  writeFileSync(path.join(dir, 'sub/more.txt'), 'more')
  return dir
}

async function assertPullFails(options, { s3Code, mentions = [] }) {
  const dir = populated()
  const { logger, calls } = recordingLogger()
  const sync = new S3WorkspaceSync({ prefix: 'p/', workspaceDir: dir, logger, ...options })
  const err = await sync.pull().then(
    () => assert.fail('pull resolved'),
    (e) => e,
  )
  assert.ok(err instanceof S3OperationError, String(err))
  assert.ok(err instanceof SyncError)
  assert.ok(err instanceof Error)
  assert.equal(err.code, 'S3_OPERATION_ERROR')
  assert.equal(err.name, 'S3OperationError')
  assert.match(err.message, /^Pull failed: /)
  assert.ok(err.message.includes(s3Code), err.message)
  for (const m of mentions) assert.ok(err.message.includes(m), `${err.message} should mention ${m}`)
  const text = [err.message, err.stack, ...calls.map((c) => c.message)].join('\n')
  assert.ok(!text.includes(CREDENTIALS.secretAccessKey), 'secret leaked')
  assert.ok(!text.includes('wrong-secret-value'), 'secret leaked')
  assert.ok(!/Signature=|Authorization/i.test(text), 'signature leaked')
  assert.deepEqual(readTree(dir), { 'precious.txt': 'work', 'sub/more.txt': 'more' })
}

test('a missing bucket rejects with S3OperationError and deletes nothing', async () => {
  await assertPullFails({ bucket: 'missing-bucket-s3ws', endpoint }, { s3Code: 'NoSuchBucket', mentions: ['missing-bucket-s3ws', endpoint] })
})

test('wrong credentials reject without leaking the secret and delete nothing', { skip: lacks('credentials') }, async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'x.txt': 'x' })
  const saved = process.env.AWS_SECRET_ACCESS_KEY
  process.env.AWS_SECRET_ACCESS_KEY = 'wrong-secret-value'
  try {
    await assertPullFails({ bucket, endpoint }, { s3Code: 'SignatureDoesNotMatch', mentions: [bucket, endpoint] })
  } finally {
    process.env.AWS_SECRET_ACCESS_KEY = saved
  }
})

test('an unreachable endpoint rejects and deletes nothing', async () => {
  // A port that was just free: nothing listens there.
  const port = await new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = s.address().port
      s.close(() => resolve(p))
    })
  })
  const dead = `http://127.0.0.1:${port}`
  await assertPullFails({ bucket: 'any', endpoint: dead }, { s3Code: 'NetworkError', mentions: [dead] })
})

test('a workspaceDir that is a file fails clearly', async () => {
  const bucket = await newBucket()
  const file = path.join(tmpDir(), 'a-file')
  writeFileSync(file, 'x')
  const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: file, endpoint, logger: quiet() })
  await assert.rejects(sync.pull(), { code: 'WORKSPACE_ERROR', message: /not a directory|cannot be created/ })
  const under = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: path.join(file, 'sub'), endpoint, logger: quiet() })
  await assert.rejects(under.pull(), { code: 'WORKSPACE_ERROR' })
  const pushed = await under.push()
  assert.equal(pushed.success, false)
  assert.match(pushed.errors[0], /WORKSPACE_ERROR/)
})

test('push on a vanished workspace fails and deletes nothing on S3', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'a.txt': 'a', 'b/c.txt': 'c' })
  const dir = tmpDir()
  const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger: quiet() })
  await sync.pull()
  rmSync(dir, { recursive: true })
  const result = await sync.push()
  assert.equal(result.success, false)
  assert.equal(result.deletedFiles, 0)
  assert.match(result.errors[0], /does not exist/)
  assert.deepEqual(await listKeys(bucket, 'p/'), ['p/a.txt', 'p/b/c.txt'])
})
