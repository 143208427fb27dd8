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
/// `{` and `}` escaped: gitignore has no brace expansion (`{a,b}.txt`
/// names that file), but the glob matcher would expand them.
fn literal_braces(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut escaped = false;
    for c in pattern.chars() {
        if !escaped && (c == '{' || c == '}') {
            out.push('\\');
        }
        escaped = !escaped && c == '\\';
        out.push(c);
    }
    out
}

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
    /// Patterns the matcher cannot take (the npm `ignore` package tolerated
    /// them): left out, with the reason, for the caller to warn about.
    skipped: Vec<(String, String)>,
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

    /// Rules that ignore nothing, not even the defaults: for what S3 holds
    /// whatever any instance ignores (a checkpoint's state).
    pub fn none() -> Result<Self> {
        Self::build(Vec::new(), false)
    }

    fn build(patterns: Vec<String>, custom_loaded: bool) -> Result<Self> {
        let mut builder = GitignoreBuilder::new("");
        builder.case_insensitive(true).map_err(invalid)?;
        let mut skipped = Vec::new();
        for p in &patterns {
            // `add_line` parses the glob before adding it: a pattern it
            // rejects leaves the builder as it was and is skipped.
            if let Err(e) = builder.add_line(None, &literal_braces(p)) {
                skipped.push((p.clone(), e.to_string()));
            }
        }
        let matcher = builder.build().map_err(invalid)?;
        Ok(IgnoreRules {
            matcher,
            patterns,
            custom_loaded,
            skipped,
        })
    }

    /// Patterns left out because the matcher cannot take them, with why.
    pub fn skipped_patterns(&self) -> &[(String, String)] {
        &self.skipped
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
    Error::invalid(
        "ignore_patterns",
        format!("holds an invalid pattern: {err}"),
    )
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

    #[test]
    fn patterns_the_npm_package_tolerated_are_skipped_and_braces_are_literal() {
        let r = IgnoreRules::new(&[
            "\\".into(),
            "[z-a]".into(),
            "ok.txt".into(),
            "{a,b}.txt".into(),
        ])
        .unwrap();
        let skipped: Vec<&str> = r
            .skipped_patterns()
            .iter()
            .map(|(p, _)| p.as_str())
            .collect();
        assert_eq!(skipped, vec!["\\", "[z-a]"]);
        assert!(r.is_ignored("ok.txt", false));
        assert!(r.is_ignored("{a,b}.txt", false));
        assert!(!r.is_ignored("a.txt", false));
    }
}
