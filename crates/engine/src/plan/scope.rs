//! Which paths a plan decides: the whole workspace, a part of it planned
//! early (the priority subtree, paths an agent asked for, keys the listing
//! has already settled), or the rest once those parts are claimed.

use std::collections::HashSet;

use crate::keys::{covers, Root};

/// The paths a plan decides.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Only these roots (`None`: everywhere).
    only: Option<Vec<Root>>,
    /// Except these subtrees (`dir/`) …
    except_dirs: Vec<Root>,
    /// … and these exact paths (a key decided while the listing ran).
    except_files: HashSet<String>,
}

impl Scope {
    /// Every path.
    pub fn all() -> Self {
        Scope::default()
    }

    /// Only the paths under `roots`.
    pub fn only(roots: Vec<Root>) -> Self {
        Scope {
            only: Some(roots),
            ..Scope::default()
        }
    }

    /// The paths under `roots` that this scope decides.
    pub fn within(&self, roots: Vec<Root>) -> Self {
        Scope {
            only: Some(roots),
            ..self.clone()
        }
    }

    /// Also leaves out `root` (already planned elsewhere).
    pub fn exclude(&mut self, root: &str) {
        if root.ends_with('/') {
            self.except_dirs.push(root.to_owned());
        } else {
            self.except_files.insert(root.to_owned());
        }
    }

    /// Whether every path is decided (no part was planned elsewhere).
    pub fn is_all(&self) -> bool {
        self.only.is_none() && self.except_dirs.is_empty() && self.except_files.is_empty()
    }

    /// Whether the plan decides `rel`.
    pub fn contains(&self, rel: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|roots| roots.iter().any(|r| covers(r, rel)))
            && !self.except_files.contains(rel)
            && !self.except_dirs.iter().any(|r| covers(r, rel))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::parent_dirs;

    #[test]
    fn roots_name_a_path_or_a_subtree() {
        assert!(covers("a/", "a/b") && covers("a/", "a/b/c") && !covers("a/", "a"));
        assert!(!covers("a/", "ab/c") && covers("a", "a") && !covers("a", "a/b"));
        assert!(covers("/", "x"));
        let mut rest = Scope::all();
        assert!(rest.is_all() && rest.contains("x"));
        rest.exclude("skills/");
        rest.exclude("AGENTS.md");
        assert!(!rest.is_all());
        assert!(!rest.contains("skills/a.md") && !rest.contains("AGENTS.md"));
        assert!(rest.contains("skills") && rest.contains("AGENTS.md.bak"));
        let mut part = Scope::only(vec!["a/".into(), "f".into()]);
        part.exclude("a/b/");
        assert!(part.contains("a/x") && part.contains("f") && !part.contains("a/b/c"));
        assert!(!part.contains("g"));
        assert_eq!(parent_dirs("a/b/c").collect::<Vec<_>>(), ["a", "a/b"]);
        assert_eq!(parent_dirs("a/b/").collect::<Vec<_>>(), ["a", "a/b"]);
        assert_eq!(parent_dirs("f").count(), 0);
    }
}
