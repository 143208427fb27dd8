//! Cancels the operations of every workspace made in a JavaScript
//! environment when that environment ends (a worker thread terminated
//! mid-pull): one cleanup hook per environment, holding weak references, so
//! a dropped instance is never kept alive by it.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, Weak};

use engine::Workspace;
use napi::{Env, Result};

/// Workspaces by the environment (its raw pointer) they were made in.
static ENVS: LazyLock<Mutex<HashMap<usize, Vec<Weak<Workspace>>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Cancels `ws`'s operations when `env` ends.
pub fn watch(env: &Env, ws: &Arc<Workspace>) -> Result<()> {
    let key = env.raw() as usize;
    let mut envs = ENVS.lock().unwrap_or_else(|p| p.into_inner());
    if !envs.contains_key(&key) {
        env.add_env_cleanup_hook(key, |key| {
            let gone = ENVS.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
            for ws in gone.into_iter().flatten().filter_map(|w| w.upgrade()) {
                ws.cancel_all();
            }
        })?;
    }
    let list = envs.entry(key).or_default();
    list.retain(|w| w.strong_count() > 0);
    list.push(Arc::downgrade(ws));
    Ok(())
}
