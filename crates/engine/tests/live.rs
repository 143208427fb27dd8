//! Live workspaces on the in-memory store: a push announces what it changed
//! in the journal a follower made, and the follower pulls just that.

use std::sync::{Arc, Mutex};

use s3ws_engine::store::memory::MemoryStore;
use s3ws_engine::{Config, Level, Observer, Progress, RemoteCheck, Run, Workspace};

/// Keeps the log, to tell a targeted pull from a whole one.
#[derive(Default)]
struct Log(Mutex<Vec<String>>);
impl Observer for Log {
    fn progress(&self, _: Progress) {}
    fn log(&self, _: Level, message: &str) {
        self.0.lock().unwrap().push(message.to_owned());
    }
}

const JOURNAL: &str = "p/.s3ws/changes.json";

fn instance(store: &Arc<MemoryStore>, dir: &std::path::Path) -> (Workspace, Arc<Log>) {
    let log = Arc::new(Log::default());
    let ws =
        Workspace::with_store(Config::new("b", "p/", dir), store.clone(), log.clone()).unwrap();
    (ws, log)
}

#[tokio::test]
async fn a_follower_pulls_just_what_another_instance_pushed() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(MemoryStore::new(2));
    for i in 0..5 {
        store.insert(&format!("p/f{i}.txt"), format!("v1 {i}"));
    }
    let (writer, _) = instance(&store, &tmp.path().join("w"));
    writer.pull().await.unwrap();
    // No follower yet: a push makes no journal.
    std::fs::write(tmp.path().join("w/f0.txt"), "v2 0").unwrap();
    writer.push().await.unwrap();
    assert!(!store.keys().contains(&JOURNAL.to_owned()));

    let (follower, log) = instance(&store, &tmp.path().join("f"));
    follower.follow(true).await.unwrap();
    follower.pull().await.unwrap();
    assert!(store.keys().contains(&JOURNAL.to_owned()));
    let run = Run::default();
    assert!(follower
        .pull_remote_changes(&run, RemoteCheck::Journal)
        .await
        .unwrap()
        .is_none());

    std::fs::write(tmp.path().join("w/f1.txt"), "v2 1").unwrap();
    std::fs::remove_file(tmp.path().join("w/f2.txt")).unwrap();
    writer.push().await.unwrap();
    log.0.lock().unwrap().clear();
    let report = follower
        .pull_remote_changes(&run, RemoteCheck::Journal)
        .await
        .unwrap()
        .expect("a change");
    assert_eq!(report.written, vec!["f1.txt".to_owned()]);
    assert_eq!(report.removed, vec!["f2.txt".to_owned()]);
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("f/f1.txt")).unwrap(),
        "v2 1"
    );
    assert!(!tmp.path().join("f/f2.txt").exists());
    // Just those paths: a pull of them, not of the prefix.
    let logged = log.0.lock().unwrap().join("\n");
    assert!(logged.contains("Pulling f1.txt, f2.txt of"), "{logged}");
    // Nothing new since; the journal and the follower's own pushes are not news.
    assert!(follower
        .pull_remote_changes(&run, RemoteCheck::Journal)
        .await
        .unwrap()
        .is_none());
    std::fs::write(tmp.path().join("f/mine.txt"), "mine").unwrap();
    follower.push().await.unwrap();
    assert!(follower
        .pull_remote_changes(&run, RemoteCheck::Journal)
        .await
        .unwrap()
        .is_none());
    assert!(!tmp.path().join("f/.s3ws/changes.json").exists());
    // The safety net pulls everything, also what no journal named.
    store.insert("p/by-another-tool.txt", "x");
    let whole = follower
        .pull_remote_changes(&run, RemoteCheck::Whole)
        .await
        .unwrap()
        .expect("a pull");
    assert_eq!(whole.written, vec!["by-another-tool.txt".to_owned()]);
}

#[tokio::test]
async fn a_journal_that_cannot_tell_means_a_whole_pull() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(MemoryStore::new(2));
    store.insert("p/a.txt", "a");
    let (follower, log) = instance(&store, &tmp.path().join("f"));
    follower.follow(true).await.unwrap();
    follower.pull().await.unwrap();
    // Someone rewrote the journal with something else, and added a file.
    store.insert(JOURNAL, "not json");
    store.insert("p/b.txt", "b");
    log.0.lock().unwrap().clear();
    let report = follower
        .pull_remote_changes(&Run::default(), RemoteCheck::Journal)
        .await
        .unwrap()
        .expect("a pull");
    assert_eq!(report.written, vec!["b.txt".to_owned()]);
    assert!(log
        .0
        .lock()
        .unwrap()
        .iter()
        .any(|m| m.contains("pulling everything")));
    // A journal deleted: made again, and everything checked.
    let _ = s3ws_engine::store::Store::delete(&*store, JOURNAL, None).await;
    store.insert("p/c.txt", "c");
    let report = follower
        .pull_remote_changes(&Run::default(), RemoteCheck::Journal)
        .await
        .unwrap()
        .expect("a pull");
    assert_eq!(report.written, vec!["c.txt".to_owned()]);
    assert!(store.keys().contains(&JOURNAL.to_owned()));
}

#[tokio::test]
async fn deletions_a_push_announced_are_not_weighed_again_by_followers() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(MemoryStore::new(2));
    for i in 0..3 {
        store.insert(&format!("p/f{i}.txt"), "x");
    }
    // The writer means it: its own guard was raised for these deletions.
    let mut config = Config::new("b", "p/", tmp.path().join("w"));
    config.max_delete_percent = 100;
    let writer = Workspace::with_store(config, store.clone(), Arc::new(Log::default())).unwrap();
    writer.pull().await.unwrap();
    let (follower, _) = instance(&store, &tmp.path().join("f"));
    follower.follow(true).await.unwrap();
    follower.pull().await.unwrap();
    let (plain, _) = instance(&store, &tmp.path().join("g"));
    plain.pull().await.unwrap();
    for i in 0..2 {
        std::fs::remove_file(tmp.path().join(format!("w/f{i}.txt"))).unwrap();
    }
    assert_eq!(writer.push().await.unwrap().deleted, 2);
    let report = follower
        .pull_remote_changes(&Run::default(), RemoteCheck::Journal)
        .await
        .unwrap()
        .expect("a change");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(
        report.removed,
        vec!["f0.txt".to_owned(), "f1.txt".to_owned()]
    );
    // A plain pull, which cannot tell who deleted them, weighs them as ever:
    // 2 of 3 is refused.
    let pulled = plain.pull().await.unwrap();
    assert_eq!(pulled.deleted, 0);
    assert!(
        pulled
            .errors
            .iter()
            .any(|e| e.message.contains("maxDeletePercent")),
        "{:?}",
        pulled.errors
    );
}
