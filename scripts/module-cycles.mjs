// Prints the engine's module graph in layers (leaves first) and fails when
// modules depend on each other in a cycle, or when the README's layer list
// (the fenced block of `<n>: module, module` lines under "Design") is out of
// date: a module missing from it or one it names that does not exist, or a
// module using one in its own or a higher README layer. A module is a
// top-level file (`x.rs`) or folder (`x/`) of crates/engine/src; an edge is
// any `crate::other` path outside test code. Run by `npm run lint`.
//
//   node scripts/module-cycles.mjs

import { readdirSync, readFileSync, statSync } from 'node:fs'
import path from 'node:path'
import { ROOT } from './setup.mjs'

const SRC = path.join(ROOT, 'crates', 'engine', 'src')

/** Every .rs file under `p`. */
function files(p) {
  if (statSync(p).isFile()) return p.endsWith('.rs') ? [p] : []
  return readdirSync(p).flatMap((n) => files(path.join(p, n)))
}

/** The source without its test modules (they sit at the end of a file). */
function withoutTests(text) {
  const at = text.search(/^#\[cfg\((all\()?test/m)
  return at === -1 ? text : text.slice(0, at)
}

const modules = new Map()
for (const entry of readdirSync(SRC)) {
  const name = entry.replace(/\.rs$/, '')
  if (name === 'lib') continue
  modules.set(name, files(path.join(SRC, entry)))
}
const graph = new Map()
for (const [name, paths] of modules) {
  const deps = new Set()
  for (const p of paths) {
    for (const m of withoutTests(readFileSync(p, 'utf8')).matchAll(/crate::([a-z_][a-z0-9_]*)/g)) {
      if (m[1] !== name && modules.has(m[1])) deps.add(m[1])
    }
  }
  graph.set(name, [...deps].sort())
}

// Tarjan's strongly connected components.
let index = 0
const idx = new Map()
const low = new Map()
const stack = []
const onStack = new Set()
const cycles = []
function visit(v) {
  idx.set(v, index)
  low.set(v, index++)
  stack.push(v)
  onStack.add(v)
  for (const w of graph.get(v)) {
    if (!idx.has(w)) {
      visit(w)
      low.set(v, Math.min(low.get(v), low.get(w)))
    } else if (onStack.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)))
  }
  if (low.get(v) === idx.get(v)) {
    const scc = []
    let w
    do {
      w = stack.pop()
      onStack.delete(w)
      scc.push(w)
    } while (w !== v)
    if (scc.length > 1) cycles.push(scc.sort())
  }
}
for (const v of graph.keys()) if (!idx.has(v)) visit(v)

if (cycles.length > 0) {
  for (const c of cycles) {
    console.error(`module cycle: ${c.join(' ↔ ')}`)
    for (const m of c)
      console.error(
        `  ${m} → ${graph
          .get(m)
          .filter((d) => c.includes(d))
          .join(', ')}`,
      )
  }
  process.exit(1)
}

// Layers: each module above everything it uses.
const layer = new Map()
const depth = (m) => {
  if (!layer.has(m)) layer.set(m, 1 + Math.max(-1, ...graph.get(m).map(depth)))
  return layer.get(m)
}
const byLayer = []
for (const m of graph.keys()) (byLayer[depth(m)] ??= []).push(m)
console.log('engine modules, leaves first (no cycles):')
byLayer.forEach((ms, i) => console.log(`  ${i}: ${ms.sort().join(', ')}`))

// The README's list: the one fenced block made only of `<n>: a, b` lines.
const README = path.join(ROOT, 'README.md')
const LINE = /^\s*(\d+)\s*:\s*([a-z_][a-z0-9_]*(?:\s*,\s*[a-z_][a-z0-9_]*)*)\s*$/
const blocks = [...readFileSync(README, 'utf8').matchAll(/^```[^\n]*\n([\s\S]*?)^```/gm)]
  .map((b) => b[1].split('\n').filter((l) => l.trim()))
  .filter((lines) => lines.length > 0 && lines.every((l) => LINE.test(l)))
const problems = []
const listed = new Map()
if (blocks.length !== 1) {
  problems.push(`README.md has ${blocks.length} fenced blocks of \`<n>: module, module\` lines; expected exactly one (the engine's layers)`)
} else {
  for (const line of blocks[0]) {
    const [, n, names] = LINE.exec(line)
    for (const name of names.split(',').map((x) => x.trim())) {
      if (listed.has(name)) problems.push(`README.md lists ${name} twice (layers ${listed.get(name)} and ${n})`)
      else listed.set(name, Number(n))
    }
  }
  for (const m of graph.keys()) if (!listed.has(m)) problems.push(`${m} is a module but missing from README.md's layers`)
  for (const m of listed.keys()) if (!graph.has(m)) problems.push(`README.md's layers list ${m}, which is not a module of crates/engine/src`)
  for (const [m, deps] of graph) {
    for (const d of deps) {
      if (listed.has(m) && listed.has(d) && listed.get(d) >= listed.get(m)) {
        problems.push(`${m} (README layer ${listed.get(m)}) uses ${d} (README layer ${listed.get(d)}): a module may use only lower layers`)
      }
    }
  }
}
if (problems.length > 0) {
  for (const p of problems) console.error(p)
  console.error('README.md\'s layer list ("Design") is out of date: the layers computed above fit the code.')
  process.exit(1)
}
console.log('README.md lists the same modules, each above every module it uses.')
