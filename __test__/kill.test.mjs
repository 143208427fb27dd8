// A pull killed with SIGKILL at many points never leaves a torn or partial
// file under a final name, and the next pull cleans up and completes.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { S3WorkspaceSync } from '../index.js'
import { newBucket, putObject, tmpDir, md5, randomBuffer, recordingLogger, startProxy, isList, STATE_DIR, filesUnder } from './helpers.mjs'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const KILL_POINTS_MS = [150, 300, 450, 600, 800, 1000, 1300, 1700]

/** Every file under `dir` (but the engine's own), as relative path → content MD5. */
const walk = (dir) => Object.fromEntries(filesUnder(dir, (r) => r === STATE_DIR).map(([r, full]) => [r, md5(readFileSync(full))]))

test(`SIGKILL during a pull at ${KILL_POINTS_MS.length} points: no torn file ever appears`, async () => {
  const bucket = await newBucket()
  const expected = {}
  for (let i = 0; i < 24; i++) {
    const body = randomBuffer(512 * 1024 + i)
    expected[`d${i % 4}/f${i}.bin`] = md5(body)
    await putObject(bucket, `p/d${i % 4}/f${i}.bin`, body)
  }
  // Slow, so the kills land while files are being written.
  const proxy = await startProxy({ delay: (r) => (r.method === 'GET' && !isList(r) ? 60 : 0) })
  const dir = tmpDir('killed')
  let partialsSeen = 0
  try {
    const script = `
      const { S3WorkspaceSync } = require(${JSON.stringify(ROOT)})
      const quiet = { debug() {}, info() {}, warn() {}, error() {} }
      new S3WorkspaceSync({ bucket: ${JSON.stringify(bucket)}, prefix: 'p/', workspaceDir: ${JSON.stringify(dir)}, endpoint: ${JSON.stringify(proxy.endpoint)}, downloadConcurrency: 3, logger: quiet }).pull()
    `
    for (const ms of KILL_POINTS_MS) {
      const child = spawn(process.execPath, ['-e', script], { stdio: 'ignore', env: process.env })
      const exited = new Promise((r) => child.once('exit', r))
      await new Promise((r) => setTimeout(r, ms))
      child.kill('SIGKILL') // a no-op if the pull already finished
      await exited
      for (const [rel, sum] of Object.entries(walk(dir))) {
        if (path.basename(rel).endsWith('.partial')) {
          partialsSeen++
          continue
        }
        assert.equal(sum, expected[rel], `${rel} is torn after a kill at ${ms} ms`)
      }
    }
    const result = await new S3WorkspaceSync({ bucket, prefix: 'p/', workspaceDir: dir, endpoint: proxy.endpoint, logger: recordingLogger().logger }).pull()
    assert.equal(result.success, true, JSON.stringify(result.errors))
    assert.deepEqual(walk(dir), expected)
  } finally {
    await proxy.close()
  }
  // Not an assertion on luck: reported so a run shows the kills hit mid-write.
  console.log(`# temp files left by kills and cleaned up: ${partialsSeen}`)
})
