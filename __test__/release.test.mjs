// The release binary, built as the release workflow builds it (`npm run
// build:release`; `npm test` builds it first and names it in
// S3WS_RELEASE_BINARY): on linux-gnu it needs no glibc newer than 2.26
// (Amazon Linux 2), and the package files with only that binary beside
// them load it in Node and sync.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { copyFileSync, cpSync, existsSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { MAX_GLIBC, compareVersions, newestGlibc } from '../scripts/build-release.mjs'
import { endpoint, newBucket, seed, getObject, tmpDir } from './helpers.mjs'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const binary = process.env.S3WS_RELEASE_BINARY

test('the release binary exists and, on linux-gnu, needs no glibc newer than 2.26', () => {
  assert.ok(binary && existsSync(binary), `S3WS_RELEASE_BINARY (${binary}) names no file: run the tests with \`npm test\`, which builds it`)
  if (!/linux-[a-z0-9]+-gnu\.node$/.test(binary)) return
  const newest = newestGlibc(binary)
  assert.ok(newest, 'a linux-gnu binary links against glibc')
  assert.ok(compareVersions(newest, MAX_GLIBC) <= 0, `${binary} needs GLIBC_${newest}`)
  // The check reads what it claims to: Node itself (the official Linux
  // builds of Node 18 and later) needs glibc 2.28.
  assert.ok(compareVersions(newestGlibc(process.execPath), MAX_GLIBC) > 0, `node needs GLIBC_${newestGlibc(process.execPath)}`)
})

test('the package with only the release binary loads it in Node, pulls and pushes', async () => {
  const bucket = await newBucket()
  await seed(bucket, 'p/', { 'a.txt': 'from S3' })
  const pkg = tmpDir('release-pkg')
  const { files } = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'))
  for (const f of files.filter((f) => !f.endsWith('/') && f.endsWith('.js'))) copyFileSync(path.join(ROOT, f), path.join(pkg, f))
  copyFileSync(path.join(ROOT, 'package.json'), path.join(pkg, 'package.json'))
  cpSync(path.join(ROOT, 'lib'), path.join(pkg, 'lib'), { recursive: true })
  copyFileSync(binary, path.join(pkg, path.basename(binary)))
  const dir = tmpDir('release-ws')
  const script = `
    const fs = require('node:fs')
    const { S3WorkspaceSync } = require(${JSON.stringify(pkg)})
    const quiet = { debug() {}, info() {}, warn() {}, error() {} }
    const s = new S3WorkspaceSync({ bucket: ${JSON.stringify(bucket)}, prefix: 'p/', workspaceDir: ${JSON.stringify(dir)}, endpoint: ${JSON.stringify(endpoint)}, logger: quiet })
    ;(async () => {
      const pulled = await s.pull()
      fs.writeFileSync(${JSON.stringify(path.join(dir, 'b.txt'))}, 'from the release binary')
      const pushed = await s.push()
      console.log(JSON.stringify({ loaded: Object.keys(require.cache).filter((k) => k.endsWith('.node')), pulled: pulled.downloadedFiles, pushed: pushed.uploadedFiles }))
    })()
  `
  const out = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env: process.env, timeout: 60000 })
  assert.equal(out.status, 0, out.stderr)
  const result = JSON.parse(out.stdout.trim().split('\n').at(-1))
  assert.deepEqual(result.loaded, [path.join(pkg, path.basename(binary))])
  assert.deepEqual([result.pulled, result.pushed], [1, 1])
  assert.equal(readFileSync(path.join(dir, 'a.txt'), 'utf8'), 'from S3')
  assert.equal((await getObject(bucket, 'p/b.txt')).toString(), 'from the release binary')
})
