// Everything `npm run demo` and `npm test` need on a fresh clone: npm
// dependencies, the native addon (built from source), and a SeaweedFS binary.

import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

export function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: ROOT, ...opts })
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status ?? r.signal})`)
}

export function ensureNodeModules() {
  if (!existsSync(path.join(ROOT, 'node_modules', '@napi-rs', 'cli'))) {
    run('npm', ['install', '--no-audit', '--no-fund'])
  }
}

/** Builds the addon (incremental: quick when nothing changed). */
export function buildAddon({ release = false } = {}) {
  const args = ['napi', 'build', '--platform', '--js', 'binding.js', '--dts', 'binding.d.ts']
  if (release) args.push('--release')
  run('npx', args)
}
