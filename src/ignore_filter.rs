//! The engine's ignore rules, for the exported `SyncIgnoreFilter` class.

use engine::ignore_rules::IgnoreRules;
use napi_derive::napi;

use napi::Result;

use crate::errors::engine_error;

#[napi]
pub struct NativeIgnoreRules {
    rules: IgnoreRules,
}

#[napi]
impl NativeIgnoreRules {
    #[napi(constructor)]
    pub fn new(patterns: Vec<String>) -> Result<Self, String> {
        Ok(NativeIgnoreRules {
            rules: IgnoreRules::new(&patterns).map_err(engine_error)?,
        })
    }

    /// Adds the rules of the workspace's `.syncignore`, if any; returns how
    /// many. Never blocks: only a regular file is read, with size limits.
    #[napi]
    pub fn load_from_workspace(&mut self, dir: String) -> Result<u32, String> {
        let root = match engine::local::Dir::open_root(std::path::Path::new(&dir)) {
            Ok(root) => root,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => {
                return Err(engine_error(engine::Error::Syncignore(format!(
                    "{dir} cannot be read: {e}"
                ))))
            }
        };
        let next = engine::local::with_syncignore(&self.rules, &root).map_err(engine_error)?;
        let added = next.pattern_count() - self.rules.pattern_count();
        self.rules = next;
        Ok(added as u32)
    }

    /// `path` is a directory when it ends in `/`.
    #[napi]
    pub fn is_ignored(&self, path: String) -> bool {
        let is_dir = path.ends_with('/') || path.ends_with('\\');
        self.rules
            .is_ignored(path.trim_end_matches(['/', '\\']), is_dir)
    }

    /// Patterns left out (the matcher cannot take them), as `pattern: reason`.
    #[napi]
    pub fn skipped_patterns(&self) -> Vec<String> {
        self.rules
            .skipped_patterns()
            .iter()
            .map(|(p, why)| format!("{p:?}: {why}"))
            .collect()
    }

    #[napi]
    pub fn default_patterns_count(&self) -> u32 {
        self.rules.default_patterns_count() as u32
    }

    #[napi]
    pub fn custom_patterns_loaded(&self) -> bool {
        self.rules.custom_patterns_loaded()
    }
}
