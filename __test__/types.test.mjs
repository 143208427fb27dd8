// An agent written against the upstream README compiles under `tsc --strict`.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

test('index.d.ts: an upstream-style agent type-checks under --strict', () => {
  const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')
  const r = spawnSync(process.execPath, [tsc, '-p', path.join(ROOT, '__test__', 'types', 'tsconfig.json')], { encoding: 'utf8' })
  assert.equal(r.status, 0, r.stdout + r.stderr)
})

test('index.d.ts: misuse is rejected (the types are not `any`)', () => {
  const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')
  const r = spawnSync(process.execPath, [tsc, '-p', path.join(ROOT, '__test__', 'types', 'tsconfig.bad.json')], { encoding: 'utf8' })
  assert.notEqual(r.status, 0)
  assert.match(r.stdout, /bad\.ts\(\d+,\d+\): error TS2345/)
  assert.match(r.stdout, /bad\.ts\(\d+,\d+\): error TS2353/)
  // Operation options and option values are checked. (Event names are not:
  // upstream's class is an EventEmitter, so any name compiles.)
  assert.match(r.stdout, /bad\.ts\(6,\d+\): error TS2322: Type 'string' is not assignable to type 'boolean/)
  assert.match(r.stdout, /bad\.ts\(7,\d+\): error TS2322: Type '"verbose"'/)
  assert.match(r.stdout, /bad\.ts\(8,\d+\): error TS2322: Type '"sideways"'/)
})

test('the JavaScript sources type-check (checkJs against index.d.ts and binding.d.ts)', () => {
  const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')
  const r = spawnSync(process.execPath, [tsc, '-p', path.join(ROOT, 'tsconfig.json')], { encoding: 'utf8' })
  assert.equal(r.status, 0, r.stdout + r.stderr)
})

test('the examples are valid JavaScript and JSON', async () => {
  const { readdirSync, readFileSync } = await import('node:fs')
  const dir = path.join(ROOT, 'examples')
  for (const f of readdirSync(dir)) {
    if (f.endsWith('.json')) JSON.parse(readFileSync(path.join(dir, f), 'utf8'))
    else {
      const r = spawnSync(process.execPath, ['--check', path.join(dir, f)], { encoding: 'utf8' })
      assert.equal(r.status, 0, `${f}: ${r.stderr}`)
    }
  }
})
