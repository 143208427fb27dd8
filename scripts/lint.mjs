// `npm run lint`: every check that needs no S3 server, in order; it stops at
// the first that fails and names it. `.ci/run` and the GitHub workflow's lint
// job both run this, so the two cannot drift.
//
//   node scripts/lint.mjs

import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { ROOT } from './setup.mjs'

const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
const node = process.execPath
const scripts = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).scripts ?? {}

/** [name, command, args, extra environment] */
const CHECKS = [
  ['cargo fmt', 'cargo', ['fmt', '--all', '--', '--check']],
  ['cargo clippy', 'cargo', ['clippy', '--locked', '--workspace', '--all-targets', '--', '-D', 'warnings']],
  // The features a release build has (no `conformance`: with --all-targets,
  // the engine's tests turn it on for the whole build above).
  ['cargo clippy (release features)', 'cargo', ['clippy', '--locked', '--workspace', '--', '-D', 'warnings']],
  ['cargo doc', 'cargo', ['doc', '--locked', '--workspace', '--no-deps', '--quiet'], { RUSTDOCFLAGS: '-D warnings' }],
  ['unused Rust dependencies', node, ['scripts/unused-deps.mjs']],
  ['engine module layers', node, ['scripts/module-cycles.mjs']],
  ['tsc', node, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json']],
  ['actionlint (npm run lint:workflows)', npm, ['run', 'lint:workflows']],
  ['JavaScript lint (npm run lint:js)', npm, ['run', 'lint:js']],
]

for (const [name, cmd, args, env] of CHECKS) {
  if (cmd === npm && !scripts[args[1]]) {
    console.log(`\n=== ${name}: skipped, package.json has no "${args[1]}" script ===`)
    continue
  }
  const shown = [...Object.entries(env ?? {}).map(([k, v]) => `${k}=${JSON.stringify(v)}`), path.basename(cmd), ...args]
  console.log(`\n=== ${name}: ${shown.join(' ')} ===`)
  const r = spawnSync(cmd, args, {
    stdio: 'inherit',
    cwd: ROOT,
    env: { ...process.env, ...env },
    shell: process.platform === 'win32' && cmd === npm,
  })
  if (r.status !== 0) {
    console.error(`\nnpm run lint: ${name} failed (${r.error ? r.error.message : `exit ${r.status ?? r.signal}`})`)
    process.exit(1)
  }
}
console.log('\nnpm run lint: every check passed')
