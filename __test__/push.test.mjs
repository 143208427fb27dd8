import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync, writeFileSync, rmSync, symlinkSync } from 'node:fs'
import path from 'node:path'
import { S3WorkspaceSync } from '../index.js'
import { endpoint, newBucket, seed, tmpDir, listKeys, getObject, headObject, recordingLogger, startProxy, quiet } from './helpers.mjs'

test('push uploads new and modified files and deletes removed ones', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'keep.txt': 'keep', 'edit.md': 'v1', 'gone.txt': 'bye', 'd/gone2.txt': 'bye' })
  const dir = tmpDir()
  const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger: quiet() })
  await sync.pull()
  writeFileSync(path.join(dir, 'edit.md'), 'v2')
  mkdirSync(path.join(dir, 'new/dir'), { recursive: true })
  writeFileSync(path.join(dir, 'new/dir/file.ts'), 'new')
  rmSync(path.join(dir, 'gone.txt'))
  rmSync(path.join(dir, 'd'), { recursive: true })
  writeFileSync(path.join(dir, 'ignored.log'), 'never uploaded')
  const result = await sync.push()
  assert.equal(result.success, true)
  assert.equal(result.uploadedFiles, 2)
  assert.equal(result.deletedFiles, 2)
  assert.deepEqual(await listKeys(bucket, 'p/'), ['p/edit.md', 'p/keep.txt', 'p/new/dir/file.ts'])
  assert.equal((await getObject(bucket, 'p/edit.md')).toString(), 'v2')
  assert.equal((await headObject(bucket, 'p/new/dir/file.ts')).ContentType, 'application/typescript; charset=utf-8')
  assert.equal((await headObject(bucket, 'p/edit.md')).ContentType, 'text/markdown; charset=utf-8')
})

test('unchanged files are not uploaded again', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'a.txt': 'a', 'b.txt': 'b', 'c/d.txt': 'd' })
  const proxy = await startProxy()
  try {
    const dir = tmpDir()
    const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, logger: quiet() })
    await sync.pull()
    const first = await sync.push()
    assert.equal(first.uploadedFiles, 0)
    assert.equal(proxy.count('PUT'), 0)
    writeFileSync(path.join(dir, 'b.txt'), 'changed')
    const second = await sync.push()
    assert.equal(second.uploadedFiles, 1)
    assert.equal(proxy.count('PUT'), 1)
    const third = await sync.push()
    assert.equal(third.uploadedFiles, 0)
    assert.equal(proxy.count('PUT'), 1)
    assert.equal(proxy.count('DELETE'), 0)
  } finally {
    await proxy.close()
  }
})

test('push without a prior pull uploads everything and deletes nothing', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'remote-only.txt': 'stays' })
  const dir = tmpDir()
  writeFileSync(path.join(dir, 'a.txt'), 'a')
  const result = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger: quiet() }).push()
  assert.equal(result.uploadedFiles, 1)
  assert.equal(result.deletedFiles, 0)
  assert.deepEqual(await listKeys(bucket, 'p/'), ['p/a.txt', 'p/remote-only.txt'])
})

test('push does not follow symlinks', async () => {
  const bucket = await newBucket()
  const dir = tmpDir()
  const outside = tmpDir('outside')
  writeFileSync(path.join(outside, 'secret.txt'), 'credentials')
  writeFileSync(path.join(dir, 'real.txt'), 'real')
  symlinkSync(path.join(outside, 'secret.txt'), path.join(dir, 'link.txt'))
  symlinkSync(outside, path.join(dir, 'linkdir'))
  const { logger, calls } = recordingLogger()
  const result = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger }).push()
  assert.equal(result.uploadedFiles, 1)
  assert.deepEqual(await listKeys(bucket, 'p/'), ['p/real.txt'])
  assert.ok(calls.some((c) => c.level === 'warn' && c.message.includes('link.txt')))
})
