// Everything `npm run demo` and `npm test` need on a fresh clone: npm
// dependencies, the native addon (built from source), and a SeaweedFS binary.

import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

/** Where downloaded tools (servers, zig, Node builds) are kept between runs. */
export const CACHE = process.env.S3WS_CACHE_DIR || path.join(os.homedir(), '.cache', 's3-workspace-sync')

/**
 * Path of the program `name` of the PyPI package(s) `spec` (`package==version`,
 * or a list of them), installed into the private venv `dir` under the cache
 * if needed.
 */
export function ensurePyPI(dir, spec, name) {
  const venv = path.join(CACHE, dir)
  // A venv keeps its programs in Scripts\ (with .exe) on Windows, bin/ elsewhere.
  const windows = process.platform === 'win32'
  const bin = (prog) => path.join(venv, windows ? 'Scripts' : 'bin', windows ? `${prog}.exe` : prog)
  if (existsSync(bin(name))) return bin(name)
  console.log(`Installing ${spec} into ${venv} ...`)
  const run = (cmd, args) => {
    const r = spawnSync(cmd, args, { stdio: 'inherit' })
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status})`)
  }
  run(process.env.PYTHON || (windows ? 'python' : 'python3'), ['-m', 'venv', venv])
  run(bin('python'), ['-m', 'pip', 'install', '--quiet', ...[spec].flat()])
  return bin(name)
}

export function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: ROOT, ...opts })
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status ?? r.signal})`)
}

export function ensureNodeModules() {
  if (!existsSync(path.join(ROOT, 'node_modules', '@napi-rs', 'cli'))) {
    run('npm', ['install', '--no-audit', '--no-fund'])
  }
}

/**
 * Builds the addon (incremental: quick when nothing changed). The debug
 * build has the `conformance` feature (the store-conformance suite, for
 * `__test__/store-conformance.test.mjs`); a release build never does.
 */
export function buildAddon({ release = false } = {}) {
  const args = ['napi', 'build', '--platform', '--js', 'binding.js', '--dts', 'binding.d.ts']
  args.push(...(release ? ['--release'] : ['--features', 'conformance']))
  run('npx', args)
}
