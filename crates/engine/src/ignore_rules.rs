//! Which workspace paths never sync: gitignore rules with the semantics of the
//! npm `ignore` package that upstream used (case-insensitive, and a path under
//! an ignored directory stays ignored whatever a later `!` rule says).

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::Match;

use crate::error::{Error, Result};

/// Built-in rules, in upstream order. The rules file itself never syncs.
pub const DEFAULT_PATTERNS: &[&str] = &[
    ".DS_Store",
    "Thumbs.db",
    "*.swp",
    "*.swo",
    "*~",
    "node_modules/",
    "__pycache__/",
    "*.pyc",
    ".gradle/",
    "build/",
    "dist/",
    "target/",
    ".idea/",
    ".vscode/",
    "*.iml",
    "*.log",
    "logs/",
    "*.tmp",
    "*.temp",
    ".cache/",
    SYNCIGNORE_FILE,
];

/// Name of the per-workspace rules file.
pub const SYNCIGNORE_FILE: &str = ".syncignore";
/// A line of a rules file that holds a pattern (not blank, not a comment).
pub fn is_pattern(line: &str) -> bool {
    let l = line.trim();
    !l.is_empty() && !l.starts_with('#')
}

/// An immutable set of ignore rules.
#[derive(Debug, Clone)]
pub struct IgnoreRules {
    matcher: Gitignore,
    patterns: Vec<String>,
    custom_loaded: bool,
}

impl IgnoreRules {
    /// The defaults followed by `extra` (the `ignorePatterns` option).
    pub fn new(extra: &[String]) -> Result<Self> {
        let patterns: Vec<String> = DEFAULT_PATTERNS
            .iter()
            .map(|p| (*p).to_owned())
            .chain(extra.iter().cloned())
            .collect();
        Self::build(patterns, false)
    }

    /// These rules followed by `lines` in `.syncignore` syntax.
    pub fn with_lines<'a>(&self, lines: impl IntoIterator<Item = &'a str>) -> Result<Self> {
        let mut patterns = self.patterns.clone();
        patterns.extend(
            lines
                .into_iter()
                .filter(|l| is_pattern(l))
                .map(|l| l.trim().to_owned()),
        );
        let added = patterns.len() > self.patterns.len();
        Self::build(patterns, self.custom_loaded || added)
    }

    fn build(patterns: Vec<String>, custom_loaded: bool) -> Result<Self> {
        let mut builder = GitignoreBuilder::new("");
        builder.case_insensitive(true).map_err(invalid)?;
        for p in &patterns {
            builder.add_line(None, p).map_err(invalid)?;
        }
        let matcher = builder.build().map_err(invalid)?;
        Ok(IgnoreRules {
            matcher,
            patterns,
            custom_loaded,
        })
    }

    /// Whether the workspace-relative `path` (a file unless `is_dir`) is
    /// ignored. Backslashes count as separators; a leading `/` is dropped.
    pub fn is_ignored(&self, path: &str, is_dir: bool) -> bool {
        let normalized = path.replace('\\', "/");
        let path = normalized.trim_start_matches('/');
        if path.is_empty() {
            return false;
        }
        // Parents first, as directories: an ignored directory hides everything
        // below it, as in git and the npm `ignore` package.
        let mut end = 0;
        while let Some(i) = path[end..].find('/') {
            end += i;
            if end > 0 && self.matches(&path[..end], true) {
                return true;
            }
            end += 1;
        }
        self.matches(path, is_dir)
    }

    fn matches(&self, path: &str, is_dir: bool) -> bool {
        matches!(self.matcher.matched(path, is_dir), Match::Ignore(_))
    }

    /// Number of rules in force (defaults included).
    pub fn pattern_count(&self) -> usize {
        self.patterns.len()
    }

    /// Number of built-in rules.
    pub fn default_patterns_count(&self) -> usize {
        DEFAULT_PATTERNS.len()
    }

    /// Whether a `.syncignore` has been loaded into these rules.
    pub fn custom_patterns_loaded(&self) -> bool {
        self.custom_loaded
    }
}

fn invalid(err: ignore::Error) -> Error {
    Error::InvalidOption(format!("invalid ignore pattern: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_ignore_common_junk() {
        let r = IgnoreRules::new(&[]).unwrap();
        for p in [
            ".DS_Store",
            "a/.DS_Store",
            "node_modules/x/y.js",
            "x.log",
            "build/out.o",
            ".syncignore",
            "f~",
        ] {
            assert!(r.is_ignored(p, false), "{p}");
        }
        for p in ["src/main.rs", "README.md", "node_modules"] {
            assert!(!r.is_ignored(p, false), "{p}");
        }
    }

    #[test]
    fn negation_cannot_reinclude_under_ignored_dir() {
        let r = IgnoreRules::new(&["deep/**".into(), "!deep/keep/".into()]).unwrap();
        assert!(r.is_ignored("deep/keep/x", false));
        let r = IgnoreRules::new(&["*.txt".into(), "!keep.txt".into()]).unwrap();
        assert!(!r.is_ignored("keep.txt", false));
        assert!(r.is_ignored("other.txt", false));
    }
}
