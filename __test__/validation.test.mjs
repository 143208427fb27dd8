// Option validation: what the constructor refuses, and how it says so. No
// S3 server needed: `node --test __test__/validation.test.mjs` runs it alone.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import os from 'node:os'
import path from 'node:path'
import { S3WorkspaceSync } from '../index.js'
import { tmpDir, quiet, recordingLogger } from './local-helpers.mjs'

test('constructor rejects missing options with the upstream messages', () => {
  const base = { bucket: 'b', prefix: 'p', workspaceDir: '/tmp/x' }
  for (const name of ['bucket', 'prefix', 'workspaceDir']) {
    for (const value of [undefined, '']) {
      assert.throws(() => new S3WorkspaceSync({ ...base, [name]: value }), { message: `options.${name} is required` })
    }
  }
  assert.throws(() => new S3WorkspaceSync({ ...base, downloadConcurrency: 0 }), { code: 'INVALID_OPTION' })
  assert.throws(() => new S3WorkspaceSync({ ...base, uploadConcurrency: 1.5 }), { code: 'INVALID_OPTION' })
  assert.throws(() => new S3WorkspaceSync({ ...base, logger: { info() {} } }), { code: 'INVALID_OPTION' })
  assert.throws(() => new S3WorkspaceSync({ ...base, ignorePatterns: [42] }), { code: 'INVALID_OPTION' })
})

test('a priorityPrefix that leaves the workspace is refused', () => {
  for (const bad of ['../x', 'a/../../x', '..\\x']) {
    assert.throws(
      () => new S3WorkspaceSync({ bucket: 'b', prefix: 'p/', workspaceDir: tmpDir(), priorityPrefix: bad, logger: quiet() }),
      (e) => e.code === 'INVALID_OPTION',
      bad,
    )
  }
  new S3WorkspaceSync({ bucket: 'b', prefix: 'p/', workspaceDir: tmpDir(), priorityPrefix: './.agents/skills/', logger: quiet() })
})

test('workspaceDir: a filesystem root, the home directory, a system directory or "~/…" is refused at construction', () => {
  for (const dir of ['/', os.homedir(), '/etc', '/usr', '/tmp', '/tmp/../var', '~/ws']) {
    assert.throws(
      () => new S3WorkspaceSync({ bucket: 'b', prefix: 'p/', workspaceDir: dir, logger: quiet() }),
      (e) => e.code === 'INVALID_OPTION' && /workspaceDir/.test(e.message),
      dir,
    )
  }
  // A directory of its own is fine, existing or not.
  new S3WorkspaceSync({ bucket: 'b', prefix: 'p/', workspaceDir: path.join(os.homedir(), 'ws-not-yet'), logger: quiet() })
  new S3WorkspaceSync({ bucket: 'b', prefix: 'p/', workspaceDir: tmpDir(), logger: quiet() })
})

test('unknown options are named in a warning, not ignored silently', () => {
  const { logger, calls } = recordingLogger()
  new S3WorkspaceSync({ bucket: 'b', prefix: 'p/', workspaceDir: tmpDir(), concurrency: 5, logger })
  assert.ok(calls.some((c) => c.level === 'warn' && /Unknown options ignored: concurrency/.test(c.message)))
})

test('endpoint is checked by the constructor', () => {
  for (const bad of ['htp://127.0.0.1:9000', '127.0.0.1:9000', 'localhost', 'http://', 'ftp://s3.example.com', 'https://key:secret@s3.example.com']) {
    assert.throws(() => new S3WorkspaceSync({ bucket: 'b', prefix: 'p/', workspaceDir: tmpDir(), endpoint: bad, logger: quiet() }), { code: 'INVALID_OPTION' }, bad)
  }
  for (const good of ['http://127.0.0.1:9000', 'https://s3.eu-west-1.amazonaws.com', 'https://minio.internal/s3']) {
    new S3WorkspaceSync({ bucket: 'b', prefix: 'p/', workspaceDir: tmpDir(), endpoint: good, logger: quiet() })
  }
})

test('native errors thrown synchronously keep the engine code (no message parsing)', () => {
  const e = (() => {
    try {
      new S3WorkspaceSync({ bucket: 'b', prefix: 'p/', workspaceDir: '/', logger: quiet() })
    } catch (err) {
      return err
    }
  })()
  assert.equal(e.code, 'INVALID_OPTION')
  assert.doesNotMatch(e.message, /^\[/)
})
