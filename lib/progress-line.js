// @ts-check
'use strict'

// The CLI's progress: one line redrawn in place on a terminal (Node's own
// tty cursor calls), else a plain line every few seconds.

const MiB = 1024 * 1024
/** Without a terminal: at most one line this often. */
const PLAIN_INTERVAL_MS = 5000
/** On a terminal: at most one redraw this often. */
const TTY_INTERVAL_MS = 100

/** @param {number} n */
const mib = (n) => (n / MiB).toFixed(1)

/** @param {number} seconds */
function duration(seconds) {
  if (!Number.isFinite(seconds)) return '?'
  if (seconds < 60) return `${Math.ceil(seconds)}s`
  return `${Math.floor(seconds / 60)}m${String(Math.ceil(seconds % 60)).padStart(2, '0')}s`
}

/**
 * One line: phase, percent (by bytes when the phase moves bytes, else by
 * files), bytes, files, rate, time so far and ETA, and errors so far.
 * @param {import('../index').SyncProgress} p
 * @param {number} startedAt when the phase started (ms)
 * @param {number} errors files failed so far
 */
function describe(p, startedAt, errors) {
  const seconds = Math.max((Date.now() - startedAt) / 1000, 0.001)
  const bytes = p.bytes ?? 0
  const totalBytes = p.totalBytes ?? 0
  const rate = bytes / seconds
  const percent = totalBytes > 0 ? Math.floor((bytes * 100) / totalBytes) : p.percentage
  const parts = [p.phase.padEnd(8), `${String(percent).padStart(3)}%`]
  if (totalBytes > 0) parts.push(`${mib(bytes)}/${mib(totalBytes)} MiB`)
  parts.push(`${p.current}/${p.total} files`)
  if (totalBytes > 0) parts.push(`${mib(rate)} MiB/s`)
  parts.push(`${duration(seconds)} elapsed`)
  if (totalBytes > 0 && bytes < totalBytes && rate > 0) parts.push(`ETA ${duration((totalBytes - bytes) / rate)}`)
  if (errors > 0) parts.push(`${errors} error${errors === 1 ? '' : 's'}`)
  return parts.join('  ')
}

/**
 * A progress listener writing to `stream` (stderr), and `done()` to end the line.
 * @param {NodeJS.WriteStream} stream
 */
function progressReporter(stream) {
  const tty = Boolean(stream.isTTY)
  let phase = ''
  let startedAt = Date.now()
  let last = 0
  let drawn = false
  let errors = 0
  /** @param {string} line */
  const draw = (line) => {
    if (tty) {
      stream.cursorTo(0)
      stream.write(line)
      stream.clearLine(1)
      drawn = true
    } else {
      stream.write(`${line}\n`)
    }
  }
  return {
    /** @param {import('../index').SyncProgress} p */
    update(p) {
      if (p.phase !== phase) {
        if (drawn) stream.write('\n')
        drawn = false
        phase = p.phase
        startedAt = Date.now()
        last = 0
      }
      const now = Date.now()
      const final = p.current === p.total
      if (!final && now - last < (tty ? TTY_INTERVAL_MS : PLAIN_INTERVAL_MS)) return
      last = now
      draw(describe(p, startedAt, errors))
    },
    /** A file failed (counted on the line). */
    failed() {
      errors++
    },
    done() {
      if (drawn) stream.write('\n')
      drawn = false
    },
  }
}

module.exports = { progressReporter }
