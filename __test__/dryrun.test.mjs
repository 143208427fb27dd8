// Dry runs: decided exactly as the real call, nothing changed anywhere; the
// plan names what the real call then does, for every row of the sync model.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, rmSync, statSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { S3WorkspaceSync } from '../index.js'
import { endpoint, newBucket, seed, putObject, admin, tmpDir, readTree, quiet, withProxy, fingerprint, filesUnder, settle, STATE_DIR } from './helpers.mjs'
import { DeleteObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3'

/** Every object with its ETag: what "nothing changed on S3" compares. */
async function objects(bucket) {
  const out = await admin.send(new ListObjectsV2Command({ Bucket: bucket }))
  return (out.Contents ?? []).map((o) => `${o.Key} ${o.ETag}`).sort()
}

/** Contents and mtimes of everything under the workspace, its state included. */
function snapshot(dir) {
  return { files: fingerprint(dir), mtimes: filesUnder(dir).map(([rel, full]) => `${rel} ${statSync(full).mtimeMs}`) }
}

/** Runs `op` as a dry run through a proxy: no write request may reach S3, nothing local may change. */
async function dryRun(sync, bucket, dir, op) {
  const before = { s3: await objects(bucket), local: snapshot(dir) }
  const result = await sync[op]({ dryRun: true })
  assert.deepEqual({ s3: await objects(bucket), local: snapshot(dir) }, before, `${op} dry run changed something`)
  return result
}

const FILES = {
  'same.txt': 'same',
  'remote-changed.txt': 'r0',
  'remote-deleted.txt': 'rd',
  'local-changed.txt': 'l0',
  'local-deleted.txt': 'ld',
  'both.txt': 'b0',
}

test('dry runs of push then pull: each plan names exactly what the real call does, and nothing changes first', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', FILES)
  const dir = tmpDir()
  await withProxy({}, async (proxy) => {
    const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, logger: quiet() })
    await sync.pull()
    await settle()
    // Another agent changes S3; this agent changes its workspace.
    await putObject(bucket, 'p/remote-changed.txt', 'r1')
    await putObject(bucket, 'p/remote-new.txt', 'rn')
    await admin.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'p/remote-deleted.txt' }))
    await putObject(bucket, 'p/both.txt', 'b-remote')
    writeFileSync(path.join(dir, 'local-changed.txt'), 'l1')
    writeFileSync(path.join(dir, 'local-new.txt'), 'ln')
    rmSync(path.join(dir, 'local-deleted.txt'))
    writeFileSync(path.join(dir, 'both.txt'), 'b-local')
    await settle()

    const writes = () => proxy.requests.filter((r) => r.method !== 'GET' && r.method !== 'HEAD').length
    const writesBefore = writes()
    const pushPlan = await dryRun(sync, bucket, dir, 'push')
    assert.equal(writes(), writesBefore, 'a dry run sends no write request')
    assert.deepEqual(pushPlan.plan, {
      download: [],
      deleteLocal: [],
      upload: ['local-changed.txt', 'local-new.txt'],
      deleteRemote: ['local-deleted.txt'],
      conflicts: ['both.txt'],
    })
    // Its counts are what the real call would do.
    assert.equal(pushPlan.uploadedFiles, 2)
    assert.equal(pushPlan.deletedFiles, 1)

    const pushed = await sync.push()
    assert.equal(pushed.uploadedFiles, pushPlan.plan.upload.length)
    assert.equal(pushed.deletedFiles, pushPlan.plan.deleteRemote.length)
    assert.deepEqual(pushed.conflicts, pushPlan.plan.conflicts)
    assert.equal(pushed.plan, undefined)

    const pullPlan = await dryRun(sync, bucket, dir, 'pull')
    assert.deepEqual(pullPlan.plan, {
      download: ['both.txt', 'remote-changed.txt', 'remote-new.txt'],
      deleteLocal: ['remote-deleted.txt'],
      upload: [],
      deleteRemote: [],
      conflicts: ['both.txt'],
    })
    const pulled = await sync.pull()
    assert.equal(pulled.transferredFiles, pullPlan.plan.download.length)
    assert.equal(pulled.deletedFiles, pullPlan.plan.deleteLocal.length)
    assert.deepEqual(pulled.conflicts, pullPlan.plan.conflicts)
    const tree = readTree(dir)
    assert.equal(tree['both.txt'], 'b-remote')
    assert.ok(Object.entries(tree).some(([k, v]) => k.startsWith('both.conflict-') && v === 'b-local'))

    // The local version kept under a conflict name is the agent's work: the next push sends it.
    const copy = Object.keys(tree).find((k) => k.startsWith('both.conflict-'))
    assert.deepEqual((await dryRun(sync, bucket, dir, 'push')).plan.upload, [copy])
    assert.equal((await sync.push()).uploadedFiles, 1)
    // In sync now: both dry runs plan nothing.
    for (const op of ['push', 'pull']) {
      const idle = await dryRun(sync, bucket, dir, op)
      assert.deepEqual(idle.plan, { download: [], deleteLocal: [], upload: [], deleteRemote: [], conflicts: [] }, op)
    }
  })
})

test('a dry run into a directory that does not exist yet creates nothing and plans every download', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'a.txt': 'a', 'd/b.txt': 'b' })
  const dir = path.join(tmpDir(), 'not-yet')
  const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger: quiet() })
  const result = await sync.pull({ dryRun: true })
  assert.deepEqual(result.plan.download, ['a.txt', 'd/b.txt'])
  assert.equal(existsSync(dir), false)
  // A first dry run in an existing, never-synced directory writes no state either.
  const fresh = tmpDir()
  writeFileSync(path.join(fresh, 'mine.txt'), 'x')
  await settle()
  const first = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: fresh, endpoint, logger: quiet() }).push({ dryRun: true })
  assert.deepEqual(first.plan.upload, ['mine.txt'])
  assert.equal(existsSync(path.join(fresh, STATE_DIR)), false)
  await assert.rejects(sync.pull({ dryRun: 'yes' }), { code: 'INVALID_OPTION' })
})

test('the mass-deletion guard and conflict policy apply to dry runs as to real runs', async () => {
  const bucket = await newBucket()
  const files = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`f${i}.txt`, `${i}`]))
  await seed(bucket, 'p/', files)
  const dir = tmpDir()
  const sync = new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint, logger: quiet() })
  await sync.pull()
  for (const f of Object.keys(files)) rmSync(path.join(dir, f))
  const planned = await sync.push({ dryRun: true })
  assert.deepEqual(planned.plan.deleteRemote, [])
  assert.equal(planned.errorDetails[0].code, 'MASS_DELETE')
  const real = await sync.push()
  assert.equal(real.deletedFiles, 0)
  assert.equal(real.errorDetails[0].code, 'MASS_DELETE')
})
