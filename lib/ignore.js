// @ts-check
'use strict'

const native = require('../load-binding.js')
const { nativeCall } = require('./errors.js')
const { createDefaultLogger } = require('./logger.js')
const { checkPatterns } = require('./options.js')

/** @typedef {import('../index').SyncLogger} SyncLogger */

/**
 * Warns about the patterns the matcher cannot take; they are skipped (the
 * npm `ignore` package that upstream used tolerated them).
 * @param {{ skippedPatterns(): string[] }} rules
 * @param {SyncLogger} logger
 */
function warnSkippedPatterns(rules, logger) {
  for (const skipped of rules.skippedPatterns()) logger.warn(`Ignore pattern skipped (not a valid gitignore pattern): ${skipped}`)
}

/** Upstream's ignore filter, on the engine's rules (the same a sync applies). */
class SyncIgnoreFilter {
  /**
   * Built-in rules, then `additionalPatterns`; `loadFromWorkspace` adds `.syncignore`.
   * @param {SyncLogger} [logger]
   * @param {string[]} [additionalPatterns]
   */
  constructor(logger, additionalPatterns = []) {
    this._logger = logger ?? createDefaultLogger()
    const extra = checkPatterns(additionalPatterns, 'additionalPatterns')
    this._rules = nativeCall(() => new native.NativeIgnoreRules(extra))
    warnSkippedPatterns(this._rules, this._logger)
    this._logger.debug(`Loaded ${this._rules.defaultPatternsCount()} default ignore patterns`)
    if (extra.length > 0) this._logger.debug(`Loaded ${extra.length} additional ignore patterns`)
  }

  /** Adds the rules of `<workspaceDir>/.syncignore`, if present (synchronous, as upstream). @param {string} workspaceDir */
  loadFromWorkspace(workspaceDir) {
    try {
      const added = this._rules.loadFromWorkspace(String(workspaceDir))
      if (added > 0) this._logger.info(`Loaded ${added} custom patterns from .syncignore`)
      else this._logger.debug('No .syncignore file found, using defaults only')
    } catch (e) {
      this._logger.warn(`Failed to load .syncignore: ${/** @type {Error} */ (e)?.message ?? e}`)
    }
  }

  /** @param {string} relativePath */
  isIgnored(relativePath) {
    return this._rules.isIgnored(String(relativePath))
  }

  /** @param {string[]} paths */
  filter(paths) {
    return paths.filter((p) => !this.isIgnored(p))
  }

  getInfo() {
    return {
      defaultPatternsCount: this._rules.defaultPatternsCount(),
      customPatternsLoaded: this._rules.customPatternsLoaded(),
    }
  }
}

module.exports = { SyncIgnoreFilter, warnSkippedPatterns }
