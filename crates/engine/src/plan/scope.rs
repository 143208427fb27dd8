//! Which paths a plan decides: the whole workspace, a part of it planned
//! early (the priority subtree, paths an agent asked for, keys the listing
//! has already settled), or the rest once those parts are claimed.

use crate::keys::{Root, RootSet};

/// The paths a plan decides.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Only these roots (`None`: everywhere) …
    only: Option<RootSet>,
    /// … except these (parts and keys decided elsewhere).
    except: RootSet,
}

impl Scope {
    /// Every path.
    pub fn all() -> Self {
        Scope::default()
    }

    /// Only the paths under `roots`.
    pub fn only(roots: Vec<Root>) -> Self {
        Scope::all().within(roots)
    }

    /// The paths under `roots` that this scope decides.
    pub fn within(&self, roots: Vec<Root>) -> Self {
        Scope {
            only: Some(roots.into_iter().collect()),
            except: self.except.clone(),
        }
    }

    /// Also leaves out `root` (already planned elsewhere).
    pub fn exclude(&mut self, root: &str) {
        self.except.insert(root);
    }

    /// Whether the plan decides `rel`.
    pub fn contains(&self, rel: &str) -> bool {
        self.only.as_ref().is_none_or(|o| o.covers(rel)) && !self.except.covers(rel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{covers, parent_dirs};

    #[test]
    fn roots_name_a_path_or_a_subtree() {
        assert!(covers("a/", "a/b") && covers("a/", "a/b/c") && !covers("a/", "a"));
        assert!(!covers("a/", "ab/c") && covers("a", "a") && !covers("a", "a/b"));
        assert!(covers("/", "x"));
        let mut rest = Scope::all();
        assert!(rest.contains("x"));
        rest.exclude("skills/");
        rest.exclude("AGENTS.md");
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
