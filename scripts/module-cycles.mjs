// Prints the engine's module graph in layers (leaves first) and fails when
// modules depend on each other in a cycle. A module is a top-level file
// (`x.rs`) or folder (`x/`) of crates/engine/src; an edge is any
// `crate::other` path outside test code. Run by .ci/run.
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
