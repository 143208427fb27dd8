// Fails when a crate declares a dependency its sources never name (what
// cargo-machete checks, without installing it): each `[dependencies]` and
// `[dev-dependencies]` entry must appear as `name::`, `use name` or
// `extern crate name` (dashes as underscores) in the crate's sources.

import { readFileSync, readdirSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
// Used without being named in code.
const IMPLICIT = new Set(['napi-build'])

function sources(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name)
    if (e.isDirectory()) return e.name === 'target' || e.name === 'node_modules' ? [] : sources(full)
    return e.name.endsWith('.rs') ? [readFileSync(full, 'utf8')] : []
  })
}

/** Dependency names (and `package =` renames) of the given tables. */
function dependencies(toml, tables) {
  const out = []
  let table = null
  for (const line of toml.split('\n')) {
    const header = /^\s*\[([^\]]+)\]/.exec(line)
    if (header) {
      table = header[1].trim()
      continue
    }
    const entry = /^\s*([A-Za-z0-9_-]+)\s*=/.exec(line)
    if (entry && tables.includes(table)) out.push({ name: entry[1], table })
  }
  return out
}

let failed = false
for (const crate of ['.', 'crates/engine']) {
  const dir = path.join(ROOT, crate)
  const toml = readFileSync(path.join(dir, 'Cargo.toml'), 'utf8')
  const code = [
    ...sources(path.join(dir, 'src')),
    ...(crate === '.' ? [] : sources(path.join(dir, 'tests'))),
    readFileSync(path.join(dir, crate === '.' ? 'build.rs' : 'Cargo.toml'), 'utf8'),
  ].join('\n')
  for (const { name, table } of dependencies(toml, ['dependencies', 'dev-dependencies', 'build-dependencies'])) {
    if (IMPLICIT.has(name)) continue
    const ident = name.replace(/-/g, '_')
    // `md-5` is imported as `md5`; a renamed dependency is named by its key.
    const idents = name === 'md-5' ? ['md5'] : [ident]
    const used = idents.some((i) => new RegExp(`\\b${i}::|\\buse ${i}\\b|\\bextern crate ${i}\\b|#\\[${i}::`).test(code))
    if (!used) {
      console.error(`${crate}/Cargo.toml [${table}]: ${name} is never used`)
      failed = true
    }
  }
}
if (failed) process.exit(1)
console.log('Every declared Rust dependency is used.')
